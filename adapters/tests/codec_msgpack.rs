//! The msgpack layer: ormsgpack's minimal forms at every size boundary, non-minimal forms
//! preserved, extensions kept opaque when unknown, and hostile input refused with a clear
//! error.

mod codec_support;

use codec_support::hex;
use waymark_adapters::codec::{
    Array, CodecError, Ext, ExtCode, ExtPayload, Int, IntForm, MAX_DEPTH, Map, Payload, Str, Value,
    Width, decode, decode_msgpack, encode, encode_msgpack, validate_msgpack,
};
use waymark_domain::checkpoint::TypedValue;

fn reencodes(bytes: &[u8]) -> Value {
    let v = decode_msgpack(bytes).unwrap_or_else(|e| panic!("{}: {e}", hex(bytes)));
    assert_eq!(encode_msgpack(&v), bytes, "{}", hex(bytes));
    v
}

#[test]
fn integers_use_the_smallest_form_at_every_boundary() {
    let cases: [(i128, &[u8]); 18] = [
        (0, &[0x00]),
        (127, &[0x7f]),
        (128, &[0xcc, 0x80]),
        (255, &[0xcc, 0xff]),
        (256, &[0xcd, 0x01, 0x00]),
        (65535, &[0xcd, 0xff, 0xff]),
        (65536, &[0xce, 0, 1, 0, 0]),
        (4294967295, &[0xce, 0xff, 0xff, 0xff, 0xff]),
        (4294967296, &[0xcf, 0, 0, 0, 1, 0, 0, 0, 0]),
        (
            u64::MAX as i128,
            &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ),
        (-1, &[0xff]),
        (-32, &[0xe0]),
        (-33, &[0xd0, 0xdf]),
        (-128, &[0xd0, 0x80]),
        (-129, &[0xd1, 0xff, 0x7f]),
        (-32769, &[0xd2, 0xff, 0xff, 0x7f, 0xff]),
        (
            -2147483649,
            &[0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff],
        ),
        (i64::MIN as i128, &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
    ];
    for (v, bytes) in cases {
        let value = Value::Int(Int::new(v).unwrap());
        assert_eq!(encode_msgpack(&value), bytes, "{v}");
        assert_eq!(reencodes(bytes), value, "{v}");
    }
    assert!(Int::new(u64::MAX as i128 + 1).is_none());
    assert!(Int::new(i64::MIN as i128 - 1).is_none());
}

#[test]
fn non_minimal_integer_forms_are_kept() {
    // 5 as uint8, uint64 and int16; -1 as int64; 200 as int16.
    for bytes in [
        &[0xcc, 0x05][..],
        &[0xcf, 0, 0, 0, 0, 0, 0, 0, 5],
        &[0xd1, 0x00, 0x05],
        &[0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0xd1, 0x00, 0xc8],
    ] {
        let v = reencodes(bytes);
        let Value::Int(i) = v else { panic!() };
        assert_ne!(i.form(), IntForm::Minimal, "{}", hex(bytes));
    }
    // A form that no longer fits falls back to the minimal one.
    let grown = Value::Int(Int::with_form(5, IntForm::U8).unwrap());
    assert_eq!(encode_msgpack(&grown), [0xcc, 0x05]);
    assert!(Int::with_form(300, IntForm::U8).is_none());
}

#[test]
fn floats_keep_their_width_and_bits() {
    reencodes(&[0xcb, 0x40, 0x04, 0, 0, 0, 0, 0, 0]);
    let f32_value = reencodes(&[0xca, 0x3f, 0xc0, 0, 0]);
    assert_eq!(f32_value, Value::F32(1.5));
    // A NaN with a payload survives bit for bit.
    reencodes(&[0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0x01]);
    assert_eq!(
        encode_msgpack(&Value::F64(2.5)),
        [0xcb, 0x40, 0x04, 0, 0, 0, 0, 0, 0]
    );
}

fn header_of(value: &Value) -> Vec<u8> {
    let bytes = encode_msgpack(value);
    bytes[..bytes.len().min(6)].to_vec()
}

#[test]
fn length_headers_use_the_smallest_form_at_every_boundary() {
    let s = |n: usize| Value::Str(Str::new("x".repeat(n)));
    assert_eq!(header_of(&s(31))[0], 0xbf);
    assert_eq!(header_of(&s(32))[..2], [0xd9, 32]);
    assert_eq!(header_of(&s(255))[..2], [0xd9, 255]);
    assert_eq!(header_of(&s(256))[..3], [0xda, 1, 0]);
    assert_eq!(header_of(&s(65536))[..5], [0xdb, 0, 1, 0, 0]);

    let b = |n: usize| Value::bin(vec![7; n]);
    assert_eq!(header_of(&b(0))[..2], [0xc4, 0]);
    assert_eq!(header_of(&b(256))[..3], [0xc5, 1, 0]);
    assert_eq!(header_of(&b(65536))[..5], [0xc6, 0, 1, 0, 0]);

    let a = |n: usize| Value::array(vec![Value::Nil; n]);
    assert_eq!(header_of(&a(15))[0], 0x9f);
    assert_eq!(header_of(&a(16))[..3], [0xdc, 0, 16]);
    assert_eq!(header_of(&a(65536))[..5], [0xdd, 0, 1, 0, 0]);

    let m = |n: usize| {
        Value::Map(Map {
            entries: (0..n)
                .map(|i| (Value::from(i as i64), Value::Nil))
                .collect(),
            width: Width::Minimal,
        })
    };
    assert_eq!(header_of(&m(15))[0], 0x8f);
    assert_eq!(header_of(&m(16))[..3], [0xde, 0, 16]);
    assert_eq!(header_of(&m(65536))[..5], [0xdf, 0, 1, 0, 0]);

    let e = |n: usize| Value::Ext(Ext::raw(42, vec![0; n]));
    for (n, marker) in [(1, 0xd4), (2, 0xd5), (4, 0xd6), (8, 0xd7), (16, 0xd8)] {
        assert_eq!(header_of(&e(n))[..2], [marker, 42], "fixext {n}");
    }
    assert_eq!(header_of(&e(0))[..3], [0xc7, 0, 42]);
    assert_eq!(header_of(&e(3))[..3], [0xc7, 3, 42]);
    assert_eq!(header_of(&e(256))[..4], [0xc8, 1, 0, 42]);
    assert_eq!(header_of(&e(65536))[..6], [0xc9, 0, 1, 0, 0, 42]);

    for v in [
        s(65536),
        b(65536),
        a(65536),
        m(65536),
        e(65536),
        s(300),
        a(300),
    ] {
        assert_eq!(decode_msgpack(&encode_msgpack(&v)).unwrap(), v);
    }
}

#[test]
fn non_minimal_headers_are_kept() {
    for bytes in [
        &[0xd9, 0x01, b'a'][..],                     // str8 for a 1-byte string
        &[0xda, 0x00, 0x00],                         // str16 empty
        &[0xdb, 0, 0, 0, 2, b'h', b'i'],             // str32
        &[0xc5, 0x00, 0x01, 0xff],                   // bin16 for 1 byte
        &[0xdc, 0x00, 0x01, 0xc0],                   // array16 of 1
        &[0xdd, 0, 0, 0, 0],                         // array32 empty
        &[0xde, 0x00, 0x01, 0x01, 0x02],             // map16 of 1
        &[0xdf, 0, 0, 0, 0],                         // map32 empty
        &[0xc7, 0x01, 0x05, 0xc0],                   // ext8 where fixext1 would do
        &[0xc8, 0x00, 0x02, 0x63, 0x91, 0xc0],       // ext16, unknown code 0x63
        &[0xc9, 0, 0, 0, 3, 0x00, 0x92, 0x01, 0x02], // ext32, code 0
    ] {
        reencodes(bytes);
    }
    // Edited values fall back to a form that fits.
    let mut a = Array {
        items: vec![Value::Nil],
        width: Width::Fix,
    };
    a.items.extend(std::iter::repeat_n(Value::Nil, 20));
    assert_eq!(encode_msgpack(&Value::Array(a))[..3], [0xdc, 0, 21]);
}

#[test]
fn strings_that_are_not_utf8_survive() {
    let v = reencodes(&[0xa2, 0xff, 0xfe]);
    let Value::Str(s) = &v else { panic!() };
    assert_eq!(s.as_str(), None);
    assert_eq!(s.as_bytes(), [0xff, 0xfe]);
}

#[test]
fn extensions_parse_known_codes_and_keep_others_opaque() {
    // Code 0 with an array payload: parsed.
    let known = reencodes(&[0xc7, 0x03, 0x00, 0x92, 0x01, 0x02]);
    let Value::Ext(e) = &known else { panic!() };
    assert_eq!(e.known_code(), Some(ExtCode::ConstructorSingleArg));
    assert!(matches!(e.payload, ExtPayload::Value(_)));
    // Unknown code 9 and the msgpack timestamp (-1): raw.
    for bytes in [&[0xd4, 0x09, 0x01][..], &[0xd6, 0xff, 0, 0, 0, 1]] {
        let Value::Ext(e) = reencodes(bytes) else {
            panic!()
        };
        assert!(matches!(e.payload, ExtPayload::Raw(_)));
        assert!(e.view().is_err());
    }
    // Known code whose payload is not one document (trailing byte, truncated, reserved):
    // raw, not an error.
    for bytes in [
        &[0xd5, 0x00, 0xc0, 0xc0][..],
        &[0xd4, 0x05, 0x92],
        &[0xd4, 0x02, 0xc1],
    ] {
        let Value::Ext(e) = reencodes(bytes) else {
            panic!()
        };
        assert!(matches!(e.payload, ExtPayload::Raw(_)), "{}", hex(bytes));
    }
    // A code-0 payload with the wrong layout decodes but has no view.
    let Value::Ext(e) = reencodes(&[0xd4, 0x00, 0x01]) else {
        panic!()
    };
    assert!(e.view().is_err());
}

#[test]
fn typed_payloads_of_every_tag_round_trip() {
    let cases = [
        TypedValue::null(),
        TypedValue::new("bytes", vec![0, 1, 255]).unwrap(),
        TypedValue::new("bytearray", vec![]).unwrap(),
        TypedValue::msgpack(vec![0x92, 0x01, 0xa1, b'x']),
        TypedValue::new(
            "json",
            br#"{"lc": 2, "type": "constructor", "id": ["a", "B"]}"#.to_vec(),
        )
        .unwrap(),
        TypedValue::new("pickle", vec![0x80, 0x04, 0x95]).unwrap(),
        TypedValue::new("msgpack+aes", vec![1; 40]).unwrap(),
    ];
    for typed in cases {
        let payload = decode(&typed).unwrap();
        assert_eq!(encode(&payload), typed);
        match typed.type_tag() {
            "pickle" | "msgpack+aes" => assert!(matches!(payload, Payload::Opaque(_))),
            "json" => {
                let Payload::Json(j) = &payload else { panic!() };
                assert_eq!(j.value()["lc"], 2);
            }
            _ => {}
        }
    }
    assert!(matches!(
        decode(&TypedValue::new("json", b"{nope".to_vec()).unwrap()),
        Err(CodecError::Json(_))
    ));
    assert!(matches!(
        decode(&TypedValue::new("json", vec![0xff]).unwrap()),
        Err(CodecError::InvalidUtf8 { .. })
    ));
}

#[test]
fn malformed_input_gives_precise_errors() {
    let err = |bytes: &[u8]| decode_msgpack(bytes).unwrap_err();
    assert_eq!(
        err(&[]),
        CodecError::Truncated {
            offset: 0,
            needed: 1
        }
    );
    assert_eq!(err(&[0xc1]), CodecError::ReservedMarker { offset: 0 });
    assert_eq!(
        err(&[0xcd, 0x01]),
        CodecError::Truncated {
            offset: 1,
            needed: 1
        }
    );
    assert_eq!(
        err(&[0xc0, 0xc0, 0xc0]),
        CodecError::TrailingBytes {
            offset: 1,
            count: 2
        }
    );
    assert_eq!(
        err(&[0xa5, b'a']),
        CodecError::LengthExceedsInput {
            offset: 0,
            declared: 5,
            remaining: 1
        }
    );
    // Claims of huge containers are refused before anything is reserved.
    assert_eq!(
        err(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]),
        CodecError::LengthExceedsInput {
            offset: 1,
            declared: u32::MAX as usize,
            remaining: 1
        }
    );
    assert!(matches!(
        err(&[0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0]),
        CodecError::LengthExceedsInput { .. }
    ));
    assert!(matches!(
        err(&[0xdb, 0xff, 0xff, 0xff, 0xff]),
        CodecError::LengthExceedsInput { .. }
    ));
    assert!(matches!(
        err(&[0xc9, 0xff, 0xff, 0xff, 0xff, 0x00]),
        CodecError::LengthExceedsInput { .. }
    ));
    // A map of 2 entries needs at least 4 more bytes.
    assert!(matches!(
        err(&[0x82, 0xc0, 0xc0, 0xc0]),
        CodecError::LengthExceedsInput { .. }
    ));
    assert!(err(&[0xa5, b'a']).to_string().contains("exceeds"));
}

#[test]
fn nesting_is_bounded_without_exhausting_the_stack() {
    // 100 000 nested one-element arrays.
    let mut bomb = vec![0x91; 100_000];
    bomb.push(0xc0);
    assert!(matches!(
        decode_msgpack(&bomb),
        Err(CodecError::TooDeep { max: MAX_DEPTH, .. })
    ));
    assert!(matches!(
        validate_msgpack(&bomb),
        Err(CodecError::TooDeep { .. })
    ));
    // Exactly MAX_DEPTH levels are fine.
    let mut ok = vec![0x91; MAX_DEPTH];
    ok.push(0xc0);
    reencodes(&ok);
    let mut too_deep = vec![0x91; MAX_DEPTH + 1];
    too_deep.push(0xc0);
    assert!(decode_msgpack(&too_deep).is_err());
    // Deep nesting hidden inside an extension payload stays raw.
    let mut inner = vec![0x91; 2 * MAX_DEPTH];
    inner.push(0xc0);
    let mut ext = vec![0xc8];
    ext.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    ext.push(0x00);
    ext.extend_from_slice(&inner);
    let Value::Ext(e) = reencodes(&ext) else {
        panic!()
    };
    assert!(matches!(e.payload, ExtPayload::Raw(_)));
}

#[test]
fn codec_errors_become_domain_invalid_input() {
    let domain: waymark_domain::DomainError = decode_msgpack(&[0xc1]).unwrap_err().into();
    assert!(domain.is_invalid_input(), "{domain}");
}
