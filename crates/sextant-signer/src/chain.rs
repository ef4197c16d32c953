//! The denial chains (RFC 4034 §4, RFC 5155 §7.1) over a zone's authoritative
//! names, and which names are authoritative at all.

use std::collections::{BTreeMap, HashSet};

use hickory_proto::dnssec::Nsec3HashAlgorithm;
use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC, NSEC3, NSEC3PARAM};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::sign::{Owner, Sets, SignError, Types, add};

/// Which names are authoritative, which are delegations, which are hidden.
pub(crate) struct Shape {
    /// Names with NS below the apex.
    cuts: HashSet<Owner>,
    /// Names below a cut or a DNAME: glue and occluded data, neither signed nor in
    /// the chain.
    occluded: HashSet<Owner>,
}

impl Shape {
    /// One pass in canonical order: a name's descendants follow it and their keys
    /// start with its key, so the cut or DNAME above a name is the last one seen
    /// whose key begins it.
    pub(crate) fn of(sets: &Sets, origin: &Name) -> Self {
        let apex = Owner::of(origin);
        let mut cuts = HashSet::new();
        let mut occluded = HashSet::new();
        let mut above: Option<&Owner> = None;
        for (owner, types) in sets {
            if let Some(cut) = above
                && owner.key.starts_with(&cut.key)
                && owner.key.len() > cut.key.len()
            {
                occluded.insert(owner.clone());
                continue;
            }
            let cut = *owner != apex && types.contains_key(&RecordType::NS);
            if cut {
                cuts.insert(owner.clone());
            }
            above = (cut || types.contains_key(&RecordType::DNAME)).then_some(owner);
        }
        Self { cuts, occluded }
    }

    /// Whether the RRset `owner`/`rtype` gets signatures: authoritative data only;
    /// at a delegation only the DS and the denial record (RFC 4035 §2.2).
    pub(crate) fn is_signed(&self, owner: &Owner, rtype: RecordType) -> bool {
        if self.occluded.contains(owner) {
            return false;
        }
        if self.cuts.contains(owner) {
            return matches!(rtype, RecordType::DS | RecordType::NSEC);
        }
        true
    }

    /// Whether `owner` is in the chain.
    fn in_chain(&self, owner: &Owner) -> bool {
        !self.occluded.contains(owner)
    }

    /// A delegation without DS: Opt-Out may leave it out of an NSEC3 chain.
    fn is_insecure_cut(&self, owner: &Owner, types: &Types) -> bool {
        self.cuts.contains(owner) && !types.contains_key(&RecordType::DS)
    }
}

/// The NSEC chain (RFC 4034 §4): each authoritative name to the next, the last
/// back to the apex.
pub(crate) fn add_nsec_chain(sets: &mut Sets, shape: &Shape, origin: &Name, ttl: u32) {
    let names: Vec<(Name, Vec<RecordType>)> = sets
        .iter()
        .filter(|(owner, _)| shape.in_chain(owner))
        .map(|(owner, types)| (owner.name.clone(), types.keys().copied().collect()))
        .collect();
    for (i, (name, types)) in names.iter().enumerate() {
        let next = names.get(i + 1).map_or(origin, |(n, _)| n).clone();
        let mut types = types.clone();
        types.extend([RecordType::NSEC, RecordType::RRSIG]);
        let record = Record::from_rdata(
            name.clone(),
            ttl,
            RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(next, types))),
        );
        add(sets, record);
    }
}

#[derive(Debug)]
pub(crate) struct Nsec3Params {
    pub(crate) iterations: u16,
    pub(crate) salt: Vec<u8>,
    pub(crate) opt_out: bool,
}

/// The NSEC3 chain (RFC 5155 §7.1): every authoritative name and empty
/// non-terminal hashed, in hash order, each to the next; NSEC3PARAM at the apex.
pub(crate) fn add_nsec3_chain(
    sets: &mut Sets,
    shape: &Shape,
    origin: &Name,
    ttl: u32,
    params: &Nsec3Params,
) -> Result<(), SignError> {
    // The names in the chain with their types (none for empty non-terminals).
    let mut names: BTreeMap<Owner, Vec<RecordType>> = BTreeMap::new();
    for (owner, types) in sets.iter() {
        if !shape.in_chain(owner) || (params.opt_out && shape.is_insecure_cut(owner, types)) {
            continue;
        }
        let mut list: Vec<RecordType> = types.keys().copied().collect();
        // Signed data is there (an insecure delegation has none of its own).
        if !shape.is_insecure_cut(owner, types) {
            list.push(RecordType::RRSIG);
        }
        names.insert(owner.clone(), list);
        let mut ancestor = owner.name.clone();
        while ancestor != *origin && !ancestor.is_root() {
            ancestor = ancestor.base_name();
            let key = Owner::of(&ancestor);
            if sets.contains_key(&key) || names.contains_key(&key) {
                // Names in the zone, and the ancestors of an empty non-terminal
                // already seen, are there already.
                break;
            }
            names.insert(key, Vec::new());
        }
    }
    if let Some(apex) = names.get_mut(&Owner::of(origin)) {
        apex.push(RecordType::NSEC3PARAM);
    }
    let mut hashed: Vec<(Vec<u8>, Vec<RecordType>)> = Vec::with_capacity(names.len());
    for (Owner { name, .. }, types) in names {
        let digest = Nsec3HashAlgorithm::SHA1
            .hash(&params.salt, &name, params.iterations)
            .map_err(|e| SignError::Nsec3 {
                zone: origin.to_string(),
                name: name.to_string(),
                reason: e.to_string(),
            })?;
        hashed.push((digest.as_ref().to_vec(), types));
    }
    hashed.sort_by(|a, b| a.0.cmp(&b.0));
    let count = hashed.len();
    for i in 0..count {
        let next = hashed[(i + 1) % count].0.clone();
        let (hash, types) = &hashed[i];
        let label = data_encoding::BASE32HEX_NOPAD
            .encode(hash)
            .to_ascii_lowercase();
        let owner = Name::from_ascii(&label)
            .and_then(|l| l.append_domain(origin))
            .map_err(|e| SignError::Nsec3 {
                zone: origin.to_string(),
                name: origin.to_string(),
                reason: e.to_string(),
            })?;
        let nsec3 = NSEC3::new(
            Nsec3HashAlgorithm::SHA1,
            params.opt_out,
            params.iterations,
            params.salt.clone(),
            next,
            types.iter().copied(),
        );
        add(
            sets,
            Record::from_rdata(owner, ttl, RData::DNSSEC(DNSSECRData::NSEC3(nsec3))),
        );
    }
    let param = NSEC3PARAM::new(
        Nsec3HashAlgorithm::SHA1,
        false,
        params.iterations,
        params.salt.clone(),
    );
    add(
        sets,
        Record::from_rdata(
            origin.clone(),
            0,
            RData::DNSSEC(DNSSECRData::NSEC3PARAM(param)),
        ),
    );
    Ok(())
}
