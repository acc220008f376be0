//! Property tests: random value trees (with random, possibly non-minimal forms) re-encode
//! byte-identically after a decode; random and mutated bytes never panic the decoders, and
//! whatever they accept re-encodes to exactly the input.

mod codec_support;

use codec_support::hex;
use indexmap::IndexMap;
use proptest::collection::vec;
use proptest::prelude::*;
use waymark_adapters::codec::{
    Array, Bin, Ext, ExtPayload, Int, IntForm, Map, Str, Value, Width, compose_checkpoint_blob,
    compose_checkpoint_blob_ordered, decode, decode_msgpack, decompose_checkpoint_blob,
    decompose_checkpoint_blob_ordered, encode, encode_msgpack, python_float_repr,
    python_json_bytes, validate_msgpack,
};
use waymark_domain::checkpoint::{ChannelVersion, Checkpoint, TypedValue};
use waymark_domain::{ChannelName, CheckpointId};

fn width() -> impl Strategy<Value = Width> {
    prop_oneof![
        4 => Just(Width::Minimal),
        1 => Just(Width::Fix),
        1 => Just(Width::W8),
        1 => Just(Width::W16),
        1 => Just(Width::W32),
    ]
}

fn int_form() -> impl Strategy<Value = IntForm> {
    prop_oneof![
        4 => Just(IntForm::Minimal),
        1 => prop::sample::select(vec![
            IntForm::FixPos,
            IntForm::FixNeg,
            IntForm::U8,
            IntForm::U16,
            IntForm::U32,
            IntForm::U64,
            IntForm::I8,
            IntForm::I16,
            IntForm::I32,
            IntForm::I64,
        ]),
    ]
}

fn int(canonical: bool) -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        (-40i128..300),
        any::<i64>().prop_map(i128::from),
        any::<u64>().prop_map(i128::from),
        any::<i16>().prop_map(i128::from),
    ];
    (value, int_form()).prop_map(move |(v, form)| {
        let form = if canonical { IntForm::Minimal } else { form };
        Value::Int(Int::with_form(v, form).unwrap_or_else(|| Int::new(v).unwrap()))
    })
}

/// Leaves; `canonical` keeps minimal forms, comparable floats and only opaque unknown
/// extensions, so that `decode(encode(v)) == v` holds exactly.
fn leaf(canonical: bool) -> BoxedStrategy<Value> {
    let w = move || width().prop_map(move |w| if canonical { Width::Minimal } else { w });
    let floats = if canonical {
        prop_oneof![
            (-1e300f64..1e300).prop_map(Value::F64),
            (-1e30f32..1e30).prop_map(Value::F32)
        ]
        .boxed()
    } else {
        prop_oneof![
            any::<f64>().prop_map(Value::F64),
            any::<f32>().prop_map(Value::F32)
        ]
        .boxed()
    };
    prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        int(canonical),
        floats,
        (".{0,40}", w()).prop_map(|(s, w)| Value::Str(Str::from_raw(s.into_bytes(), w))),
        (vec(any::<u8>(), 0..40), w()).prop_map(|(b, w)| Value::Str(Str::from_raw(b, w))),
        (vec(any::<u8>(), 0..300), w()).prop_map(|(data, width)| Value::Bin(Bin { data, width })),
        (8i8..=127, vec(any::<u8>(), 0..20), w()).prop_map(|(code, b, width)| Value::Ext(Ext {
            code,
            payload: ExtPayload::Raw(b),
            width,
        })),
        (-128i8..0, vec(any::<u8>(), 0..20), w()).prop_map(|(code, b, width)| Value::Ext(Ext {
            code,
            payload: ExtPayload::Raw(b),
            width,
        })),
    ]
    .boxed()
}

fn tree(canonical: bool) -> impl Strategy<Value = Value> {
    let w = move || width().prop_map(move |w| if canonical { Width::Minimal } else { w });
    leaf(canonical).prop_recursive(6, 96, 20, move |inner| {
        prop_oneof![
            (vec(inner.clone(), 0..20), w())
                .prop_map(|(items, width)| Value::Array(Array { items, width })),
            (vec((inner.clone(), inner.clone()), 0..8), w())
                .prop_map(|(entries, width)| Value::Map(Map { entries, width })),
            (0i8..=7, inner, w()).prop_map(|(code, v, width)| Value::Ext(Ext {
                code,
                payload: ExtPayload::Value(Box::new(v)),
                width,
            })),
        ]
    })
}

/// Mutations of a valid encoding: flip, overwrite, truncate, insert, or plant a huge length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    HugeLength(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), vec(any::<u8>(), 1..6)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (
            any::<usize>(),
            prop::sample::select(vec![
                0xc6u8, 0xc9, 0xdb, 0xdd, 0xdf, 0xc5, 0xc8, 0xda, 0xdc, 0xde
            ])
        )
            .prop_map(|(i, m)| Mutation::HugeLength(i, m)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let n = bytes.len().max(1);
        match m {
            Mutation::Flip(i, mask) => {
                if let Some(b) = bytes.get_mut(i % n) {
                    *b ^= mask;
                }
            }
            Mutation::Set(i, v) => {
                if let Some(b) = bytes.get_mut(i % n) {
                    *b = *v;
                }
            }
            Mutation::Truncate(i) => bytes.truncate(i % n),
            Mutation::Insert(i, extra) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, extra.iter().copied());
            }
            Mutation::HugeLength(i, marker) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, [*marker, 0xff, 0xff, 0xff, 0xff]);
            }
        }
    }
    bytes
}

/// Whatever the decoder accepts must re-encode to exactly the input.
fn assert_accepted_inputs_round_trip(bytes: &[u8]) {
    if let Ok(v) = decode_msgpack(bytes) {
        assert_eq!(encode_msgpack(&v), bytes, "accepted {}", hex(bytes));
        assert!(validate_msgpack(bytes).is_ok());
    }
    for tag in ["msgpack", "json", "bytes", "bytearray", "pickle"] {
        let typed = TypedValue::new(tag, bytes.to_vec()).unwrap();
        if let Ok(p) = decode(&typed) {
            assert_eq!(encode(&p), typed);
        }
    }
    if let Ok((cp, order)) = decompose_checkpoint_blob_ordered(bytes) {
        // A decomposed blob composes again; bytes match whenever Python could have written
        // it (minimal forms), which the checkpoint round-trip property covers.
        compose_checkpoint_blob_ordered(&cp, &order).expect("recomposes");
    }
}

fn channel() -> impl Strategy<Value = ChannelName> {
    "[a-z_:]{1,12}".prop_map(|s| ChannelName::parse(s).unwrap())
}

fn version() -> impl Strategy<Value = ChannelVersion> {
    prop_oneof![
        any::<i64>().prop_map(ChannelVersion::Int),
        (-1e12f64..1e12).prop_map(ChannelVersion::Float),
        "[0-9]{32}\\.[0-9.]{1,18}".prop_map(ChannelVersion::Str),
    ]
}

/// Channel values as Python's serializer could produce them (minimal msgpack, nil as
/// `null`, bin as `bytes`): exactly what decomposition gives back.
fn channel_value() -> impl Strategy<Value = TypedValue> {
    prop_oneof![
        Just(TypedValue::null()),
        vec(any::<u8>(), 0..40).prop_map(|b| TypedValue::new("bytes", b).unwrap()),
        tree(true)
            .prop_filter("nil and bin have their own tags", |v| {
                !matches!(v, Value::Nil | Value::Bin(_))
            })
            .prop_map(|v| TypedValue::msgpack(encode_msgpack(&v))),
    ]
}

fn checkpoint() -> impl Strategy<Value = Checkpoint> {
    (
        any::<i64>(),
        "[0-9a-f-]{1,36}",
        ".{0,40}",
        vec((channel(), channel_value()), 0..6),
        vec((channel(), version()), 0..6),
        vec(("[a-z_]{1,10}", vec((channel(), version()), 0..4)), 0..4),
        prop::option::of(vec(channel(), 0..4)),
        vec(("[a-z_]{1,10}", channel_value()), 0..3),
    )
        .prop_map(
            |(v, id, ts, values, versions, seen, updated, extra)| Checkpoint {
                v,
                id: CheckpointId::parse(id).unwrap(),
                ts,
                channel_values: values.into_iter().collect(),
                channel_versions: versions.into_iter().collect(),
                versions_seen: seen
                    .into_iter()
                    .map(|(k, vs)| (k, vs.into_iter().collect()))
                    .collect(),
                updated_channels: updated,
                extra: extra
                    .into_iter()
                    .filter(|(k, _)| {
                        ![
                            "v",
                            "ts",
                            "id",
                            "channel_values",
                            "channel_versions",
                            "versions_seen",
                            "updated_channels",
                        ]
                        .contains(&k.as_str())
                    })
                    .collect::<IndexMap<_, _>>(),
            },
        )
}

proptest! {
    // 512 cases by default; `PROPTEST_CASES=100000` for a long fuzzing run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_tree_reencodes_byte_identically(v in tree(false)) {
        let bytes = encode_msgpack(&v);
        let decoded = decode_msgpack(&bytes).unwrap();
        prop_assert_eq!(encode_msgpack(&decoded), bytes);
    }

    #[test]
    fn canonical_trees_decode_to_themselves(v in tree(true)) {
        let bytes = encode_msgpack(&v);
        prop_assert_eq!(decode_msgpack(&bytes).unwrap(), v);
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        assert_accepted_inputs_round_trip(&bytes);
    }

    #[test]
    fn mutated_encodings_never_panic(
        v in tree(false),
        mutations in vec(mutation(), 1..4),
    ) {
        let bytes = mutate(encode_msgpack(&v), &mutations);
        assert_accepted_inputs_round_trip(&bytes);
    }

    #[test]
    fn checkpoints_compose_and_decompose(cp in checkpoint(), ordered in any::<bool>()) {
        let blob = compose_checkpoint_blob(&cp).unwrap();
        // The blob is one well-formed msgpack map that round-trips as a value tree.
        prop_assert_eq!(encode_msgpack(&decode_msgpack(&blob).unwrap()), blob.clone());
        let (back, order) = decompose_checkpoint_blob_ordered(&blob).unwrap();
        prop_assert_eq!(&back, &cp);
        let again = if ordered {
            compose_checkpoint_blob_ordered(&back, &order).unwrap()
        } else {
            compose_checkpoint_blob(&back).unwrap()
        };
        prop_assert_eq!(again, blob);
    }

    #[test]
    fn mutated_blobs_never_panic(cp in checkpoint(), mutations in vec(mutation(), 1..4)) {
        let blob = mutate(compose_checkpoint_blob(&cp).unwrap(), &mutations);
        let _ = decompose_checkpoint_blob(&blob);
        assert_accepted_inputs_round_trip(&blob);
    }

    #[test]
    fn python_float_repr_round_trips(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let text = python_float_repr(f).unwrap();
        prop_assert_eq!(text.parse::<f64>().unwrap().to_bits(), f.to_bits());
        prop_assert!(text.contains('.') || text.contains('e'), "{}", text);
    }

    #[test]
    fn python_json_parses_back_to_the_same_value(v in json()) {
        let bytes = python_json_bytes(&v).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        prop_assert!(json_close(&back, &v), "{} != {}", back, v);
    }
}

/// Equality up to serde_json's float parsing, which (without its `float_roundtrip` feature)
/// may be one unit in the last place off; the repr itself is checked exactly above.
fn json_close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || ((x - y) / y).abs() < 1e-15
        }
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_close(x, y))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && json_close(vx, vy))
        }
        _ => a == b,
    }
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        (-1e300f64..1e300).prop_map(serde_json::Value::from),
        "\\PC{0,20}".prop_map(serde_json::Value::from),
        "[\\x00-\\x1f\"\\\\]{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            vec((".{0,8}", inner), 0..8)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}
