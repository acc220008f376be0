//! Input rules the SQL stores check before writing, identical to the in-memory stores' so that
//! every backend refuses the same input with the same error.

use waymark_domain::{DomainError, DomainResult, JsonObject, JsonValue};

/// Refuses a U+0000 in free text (PostgreSQL `TEXT` cannot hold it).
pub fn check_no_nul(field: &'static str, text: &str) -> DomainResult<()> {
    if text.contains('\0') {
        return Err(DomainError::invalid(field, "contains a NUL character"));
    }
    Ok(())
}

/// Refuses a U+0000 in any string or object key of a JSON value (PostgreSQL `JSONB` cannot
/// hold it).
pub fn check_json(field: &'static str, value: &JsonValue) -> DomainResult<()> {
    match value {
        JsonValue::String(s) => check_no_nul(field, s),
        JsonValue::Array(items) => items.iter().try_for_each(|v| check_json(field, v)),
        JsonValue::Object(map) => check_json_object(field, map),
        JsonValue::Null | JsonValue::Bool(_) | JsonValue::Number(_) => Ok(()),
    }
}

/// [`check_json`] for an object.
pub fn check_json_object(field: &'static str, map: &JsonObject) -> DomainResult<()> {
    for (k, v) in map {
        check_no_nul(field, k)?;
        check_json(field, v)?;
    }
    Ok(())
}

/// Shallow merge: patch keys replace stored keys (a null stores null), other keys stay.
pub fn merge_patch(target: &mut JsonObject, patch: JsonObject) {
    for (k, v) in patch {
        target.insert(k, v);
    }
}
