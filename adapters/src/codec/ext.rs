//! LangGraph's extension codes 0-7 (spec §2.3): typed read views over an [`Ext`] and builders
//! that produce exactly the arrays Python writes.
//!
//! A view never constructs anything named in a payload; it only says which Python callable
//! the payload names and where its arguments are.

use super::error::CodecError;
use super::value::{Ext, Map, Value};

/// The extension codes of `JsonPlusSerializer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtCode {
    /// 0: `module.name(arg)`.
    ConstructorSingleArg,
    /// 1: `module.name(*args)`.
    ConstructorPosArgs,
    /// 2: `module.name(**kwargs)`.
    ConstructorKwArgs,
    /// 3: `module.name.method(arg)` (only `datetime.fromisoformat` in practice).
    MethodSingleArg,
    /// 4: a pydantic v1 model (and anything with a callable `dict`).
    PydanticV1,
    /// 5: a pydantic v2 model (every LangChain message).
    PydanticV2,
    /// 6: a numpy array.
    NumpyArray,
    /// 7: a DeltaChannel snapshot, its value not wrapped in an array.
    DeltaSnapshot,
}

impl ExtCode {
    /// Every code, in numeric order.
    pub const ALL: [ExtCode; 8] = [
        ExtCode::ConstructorSingleArg,
        ExtCode::ConstructorPosArgs,
        ExtCode::ConstructorKwArgs,
        ExtCode::MethodSingleArg,
        ExtCode::PydanticV1,
        ExtCode::PydanticV2,
        ExtCode::NumpyArray,
        ExtCode::DeltaSnapshot,
    ];

    /// The code byte.
    pub fn code(self) -> i8 {
        self as i8
    }

    /// The known code for `code`, if any.
    pub fn from_code(code: i8) -> Option<ExtCode> {
        usize::try_from(code)
            .ok()
            .and_then(|i| ExtCode::ALL.get(i).copied())
    }
}

/// What an extension of a known code says, borrowed from the payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExtView<'a> {
    /// Code 0: `[module, name, arg]`.
    SingleArg {
        /// The Python module.
        module: &'a str,
        /// The class or function.
        name: &'a str,
        /// The argument.
        arg: &'a Value,
    },
    /// Code 1: `[module, name, [args...]]`.
    PosArgs {
        /// The Python module.
        module: &'a str,
        /// The class or function.
        name: &'a str,
        /// The positional arguments.
        args: &'a [Value],
    },
    /// Code 2: `[module, name, {kwargs}]`.
    KwArgs {
        /// The Python module.
        module: &'a str,
        /// The class or function.
        name: &'a str,
        /// The keyword arguments in order.
        kwargs: &'a Map,
    },
    /// Code 3: `[module, name, arg, method]`.
    Method {
        /// The Python module.
        module: &'a str,
        /// The class.
        name: &'a str,
        /// The argument.
        arg: &'a Value,
        /// The class method called with it.
        method: &'a str,
    },
    /// Code 4: `[module, name, fields]`.
    PydanticV1 {
        /// The Python module.
        module: &'a str,
        /// The model class.
        name: &'a str,
        /// The field map in order.
        fields: &'a Map,
    },
    /// Code 5: `[module, name, fields, "model_validate_json"]` (Python ignores the 4th
    /// element, so it is optional here).
    PydanticV2 {
        /// The Python module.
        module: &'a str,
        /// The model class.
        name: &'a str,
        /// The field map in order.
        fields: &'a Map,
        /// The 4th element, when present.
        method: Option<&'a Value>,
    },
    /// Code 6: `[dtype, shape, order, buffer]`.
    NumpyArray {
        /// The dtype string, e.g. `<f8`.
        dtype: &'a str,
        /// The dimensions.
        shape: &'a [Value],
        /// `C` or `F`.
        order: &'a str,
        /// The raw buffer.
        buffer: &'a [u8],
    },
    /// Code 7: the snapshot's value.
    DeltaSnapshot {
        /// The value.
        value: &'a Value,
    },
}

impl<'a> ExtView<'a> {
    /// `(module, name)` of the Python class or function the payload names, when it names one.
    pub fn class(&self) -> Option<(&'a str, &'a str)> {
        match *self {
            ExtView::SingleArg { module, name, .. }
            | ExtView::PosArgs { module, name, .. }
            | ExtView::KwArgs { module, name, .. }
            | ExtView::Method { module, name, .. }
            | ExtView::PydanticV1 { module, name, .. }
            | ExtView::PydanticV2 { module, name, .. } => Some((module, name)),
            ExtView::NumpyArray { .. } | ExtView::DeltaSnapshot { .. } => None,
        }
    }
}

impl Ext {
    /// The known code of this extension.
    pub fn known_code(&self) -> Option<ExtCode> {
        ExtCode::from_code(self.code)
    }

    /// A typed view of the payload; fails for unknown codes, raw payloads and payloads that do
    /// not have the code's layout.
    pub fn view(&self) -> Result<ExtView<'_>, CodecError> {
        const WHAT: &str = "extension payload";
        let code = self.known_code().ok_or_else(|| {
            CodecError::shape(WHAT, format!("unknown extension code {}", self.code))
        })?;
        let payload = self.payload_value().ok_or_else(|| {
            CodecError::shape(
                WHAT,
                format!("extension {} does not hold one msgpack document", self.code),
            )
        })?;
        if code == ExtCode::DeltaSnapshot {
            return Ok(ExtView::DeltaSnapshot { value: payload });
        }
        let items = payload.as_array().ok_or_else(|| {
            CodecError::shape(
                WHAT,
                format!(
                    "code {} needs an array, found {}",
                    self.code,
                    payload.kind()
                ),
            )
        })?;
        let expected: &[usize] = match code {
            ExtCode::MethodSingleArg | ExtCode::NumpyArray => &[4],
            ExtCode::PydanticV2 => &[3, 4],
            _ => &[3],
        };
        if !expected.contains(&items.len()) {
            return Err(CodecError::shape(
                WHAT,
                format!(
                    "code {} needs {expected:?} elements, found {}",
                    self.code,
                    items.len()
                ),
            ));
        }
        let text = |i: usize, field: &str| {
            items[i].as_str().ok_or_else(|| {
                CodecError::shape(WHAT, format!("code {}: {field} is not text", self.code))
            })
        };
        let map = |i: usize, field: &str| {
            items[i].as_map().ok_or_else(|| {
                CodecError::shape(WHAT, format!("code {}: {field} is not a map", self.code))
            })
        };
        Ok(match code {
            ExtCode::ConstructorSingleArg => ExtView::SingleArg {
                module: text(0, "module")?,
                name: text(1, "name")?,
                arg: &items[2],
            },
            ExtCode::ConstructorPosArgs => ExtView::PosArgs {
                module: text(0, "module")?,
                name: text(1, "name")?,
                args: items[2].as_array().ok_or_else(|| {
                    CodecError::shape(WHAT, "code 1: the arguments are not an array")
                })?,
            },
            ExtCode::ConstructorKwArgs => ExtView::KwArgs {
                module: text(0, "module")?,
                name: text(1, "name")?,
                kwargs: map(2, "kwargs")?,
            },
            ExtCode::MethodSingleArg => ExtView::Method {
                module: text(0, "module")?,
                name: text(1, "name")?,
                arg: &items[2],
                method: text(3, "method")?,
            },
            ExtCode::PydanticV1 => ExtView::PydanticV1 {
                module: text(0, "module")?,
                name: text(1, "name")?,
                fields: map(2, "fields")?,
            },
            ExtCode::PydanticV2 => ExtView::PydanticV2 {
                module: text(0, "module")?,
                name: text(1, "name")?,
                fields: map(2, "fields")?,
                method: items.get(3),
            },
            ExtCode::NumpyArray => ExtView::NumpyArray {
                dtype: text(0, "dtype")?,
                shape: items[1]
                    .as_array()
                    .ok_or_else(|| CodecError::shape(WHAT, "code 6: shape is not an array"))?,
                order: text(2, "order")?,
                buffer: match &items[3] {
                    Value::Bin(b) => &b.data,
                    other => {
                        return Err(CodecError::shape(
                            WHAT,
                            format!("code 6: buffer is {}, not bin", other.kind()),
                        ));
                    }
                },
            },
            ExtCode::DeltaSnapshot => unreachable!("handled above"),
        })
    }
}

/// Builders producing the extension values Python's encoder writes (spec §2.4).
pub mod build {
    use super::ExtCode;
    use crate::codec::value::{Ext, Map, Value};

    fn ext(code: ExtCode, items: Vec<Value>) -> Value {
        Value::Ext(Ext::new(code.code(), Value::array(items)))
    }

    /// Code 0 `[module, name, arg]`.
    pub fn single_arg(module: &str, name: &str, arg: Value) -> Value {
        ext(
            ExtCode::ConstructorSingleArg,
            vec![module.into(), name.into(), arg],
        )
    }

    /// Code 1 `[module, name, [args]]`.
    pub fn pos_args(module: &str, name: &str, args: Vec<Value>) -> Value {
        ext(
            ExtCode::ConstructorPosArgs,
            vec![module.into(), name.into(), Value::array(args)],
        )
    }

    /// Code 2 `[module, name, {kwargs}]` (dataclasses, namedtuples, `time`).
    pub fn kw_args(module: &str, name: &str, kwargs: Map) -> Value {
        ext(
            ExtCode::ConstructorKwArgs,
            vec![module.into(), name.into(), Value::Map(kwargs)],
        )
    }

    /// Code 3 `[module, name, arg, method]`.
    pub fn method_single_arg(module: &str, name: &str, arg: Value, method: &str) -> Value {
        ext(
            ExtCode::MethodSingleArg,
            vec![module.into(), name.into(), arg, method.into()],
        )
    }

    /// Code 4 `[module, name, fields]`.
    pub fn pydantic_v1(module: &str, name: &str, fields: Map) -> Value {
        ext(
            ExtCode::PydanticV1,
            vec![module.into(), name.into(), Value::Map(fields)],
        )
    }

    /// Code 5 `[module, name, fields, "model_validate_json"]`.
    pub fn pydantic_v2(module: &str, name: &str, fields: Map) -> Value {
        ext(
            ExtCode::PydanticV2,
            vec![
                module.into(),
                name.into(),
                Value::Map(fields),
                "model_validate_json".into(),
            ],
        )
    }

    /// Code 6 `[dtype, shape, order, buffer]`.
    pub fn numpy_array(dtype: &str, shape: &[u64], order: &str, buffer: Vec<u8>) -> Value {
        ext(
            ExtCode::NumpyArray,
            vec![
                dtype.into(),
                Value::array(shape.iter().map(|d| Value::from(*d)).collect()),
                order.into(),
                Value::bin(buffer),
            ],
        )
    }

    /// Code 7: the snapshot value itself.
    pub fn delta_snapshot(value: Value) -> Value {
        Value::Ext(Ext::new(ExtCode::DeltaSnapshot.code(), value))
    }
}
