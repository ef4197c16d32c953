//! Signing a whole zone version: the zone's own DNSSEC records are replaced by a
//! DNSKEY RRset from the keys, an NSEC or NSEC3 chain over the authoritative names
//! and an RRSIG per RRset and key. Signatures of the previous version are kept for
//! every RRset that did not change and whose signature is still fresh, so a reload
//! or a refresh makes only the signatures it must (and a secondary's IXFR carries
//! only those). The SOA serial moves only when the signed zone changes.

use std::collections::BTreeMap;
use std::time::Duration;

use hickory_proto::dnssec::TBS;
use hickory_proto::dnssec::rdata::{DNSSECRData, RRSIG, SigInput};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};

use crate::chain::{Nsec3Params, Shape, add_nsec_chain, add_nsec3_chain};
use crate::key::ZoneKey;
use crate::policy::{DenialPolicy, INCEPTION_OFFSET, Policy};
use crate::previous::{Previous, content};

/// Types the signer makes itself; a zone's own are replaced.
const SIGNER_TYPES: [RecordType; 7] = [
    RecordType::RRSIG,
    RecordType::NSEC,
    RecordType::NSEC3,
    RecordType::NSEC3PARAM,
    RecordType::DNSKEY,
    RecordType::CDS,
    RecordType::CDNSKEY,
];

/// Whether records of `rtype` are the signer's to make (a zone's own are replaced).
pub fn is_signer_type(rtype: RecordType) -> bool {
    SIGNER_TYPES.contains(&rtype)
}

/// Why a zone could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// No SOA at the apex (the zone's own checks normally say so first).
    #[error("zone {0} has no SOA record at its apex; add one")]
    NoSoa(String),
    /// No key for a kind of RRset.
    #[error("zone {zone} has no key that signs {what}; the key store is incomplete")]
    NoKey {
        /// The zone.
        zone: String,
        /// "the DNSKEY RRset" or "the zone's data".
        what: &'static str,
    },
    /// The crypto library refused.
    #[error("signing {owner} {rtype} in zone {zone} failed: {reason}")]
    Sign {
        /// The zone.
        zone: String,
        /// The RRset's owner.
        owner: String,
        /// The RRset's type.
        rtype: RecordType,
        /// What the library said.
        reason: String,
    },
    /// A change cannot apply to the zone it is for.
    #[error("the change to zone {zone} cannot be signed: {reason}")]
    Change {
        /// The zone.
        zone: String,
        /// Why.
        reason: String,
    },
    /// NSEC3 hashing or a name built from a hash failed.
    #[error("making the NSEC3 chain of zone {zone} failed at {name}: {reason}")]
    Nsec3 {
        /// The zone.
        zone: String,
        /// The name being hashed.
        name: String,
        /// What failed.
        reason: String,
    },
}

/// What to sign.
pub struct SignRequest<'a> {
    /// The zone's apex.
    pub origin: &'a Name,
    /// The zone as loaded (its own DNSSEC records are replaced).
    pub records: Vec<Record>,
    /// Every key published in the zone; each signs what its role says.
    pub keys: &'a [ZoneKey],
    /// The policy.
    pub policy: &'a Policy,
    /// The time of signing, seconds since the epoch.
    pub now: u64,
    /// The previous signed version's records, whose fresh signatures are kept.
    pub previous: Option<Box<dyn Iterator<Item = Record> + 'a>>,
    /// A random salt of the policy's length, used only when the previous version's
    /// NSEC3 chain cannot be kept (its salt has another length, or there is none).
    pub fresh_salt: Vec<u8>,
}

impl std::fmt::Debug for SignRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignRequest")
            .field("origin", &self.origin)
            .field("records", &self.records.len())
            .field("keys", &self.keys)
            .field("policy", &self.policy.name)
            .field("now", &self.now)
            .field("previous", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}

/// What signing a zone version did (its records went to the caller's `emit`).
#[derive(Debug)]
pub struct Signed {
    /// Its SOA serial.
    pub serial: u32,
    /// Whether it differs from the previous version (always, without one).
    pub changed: bool,
    /// Signatures made now.
    pub made: usize,
    /// Signatures kept from the previous version.
    pub kept: usize,
    /// The zone's own DNSSEC records that were replaced.
    pub replaced: usize,
    /// When the first signature needs making again (seconds since the epoch).
    pub refresh_at: u64,
}

/// An RRset's records (deduplicated, one TTL) by owner and type.
pub(crate) type Sets = BTreeMap<Owner, Types>;

/// An owner name (lower case) with its canonical key, by which it is ordered and
/// hashed: a million names sorted and looked up by `Name` spent most of signing in
/// label-by-label comparisons.
#[derive(Clone, Debug)]
pub(crate) struct Owner {
    pub(crate) key: Box<[u8]>,
    pub(crate) name: Name,
}

impl Owner {
    pub(crate) fn of(name: &Name) -> Self {
        let name = name.to_lowercase();
        Self {
            key: sextant_zone::canonical_key(&name),
            name,
        }
    }
}

impl PartialEq for Owner {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Owner {}

impl PartialOrd for Owner {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Owner {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

impl std::hash::Hash for Owner {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

/// A name's RRsets in type order. Most names hold one or two: a vector sized to
/// them costs tens of bytes where a map's node costs hundreds, and at a million
/// names that is most of the signer's memory.
#[derive(Debug, Default)]
pub(crate) struct Types(Vec<(RecordType, Vec<Record>)>);

impl Types {
    pub(crate) fn get(&self, rtype: &RecordType) -> Option<&Vec<Record>> {
        self.0.iter().find(|(t, _)| t == rtype).map(|(_, set)| set)
    }

    pub(crate) fn contains_key(&self, rtype: &RecordType) -> bool {
        self.get(rtype).is_some()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &RecordType> {
        self.0.iter().map(|(t, _)| t)
    }

    /// The RRset of `rtype`, made empty (room for one record) if there is none.
    fn entry(&mut self, rtype: RecordType) -> &mut Vec<Record> {
        let at = match self.0.binary_search_by_key(&rtype, |(t, _)| *t) {
            Ok(at) => at,
            Err(at) => {
                self.0.insert(at, (rtype, Vec::with_capacity(1)));
                at
            }
        };
        &mut self.0[at].1
    }
}

impl IntoIterator for Types {
    type Item = (RecordType, Vec<Record>);
    type IntoIter = std::vec::IntoIter<(RecordType, Vec<Record>)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Signs `request.records` as the zone `request.origin`, handing every record of
/// the signed zone to `emit` as it is made (the SOA and its signatures last), so
/// that the signed zone is never held twice.
pub fn sign_zone(
    request: SignRequest<'_>,
    emit: &mut dyn FnMut(Record),
) -> Result<Signed, SignError> {
    let SignRequest {
        origin,
        records,
        keys,
        policy,
        now,
        previous,
        fresh_salt,
    } = request;
    let origin = origin.to_lowercase();
    let mut replaced = 0;
    let mut sets: Sets = BTreeMap::new();
    for record in records {
        if SIGNER_TYPES.contains(&record.record_type()) {
            replaced += 1;
            continue;
        }
        add(&mut sets, record);
    }
    let apex = Owner::of(&origin);
    let soa = sets
        .get(&apex)
        .and_then(|types| types.get(&RecordType::SOA))
        .and_then(|set| set.first())
        .cloned()
        .ok_or_else(|| SignError::NoSoa(origin.to_string()))?;
    if !keys.iter().any(|k| k.usage().sign_keyset) {
        return Err(SignError::NoKey {
            zone: origin.to_string(),
            what: "the DNSKEY RRset",
        });
    }
    if !keys.iter().any(|k| k.usage().sign_zone) {
        return Err(SignError::NoKey {
            zone: origin.to_string(),
            what: "the zone's data",
        });
    }
    for record in keyset(&origin, keys, policy)? {
        add(&mut sets, record);
    }
    let shape = Shape::of(&sets, &origin);
    let negative_ttl = negative_ttl(&soa);
    let previous = previous.map(|records| Previous::of(records, &origin));
    match &policy.denial {
        DenialPolicy::Nsec => add_nsec_chain(&mut sets, &shape, &origin, negative_ttl),
        DenialPolicy::Nsec3 {
            iterations,
            salt_length,
            opt_out,
        } => {
            let salt = previous
                .as_ref()
                .and_then(|p| p.nsec3_salt(*iterations, *salt_length))
                .unwrap_or(fresh_salt);
            let params = Nsec3Params {
                iterations: *iterations,
                salt,
                opt_out: *opt_out,
            };
            add_nsec3_chain(&mut sets, &shape, &origin, negative_ttl, &params)?;
        }
    }

    let mut signer = Signer {
        origin: &origin,
        keys,
        policy,
        now,
        previous: previous.as_ref(),
        made: 0,
        kept: 0,
        refresh_at: u64::MAX,
        seen: 0,
        unchanged: 0,
    };
    let mut soa_set = Vec::new();
    for (owner, types) in sets {
        for (rtype, set) in types {
            if rtype == RecordType::SOA && owner == apex {
                soa_set = set;
                continue;
            }
            let signatures = if shape.is_signed(&owner, rtype) {
                signer.signatures(&owner.name, rtype, &set)?
            } else {
                signer.unsigned(&owner.name, rtype, &set);
                Vec::new()
            };
            set.into_iter().chain(signatures).for_each(&mut *emit);
        }
    }

    // The serial: the file's when it moved ahead, else the previous version's, plus
    // one when anything else changed.
    let file_serial = serial_of(&soa);
    let (serial, changed) = match &previous {
        None => (file_serial, true),
        Some(previous) => {
            let same_data = signer.unchanged == signer.seen
                && signer.seen == previous.count_except(&origin, RecordType::SOA);
            let same_soa = previous
                .soa
                .as_ref()
                .is_some_and(|old| same_soa_fields(old, &soa));
            let last = previous.serial;
            if newer(file_serial, last) {
                (file_serial, true)
            } else if same_data && same_soa {
                (last, false)
            } else {
                (last.wrapping_add(1).max(1), true)
            }
        }
    };
    for record in &mut soa_set {
        if let RData::SOA(data) = &mut record.data {
            data.serial = serial;
        }
    }
    let signatures = signer.signatures(&origin, RecordType::SOA, &soa_set)?;
    soa_set.into_iter().chain(signatures).for_each(&mut *emit);
    Ok(Signed {
        serial,
        changed,
        made: signer.made,
        kept: signer.kept,
        replaced,
        refresh_at: signer.refresh_at,
    })
}

/// The apex records the keys make: a DNSKEY per published key and, for keys
/// whose DS the parent should have, the CDS and CDNSKEY (RFC 7344, RFC 8078).
pub(crate) fn keyset(
    origin: &Name,
    keys: &[ZoneKey],
    policy: &Policy,
) -> Result<Vec<Record>, SignError> {
    let mut records = Vec::new();
    for key in keys.iter().filter(|k| k.usage().publish) {
        records.push(Record::from_rdata(
            origin.clone(),
            policy.dnskey_ttl,
            RData::DNSSEC(DNSSECRData::DNSKEY(key.dnskey().clone())),
        ));
        if key.usage().ds {
            let failed = |e: crate::KeyError| SignError::Sign {
                zone: origin.to_string(),
                owner: origin.to_string(),
                rtype: RecordType::CDS,
                reason: e.to_string(),
            };
            let cds = key.cds(origin).map_err(failed)?;
            for data in [
                RData::DNSSEC(DNSSECRData::CDS(cds)),
                RData::DNSSEC(DNSSECRData::CDNSKEY(key.cdnskey())),
            ] {
                records.push(Record::from_rdata(origin.clone(), policy.dnskey_ttl, data));
            }
        }
    }
    Ok(records)
}

/// Adds `record` to its RRset: a duplicate is dropped and the RRset takes the
/// smallest TTL, as the zone's builder does, so that what is signed is exactly what
/// is served.
pub(crate) fn add(sets: &mut Sets, mut record: Record) {
    let owner = Owner::of(&record.name);
    record.name = owner.name.clone();
    let set = sets
        .entry(owner)
        .or_insert_with(|| Types(Vec::with_capacity(1)))
        .entry(record.record_type());
    if set.iter().any(|r| r.data == record.data) {
        return;
    }
    let ttl = set.first().map_or(record.ttl, |r| r.ttl.min(record.ttl));
    record.ttl = ttl;
    for existing in set.iter_mut() {
        existing.ttl = ttl;
    }
    set.push(record);
}

/// The TTL of NSEC and NSEC3 records: the smaller of the SOA's TTL and MINIMUM
/// (RFC 9077).
pub(crate) fn negative_ttl(soa: &Record) -> u32 {
    match &soa.data {
        RData::SOA(data) => soa.ttl.min(data.minimum),
        _ => soa.ttl,
    }
}

pub(crate) fn serial_of(soa: &Record) -> u32 {
    match &soa.data {
        RData::SOA(data) => data.serial,
        _ => 0,
    }
}

/// RFC 1982: whether serial `a` is newer than `b`.
pub(crate) fn newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// Whether the SOA `file` of a zone's data leaves `served`, the signed version's,
/// as it is: the same fields, and a serial that did not move ahead of the signer's.
pub fn soa_unchanged(served: &Record, file: &Record) -> bool {
    same_soa_fields(served, file) && !newer(serial_of(file), serial_of(served))
}

fn same_soa_fields(old: &Record, new: &Record) -> bool {
    match (&old.data, &new.data) {
        (RData::SOA(a), RData::SOA(b)) => {
            old.ttl == new.ttl
                && a.mname == b.mname
                && a.rname == b.rname
                && a.refresh == b.refresh
                && a.retry == b.retry
                && a.expire == b.expire
                && a.minimum == b.minimum
        }
        _ => false,
    }
}

/// Makes or keeps the signatures of each RRset.
pub(crate) struct Signer<'a> {
    pub(crate) origin: &'a Name,
    pub(crate) keys: &'a [ZoneKey],
    pub(crate) policy: &'a Policy,
    pub(crate) now: u64,
    pub(crate) previous: Option<&'a Previous>,
    pub(crate) made: usize,
    pub(crate) kept: usize,
    pub(crate) refresh_at: u64,
    /// RRsets (but the apex SOA) seen, and those the same as in the previous
    /// version with every signature kept.
    pub(crate) seen: usize,
    pub(crate) unchanged: usize,
}

impl Signer<'_> {
    /// Counts an RRset that gets no signature (glue, a delegation's NS).
    fn unsigned(&mut self, owner: &Name, rtype: RecordType, set: &[Record]) {
        self.seen += 1;
        let same = self.previous.is_some_and(|p| {
            p.sets
                .get(&(owner.clone(), rtype))
                .is_some_and(|(old, sigs)| sigs.is_empty() && *old == content(set))
        });
        if same {
            self.unchanged += 1;
        }
    }

    pub(crate) fn signatures(
        &mut self,
        owner: &Name,
        rtype: RecordType,
        set: &[Record],
    ) -> Result<Vec<Record>, SignError> {
        let Some(first) = set.first() else {
            return Ok(Vec::new());
        };
        let by_keys = matches!(
            rtype,
            RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY
        );
        let reusable = self.previous.and_then(|p| {
            let (old_content, sigs) = p.sets.get(&(owner.clone(), rtype))?;
            (*old_content == content(set)).then_some(sigs)
        });
        let refresh = self.policy.refresh.as_secs();
        let window = refresh_window(self.policy);
        let counted = !(rtype == RecordType::SOA && owner == self.origin);
        if counted {
            self.seen += 1;
        }
        let mut all_kept = reusable.is_some();
        let mut out = Vec::new();
        for key in self.keys {
            let wanted = if by_keys {
                key.usage().sign_keyset
            } else {
                key.usage().sign_zone
            };
            if !wanted {
                continue;
            }
            let kept = reusable.and_then(|sigs| {
                sigs.iter().find(|sig| {
                    let RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) = &sig.data else {
                        return false;
                    };
                    let input = rrsig.input();
                    let expiration = u64::from(input.sig_expiration.get());
                    input.key_tag == key.tag()
                        && input.algorithm == key.algorithm()
                        && input.signer_name == *self.origin
                        && input.original_ttl == first.ttl
                        && expiration > self.now + refresh + window
                })
            });
            let signature = match kept {
                Some(sig) => {
                    self.kept += 1;
                    sig.clone()
                }
                None => {
                    self.made += 1;
                    all_kept = false;
                    self.sign(owner, rtype, set, key)?
                }
            };
            if let RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) = &signature.data {
                let expiration = u64::from(rrsig.input().sig_expiration.get());
                self.refresh_at = self.refresh_at.min(expiration.saturating_sub(refresh));
            }
            out.push(signature);
        }
        // Unchanged: same data, every signature kept, none dropped.
        if counted && all_kept && reusable.is_some_and(|old| old.len() == out.len()) {
            self.unchanged += 1;
        }
        Ok(out)
    }

    fn sign(
        &self,
        owner: &Name,
        rtype: RecordType,
        set: &[Record],
        key: &ZoneKey,
    ) -> Result<Record, SignError> {
        let failed = |reason: String| SignError::Sign {
            zone: self.origin.to_string(),
            owner: owner.to_string(),
            rtype,
            reason,
        };
        let ttl = set.first().map_or(0, |r| r.ttl);
        let inception = self.now.saturating_sub(INCEPTION_OFFSET.as_secs());
        let expiration =
            self.now + self.policy.validity.as_secs() - jitter(owner, rtype, self.policy);
        let input = SigInput {
            type_covered: rtype,
            algorithm: key.algorithm(),
            num_labels: owner.num_labels(),
            original_ttl: ttl,
            // Serial-number arithmetic (RFC 4034 §3.1.5) wraps in 2106.
            sig_expiration: SerialNumber::new(expiration as u32),
            sig_inception: SerialNumber::new(inception as u32),
            key_tag: key.tag(),
            signer_name: self.origin.clone(),
        };
        let tbs = TBS::from_input(owner, DNSClass::IN, &input, set.iter())
            .map_err(|e| failed(e.to_string()))?;
        let signature = key.sign(&tbs).map_err(failed)?;
        Ok(Record::from_rdata(
            owner.clone(),
            ttl,
            RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, signature))),
        ))
    }
}

/// How far past the refresh point a signature is made again with those falling
/// due now (`sextant_config::signature_refresh_window`): a pass makes every
/// signature falling due within the window, so the next pass is at least that far
/// off (Knot's rrsig-pre-refresh does the same).
pub(crate) fn refresh_window(policy: &Policy) -> u64 {
    sextant_config::signature_refresh_window(policy.refresh).as_secs()
}

/// Up to a tenth of the validity taken off each RRset's expiration, the same for
/// the same RRset every time: signatures made together then fall due over days,
/// not in one burst (BIND and Knot spread theirs the same way).
fn jitter(owner: &Name, rtype: RecordType, policy: &Policy) -> u64 {
    let spread = (policy.validity / 10).as_secs().max(1);
    // FNV-1a: stable across runs and versions, unlike the std hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in owner
        .to_ascii()
        .bytes()
        .chain(u16::from(rtype).to_be_bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % spread
}

/// How long after `now` the first signature of `signed` falls due.
pub fn refresh_in(signed: &Signed, now: u64) -> Duration {
    Duration::from_secs(signed.refresh_at.saturating_sub(now))
}
