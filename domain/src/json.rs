//! JSON values as the domain uses them: metadata objects and opaque content.

/// A JSON object that keeps its keys in insertion order (LangGraph's metadata merge rule and
/// byte-compatible metadata both depend on the order).
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Any JSON value.
pub type JsonValue = serde_json::Value;
