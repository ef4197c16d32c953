//! Signing a change instead of a zone: given the served signed version and the
//! unsigned records a change removes and adds (an IXFR step, a reload's
//! difference), only the touched names, the names whose occlusion the change
//! moves, the empty non-terminals it makes or ends and the chain links next to
//! them are signed again. The result is the signed change, SOA included, for
//! `Zone::apply`, which shares everything else with the served version.
//!
//! What would change the whole zone (new keys or signing keys, other NSEC3
//! parameters, a new negative TTL, a zone not signed yet) is refused with the
//! reason, and the caller signs the zone whole.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;

use hickory_proto::dnssec::Nsec3HashAlgorithm;
use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC, NSEC3};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use sextant_zone::Zone;

use crate::key::ZoneKey;
use crate::policy::{DenialPolicy, Policy};
use crate::previous::Previous;
use crate::sign::{
    Owner, SignError, Signer, is_signer_type, keyset, negative_ttl, newer, serial_of,
};

/// A change to sign.
#[derive(Debug)]
pub struct ResignRequest<'a> {
    /// The signed version served now.
    pub zone: &'a Zone,
    /// Unsigned records the change takes out (the old SOA among them when the
    /// change moves it); records of the signer's types are ignored.
    pub removed: Vec<Record>,
    /// Unsigned records the change puts in (the new SOA among them).
    pub added: Vec<Record>,
    /// The zone's keys, with the use the rollover gives each now.
    pub keys: &'a [ZoneKey],
    /// The policy.
    pub policy: &'a Policy,
    /// The time of signing, seconds since the epoch.
    pub now: u64,
}

/// What signing a change gave.
#[derive(Debug)]
pub enum Resign {
    /// The signed change.
    Change(SignedChange),
    /// The change cannot be signed alone; the zone must be signed whole (why).
    Whole(String),
}

/// The signed records a change removes and adds, SOA and signatures included.
#[derive(Debug)]
pub struct SignedChange {
    /// Records of the served version to take out.
    pub removed: Vec<Record>,
    /// Records to put in.
    pub added: Vec<Record>,
    /// The new SOA serial.
    pub serial: u32,
    /// Signatures made.
    pub made: usize,
    /// Signatures kept (over RRsets touched but unchanged).
    pub kept: usize,
    /// When the first of the new signatures falls due (seconds since the epoch).
    pub refresh_at: u64,
}

/// A name's state after the change.
#[derive(Debug)]
struct After {
    /// Its data (everything but RRSIG, NSEC and NSEC3), grouped by type.
    sets: BTreeMap<RecordType, Vec<Record>>,
    /// Whether it is below a cut or DNAME.
    occluded: bool,
    /// Whether it is in the denial chain.
    in_chain: bool,
}

impl After {
    fn exists(&self) -> bool {
        !self.sets.is_empty()
    }

    fn is_cut(&self, apex: &Owner, owner: &Owner) -> bool {
        owner != apex && self.sets.contains_key(&RecordType::NS)
    }
}

/// Signs `request`'s change (see the module's documentation).
pub fn resign(request: ResignRequest<'_>) -> Result<Resign, SignError> {
    let ResignRequest {
        zone,
        removed,
        added,
        keys,
        policy,
        now,
    } = request;
    let origin = zone.origin().to_lowercase();
    let apex = Owner::of(&origin);
    if let Some(why) = whole_zone_reason(zone, &origin, &apex, keys, policy)? {
        return Ok(Resign::Whole(why));
    }
    let failed = |reason: String| SignError::Change {
        zone: origin.to_string(),
        reason,
    };

    // The touched names' data after the change.
    let mut after: BTreeMap<Owner, After> = BTreeMap::new();
    let load = |after: &mut BTreeMap<Owner, After>, owner: Owner| {
        if !after.contains_key(&owner) {
            let sets = data_of(zone, &owner);
            after.insert(
                owner.clone(),
                After {
                    sets,
                    occluded: false,
                    in_chain: false,
                },
            );
        }
    };
    // A record removed twice in two cases of its names is one record: the zone
    // holds one of them (as whole signing keeps one).
    let mut taken_out: HashMap<(Box<[u8]>, RecordType), Vec<&Record>> = HashMap::new();
    for record in removed.iter().filter(|r| !is_signer_type(r.record_type())) {
        let owner = Owner::of(&record.name);
        let already: &mut Vec<&Record> = taken_out
            .entry((owner.key.clone(), record.record_type()))
            .or_default();
        if already.iter().any(|r| same_data(r, record)) {
            continue;
        }
        already.push(record);
        load(&mut after, owner.clone());
        let set = after
            .get_mut(&owner)
            .and_then(|a| a.sets.get_mut(&record.record_type()));
        // The SOA served carries the signer's serial, not the change's: the
        // change's old SOA stands for whichever one the zone holds.
        let at = set.as_ref().and_then(|set| {
            set.iter()
                .position(|r| same_data(r, record) || record.record_type() == RecordType::SOA)
        });
        match (set, at) {
            (Some(set), Some(at)) => {
                set.swap_remove(at);
            }
            _ => {
                return Err(failed(format!(
                    "the change removes a {} record of {} that the zone does not hold",
                    record.record_type(),
                    record.name
                )));
            }
        }
    }
    for record in added.iter().filter(|r| !is_signer_type(r.record_type())) {
        let owner = Owner::of(&record.name);
        if !origin.zone_of(&owner.name) {
            return Err(failed(format!("{} is outside the zone", record.name)));
        }
        load(&mut after, owner.clone());
        if let Some(state) = after.get_mut(&owner) {
            add_to(&mut state.sets, &owner.name, record.clone());
        }
    }
    for state in after.values_mut() {
        state.sets.retain(|_, set| !set.is_empty());
    }
    load(&mut after, apex.clone());

    // The SOA: the change's serial when it moved ahead, else one more.
    let old_soa = zone.soa().clone();
    let new_soa = after
        .get(&apex)
        .and_then(|a| a.sets.get(&RecordType::SOA))
        .and_then(|set| set.first())
        .cloned()
        .ok_or_else(|| failed("the change leaves no SOA at the apex".into()))?;
    if after
        .get(&apex)
        .and_then(|a| a.sets.get(&RecordType::SOA))
        .is_some_and(|set| set.len() > 1)
    {
        return Err(failed("the change leaves more than one SOA".into()));
    }
    if negative_ttl(&new_soa) != negative_ttl(&old_soa) {
        return Ok(Resign::Whole(
            "the SOA's TTL or MINIMUM changed, and with it every NSEC/NSEC3 TTL".into(),
        ));
    }
    let last = zone.serial();
    let file_serial = serial_of(&new_soa);
    let serial = if newer(file_serial, last) {
        file_serial
    } else {
        last.wrapping_add(1).max(1)
    };
    if let Some(set) = after
        .get_mut(&apex)
        .and_then(|a| a.sets.get_mut(&RecordType::SOA))
    {
        for record in set.iter_mut() {
            if let RData::SOA(data) = &mut record.data {
                data.serial = serial;
            }
        }
    }

    // Names whose occlusion the change moves: everything below a name that
    // became or stopped being a cut or a DNAME.
    let moved: Vec<Owner> = after
        .iter()
        .filter(|(owner, state)| {
            let before = zone.types_at_key(&owner.key);
            let hides_before = (**owner != apex && before.contains(&RecordType::NS))
                || before.contains(&RecordType::DNAME);
            let hides_after =
                state.is_cut(&apex, owner) || state.sets.contains_key(&RecordType::DNAME);
            hides_before != hides_after
        })
        .map(|(owner, _)| owner.clone())
        .collect();
    for top in moved {
        let mut at = top.key.clone();
        while let Some(next) = zone.key_after(&at) {
            if !next.starts_with(&top.key) {
                break;
            }
            let owner = Owner::of(&sextant_zone::name_of_key(&next));
            load(&mut after, owner);
            at = next;
        }
    }

    let opt_out = matches!(policy.denial, DenialPolicy::Nsec3 { opt_out: true, .. });
    let keys_now: Vec<Owner> = after.keys().cloned().collect();
    for owner in &keys_now {
        let occluded = occluded_after(zone, &after, &apex, owner);
        if let Some(state) = after.get_mut(owner) {
            state.occluded = occluded;
            let insecure_cut =
                state.is_cut(&apex, owner) && !state.sets.contains_key(&RecordType::DS);
            state.in_chain = state.exists() && !occluded && !(opt_out && insecure_cut);
        }
    }

    let mut out = Out::default();
    let mut old_records: Vec<Record> = Vec::new();
    let params = match &policy.denial {
        DenialPolicy::Nsec => None,
        DenialPolicy::Nsec3 { iterations, .. } => {
            let (_, salt) = zone.nsec3_chain_params().unwrap_or_default();
            Some((*iterations, salt))
        }
    };

    // NSEC: a name entering or leaving the chain changes its predecessor's link.
    if params.is_none() {
        let moved_in_chain: Vec<Owner> = after
            .iter()
            .filter(|(owner, state)| {
                state.in_chain != zone.types_at_key(&owner.key).contains(&RecordType::NSEC)
            })
            .map(|(owner, _)| owner.clone())
            .collect();
        for owner in moved_in_chain {
            if let Some(previous) = step_in_chain(zone, &after, &owner.key, false) {
                let previous = Owner::of(&sextant_zone::name_of_key(&previous));
                if !after.contains_key(&previous) {
                    // Untouched and in the chain: only its link changes.
                    let sets = data_of(zone, &previous);
                    after.insert(
                        previous.clone(),
                        After {
                            sets,
                            occluded: false,
                            in_chain: true,
                        },
                    );
                }
            }
        }
    }

    for owner in after.keys() {
        old_records.extend(zone.records_at_key(&owner.key));
    }
    let nsec3 = match &params {
        Some((iterations, salt)) => Some(nsec3_changes(
            zone,
            &after,
            &apex,
            *iterations,
            salt,
            &failed,
        )?),
        None => None,
    };
    if let Some(changes) = &nsec3 {
        for hash in changes.rewritten.keys().chain(changes.leaving.iter()) {
            old_records.extend(zone.nsec3_records(hash));
        }
    }
    let previous = Previous::of(old_records.into_iter(), &origin);
    let mut signer = Signer {
        origin: &origin,
        keys,
        policy,
        now,
        previous: Some(&previous),
        made: 0,
        kept: 0,
        refresh_at: u64::MAX,
        seen: 0,
        unchanged: 0,
    };
    let negative = negative_ttl(&new_soa);

    for (owner, state) in &after {
        let mut new_records: Vec<Record> = Vec::new();
        let cut = state.is_cut(&apex, owner);
        for (rtype, set) in &state.sets {
            new_records.extend(set.iter().cloned());
            let signed =
                !state.occluded && (!cut || matches!(rtype, RecordType::DS | RecordType::NSEC));
            if signed {
                new_records.extend(signer.signatures(&owner.name, *rtype, set)?);
            }
        }
        if params.is_none() && state.in_chain {
            let next = step_in_chain(zone, &after, &owner.key, true)
                .map_or_else(|| origin.clone(), |key| sextant_zone::name_of_key(&key));
            let mut types: Vec<RecordType> = state.sets.keys().copied().collect();
            types.extend([RecordType::NSEC, RecordType::RRSIG]);
            let nsec = vec![Record::from_rdata(
                owner.name.clone(),
                negative,
                RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(next, types))),
            )];
            new_records.extend(signer.signatures(&owner.name, RecordType::NSEC, &nsec)?);
            new_records.extend(nsec);
        }
        out.replace(zone.records_at_key(&owner.key), new_records);
    }
    if let (Some(changes), Some((iterations, salt))) = (nsec3, &params) {
        for hash in &changes.leaving {
            out.replace(zone.nsec3_records(hash), Vec::new());
        }
        for (hash, types) in &changes.rewritten {
            let next = changes.next_after(zone, hash);
            let owner = hashed_owner(hash, &origin, &failed)?;
            let record = vec![Record::from_rdata(
                owner.clone(),
                negative,
                RData::DNSSEC(DNSSECRData::NSEC3(NSEC3::new(
                    Nsec3HashAlgorithm::SHA1,
                    opt_out,
                    *iterations,
                    salt.clone(),
                    next.to_vec(),
                    types.iter().copied(),
                ))),
            )];
            let mut new_records = signer.signatures(&owner, RecordType::NSEC3, &record)?;
            new_records.extend(record);
            out.replace(zone.nsec3_records(hash), new_records);
        }
    }
    Ok(Resign::Change(SignedChange {
        removed: out.removed,
        added: out.added,
        serial,
        made: signer.made,
        kept: signer.kept,
        refresh_at: signer.refresh_at,
    }))
}

/// Why the change cannot be signed alone, if it cannot.
fn whole_zone_reason(
    zone: &Zone,
    origin: &Name,
    apex: &Owner,
    keys: &[ZoneKey],
    policy: &Policy,
) -> Result<Option<String>, SignError> {
    if !zone.is_signed() {
        return Ok(Some("the zone is not signed yet".into()));
    }
    let apex_records = zone.records_at_key(&apex.key);
    let keyset_now: BTreeSet<Vec<u8>> = apex_records
        .iter()
        .filter(|r| {
            matches!(
                r.record_type(),
                RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY
            )
        })
        .map(wire)
        .collect();
    let keyset_wanted: BTreeSet<Vec<u8>> = keyset(origin, keys, policy)?.iter().map(wire).collect();
    if keyset_now != keyset_wanted {
        return Ok(Some("the zone's published keys change".into()));
    }
    let signing_tags = |covered: RecordType| -> BTreeSet<(u16, u8)> {
        apex_records
            .iter()
            .filter_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::RRSIG(sig)) if sig.input().type_covered == covered => {
                    Some((sig.input().key_tag, u8::from(sig.input().algorithm)))
                }
                _ => None,
            })
            .collect()
    };
    let wanted = |keyset: bool| -> BTreeSet<(u16, u8)> {
        keys.iter()
            .filter(|k| {
                if keyset {
                    k.usage().sign_keyset
                } else {
                    k.usage().sign_zone
                }
            })
            .map(|k| (k.tag(), u8::from(k.algorithm())))
            .collect()
    };
    if signing_tags(RecordType::SOA) != wanted(false)
        || signing_tags(RecordType::DNSKEY) != wanted(true)
    {
        return Ok(Some("the keys that sign the zone change".into()));
    }
    let denial_matches = match &policy.denial {
        DenialPolicy::Nsec => apex_records
            .iter()
            .any(|r| r.record_type() == RecordType::NSEC),
        DenialPolicy::Nsec3 {
            iterations,
            salt_length,
            opt_out,
        } => {
            zone.nsec3_chain_params().is_some_and(|(i, salt)| {
                i == *iterations && salt.len() == usize::from(*salt_length)
            }) && apex_nsec3_opt_out(zone, origin).is_some_and(|flag| flag == *opt_out)
        }
    };
    if !denial_matches {
        return Ok(Some(
            "the zone's denial (NSEC or NSEC3 and its parameters) changes".into(),
        ));
    }
    Ok(None)
}

/// The Opt-Out flag of the apex's NSEC3 record.
fn apex_nsec3_opt_out(zone: &Zone, origin: &Name) -> Option<bool> {
    let (iterations, salt) = zone.nsec3_chain_params()?;
    let hash = Nsec3HashAlgorithm::SHA1
        .hash(&salt, origin, iterations)
        .ok()?;
    zone.nsec3_records(hash.as_ref())
        .iter()
        .find_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::NSEC3(nsec3)) => Some(nsec3.opt_out()),
            _ => None,
        })
}

/// The data of a name in the served version: everything but the signatures and
/// the denial records, which are made again.
fn data_of(zone: &Zone, owner: &Owner) -> BTreeMap<RecordType, Vec<Record>> {
    let mut sets: BTreeMap<RecordType, Vec<Record>> = BTreeMap::new();
    for record in zone.records_at_key(&owner.key) {
        if matches!(
            record.record_type(),
            RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
        ) {
            continue;
        }
        sets.entry(record.record_type()).or_default().push(record);
    }
    sets
}

/// Adds `record` to its RRset as the zone builder would: duplicates dropped, the
/// smallest TTL for the whole set.
fn add_to(sets: &mut BTreeMap<RecordType, Vec<Record>>, owner: &Name, mut record: Record) {
    record.name = owner.clone();
    let set = sets.entry(record.record_type()).or_default();
    if set.iter().any(|r| same_data(r, &record)) {
        return;
    }
    let ttl = set.first().map_or(record.ttl, |r| r.ttl.min(record.ttl));
    record.ttl = ttl;
    for existing in set.iter_mut() {
        existing.ttl = ttl;
    }
    set.push(record);
}

/// Whether `owner` is below a cut or a DNAME after the change.
fn occluded_after(
    zone: &Zone,
    after: &BTreeMap<Owner, After>,
    apex: &Owner,
    owner: &Owner,
) -> bool {
    let mut name = owner.name.clone();
    // Labels counted with a wildcard's `*` (which `num_labels` leaves out).
    while name.iter().count() > apex.name.iter().count() {
        name = name.base_name();
        let above = Owner::of(&name);
        let types: Vec<RecordType> = match after.get(&above) {
            Some(state) => state.sets.keys().copied().collect(),
            None => zone.types_at_key(&above.key),
        };
        let cut = above != *apex && types.contains(&RecordType::NS);
        if cut || types.contains(&RecordType::DNAME) {
            return true;
        }
    }
    false
}

/// The next (or previous) name after the change, from `key`, that exists.
fn step(
    zone: &Zone,
    after: &BTreeMap<Owner, After>,
    key: &[u8],
    forward: bool,
) -> Option<Box<[u8]>> {
    let mut cursor: Box<[u8]> = key.into();
    loop {
        let in_zone = if forward {
            zone.key_after(&cursor)
        } else {
            zone.key_before(&cursor)
        };
        let probe = Owner {
            key: cursor.clone(),
            name: Name::root(),
        };
        let touched = if forward {
            after
                .range((Bound::Excluded(&probe), Bound::Unbounded))
                .next()
                .map(|(o, _)| o.key.clone())
        } else {
            after
                .range(..&probe)
                .next_back()
                .map(|(o, _)| o.key.clone())
        };
        let candidate = match (in_zone, touched) {
            (Some(a), Some(b)) => {
                if (a < b) == forward {
                    a
                } else {
                    b
                }
            }
            (a, b) => a.or(b)?,
        };
        let probe = Owner {
            key: candidate.clone(),
            name: Name::root(),
        };
        match after.get(&probe) {
            Some(state) if !state.exists() => cursor = candidate,
            _ => return Some(candidate),
        }
    }
}

/// The next (or previous) name in the NSEC chain after the change; `None` past
/// the last (the chain then goes back to the apex).
fn step_in_chain(
    zone: &Zone,
    after: &BTreeMap<Owner, After>,
    key: &[u8],
    forward: bool,
) -> Option<Box<[u8]>> {
    let mut cursor: Box<[u8]> = key.into();
    loop {
        let candidate = step(zone, after, &cursor, forward)?;
        let probe = Owner {
            key: candidate.clone(),
            name: Name::root(),
        };
        let in_chain = match after.get(&probe) {
            Some(state) => state.in_chain,
            None => zone.types_at_key(&candidate).contains(&RecordType::NSEC),
        };
        if in_chain {
            return Some(candidate);
        }
        cursor = candidate;
    }
}

/// The NSEC3 records a change rewrites and removes.
struct Nsec3Changes {
    /// Hashes whose record is written again, with its types.
    rewritten: BTreeMap<Box<[u8]>, Vec<RecordType>>,
    /// Hashes that leave the chain.
    leaving: BTreeSet<Box<[u8]>>,
    /// Hashes that join it.
    entering: BTreeSet<Box<[u8]>>,
}

impl Nsec3Changes {
    /// The next hash of the chain after the change, after `hash` (wrapping).
    fn next_after(&self, zone: &Zone, hash: &[u8]) -> Box<[u8]> {
        self.neighbour(zone, hash, true)
    }

    fn previous_of(&self, zone: &Zone, hash: &[u8]) -> Box<[u8]> {
        self.neighbour(zone, hash, false)
    }

    fn neighbour(&self, zone: &Zone, hash: &[u8], forward: bool) -> Box<[u8]> {
        let from_zone = |at: &[u8]| {
            if forward {
                zone.nsec3_hash_after(at)
            } else {
                zone.nsec3_hash_before(at)
            }
        };
        let mut in_zone = from_zone(hash);
        // Bounded: every hash skipped is one leaving the chain.
        for _ in 0..=self.leaving.len() {
            match &in_zone {
                Some(h) if self.leaving.contains(h) && **h != *hash => in_zone = from_zone(h),
                _ => break,
            }
        }
        let in_zone = in_zone.filter(|h| !self.leaving.contains(h) && **h != *hash);
        let joining = if forward {
            self.entering
                .range::<[u8], _>((Bound::Excluded(hash), Bound::Unbounded))
                .next()
                .or_else(|| self.entering.iter().next())
        } else {
            self.entering
                .range::<[u8], _>((Bound::Unbounded, Bound::Excluded(hash)))
                .next_back()
                .or_else(|| self.entering.iter().next_back())
        }
        .filter(|h| ***h != *hash)
        .cloned();
        // Circular order from `hash`: what comes after it first, then the rest.
        let rank = |h: &[u8]| {
            if forward {
                (h <= hash, h.to_vec())
            } else {
                (h >= hash, h.iter().map(|b| !b).collect())
            }
        };
        match (in_zone, joining) {
            (Some(a), Some(b)) => {
                if rank(&a) <= rank(&b) {
                    a
                } else {
                    b
                }
            }
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => hash.into(),
        }
    }
}

/// Which NSEC3 records the change touches: those of the changed names, of the
/// empty non-terminals above them, and of the chain neighbours of every hash
/// that joins or leaves.
fn nsec3_changes(
    zone: &Zone,
    after: &BTreeMap<Owner, After>,
    apex: &Owner,
    iterations: u16,
    salt: &[u8],
    failed: &dyn Fn(String) -> SignError,
) -> Result<Nsec3Changes, SignError> {
    let hash_of = |name: &Name| -> Result<Box<[u8]>, SignError> {
        Nsec3HashAlgorithm::SHA1
            .hash(salt, name, iterations)
            .map(|d| d.as_ref().into())
            .map_err(|e| failed(format!("hashing {name}: {e}")))
    };
    // The touched names, and the names above them without data of their own.
    let mut candidates: BTreeMap<Owner, Option<&After>> = BTreeMap::new();
    for (owner, state) in after {
        candidates.insert(owner.clone(), Some(state));
        let mut name = owner.name.clone();
        while name.iter().count() > apex.name.iter().count() {
            name = name.base_name();
            let above = Owner::of(&name);
            if candidates.contains_key(&above) {
                break;
            }
            match after.get(&above) {
                Some(state) => {
                    candidates.insert(above, Some(state));
                }
                None if zone.types_at_key(&above.key).is_empty() => {
                    candidates.insert(above, None);
                }
                None => break,
            }
        }
    }
    let in_chain_now = |hash: &[u8]| !zone.nsec3_records(hash).is_empty();
    let mut changes = Nsec3Changes {
        rewritten: BTreeMap::new(),
        leaving: BTreeSet::new(),
        entering: BTreeSet::new(),
    };
    for (owner, state) in &candidates {
        let hash = hash_of(&owner.name)?;
        let types = match state {
            Some(state) if state.exists() => state.in_chain.then(|| {
                let mut types: Vec<RecordType> = state.sets.keys().copied().collect();
                let insecure_cut =
                    state.is_cut(apex, owner) && !state.sets.contains_key(&RecordType::DS);
                if !insecure_cut {
                    types.push(RecordType::RRSIG);
                }
                if owner == apex {
                    types.push(RecordType::NSEC3PARAM);
                }
                types
            }),
            // An empty non-terminal is in the chain while a name below it is.
            _ => has_chained_descendant(zone, after, owner, &hash_of)?.then(Vec::new),
        };
        let before = in_chain_now(&hash);
        match types {
            Some(types) => {
                if !before {
                    changes.entering.insert(hash.clone());
                }
                changes.rewritten.insert(hash, types);
            }
            None if before => {
                changes.leaving.insert(hash);
            }
            None => {}
        }
    }
    let moved: Vec<Box<[u8]>> = changes
        .entering
        .iter()
        .chain(changes.leaving.iter())
        .cloned()
        .collect();
    for hash in moved {
        let previous = changes.previous_of(zone, &hash);
        if changes.rewritten.contains_key(&previous) || changes.leaving.contains(&previous) {
            continue;
        }
        let types = zone
            .nsec3_records(&previous)
            .iter()
            .find_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::NSEC3(nsec3)) => {
                    Some(nsec3.type_bit_maps().collect::<Vec<_>>())
                }
                _ => None,
            })
            .ok_or_else(|| {
                failed(format!(
                    "the NSEC3 record before {} is missing",
                    data_encoding::BASE32HEX_NOPAD.encode(&hash)
                ))
            })?;
        changes.rewritten.insert(previous, types);
    }
    Ok(changes)
}

/// The NSEC3 hash of a name with the chain's parameters.
type HashOf<'a> = dyn Fn(&Name) -> Result<Box<[u8]>, SignError> + 'a;

/// Whether a name below `owner` is in the NSEC3 chain after the change.
fn has_chained_descendant(
    zone: &Zone,
    after: &BTreeMap<Owner, After>,
    owner: &Owner,
    hash_of: &HashOf<'_>,
) -> Result<bool, SignError> {
    let mut at = owner.key.clone();
    while let Some(next) = step(zone, after, &at, true) {
        if !next.starts_with(&owner.key) {
            return Ok(false);
        }
        let probe = Owner {
            key: next.clone(),
            name: Name::root(),
        };
        let chained = match after.get(&probe) {
            Some(state) => state.in_chain,
            None => {
                let name = sextant_zone::name_of_key(&next);
                !zone.nsec3_records(&hash_of(&name)?).is_empty()
            }
        };
        if chained {
            return Ok(true);
        }
        at = next;
    }
    Ok(false)
}

/// The owner of the NSEC3 record of `hash`.
fn hashed_owner(
    hash: &[u8],
    origin: &Name,
    failed: &dyn Fn(String) -> SignError,
) -> Result<Name, SignError> {
    let label = data_encoding::BASE32HEX_NOPAD
        .encode(hash)
        .to_ascii_lowercase();
    Name::from_ascii(&label)
        .and_then(|l| l.append_domain(origin))
        .map_err(|e| failed(format!("NSEC3 owner {label}: {e}")))
}

/// Whether two records of one RRset hold the same data, as whole signing decides
/// it (`RData` equality: names compared without case, so `MX 10 MAIL.example.` is
/// `MX 10 mail.example.`, and `HTTPS 1 FOO.` is `HTTPS 1 foo.`), or as wire data
/// in canonical form (the same data held decoded and as raw bytes, a type the
/// parser keeps unknown).
fn same_data(a: &Record, b: &Record) -> bool {
    a.data == b.data || rdata(a) == rdata(b)
}

/// A record's data in canonical wire form (RFC 4034 section 6.2: the names of
/// the types it lists in lower case).
fn rdata(record: &Record) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_canonical_form(true);
    match record.data.emit(&mut encoder) {
        Ok(()) => bytes,
        Err(_) => Vec::new(),
    }
}

fn wire(record: &Record) -> Vec<u8> {
    record.to_bytes().unwrap_or_default()
}

/// The records taken out and put in.
#[derive(Default)]
struct Out {
    removed: Vec<Record>,
    added: Vec<Record>,
}

impl Out {
    /// Records `old` replaced by `new`, each as its difference.
    fn replace(&mut self, old: Vec<Record>, new: Vec<Record>) {
        let old_wire: HashSet<Vec<u8>> = old.iter().map(wire).collect();
        let new_wire: HashSet<Vec<u8>> = new.iter().map(wire).collect();
        self.removed
            .extend(old.into_iter().filter(|r| !new_wire.contains(&wire(r))));
        self.added
            .extend(new.into_iter().filter(|r| !old_wire.contains(&wire(r))));
    }
}
