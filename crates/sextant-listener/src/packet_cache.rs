//! The packet cache: complete wire answers from backends, keyed on the question and
//! the flags that change an answer, served with only the ID and the question's case
//! patched. Entries are tied to the zone-set generation they were answered under, so
//! a newly published zone version makes every older entry stale at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quick_cache::Equivalent;
use sextant_wire::HEADER_LEN;
use sextant_wire::QueryView;

/// Key bytes: flags, QTYPE, QCLASS, then the lower-cased wire name. Owned form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey(Box<[u8]>);

/// The same bytes, borrowed from a stack buffer for lookups without allocation.
#[derive(Debug, Hash)]
struct KeyRef<'a>(&'a [u8]);

impl Equivalent<CacheKey> for KeyRef<'_> {
    fn equivalent(&self, key: &CacheKey) -> bool {
        *self.0 == *key.0
    }
}

const FLAG_RD: u8 = 1;
const FLAG_CD: u8 = 2;
const FLAG_EDNS: u8 = 4;
const FLAG_DO: u8 = 8;
/// AD in a query asks for the AD bit in the answer (RFC 6840 §5.7): a resolver's
/// answer differs with it.
const FLAG_AD: u8 = 16;
/// 5 bytes of flags and types plus the longest wire name.
const KEY_MAX: usize = 5 + 255;

/// Writes the key of `view` into `buffer`, returning its length.
fn key_bytes(view: &QueryView, buffer: &mut [u8; KEY_MAX]) -> usize {
    let header = &view.header;
    let mut flags = 0;
    if header.recursion_desired() {
        flags |= FLAG_RD;
    }
    if header.checking_disabled() {
        flags |= FLAG_CD;
    }
    if header.flags & sextant_wire::flags::AD != 0 {
        flags |= FLAG_AD;
    }
    if let Some(edns) = view.edns {
        flags |= FLAG_EDNS;
        if edns.dnssec_ok {
            flags |= FLAG_DO;
        }
    }
    let name = view.question.name_wire();
    buffer[0] = flags;
    buffer[1..3].copy_from_slice(&view.question.qtype.to_be_bytes());
    buffer[3..5].copy_from_slice(&view.question.qclass.to_be_bytes());
    buffer[5..5 + name.len()].copy_from_slice(name);
    5 + name.len()
}

impl CacheKey {
    pub(crate) fn of(view: &QueryView) -> Self {
        let mut buffer = [0u8; KEY_MAX];
        let len = key_bytes(view, &mut buffer);
        CacheKey(buffer[..len].into())
    }
}

#[derive(Clone, Debug)]
struct Entry {
    wire: Bytes,
    generation: u64,
    stored: Instant,
    expires: Instant,
    /// TTL positions to count down on a hit; empty for answers that do not age.
    ttl_offsets: Box<[usize]>,
}

#[derive(Clone, Copy, Debug, Default)]
struct EntryWeighter;

impl quick_cache::Weighter<CacheKey, Entry> for EntryWeighter {
    fn weight(&self, key: &CacheKey, entry: &Entry) -> u64 {
        // What an entry really holds, so that the limit means memory: key and entry
        // in the cache's slot and index, the key's and the answer's heap blocks
        // (rounded up as the allocator does), the shared header a served answer
        // gets, and the TTL positions. A 64 MiB cache of NXDOMAIN answers under a
        // random-name flood held 1.5 times its budget while this counted only the
        // bytes.
        let slot = (std::mem::size_of::<CacheKey>() + std::mem::size_of::<Entry>()) as u64 + 48;
        let heap = rounded(key.0.len()) + rounded(entry.wire.len()) + 32;
        let offsets = (entry.ttl_offsets.len() * std::mem::size_of::<usize>()) as u64;
        slot + heap + offsets
    }
}

/// A heap block's real size: small allocations come in 16-byte steps.
fn rounded(len: usize) -> u64 {
    (len as u64).div_ceil(16) * 16
}

#[derive(Debug)]
pub(crate) struct PacketCache {
    entries: quick_cache::sync::Cache<CacheKey, Entry, EntryWeighter>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

/// A typical cached answer, bytes; used to size the cache's index.
const TYPICAL_ENTRY: u64 = 256;

impl PacketCache {
    /// A cache holding at most about `capacity_bytes` of answers.
    pub(crate) fn new(capacity_bytes: u64) -> Self {
        let items = usize::try_from(capacity_bytes / TYPICAL_ENTRY)
            .unwrap_or(usize::MAX)
            .max(16);
        Self {
            entries: quick_cache::sync::Cache::with_weighter(
                items,
                capacity_bytes.max(1),
                EntryWeighter,
            ),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached answer to `packet`, patched with its ID and question case, if one is
    /// fresh, from `generation`, and fits in `max_size` bytes.
    pub(crate) fn answer(
        &self,
        packet: &[u8],
        view: &QueryView,
        generation: u64,
        max_size: u16,
    ) -> Option<Vec<u8>> {
        let mut buffer = [0u8; KEY_MAX];
        let len = key_bytes(view, &mut buffer);
        let hit = self
            .entries
            .get(&KeyRef(&buffer[..len]))
            .filter(|e| {
                e.generation == generation
                    && e.expires > Instant::now()
                    && e.wire.len() <= usize::from(max_size)
            })
            .and_then(|e| {
                let mut out = patch(&e.wire, packet, view.question_end)?;
                if !e.ttl_offsets.is_empty() {
                    let age = u32::try_from(e.stored.elapsed().as_secs()).unwrap_or(u32::MAX);
                    sextant_wire::age_ttls(&mut out, &e.ttl_offsets, age);
                }
                Some(out)
            });
        let counter = if hit.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        crate::stats::cache(hit.is_some());
        hit
    }

    /// Stores a backend's answer for `ttl` seconds (0: not stored). With `ages`, the
    /// TTLs handed out count down with the time spent in the cache.
    pub(crate) fn store(&self, key: CacheKey, wire: Bytes, generation: u64, ttl: u32, ages: bool) {
        if ttl == 0 || wire.len() < HEADER_LEN {
            return;
        }
        let ttl_offsets = if ages {
            match sextant_wire::ttl_offsets(&wire) {
                Some(offsets) => offsets.into_boxed_slice(),
                None => return, // cannot age it: do not keep it
            }
        } else {
            Box::default()
        };
        let stored = Instant::now();
        let expires = stored + Duration::from_secs(u64::from(ttl));
        self.entries.insert(
            key,
            Entry {
                wire,
                generation,
                stored,
                expires,
                ttl_offsets,
            },
        );
    }

    /// What the answers kept now weigh, bytes (as counted against the budget).
    pub(crate) fn bytes(&self) -> u64 {
        self.entries.weight()
    }

    /// The budget, bytes.
    pub(crate) fn budget(&self) -> u64 {
        self.entries.capacity()
    }

    /// Answers kept now.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }
}

/// Copies `cached` with the query's ID and the query's spelling of the question (the
/// same name, so the same length; only the case may differ).
fn patch(cached: &[u8], packet: &[u8], question_end: usize) -> Option<Vec<u8>> {
    let question = packet.get(HEADER_LEN..question_end)?;
    // Room for the cookie option the frontend may add, so that adding it does not
    // move the answer again.
    let mut out = Vec::with_capacity(cached.len() + usize::from(crate::cookie::OPTION_LEN));
    out.extend_from_slice(cached);
    out.get_mut(HEADER_LEN..question_end)?
        .copy_from_slice(question);
    out.get_mut(0..2)?.copy_from_slice(packet.get(0..2)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sextant_wire::parse_query;

    fn query(id: u16, name: &[u8]) -> Vec<u8> {
        let mut p = id.to_be_bytes().to_vec();
        p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(name);
        p.extend_from_slice(&[0, 1, 0, 1]);
        p
    }

    fn answer_to(q: &[u8]) -> Vec<u8> {
        let mut a = q.to_vec();
        a[2] |= 0x84;
        a
    }

    #[test]
    fn hit_patches_id_and_case_miss_on_new_generation() {
        let cache = PacketCache::new(1 << 20);
        let first = query(1, b"\x03www\x07example\x03com\x00");
        let view = parse_query(&first).unwrap();
        assert!(cache.answer(&first, &view, 7, 512).is_none());
        cache.store(
            CacheKey::of(&view),
            Bytes::from(answer_to(&first)),
            7,
            60,
            false,
        );

        let second = query(2, b"\x03WwW\x07example\x03COM\x00");
        let view2 = parse_query(&second).unwrap();
        let hit = cache.answer(&second, &view2, 7, 512).unwrap();
        assert_eq!(&hit[0..2], &[0, 2]);
        assert_eq!(&hit[13..16], b"WwW");
        assert_eq!(hit[2] & 0x84, 0x84);

        assert!(
            cache.answer(&second, &view2, 8, 512).is_none(),
            "a new zone generation invalidates"
        );
        assert!(
            cache.answer(&second, &view2, 7, 12).is_none(),
            "too big for this client"
        );
        assert_eq!(cache.hits.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn zero_ttl_is_not_stored() {
        let cache = PacketCache::new(1 << 20);
        let q = query(1, b"\x01a\x00");
        let view = parse_query(&q).unwrap();
        cache.store(CacheKey::of(&view), Bytes::from(answer_to(&q)), 1, 0, false);
        assert!(cache.is_empty());
    }
}
