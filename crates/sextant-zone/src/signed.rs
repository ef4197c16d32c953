//! What a signed zone adds: how it denies existence (NSEC or NSEC3), found when the
//! zone is built, with the checks `dnssec-verify` makes of the chains, so that a
//! zone whose chain is broken is refused with the file and line of the record that
//! breaks it instead of being served with proofs no validator accepts.

use hickory_proto::rr::RecordType;

use crate::nodes::{Layered, Node};
use crate::nsec3::{self, Chain, Entry, Params};
use crate::{Location, ZoneError, canonical};

/// How a zone proves that a name or a type does not exist.
#[derive(Clone, Debug)]
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
    nodes: &mut Vec<(Box<[u8]>, Node)>,
    origin_key: &[u8],
    origin_wire: &[u8],
    unused: &mut Vec<Entry>,
    locate: &dyn Fn(&[u8], RecordType) -> Location,
) -> Result<(bool, Denial), ZoneError> {
    let apex = get(nodes, origin_key);
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
        .iter()
        .any(|(_, node)| node.get(RecordType::NSEC).is_some())
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

/// The node at `key` in names sorted by key.
fn get<'n>(nodes: &'n [(Box<[u8]>, Node)], key: &[u8]) -> Option<&'n Node> {
    let at = nodes.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
    Some(&nodes[at].1)
}

/// Each NSEC's next name must be the next name with an NSEC, the last one's the apex.
fn check_nsec_chain(
    nodes: &[(Box<[u8]>, Node)],
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
        let Some(next_len) = sextant_wire::name_len(rdata) else {
            return Err(ZoneError {
                location: locate(key, RecordType::NSEC),
                message: format!(
                    "the NSEC record at {} has no valid next name; sign the zone again",
                    canonical::name(key)
                ),
            });
        };
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
    nodes: &mut Vec<(Box<[u8]>, Node)>,
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
            .and_then(|key| get(nodes, key))
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
        let Ok(at) = nodes.binary_search_by(|(k, _)| (**k).cmp(&key)) else {
            continue;
        };
        let node = &mut nodes[at].1;
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
        node.rrsets = rest;
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
    // A hashed owner with nothing left is not a name of the zone.
    nodes.retain(|(_, node)| !node.rrsets.is_empty());
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
        entries: Layered::from_sorted(
            entries
                .into_iter()
                .map(|(_, entry)| (entry.hash.clone(), entry))
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::Path;
    use std::sync::Arc;

    use hickory_proto::rr::Name;

    use super::*;
    use crate::{Catalog, Zone, ZoneError};

    /// A placeholder signature: the loader never checks signatures, only where they
    /// are (a zone is signed when its SOA has one).
    fn rrsig(covered: &str) -> String {
        format!("RRSIG {covered} 13 2 300 20300101000000 20200101000000 1 example. AAAA")
    }

    fn load(text: &str) -> Result<Zone, ZoneError> {
        let none =
            |_: &Path| -> std::io::Result<String> { Err(std::io::ErrorKind::NotFound.into()) };
        Zone::from_master_text(
            &Name::from_ascii("example.").unwrap(),
            Path::new("z"),
            text,
            &none,
        )
        .map(|(zone, _)| zone)
    }

    const HEAD: &str = "$ORIGIN example.\n$TTL 300\n@ SOA ns h 1 2 3 4 300\n@ NS ns\nns A 192.0.2.1\nwww A 192.0.2.2\nx.ent A 192.0.2.3\n";

    /// The zone above with an NSEC3 chain (no salt, no extra iterations) over its
    /// names, the empty non-terminal `ent` included; `tamper` may change the chain.
    fn nsec3_zone(tamper: impl Fn(&mut Vec<(String, String)>)) -> String {
        let params = Params {
            algorithm: 1,
            iterations: 0,
            salt: Box::default(),
        };
        let names: [&[u8]; 5] = [
            b"\x07example\x00",
            b"\x02ns\x07example\x00",
            b"\x03www\x07example\x00",
            b"\x03ent\x07example\x00",
            b"\x01x\x03ent\x07example\x00",
        ];
        let mut hashes: Vec<String> = names
            .iter()
            .map(|n| {
                data_encoding::BASE32HEX_NOPAD
                    .encode(&params.hash(n))
                    .to_ascii_lowercase()
            })
            .collect();
        hashes.sort();
        let mut chain: Vec<(String, String)> = (0..hashes.len())
            .map(|i| (hashes[i].clone(), hashes[(i + 1) % hashes.len()].clone()))
            .collect();
        tamper(&mut chain);
        let mut text = format!("{HEAD}@ {}\n@ NSEC3PARAM 1 0 0 -\n", rrsig("SOA"));
        for (owner, next) in chain {
            text.push_str(&format!(
                "{owner} NSEC3 1 0 0 - {next} A RRSIG\n{owner} {}\n",
                rrsig("NSEC3")
            ));
        }
        text
    }

    #[test]
    fn nsec3_zones_keep_their_chain_apart_and_prove_nxdomain() {
        let zone = load(&nsec3_zone(|_| {})).unwrap();
        assert!(zone.is_signed());
        let Denial::Nsec3(chain) = zone.denial() else {
            panic!("an NSEC3 zone")
        };
        assert_eq!(chain.entries.iter().count(), 5);
        assert_eq!(
            zone.nodes().iter().count(),
            4,
            "hashed owners are not names of the zone"
        );
        assert_eq!(zone.axfr_records().count(), zone.record_count() + 1);
        let catalog = Catalog::new([Arc::new(zone)]);
        // nope.example: closest encloser example., next closer nope.example., and
        // *.example. covered.
        let out = catalog.lookup(b"\x04nope\x07example\x00", 1, true);
        let types: Vec<u16> = out.authority.iter().map(|p| p.rtype).collect();
        assert_eq!(types[0], 6, "the SOA first");
        assert!(types[1..].iter().all(|t| *t == 50), "{types:?}");
        // One record may match the encloser and cover the other two names.
        assert!((2..=4).contains(&types.len()), "{types:?}");
        assert!(out.authority.iter().all(|p| p.signatures().is_some()));
        // The hashed owner of an NSEC3 record answers as if it did not exist.
        let hashed = &out.authority[1].owner.clone();
        let out = catalog.lookup(hashed, 50, false);
        assert_eq!(out.outcome, crate::Outcome::NxDomain);
        // Without DO, nothing DNSSEC is added.
        let out = catalog.lookup(b"\x04nope\x07example\x00", 1, false);
        assert_eq!(out.authority.len(), 1);
        assert!(out.authority[0].signatures().is_none());
    }

    #[test]
    fn a_broken_nsec3_chain_is_refused_with_its_line() {
        let text = nsec3_zone(|chain| chain[2].1 = chain[4].1.clone());
        let error = load(&text).unwrap_err();
        assert!(error.message.contains("NSEC3 chain is broken"), "{error}");
        let line = text
            .lines()
            .position(|l| l.contains("NSEC3 1 0 0") && l.ends_with("A RRSIG"))
            .map(|first| first + 1 + 2 * 2)
            .unwrap();
        assert_eq!(error.location.line, line, "{error}");
    }

    #[test]
    fn a_broken_nsec_chain_is_refused_with_its_line() {
        let chain = format!(
            "{HEAD}@ {}\n@ NSEC x.ent A NS SOA\nx.ent NSEC ns A\nns NSEC www A\nwww NSEC example. A\n",
            rrsig("SOA")
        );
        assert!(load(&chain).is_ok());
        let broken = chain.replace("ns NSEC www A", "ns NSEC example. A");
        let error = load(&broken).unwrap_err();
        assert!(
            error
                .message
                .contains("NSEC chain is broken at ns.example."),
            "{error}"
        );
        assert_eq!(error.location.line, 11, "the line of ns NSEC");
        let unsigned_proofs = format!("{HEAD}@ {}\n", rrsig("SOA"));
        assert!(
            load(&unsigned_proofs)
                .unwrap_err()
                .message
                .contains("no NSEC or NSEC3")
        );
    }
}
