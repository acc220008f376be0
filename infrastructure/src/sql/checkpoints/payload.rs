//! Channel payloads and append deltas.
//!
//! A channel such as `messages` grows by appends: step *n*'s value is step *n−1*'s list plus a
//! message or two. Storing every version whole costs space quadratic in the thread's length
//! (what LangGraph's savers do). A msgpack array is a header followed by its elements back to
//! back, and msgpack values are self-delimiting, so "the new array extends the old one" is
//! exactly "the new body starts with the old body". Such a payload is stored as a **delta**:
//! `data` = the new array's header followed by the appended elements, `base_version` = the
//! version it extends. Reading rebuilds `header + base body + appended`, byte for byte.
//!
//! Chains are bounded: a full snapshot is written when the chain would exceed
//! [`MAX_DEPTH`] deltas or when the deltas since the last snapshot would outweigh the snapshot
//! itself. The second rule makes snapshot sizes at least double from one to the next, so
//! the total stays linear in the final size for threads of up to `MAX_DEPTH` steps between
//! snapshots and grows by `1/MAX_DEPTH` of the quadratic cost beyond.
//!
//! The base of a new delta comes from an in-process cache of the payloads this process wrote
//! last (per thread, namespace and channel). A cold cache (another process, a restart) only
//! means a snapshot is written. The insert of a delta is guarded by the base's existence in
//! the same statement and by a foreign key, so a base deleted meanwhile degrades to a snapshot
//! instead of a dangling reference.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use waymark_domain::{ChannelName, CheckpointNamespace, ThreadId};

/// The longest delta chain.
pub(crate) const MAX_DEPTH: i64 = 64;

/// Bytes of cached payloads kept at most.
const CACHE_BYTES: usize = 64 << 20;

/// The largest payload cached: one beyond the whole budget could never stay, and copying it
/// for the cache would cost a body's size again.
const CACHE_ENTRY_BYTES: usize = CACHE_BYTES;

/// The length of a msgpack array header and the element count, if `bytes` starts with one.
pub(crate) fn array_header(bytes: &[u8]) -> Option<(usize, u64)> {
    match *bytes.first()? {
        b @ 0x90..=0x9f => Some((1, u64::from(b & 0x0f))),
        0xdc => {
            let n = u16::from_be_bytes(bytes.get(1..3)?.try_into().ok()?);
            Some((3, u64::from(n)))
        }
        0xdd => {
            let n = u32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?);
            Some((5, u64::from(n)))
        }
        _ => None,
    }
}

/// The delta bytes of `new` over `base` (both whole msgpack payloads): `new`'s header followed
/// by the elements `new` appends, or `None` when `new` does not strictly extend `base`.
pub(crate) fn delta(base: &[u8], new: &[u8]) -> Option<Vec<u8>> {
    let (bh, bn) = array_header(base)?;
    let (nh, nn) = array_header(new)?;
    let base_body = &base[bh..];
    let new_body = &new[nh..];
    if nn <= bn || new_body.len() <= base_body.len() || !new_body.starts_with(base_body) {
        return None;
    }
    let mut out = Vec::with_capacity(nh + new_body.len() - base_body.len());
    out.extend_from_slice(&new[..nh]);
    out.extend_from_slice(&new_body[base_body.len()..]);
    Some(out)
}

/// Rebuilds a payload from its base (whole) and the deltas above it, `deltas[0]` being the
/// target's own delta and the last one the delta directly on `base`.
pub(crate) fn apply_chain(base: &[u8], deltas: &[&[u8]]) -> Option<Vec<u8>> {
    let (bh, _) = array_header(base)?;
    let (th, _) = array_header(deltas.first()?)?;
    let mut heads = Vec::with_capacity(deltas.len());
    let mut len = th + base.len() - bh;
    for d in deltas {
        let (h, _) = array_header(d)?;
        heads.push(h);
        len += d.len() - h;
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&deltas[0][..th]);
    out.extend_from_slice(&base[bh..]);
    for (d, h) in deltas.iter().zip(heads).rev() {
        out.extend_from_slice(&d[h..]);
    }
    Some(out)
}

/// The last payload this process wrote for one channel.
#[derive(Clone)]
pub(crate) struct CachedPayload {
    /// Its version text.
    pub version: String,
    /// Its serializer tag.
    pub type_tag: String,
    /// The nonce its row was inserted with (see `m0011_payload_nonce`).
    pub nonce: i64,
    /// The whole payload.
    pub bytes: Arc<Vec<u8>>,
    /// Deltas between it and its snapshot (0 for a snapshot).
    pub depth: i64,
    /// Delta bytes written since the snapshot.
    pub chain_bytes: usize,
    /// The snapshot's size.
    pub snapshot_len: usize,
}

impl CachedPayload {
    /// A payload stored whole.
    pub(crate) fn snapshot(
        version: String,
        type_tag: String,
        nonce: i64,
        bytes: Arc<Vec<u8>>,
    ) -> Self {
        Self {
            version,
            type_tag,
            nonce,
            snapshot_len: bytes.len(),
            bytes,
            depth: 0,
            chain_bytes: 0,
        }
    }
}

type Key = (ThreadId, CheckpointNamespace, ChannelName);

/// A fresh payload-row nonce: random, never 0 (the mark of rows older than the column and of
/// copies, which no cache entry names).
pub(crate) fn new_nonce() -> i64 {
    let (high, _) = uuid::Uuid::new_v4().as_u64_pair();
    ((high >> 1) as i64).max(1)
}

#[derive(Default)]
struct CacheState {
    map: HashMap<Key, (u64, CachedPayload)>,
    bytes: usize,
    clock: u64,
}

/// The delta bases: a bounded map from channel to the last payload written for it.
#[derive(Default)]
pub(crate) struct PayloadCache {
    state: Mutex<CacheState>,
}

impl PayloadCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached payload of a channel.
    pub(crate) fn get(
        &self,
        thread: &ThreadId,
        ns: &CheckpointNamespace,
        channel: &ChannelName,
    ) -> Option<CachedPayload> {
        let mut s = self.lock();
        s.clock += 1;
        let now = s.clock;
        let key = (thread.clone(), ns.clone(), channel.clone());
        s.map.get_mut(&key).map(|(used, p)| {
            *used = now;
            p.clone()
        })
    }

    /// Whether a payload of `len` bytes may be cached. Writers ask before copying a value
    /// for the cache and record only those it admits; an older entry of the channel stays a
    /// valid base, since a delta is taken only when the new value extends it.
    pub(crate) fn admits(len: usize) -> bool {
        len <= CACHE_ENTRY_BYTES
    }

    /// Records the payload just written for a channel (one [`Self::admits`]), evicting the
    /// least recently used entries beyond the byte budget.
    pub(crate) fn put(&self, key: Key, payload: CachedPayload) {
        debug_assert!(Self::admits(payload.bytes.len()), "callers check admits");
        let mut s = self.lock();
        s.clock += 1;
        let now = s.clock;
        s.bytes += payload.bytes.len();
        if let Some((_, old)) = s.map.insert(key, (now, payload)) {
            s.bytes -= old.bytes.len();
        }
        if s.bytes > CACHE_BYTES {
            let mut stamps: Vec<u64> = s.map.values().map(|(u, _)| *u).collect();
            stamps.sort_unstable();
            let cutoff = stamps[stamps.len() / 2];
            s.map.retain(|_, (u, _)| *u > cutoff);
            s.bytes = s.map.values().map(|(_, p)| p.bytes.len()).sum();
        }
    }

    /// Forgets every channel of a thread (after deletes).
    pub(crate) fn forget_thread(&self, thread: &ThreadId) {
        let mut s = self.lock();
        s.map.retain(|(t, _, _), _| t != thread);
        s.bytes = s.map.values().map(|(_, p)| p.bytes.len()).sum();
    }

    /// Forgets everything.
    pub(crate) fn clear(&self) {
        let mut s = self.lock();
        s.map.clear();
        s.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(elems: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        rmp::encode::write_array_len(&mut out, elems.len() as u32).unwrap();
        for e in elems {
            out.extend_from_slice(e);
        }
        out
    }

    #[test]
    fn delta_round_trips_across_header_sizes() {
        let e: &[u8] = &[0xa3, b'a', b'b', b'c'];
        let base = array(&vec![e; 15]);
        let new = array(&vec![e; 17]); // fixarray -> array16
        let d = delta(&base, &new).unwrap();
        assert_eq!(d.len(), 3 + 2 * e.len());
        assert_eq!(apply_chain(&base, &[&d]).unwrap(), new);
        let newer = array(&vec![e; 20]);
        let d2 = delta(&new, &newer).unwrap();
        assert_eq!(apply_chain(&base, &[&d2, &d]).unwrap(), newer);
        assert!(delta(&new, &base).is_none());
        assert!(delta(&base, &base).is_none());
        let one: &[u8] = &[0x01];
        let other = array(&[one; 16]);
        assert!(delta(&base, &other).is_none());
        assert!(delta(&[0xc0], &new).is_none());
    }

    #[test]
    fn non_minimal_headers_are_kept_byte_for_byte() {
        let base = vec![0xdc, 0x00, 0x01, 0x05];
        let new = vec![0xdd, 0x00, 0x00, 0x00, 0x02, 0x05, 0x06];
        let d = delta(&base, &new).unwrap();
        assert_eq!(apply_chain(&base, &[&d]).unwrap(), new);
    }
}
