//! JSON values as the domain uses them: metadata objects and opaque content.

/// A JSON object that keeps its keys in insertion order (LangGraph's metadata merge rule and
/// byte-compatible metadata both depend on the order).
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Any JSON value.
pub type JsonValue = serde_json::Value;

use crate::error::{DomainError, DomainResult};

// The rules every store applies before writing text or JSON. PostgreSQL's `TEXT` and `JSONB`
// cannot hold U+0000, so every backend refuses it (with the same error) instead of letting
// one database fail where another would accept.

/// Refuses a U+0000 in free text (PostgreSQL `TEXT` cannot hold it); `field` names the input
/// in the error.
pub fn check_no_nul(field: &'static str, text: &str) -> DomainResult<()> {
    if text.contains('\0') {
        return Err(DomainError::invalid(field, "contains a NUL character"));
    }
    Ok(())
}

/// Whether a JSON number was written as an integer (no fraction, no exponent). With
/// serde_json's `arbitrary_precision` (on in this workspace) such a number keeps every digit
/// however large, and `Number::is_f64` is false both for it and for a float beyond the f64
/// range, so this is the test that tells them apart.
pub fn is_integer(n: &serde_json::Number) -> bool {
    n.as_i64().is_some() || n.as_u64().is_some() || !n.to_string().contains(['.', 'e', 'E'])
}

/// Refuses a U+0000 in any string or object key of a JSON value (PostgreSQL `JSONB` cannot
/// hold it) and a fractional number outside the 64-bit float range (`1e400`: JSON text keeps
/// it, but no store, msgpack or Python reads it back as the number that was sent). Integers
/// of any size are accepted and kept exactly (protocol §2).
pub fn check_json(field: &'static str, value: &JsonValue) -> DomainResult<()> {
    match value {
        JsonValue::String(s) => check_no_nul(field, s),
        JsonValue::Array(items) => items.iter().try_for_each(|v| check_json(field, v)),
        JsonValue::Object(map) => check_json_object(field, map),
        JsonValue::Number(n) if !is_integer(n) && n.as_f64().is_none() => {
            Err(DomainError::invalid(
                field,
                format!("the number {n} is outside the 64-bit floating-point range"),
            ))
        }
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

/// Equality of JSON scalars where numbers compare by value and booleans never equal numbers.
pub fn json_scalar_eq(a: &JsonValue, b: &JsonValue) -> bool {
    match (a, b) {
        (JsonValue::Number(x), JsonValue::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            // Two integers beyond 64 bits: JSON text spells an integer one way, so their
            // digits compare exactly.
            _ if is_integer(x) && is_integer(y) => x.to_string() == y.to_string(),
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

/// jsonb containment (`have @> want`, spec §4.7), the rule every store's checkpoint metadata
/// filter follows: objects by subset, arrays by containing every wanted element, numbers by
/// value, everything else by equality (so `true` never matches `1` and a wanted null matches
/// only a stored null).
pub fn json_contains(have: &JsonValue, want: &JsonValue) -> bool {
    match (have, want) {
        (JsonValue::Object(h), JsonValue::Object(w)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| json_contains(hv, wv))),
        (JsonValue::Array(h), JsonValue::Array(w)) => {
            w.iter().all(|wv| h.iter().any(|hv| json_contains(hv, wv)))
        }
        (JsonValue::Number(_), JsonValue::Number(_)) => json_scalar_eq(have, want),
        _ => have == want,
    }
}

/// Whether a metadata object contains every key of `filter` with a value that
/// [contains](json_contains) the wanted one (checkpoint `list` filters).
pub fn object_contains(metadata: &JsonObject, filter: &JsonObject) -> bool {
    filter.iter().all(|(k, want)| {
        metadata
            .get(k)
            .is_some_and(|have| json_contains(have, want))
    })
}

/// Shallow merge of a metadata patch: patch keys replace stored keys (a null stores null),
/// other keys stay. Every store applies `metadata_patch` updates this way.
pub fn merge_patch(target: &mut JsonObject, patch: JsonObject) {
    for (k, v) in patch {
        target.insert(k, v);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(v: JsonValue) -> JsonObject {
        match v {
            JsonValue::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn floats_beyond_f64_are_refused_and_big_integers_kept() {
        let v: JsonValue =
            serde_json::from_str(r#"{"a": [1e400], "b": 1180591620717411303424}"#).unwrap();
        let e = check_json("metadata", &v).unwrap_err();
        assert!(
            e.is_invalid_input() && e.to_string().contains("1e+400"),
            "{e}"
        );
        let ok: JsonValue = serde_json::from_str(
            r#"{"b": 1180591620717411303424, "c": -1180591620717411303425, "d": 1.5e300}"#,
        )
        .unwrap();
        check_json("metadata", &ok).unwrap();
        let text = ok.to_string();
        assert!(
            text.starts_with(r#"{"b":1180591620717411303424,"c":-1180591620717411303425,"#),
            "{text}"
        );
    }

    #[test]
    fn nul_in_text_is_refused_with_the_field_name() {
        assert!(check_no_nul("title", "plain text").is_ok());
        let err = check_no_nul("title", "a\0b").unwrap_err();
        assert!(
            matches!(&err, DomainError::InvalidInput { field, reason }
                if *field == "title" && reason == "contains a NUL character"),
            "{err:?}"
        );
    }

    #[test]
    fn nul_anywhere_in_json_is_refused() {
        assert!(check_json("content", &json!({"a": [1, "x", null, {"b": true}]})).is_ok());
        assert!(check_json("content", &json!("a\u{0}")).is_err());
        assert!(check_json("content", &json!([["deep\u{0}"]])).is_err());
        assert!(check_json("content", &json!({"k": {"x\u{0}": 1}})).is_err());
        assert!(check_json_object("metadata", &object(json!({"a\u{0}": 1}))).is_err());
        assert!(check_json_object("metadata", &object(json!({"a": {"b": "c\u{0}"}}))).is_err());
        assert!(check_json_object("metadata", &object(json!({"a": 1.5}))).is_ok());
    }

    #[test]
    fn containment_follows_jsonb() {
        let have = object(
            json!({"flag": true, "nothing": null, "obj": {"a": 1, "b": 2}, "lst": [1, 2, {"k": [3, 4]}], "step": 1}),
        );
        let f = |v: JsonValue| object_contains(&have, &object(v));
        assert!(f(json!({"flag": true})));
        assert!(!f(json!({"flag": 1})));
        assert!(!f(json!({"missing": null})));
        assert!(f(json!({"nothing": null})));
        assert!(f(json!({"obj": {"b": 2, "a": 1}})));
        assert!(f(json!({"obj": {"a": 1}})));
        assert!(f(json!({"lst": [1]})));
        assert!(f(json!({"lst": [{"k": [4]}]})));
        assert!(!f(json!({"lst": [5]})));
        assert!(f(json!({"step": 1.0})));
        assert!(!f(json!({"step": "1"})));
        assert!(f(json!({})));
    }

    #[test]
    fn merge_patch_replaces_top_level_keys_and_keeps_the_rest() {
        let mut target = object(json!({"a": 1, "b": {"x": 1}, "c": 3}));
        merge_patch(
            &mut target,
            object(json!({"b": {"y": 2}, "c": null, "d": 4})),
        );
        assert_eq!(
            JsonValue::Object(target),
            json!({"a": 1, "b": {"y": 2}, "c": null, "d": 4})
        );
    }
}
