//! The whole-checkpoint msgpack blob of LangGraph's SQLite layout (spec §3.3).
//!
//! Composition embeds each channel value's bytes without understanding them, so the blob is
//! byte-identical to what `SqliteSaver` writes for the same checkpoint; decomposition
//! skip-parses the blob and hands each value back as a typed pair, with the results a Python
//! reader of the whole blob would see (`nil` is null, a `bin` is `bytes`).
//!
//! Key order: the domain [`Checkpoint`] does not record the order of its top-level keys.
//! [`compose_checkpoint_blob`] uses pregel's order (`v, ts, id, channel_values,
//! channel_versions, versions_seen, updated_channels`, then extra keys); to reproduce another
//! writer's order (the conformance suite's, an old blob without `updated_channels`), keep the
//! [`CheckpointKeyOrder`] that [`decompose_checkpoint_blob_ordered`] returns and pass it to
//! [`compose_checkpoint_blob_ordered`].

use std::borrow::Cow;

use indexmap::IndexMap;
use waymark_domain::checkpoint::{ChannelVersion, ChannelVersions, Checkpoint, TypedValue};
use waymark_domain::{ChannelName, CheckpointId};

use super::error::CodecError;
use super::read::{Reader, validate_msgpack};
use super::value::{Value, Width};
use super::write::{
    write_array_header, write_bin_header, write_map_header, write_plain_str, write_value,
};

const V: &str = "v";
const TS: &str = "ts";
const ID: &str = "id";
const CHANNEL_VALUES: &str = "channel_values";
const CHANNEL_VERSIONS: &str = "channel_versions";
const VERSIONS_SEEN: &str = "versions_seen";
const UPDATED_CHANNELS: &str = "updated_channels";

const REQUIRED: [&str; 6] = [V, TS, ID, CHANNEL_VALUES, CHANNEL_VERSIONS, VERSIONS_SEEN];

/// The order of a checkpoint's top-level keys in a blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckpointKeyOrder(Vec<String>);

impl CheckpointKeyOrder {
    /// The order of the map pregel hands to `put` (langgraph 1.x).
    pub fn pregel() -> CheckpointKeyOrder {
        CheckpointKeyOrder(
            [
                V,
                TS,
                ID,
                CHANNEL_VALUES,
                CHANNEL_VERSIONS,
                VERSIONS_SEEN,
                UPDATED_CHANNELS,
            ]
            .map(str::to_owned)
            .to_vec(),
        )
    }

    /// The order of the conformance suite's checkpoint generator.
    pub fn conformance() -> CheckpointKeyOrder {
        CheckpointKeyOrder(
            [
                V,
                ID,
                TS,
                CHANNEL_VALUES,
                CHANNEL_VERSIONS,
                VERSIONS_SEEN,
                "pending_sends",
                UPDATED_CHANNELS,
            ]
            .map(str::to_owned)
            .to_vec(),
        )
    }

    /// An explicit order; repeated keys are refused.
    pub fn new(keys: Vec<String>) -> Result<CheckpointKeyOrder, CodecError> {
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].contains(k) {
                return Err(CodecError::shape(
                    "checkpoint key order",
                    format!("key {k:?} repeats"),
                ));
            }
        }
        Ok(CheckpointKeyOrder(keys))
    }

    /// The keys.
    pub fn keys(&self) -> &[String] {
        &self.0
    }

    /// The keys actually written for `checkpoint`: the listed keys the checkpoint has (the
    /// required ones always, `updated_channels` when listed or set, extra keys when present),
    /// then whatever the order leaves out, in pregel's order and the extras' own order.
    fn resolve<'a>(&'a self, checkpoint: &'a Checkpoint) -> Vec<&'a str> {
        let has = |k: &str| {
            REQUIRED.contains(&k) || (k == UPDATED_CHANNELS) || checkpoint.extra.contains_key(k)
        };
        let mut keys: Vec<&str> = self
            .0
            .iter()
            .map(String::as_str)
            .filter(|k| has(k))
            .collect();
        for k in REQUIRED {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        if checkpoint.updated_channels.is_some() && !keys.contains(&UPDATED_CHANNELS) {
            keys.push(UPDATED_CHANNELS);
        }
        for k in checkpoint.extra.keys() {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
        keys
    }
}

impl Default for CheckpointKeyOrder {
    fn default() -> Self {
        CheckpointKeyOrder::pregel()
    }
}

/// Composes the SQLite `checkpoints.checkpoint` blob (tag `msgpack`) in pregel's key order.
///
/// Fails when a channel value or extra key carries a tag that cannot be embedded (anything
/// but `msgpack`, `null`, `bytes`, `bytearray`) or msgpack bytes that are not exactly one
/// well-formed document.
pub fn compose_checkpoint_blob(checkpoint: &Checkpoint) -> Result<Vec<u8>, CodecError> {
    compose_checkpoint_blob_ordered(checkpoint, &CheckpointKeyOrder::pregel())
}

/// Composes the blob with the top-level keys in `order` (see [`CheckpointKeyOrder`]).
pub fn compose_checkpoint_blob_ordered(
    checkpoint: &Checkpoint,
    order: &CheckpointKeyOrder,
) -> Result<Vec<u8>, CodecError> {
    checkpoint_blob_parts_ordered(checkpoint, order).map(|parts| parts.concat())
}

/// The blob of [`compose_checkpoint_blob`] as pieces that borrow the large channel values.
///
/// A store that can write a blob in place (SQLite's incremental blob I/O) learns the length
/// first and then writes the pieces one by one, so a large value is never copied into a
/// second whole-blob buffer.
pub fn checkpoint_blob_parts(
    checkpoint: &Checkpoint,
) -> Result<CheckpointBlobParts<'_>, CodecError> {
    checkpoint_blob_parts_ordered(checkpoint, &CheckpointKeyOrder::pregel())
}

/// [`checkpoint_blob_parts`] with the top-level keys in `order`.
pub fn checkpoint_blob_parts_ordered<'a>(
    checkpoint: &'a Checkpoint,
    order: &CheckpointKeyOrder,
) -> Result<CheckpointBlobParts<'a>, CodecError> {
    let keys = order.resolve(checkpoint);
    let mut out = CheckpointBlobParts::default();
    write_map_header(out.open(), Width::Minimal, keys.len());
    for key in keys {
        write_plain_str(out.open(), key);
        match key {
            V => write_value(out.open(), &Value::from(checkpoint.v)),
            TS => write_plain_str(out.open(), &checkpoint.ts),
            ID => write_plain_str(out.open(), checkpoint.id.as_str()),
            CHANNEL_VALUES => {
                write_map_header(out.open(), Width::Minimal, checkpoint.channel_values.len());
                for (channel, value) in &checkpoint.channel_values {
                    write_plain_str(out.open(), channel.as_str());
                    embed(&mut out, channel.as_str(), value)?;
                }
            }
            CHANNEL_VERSIONS => write_versions(out.open(), &checkpoint.channel_versions),
            VERSIONS_SEEN => {
                write_map_header(out.open(), Width::Minimal, checkpoint.versions_seen.len());
                for (node, versions) in &checkpoint.versions_seen {
                    write_plain_str(out.open(), node);
                    write_versions(out.open(), versions);
                }
            }
            UPDATED_CHANNELS => match &checkpoint.updated_channels {
                None => write_value(out.open(), &Value::Nil),
                Some(channels) => {
                    write_array_header(out.open(), Width::Minimal, channels.len());
                    for c in channels {
                        write_plain_str(out.open(), c.as_str());
                    }
                }
            },
            extra => {
                let value = checkpoint.extra.get(extra).ok_or_else(|| {
                    CodecError::shape("checkpoint", format!("extra key {extra:?} vanished"))
                })?;
                embed(&mut out, extra, value)?;
            }
        }
    }
    out.close();
    Ok(out)
}

/// Values at least this long are borrowed rather than copied into a piece.
const BORROW_FROM: usize = 4096;

/// A checkpoint blob as consecutive pieces: small encoded parts owned, large channel values
/// borrowed from the checkpoint.
#[derive(Debug, Default)]
pub struct CheckpointBlobParts<'a> {
    pieces: Vec<Cow<'a, [u8]>>,
    open: Vec<u8>,
    len: usize,
}

impl<'a> CheckpointBlobParts<'a> {
    /// The length of the whole blob in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the blob is empty (never, for a composed checkpoint).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces in order; concatenated they are the blob.
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        self.pieces.iter().map(|p| p.as_ref())
    }

    /// The whole blob in one buffer.
    pub fn concat(&self) -> Vec<u8> {
        let mut blob = Vec::with_capacity(self.len);
        for piece in &self.pieces {
            blob.extend_from_slice(piece);
        }
        blob
    }

    /// The piece being encoded into.
    fn open(&mut self) -> &mut Vec<u8> {
        &mut self.open
    }

    /// Appends `bytes` as they are: copied when small, borrowed when large.
    fn append(&mut self, bytes: &'a [u8]) {
        if bytes.len() < BORROW_FROM {
            self.open.extend_from_slice(bytes);
        } else {
            self.close();
            self.len += bytes.len();
            self.pieces.push(Cow::Borrowed(bytes));
        }
    }

    /// Ends the open piece.
    fn close(&mut self) {
        if !self.open.is_empty() {
            let piece = std::mem::take(&mut self.open);
            self.len += piece.len();
            self.pieces.push(Cow::Owned(piece));
        }
    }
}

/// Writes a typed value inside the blob (spec §3.3 step 2.2).
fn embed<'a>(
    out: &mut CheckpointBlobParts<'a>,
    key: &str,
    value: &'a TypedValue,
) -> Result<(), CodecError> {
    match value.type_tag() {
        TypedValue::MSGPACK => {
            validate_msgpack(value.bytes()).map_err(|e| CodecError::Invalid {
                field: format!("channel_values.{key}"),
                reason: e.to_string(),
            })?;
            out.append(value.bytes());
        }
        TypedValue::NULL => write_value(out.open(), &Value::Nil),
        TypedValue::BYTES | TypedValue::BYTEARRAY => {
            write_bin_header(out.open(), value.bytes().len());
            out.append(value.bytes());
        }
        tag => {
            return Err(CodecError::Unembeddable {
                key: key.to_owned(),
                tag: tag.to_owned(),
            });
        }
    }
    Ok(())
}

fn write_versions(out: &mut Vec<u8>, versions: &ChannelVersions) {
    write_map_header(out, Width::Minimal, versions.len());
    for (channel, version) in versions {
        write_plain_str(out, channel.as_str());
        match version {
            ChannelVersion::Int(i) => write_value(out, &Value::from(*i)),
            ChannelVersion::Float(f) => write_value(out, &Value::F64(*f)),
            ChannelVersion::Str(s) => write_plain_str(out, s),
        }
    }
}

/// Decomposes a blob in pregel's key order (see [`decompose_checkpoint_blob_ordered`]).
pub fn decompose_checkpoint_blob(blob: &[u8]) -> Result<Checkpoint, CodecError> {
    decompose_checkpoint_blob_ordered(blob).map(|(c, _)| c)
}

/// Decomposes a blob into a checkpoint and the order of its top-level keys.
///
/// Channel values and extra keys come back as `("msgpack", element bytes)`, except `nil`
/// (`null`) and a msgpack `bin` (`("bytes", data)`), which is what Python reading the whole
/// blob gets. `v`, `ts`, `id`, `channel_values`, `channel_versions` and `versions_seen` are
/// required; `updated_channels` may be absent or nil.
pub fn decompose_checkpoint_blob_ordered(
    blob: &[u8],
) -> Result<(Checkpoint, CheckpointKeyOrder), CodecError> {
    const WHAT: &str = "checkpoint blob";
    let mut r = Reader::new(blob);
    let n = r.map_header()?;
    let mut keys: Vec<String> = Vec::with_capacity(n);
    let mut seen_keys = std::collections::HashSet::with_capacity(n);
    let mut v = None;
    let mut ts = None;
    let mut id = None;
    let mut channel_values = None;
    let mut channel_versions = None;
    let mut versions_seen = None;
    let mut updated_channels = None;
    let mut extra = IndexMap::new();
    for _ in 0..n {
        let key = read_text(&mut r, WHAT, "a top-level key")?;
        if !seen_keys.insert(key.clone()) {
            return Err(CodecError::shape(WHAT, format!("key {key:?} repeats")));
        }
        match key.as_str() {
            V => {
                v = Some(
                    r.value(1)?
                        .as_i64()
                        .ok_or_else(|| CodecError::shape(WHAT, "v is not a 64-bit integer"))?,
                )
            }
            TS => ts = Some(read_text(&mut r, WHAT, "ts")?),
            ID => {
                id = Some(
                    CheckpointId::parse(read_text(&mut r, WHAT, "id")?)
                        .map_err(|e| CodecError::from_domain("id", e))?,
                )
            }
            CHANNEL_VALUES => {
                let m = r.map_header()?;
                let mut values = IndexMap::with_capacity(m);
                for _ in 0..m {
                    let name = channel(read_text(&mut r, WHAT, "a channel name")?)?;
                    let value = read_element(&mut r)?;
                    values.insert(name, value);
                }
                channel_values = Some(values);
            }
            CHANNEL_VERSIONS => channel_versions = Some(versions(&r.value(1)?, CHANNEL_VERSIONS)?),
            VERSIONS_SEEN => {
                let value = r.value(1)?;
                let map = value
                    .as_map()
                    .ok_or_else(|| CodecError::shape(WHAT, "versions_seen is not a map"))?;
                let mut seen = IndexMap::with_capacity(map.len());
                for (node, vs) in &map.entries {
                    let node = node.as_str().ok_or_else(|| {
                        CodecError::shape(WHAT, "a versions_seen key is not text")
                    })?;
                    seen.insert(node.to_owned(), versions(vs, VERSIONS_SEEN)?);
                }
                versions_seen = Some(seen);
            }
            UPDATED_CHANNELS => {
                updated_channels = match r.value(1)? {
                    Value::Nil => None,
                    Value::Array(a) => Some(
                        a.items
                            .iter()
                            .map(|c| {
                                c.as_str()
                                    .ok_or_else(|| {
                                        CodecError::shape(WHAT, "an updated channel is not text")
                                    })
                                    .and_then(|c| channel(c.to_owned()))
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                    other => {
                        return Err(CodecError::shape(
                            WHAT,
                            format!("updated_channels is {}", other.kind()),
                        ));
                    }
                }
            }
            other => {
                extra.insert(other.to_owned(), read_element(&mut r)?);
            }
        }
        keys.push(key);
    }
    r.finish()?;
    let missing = |k: &str| CodecError::shape(WHAT, format!("key {k:?} is missing"));
    let checkpoint = Checkpoint {
        v: v.ok_or_else(|| missing(V))?,
        id: id.ok_or_else(|| missing(ID))?,
        ts: ts.ok_or_else(|| missing(TS))?,
        channel_values: channel_values.ok_or_else(|| missing(CHANNEL_VALUES))?,
        channel_versions: channel_versions.ok_or_else(|| missing(CHANNEL_VERSIONS))?,
        versions_seen: versions_seen.ok_or_else(|| missing(VERSIONS_SEEN))?,
        updated_channels,
        extra,
    };
    Ok((checkpoint, CheckpointKeyOrder(keys)))
}

fn read_text(r: &mut Reader<'_>, what: &'static str, field: &str) -> Result<String, CodecError> {
    match r.value(1)? {
        Value::Str(s) => s
            .as_str()
            .map(str::to_owned)
            .ok_or(CodecError::InvalidUtf8 { what }),
        other => Err(CodecError::shape(
            what,
            format!("{field} is {}, not text", other.kind()),
        )),
    }
}

fn channel(name: String) -> Result<ChannelName, CodecError> {
    ChannelName::parse(name).map_err(|e| CodecError::from_domain("channel", e))
}

/// One embedded value as a typed pair, Python's view of it.
fn read_element(r: &mut Reader<'_>) -> Result<TypedValue, CodecError> {
    let start = r.pos();
    r.skip(2)?;
    let bytes = r.since(start);
    match bytes.first() {
        Some(0xc0) => Ok(TypedValue::null()),
        Some(0xc4..=0xc6) => {
            let Value::Bin(bin) = Reader::new(bytes).value(0)? else {
                return Err(CodecError::shape(
                    "checkpoint blob",
                    "a bin marker without a bin",
                ));
            };
            let data = bin.data;
            TypedValue::new(TypedValue::BYTES, data)
                .map_err(|e| CodecError::from_domain("value", e))
        }
        _ => Ok(TypedValue::msgpack(bytes.to_vec())),
    }
}

fn versions(value: &Value, what_key: &str) -> Result<ChannelVersions, CodecError> {
    const WHAT: &str = "checkpoint blob";
    let map = value
        .as_map()
        .ok_or_else(|| CodecError::shape(WHAT, format!("{what_key} is not a map")))?;
    let mut out = IndexMap::with_capacity(map.len());
    for (k, v) in &map.entries {
        let name = channel(
            k.as_str()
                .ok_or_else(|| CodecError::shape(WHAT, format!("a {what_key} key is not text")))?
                .to_owned(),
        )?;
        let version = match v {
            Value::Int(i) => ChannelVersion::Int(i.as_i64().ok_or_else(|| {
                CodecError::shape(WHAT, format!("version of {name} exceeds 64 bits"))
            })?),
            Value::F64(f) => ChannelVersion::Float(*f),
            Value::F32(f) => ChannelVersion::Float(*f as f64),
            Value::Str(s) => ChannelVersion::Str(
                s.as_str()
                    .ok_or(CodecError::InvalidUtf8 {
                        what: "a channel version",
                    })?
                    .to_owned(),
            ),
            other => {
                return Err(CodecError::shape(
                    WHAT,
                    format!("version of {name} is {}", other.kind()),
                ));
            }
        };
        out.insert(name, version);
    }
    Ok(out)
}
