//! Human-readable rendering of checkpoints and values for the CLI and the REST API.
