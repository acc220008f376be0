//! The contract suite: one module per port.
