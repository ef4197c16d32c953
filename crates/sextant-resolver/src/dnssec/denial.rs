//! Proofs of non-existence (RFC 4035 §5.4, RFC 5155 §8, RFC 6840 §4): what a set
//! of NSEC or NSEC3 records, whose signatures the caller has already checked, proves
//! about a name and type. Nothing here trusts a record it is not given.

use hickory_proto::dnssec::Nsec3HashAlgorithm;
use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC, NSEC3};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::Bogus;
use super::verify::Work;

/// What the records prove about a name and type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Denial {
    /// The name does not exist, nor a wildcard that could stand for it.
    NxDomain,
    /// The name exists without the type; `cut` when it is a delegation (NS without
    /// SOA): then only its DS (and the absence of DS) is the parent's to prove.
    NoData { cut: bool },
    /// A wildcard stands for the name and lacks the type.
    WildcardNoData,
    /// An NSEC3 Opt-Out span covers the name: an unsigned delegation may be there,
    /// so nothing below it can be secure (RFC 5155 §6).
    OptOut,
    /// NSEC3 with more iterations than we hash: insecure (RFC 9276 §3.2).
    TooManyIterations,
    /// Nothing here proves it.
    Unproven,
}

/// What `nsecs` and `nsec3s` (owned by `zone`) prove about `qname` and `qtype`.
pub(crate) fn deny(
    qname: &Name,
    qtype: RecordType,
    zone: &Name,
    records: &[Record],
    max_iterations: u16,
    work: &Work,
) -> Result<Denial, Bogus> {
    match Proof::of(zone, records, max_iterations) {
        Proof::Nsec(nsecs) => Ok(deny_nsec(qname, qtype, &nsecs)),
        Proof::Nsec3(chain) => chain.deny(qname, qtype, zone, work),
        Proof::Beyond(denial) => Ok(denial),
    }
}

/// What kind of proof the records make.
enum Proof<'r> {
    Nsec(Vec<(&'r Name, &'r NSEC)>),
    Nsec3(Nsec3Chain<'r>),
    /// Nothing to examine: unproven, or NSEC3 hashed more than we will.
    Beyond(Denial),
}

impl<'r> Proof<'r> {
    fn of(zone: &Name, records: &'r [Record], max_iterations: u16) -> Self {
        let nsecs: Vec<(&Name, &NSEC)> = records.iter().filter_map(nsec).collect();
        if !nsecs.is_empty() {
            return Proof::Nsec(nsecs);
        }
        match Nsec3Chain::new(zone, records) {
            None => Proof::Beyond(Denial::Unproven),
            Some(chain) if chain.iterations > max_iterations => {
                Proof::Beyond(Denial::TooManyIterations)
            }
            Some(chain) => Proof::Nsec3(chain),
        }
    }
}

/// Whether the records prove that `qname` itself does not exist, as a wildcard
/// answer needs (RFC 4035 §5.3.4, RFC 5155 §8.8); `labels` is the RRSIG's label
/// count (the wildcard's parent has that many labels). `NxDomain` when proven.
pub(crate) fn proves_expansion(
    qname: &Name,
    labels: u8,
    zone: &Name,
    records: &[Record],
    max_iterations: u16,
    work: &Work,
) -> Result<Denial, Bogus> {
    let chain = match Proof::of(zone, records, max_iterations) {
        Proof::Nsec(nsecs) => {
            let covered = nsecs
                .iter()
                .any(|(owner, nsec)| covers(owner, nsec.next_domain_name(), qname));
            return Ok(if covered {
                Denial::NxDomain
            } else {
                Denial::Unproven
            });
        }
        Proof::Nsec3(chain) => chain,
        Proof::Beyond(denial) => return Ok(denial),
    };
    let next_closer = qname.trim_to(usize::from(labels) + 1);
    Ok(match chain.covering(&next_closer, work)? {
        Some(span) if span.opt_out() => Denial::OptOut,
        Some(_) => Denial::NxDomain,
        None => Denial::Unproven,
    })
}

fn nsec(record: &Record) -> Option<(&Name, &NSEC)> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::NSEC(nsec)) => Some((&record.name, nsec)),
        _ => None,
    }
}

/// Whether the NSEC from `owner` to `next` covers `name`: it falls strictly between
/// them in canonical order, or after the last name of the zone (`next` is the apex).
fn covers(owner: &Name, next: &Name, name: &Name) -> bool {
    if owner < next {
        owner < name && name < next
    } else {
        owner < name && next.zone_of(name)
    }
}

/// The closest encloser of a name covered by the NSEC from `owner` to `next`: the
/// longest of its ancestors that exists (either end of the span, or above them).
fn closest_encloser(name: &Name, owner: &Name, next: &Name) -> Name {
    let common = |other: &Name| {
        let mut candidate = name.base_name();
        while !candidate.zone_of(other) && !candidate.is_root() {
            candidate = candidate.base_name();
        }
        candidate
    };
    let a = common(owner);
    let b = common(next);
    if a.num_labels() >= b.num_labels() {
        a
    } else {
        b
    }
}

fn wildcard_of(encloser: &Name) -> Option<Name> {
    Name::from_ascii("*").ok()?.append_domain(encloser).ok()
}

/// What a type bitmap at the name asked for says, or `None` when the name has the
/// type (or a CNAME) and so proves nothing negative.
fn nodata(types: &hickory_proto::rr::RecordTypeSet, qtype: RecordType) -> Option<Denial> {
    if types.contains(qtype) || types.contains(RecordType::CNAME) {
        return None;
    }
    let cut = types.contains(RecordType::NS) && !types.contains(RecordType::SOA);
    // A parent's NSEC at a delegation speaks for the DS only: the rest of the name's
    // data is the child's (RFC 6840 §4.1).
    if cut && qtype != RecordType::DS {
        return None;
    }
    Some(Denial::NoData { cut })
}

fn deny_nsec(qname: &Name, qtype: RecordType, nsecs: &[(&Name, &NSEC)]) -> Denial {
    if let Some((_, nsec)) = nsecs.iter().find(|(owner, _)| *owner == qname) {
        return nodata(nsec.type_set(), qtype).unwrap_or(Denial::Unproven);
    }
    let Some((owner, nsec)) = nsecs
        .iter()
        .find(|(owner, nsec)| covers(owner, nsec.next_domain_name(), qname))
    else {
        return Denial::Unproven;
    };
    let next = nsec.next_domain_name();
    let types = nsec.type_set();
    // Below a delegation the parent's chain proves nothing (RFC 6840 §4.1), nor
    // below a DNAME, which sends those names elsewhere (RFC 6672 §5.3.4).
    if owner.zone_of(qname)
        && *owner != qname
        && (types.contains(RecordType::DNAME)
            || (types.contains(RecordType::NS) && !types.contains(RecordType::SOA)))
    {
        return Denial::Unproven;
    }
    if qname.zone_of(next) {
        // The name has descendants: an empty non-terminal (RFC 4035 §3.1.3.2).
        return Denial::NoData { cut: false };
    }
    let encloser = closest_encloser(qname, owner, next);
    let Some(wildcard) = wildcard_of(&encloser) else {
        return Denial::Unproven;
    };
    if let Some((_, nsec)) = nsecs.iter().find(|(o, _)| **o == wildcard) {
        return match nodata(nsec.type_set(), qtype) {
            Some(_) => Denial::WildcardNoData,
            None => Denial::Unproven,
        };
    }
    let wildcard_covered = nsecs
        .iter()
        .any(|(o, nsec)| covers(o, nsec.next_domain_name(), &wildcard));
    if wildcard_covered {
        Denial::NxDomain
    } else {
        Denial::Unproven
    }
}

/// A zone's NSEC3 records with their owners' hashes decoded.
struct Nsec3Chain<'r> {
    entries: Vec<(Vec<u8>, &'r NSEC3)>,
    iterations: u16,
    salt: &'r [u8],
}

impl<'r> Nsec3Chain<'r> {
    /// The NSEC3 records of `zone` among `records` that share the first one's
    /// parameters (RFC 5155 §8.2: others are ignored).
    fn new(zone: &Name, records: &'r [Record]) -> Option<Self> {
        let mut entries = Vec::new();
        let mut params: Option<(u16, &[u8])> = None;
        for record in records {
            let RData::DNSSEC(DNSSECRData::NSEC3(nsec3)) = &record.data else {
                continue;
            };
            if record.name.base_name() != *zone
                || nsec3.hash_algorithm() != Nsec3HashAlgorithm::SHA1
            {
                continue;
            }
            let (iterations, salt) = *params.get_or_insert((nsec3.iterations(), nsec3.salt()));
            if nsec3.iterations() != iterations || nsec3.salt() != salt {
                continue;
            }
            let Some(label) = record.name.iter().next() else {
                continue;
            };
            let label = label.to_ascii_uppercase();
            let Ok(hash) = data_encoding::BASE32HEX_NOPAD.decode(&label) else {
                continue;
            };
            entries.push((hash, nsec3));
        }
        let (iterations, salt) = params?;
        Some(Self {
            entries,
            iterations,
            salt,
        })
    }

    fn hash(&self, name: &Name, work: &Work) -> Result<Vec<u8>, Bogus> {
        work.take_hash()?;
        Nsec3HashAlgorithm::SHA1
            .hash(self.salt, name, self.iterations)
            .map(|digest| digest.as_ref().to_vec())
            .map_err(|_| Bogus::NsecMissing)
    }

    fn matching(&self, name: &Name, work: &Work) -> Result<Option<&'r NSEC3>, Bogus> {
        let hash = self.hash(name, work)?;
        Ok(self
            .entries
            .iter()
            .find(|(owner, _)| *owner == hash)
            .map(|(_, n)| *n))
    }

    fn covering(&self, name: &Name, work: &Work) -> Result<Option<&'r NSEC3>, Bogus> {
        let hash = self.hash(name, work)?;
        Ok(self
            .entries
            .iter()
            .find(|(owner, nsec3)| {
                let next = nsec3.next_hashed_owner_name();
                if owner.as_slice() < next {
                    owner.as_slice() < hash.as_slice() && hash.as_slice() < next
                } else {
                    // The last span wraps around to the first hash.
                    owner.as_slice() < hash.as_slice() || hash.as_slice() < next
                }
            })
            .map(|(_, n)| *n))
    }

    /// The closest encloser proof (RFC 5155 §8.3): the deepest existing ancestor of
    /// `qname` with a matching NSEC3, and the NSEC3 covering the next closer name.
    fn closest_encloser(
        &self,
        qname: &Name,
        zone: &Name,
        work: &Work,
    ) -> Result<Option<(Name, &'r NSEC3)>, Bogus> {
        let mut next_closer = qname.clone();
        while next_closer != *zone && zone.zone_of(&next_closer) {
            let candidate = next_closer.base_name();
            if let Some(encloser) = self.matching(&candidate, work)? {
                // A delegation or a DNAME sends the names below elsewhere: the
                // chain proves nothing about them (RFC 5155 §8.3, RFC 6672 §5.3.4).
                let types = encloser.type_set();
                let redirects = types.contains(RecordType::DNAME)
                    || (types.contains(RecordType::NS) && !types.contains(RecordType::SOA));
                if redirects {
                    return Ok(None);
                }
                return Ok(self
                    .covering(&next_closer, work)?
                    .map(|span| (candidate, span)));
            }
            next_closer = candidate;
        }
        Ok(None)
    }

    fn deny(
        &self,
        qname: &Name,
        qtype: RecordType,
        zone: &Name,
        work: &Work,
    ) -> Result<Denial, Bogus> {
        if let Some(nsec3) = self.matching(qname, work)? {
            return Ok(nodata(nsec3.type_set(), qtype).unwrap_or(Denial::Unproven));
        }
        let Some((encloser, span)) = self.closest_encloser(qname, zone, work)? else {
            return Ok(Denial::Unproven);
        };
        if span.opt_out() {
            return Ok(Denial::OptOut);
        }
        let Some(wildcard) = wildcard_of(&encloser) else {
            return Ok(Denial::Unproven);
        };
        if let Some(nsec3) = self.matching(&wildcard, work)? {
            return Ok(match nodata(nsec3.type_set(), qtype) {
                Some(_) => Denial::WildcardNoData,
                None => Denial::Unproven,
            });
        }
        Ok(match self.covering(&wildcard, work)? {
            Some(_) => Denial::NxDomain,
            None => Denial::Unproven,
        })
    }
}
