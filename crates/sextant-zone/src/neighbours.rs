//! A signed zone as the incremental signer reads it: the records at a name, the
//! names next to it in canonical order, and the NSEC3 records next to a hash, so
//! that a change is signed by looking at the names around it instead of walking
//! the zone.

use hickory_proto::rr::{Name, Record, RecordType};

use crate::nodes::Node;
use crate::signed::Denial;
use crate::{Zone, canonical};

impl Zone {
    /// Every record of the name with canonical key `key` (NSEC3 owners are not
    /// names: see [`Zone::nsec3_records`]).
    pub fn records_at_key(&self, key: &[u8]) -> Vec<Record> {
        self.node_at(key)
            .map(|node| node_records(key, node))
            .unwrap_or_default()
    }

    /// The types held at the name with canonical key `key`.
    pub fn types_at_key(&self, key: &[u8]) -> Vec<RecordType> {
        self.node_at(key)
            .map(|node| node.rrsets().iter().map(|set| set.rtype).collect())
            .unwrap_or_default()
    }

    /// The first name after `key` in canonical order that holds records.
    pub fn key_after(&self, key: &[u8]) -> Option<Box<[u8]>> {
        self.nodes().next_key_after(key).map(Box::from)
    }

    /// The last name before `key` in canonical order that holds records.
    pub fn key_before(&self, key: &[u8]) -> Option<Box<[u8]>> {
        self.nodes()
            .before(key, |_| true)
            .map(|(found, _)| found)
            .filter(|found| *found < key)
            .map(Box::from)
    }

    /// The chain's iterations and salt, when the zone denies with NSEC3.
    pub fn nsec3_chain_params(&self) -> Option<(u16, Vec<u8>)> {
        match self.denial() {
            Denial::Nsec3(chain) => Some((chain.params.iterations, chain.params.salt.to_vec())),
            _ => None,
        }
    }

    /// The records of the chain's NSEC3 owner whose hash is `hash` (none if the
    /// chain has no such hash).
    pub fn nsec3_records(&self, hash: &[u8]) -> Vec<Record> {
        let Denial::Nsec3(chain) = self.denial() else {
            return Vec::new();
        };
        chain
            .entries
            .get(hash)
            .map(|entry| node_records(&canonical::key_of_wire(&entry.owner), &entry.node))
            .unwrap_or_default()
    }

    /// The chain's next hash after `hash`, the first one after the last.
    pub fn nsec3_hash_after(&self, hash: &[u8]) -> Option<Box<[u8]>> {
        let Denial::Nsec3(chain) = self.denial() else {
            return None;
        };
        chain
            .entries
            .next_key_after(hash)
            .or_else(|| chain.entries.next_key_after(&[]))
            .map(Box::from)
    }

    /// The chain's hash before `hash`, the last one before the first.
    pub fn nsec3_hash_before(&self, hash: &[u8]) -> Option<Box<[u8]>> {
        let Denial::Nsec3(chain) = self.denial() else {
            return None;
        };
        chain
            .entries
            .before(hash, |_| true)
            .map(|(found, _)| Box::from(found))
    }
}

/// The name a canonical key was made from (lower case, fully qualified).
pub fn name_of_key(key: &[u8]) -> Name {
    canonical::name(key)
}

fn node_records(key: &[u8], node: &Node) -> Vec<Record> {
    let owner = canonical::name(key);
    node.rrsets()
        .iter()
        .flat_map(|set| set.records(&owner))
        .collect()
}
