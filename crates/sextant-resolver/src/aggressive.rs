//! Aggressive use of DNSSEC-validated cache (RFC 8198): the NSEC records that
//! proved a name absent also prove every other name between their owner and next
//! name absent. A flood of random names under a signed zone is then answered from
//! them, NXDOMAIN with AD, without one more query to the zone's servers and without
//! one more cache entry per name.
//!
//! Only NSEC (RFC 8198 §5.1); NSEC3 spans are not reused. Only records whose
//! signatures were verified, in an answer found secure, are kept, each until its
//! own TTL (capped by its signature) and the zone's negative TTL run out.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, RData, Record, RecordType};
use parking_lot::Mutex;

use crate::dnssec::{self, Denial, Work};

/// Zones whose NSEC records are kept; past it, new zones are not added.
const MAX_ZONES: usize = 1_024;
/// NSEC records kept per zone; past it, expired ones go first, then new ones are
/// not added.
const MAX_PER_ZONE: usize = 16_384;

/// One NSEC record with its signatures, and until when it may be used.
#[derive(Clone, Debug)]
struct Kept {
    nsec: Record,
    sigs: Vec<Record>,
    until: Instant,
}

#[derive(Debug)]
struct Zone {
    /// The zone's SOA for the authority section of what is synthesized, with its
    /// signatures; its MINIMUM bounds the negative TTL.
    soa: Record,
    soa_sigs: Vec<Record>,
    /// By owner, in canonical order (hickory-proto orders names canonically).
    nsecs: BTreeMap<Name, Kept>,
}

/// A negative answer made from kept NSEC records.
#[derive(Debug)]
pub(crate) struct Synthesized {
    pub(crate) nxdomain: bool,
    pub(crate) soa: Record,
    /// The NSEC records used, their signatures, and the SOA's signatures.
    pub(crate) proof: Vec<Record>,
}

#[derive(Debug, Default)]
pub(crate) struct NsecCache {
    zones: Mutex<HashMap<Name, Zone>>,
}

impl NsecCache {
    /// Keeps the NSEC records of `proof` (verified with `zone`'s keys, in a secure
    /// negative answer whose SOA is `soa`) for `ttl` at most.
    pub(crate) fn remember(&self, zone: &Name, soa: &Record, proof: &[Record], ttl: Duration) {
        let zone = zone.to_lowercase();
        let now = Instant::now();
        let mut zones = self.zones.lock();
        if !zones.contains_key(&zone) && zones.len() >= MAX_ZONES {
            zones.retain(|_, z| z.nsecs.values().any(|k| k.until > now));
            if zones.len() >= MAX_ZONES {
                return;
            }
        }
        let soa_sigs = signatures(proof, &soa.name, RecordType::SOA);
        let entry = zones.entry(zone.clone()).or_insert_with(|| Zone {
            soa: soa.clone(),
            soa_sigs: soa_sigs.clone(),
            nsecs: BTreeMap::new(),
        });
        entry.soa = soa.clone();
        if !soa_sigs.is_empty() {
            entry.soa_sigs = soa_sigs;
        }
        for nsec in proof.iter().filter(|r| r.record_type() == RecordType::NSEC) {
            if !zone.zone_of(&nsec.name) {
                continue;
            }
            if entry.nsecs.len() >= MAX_PER_ZONE {
                entry.nsecs.retain(|_, k| k.until > now);
                if entry.nsecs.len() >= MAX_PER_ZONE {
                    break;
                }
            }
            let lifetime = ttl.min(Duration::from_secs(u64::from(nsec.ttl)));
            entry.nsecs.insert(
                nsec.name.to_lowercase(),
                Kept {
                    nsec: nsec.clone(),
                    sigs: signatures(proof, &nsec.name, RecordType::NSEC),
                    until: now + lifetime,
                },
            );
        }
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
            if let Some(zone) = zones.get(&zone_name) {
                break zone;
            }
            if zone_name.is_root() {
                return None;
            }
            zone_name = zone_name.base_name();
        };
        let qname = qname.to_lowercase();
        // The NSEC at or before each name that can matter: the name, and the
        // wildcard at each of its ancestors in the zone.
        let mut wanted = vec![qname.clone()];
        let mut ancestor = qname.clone();
        while ancestor != zone_name && !ancestor.is_root() {
            ancestor = ancestor.base_name();
            if let Some(wildcard) = Name::from_ascii("*")
                .ok()
                .and_then(|star| star.append_domain(&ancestor).ok())
            {
                wanted.push(wildcard);
            }
        }
        let mut used: Vec<&Kept> = Vec::new();
        for name in &wanted {
            let at_or_before = zone.nsecs.range(..=name.clone()).next_back();
            // The last NSEC of the zone covers names after it (its next name is the
            // apex): the range finds it too.
            if let Some((_, kept)) = at_or_before
                && kept.until > now
                && !used.iter().any(|u| u.nsec.name == kept.nsec.name)
            {
                used.push(kept);
            }
        }
        let records: Vec<Record> = used.iter().map(|k| k.nsec.clone()).collect();
        let denial = dnssec::deny(&qname, qtype, &zone_name, &records, 0, work).ok()?;
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
        metrics::counter!("sextant_resolver_aggressive_nsec_total").increment(1);
        Some(Synthesized {
            nxdomain,
            soa,
            proof,
        })
    }

    /// Forgets everything (with a cache flush or a change of trust).
    pub(crate) fn clear(&self) {
        self.zones.lock().clear();
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
