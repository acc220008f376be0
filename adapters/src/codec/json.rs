//! JSON bridges: msgpack values to and from `serde_json`, and Python's `json.dumps` style
//! (spec §3.4) for LangGraph's SQLite metadata column.

use waymark_domain::JsonValue;

use super::error::CodecError;
use super::value::{Int, Map, Value};

/// Converts a msgpack value to JSON: nil, bools, integers, finite floats, UTF-8 strings,
/// arrays and string-keyed maps (a repeated key keeps its first position and its last value,
/// as a Python `dict` does). Binaries, extensions, non-finite floats and non-string keys have
/// no JSON form and are an error naming the path.
pub fn value_to_json(value: &Value) -> Result<JsonValue, CodecError> {
    let mut path = Vec::new();
    to_json(value, &mut path).map_err(|reason| CodecError::NotJson {
        path: render_path(&path),
        reason,
    })
}

enum Seg {
    Index(usize),
    Key(String),
}

fn render_path(path: &[Seg]) -> String {
    let mut out = String::from("$");
    for seg in path {
        match seg {
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Key(k) => out.push_str(&format!(".{k}")),
        }
    }
    out
}

fn to_json(value: &Value, path: &mut Vec<Seg>) -> Result<JsonValue, String> {
    Ok(match value {
        Value::Nil => JsonValue::Null,
        Value::Bool(b) => JsonValue::Bool(*b),
        Value::Int(i) => match (i.as_i64(), i.as_u64()) {
            (Some(v), _) => JsonValue::from(v),
            (None, Some(v)) => JsonValue::from(v),
            (None, None) => return Err("integer out of range".into()),
        },
        Value::F32(f) => float_json(*f as f64)?,
        Value::F64(f) => float_json(*f)?,
        Value::Str(s) => JsonValue::String(
            s.as_str()
                .ok_or_else(|| "string is not valid UTF-8".to_owned())?
                .to_owned(),
        ),
        Value::Bin(_) => return Err("binary data has no JSON form".into()),
        Value::Ext(e) => return Err(format!("extension type {} has no JSON form", e.code)),
        Value::Array(a) => {
            let mut out = Vec::with_capacity(a.items.len());
            for (i, item) in a.items.iter().enumerate() {
                path.push(Seg::Index(i));
                out.push(to_json(item, path)?);
                path.pop();
            }
            JsonValue::Array(out)
        }
        Value::Map(m) => {
            let mut out = serde_json::Map::with_capacity(m.entries.len());
            for (k, v) in &m.entries {
                let key = k
                    .as_str()
                    .ok_or_else(|| format!("map key of kind {} is not text", k.kind()))?;
                path.push(Seg::Key(key.to_owned()));
                let v = to_json(v, path)?;
                path.pop();
                out.insert(key.to_owned(), v);
            }
            JsonValue::Object(out)
        }
    })
}

fn float_json(f: f64) -> Result<JsonValue, String> {
    serde_json::Number::from_f64(f)
        .map(JsonValue::Number)
        .ok_or_else(|| format!("non-finite float {f}"))
}

/// Converts JSON to msgpack the way Python's encoder writes the equivalent Python value:
/// integers in their smallest form, other numbers as float64, objects as maps in order.
pub fn json_to_value(json: &JsonValue) -> Result<Value, CodecError> {
    let mut path = Vec::new();
    from_json(json, &mut path).map_err(|reason| CodecError::NotRenderable {
        path: render_path(&path),
        reason,
    })
}

fn from_json(json: &JsonValue, path: &mut Vec<Seg>) -> Result<Value, String> {
    Ok(match json {
        JsonValue::Null => Value::Nil,
        JsonValue::Bool(b) => Value::Bool(*b),
        JsonValue::Number(n) => number_value(n)?,
        JsonValue::String(s) => Value::from(s.as_str()),
        JsonValue::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                out.push(from_json(item, path)?);
                path.pop();
            }
            Value::array(out)
        }
        JsonValue::Object(obj) => {
            let mut map = Map::new();
            for (k, v) in obj {
                path.push(Seg::Key(k.clone()));
                let v = from_json(v, path)?;
                path.pop();
                map.push(k, v);
            }
            Value::Map(map)
        }
    })
}

fn number_value(n: &serde_json::Number) -> Result<Value, String> {
    if let Some(i) = n.as_i64() {
        return Ok(Value::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Ok(Value::from(u));
    }
    if !n.is_f64() {
        // Only reachable with serde_json's arbitrary precision: an integer beyond 64 bits,
        // which msgpack cannot hold either (Python's encoder raises).
        return n
            .to_string()
            .parse::<i128>()
            .ok()
            .and_then(Int::new)
            .map(Value::Int)
            .ok_or_else(|| format!("integer {n} does not fit msgpack's 64 bits"));
    }
    match n.as_f64() {
        Some(f) if f.is_finite() => Ok(Value::F64(f)),
        _ => Err(format!("number {n} is not a finite float")),
    }
}

/// Renders JSON exactly as Python's `json.dumps(value, ensure_ascii=False)` does, as UTF-8
/// bytes: `", "` and `": "` separators, keys in order, non-ASCII raw, floats in `repr` style.
/// Non-finite floats are refused (Python would write the non-JSON `NaN`/`Infinity`).
pub fn python_json_bytes(value: &JsonValue) -> Result<Vec<u8>, CodecError> {
    let mut out = String::new();
    let mut path = Vec::new();
    render(value, &mut out, &mut path).map_err(|reason| CodecError::NotRenderable {
        path: render_path(&path),
        reason,
    })?;
    Ok(out.into_bytes())
}

/// [`python_json_bytes`] as a `String`.
pub fn python_json_string(value: &JsonValue) -> Result<String, CodecError> {
    python_json_bytes(value).map(|b| String::from_utf8(b).unwrap_or_default())
}

fn render(value: &JsonValue, out: &mut String, path: &mut Vec<Seg>) -> Result<(), String> {
    match value {
        JsonValue::Null => out.push_str("null"),
        JsonValue::Bool(true) => out.push_str("true"),
        JsonValue::Bool(false) => out.push_str("false"),
        JsonValue::Number(n) => {
            if n.is_f64() {
                let f = n.as_f64().unwrap_or(f64::NAN);
                out.push_str(&python_float_repr(f).ok_or_else(|| format!("non-finite float {n}"))?);
            } else {
                out.push_str(&n.to_string());
            }
        }
        JsonValue::String(s) => render_str(s, out),
        JsonValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                path.push(Seg::Index(i));
                render(item, out, path)?;
                path.pop();
            }
            out.push(']');
        }
        JsonValue::Object(obj) => {
            out.push('{');
            for (i, (k, v)) in obj.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_str(k, out);
                out.push_str(": ");
                path.push(Seg::Key(k.clone()));
                render(v, out, path)?;
                path.pop();
            }
            out.push('}');
        }
    }
    Ok(())
}

fn render_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest digits that round-trip, in fixed notation when the
/// decimal exponent is in `[-4, 16)` (always with a fractional part), otherwise in exponent
/// notation with a sign and at least two exponent digits (`1e+16`, `1.5e-07`). `None` for
/// NaN and infinities.
pub fn python_float_repr(f: f64) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    if f == 0.0 {
        return Some(if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned());
    }
    // Rust's `{:e}` gives the shortest round-trip digits, the same digits Python's repr uses.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let decpt = exp + 1;
    let mut out = String::new();
    if f.is_sign_negative() {
        out.push('-');
    }
    if !(-4 < decpt && decpt <= 16) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    } else if decpt <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-decpt) as usize));
        out.push_str(&digits);
    } else {
        let decpt = decpt as usize;
        if decpt >= digits.len() {
            out.push_str(&digits);
            out.push_str(&"0".repeat(decpt - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..decpt]);
            out.push('.');
            out.push_str(&digits[decpt..]);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_render_like_python_repr() {
        let cases = [
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123.456, "123.456"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (0.9006228878075907, "0.9006228878075907"),
        ];
        for (f, want) in cases {
            assert_eq!(python_float_repr(f).as_deref(), Some(want), "{f:e}");
        }
        assert_eq!(python_float_repr(f64::NAN), None);
        assert_eq!(python_float_repr(f64::NEG_INFINITY), None);
    }

    #[test]
    fn metadata_renders_with_python_separators_and_escapes() {
        let v = json!({"source": "input", "step": -1, "parents": {}, "list": [1, 2.0, null, true],
                       "text": "é\u{1}\n\"\\\t\u{7f}", "empty": []});
        let s = python_json_string(&v).unwrap();
        assert_eq!(
            s,
            "{\"source\": \"input\", \"step\": -1, \"parents\": {}, \"list\": [1, 2.0, null, true], \
             \"text\": \"é\\u0001\\n\\\"\\\\\\t\u{7f}\", \"empty\": []}"
        );
    }

    #[test]
    fn msgpack_and_json_convert_both_ways() {
        let v = json!({"a": [1, -2, 3.5, "x", null, false], "b": {"c": 18446744073709551615u64}});
        let m = json_to_value(&v).unwrap();
        assert_eq!(value_to_json(&m).unwrap(), v);
        let bad = Value::array(vec![Value::from(1i64), Value::bin(vec![1])]);
        let err = value_to_json(&bad).unwrap_err();
        assert!(err.to_string().contains("$[1]"), "{err}");
    }
}
