//! The msgpack writer: ormsgpack's rules (spec §2.2) for minimal forms, recorded forms
//! reproduced otherwise.

use rmp::Marker;

use super::value::{Array, Bin, Ext, ExtPayload, Int, IntForm, Map, Str, Value, Width};

/// Encodes one value as a msgpack document.
///
/// # Panics
///
/// Only when a string, binary, array, map or extension payload holds more than `u32::MAX`
/// bytes or elements, which msgpack cannot express at all (no decoded value can be that big).
pub fn encode_msgpack(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(&mut out, value);
    out
}

/// Appends the encoding of `value` to `out` (see [`encode_msgpack`]).
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Nil => out.push(Marker::Null.to_u8()),
        Value::Bool(false) => out.push(Marker::False.to_u8()),
        Value::Bool(true) => out.push(Marker::True.to_u8()),
        Value::Int(i) => write_int(out, *i),
        Value::F32(f) => {
            out.push(Marker::F32.to_u8());
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Value::F64(f) => {
            out.push(Marker::F64.to_u8());
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Value::Str(s) => write_str(out, s),
        Value::Bin(b) => write_bin(out, b),
        Value::Array(a) => write_array(out, a),
        Value::Map(m) => write_map(out, m),
        Value::Ext(e) => write_ext(out, e),
    }
}

fn write_int(out: &mut Vec<u8>, int: Int) {
    let v = int.value();
    let form = if int.form() != IntForm::Minimal && int.form().fits(v) {
        int.form()
    } else {
        // `Int` guarantees the value is in msgpack's range.
        IntForm::minimal_for(v).unwrap_or(IntForm::I64)
    };
    match form {
        IntForm::FixPos => out.push(v as u8),
        IntForm::FixNeg => out.push(v as i8 as u8),
        IntForm::U8 => {
            out.push(Marker::U8.to_u8());
            out.push(v as u8);
        }
        IntForm::U16 => {
            out.push(Marker::U16.to_u8());
            out.extend_from_slice(&(v as u16).to_be_bytes());
        }
        IntForm::U32 => {
            out.push(Marker::U32.to_u8());
            out.extend_from_slice(&(v as u32).to_be_bytes());
        }
        IntForm::U64 | IntForm::Minimal => {
            out.push(Marker::U64.to_u8());
            out.extend_from_slice(&(v as u64).to_be_bytes());
        }
        IntForm::I8 => {
            out.push(Marker::I8.to_u8());
            out.push(v as i8 as u8);
        }
        IntForm::I16 => {
            out.push(Marker::I16.to_u8());
            out.extend_from_slice(&(v as i16).to_be_bytes());
        }
        IntForm::I32 => {
            out.push(Marker::I32.to_u8());
            out.extend_from_slice(&(v as i32).to_be_bytes());
        }
        IntForm::I64 => {
            out.push(Marker::I64.to_u8());
            out.extend_from_slice(&(v as i64).to_be_bytes());
        }
    }
}

/// Which header widths a kind of item supports.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bin,
    Container,
    Ext,
}

/// The header width actually written for `len` items of `kind` given the recorded width.
fn effective_width(kind: Kind, recorded: Width, len: usize) -> Width {
    let fits = |w: Width| match (kind, w) {
        (_, Width::Minimal) => false,
        (Kind::Str, Width::Fix) => len <= 31,
        (Kind::Container, Width::Fix) => len <= 15,
        (Kind::Ext, Width::Fix) => matches!(len, 1 | 2 | 4 | 8 | 16),
        (Kind::Bin, Width::Fix) => false,
        (Kind::Container, Width::W8) => false,
        (_, Width::W8) => len <= u8::MAX as usize,
        (_, Width::W16) => len <= u16::MAX as usize,
        (_, Width::W32) => len <= u32::MAX as usize,
    };
    if fits(recorded) {
        return recorded;
    }
    [Width::Fix, Width::W8, Width::W16, Width::W32]
        .into_iter()
        .find(|w| fits(*w))
        .expect("msgpack cannot express an item of more than u32::MAX bytes or elements")
}

fn write_len(out: &mut Vec<u8>, width: Width, len: usize) {
    match width {
        Width::W8 => out.push(len as u8),
        Width::W16 => out.extend_from_slice(&(len as u16).to_be_bytes()),
        Width::W32 => out.extend_from_slice(&(len as u32).to_be_bytes()),
        Width::Minimal | Width::Fix => {}
    }
}

fn write_str(out: &mut Vec<u8>, s: &Str) {
    let bytes = s.as_bytes();
    let width = effective_width(Kind::Str, s.width, bytes.len());
    out.push(match width {
        Width::Fix => Marker::FixStr(bytes.len() as u8).to_u8(),
        Width::W8 => Marker::Str8.to_u8(),
        Width::W16 => Marker::Str16.to_u8(),
        _ => Marker::Str32.to_u8(),
    });
    write_len(out, width, bytes.len());
    out.extend_from_slice(bytes);
}

/// Appends a string in minimal form (used by blob composition).
pub(crate) fn write_plain_str(out: &mut Vec<u8>, s: &str) {
    write_str(out, &Str::new(s));
}

fn write_bin(out: &mut Vec<u8>, b: &Bin) {
    let width = effective_width(Kind::Bin, b.width, b.data.len());
    out.push(match width {
        Width::W8 => Marker::Bin8.to_u8(),
        Width::W16 => Marker::Bin16.to_u8(),
        _ => Marker::Bin32.to_u8(),
    });
    write_len(out, width, b.data.len());
    out.extend_from_slice(&b.data);
}

/// Appends the minimal msgpack binary header for `len` bytes of data (used by blob
/// composition, which appends the data itself).
pub(crate) fn write_bin_header(out: &mut Vec<u8>, len: usize) {
    let width = effective_width(Kind::Bin, Width::Minimal, len);
    out.push(match width {
        Width::W8 => Marker::Bin8.to_u8(),
        Width::W16 => Marker::Bin16.to_u8(),
        _ => Marker::Bin32.to_u8(),
    });
    write_len(out, width, len);
}

/// Appends an array header for `len` elements.
pub(crate) fn write_array_header(out: &mut Vec<u8>, width: Width, len: usize) {
    let width = effective_width(Kind::Container, width, len);
    out.push(match width {
        Width::Fix => Marker::FixArray(len as u8).to_u8(),
        Width::W16 => Marker::Array16.to_u8(),
        _ => Marker::Array32.to_u8(),
    });
    write_len(out, width, len);
}

/// Appends a map header for `len` entries.
pub(crate) fn write_map_header(out: &mut Vec<u8>, width: Width, len: usize) {
    let width = effective_width(Kind::Container, width, len);
    out.push(match width {
        Width::Fix => Marker::FixMap(len as u8).to_u8(),
        Width::W16 => Marker::Map16.to_u8(),
        _ => Marker::Map32.to_u8(),
    });
    write_len(out, width, len);
}

fn write_array(out: &mut Vec<u8>, a: &Array) {
    write_array_header(out, a.width, a.items.len());
    for item in &a.items {
        write_value(out, item);
    }
}

fn write_map(out: &mut Vec<u8>, m: &Map) {
    write_map_header(out, m.width, m.entries.len());
    for (k, v) in &m.entries {
        write_value(out, k);
        write_value(out, v);
    }
}

fn write_ext(out: &mut Vec<u8>, e: &Ext) {
    let encoded;
    let payload: &[u8] = match &e.payload {
        ExtPayload::Raw(bytes) => bytes,
        ExtPayload::Value(v) => {
            encoded = encode_msgpack(v);
            &encoded
        }
    };
    let len = payload.len();
    let width = effective_width(Kind::Ext, e.width, len);
    out.push(match (width, len) {
        (Width::Fix, 1) => Marker::FixExt1.to_u8(),
        (Width::Fix, 2) => Marker::FixExt2.to_u8(),
        (Width::Fix, 4) => Marker::FixExt4.to_u8(),
        (Width::Fix, 8) => Marker::FixExt8.to_u8(),
        (Width::Fix, _) => Marker::FixExt16.to_u8(),
        (Width::W8, _) => Marker::Ext8.to_u8(),
        (Width::W16, _) => Marker::Ext16.to_u8(),
        _ => Marker::Ext32.to_u8(),
    });
    write_len(out, width, len);
    out.push(e.code as u8);
    out.extend_from_slice(payload);
}
