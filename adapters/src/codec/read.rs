//! The msgpack reader: strict framing, recorded forms, bounded work.
//!
//! Hostile input cannot make the reader panic, allocate more than a small multiple of the
//! input size, or recurse without bound: every declared length is checked against the bytes
//! that remain before anything is reserved (an array of `n` elements needs at least `n` more
//! bytes, a map `2n`), and nesting (arrays, maps and extension payloads) is limited to
//! [`MAX_DEPTH`] levels.

use rmp::Marker;

use super::error::CodecError;
use super::value::{Array, Bin, Ext, ExtPayload, Int, IntForm, Map, Str, Value, Width};

/// The deepest nesting of arrays, maps and extension payloads the reader accepts. LangGraph
/// states are shallow (a message inside a list inside a map is depth 4); 512 leaves room for
/// any real payload while keeping recursion far from the stack limit.
pub const MAX_DEPTH: usize = 512;

/// Decodes exactly one msgpack document; trailing bytes are an error.
pub fn decode_msgpack(bytes: &[u8]) -> Result<Value, CodecError> {
    let mut reader = Reader::new(bytes);
    let value = reader.value(0)?;
    reader.finish()?;
    Ok(value)
}

/// Checks that `bytes` is exactly one well-formed msgpack document without building a tree
/// (extension payloads are not looked into).
pub fn validate_msgpack(bytes: &[u8]) -> Result<(), CodecError> {
    let mut reader = Reader::new(bytes);
    reader.skip(0)?;
    reader.finish()
}

/// A cursor over msgpack bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// The current offset.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The bytes from `start` to the current offset.
    pub(crate) fn since(&self, start: usize) -> &'a [u8] {
        &self.buf[start..self.pos]
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<(), CodecError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(CodecError::TrailingBytes {
                offset: self.pos,
                count: self.remaining(),
            })
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.remaining() {
            return Err(CodecError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let slice = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn be_u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn be_u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn be_u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads a declared length of `width` and checks that `unit * len` bytes remain.
    fn len(&mut self, width: Width, unit: usize) -> Result<usize, CodecError> {
        let at = self.pos;
        let len = match width {
            Width::W8 => self.u8()? as usize,
            Width::W16 => self.be_u16()? as usize,
            _ => self.be_u32()? as usize,
        };
        self.check_len(at, len, unit)?;
        Ok(len)
    }

    fn check_len(&self, at: usize, len: usize, unit: usize) -> Result<(), CodecError> {
        if len.saturating_mul(unit) > self.remaining() {
            return Err(CodecError::LengthExceedsInput {
                offset: at,
                declared: len,
                remaining: self.remaining(),
            });
        }
        Ok(())
    }

    fn enter(&self, depth: usize, at: usize) -> Result<usize, CodecError> {
        if depth >= MAX_DEPTH {
            return Err(CodecError::TooDeep {
                offset: at,
                max: MAX_DEPTH,
            });
        }
        Ok(depth + 1)
    }

    /// Reads one value; `depth` is the number of enclosing containers.
    pub(crate) fn value(&mut self, depth: usize) -> Result<Value, CodecError> {
        let at = self.pos;
        let marker = Marker::from_u8(self.u8()?);
        Ok(match marker {
            Marker::Null => Value::Nil,
            Marker::False => Value::Bool(false),
            Marker::True => Value::Bool(true),
            Marker::Reserved => return Err(CodecError::ReservedMarker { offset: at }),
            Marker::FixPos(v) => int(v as i128, IntForm::FixPos),
            Marker::FixNeg(v) => int(v as i128, IntForm::FixNeg),
            Marker::U8 => int(self.u8()? as i128, IntForm::U8),
            Marker::U16 => int(self.be_u16()? as i128, IntForm::U16),
            Marker::U32 => int(self.be_u32()? as i128, IntForm::U32),
            Marker::U64 => int(self.be_u64()? as i128, IntForm::U64),
            Marker::I8 => int(self.u8()? as i8 as i128, IntForm::I8),
            Marker::I16 => int(self.be_u16()? as i16 as i128, IntForm::I16),
            Marker::I32 => int(self.be_u32()? as i32 as i128, IntForm::I32),
            Marker::I64 => int(self.be_u64()? as i64 as i128, IntForm::I64),
            Marker::F32 => Value::F32(f32::from_bits(self.be_u32()?)),
            Marker::F64 => Value::F64(f64::from_bits(self.be_u64()?)),
            Marker::FixStr(n) => self.str(at, n as usize, Width::Fix)?,
            Marker::Str8 => self.str_with(Width::W8)?,
            Marker::Str16 => self.str_with(Width::W16)?,
            Marker::Str32 => self.str_with(Width::W32)?,
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let width = width_of(marker);
                let n = self.len(width, 1)?;
                let data = self.take(n)?.to_vec();
                Value::Bin(Bin {
                    data,
                    width: recorded(width, minimal_bin(n)),
                })
            }
            Marker::FixArray(n) => self.array_items(at, n as usize, Width::Fix, depth)?,
            Marker::Array16 | Marker::Array32 => {
                let width = width_of(marker);
                let n = self.len(width, 1)?;
                self.array_items(at, n, width, depth)?
            }
            Marker::FixMap(n) => self.map_entries(at, n as usize, Width::Fix, depth)?,
            Marker::Map16 | Marker::Map32 => {
                let width = width_of(marker);
                let n = self.len(width, 2)?;
                self.map_entries(at, n, width, depth)?
            }
            Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32 => self.ext(at, marker, depth)?,
        })
    }

    fn str_with(&mut self, width: Width) -> Result<Value, CodecError> {
        let at = self.pos;
        let n = self.len(width, 1)?;
        self.str(at, n, width)
    }

    fn str(&mut self, at: usize, n: usize, width: Width) -> Result<Value, CodecError> {
        self.check_len(at, n, 1)?;
        let bytes = self.take(n)?.to_vec();
        let minimal = minimal_str(n);
        Ok(Value::Str(Str::from_raw(bytes, recorded(width, minimal))))
    }

    fn array_items(
        &mut self,
        at: usize,
        n: usize,
        width: Width,
        depth: usize,
    ) -> Result<Value, CodecError> {
        self.check_len(at, n, 1)?;
        let inner = self.enter(depth, at)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.value(inner)?);
        }
        Ok(Value::Array(Array {
            items,
            width: recorded(width, minimal_container(n)),
        }))
    }

    fn map_entries(
        &mut self,
        at: usize,
        n: usize,
        width: Width,
        depth: usize,
    ) -> Result<Value, CodecError> {
        self.check_len(at, n, 2)?;
        let inner = self.enter(depth, at)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.value(inner)?;
            let v = self.value(inner)?;
            entries.push((k, v));
        }
        Ok(Value::Map(Map {
            entries,
            width: recorded(width, minimal_container(n)),
        }))
    }

    /// Reads an extension header and returns `(code, payload, width)`.
    fn ext_header(&mut self, marker: Marker) -> Result<(i8, &'a [u8], Width), CodecError> {
        let (n, width) = match marker {
            Marker::FixExt1 => (1, Width::Fix),
            Marker::FixExt2 => (2, Width::Fix),
            Marker::FixExt4 => (4, Width::Fix),
            Marker::FixExt8 => (8, Width::Fix),
            Marker::FixExt16 => (16, Width::Fix),
            other => {
                let width = width_of(other);
                (self.len(width, 1)?, width)
            }
        };
        // The type byte comes before the payload.
        let code = self.u8()? as i8;
        let payload = self.take(n)?;
        Ok((code, payload, width))
    }

    fn ext(&mut self, at: usize, marker: Marker, depth: usize) -> Result<Value, CodecError> {
        let inner = self.enter(depth, at)?;
        let (code, payload, width) = self.ext_header(marker)?;
        let width = recorded(width, minimal_ext(payload.len()));
        let payload = if (0..=7).contains(&code) {
            let mut sub = Reader::new(payload);
            match sub.value(inner).and_then(|v| sub.finish().map(|_| v)) {
                Ok(v) => ExtPayload::Value(Box::new(v)),
                Err(_) => ExtPayload::Raw(payload.to_vec()),
            }
        } else {
            ExtPayload::Raw(payload.to_vec())
        };
        Ok(Value::Ext(Ext {
            code,
            payload,
            width,
        }))
    }

    /// Skips one value, checking its framing; extension payloads are skipped whole.
    pub(crate) fn skip(&mut self, depth: usize) -> Result<(), CodecError> {
        let at = self.pos;
        let marker = Marker::from_u8(self.u8()?);
        let fixed = match marker {
            Marker::Null | Marker::False | Marker::True | Marker::FixPos(_) | Marker::FixNeg(_) => {
                0
            }
            Marker::Reserved => return Err(CodecError::ReservedMarker { offset: at }),
            Marker::U8 | Marker::I8 => 1,
            Marker::U16 | Marker::I16 => 2,
            Marker::U32 | Marker::I32 | Marker::F32 => 4,
            Marker::U64 | Marker::I64 | Marker::F64 => 8,
            Marker::FixStr(n) => n as usize,
            Marker::Str8
            | Marker::Str16
            | Marker::Str32
            | Marker::Bin8
            | Marker::Bin16
            | Marker::Bin32 => self.len(width_of(marker), 1)?,
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                let n = match marker {
                    Marker::FixArray(n) => n as usize,
                    other => self.len(width_of(other), 1)?,
                };
                self.check_len(at, n, 1)?;
                let inner = self.enter(depth, at)?;
                for _ in 0..n {
                    self.skip(inner)?;
                }
                return Ok(());
            }
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                let n = match marker {
                    Marker::FixMap(n) => n as usize,
                    other => self.len(width_of(other), 2)?,
                };
                self.check_len(at, n, 2)?;
                let inner = self.enter(depth, at)?;
                for _ in 0..2 * n {
                    self.skip(inner)?;
                }
                return Ok(());
            }
            Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32 => {
                self.ext_header(marker)?;
                return Ok(());
            }
        };
        self.take(fixed)?;
        Ok(())
    }

    /// Reads a map header and returns the entry count (used by blob decomposition).
    pub(crate) fn map_header(&mut self) -> Result<usize, CodecError> {
        let at = self.pos;
        let marker = Marker::from_u8(self.u8()?);
        let n = match marker {
            Marker::FixMap(n) => n as usize,
            Marker::Map16 | Marker::Map32 => self.len(width_of(marker), 2)?,
            _ => {
                return Err(CodecError::shape(
                    "msgpack document",
                    format!("expected a map at offset {at}"),
                ));
            }
        };
        self.check_len(at, n, 2)?;
        Ok(n)
    }
}

fn int(value: i128, form: IntForm) -> Value {
    let minimal = IntForm::minimal_for(value);
    let form = if minimal == Some(form) {
        IntForm::Minimal
    } else {
        form
    };
    // Every marker's range is inside msgpack's range and `form` fits by construction.
    Value::Int(Int::with_form(value, form).unwrap_or_else(|| Int::from(value as i64)))
}

fn width_of(marker: Marker) -> Width {
    match marker {
        Marker::Str8 | Marker::Bin8 | Marker::Ext8 => Width::W8,
        Marker::Str16 | Marker::Bin16 | Marker::Ext16 | Marker::Array16 | Marker::Map16 => {
            Width::W16
        }
        _ => Width::W32,
    }
}

fn recorded(written: Width, minimal: Width) -> Width {
    if written == minimal {
        Width::Minimal
    } else {
        written
    }
}

fn minimal_str(n: usize) -> Width {
    match n {
        0..=31 => Width::Fix,
        32..=0xff => Width::W8,
        0x100..=0xffff => Width::W16,
        _ => Width::W32,
    }
}

fn minimal_bin(n: usize) -> Width {
    match n {
        0..=0xff => Width::W8,
        0x100..=0xffff => Width::W16,
        _ => Width::W32,
    }
}

fn minimal_container(n: usize) -> Width {
    match n {
        0..=15 => Width::Fix,
        16..=0xffff => Width::W16,
        _ => Width::W32,
    }
}

fn minimal_ext(n: usize) -> Width {
    match n {
        1 | 2 | 4 | 8 | 16 => Width::Fix,
        0..=0xff => Width::W8,
        0x100..=0xffff => Width::W16,
        _ => Width::W32,
    }
}
