//! JSON text exactly as Python's `json.dumps` writes it, in the two styles LangGraph's savers
//! use; shared by both table layouts.
//!
//! The SQLite saver stores metadata as `json.dumps(metadata, ensure_ascii=False)` (default
//! separators `", "` / `": "`) and renders map and list filter values with
//! `json.dumps(value, separators=(",", ":"))` (ASCII escaping on). Matching both byte for byte
//! keeps Waymark-written rows identical to Python-written ones and filter matches identical to
//! Python's (spec §3.4, §3.5).

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};

use super::python_float_repr;

/// Which `json.dumps` call to imitate.
#[derive(Debug, Clone, Copy)]
// Each layout uses one style: with a single layout built, the other one is never constructed.
#[cfg_attr(
    not(all(feature = "sqlite-layout", feature = "postgres-layout")),
    allow(dead_code)
)]
pub(crate) enum PyJsonStyle {
    /// `json.dumps(v, ensure_ascii=False)`: what the saver stores as metadata.
    Metadata,
    /// `json.dumps(v, separators=(",", ":"))`: how the saver renders map/list filter values.
    CompactAscii,
}

/// Renders `value` in the given Python style.
pub(crate) fn to_python_json(value: &serde_json::Value, style: PyJsonStyle) -> Vec<u8> {
    let mut out = Vec::new();
    let formatter = PyFormatter { style };
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value
        .serialize(&mut ser)
        .expect("serializing a JSON value into memory cannot fail");
    out
}

struct PyFormatter {
    style: PyJsonStyle,
}

impl PyFormatter {
    fn item_separator(&self) -> &'static [u8] {
        match self.style {
            PyJsonStyle::Metadata => b", ",
            PyJsonStyle::CompactAscii => b",",
        }
    }

    fn key_separator(&self) -> &'static [u8] {
        match self.style {
            PyJsonStyle::Metadata => b": ",
            PyJsonStyle::CompactAscii => b":",
        }
    }
}

impl Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(self.item_separator())
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(self.item_separator())
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(self.key_separator())
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(python_float_text(value).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        w.write_all(python_float_text(f64::from(value)).as_bytes())
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        match self.style {
            PyJsonStyle::Metadata => w.write_all(fragment.as_bytes()),
            PyJsonStyle::CompactAscii => {
                for c in fragment.chars() {
                    if (' '..='~').contains(&c) {
                        w.write_all(&[c as u8])?;
                    } else {
                        let mut units = [0u16; 2];
                        for unit in c.encode_utf16(&mut units) {
                            write!(w, "\\u{unit:04x}")?;
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        let text: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"\\/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(byte) => {
                return write!(w, "\\u{byte:04x}");
            }
        };
        w.write_all(text)
    }
}

/// A float as `json.dumps` writes it: Python's `repr(float)` ([`python_float_repr`]) when
/// finite, and Python's non-JSON `NaN`, `Infinity`, `-Infinity` otherwise.
pub(crate) fn python_float_text(value: f64) -> String {
    python_float_repr(value).unwrap_or_else(|| {
        if value.is_nan() {
            "NaN"
        } else if value > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }
        .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_render_like_python_repr() {
        let cases = [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (-2.25, "-2.25"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123456.789, "123456.789"),
            (1e300, "1e+300"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (value, expected) in cases {
            assert_eq!(python_float_text(value), expected, "{value:e}");
        }
    }

    #[test]
    fn metadata_style_matches_json_dumps_defaults() {
        let v = json!({"source": "input", "step": -1, "parents": {}, "x": [1, 2.5, true, null], "é": "ü\n\u{1}"});
        let text = String::from_utf8(to_python_json(&v, PyJsonStyle::Metadata)).unwrap();
        assert_eq!(
            text,
            "{\"source\": \"input\", \"step\": -1, \"parents\": {}, \"x\": [1, 2.5, true, null], \"é\": \"ü\\n\\u0001\"}"
        );
    }

    #[test]
    fn compact_ascii_style_escapes_non_ascii() {
        let v = json!({"a": [1, {"b": "é😀\u{7f}"}]});
        let text = String::from_utf8(to_python_json(&v, PyJsonStyle::CompactAscii)).unwrap();
        assert_eq!(text, "{\"a\":[1,{\"b\":\"\\u00e9\\ud83d\\ude00\\u007f\"}]}");
    }
}
