//! Export, import and copy between backends.
