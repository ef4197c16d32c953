//! What a signed zone adds: how it denies existence (NSEC or NSEC3), found when the
//! zone is built, with the checks `dnssec-verify` makes of the chains, so that a
//! zone whose chain is broken is refused with the file and line of the record that
//! breaks it instead of being served with proofs no validator accepts.

use std::collections::BTreeMap;

use hickory_proto::rr::RecordType;

use crate::nodes::Node;
use crate::nsec3::{self, Chain, Entry, Params};
use crate::{Location, ZoneError, canonical};

/// How a zone proves that a name or a type does not exist.
#[derive(Debug)]
pub(crate) enum Denial {
    /// It has no NSEC or NSEC3 records.
    None,
    /// NSEC records (RFC 4034), at the names themselves.
    Nsec,
    /// NSEC3 records (RFC 5155), in their own chain.
    Nsec3(Chain),
}

/// Whether the zone built from `nodes` is signed (its SOA has an RRSIG), and how it
/// denies existence. NSEC3 records leave
/// `nodes` for the chain (those with other parameters, left by a change of
/// parameters, go to `unused`: transferred, never used in answers). `locate` says
/// where the RRset of a name and type was written.
pub(crate) fn denial(
    nodes: &mut BTreeMap<Box<[u8]>, Node>,
    origin_key: &[u8],
    origin_wire: &[u8],
    unused: &mut Vec<Entry>,
    locate: &dyn Fn(&[u8], RecordType) -> Location,
) -> Result<(bool, Denial), ZoneError> {
    let apex = nodes.get(origin_key);
    let signed = apex.is_some_and(|node| node.signatures(RecordType::SOA).is_some());
    let param = apex
        .and_then(|node| node.get(RecordType::NSEC3PARAM))
        .and_then(|set| set.wire_rdatas().next())
        .and_then(Params::read)
        .map(|(params, _)| params);
    let nsec3_keys: Vec<Box<[u8]>> = nodes
        .iter()
        .filter(|(_, node)| node.get(RecordType::NSEC3).is_some())
        .map(|(key, _)| key.clone())
        .collect();
    if !nsec3_keys.is_empty() || param.is_some() {
        let chain = nsec3_chain(nodes, nsec3_keys, param, origin_wire, unused, locate)?;
        return Ok((signed, Denial::Nsec3(chain)));
    }
    if nodes
        .values()
        .any(|node| node.get(RecordType::NSEC).is_some())
    {
        check_nsec_chain(nodes, origin_key, locate)?;
        return Ok((signed, Denial::Nsec));
    }
    if !signed {
        return Ok((false, Denial::None));
    }
    Err(ZoneError {
        location: locate(origin_key, RecordType::SOA),
        message: "the zone is signed (its SOA has an RRSIG) but has no NSEC or NSEC3 records, so it cannot prove that a name does not exist; sign it again with dnssec-signzone or ldns-signzone".into(),
    })
}

/// Each NSEC's next name must be the next name with an NSEC, the last one's the apex.
fn check_nsec_chain(
    nodes: &BTreeMap<Box<[u8]>, Node>,
    origin_key: &[u8],
    locate: &dyn Fn(&[u8], RecordType) -> Location,
) -> Result<(), ZoneError> {
    let with_nsec: Vec<(&[u8], &[u8])> = nodes
        .iter()
        .filter_map(|(key, node)| {
            let next = node.get(RecordType::NSEC)?.wire_rdatas().next()?;
            Some((&**key, next))
        })
        .collect();
    for (index, (key, rdata)) in with_nsec.iter().enumerate() {
        let expected = with_nsec
            .get(index + 1)
            .map_or(origin_key, |(next, _)| next);
        let next_len = sextant_wire::name_len(rdata).unwrap_or(rdata.len());
        let mut buffer = [0u8; canonical::MAX_KEY];
        let len = canonical::write_key_wire(&rdata[..next_len], &mut buffer);
        if buffer[..len] != *expected {
            return Err(ZoneError {
                location: locate(key, RecordType::NSEC),
                message: format!(
                    "the NSEC chain is broken at {}: its next name is {}, but the next name with an NSEC is {}; sign the zone again",
                    canonical::name(key),
                    sextant_wire::wire_name_to_text(&rdata[..next_len]),
                    canonical::name(expected)
                ),
            });
        }
    }
    Ok(())
}

fn nsec3_chain(
    nodes: &mut BTreeMap<Box<[u8]>, Node>,
    keys: Vec<Box<[u8]>>,
    param: Option<Params>,
    origin_wire: &[u8],
    unused: &mut Vec<Entry>,
    locate: &dyn Fn(&[u8], RecordType) -> Location,
) -> Result<Chain, ZoneError> {
    let fail = |key: &[u8], message: String| ZoneError {
        location: locate(key, RecordType::NSEC3),
        message,
    };
    let params_of = |node: &Node| {
        node.get(RecordType::NSEC3)
            .and_then(|set| set.wire_rdatas().next())
            .and_then(Params::read)
            .map(|(params, _)| params)
    };
    let params = match param {
        Some(params) => params,
        None => keys
            .first()
            .and_then(|key| nodes.get(key))
            .and_then(params_of)
            .ok_or_else(|| fail(&[], "NSEC3PARAM at the apex, but no NSEC3 records".into()))?,
    };
    if params.algorithm != nsec3::ALGORITHM_SHA1 {
        return Err(fail(
            keys.first().map_or(&[][..], |k| k),
            format!(
                "NSEC3 hash algorithm {} is not SHA-1 (1), the only one defined",
                params.algorithm
            ),
        ));
    }
    let mut entries = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(mut node) = nodes.remove(&key) else {
            continue;
        };
        let name = canonical::name(&key);
        let owner = crate::zone::wire_name(&name);
        let below_apex = owner.len() > origin_wire.len()
            && owner.ends_with(origin_wire)
            && sextant_wire::label_count(&owner) == sextant_wire::label_count(origin_wire) + 1;
        let Some(hash) = nsec3::owner_hash(&owner, params.algorithm).filter(|_| below_apex) else {
            return Err(fail(
                &key,
                format!(
                    "{name} holds an NSEC3 record but is not a base32hex hash directly below the apex; sign the zone again"
                ),
            ));
        };
        // Only the NSEC3 set and its signatures belong to the chain.
        let (chain_sets, rest): (Vec<_>, Vec<_>) = node.rrsets.drain(..).partition(|set| {
            set.rtype == RecordType::NSEC3
                || (set.rtype == RecordType::RRSIG
                    && set.covered_type() == Some(u16::from(RecordType::NSEC3)))
        });
        if !rest.is_empty() {
            nodes.insert(key.clone(), Node { rrsets: rest });
        }
        let same_params = params_of(&Node {
            rrsets: chain_sets
                .iter()
                .filter(|s| s.rtype == RecordType::NSEC3)
                .cloned()
                .collect(),
        })
        .is_some_and(|p| p == params);
        let entry = Entry {
            hash,
            owner: owner.into_boxed_slice(),
            node: Node { rrsets: chain_sets },
        };
        if same_params {
            entries.push((key, entry));
        } else {
            unused.push(entry);
        }
    }
    entries.sort_by(|a, b| a.1.hash.cmp(&b.1.hash));
    for (index, (key, entry)) in entries.iter().enumerate() {
        let following = &entries[(index + 1) % entries.len()].1;
        if entry.next_hash() != Some(&*following.hash) {
            return Err(fail(
                key,
                format!(
                    "the NSEC3 chain is broken at {}: its next hashed owner is not {}, the next NSEC3 of the zone; sign the zone again",
                    canonical::name(key),
                    data_encoding::BASE32HEX_NOPAD
                        .encode(&following.hash)
                        .to_ascii_lowercase()
                ),
            ));
        }
    }
    Ok(Chain {
        params,
        entries: entries.into_iter().map(|(_, entry)| entry).collect(),
    })
}
