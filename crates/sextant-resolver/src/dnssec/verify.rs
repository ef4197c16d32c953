//! Checking an RRset's signatures with its zone's keys (RFC 4035 §5.3), within a
//! budget of signature checks and NSEC3 hashes per client query: a zone built to
//! make a validator try every key for every signature (KeyTrap, CVE-2023-50387) or
//! hash names without end (CVE-2023-50868) gets SERVFAIL quickly instead.

use std::sync::atomic::{AtomicU32, Ordering};

use hickory_proto::dnssec::rdata::{DNSKEY, DS, RRSIG};
use hickory_proto::dnssec::{PublicKey, Verifier};
use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::{Bogus, rrsig};

/// What one client query may spend on validation.
#[derive(Debug)]
pub(crate) struct Work {
    checks: AtomicU32,
    hashes: AtomicU32,
    /// Keys tried for one signature when several share its key tag.
    pub(crate) max_collisions: usize,
}

impl Work {
    pub(crate) fn new(checks: u32, hashes: u32, max_collisions: usize) -> Self {
        Self {
            checks: AtomicU32::new(checks),
            hashes: AtomicU32::new(hashes),
            max_collisions,
        }
    }

    fn take(counter: &AtomicU32) -> Result<(), Bogus> {
        counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .map(|_| ())
            .map_err(|_| {
                metrics::counter!("sextant_resolver_validation_limit_total").increment(1);
                Bogus::WorkLimit
            })
    }

    /// One signature verification.
    pub(crate) fn take_check(&self) -> Result<(), Bogus> {
        Self::take(&self.checks)
    }

    /// One NSEC3 hash (of however many iterations the zone asks, up to the limit).
    pub(crate) fn take_hash(&self) -> Result<(), Bogus> {
        Self::take(&self.hashes)
    }
}

/// A zone's DNSKEY with its key tag computed once.
#[derive(Clone, Debug)]
pub(crate) struct ZoneKey {
    pub(crate) key: DNSKEY,
    pub(crate) tag: u16,
}

impl ZoneKey {
    /// A key that may sign the zone's data: the zone-key flag set, not revoked
    /// (RFC 5011 §3), an algorithm we can check. Others are ignored.
    pub(crate) fn usable(key: &DNSKEY) -> Option<Self> {
        let usable = key.zone_key() && !key.revoke() && key.public_key().algorithm().is_supported();
        let tag = key.calculate_key_tag().ok()?;
        usable.then(|| Self {
            key: key.clone(),
            tag,
        })
    }
}

/// Whether `ds` (from the parent of `zone`) designates `key`.
pub(crate) fn key_matches_ds(zone: &Name, key: &ZoneKey, ds: &DS) -> bool {
    ds.key_tag() == key.tag
        && ds.algorithm() == key.key.public_key().algorithm()
        && ds.covers(zone, &key.key).unwrap_or(false)
}

/// The RRSIGs among `sigs` over `owner`'s RRset of `rtype`.
pub(crate) fn signatures_for<'a>(
    sigs: &'a [Record],
    owner: &'a Name,
    rtype: RecordType,
) -> impl Iterator<Item = &'a RRSIG> + 'a {
    sigs.iter()
        .filter(move |r| r.name == *owner)
        .filter_map(rrsig)
        .filter(move |sig| sig.input().type_covered == rtype)
}

/// Now and the clock skew allowed either side of a signature's window, seconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    pub(crate) now: u32,
    pub(crate) skew: u32,
}

impl Clock {
    pub(crate) fn now(skew: std::time::Duration) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            // Signature times are serial numbers modulo 2^32 (RFC 4034 §3.1.5).
            now: now as u32,
            skew: u32::try_from(skew.as_secs()).unwrap_or(u32::MAX),
        }
    }

    /// Where `now` stands against the window `[inception, expiration]`, in serial
    /// number arithmetic (RFC 1982): a window can straddle 2106.
    fn check(self, sig: &RRSIG) -> Result<u32, Bogus> {
        let input = sig.input();
        let skew = i64::from(self.skew);
        let past_expiry = i64::from(self.now.wrapping_sub(input.sig_expiration.get()) as i32);
        let before_inception = i64::from(input.sig_inception.get().wrapping_sub(self.now) as i32);
        if past_expiry > skew {
            return Err(Bogus::Expired);
        }
        if before_inception > skew {
            return Err(Bogus::NotYetValid);
        }
        // Seconds the signature has left (at least one: within the skew it counts).
        Ok(u32::try_from((-past_expiry).max(1)).unwrap_or(u32::MAX))
    }
}

/// Checks that one signature of `sigs` over `rrset` (records of one owner, type and
/// class) verifies with a key of `zone` among `keys`. On success returns how long
/// the RRset may be cached: no longer than its original TTL nor past the signature's
/// expiry (RFC 4035 §5.3.3).
pub(crate) fn verify_rrset(
    rrset: &[Record],
    sigs: &[Record],
    zone: &Name,
    keys: &[ZoneKey],
    clock: Clock,
    work: &Work,
) -> Result<u32, Bogus> {
    let Some(first) = rrset.first() else {
        return Err(Bogus::RrsigsMissing);
    };
    let owner = &first.name;
    let rtype = first.record_type();
    let class = first.dns_class;
    // Duplicates are one record (RFC 4034 §6.3), or the signed data would differ.
    let mut unique: Vec<Record> = Vec::with_capacity(rrset.len());
    for record in rrset {
        if !unique.iter().any(|u| u.data == record.data) {
            unique.push(as_signed(record));
        }
    }
    // Labels of the owner, a leading wildcard label not counted (RFC 4034 §3.1.3).
    let labels = owner.num_labels();
    let mut why = Bogus::RrsigsMissing;
    for sig in signatures_for(sigs, owner, rtype) {
        let input = sig.input();
        if input.signer_name != *zone || !zone.zone_of(owner) || input.num_labels > labels {
            why = worse(why, Bogus::Signature);
            continue;
        }
        if !input.algorithm.is_supported() {
            continue;
        }
        let left = match clock.check(sig) {
            Ok(left) => left,
            Err(window) => {
                why = worse(why, window);
                continue;
            }
        };
        let candidates = keys
            .iter()
            .filter(|k| k.tag == input.key_tag && k.key.public_key().algorithm() == input.algorithm)
            .take(work.max_collisions);
        let mut tried = false;
        for key in candidates {
            tried = true;
            work.take_check()?;
            if key
                .key
                .verify_rrsig(owner, class, sig, unique.iter())
                .is_ok()
            {
                return Ok(input.original_ttl.min(left));
            }
            why = worse(why, Bogus::Signature);
        }
        if !tried {
            why = worse(why, Bogus::DnskeyMissing);
        }
    }
    Err(why)
}

/// The record as its signer saw it. The names inside NSEC data keep their case in
/// the signed data (RFC 6840 §5.1), where the canonical form of hickory-proto
/// lowers them: NSEC data is handed over as the bytes that came.
fn as_signed(record: &Record) -> Record {
    if record.record_type() != RecordType::NSEC {
        return record.clone();
    }
    let mut bytes = Vec::with_capacity(64);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    if record.data.emit(&mut encoder).is_err() {
        return record.clone();
    }
    let data = RData::Unknown {
        code: RecordType::NSEC,
        rdata: NULL::with(bytes),
    };
    Record::from_rdata(record.name.clone(), record.ttl, data)
}

/// Of two reasons, the one that says more: a signature that fails says more than
/// a key that is missing, which says more than no signature at all.
fn worse(a: Bogus, b: Bogus) -> Bogus {
    fn rank(why: Bogus) -> u8 {
        match why {
            Bogus::Signature => 4,
            Bogus::Expired | Bogus::NotYetValid => 3,
            Bogus::DnskeyMissing => 2,
            _ => 1,
        }
    }
    if rank(b) > rank(a) { b } else { a }
}
