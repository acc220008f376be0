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
    /// Where the current input ends: the buffer's end, or an extension payload's end while
    /// that payload is being read.
    end: usize,
}

/// One item header.
enum Item<'a> {
    /// A complete value.
    Done(Value),
    /// An array of `n` elements follows.
    Array { at: usize, n: usize, width: Width },
    /// A map of `n` entries follows.
    Map { at: usize, n: usize, width: Width },
    /// An extension of a known code, its payload still to parse.
    Ext {
        at: usize,
        code: i8,
        payload: &'a [u8],
        width: Width,
    },
}

/// An open container on the reader's explicit stack.
enum Frame<'a> {
    Array {
        items: Vec<Value>,
        remaining: usize,
        width: Width,
    },
    Map {
        entries: Vec<(Value, Value)>,
        key: Option<Value>,
        remaining: usize,
        width: Width,
    },
    Ext {
        code: i8,
        payload: &'a [u8],
        width: Width,
        /// Where the payload ends.
        end: usize,
        /// The input's end outside the payload.
        outer_end: usize,
    },
}

fn raw_ext(code: i8, payload: &[u8], width: Width) -> Value {
    Value::Ext(Ext {
        code,
        payload: ExtPayload::Raw(payload.to_vec()),
        width,
    })
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            end: buf.len(),
        }
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
        self.end - self.pos
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<(), CodecError> {
        if self.pos == self.end {
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

    /// Reads one item's header: a complete scalar, or the start of a container.
    fn item(&mut self) -> Result<Item<'a>, CodecError> {
        let at = self.pos;
        let marker = Marker::from_u8(self.u8()?);
        Ok(Item::Done(match marker {
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
            Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                let width = width_of(marker);
                let n = self.len(width, 1)?;
                self.str(at, n, width)?
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let width = width_of(marker);
                let n = self.len(width, 1)?;
                let data = self.take(n)?.to_vec();
                Value::Bin(Bin {
                    data,
                    width: recorded(width, minimal_bin(n)),
                })
            }
            Marker::FixArray(n) => return self.container(at, n as usize, Width::Fix, false),
            Marker::Array16 | Marker::Array32 => {
                let width = width_of(marker);
                let n = self.len(width, 1)?;
                return self.container(at, n, width, false);
            }
            Marker::FixMap(n) => return self.container(at, n as usize, Width::Fix, true),
            Marker::Map16 | Marker::Map32 => {
                let width = width_of(marker);
                let n = self.len(width, 2)?;
                return self.container(at, n, width, true);
            }
            Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32 => {
                let (code, payload, width) = self.ext_header(marker)?;
                let width = recorded(width, minimal_ext(payload.len()));
                if (0..=7).contains(&code) {
                    return Ok(Item::Ext {
                        at,
                        code,
                        payload,
                        width,
                    });
                }
                Value::Ext(Ext {
                    code,
                    payload: ExtPayload::Raw(payload.to_vec()),
                    width,
                })
            }
        }))
    }

    fn container(
        &mut self,
        at: usize,
        n: usize,
        width: Width,
        map: bool,
    ) -> Result<Item<'a>, CodecError> {
        self.check_len(at, n, if map { 2 } else { 1 })?;
        let width = recorded(width, minimal_container(n));
        Ok(if map {
            Item::Map { at, n, width }
        } else {
            Item::Array { at, n, width }
        })
    }

    fn str(&mut self, at: usize, n: usize, width: Width) -> Result<Value, CodecError> {
        self.check_len(at, n, 1)?;
        let bytes = self.take(n)?.to_vec();
        Ok(Value::Str(Str::from_raw(
            bytes,
            recorded(width, minimal_str(n)),
        )))
    }

    /// Reads one value; `depth` is the number of enclosing containers.
    ///
    /// The reader is iterative: containers and extension payloads live on an explicit stack,
    /// so neither deep input nor a debug build's large frames can exhaust the thread stack.
    /// An extension of a known code whose payload is not exactly one well-formed document is
    /// kept raw: the error inside it unwinds only to that extension.
    pub(crate) fn value(&mut self, depth: usize) -> Result<Value, CodecError> {
        let mut stack: Vec<Frame<'a>> = Vec::new();
        loop {
            let level = depth + stack.len();
            let read = self.item().and_then(|item| {
                if !matches!(item, Item::Done(_)) {
                    let at = match &item {
                        Item::Array { at, .. } | Item::Map { at, .. } | Item::Ext { at, .. } => *at,
                        Item::Done(_) => 0,
                    };
                    self.enter(level, at)?;
                }
                Ok(item)
            });
            let mut done = match read {
                Ok(Item::Done(v)) => v,
                Ok(Item::Array { n: 0, width, .. }) => Value::Array(Array {
                    items: Vec::new(),
                    width,
                }),
                Ok(Item::Map { n: 0, width, .. }) => Value::Map(Map {
                    entries: Vec::new(),
                    width,
                }),
                Ok(Item::Array { n, width, .. }) => {
                    stack.push(Frame::Array {
                        items: Vec::with_capacity(n),
                        remaining: n,
                        width,
                    });
                    continue;
                }
                Ok(Item::Map { n, width, .. }) => {
                    stack.push(Frame::Map {
                        entries: Vec::with_capacity(n),
                        key: None,
                        remaining: n,
                        width,
                    });
                    continue;
                }
                Ok(Item::Ext {
                    code,
                    payload,
                    width,
                    ..
                }) => {
                    // Read the payload in place: the payload's end becomes the input's end.
                    let outer_end = self.end;
                    let end = self.pos;
                    self.pos -= payload.len();
                    self.end = end;
                    stack.push(Frame::Ext {
                        code,
                        payload,
                        width,
                        end,
                        outer_end,
                    });
                    continue;
                }
                Err(e) => {
                    // Unwind to the innermost extension, which becomes raw; without one the
                    // error is the caller's.
                    let Some(i) = stack.iter().rposition(|f| matches!(f, Frame::Ext { .. })) else {
                        return Err(e);
                    };
                    stack.truncate(i + 1);
                    let Some(Frame::Ext {
                        code,
                        payload,
                        width,
                        end,
                        outer_end,
                    }) = stack.pop()
                    else {
                        return Err(e);
                    };
                    self.pos = end;
                    self.end = outer_end;
                    raw_ext(code, payload, width)
                }
            };
            // Attach the finished value to its parents, closing every parent it completes.
            loop {
                match stack.last_mut() {
                    None => return Ok(done),
                    Some(Frame::Array {
                        items, remaining, ..
                    }) => {
                        items.push(done);
                        *remaining -= 1;
                        if *remaining > 0 {
                            break;
                        }
                    }
                    Some(Frame::Map {
                        entries,
                        key,
                        remaining,
                        ..
                    }) => match key.take() {
                        None => {
                            *key = Some(done);
                            break;
                        }
                        Some(k) => {
                            entries.push((k, done));
                            *remaining -= 1;
                            if *remaining > 0 {
                                break;
                            }
                        }
                    },
                    Some(Frame::Ext {
                        code,
                        payload,
                        width,
                        end,
                        outer_end,
                    }) => {
                        let (code, payload, width, end) = (*code, *payload, *width, *end);
                        let complete = self.pos == end;
                        self.pos = end;
                        self.end = *outer_end;
                        stack.pop();
                        done = if complete {
                            Value::Ext(Ext {
                                code,
                                payload: ExtPayload::Value(Box::new(done)),
                                width,
                            })
                        } else {
                            raw_ext(code, payload, width)
                        };
                        continue;
                    }
                }
                done = match stack.pop() {
                    Some(Frame::Array { items, width, .. }) => Value::Array(Array { items, width }),
                    Some(Frame::Map { entries, width, .. }) => Value::Map(Map { entries, width }),
                    // Extensions close above; the stack is not empty here.
                    Some(Frame::Ext { .. }) | None => {
                        return Err(CodecError::shape("msgpack reader", "unbalanced stack"));
                    }
                };
            }
        }
    }

    /// Skips one value, checking its framing; extension payloads are skipped whole.
    /// Iterative like [`Reader::value`].
    pub(crate) fn skip(&mut self, depth: usize) -> Result<(), CodecError> {
        // Items still to skip at each open container level.
        let mut pending: Vec<usize> = Vec::new();
        loop {
            let at = self.pos;
            let marker = Marker::from_u8(self.u8()?);
            let fixed = match marker {
                Marker::Null
                | Marker::False
                | Marker::True
                | Marker::FixPos(_)
                | Marker::FixNeg(_) => 0,
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
                Marker::FixArray(_)
                | Marker::Array16
                | Marker::Array32
                | Marker::FixMap(_)
                | Marker::Map16
                | Marker::Map32 => {
                    let (n, unit) = match marker {
                        Marker::FixArray(n) => (n as usize, 1),
                        Marker::FixMap(n) => (n as usize, 2),
                        Marker::Array16 | Marker::Array32 => (self.len(width_of(marker), 1)?, 1),
                        _ => (self.len(width_of(marker), 2)?, 2),
                    };
                    self.check_len(at, n, unit)?;
                    self.enter(depth + pending.len(), at)?;
                    if n > 0 {
                        pending.push(n * unit);
                        continue;
                    }
                    0
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
                    0
                }
            };
            self.take(fixed)?;
            // One item is complete; it may complete its parents in turn.
            loop {
                match pending.last_mut() {
                    None => return Ok(()),
                    Some(n) => {
                        *n -= 1;
                        if *n > 0 {
                            break;
                        }
                        pending.pop();
                    }
                }
            }
        }
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
