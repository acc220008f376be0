//! LangChain messages and LangGraph types against bytes written by Python (langchain-core
//! 1.7.2, langgraph 1.2.22, ormsgpack 1.13.1, generated once with `JsonPlusSerializer
//! .dumps_typed`): Rust-built values encode to exactly these bytes, and reading them back gives
//! the Rust value; plus model round-trips and validation.

mod codec_support;

use codec_support::hex;
use serde_json::json;
use waymark_adapters::codec::{
    CodecError, Command, Interrupt, InvalidToolCall, Map, Message, MessageClass, MessageView,
    PyDateTime, Send, ToolCall, ToolCallChunk, Usage, Value, decode_messages, decode_msgpack,
    encode_messages, encode_msgpack, messages_from_value,
};
use waymark_domain::checkpoint::TypedValue;

// Python's bytes (hex) for each case.
const AI_TOOL_CALLS_USAGE: &str = "c801750594ba6c616e67636861696e5f636f72652e6d657373616765732e6169a941494d65737361676589a7636f6e74656e74a0b16164646974696f6e616c5f6b776172677380b1726573706f6e73655f6d6574616461746182aa6d6f64656c5f6e616d65a56770742d78ad66696e6973685f726561736f6eaa746f6f6c5f63616c6c73a474797065a26169a46e616d65c0a26964a26131aa746f6f6c5f63616c6c739184a46e616d65a6736561726368a46172677381a171a178a26964a663616c6c5f31a474797065a9746f6f6c5f63616c6cb2696e76616c69645f746f6f6c5f63616c6c7390ae75736167655f6d6574616461746185ac696e7075745f746f6b656e730aad6f75747075745f746f6b656e7305ac746f74616c5f746f6b656e730fb3696e7075745f746f6b656e5f64657461696c7381aa63616368655f7265616402b46f75747075745f746f6b656e5f64657461696c7381a9726561736f6e696e6701b36d6f64656c5f76616c69646174655f6a736f6e";
const AI_BLOCKS_INVALID: &str = "c7f50594ba6c616e67636861696e5f636f72652e6d657373616765732e6169a941494d65737361676589a7636f6e74656e749182a474797065a474657874a474657874a26869b16164646974696f6e616c5f6b776172677380b1726573706f6e73655f6d6574616461746180a474797065a26169a46e616d65c0a26964c0aa746f6f6c5f63616c6c7390b2696e76616c69645f746f6f6c5f63616c6c739185a474797065b1696e76616c69645f746f6f6c5f63616c6ca26964a26332a46e616d65a178a461726773a17ba56572726f72a3626164ae75736167655f6d65746164617461c0b36d6f64656c5f76616c69646174655f6a736f6e";
const AI_CHUNK: &str = "c8014b0594ba6c616e67636861696e5f636f72652e6d657373616765732e6169ae41494d6573736167654368756e6b8ba7636f6e74656e74a26865b16164646974696f6e616c5f6b776172677380b1726573706f6e73655f6d6574616461746180a474797065ae41494d6573736167654368756e6ba46e616d65c0a26964a572756e2d31aa746f6f6c5f63616c6c739184a46e616d65a6736561726368a46172677380a26964a26331a474797065a9746f6f6c5f63616c6cb2696e76616c69645f746f6f6c5f63616c6c7390ae75736167655f6d65746164617461c0b0746f6f6c5f63616c6c5f6368756e6b739185a46e616d65a6736561726368a461726773a47b227122a26964a26331a5696e64657800a474797065af746f6f6c5f63616c6c5f6368756e6bae6368756e6b5f706f736974696f6ea46c617374b36d6f64656c5f76616c69646174655f6a736f6e";
const AI_USAGE_REORDERED: &str = "c801430594ba6c616e67636861696e5f636f72652e6d657373616765732e6169a941494d65737361676589a7636f6e74656e74a26f6bb16164646974696f6e616c5f6b776172677380b1726573706f6e73655f6d6574616461746180a474797065a26169a46e616d65c0a26964c0aa746f6f6c5f63616c6c7390b2696e76616c69645f746f6f6c5f63616c6c7390ae75736167655f6d6574616461746186ac696e7075745f746f6b656e7301ad6f75747075745f746f6b656e7302ac746f74616c5f746f6b656e7303b3696e7075745f746f6b656e5f64657461696c7383a5617564696f01ae63616368655f6372656174696f6e00aa63616368655f7265616402b46f75747075745f746f6b656e5f64657461696c7383a5617564696f02a9726561736f6e696e6701a362617203a3666f6f09b36d6f64656c5f76616c69646174655f6a736f6e";
const HUMAN_NAMED: &str = "c7970594bd6c616e67636861696e5f636f72652e6d657373616765732e68756d616eac48756d616e4d65737361676586a7636f6e74656e74a26869b16164646974696f6e616c5f6b776172677381a16bcb3ff8000000000000b1726573706f6e73655f6d6574616461746180a474797065a568756d616ea46e616d65a3626f62a26964a26831b36d6f64656c5f76616c69646174655f6a736f6e";
const HUMAN_UNICODE_LONG: &str = "c801c10594bd6c616e67636861696e5f636f72652e6d657373616765732e68756d616eac48756d616e4d65737361676586a7636f6e74656e74da013868c3a96c6c6f20f09f918b20787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878b16164646974696f6e616c5f6b776172677380b1726573706f6e73655f6d6574616461746180a474797065a568756d616ea46e616d65c0a26964a27531b36d6f64656c5f76616c69646174655f6a736f6e";
const HUMAN_CHUNK: &str = "c7980594bd6c616e67636861696e5f636f72652e6d657373616765732e68756d616eb148756d616e4d6573736167654368756e6b86a7636f6e74656e74a26869b16164646974696f6e616c5f6b776172677380b1726573706f6e73655f6d6574616461746180a474797065b148756d616e4d6573736167654368756e6ba46e616d65c0a26964c0b36d6f64656c5f76616c69646174655f6a736f6e";
const SYSTEM: &str = "c78f0594be6c616e67636861696e5f636f72652e6d657373616765732e73797374656dad53797374656d4d65737361676586a7636f6e74656e74a76265206e696365b16164646974696f6e616c5f6b776172677380b1726573706f6e73655f6d6574616461746180a474797065a673797374656da46e616d65c0a26964c0b36d6f64656c5f76616c69646174655f6a736f6e";
const SYSTEM_CHUNK: &str = "c79a0594be6c616e67636861696e5f636f72652e6d657373616765732e73797374656db253797374656d4d6573736167654368756e6b86a7636f6e74656e74a178b16164646974696f6e616c5f6b776172677380b1726573706f6e73655f6d6574616461746180a474797065b253797374656d4d6573736167654368756e6ba46e616d65c0a26964c0b36d6f64656c5f76616c69646174655f6a736f6e";
const TOOL_ERROR: &str = "c7af0594bc6c616e67636861696e5f636f72652e6d657373616765732e746f6f6cab546f6f6c4d65737361676589a7636f6e74656e74a3657272b16164646974696f6e616c5f6b776172677380b1726573706f6e73655f6d6574616461746180a474797065a4746f6f6ca46e616d65c0a26964c0ac746f6f6c5f63616c6c5f6964a163a8617274696661637481a1619101a6737461747573a56572726f72b36d6f64656c5f76616c69646174655f6a736f6e";
const TOOL_CHUNK: &str = "c7bc0594bc6c616e67636861696e5f636f72652e6d657373616765732e746f6f6cb0546f6f6c4d6573736167654368756e6b89a7636f6e74656e74a178b16164646974696f6e616c5f6b776172677380b1726573706f6e73655f6d6574616461746180a474797065b0546f6f6c4d6573736167654368756e6ba46e616d65c0a26964c0ac746f6f6c5f63616c6c5f6964a163a86172746966616374c0a6737461747573a773756363657373b36d6f64656c5f76616c69646174655f6a736f6e";
const CHAT: &str = "c78f0594bc6c616e67636861696e5f636f72652e6d657373616765732e63686174ab436861744d65737361676587a7636f6e74656e74a178b16164646974696f6e616c5f6b776172677380b1726573706f6e73655f6d6574616461746180a474797065a463686174a46e616d65c0a26964c0a4726f6c65a6637269746963b36d6f64656c5f76616c69646174655f6a736f6e";
const CHAT_CHUNK: &str = "c7a00594bc6c616e67636861696e5f636f72652e6d657373616765732e63686174b0436861744d6573736167654368756e6b87a7636f6e74656e74a178b16164646974696f6e616c5f6b776172677380b1726573706f6e73655f6d6574616461746180a474797065b0436861744d6573736167654368756e6ba46e616d65c0a26964c0a4726f6c65a6637269746963b36d6f64656c5f76616c69646174655f6a736f6e";
const FUNCTION: &str = "c7910594d9206c616e67636861696e5f636f72652e6d657373616765732e66756e6374696f6eaf46756e6374696f6e4d65737361676586a7636f6e74656e74a178b16164646974696f6e616c5f6b776172677380b1726573706f6e73655f6d6574616461746180a474797065a866756e6374696f6ea46e616d65a166a26964c0b36d6f64656c5f76616c69646174655f6a736f6e";
const FUNCTION_CHUNK: &str = "c7a20594d9206c616e67636861696e5f636f72652e6d657373616765732e66756e6374696f6eb446756e6374696f6e4d6573736167654368756e6b86a7636f6e74656e74a178b16164646974696f6e616c5f6b776172677380b1726573706f6e73655f6d6574616461746180a474797065b446756e6374696f6e4d6573736167654368756e6ba46e616d65a166a26964c0b36d6f64656c5f76616c69646174655f6a736f6e";
const REMOVE: &str = "c78d0594d9206c616e67636861696e5f636f72652e6d657373616765732e6d6f646966696572ad52656d6f76654d65737361676586a7636f6e74656e74a0b16164646974696f6e616c5f6b776172677380b1726573706f6e73655f6d6574616461746180a474797065a672656d6f7665a46e616d65c0a26964a26d31b36d6f64656c5f76616c69646174655f6a736f6e";
const SEND: &str = "c71d0193af6c616e6767726170682e7479706573a453656e6492a16e81a16101";
const INTERRUPT: &str = "c73c0293af6c616e6767726170682e7479706573a9496e7465727275707483a576616c7565a171a26964a3616263af726573706f6e73655f736368656d61c0";
const COMMAND: &str = "c73b0293af6c616e6767726170682e7479706573a7436f6d6d616e6484a56772617068c0a675706461746581a17801a6726573756d65c0a4676f746fa16e";
const NAIVE_DATETIME: &str = "c7350394a86461746574696d65a86461746574696d65b3323032342d30352d30345430363a33323a3432ad66726f6d69736f666f726d6174";
const OFFSET_DATETIME: &str = "c7430394a86461746574696d65a86461746574696d65d920323032342d30352d30345430363a33323a34322e3030303030312d30353a3330ad66726f6d69736f666f726d6174";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().unwrap().clone()
}

/// The message encodes to Python's bytes, Python's bytes decode to the message, and the
/// message survives JSON and serde.
fn check_message(python_hex: &str, message: Message) {
    let python = unhex(python_hex);
    let ours = encode_msgpack(&message.to_value().unwrap());
    assert_eq!(
        ours,
        python,
        "\n ours: {}\n py:   {}",
        hex(&ours),
        hex(&python)
    );
    let decoded = decode_msgpack(&python).unwrap();
    assert_eq!(encode_msgpack(&decoded), python);
    assert_eq!(Message::from_value(&decoded).unwrap(), message);
    assert_eq!(Message::from_json(&message.to_json()).unwrap(), message);
    let via_serde: Message =
        serde_json::from_str(&serde_json::to_string(&message).unwrap()).unwrap();
    assert_eq!(via_serde, message);
    let view = MessageView::of(&decoded).unwrap();
    assert_eq!(view.class, message.class);
    assert_eq!(view.id(), message.id.as_deref());
}

#[test]
fn ai_message_with_tool_calls_usage_and_metadata() {
    let mut m = Message::ai("").with_id("a1");
    m.tool_calls = vec![ToolCall::new(
        "search",
        json!({"q": "x"}),
        Some("call_1".into()),
    )];
    let mut usage = Usage::new(10, 5, 15);
    usage.input_token_details = Some(obj(json!({"cache_read": 2})));
    usage.output_token_details = Some(obj(json!({"reasoning": 1})));
    m.usage = Some(usage);
    m.response_metadata = obj(json!({"model_name": "gpt-x", "finish_reason": "tool_calls"}));
    check_message(AI_TOOL_CALLS_USAGE, m);
}

#[test]
fn ai_message_with_content_blocks_and_invalid_tool_calls() {
    let mut m = Message::ai(json!([{"type": "text", "text": "hi"}]));
    m.invalid_tool_calls = vec![InvalidToolCall {
        id: Some("c2".into()),
        name: Some("x".into()),
        args: Some("{".into()),
        error: Some("bad".into()),
    }];
    assert_eq!(m.text(), "hi");
    check_message(AI_BLOCKS_INVALID, m);
}

#[test]
fn ai_message_chunk_with_tool_call_chunks() {
    let mut m = Message::new(MessageClass::AiChunk, "he").with_id("run-1");
    m.tool_call_chunks = vec![ToolCallChunk {
        name: Some("search".into()),
        args: Some("{\"q\"".into()),
        id: Some("c1".into()),
        index: Some(0),
    }];
    // Python derives this from the chunk (the partial args parse to {}).
    m.tool_calls = vec![ToolCall::new("search", json!({}), Some("c1".into()))];
    m.chunk_position = Some("last".into());
    check_message(AI_CHUNK, m);
}

#[test]
fn usage_keys_are_put_in_pydantic_schema_order() {
    let mut m = Message::ai("ok");
    let mut usage = Usage::new(1, 2, 3);
    usage.output_token_details = Some(obj(json!({"reasoning": 1, "audio": 2, "bar": 3})));
    usage.input_token_details = Some(obj(
        json!({"cache_read": 2, "audio": 1, "cache_creation": 0}),
    ));
    usage.extra = obj(json!({"foo": 9}));
    let python = unhex(AI_USAGE_REORDERED);
    m.usage = Some(usage);
    assert_eq!(encode_msgpack(&m.to_value().unwrap()), python);
    // Reading normalizes the same way, so the read message equals the built one.
    let read = Message::from_value(&decode_msgpack(&python).unwrap()).unwrap();
    assert_eq!(encode_msgpack(&read.to_value().unwrap()), python);
}

#[test]
fn human_messages() {
    let mut named = Message::human("hi").with_id("h1");
    named.name = Some("bob".into());
    named.additional_kwargs = obj(json!({"k": 1.5}));
    check_message(HUMAN_NAMED, named);
    check_message(
        HUMAN_UNICODE_LONG,
        Message::human(format!("héllo 👋 {}", "x".repeat(300))).with_id("u1"),
    );
    check_message(HUMAN_CHUNK, Message::new(MessageClass::HumanChunk, "hi"));
}

#[test]
fn system_tool_chat_function_and_remove_messages() {
    check_message(SYSTEM, Message::system("be nice"));
    check_message(SYSTEM_CHUNK, Message::new(MessageClass::SystemChunk, "x"));

    let mut tool = Message::tool("err", "c");
    tool.status = Some("error".into());
    tool.artifact = json!({"a": [1]});
    check_message(TOOL_ERROR, tool);
    let mut tool_chunk = Message::new(MessageClass::ToolChunk, "x");
    tool_chunk.tool_call_id = Some("c".into());
    check_message(TOOL_CHUNK, tool_chunk);

    for (hex, class) in [
        (CHAT, MessageClass::Chat),
        (CHAT_CHUNK, MessageClass::ChatChunk),
    ] {
        let mut chat = Message::new(class, "x");
        chat.role = Some("critic".into());
        check_message(hex, chat);
    }
    for (hex, class) in [
        (FUNCTION, MessageClass::Function),
        (FUNCTION_CHUNK, MessageClass::FunctionChunk),
    ] {
        let mut f = Message::new(class, "x");
        f.name = Some("f".into());
        check_message(hex, f);
    }
    check_message(REMOVE, Message::new(MessageClass::Remove, "").with_id("m1"));
}

#[test]
fn langgraph_types_and_datetimes_match_python() {
    let send = Send {
        node: "n".into(),
        arg: Value::Map(Map::new().with("a", 1i64)),
        timeout: None,
    };
    let interrupt = Interrupt::new("q".into(), "abc");
    let command = Command {
        update: Value::Map(Map::new().with("x", 1i64)),
        goto: "n".into(),
        ..Command::default()
    };
    assert_eq!(encode_msgpack(&send.to_value()), unhex(SEND));
    assert_eq!(encode_msgpack(&interrupt.to_value()), unhex(INTERRUPT));
    assert_eq!(encode_msgpack(&command.to_value()), unhex(COMMAND));
    assert_eq!(
        Send::from_value(&decode_msgpack(&unhex(SEND)).unwrap()).unwrap(),
        send
    );
    assert_eq!(
        Interrupt::from_value(&decode_msgpack(&unhex(INTERRUPT)).unwrap()).unwrap(),
        interrupt
    );
    assert_eq!(
        Command::from_value(&decode_msgpack(&unhex(COMMAND)).unwrap()).unwrap(),
        command
    );
    for hex in [NAIVE_DATETIME, OFFSET_DATETIME] {
        let bytes = unhex(hex);
        let dt = PyDateTime::from_value(&decode_msgpack(&bytes).unwrap()).unwrap();
        assert_eq!(encode_msgpack(&dt.to_value()), bytes);
    }
    // Views refuse the wrong class.
    let not_send = decode_msgpack(&unhex(INTERRUPT)).unwrap();
    assert!(matches!(
        Send::from_value(&not_send),
        Err(CodecError::Shape { .. })
    ));
    assert!(Interrupt::from_value(&Value::Nil).is_err());
    assert!(PyDateTime::from_value(&not_send).is_err());
}

#[test]
fn message_json_is_model_dump_shaped() {
    let mut ai = Message::ai("x");
    ai.tool_calls = vec![ToolCall::new("t", json!({}), None)];
    assert_eq!(
        ai.to_json(),
        json!({"content": "x", "additional_kwargs": {}, "response_metadata": {}, "type": "ai",
               "name": null, "id": null,
               "tool_calls": [{"name": "t", "args": {}, "id": null, "type": "tool_call"}],
               "invalid_tool_calls": [], "usage_metadata": null})
    );
    // Minimal input dicts get LangChain's defaults.
    let m = Message::from_json(&json!({"type": "human", "content": "hey"})).unwrap();
    assert_eq!(m, Message::human("hey"));
    let keys: Vec<String> = m.to_json().as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "content",
            "additional_kwargs",
            "response_metadata",
            "type",
            "name",
            "id"
        ]
    );
}

#[test]
fn unknown_fields_survive_after_the_known_ones() {
    // A message from an older langchain-core with `example` between `id` and `tool_calls`.
    let mut fields = Map::new()
        .with("content", "x")
        .with("additional_kwargs", Map::new())
        .with("response_metadata", Map::new())
        .with("type", "ai")
        .with("name", Value::Nil)
        .with("id", Value::Nil)
        .with("example", false)
        .with("tool_calls", Value::array(vec![]))
        .with("invalid_tool_calls", Value::array(vec![]))
        .with("usage_metadata", Value::Nil);
    let old = waymark_adapters::codec::ext_build::pydantic_v2(
        "langchain_core.messages.ai",
        "AIMessage",
        fields.clone(),
    );
    let m = Message::from_value(&old).unwrap();
    assert_eq!(m.extra.get("example"), Some(&json!(false)));
    let example = fields.entries.remove(6);
    fields.entries.push(example);
    let moved = waymark_adapters::codec::ext_build::pydantic_v2(
        "langchain_core.messages.ai",
        "AIMessage",
        fields,
    );
    assert_eq!(m.to_value().unwrap(), moved);
}

#[test]
fn invalid_messages_are_refused_with_a_reason() {
    let err = |m: Message| m.to_value().unwrap_err().to_string();
    let mut human = Message::human("x");
    human.tool_calls = vec![ToolCall::new("t", json!({}), None)];
    assert!(err(human).contains("HumanMessage has no tool_calls"));
    let mut tool = Message::tool("x", "c");
    tool.tool_call_id = None;
    assert!(err(tool).contains("tool_call_id"));
    assert!(err(Message::new(MessageClass::Chat, "x")).contains("role"));
    assert!(err(Message::new(MessageClass::Function, "x")).contains("name"));
    assert!(err(Message::human(json!({"a": 1}))).contains("content"));
    assert!(Message::from_json(&json!({"type": "robot", "content": ""})).is_err());
    assert!(Message::from_json(&json!({"content": ""})).is_err());
    assert!(
        Message::from_json(&json!({"type": "ai", "content": "", "tool_calls": [{"args": {}}]}))
            .is_err()
    );
    assert!(serde_json::from_value::<Message>(json!({"type": "human", "id": 5})).is_err());

    // A message holding bytes has no JSON form: a clear error naming the field.
    let with_bytes = waymark_adapters::codec::ext_build::pydantic_v2(
        "langchain_core.messages.human",
        "HumanMessage",
        Map::new().with("content", Value::bin(vec![1, 2])),
    );
    let e = Message::from_value(&with_bytes).unwrap_err().to_string();
    assert!(e.contains("content"), "{e}");
    // Not a message at all.
    assert!(Message::from_value(&Value::from("hi")).is_err());
    assert!(MessageView::of(&decode_msgpack(&unhex(SEND)).unwrap()).is_none());
}

#[test]
fn messages_channel_helpers() {
    let messages = vec![
        Message::system("be nice"),
        Message::human("hi").with_id("h1"),
        Message::tool("r", "c1").with_id("t1"),
    ];
    let typed = encode_messages(&messages).unwrap();
    assert_eq!(typed.type_tag(), "msgpack");
    assert_eq!(decode_messages(&typed).unwrap(), messages);
    // The list is exactly Python's elements behind an array header.
    let mut expected = vec![0x93];
    expected.extend(unhex(SYSTEM));
    let elements = &typed.bytes()[..expected.len()];
    assert_eq!(elements, expected);

    assert_eq!(decode_messages(&TypedValue::null()).unwrap(), vec![]);
    assert_eq!(encode_messages(&[]).unwrap().bytes(), [0x90]);
    let not_a_list = TypedValue::msgpack(unhex(SYSTEM));
    assert!(
        decode_messages(&not_a_list)
            .unwrap_err()
            .to_string()
            .contains("list")
    );
    let bad_element = TypedValue::msgpack(vec![0x92, 0xc0, 0x01]);
    assert!(
        decode_messages(&bad_element)
            .unwrap_err()
            .to_string()
            .contains("element 0")
    );
    assert!(decode_messages(&TypedValue::new("pickle", vec![1]).unwrap()).is_err());
    assert!(messages_from_value(&Value::from(1i64)).is_err());
}
