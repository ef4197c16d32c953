//! Aggressive use of DNSSEC-validated cache (RFC 8198): the NSEC records that
//! proved a name absent also prove every other name between their owner and next
//! name absent. A flood of random names under a signed zone is then answered from
//! them, NXDOMAIN with AD, without one more query to the zone's servers and without
//! one more cache entry per name.
//!
//! NSEC3 chains are reused the same way (RFC 8198 §5.2): the kept records whose
//! hashes match or cover the closest encloser, the next closer name and the
//! wildcard make the proof, checked as if a server had sent it; Opt-Out spans
//! prove nothing and are never used. Only records whose signatures were verified,
//! in an answer found secure, are kept, each until its own TTL (capped by its
//! signature) and the zone's negative TTL run out.
//!
//! The store's memory is `resolver.aggressive_nsec_bytes`, each record counted as
//! the RRset cache counts it. The zones being walked by a flood are the ones that
//! grow, so when the budget is reached the expired records go first and then the
//! largest zones, whole: forgetting costs only queries to their servers.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hickory_proto::dnssec::Nsec3HashAlgorithm;
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use parking_lot::Mutex;

use crate::cache::record_cost;
use crate::dnssec::{self, Denial, Work};

/// Labels below the zone's apex up to which NSEC3 proofs are synthesized.
const MAX_NSEC3_DEPTH: u8 = 4;
/// What a zone's entry costs besides its records: its name twice (the map key and
/// the SOA owner), the map's slot and the SOA's struct.
const ZONE_OVERHEAD: u64 = 256;
/// A B-tree entry for one kept record: the owner key, the `Kept` value and the
/// node's share of the tree.
const ENTRY_OVERHEAD: u64 = (std::mem::size_of::<Name>() + std::mem::size_of::<Kept>()) as u64 + 32;

/// One NSEC record with its signatures, and until when it may be used.
#[derive(Clone, Debug)]
struct Kept {
    nsec: Record,
    sigs: Vec<Record>,
    until: Instant,
    /// What it costs, counted once when kept.
    cost: u64,
}

#[derive(Debug)]
struct Zone {
    /// The zone's SOA for the authority section of what is synthesized, with its
    /// signatures; its MINIMUM bounds the negative TTL.
    soa: Record,
    soa_sigs: Vec<Record>,
    /// By owner, in canonical order (hickory-proto orders names canonically).
    nsecs: BTreeMap<Name, Kept>,
    /// NSEC3 records by their owner's hash, in hash order, all made with
    /// `nsec3_params`.
    nsec3s: BTreeMap<Vec<u8>, Kept>,
    /// Iterations and salt of the kept NSEC3 chain; a new chain replaces it.
    nsec3_params: Option<(u16, Vec<u8>)>,
    /// What the zone's entry costs, its records included.
    cost: u64,
}

impl Zone {
    fn records_cost(&self) -> u64 {
        self.nsecs
            .values()
            .chain(self.nsec3s.values())
            .map(|k| k.cost)
            .sum()
    }

    /// The NSEC at or before each name that can matter: the name, and the wildcard
    /// at each of its ancestors in the zone.
    fn nsec_candidates(&self, qname: &Name, zone: &Name, now: Instant) -> Vec<&Kept> {
        let mut wanted = vec![qname.clone()];
        let mut ancestor = qname.clone();
        while ancestor != *zone && !ancestor.is_root() {
            ancestor = ancestor.base_name();
            if let Some(wildcard) = wildcard_of(&ancestor) {
                wanted.push(wildcard);
            }
        }
        let mut used: Vec<&Kept> = Vec::new();
        for name in &wanted {
            // The last NSEC of the zone covers names after it (its next name is the
            // apex): the range finds it too.
            let at_or_before = self.nsecs.range(..=name.clone()).next_back();
            if let Some((_, kept)) = at_or_before
                && kept.until > now
                && !used.iter().any(|u| u.nsec.name == kept.nsec.name)
            {
                used.push(kept);
            }
        }
        used
    }

    /// The NSEC3 records that can make a closest-encloser proof for `qname`: for
    /// the name, each ancestor in the zone and the wildcard below each, the record
    /// whose hash matches it or the one before it (which covers it if any kept one
    /// does; the first hash's predecessor is the last record, whose span wraps).
    /// `None` when the work budget runs out.
    fn nsec3_candidates(
        &self,
        qname: &Name,
        zone: &Name,
        now: Instant,
        work: &Work,
    ) -> Option<Vec<&Kept>> {
        let (iterations, salt) = self.nsec3_params.as_ref()?;
        // Each level costs two hashes here and one or two in the proof, from the
        // same per-query budget the real resolution needs if this fails: deep names
        // are left to the zone's servers.
        if qname.num_labels().saturating_sub(zone.num_labels()) > MAX_NSEC3_DEPTH {
            return None;
        }
        let mut names = vec![qname.clone()];
        let mut ancestor = qname.clone();
        while ancestor != *zone && !ancestor.is_root() {
            ancestor = ancestor.base_name();
            names.push(ancestor.clone());
        }
        if let Some(wildcard) = wildcard_of(&ancestor) {
            names.push(wildcard);
        }
        for name in names.clone().iter().skip(1) {
            if let Some(wildcard) = wildcard_of(name)
                && !names.contains(&wildcard)
            {
                names.push(wildcard);
            }
        }
        let mut used: Vec<&Kept> = Vec::new();
        for name in &names {
            work.take_hash().ok()?;
            let hash = Nsec3HashAlgorithm::SHA1
                .hash(salt, name, *iterations)
                .ok()?;
            let hash = hash.as_ref();
            let found = self
                .nsec3s
                .range(..=hash.to_vec())
                .next_back()
                .or_else(|| self.nsec3s.iter().next_back());
            if let Some((_, kept)) = found
                && kept.until > now
                && !used.iter().any(|u| u.nsec.name == kept.nsec.name)
            {
                used.push(kept);
            }
        }
        Some(used)
    }
}

fn wildcard_of(name: &Name) -> Option<Name> {
    Name::from_ascii("*").ok()?.append_domain(name).ok()
}

/// The hash an NSEC3 record's owner stands for (its first label, base32hex).
fn owner_hash(record: &Record) -> Option<Vec<u8>> {
    let label = record.name.iter().next()?.to_ascii_uppercase();
    data_encoding::BASE32HEX_NOPAD.decode(&label).ok()
}

/// The iterations and salt of an NSEC3 record hashed with SHA-1 (the only
/// algorithm defined).
fn nsec3_params(record: &Record) -> Option<(u16, Vec<u8>)> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::NSEC3(nsec3))
            if nsec3.hash_algorithm() == Nsec3HashAlgorithm::SHA1 =>
        {
            Some((nsec3.iterations(), nsec3.salt().to_vec()))
        }
        _ => None,
    }
}

/// A negative answer made from kept NSEC or NSEC3 records.
#[derive(Debug)]
pub(crate) struct Synthesized {
    pub(crate) nxdomain: bool,
    pub(crate) soa: Record,
    /// The NSEC records used, their signatures, and the SOA's signatures.
    pub(crate) proof: Vec<Record>,
}

#[derive(Debug, Default)]
struct Zones {
    by_name: HashMap<Name, Zone>,
    /// What every zone costs together.
    bytes: u64,
}

#[derive(Debug)]
pub(crate) struct NsecCache {
    zones: Mutex<Zones>,
    /// `resolver.aggressive_nsec_bytes`.
    budget: u64,
}

impl NsecCache {
    pub(crate) fn new(budget: u64) -> Self {
        Self {
            zones: Mutex::default(),
            budget,
        }
    }

    /// Keeps the NSEC records of `proof` (verified with `zone`'s keys, in a secure
    /// negative answer whose SOA is `soa`) for `ttl` at most.
    pub(crate) fn remember(&self, zone: &Name, soa: &Record, proof: &[Record], ttl: Duration) {
        let zone = zone.to_lowercase();
        let now = Instant::now();
        let soa_sigs = signatures(proof, &soa.name, RecordType::SOA);
        let kept: Vec<(Name, Kept)> = proof
            .iter()
            .filter(|r| match r.record_type() {
                RecordType::NSEC => zone.zone_of(&r.name),
                // An NSEC3 record's owner is its hash right under the apex.
                RecordType::NSEC3 => r.name.base_name() == zone && nsec3_params(r).is_some(),
                _ => false,
            })
            .map(|nsec| {
                let sigs = signatures(proof, &nsec.name, nsec.record_type());
                let cost =
                    ENTRY_OVERHEAD + record_cost(nsec) + sigs.iter().map(record_cost).sum::<u64>();
                let lifetime = ttl.min(Duration::from_secs(u64::from(nsec.ttl)));
                let kept = Kept {
                    nsec: nsec.clone(),
                    sigs,
                    until: now + lifetime,
                    cost,
                };
                (nsec.name.to_lowercase(), kept)
            })
            .collect();
        let soa_cost = |sigs: &[Record]| {
            ZONE_OVERHEAD + record_cost(soa) + sigs.iter().map(record_cost).sum::<u64>()
        };
        let adding = soa_cost(&soa_sigs) + kept.iter().map(|(_, k)| k.cost).sum::<u64>();
        let mut zones = self.zones.lock();
        if zones.bytes + adding > self.budget {
            zones.make_room(self.budget, now);
            if zones.bytes + adding > self.budget {
                return;
            }
        }
        let zones = &mut *zones;
        let entry = zones.by_name.entry(zone).or_insert_with(|| {
            let cost = soa_cost(&soa_sigs);
            zones.bytes += cost;
            Zone {
                soa: soa.clone(),
                soa_sigs: soa_sigs.clone(),
                nsecs: BTreeMap::new(),
                nsec3s: BTreeMap::new(),
                nsec3_params: None,
                cost,
            }
        });
        if !soa_sigs.is_empty() {
            let old = soa_cost(&entry.soa_sigs);
            entry.soa_sigs = soa_sigs;
            let new = soa_cost(&entry.soa_sigs);
            entry.cost = entry.cost - old + new;
            zones.bytes = zones.bytes - old + new;
        }
        entry.soa = soa.clone();
        for (owner, kept) in kept {
            let cost = kept.cost;
            let old = if kept.nsec.record_type() == RecordType::NSEC {
                entry.nsecs.insert(owner, kept)
            } else {
                let (Some(params), Some(hash)) = (nsec3_params(&kept.nsec), owner_hash(&kept.nsec))
                else {
                    continue;
                };
                // A zone moving to a new salt or iteration count: the old chain
                // proves nothing about the new hashes.
                if entry.nsec3_params.as_ref() != Some(&params) {
                    let dropped: u64 = entry.nsec3s.values().map(|k| k.cost).sum();
                    entry.nsec3s.clear();
                    entry.cost -= dropped;
                    zones.bytes -= dropped;
                    entry.nsec3_params = Some(params);
                }
                entry.nsec3s.insert(hash, kept)
            };
            if let Some(old) = old {
                entry.cost -= old.cost;
                zones.bytes -= old.cost;
            }
            entry.cost += cost;
            zones.bytes += cost;
        }
    }

    /// Bytes kept now.
    pub(crate) fn bytes(&self) -> u64 {
        self.zones.lock().bytes
    }

    /// A negative answer for `qname`/`qtype` from kept NSEC records, if they prove
    /// one: NXDOMAIN (the name and the wildcard that could stand for it covered) or
    /// NODATA (the name's own NSEC lacks the type).
    pub(crate) fn synthesize(
        &self,
        qname: &Name,
        qtype: RecordType,
        work: &Work,
    ) -> Option<Synthesized> {
        let now = Instant::now();
        let zones = self.zones.lock();
        // The deepest zone with kept records that holds the name.
        let mut zone_name = qname.to_lowercase();
        let zone = loop {
            if let Some(zone) = zones.by_name.get(&zone_name) {
                break zone;
            }
            if zone_name.is_root() {
                return None;
            }
            zone_name = zone_name.base_name();
        };
        let qname = qname.to_lowercase();
        let used = if zone.nsecs.is_empty() {
            zone.nsec3_candidates(&qname, &zone_name, now, work)?
        } else {
            zone.nsec_candidates(&qname, &zone_name, now)
        };
        let records: Vec<Record> = used.iter().map(|k| k.nsec.clone()).collect();
        // Only records from answers proven secure are kept, so their NSEC3
        // iterations were within `max_nsec3_iterations` already.
        let denial = dnssec::deny(&qname, qtype, &zone_name, &records, u16::MAX, work).ok()?;
        let nxdomain = match denial {
            Denial::NxDomain => true,
            Denial::NoData { cut: false } => false,
            // Wildcard answers and delegations are left to the zone's servers.
            _ => return None,
        };
        // Only the records the proof needs go with it; all of `used` is small.
        let mut proof = records;
        for kept in &used {
            proof.extend(kept.sigs.iter().cloned());
        }
        proof.extend(zone.soa_sigs.iter().cloned());
        let remaining = used
            .iter()
            .map(|k| k.until.saturating_duration_since(now).as_secs())
            .min()
            .unwrap_or(0);
        let minimum = match &zone.soa.data {
            RData::SOA(soa) => soa.minimum,
            _ => 0,
        };
        let ttl = u32::try_from(remaining)
            .unwrap_or(u32::MAX)
            .min(minimum)
            .min(zone.soa.ttl);
        let mut soa = zone.soa.clone();
        soa.ttl = ttl;
        for record in &mut proof {
            record.ttl = record.ttl.min(ttl);
        }
        let kind = if zone.nsecs.is_empty() {
            "nsec3"
        } else {
            "nsec"
        };
        metrics::counter!("sextant_resolver_aggressive_nsec_total", "kind" => kind).increment(1);
        Some(Synthesized {
            nxdomain,
            soa,
            proof,
        })
    }

    /// Forgets everything (with a cache flush or a change of trust).
    pub(crate) fn clear(&self) {
        *self.zones.lock() = Zones::default();
    }
}

impl Zones {
    /// Frees at least a quarter of `budget`: expired records first, then the
    /// largest zones.
    fn make_room(&mut self, budget: u64, now: Instant) {
        for zone in self.by_name.values_mut() {
            zone.nsecs.retain(|_, k| k.until > now);
            zone.nsec3s.retain(|_, k| k.until > now);
            zone.cost = ZONE_OVERHEAD
                + record_cost(&zone.soa)
                + zone.soa_sigs.iter().map(record_cost).sum::<u64>()
                + zone.records_cost();
        }
        self.by_name
            .retain(|_, zone| !zone.nsecs.is_empty() || !zone.nsec3s.is_empty());
        self.bytes = self.by_name.values().map(|z| z.cost).sum();
        while self.bytes > budget - budget / 4 {
            let Some(largest) = self
                .by_name
                .iter()
                .max_by_key(|(_, zone)| zone.cost)
                .map(|(name, _)| name.clone())
            else {
                break;
            };
            if let Some(zone) = self.by_name.remove(&largest) {
                self.bytes -= zone.cost;
            }
        }
    }
}

fn signatures(records: &[Record], owner: &Name, rtype: RecordType) -> Vec<Record> {
    records
        .iter()
        .filter(|r| r.name == *owner)
        .filter(|r| dnssec::rrsig(r).is_some_and(|s| s.input().type_covered == rtype))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
    use hickory_proto::rr::rdata::SOA;

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn soa(zone: &Name) -> Record {
        let data = SOA::new(zone.clone(), zone.clone(), 1, 3600, 600, 86400, 300);
        Record::from_rdata(zone.clone(), 300, RData::SOA(data))
    }

    /// The NSEC of `owner` in `zone`, covering up to `next`.
    fn nsec(owner: &str, next: &str) -> Record {
        let data = NSEC::new(name(next), vec![RecordType::A, RecordType::NSEC]);
        Record::from_rdata(name(owner), 300, RData::DNSSEC(DNSSECRData::NSEC(data)))
    }

    #[test]
    fn kept_records_never_exceed_the_budget_and_the_flooded_zone_goes_first() {
        let budget = 64 * 1024;
        let cache = NsecCache::new(budget);
        let quiet = name("quiet.example.");
        cache.remember(
            &quiet,
            &soa(&quiet),
            &[nsec("a.quiet.example.", "b.quiet.example.")],
            Duration::from_secs(300),
        );
        // A flood walks another zone's chain, one new NSEC per answer.
        let flooded = name("flooded.example.");
        for i in 0..5_000 {
            let record = nsec(
                &format!("n{i:05}.flooded.example."),
                &format!("n{i:05}a.flooded.example."),
            );
            cache.remember(
                &flooded,
                &soa(&flooded),
                &[record],
                Duration::from_secs(300),
            );
            assert!(cache.bytes() <= budget, "{} > {budget}", cache.bytes());
        }
        // The quiet zone's record is still there: the flooded zone made room.
        let zones = cache.zones.lock();
        assert!(zones.by_name.contains_key(&quiet));
        let counted: u64 = zones.by_name.values().map(|z| z.cost).sum();
        assert_eq!(counted, zones.bytes);
    }

    /// The NSEC3 records and SOA of the NSEC3 fixture zone (signed by
    /// dnssec-signzone, see dnssec/testdata/README.md).
    fn nsec3_fixture() -> (Record, Vec<Record>) {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dnssec/testdata/nsec3.db");
        let text = std::fs::read_to_string(&path).unwrap();
        let no_include =
            |_: &std::path::Path| -> std::io::Result<String> { Err(std::io::Error::other("no")) };
        let records: Vec<Record> =
            sextant_zone::parse(&text, &path, &name("example.test."), &no_include)
                .unwrap()
                .into_iter()
                .map(|located| crate::dnssec::anchors_decoded(located.record))
                .collect();
        let soa = records
            .iter()
            .find(|r| r.record_type() == RecordType::SOA)
            .unwrap()
            .clone();
        let nsec3s = records
            .into_iter()
            .filter(|r| r.record_type() == RecordType::NSEC3)
            .collect();
        (soa, nsec3s)
    }

    #[test]
    fn kept_nsec3_records_deny_other_names_and_nothing_else() {
        let (soa, nsec3s) = nsec3_fixture();
        let zone = name("example.test.");
        let cache = NsecCache::new(1 << 20);
        cache.remember(&zone, &soa, &nsec3s, Duration::from_secs(300));
        let work = Work::new(64, 64, 4);
        let nope = cache
            .synthesize(&name("nope.example.test."), RecordType::A, &work)
            .unwrap();
        assert!(nope.nxdomain);
        assert!(
            nope.proof
                .iter()
                .all(|r| r.record_type() == RecordType::NSEC3)
        );
        let nodata = cache
            .synthesize(&name("www.example.test."), RecordType::AAAA, &work)
            .unwrap();
        assert!(!nodata.nxdomain);
        // Names that exist with the type, and wildcard expansions, are not denied.
        for (qname, qtype) in [
            ("www.example.test.", RecordType::A),
            ("x.wild.example.test.", RecordType::TXT),
        ] {
            let work = Work::new(64, 64, 4);
            assert!(
                cache.synthesize(&name(qname), qtype, &work).is_none(),
                "{qname} {qtype}"
            );
        }
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let cache = NsecCache::new(0);
        let zone = name("example.");
        cache.remember(
            &zone,
            &soa(&zone),
            &[nsec("a.example.", "b.example.")],
            Duration::from_secs(300),
        );
        assert_eq!(cache.bytes(), 0);
        assert!(cache.zones.lock().by_name.is_empty());
    }
}
