//! Beyond the conformance suite: payload fidelity.

use indexmap::IndexMap;
use serde_json::json;
use waymark_domain::CheckpointId;
use waymark_domain::checkpoint::{ChannelVersion, TypedValue};

use super::helpers::*;
use crate::contract::fixtures::*;
use crate::harness::TestBackend;

/// The whole checkpoint comes back equal: `v`, `ts`, values, int and string versions,
/// `versions_seen`, `updated_channels` and unknown top-level keys in their order.
pub async fn checkpoint_round_trips_whole(b: &TestBackend) {
    let thread = thread_id();
    let mut cp = checkpoint(
        CheckpointId::generate(3),
        &[
            (
                "messages",
                TypedValue::msgpack(mp::array(vec![mp::str("hi")])),
            ),
            ("count", mp_int(-7)),
        ],
    );
    cp.v = 4;
    cp.ts = "2026-11-21T10:45:31.999013+00:00".into();
    cp.channel_versions.insert(
        ch("messages"),
        ChannelVersion::Str("00000000000000000000000000000002.0.9006228878075907".into()),
    );
    cp.versions_seen.insert("__input__".into(), IndexMap::new());
    cp.versions_seen.insert(
        "agent".into(),
        IndexMap::from([
            (
                ch("messages"),
                ChannelVersion::Str("00000000000000000000000000000001.0.5".into()),
            ),
            (ch("count"), ChannelVersion::Int(1)),
        ]),
    );
    cp.updated_channels = Some(vec![ch("count"), ch("messages")]);
    cp.extra.insert(
        "future_key".into(),
        TypedValue::msgpack(mp::map(vec![("x", mp::int(1))])),
    );
    let r = b
        .stores
        .checkpoints
        .put(put_of(
            &thread,
            &root(),
            None,
            cp.clone(),
            meta("loop", 3, json!({})),
        ))
        .await
        .unwrap();
    assert_eq!(get(b, &r).await.unwrap().checkpoint, cp);
}

/// Channel versions keep their type: an int stays an int, a string stays that string.
pub async fn channel_version_types_are_preserved(b: &TestBackend) {
    let thread = thread_id();
    let s = ChannelVersion::Str("00000000000000000000000000000007.0.123456789".into());
    let mut cp = checkpoint(
        CheckpointId::generate(0),
        &[("i", mp_int(1)), ("s", mp_int(2))],
    );
    cp.channel_versions.insert(ch("i"), ChannelVersion::Int(3));
    cp.channel_versions.insert(ch("s"), s.clone());
    let r = b
        .stores
        .checkpoints
        .put(put_of(
            &thread,
            &root(),
            None,
            cp,
            meta("loop", 0, json!({})),
        ))
        .await
        .unwrap();
    let t = get(b, &r).await.unwrap();
    assert_eq!(
        t.checkpoint.channel_versions[&ch("i")],
        ChannelVersion::Int(3)
    );
    assert_eq!(t.checkpoint.channel_versions[&ch("s")], s);
    assert_eq!(
        value(&t, "s"),
        Some(mp_int(2)),
        "values found through string versions"
    );
}

/// Any format version is stored and returned as given, never rejected.
pub async fn any_format_version_is_kept(b: &TestBackend) {
    for v in [1, 2, 4, 99] {
        let thread = thread_id();
        let mut cp = checkpoint(CheckpointId::generate(0), &[]);
        cp.v = v;
        let r = b
            .stores
            .checkpoints
            .put(put_of(
                &thread,
                &root(),
                None,
                cp,
                meta("loop", 0, json!({})),
            ))
            .await
            .unwrap();
        assert_eq!(get(b, &r).await.unwrap().checkpoint.v, v);
    }
}

/// msgpack payloads of every length form and raw `bytes` (NUL and high bytes included) come
/// back byte-for-byte.
pub async fn payload_bytes_round_trip_exactly(b: &TestBackend) {
    let thread = thread_id();
    let raw: Vec<u8> = (0..=255u8).collect();
    let values = vec![
        ("fix", mp_str("hello")),
        ("str8", mp_str(&"x".repeat(200))),
        ("str16", mp_str(&"é".repeat(1000))),
        ("u64", mp_int(i64::MAX)),
        ("neg", mp_int(-40_000)),
        (
            "bytes",
            TypedValue::new(TypedValue::BYTES, raw.clone()).unwrap(),
        ),
        (
            "empty_bytes",
            TypedValue::new(TypedValue::BYTES, vec![]).unwrap(),
        ),
    ];
    let r = put_simple(
        b,
        &thread,
        &root(),
        None,
        &values,
        meta("loop", 0, json!({})),
    )
    .await;
    let t = get(b, &r).await.unwrap();
    for (name, v) in values {
        assert_eq!(value(&t, name), Some(v), "channel {name}");
    }
}

/// Values of several MiB (stores may insert them by another route than small ones, and write
/// one of 17 MiB in pieces) come back byte for byte, next to small ones in the same put; a
/// second put carrying the same versions stores nothing twice and reads back the same.
pub async fn large_values_round_trip_exactly(b: &TestBackend) {
    let thread = thread_id();
    let big: Vec<u8> = (0..17 * 1024 * 1024 + 7)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let text: String = (0..2 * 1024 * 1024 + 3)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let values = vec![
        ("raw", TypedValue::new(TypedValue::BYTES, big).unwrap()),
        ("packed", mp_str(&text)),
        ("small", mp_str("hello")),
    ];
    let first = put_simple(
        b,
        &thread,
        &root(),
        None,
        &values,
        meta("loop", 0, json!({})),
    )
    .await;
    let t = get(b, &first).await.unwrap();
    for (name, v) in &values {
        assert_eq!(value(&t, name).as_ref(), Some(v), "channel {name}");
    }
    // The same values again under a new checkpoint (versions unchanged).
    let second = put_simple(
        b,
        &thread,
        &root(),
        Some(&first.checkpoint_id),
        &values,
        meta("loop", 1, json!({})),
    )
    .await;
    let t = get(b, &second).await.unwrap();
    for (name, v) in &values {
        assert_eq!(
            value(&t, name).as_ref(),
            Some(v),
            "channel {name} after a re-put"
        );
    }
}

/// Write values keep every serializer tag and their bytes: `bytes`, `bytearray`, legacy
/// `json`, `pickle`, encrypted `msgpack+aes`.
pub async fn write_values_keep_opaque_tags(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    let vals = vec![
        (
            "bytes",
            TypedValue::new("bytes", vec![0, 1, 2, 0xff]).unwrap(),
        ),
        (
            "bytearray",
            TypedValue::new("bytearray", vec![9, 0]).unwrap(),
        ),
        (
            "json",
            TypedValue::new("json", br#"{"a": 1}"#.to_vec()).unwrap(),
        ),
        (
            "pickle",
            TypedValue::new("pickle", vec![0x80, 0x05, 0x4b, 0x01, 0x2e]).unwrap(),
        ),
        (
            "aes",
            TypedValue::new("msgpack+aes", (0..48u8).collect()).unwrap(),
        ),
    ];
    b.stores
        .checkpoints
        .put_writes(writes(&r, &fresh_task(), "", vals.clone()))
        .await
        .unwrap();
    let got: Vec<(String, TypedValue)> = get(b, &r)
        .await
        .unwrap()
        .pending_writes
        .iter()
        .map(|w| (w.channel.to_string(), w.value.clone()))
        .collect();
    let want: Vec<(String, TypedValue)> =
        vals.into_iter().map(|(c, v)| (c.to_owned(), v)).collect();
    assert_eq!(got, want);
}

/// Channel values with opaque tags (`pickle`, `msgpack+aes`) round-trip on layouts that store
/// values separately; a layout that embeds every value in one msgpack document refuses them
/// with `InvalidInput` and writes nothing.
pub async fn opaque_channel_values_round_trip_or_are_refused(b: &TestBackend) {
    let thread = thread_id();
    let vals = [
        (
            "p",
            TypedValue::new("pickle", vec![0x80, 0x05, 0x4b, 0x01, 0x2e]).unwrap(),
        ),
        (
            "e",
            TypedValue::new("msgpack+aes", (0..40u8).collect()).unwrap(),
        ),
    ];
    let cp = checkpoint(CheckpointId::generate(0), &vals);
    let res = b
        .stores
        .checkpoints
        .put(put_of(
            &thread,
            &root(),
            None,
            cp,
            meta("loop", 0, json!({})),
        ))
        .await;
    if b.opaque_channel_values() {
        let r = res.expect("opaque values are stored");
        let t = get(b, &r).await.unwrap();
        for (name, v) in vals {
            assert_eq!(value(&t, name), Some(v));
        }
    } else {
        expect_invalid(res);
        assert!(list_thread(b, &thread).await.is_empty(), "nothing written");
    }
}

/// A null write is stored as tag `null` with zero bytes.
pub async fn null_write_is_null_tag_with_no_bytes(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    b.stores
        .checkpoints
        .put_writes(writes(
            &r,
            &fresh_task(),
            "",
            vec![("branch:to:agent", TypedValue::null())],
        ))
        .await
        .unwrap();
    let w = get(b, &r).await.unwrap().pending_writes.remove(0);
    assert_eq!(w.value.type_tag(), "null");
    assert!(w.value.bytes().is_empty());
}

/// A null channel value reads back as nil: tag `null`, or msgpack `c0` on layouts that embed
/// values in one msgpack document.
pub async fn null_channel_value_reads_back_as_nil(b: &TestBackend) {
    let thread = thread_id();
    let r = put_simple(
        b,
        &thread,
        &root(),
        None,
        &[("branch:to:agent", TypedValue::null())],
        meta("loop", 0, json!({})),
    )
    .await;
    let v = value(&get(b, &r).await.unwrap(), "branch:to:agent").expect("channel present");
    assert!(
        v.is_null() || v == TypedValue::msgpack(mp::nil()),
        "nil expected, got {v:?}"
    );
}

/// Putting an existing key again replaces the checkpoint's content and metadata (one row).
pub async fn put_replaces_existing_key(b: &TestBackend) {
    let thread = thread_id();
    let id = CheckpointId::generate(0);
    for (val, step) in [("old", 1), ("new", 2)] {
        let mut cp = checkpoint(id.clone(), &[("v", mp_str(val))]);
        // A new value needs a new version: values are addressed by (channel, version).
        cp.channel_versions
            .insert(ch("v"), ChannelVersion::Int(step));
        b.stores
            .checkpoints
            .put(put_of(
                &thread,
                &root(),
                None,
                cp,
                meta("loop", step, json!({})),
            ))
            .await
            .unwrap();
    }
    let all = list_thread(b, &thread).await;
    assert_eq!(all.len(), 1);
    assert_eq!(value(&all[0], "v"), Some(mp_str("new")));
    assert_eq!(all[0].metadata.step(), Some(2));
}

/// Metadata round-trips as given: nested objects, arrays, nulls, unicode, floats and 64-bit
/// integers. (Key order is not asserted: PostgreSQL's jsonb, which LangGraph's layout uses,
/// does not keep it.)
pub async fn metadata_round_trips_verbatim(b: &TestBackend) {
    let thread = thread_id();
    let m = json!({
        "source": "update", "step": 5, "parents": {"": "abc"},
        "zeta": {"b": [1, {"c": null}], "a": true}, "unicode": "héllo ✓", "float": 1.5,
        "neg": -3, "big": i64::MAX
    });
    let r = put_meta(b, &thread, &root(), None, m.clone()).await;
    let t = get(b, &r).await.unwrap();
    assert_eq!(serde_json::Value::Object(t.metadata.0.clone()), m);
}
