//! Backend factories used by the contract suite.
