//! The hex examples of spec `langgraph-compat.md` §2.7 (bytes written by langgraph-checkpoint
//! 4.3.2 / ormsgpack 1.13.1): each decodes, re-encodes byte-identically, and the Rust-built
//! value encodes to exactly Python's bytes.

mod codec_support;

use codec_support::{hex, hexdump_bytes, spec_bytes};
use indexmap::IndexMap;
use serde_json::json;
use waymark_adapters::codec::{
    Command, ExtView, Interrupt, Map, Message, MessageClass, MessageView, Payload, PyDateTime,
    Send, ToolCall, Value, compose_checkpoint_blob, decode, decode_messages, decode_msgpack,
    decompose_checkpoint_blob, encode, encode_messages, encode_msgpack, ext_build, uuid_from_value,
    uuid_to_value,
};
use waymark_domain::checkpoint::{ChannelVersion, Checkpoint, TypedValue};
use waymark_domain::{ChannelName, CheckpointId};

/// Decodes `bytes` as a `msgpack` typed value, checks the re-encode is identical and returns
/// the value.
fn round_trip(bytes: &[u8]) -> Value {
    let typed = TypedValue::msgpack(bytes.to_vec());
    let payload = decode(&typed).expect("decodes");
    assert_eq!(encode(&payload), typed, "re-encode differs");
    match payload {
        Payload::Msgpack(v) => v,
        other => panic!("not msgpack: {other:?}"),
    }
}

fn assert_bytes(actual: &[u8], expected: &[u8]) {
    assert_eq!(
        actual,
        expected,
        "\n actual: {}\n expect: {}",
        hex(actual),
        hex(expected)
    );
}

#[test]
fn plain_map_with_list_float_bool_and_none() {
    let bytes = spec_bytes("81 a1 61 94 01 cb 40 04 00 00 00 00 00 00 c3 c0");
    let decoded = round_trip(&bytes);
    let built = Value::Map(Map::new().with(
        "a",
        Value::array(vec![
            Value::from(1i64),
            Value::from(2.5),
            Value::Bool(true),
            Value::Nil,
        ]),
    ));
    assert_eq!(decoded, built);
    assert_bytes(&encode_msgpack(&built), &bytes);
}

#[test]
fn uuid_extension() {
    let bytes =
        spec_bytes(r#"c7 2d 00 93 a4 "uuid" a4 "UUID" d9 20 "12345678123456781234567812345678""#);
    let decoded = round_trip(&bytes);
    let id = uuid::Uuid::parse_str("12345678-1234-5678-1234-567812345678").unwrap();
    assert_eq!(uuid_from_value(&decoded).unwrap(), id);
    assert_bytes(&encode_msgpack(&uuid_to_value(id)), &bytes);
}

#[test]
fn aware_datetime_extension() {
    let bytes = spec_bytes(
        r#"c7 43 03 94 a8 "datetime" a8 "datetime" d9 20 "2024-05-04T06:32:42.235444+00:00" ad "fromisoformat""#,
    );
    let decoded = round_trip(&bytes);
    let dt = PyDateTime::from_value(&decoded).unwrap();
    let PyDateTime::Aware(aware) = dt else {
        panic!("naive: {dt:?}")
    };
    assert_eq!(aware.timestamp_subsec_micros(), 235_444);
    assert_eq!(dt.isoformat(), "2024-05-04T06:32:42.235444+00:00");
    assert_bytes(&encode_msgpack(&dt.to_value()), &bytes);
}

#[test]
fn datetime_isoformat_follows_python() {
    let whole = PyDateTime::parse_isoformat("2026-11-21T10:45:31+00:00").unwrap();
    assert_eq!(whole.isoformat(), "2026-11-21T10:45:31+00:00");
    let naive = PyDateTime::parse_isoformat("2026-11-21T10:45:31.000100").unwrap();
    assert!(matches!(naive, PyDateTime::Naive(_)));
    assert_eq!(naive.isoformat(), "2026-11-21T10:45:31.000100");
    let offset = PyDateTime::parse_isoformat("2026-11-21T10:45:31.5-05:30").unwrap();
    assert_eq!(offset.isoformat(), "2026-11-21T10:45:31.500000-05:30");
    assert!(PyDateTime::parse_isoformat("yesterday").is_err());
}

#[test]
fn date_set_enum_decimal_and_timedelta_extensions() {
    let cases: [(&str, Value); 5] = [
        (
            r#"c7 15 01 93 a8 "datetime" a4 "date" 93 cd 07 e8 05 04"#,
            ext_build::pos_args(
                "datetime",
                "date",
                vec![2024i64.into(), 5i64.into(), 4i64.into()],
            ),
        ),
        (
            r#"c7 11 00 93 a8 "builtins" a3 "set" 92 01 02"#,
            ext_build::single_arg(
                "builtins",
                "set",
                Value::array(vec![1i64.into(), 2i64.into()]),
            ),
        ),
        (
            r#"c7 14 00 93 a8 "__main__" a5 "Color" a3 "red""#,
            ext_build::single_arg("__main__", "Color", "red".into()),
        ),
        (
            r#"c7 15 00 93 a7 "decimal" a7 "Decimal" a3 "1.5""#,
            ext_build::single_arg("decimal", "Decimal", "1.5".into()),
        ),
        (
            r#"c7 18 01 93 a8 "datetime" a9 "timedelta" 93 01 02 03"#,
            ext_build::pos_args(
                "datetime",
                "timedelta",
                vec![1i64.into(), 2i64.into(), 3i64.into()],
            ),
        ),
    ];
    for (notation, built) in cases {
        let bytes = spec_bytes(notation);
        let decoded = round_trip(&bytes);
        assert_eq!(decoded, built, "{notation}");
        assert_bytes(&encode_msgpack(&built), &bytes);
        // Every one of them has a typed view naming its class.
        let view = decoded.as_ext().unwrap().view().unwrap();
        assert!(view.class().is_some(), "{view:?}");
    }
}

#[test]
fn command_resume_extension() {
    let bytes = spec_bytes(
        r#"c7 3a 02 93 af "langgraph.types" a7 "Command" 84 a5 "graph" c0 a6 "update" c0 a6 "resume" a3 "yes" a4 "goto" 90"#,
    );
    let decoded = round_trip(&bytes);
    let command = Command::from_value(&decoded).unwrap();
    assert_eq!(command, Command::resume("yes".into()));
    assert_bytes(&encode_msgpack(&command.to_value()), &bytes);
}

#[test]
fn send_extension_prefix() {
    let prefix = spec_bytes(
        r#"01 93 af "langgraph.types" a4 "Send" 92 ab "tool_worker" 81 a9 "tool_call" 84"#,
    );
    let tool_call = Map::new()
        .with("name", "lookup")
        .with("args", Map::new().with("q", "x"))
        .with("id", "call_1")
        .with("type", "tool_call");
    let send = Send {
        node: "tool_worker".into(),
        arg: Value::Map(Map::new().with("tool_call", tool_call)),
        timeout: None,
    };
    let bytes = encode_msgpack(&send.to_value());
    assert_eq!(bytes[0], 0xc7, "ext8");
    assert_eq!(bytes[1] as usize, bytes.len() - 3, "ext8 length");
    assert_bytes(&bytes[2..2 + prefix.len()], &prefix);
    let decoded = round_trip(&bytes);
    assert_eq!(Send::from_value(&decoded).unwrap(), send);
}

const TOOL_MESSAGE: &str = "
00000000  c7 bd 05 94 bc 6c 61 6e 67 63 68 61 69 6e 5f 63  ext8 len 0xbd type 5; array(4); str(28)
00000010  6f 72 65 2e 6d 65 73 73 61 67 65 73 2e 74 6f 6f  \"langchain_core.messages.tool\"
00000020  6c ab 54 6f 6f 6c 4d 65 73 73 61 67 65 89 a7 63  \"ToolMessage\"; map(9); \"content\"
00000030  6f 6e 74 65 6e 74 a6 72 65 73 75 6c 74 b1 61 64  \"result\"; \"additional_kwargs\"
00000040  64 69 74 69 6f 6e 61 6c 5f 6b 77 61 72 67 73 80  {}
00000050  b1 72 65 73 70 6f 6e 73 65 5f 6d 65 74 61 64 61  \"response_metadata\"
00000060  74 61 80 a4 74 79 70 65 a4 74 6f 6f 6c a4 6e 61  {}; \"type\" \"tool\"; \"name\"
00000070  6d 65 a6 73 65 61 72 63 68 a2 69 64 a2 74 31 ac  \"search\"; \"id\" \"t1\"; \"tool_call_id\"
00000080  74 6f 6f 6c 5f 63 61 6c 6c 5f 69 64 a6 63 61 6c  \"call_1\"
00000090  6c 5f 31 a8 61 72 74 69 66 61 63 74 c0 a6 73 74  \"artifact\" nil; \"status\"
000000a0  61 74 75 73 a7 73 75 63 63 65 73 73 b3 6d 6f 64  \"success\"; \"model_validate_json\"
000000b0  65 6c 5f 76 61 6c 69 64 61 74 65 5f 6a 73 6f 6e
";

#[test]
fn tool_message_is_byte_identical_both_ways() {
    let bytes = hexdump_bytes(TOOL_MESSAGE);
    assert_eq!(bytes.len(), 192);
    let decoded = round_trip(&bytes);
    let view = MessageView::of(&decoded).expect("a message");
    assert_eq!(view.class, MessageClass::Tool);
    assert_eq!(view.tool_call_id(), Some("call_1"));
    assert_eq!(view.id(), Some("t1"));

    let mut built = Message::tool("result", "call_1").with_id("t1");
    built.name = Some("search".into());
    assert_bytes(&encode_msgpack(&built.to_value().unwrap()), &bytes);

    let read = Message::from_value(&decoded).unwrap();
    assert_eq!(read, built);
    assert_eq!(
        read.to_json(),
        json!({"content": "result", "additional_kwargs": {}, "response_metadata": {},
               "type": "tool", "name": "search", "id": "t1", "tool_call_id": "call_1",
               "artifact": null, "status": "success"})
    );
}

#[test]
fn human_and_ai_message_list_matches_python_layout() {
    let mut ai = Message::ai("").with_id("a1");
    ai.tool_calls = vec![ToolCall::new(
        "search",
        json!({"q": "x"}),
        Some("call_1".into()),
    )];
    let messages = vec![Message::human("hi").with_id("h1"), ai];
    let typed = encode_messages(&messages).unwrap();
    let bytes = typed.bytes();
    assert_eq!(bytes.len(), 366);
    let first =
        spec_bytes(r#"92 c7 89 05 94 bd "langchain_core.messages.human" ac "HumanMessage" 86"#);
    assert_bytes(&bytes[..first.len()], &first);
    let second = spec_bytes(r#"c7 de 05 94 ba "langchain_core.messages.ai" a9 "AIMessage" 89"#);
    // The first element is ext8 with a 0x89-byte payload: 3 + 0x89 bytes after the array header.
    let at = 1 + 3 + 0x89;
    assert_bytes(&bytes[at..at + second.len()], &second);

    round_trip(bytes);
    assert_eq!(decode_messages(&typed).unwrap(), messages);
    assert_eq!(
        encode_messages(&decode_messages(&typed).unwrap()).unwrap(),
        typed
    );
}

const INTERRUPT_WRITE: &str = "
00000000  91 c7 88 02 93 af 6c 61 6e 67 67 72 61 70 68 2e  array(1); ext8 len 0x88 type 2; array(3)
00000010  74 79 70 65 73 a9 49 6e 74 65 72 72 75 70 74 83  \"langgraph.types\" \"Interrupt\"; map(3)
00000020  a5 76 61 6c 75 65 82 a8 71 75 65 73 74 69 6f 6e  \"value\": map(2) \"question\"
00000030  b2 41 70 70 72 6f 76 65 20 74 6f 6f 6c 20 63 61  \"Approve tool call?\"
00000040  6c 6c 3f aa 74 6f 6f 6c 5f 63 61 6c 6c 73 91 a6  \"tool_calls\": [\"lookup\"]
00000050  6c 6f 6f 6b 75 70 a2 69 64 d9 20 39 37 33 30 31  \"id\": str8(32)
00000060  64 64 62 34 37 39 32 38 33 39 38 33 34 61 66 32  \"97301ddb4792839834af29e69d3f0c1c\"
00000070  39 65 36 39 64 33 66 30 63 31 63 af 72 65 73 70  \"response_schema\": nil
00000080  6f 6e 73 65 5f 73 63 68 65 6d 61 c0
";

#[test]
fn interrupt_write_is_byte_identical_both_ways() {
    let bytes = hexdump_bytes(INTERRUPT_WRITE);
    assert_eq!(bytes.len(), 140);
    let decoded = round_trip(&bytes);
    let items = decoded.as_array().unwrap();
    let interrupt = Interrupt::from_value(&items[0]).unwrap();
    assert_eq!(interrupt.id, "97301ddb4792839834af29e69d3f0c1c");
    let built = Interrupt::new(
        Value::Map(
            Map::new()
                .with("question", "Approve tool call?")
                .with("tool_calls", Value::array(vec!["lookup".into()])),
        ),
        "97301ddb4792839834af29e69d3f0c1c",
    );
    assert_eq!(interrupt, built);
    assert_bytes(
        &encode_msgpack(&Value::array(vec![built.to_value()])),
        &bytes,
    );
    let ExtView::KwArgs { module, name, .. } = items[0].as_ext().unwrap().view().unwrap() else {
        panic!("not a dataclass")
    };
    assert_eq!((module, name), ("langgraph.types", "Interrupt"));
}

#[test]
fn sqlite_blob_starts_like_python_and_decomposes_back() {
    let ch = |s: &str| ChannelName::parse(s).unwrap();
    // A human message whose content makes its ext8 payload 0x99 bytes, as in the spec.
    let message = Message::human("a".repeat(18)).with_id("h1");
    let messages = encode_messages(&[message]).unwrap();
    let mut channel_values = IndexMap::new();
    channel_values.insert(ch("messages"), messages.clone());
    channel_values.insert(ch("branch:to:agent"), TypedValue::null());
    let mut versions = IndexMap::new();
    versions.insert(
        ch("__start__"),
        ChannelVersion::Str("00000000000000000000000000000002.0.9006228878075907".into()),
    );
    versions.insert(ch("messages"), ChannelVersion::Int(3));
    versions.insert(ch("branch:to:agent"), ChannelVersion::Float(2.5));
    let mut seen = IndexMap::new();
    seen.insert("__input__".to_owned(), IndexMap::new());
    seen.insert("agent".to_owned(), versions.clone());
    let checkpoint = Checkpoint {
        v: 4,
        id: CheckpointId::parse("1f1e598a-cacc-67c7-8000-11eeb8766e9a").unwrap(),
        ts: "2026-11-21T10:45:31.999013+00:00".into(),
        channel_values,
        channel_versions: versions,
        versions_seen: seen,
        updated_channels: Some(vec![ch("branch:to:agent"), ch("messages")]),
        extra: IndexMap::new(),
    };
    let blob = compose_checkpoint_blob(&checkpoint).unwrap();
    let prefix = spec_bytes(
        r#"87 a1 "v" 04 a2 "ts" d9 20 "2026-11-21T10:45:31.999013+00:00" a2 "id" d9 24
           "1f1e598a-cacc-67c7-8000-11eeb8766e9a" ae "channel_values" 82 a8 "messages" 91 c7 99 05"#,
    );
    assert_bytes(&blob[..prefix.len()], &prefix);
    let after_messages = spec_bytes(r#"af "branch:to:agent" c0 b0 "channel_versions" 83"#);
    let at = prefix.len() - 4 + messages.bytes().len();
    assert_bytes(&blob[at..at + after_messages.len()], &after_messages);

    // The whole blob is one msgpack document that round-trips byte for byte.
    assert_eq!(encode_msgpack(&decode_msgpack(&blob).unwrap()), blob);
    let back = decompose_checkpoint_blob(&blob).unwrap();
    assert_eq!(back, checkpoint);
    assert_eq!(compose_checkpoint_blob(&back).unwrap(), blob);
}
