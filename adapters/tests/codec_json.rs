//! Python-style JSON for LangGraph's SQLite metadata column (spec §3.4), against bytes written
//! by Python's `json.dumps(value, ensure_ascii=False)`.

use waymark_adapters::codec::{python_json_bytes, python_json_string};

/// `json.dumps(v, ensure_ascii=False).encode()` for the value below (Python 3.11).
const PYTHON_UTF8_HEX: &str = "7b2273223a2022c3a95c75303030315c6e5c225c5c5c747fe280a8f09f918b222c202266223a205b312e302c2031652b31362c2031652d30352c20302e312c202d302e302c203132333435363738392e3132352c2031652b32322c2035652d3332345d2c202269223a205b2d312c20393232333337323033363835343737353830382c20305d2c20226e223a206e756c6c2c202262223a205b747275652c2066616c73655d2c202265223a207b7d2c20226c223a205b5d7d";

/// The same value as ASCII JSON (what serde_json reads).
const VALUE: &str = r#"{"s": "\u00e9\u0001\n\"\\\t\u007f\u2028\ud83d\udc4b", "f": [1.0, 1e+16, 1e-05, 0.1, -0.0, 123456789.125, 1e+22, 5e-324], "i": [-1, 9223372036854775808, 0], "n": null, "b": [true, false], "e": {}, "l": []}"#;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn rendering_matches_python_json_dumps_byte_for_byte() {
    let value: serde_json::Value = serde_json::from_str(VALUE).unwrap();
    let ours = python_json_bytes(&value).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&unhex(PYTHON_UTF8_HEX))
    );
    assert_eq!(ours, unhex(PYTHON_UTF8_HEX));
}

#[test]
fn spec_metadata_example_renders_as_written() {
    let text = r#"{"source": "input", "step": -1, "parents": {}, "fixture": "lg-fixtures", "mode": "approve", "user_id": "u-42"}"#;
    let value: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(python_json_string(&value).unwrap(), text);
}
