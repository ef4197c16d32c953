//! The shared RRset cache: positive RRsets and negative answers (RFC 2308), TTLs
//! bounded by the configuration, credibility ranks (RFC 2181 §5.4.1), bounded memory
//! with eviction, and expired data kept a while for serve-stale (RFC 8767).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use crate::dnssec::Security;

/// How much an RRset may be trusted, lowest first (RFC 2181 §5.4.1). Data of a lower
/// rank never replaces fresh data of a higher one, and only `Answer` data is given
/// to clients: glue and referral NS sets only guide iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// Additional-section data (glue).
    Additional,
    /// NS sets from a referral's authority section (not authoritative).
    Referral,
    /// The answer section of a response, or a negative answer.
    Answer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    RRset(RecordType),
    /// The name does not exist (nor anything below it, RFC 8020).
    NxDomain,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    name: Name,
    kind: Kind,
}

impl Key {
    pub(crate) fn new(name: &Name, kind: Kind) -> Self {
        Self {
            name: name.to_lowercase(),
            kind,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Data {
    Records(Arc<[Record]>),
    /// NXDOMAIN or NODATA, with the zone's SOA for the authority section.
    Negative(Option<Arc<Record>>),
}

#[derive(Clone, Debug)]
struct Entry {
    data: Data,
    /// RRSIGs over the RRset, or a negative answer's denial records and signatures.
    sigs: Arc<[Record]>,
    rank: Rank,
    security: Security,
    stored: Instant,
    ttl: u32,
}

impl Entry {
    fn expires(&self) -> Instant {
        self.stored + Duration::from_secs(u64::from(self.ttl))
    }
}

/// A cached answer with its TTLs already counted down.
#[derive(Clone, Debug)]
pub struct Hit {
    pub data: Data,
    sigs: Arc<[Record]>,
    pub rank: Rank,
    /// What validation said of it when it was stored.
    pub(crate) security: Security,
    /// Seconds left (the stale TTL for stale data).
    pub ttl: u32,
}

impl Hit {
    /// The records with their remaining TTL.
    pub fn records(&self) -> Vec<Record> {
        match &self.data {
            Data::Records(records) => records
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.ttl = self.ttl;
                    r
                })
                .collect(),
            Data::Negative(_) => Vec::new(),
        }
    }

    /// The signatures (and a negative answer's denial records), with the remaining
    /// TTL.
    pub(crate) fn signatures(&self) -> Vec<Record> {
        self.sigs
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.ttl = self.ttl;
                r
            })
            .collect()
    }

    /// The SOA of a negative answer, with its remaining TTL.
    pub fn soa(&self) -> Option<Record> {
        match &self.data {
            Data::Negative(Some(soa)) => {
                let mut soa = Record::clone(soa);
                soa.ttl = self.ttl;
                Some(soa)
            }
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Weigher;

impl quick_cache::Weighter<Key, Entry> for Weigher {
    fn weight(&self, key: &Key, entry: &Entry) -> u64 {
        // What the entry really holds, so that `cache_bytes` means memory: the key
        // and entry in the cache's slot, the two shared record arrays, and each
        // record (a hickory-proto `Record` is 280 bytes before its data).
        let records: u64 = match &entry.data {
            Data::Records(records) => records.iter().map(record_cost).sum(),
            Data::Negative(soa) => soa.as_deref().map_or(0, record_cost) + ARC_HEADER,
        };
        let sigs: u64 = entry.sigs.iter().map(record_cost).sum();
        SLOT_COST + name_heap(&key.name) + 2 * ARC_HEADER + records + sigs
    }
}

/// The cache's own cost per entry: key and value in their slot, the index, and
/// the allocator's rounding (an estimate; `bench-resolver --flood` shows the RSS).
const SLOT_COST: u64 = (std::mem::size_of::<Key>() + std::mem::size_of::<Entry>()) as u64 + 48;
/// An `Arc`'s counts in front of its data.
const ARC_HEADER: u64 = 16;

/// A record's memory: its struct, what its names and data hold on the heap (about
/// the size of its wire data), and the allocator's rounding.
pub(crate) fn record_cost(record: &Record) -> u64 {
    let data = match &record.data {
        RData::A(_) | RData::AAAA(_) => 0,
        RData::Unknown { rdata, .. } => rdata.anything.len() as u64,
        other => other.to_bytes().map_or(64, |bytes| bytes.len() as u64),
    };
    std::mem::size_of::<Record>() as u64 + name_heap(&record.name) + data + 16
}

/// What a name holds on the heap: hickory-proto keeps up to 32 bytes of labels
/// inline.
fn name_heap(name: &Name) -> u64 {
    let len = name.len() as u64;
    if len > 32 { len + 16 } else { 0 }
}

/// TTL given to stale answers (RFC 8767 §4 recommends 30 seconds).
pub(crate) const STALE_TTL: u32 = 30;
/// Longest that data failing validation is kept, seconds.
const BOGUS_TTL: u32 = 60;

/// What is stored for one key, before its TTL is settled.
struct Stored {
    data: Data,
    sigs: Arc<[Record]>,
    rank: Rank,
    security: Security,
}

#[derive(Clone, Copy, Debug)]
pub struct CacheLimits {
    pub bytes: u64,
    pub min_ttl: u32,
    pub max_ttl: u32,
    pub max_negative_ttl: u32,
    /// How long past expiry data is kept for serve-stale; zero disables it.
    pub stale_window: Duration,
}

#[derive(Debug)]
pub struct Cache {
    entries: quick_cache::sync::Cache<Key, Entry, Weigher>,
    limits: CacheLimits,
}

impl Cache {
    pub fn new(limits: CacheLimits) -> Self {
        let items = usize::try_from(limits.bytes / 256)
            .unwrap_or(usize::MAX)
            .max(64);
        Self {
            entries: quick_cache::sync::Cache::with_weighter(items, limits.bytes.max(1), Weigher),
            limits,
        }
    }

    /// Fresh data for `name` and `kind`, at least of rank `min_rank`.
    pub fn get(&self, name: &Name, kind: Kind, min_rank: Rank) -> Option<Hit> {
        let entry = self.entries.get(&Key::new(name, kind))?;
        let now = Instant::now();
        let expires = entry.expires();
        if entry.rank < min_rank || expires <= now {
            return None;
        }
        let left = expires.duration_since(now).as_secs();
        Some(Hit {
            data: entry.data,
            sigs: entry.sigs,
            rank: entry.rank,
            security: entry.security,
            ttl: u32::try_from(left).unwrap_or(u32::MAX),
        })
    }

    /// Answer-rank data that expired less than the stale window ago.
    pub fn get_stale(&self, name: &Name, kind: Kind) -> Option<Hit> {
        let entry = self.entries.get(&Key::new(name, kind))?;
        let expires = entry.expires();
        let within = Instant::now() < expires + self.limits.stale_window;
        // Bogus data is never served stale (it is served to CD=1 clients only, fresh).
        let bogus = matches!(entry.security, Security::Bogus(_));
        (entry.rank == Rank::Answer && within && !bogus).then_some(Hit {
            data: entry.data,
            sigs: entry.sigs,
            rank: entry.rank,
            security: entry.security,
            ttl: STALE_TTL,
        })
    }

    /// Whether a cached NXDOMAIN covers `name`: for the name itself or, since nothing
    /// exists below a name that does not exist (RFC 8020), for an ancestor.
    pub fn nxdomain(&self, name: &Name) -> Option<Hit> {
        let mut name = name.clone();
        loop {
            if let Some(hit) = self.get(&name, Kind::NxDomain, Rank::Answer) {
                return Some(hit);
            }
            if name.is_root() {
                return None;
            }
            name = name.base_name();
        }
    }

    /// Stores one RRset (records of one owner and type) unless better data is held;
    /// referral and glue data is never validated.
    pub fn insert_rrset(&self, records: Vec<Record>, rank: Rank) {
        self.insert_answer(records, rank, Security::Indeterminate, Vec::new());
    }

    /// Stores one RRset with its signatures and what validation said of it.
    pub(crate) fn insert_answer(
        &self,
        records: Vec<Record>,
        rank: Rank,
        security: Security,
        sigs: Vec<Record>,
    ) {
        let Some(first) = records.first() else { return };
        let key = Key::new(&first.name, Kind::RRset(first.record_type()));
        let ttl = records.iter().map(|r| r.ttl).min().unwrap_or(0);
        let ttl = ttl.clamp(self.limits.min_ttl, self.limits.max_ttl);
        let entry = Stored {
            data: Data::Records(records.into()),
            sigs: sigs.into(),
            rank,
            security,
        };
        self.insert(key, entry, ttl);
    }

    /// The configured budget, bytes.
    pub fn budget(&self) -> u64 {
        self.limits.bytes
    }

    /// The longest a negative answer is kept, seconds.
    pub(crate) fn max_negative_ttl(&self) -> u32 {
        self.limits.max_negative_ttl
    }

    /// The longest any data is kept, seconds.
    pub(crate) fn max_ttl(&self) -> u32 {
        self.limits.max_ttl
    }

    /// Stores a negative answer; its TTL is the SOA's (RFC 2308 §5). Without an SOA
    /// nothing is stored: there is no TTL to honour.
    pub(crate) fn insert_negative(
        &self,
        name: &Name,
        kind: Kind,
        soa: Option<Record>,
        security: Security,
        proof: Vec<Record>,
    ) {
        let Some(soa) = soa else { return };
        let minimum = match &soa.data {
            RData::SOA(data) => data.minimum,
            _ => return,
        };
        // RRsets still cached for a name now NXDOMAIN need no sweep (which would cost a
        // pass over the whole cache per NXDOMAIN, a gift to random-subdomain floods):
        // lookups consult the NXDOMAIN entry first.
        let ttl = soa.ttl.min(minimum).min(self.limits.max_negative_ttl);
        let entry = Stored {
            data: Data::Negative(Some(Arc::new(soa))),
            sigs: proof.into(),
            rank: Rank::Answer,
            security,
        };
        self.insert(Key::new(name, kind), entry, ttl);
    }

    fn insert(&self, key: Key, stored: Stored, ttl: u32) {
        let Stored {
            data,
            sigs,
            rank,
            security,
        } = stored;
        // Bogus data is kept only long enough to answer CD=1 clients and to spare
        // the authorities a new try for every query (RFC 4035 §4.7).
        let ttl = if matches!(security, Security::Bogus(_)) {
            ttl.min(BOGUS_TTL)
        } else {
            ttl
        };
        if ttl == 0 && self.limits.stale_window.is_zero() {
            return;
        }
        let now = Instant::now();
        if let Some(old) = self.entries.get(&key)
            && old.rank > rank
            && old.expires() > now
        {
            return;
        }
        self.entries.insert(
            key,
            Entry {
                data,
                sigs,
                rank,
                security,
                stored: now,
                ttl,
            },
        );
    }

    /// Forgets `name` (and everything below it with `subtree`); returns how many
    /// entries went.
    pub fn flush(&self, name: &Name, subtree: bool) -> usize {
        let before = self.entries.len();
        let name = name.to_lowercase();
        self.entries.retain(|key, _| {
            let hit = if subtree {
                name.zone_of(&key.name)
            } else {
                key.name == name
            };
            !hit
        });
        before.saturating_sub(self.entries.len())
    }

    pub fn flush_all(&self) -> usize {
        let before = self.entries.len();
        self.entries.clear();
        before
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.entries.weight()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::Ipv4Addr;
    use std::str::FromStr;

    use hickory_proto::rr::rdata::{A, SOA};

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_str(text).unwrap()
    }

    fn a(owner: &str, ttl: u32, last: u8) -> Record {
        Record::from_rdata(
            name(owner),
            ttl,
            RData::A(A(Ipv4Addr::new(192, 0, 2, last))),
        )
    }

    fn soa(ttl: u32, minimum: u32) -> Record {
        let data = SOA::new(name("ns.test."), name("h.test."), 1, 2, 3, 4, minimum);
        Record::from_rdata(name("test."), ttl, RData::SOA(data))
    }

    fn cache(stale: u64) -> Cache {
        Cache::new(CacheLimits {
            bytes: 1 << 20,
            min_ttl: 0,
            max_ttl: 3600,
            max_negative_ttl: 600,
            stale_window: Duration::from_secs(stale),
        })
    }

    #[test]
    fn ranks_protect_better_data_and_gate_answers() {
        let cache = cache(0);
        cache.insert_rrset(vec![a("ns.test.", 300, 1)], Rank::Answer);
        cache.insert_rrset(vec![a("ns.test.", 300, 9)], Rank::Additional);
        let hit = cache
            .get(&name("NS.test."), Kind::RRset(RecordType::A), Rank::Answer)
            .unwrap();
        assert_eq!(hit.records()[0].data.to_string(), "192.0.2.1");

        cache.insert_rrset(vec![a("glue.test.", 300, 2)], Rank::Additional);
        let kind = Kind::RRset(RecordType::A);
        assert!(cache.get(&name("glue.test."), kind, Rank::Answer).is_none());
        assert!(
            cache
                .get(&name("glue.test."), kind, Rank::Additional)
                .is_some()
        );
    }

    #[test]
    fn ttls_are_capped_and_negative_ttl_comes_from_the_soa() {
        let cache = cache(0);
        cache.insert_rrset(vec![a("long.test.", 999_999, 1)], Rank::Answer);
        let hit = cache
            .get(
                &name("long.test."),
                Kind::RRset(RecordType::A),
                Rank::Answer,
            )
            .unwrap();
        assert!(hit.ttl <= 3600 && hit.ttl >= 3598, "{}", hit.ttl);

        cache.insert_negative(
            &name("gone.test."),
            Kind::NxDomain,
            Some(soa(900, 120)),
            Security::Indeterminate,
            Vec::new(),
        );
        let hit = cache.nxdomain(&name("below.gone.test.")).unwrap();
        assert!(hit.ttl <= 120 && hit.ttl >= 118, "{}", hit.ttl);
        assert_eq!(hit.soa().unwrap().ttl, hit.ttl);
        assert!(cache.nxdomain(&name("other.test.")).is_none());
    }

    #[test]
    fn expired_data_is_served_stale_only_within_the_window() {
        let with_window = cache(3600);
        with_window.insert_rrset(vec![a("old.test.", 0, 1)], Rank::Answer);
        let kind = Kind::RRset(RecordType::A);
        assert!(
            with_window
                .get(&name("old.test."), kind, Rank::Answer)
                .is_none()
        );
        let stale = with_window.get_stale(&name("old.test."), kind).unwrap();
        assert_eq!(stale.ttl, STALE_TTL);

        let without = cache(0);
        without.insert_rrset(vec![a("old.test.", 0, 1)], Rank::Answer);
        assert!(without.get_stale(&name("old.test."), kind).is_none());
    }

    #[test]
    fn flush_a_name_a_subtree_or_everything() {
        let cache = cache(0);
        for owner in ["a.test.", "b.a.test.", "c.test.", "other."] {
            cache.insert_rrset(vec![a(owner, 300, 1)], Rank::Answer);
        }
        assert_eq!(cache.flush(&name("a.test."), false), 1);
        assert_eq!(cache.flush(&name("test."), true), 2);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.flush_all(), 1);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn memory_is_bounded() {
        let cache = Cache::new(CacheLimits {
            bytes: 64 * 1024,
            min_ttl: 0,
            max_ttl: 3600,
            max_negative_ttl: 600,
            stale_window: Duration::ZERO,
        });
        for i in 0..10_000 {
            cache.insert_rrset(vec![a(&format!("n{i}.test."), 300, 1)], Rank::Answer);
        }
        assert!(cache.bytes() <= 64 * 1024, "{}", cache.bytes());
        assert!(cache.len() < 10_000);
    }
}
