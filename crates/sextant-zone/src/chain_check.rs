//! The denial chain checked around the names a change touched: the links that
//! can break are those of the touched names and of the names just before them,
//! so a change to a signed million-name zone checks a handful of links, not the
//! whole chain (`signed` checks it whole at load).

use std::collections::BTreeSet;

use hickory_proto::rr::RecordType;

use crate::nodes::{Node, Nodes};
use crate::nsec3::Chain;
use crate::{Location, ZoneError, canonical};

/// Each NSEC at or just before a changed name must point at the next name with
/// an NSEC (the last one at the apex).
pub(crate) fn nsec_around(
    nodes: &Nodes,
    origin_key: &[u8],
    changed: &[Box<[u8]>],
    location: &Location,
) -> Result<(), ZoneError> {
    let has_nsec = |node: &Node| node.get(RecordType::NSEC).is_some();
    let mut to_check: BTreeSet<&[u8]> = BTreeSet::new();
    for key in changed {
        if nodes.get(key).is_some_and(has_nsec) {
            to_check.insert(key);
        }
        if let Some((previous, _)) = nodes.before(key, has_nsec) {
            to_check.insert(previous);
        }
    }
    for key in to_check {
        let Some(rdata) = nodes
            .get(key)
            .and_then(|node| node.get(RecordType::NSEC))
            .and_then(|set| set.wire_rdatas().next())
        else {
            continue;
        };
        let mut expected: &[u8] = origin_key;
        let mut at = key;
        while let Some(next) = nodes.next_key_after(at) {
            if nodes.get(next).is_some_and(has_nsec) {
                expected = next;
                break;
            }
            at = next;
        }
        let broken = |message: String| ZoneError {
            location: location.clone(),
            message,
        };
        let Some(next_len) = sextant_wire::name_len(rdata) else {
            return Err(broken(format!(
                "the NSEC record at {} has no valid next name; sign the zone again",
                canonical::name(key)
            )));
        };
        if *canonical::key_of_wire(&rdata[..next_len]) != *expected {
            return Err(broken(format!(
                "the NSEC chain is broken at {}: its next name is {}, but the next name with an NSEC is {}; sign the zone again",
                canonical::name(key),
                sextant_wire::wire_name_to_text(&rdata[..next_len]),
                canonical::name(expected)
            )));
        }
    }
    Ok(())
}

/// Each NSEC3 record at or just before a changed hash must name the next hash of
/// the chain (the last one the first).
pub(crate) fn nsec3_around(
    chain: &Chain,
    changed: &[Box<[u8]>],
    location: &Location,
) -> Result<(), ZoneError> {
    let broken = |message: String| ZoneError {
        location: location.clone(),
        message,
    };
    let mut to_check: BTreeSet<&[u8]> = BTreeSet::new();
    for hash in changed {
        if chain.entries.get(hash).is_some() {
            to_check.insert(hash);
        }
        if let Some((previous, _)) = chain.entries.before(hash, |_| true) {
            to_check.insert(previous);
        }
    }
    if to_check.is_empty() && !changed.is_empty() {
        return Err(broken(
            "the change removes every NSEC3 record of the zone; sign the zone again".into(),
        ));
    }
    for hash in to_check {
        let Some(entry) = chain.entries.get(hash) else {
            continue;
        };
        let following = chain
            .entries
            .next_key_after(hash)
            .or_else(|| chain.entries.next_key_after(&[]))
            .unwrap_or(hash);
        if entry.next_hash() != Some(following) {
            return Err(broken(format!(
                "the NSEC3 chain is broken at {}: its next hashed owner is not {}, the next NSEC3 of the zone; sign the zone again",
                sextant_wire::wire_name_to_text(&entry.owner),
                data_encoding::BASE32HEX_NOPAD
                    .encode(following)
                    .to_ascii_lowercase()
            )));
        }
    }
    Ok(())
}
