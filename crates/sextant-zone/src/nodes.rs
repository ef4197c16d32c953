//! A built zone's names: in canonical order, with a hash index over their keys.
//! Exact lookups (most queries) cost one hash and one key comparison, where a tree
//! compared the key at every level; ordered questions (is there a name below this
//! one? every name in order for a transfer) use the order.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use hickory_proto::rr::RecordType;

use crate::RRset;

/// One name's RRsets. The RRSIGs are sets of their own, one per type they cover
/// (each carries the TTL of the RRset it covers, RFC 4034 §3).
#[derive(Debug, Default)]
pub(crate) struct Node {
    pub(crate) rrsets: Vec<RRset>,
}

impl Node {
    /// The RRset of `rtype` (for RRSIG, the first of the RRSIG sets).
    pub(crate) fn get(&self, rtype: RecordType) -> Option<&RRset> {
        self.rrsets.iter().find(|set| set.rtype == rtype)
    }

    pub(crate) fn rrsets(&self) -> &[RRset] {
        &self.rrsets
    }

    /// The RRSIGs covering the RRset of `rtype`.
    pub(crate) fn signatures(&self, rtype: RecordType) -> Option<&RRset> {
        let covered = u16::from(rtype);
        self.rrsets
            .iter()
            .find(|set| set.rtype == RecordType::RRSIG && set.covered_type() == Some(covered))
    }

    /// Every RRSIG set (an RRSIG query's answer).
    pub(crate) fn all_signatures(&self) -> impl Iterator<Item = &RRset> {
        self.rrsets
            .iter()
            .filter(|set| set.rtype == RecordType::RRSIG)
    }
}

#[derive(Debug)]
pub(crate) struct Nodes {
    /// Sorted by canonical key (see [`crate::canonical`]).
    sorted: Box<[(Box<[u8]>, Node)]>,
    /// Positions in `sorted`, hashed by key.
    index: HashTable<u32>,
    /// Seeded per process: zone data may come from a primary we do not control, and
    /// must not be able to choose colliding names.
    hasher: foldhash::fast::RandomState,
}

impl Nodes {
    /// From the builder's names, sorted by key (canonical order).
    pub(crate) fn from_sorted(names: Vec<(Box<[u8]>, Node)>) -> Self {
        let sorted = names.into_boxed_slice();
        let hasher = foldhash::fast::RandomState::default();
        let mut index = HashTable::with_capacity(sorted.len());
        for (position, (key, _)) in sorted.iter().enumerate() {
            // A zone of more than four billion names cannot be loaded anyway.
            let Ok(position) = u32::try_from(position) else {
                break;
            };
            index.insert_unique(hasher.hash_one(&**key), position, |&at: &u32| {
                hasher.hash_one(&*sorted[at as usize].0)
            });
        }
        Self {
            sorted,
            index,
            hasher,
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&Node> {
        let at = self.index.find(self.hasher.hash_one(key), |&at| {
            *self.sorted[at as usize].0 == *key
        })?;
        Some(&self.sorted[*at as usize].1)
    }

    /// The first key after `key` in canonical order.
    pub(crate) fn next_key_after(&self, key: &[u8]) -> Option<&[u8]> {
        let at = self.sorted.partition_point(|(k, _)| &**k <= key);
        self.sorted.get(at).map(|(k, _)| &**k)
    }

    /// The last name at or before `key` in canonical order whose node `has`
    /// something (an NSEC, say), wrapping to the last such name of the zone.
    pub(crate) fn at_or_before(
        &self,
        key: &[u8],
        has: impl Fn(&Node) -> bool,
    ) -> Option<(&[u8], &Node)> {
        let end = self.sorted.partition_point(|(k, _)| &**k <= key);
        let (before, after) = self.sorted.split_at(end);
        before
            .iter()
            .rev()
            .chain(after.iter().rev())
            .find(|(_, node)| has(node))
            .map(|(k, node)| (&**k, node))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &Node)> {
        self.sorted.iter().map(|(key, node)| (&**key, node))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn finds_every_key_and_nothing_else_and_keeps_the_order() {
        let mut names: Vec<_> = [&b"b\0"[..], b"a\0", b"a\0x\0", b"c\0"]
            .map(|key| (Box::<[u8]>::from(key), Node::default()))
            .into_iter()
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let nodes = Nodes::from_sorted(names);
        for key in [&b"b\0"[..], b"a\0", b"a\0x\0", b"c\0"] {
            assert!(nodes.get(key).is_some());
        }
        assert!(nodes.get(b"d\0").is_none());
        assert!(nodes.get(b"a").is_none());
        let keys: Vec<&[u8]> = nodes.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [&b"a\0"[..], b"a\0x\0", b"b\0", b"c\0"]);
        assert_eq!(nodes.next_key_after(b"a\0"), Some(&b"a\0x\0"[..]));
        assert_eq!(nodes.next_key_after(b"b\0"), Some(&b"c\0"[..]));
        assert_eq!(nodes.next_key_after(b"c\0"), None);
    }
}
