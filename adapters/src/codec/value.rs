//! The msgpack value tree.
//!
//! Unlike `rmpv::Value`, this tree remembers *how* each item was written whenever that differs
//! from the minimal form LangGraph's encoder (ormsgpack) produces: an integer written as
//! `uint16` although it fits a fixint, a string with a `str8` header although it is short, a
//! `float32`, an `ext8` header where a `fixext` would do. Re-encoding a decoded tree therefore
//! gives back the exact input bytes, which is what lets Waymark store, inspect and forward
//! payloads written by Python without ever changing them.
//!
//! Forms are hints, never invariants: the decoder records [`Width::Minimal`] /
//! [`IntForm::Minimal`] when the input used the minimal form, so a tree built in Rust and a
//! tree decoded from Python's bytes compare equal, and a tree edited after decoding (a string
//! grown past its recorded header width) silently falls back to the minimal form instead of
//! producing invalid bytes.

use std::fmt;

/// How the length header of a string, binary, array, map or extension was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Width {
    /// The smallest header that fits (what ormsgpack writes). Decoded canonical items carry
    /// this form.
    #[default]
    Minimal,
    /// The length folded into the marker (`fixstr`, `fixarray`, `fixmap`, `fixext N`), used
    /// only when the minimal form would have been wider.
    Fix,
    /// A one-byte length (`str8`, `bin8`, `ext8`).
    W8,
    /// A two-byte length (`str16`, `bin16`, `array16`, `map16`, `ext16`).
    W16,
    /// A four-byte length (`str32`, `bin32`, `array32`, `map32`, `ext32`).
    W32,
}

/// How an integer was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IntForm {
    /// The smallest form that fits, unsigned forms for non-negative values (ormsgpack's rule).
    #[default]
    Minimal,
    /// Positive fixint `00`-`7f`.
    FixPos,
    /// Negative fixint `e0`-`ff`.
    FixNeg,
    /// `cc`.
    U8,
    /// `cd`.
    U16,
    /// `ce`.
    U32,
    /// `cf`.
    U64,
    /// `d0`.
    I8,
    /// `d1`.
    I16,
    /// `d2`.
    I32,
    /// `d3`.
    I64,
}

impl IntForm {
    /// The smallest form ormsgpack uses for `value`, or `None` outside `[-2^63, 2^64-1]`.
    pub fn minimal_for(value: i128) -> Option<IntForm> {
        Some(match value {
            0..=0x7f => IntForm::FixPos,
            0x80..=0xff => IntForm::U8,
            0x100..=0xffff => IntForm::U16,
            0x1_0000..=0xffff_ffff => IntForm::U32,
            v if v >= 0 && v <= u64::MAX as i128 => IntForm::U64,
            -32..=-1 => IntForm::FixNeg,
            -128..=-33 => IntForm::I8,
            -32768..=-129 => IntForm::I16,
            v if v >= i32::MIN as i128 && v < 0 => IntForm::I32,
            v if v >= i64::MIN as i128 && v < 0 => IntForm::I64,
            _ => return None,
        })
    }

    /// True when `value` can be written in this form.
    pub fn fits(self, value: i128) -> bool {
        match self {
            IntForm::Minimal => IntForm::minimal_for(value).is_some(),
            IntForm::FixPos => (0..=0x7f).contains(&value),
            IntForm::FixNeg => (-32..=-1).contains(&value),
            IntForm::U8 => (0..=u8::MAX as i128).contains(&value),
            IntForm::U16 => (0..=u16::MAX as i128).contains(&value),
            IntForm::U32 => (0..=u32::MAX as i128).contains(&value),
            IntForm::U64 => (0..=u64::MAX as i128).contains(&value),
            IntForm::I8 => (i8::MIN as i128..=i8::MAX as i128).contains(&value),
            IntForm::I16 => (i16::MIN as i128..=i16::MAX as i128).contains(&value),
            IntForm::I32 => (i32::MIN as i128..=i32::MAX as i128).contains(&value),
            IntForm::I64 => (i64::MIN as i128..=i64::MAX as i128).contains(&value),
        }
    }
}

/// A msgpack integer: any value in `[-2^63, 2^64-1]` plus the form it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Int {
    value: i128,
    form: IntForm,
}

impl Int {
    /// An integer in minimal form; `None` outside msgpack's range `[-2^63, 2^64-1]`.
    pub fn new(value: i128) -> Option<Int> {
        IntForm::minimal_for(value).map(|_| Int {
            value,
            form: IntForm::Minimal,
        })
    }

    /// An integer written in `form`; `None` when the value is out of msgpack's range or does
    /// not fit the form.
    pub fn with_form(value: i128, form: IntForm) -> Option<Int> {
        (IntForm::minimal_for(value).is_some() && form.fits(value)).then_some(Int { value, form })
    }

    /// The value.
    pub fn value(self) -> i128 {
        self.value
    }

    /// The recorded form.
    pub fn form(self) -> IntForm {
        self.form
    }

    /// The value as `i64`, when it fits.
    pub fn as_i64(self) -> Option<i64> {
        i64::try_from(self.value).ok()
    }

    /// The value as `u64`, when it fits.
    pub fn as_u64(self) -> Option<u64> {
        u64::try_from(self.value).ok()
    }
}

impl From<i64> for Int {
    fn from(v: i64) -> Self {
        Int {
            value: v as i128,
            form: IntForm::Minimal,
        }
    }
}

impl From<u64> for Int {
    fn from(v: u64) -> Self {
        Int {
            value: v as i128,
            form: IntForm::Minimal,
        }
    }
}

/// A msgpack string. Kept as bytes because msgpack does not force UTF-8 and a stored payload
/// must come back unchanged even when it is not valid text.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Str {
    bytes: Vec<u8>,
    /// How the header was written.
    pub width: Width,
}

impl Str {
    /// A string in minimal form.
    pub fn new(text: impl Into<String>) -> Str {
        Str {
            bytes: text.into().into_bytes(),
            width: Width::Minimal,
        }
    }

    /// A string from raw bytes (which need not be UTF-8) with a recorded header width.
    pub fn from_raw(bytes: Vec<u8>, width: Width) -> Str {
        Str { bytes, width }
    }

    /// The text, when the bytes are valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Gives back the raw bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => write!(f, "{s:?}")?,
            None => write!(f, "Str(invalid utf-8 {:02x?})", self.bytes)?,
        }
        if self.width != Width::Minimal {
            write!(f, "@{:?}", self.width)?;
        }
        Ok(())
    }
}

/// A msgpack binary (`bin8/16/32`): Python `bytes` inside a structure.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Bin {
    /// The bytes.
    pub data: Vec<u8>,
    /// How the header was written.
    pub width: Width,
}

/// A msgpack array: Python `list` and `tuple`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Array {
    /// The elements.
    pub items: Vec<Value>,
    /// How the header was written.
    pub width: Width,
}

/// A msgpack map: Python `dict`, in insertion order, duplicates and non-string keys kept.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map {
    /// Key/value pairs in written order.
    pub entries: Vec<(Value, Value)>,
    /// How the header was written.
    pub width: Width,
}

impl Map {
    /// An empty map in minimal form.
    pub fn new() -> Map {
        Map::default()
    }

    /// The value of string key `key`; the last one wins when a key repeats (Python `dict`
    /// semantics).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Appends a string-keyed entry (builder style).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Map {
        self.push(key, value);
        self
    }

    /// Appends a string-keyed entry.
    pub fn push(&mut self, key: &str, value: impl Into<Value>) {
        self.entries.push((Value::from(key), value.into()));
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// String keys and values in order; entries whose key is not valid text are skipped.
    pub fn str_entries(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries
            .iter()
            .filter_map(|(k, v)| k.as_str().map(|k| (k, v)))
    }
}

/// What an extension carries.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtPayload {
    /// One complete msgpack document (every LangGraph extension, codes 0-7).
    Value(Box<Value>),
    /// Bytes kept as they are: unknown extension codes, and payloads of known codes that are
    /// not exactly one well-formed msgpack document.
    Raw(Vec<u8>),
}

/// A msgpack extension (type code plus payload).
#[derive(Debug, Clone, PartialEq)]
pub struct Ext {
    /// The extension type code (LangGraph uses 0-7, see [`super::ExtCode`]).
    pub code: i8,
    /// The payload.
    pub payload: ExtPayload,
    /// How the header was written; [`Width::Fix`] means `fixext N`.
    pub width: Width,
}

impl Ext {
    /// An extension whose payload is a msgpack document, minimal header.
    pub fn new(code: i8, payload: Value) -> Ext {
        Ext {
            code,
            payload: ExtPayload::Value(Box::new(payload)),
            width: Width::Minimal,
        }
    }

    /// An extension with an opaque payload, minimal header.
    pub fn raw(code: i8, payload: Vec<u8>) -> Ext {
        Ext {
            code,
            payload: ExtPayload::Raw(payload),
            width: Width::Minimal,
        }
    }

    /// The parsed payload document, when there is one.
    pub fn payload_value(&self) -> Option<&Value> {
        match &self.payload {
            ExtPayload::Value(v) => Some(v),
            ExtPayload::Raw(_) => None,
        }
    }
}

/// A msgpack value with its encoding details.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `c0` (Python `None`).
    Nil,
    /// `c2` / `c3`.
    Bool(bool),
    /// Any integer form.
    Int(Int),
    /// `ca` (ormsgpack never writes it, but other writers may).
    F32(f32),
    /// `cb` (every Python float).
    F64(f64),
    /// A string.
    Str(Str),
    /// A binary.
    Bin(Bin),
    /// An array.
    Array(Array),
    /// A map.
    Map(Map),
    /// An extension.
    Ext(Ext),
}

impl Value {
    /// The text of a string value that is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => s.as_str(),
            _ => None,
        }
    }

    /// An integer value as `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => i.as_i64(),
            _ => None,
        }
    }

    /// A boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Elements of an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(&a.items),
            _ => None,
        }
    }

    /// A map.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// An extension.
    pub fn as_ext(&self) -> Option<&Ext> {
        match self {
            Value::Ext(e) => Some(e),
            _ => None,
        }
    }

    /// True for nil.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// An array of values in minimal form.
    pub fn array(items: Vec<Value>) -> Value {
        Value::Array(Array {
            items,
            width: Width::Minimal,
        })
    }

    /// A binary in minimal form.
    pub fn bin(data: Vec<u8>) -> Value {
        Value::Bin(Bin {
            data,
            width: Width::Minimal,
        })
    }

    /// A short name of the msgpack kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::F32(_) => "float32",
            Value::F64(_) => "float64",
            Value::Str(_) => "str",
            Value::Bin(_) => "bin",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Ext(_) => "ext",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(Str::new(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(Str::new(s))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(Int::from(v))
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(Int::from(v as i64))
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(Int::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}

impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Value::Map(m)
    }
}

impl From<Ext> for Value {
    fn from(e: Ext) -> Self {
        Value::Ext(e)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::array(items)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Nil, Into::into)
    }
}
