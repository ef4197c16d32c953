//! A built zone's names: in canonical order, with a hash index over their keys.
//! Exact lookups (most queries) cost one hash and one key comparison, where a tree
//! compared the key at every level; ordered questions (is there a name below this
//! one? every name in order for a transfer) use the order.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use hickory_proto::rr::RecordType;

use crate::RRset;

/// One name's RRsets. The RRSIGs are sets of their own, one per type they cover
/// (each carries the TTL of the RRset it covers, RFC 4034 §3).
#[derive(Clone, Debug, Default)]
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

/// Names in canonical order with a hash index over their keys.
#[derive(Clone, Debug)]
struct Sorted<V> {
    /// Sorted by canonical key (see [`crate::canonical`]). A vector as the builder
    /// made it: boxing it would copy a large zone's names to trim spare room.
    sorted: Vec<(Box<[u8]>, V)>,
    /// Positions in `sorted`, hashed by key.
    index: HashTable<u32>,
    /// Seeded per process: zone data may come from a primary we do not control, and
    /// must not be able to choose colliding names.
    hasher: foldhash::fast::RandomState,
}

impl<V> Sorted<V> {
    fn from_sorted(names: Vec<(Box<[u8]>, V)>) -> Self {
        let sorted = names;
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

    fn get(&self, key: &[u8]) -> Option<&V> {
        if self.sorted.is_empty() {
            return None;
        }
        let at = self.index.find(self.hasher.hash_one(key), |&at| {
            *self.sorted[at as usize].0 == *key
        })?;
        Some(&self.sorted[*at as usize].1)
    }

    /// Position of the first key after `key`.
    fn after(&self, key: &[u8]) -> usize {
        self.sorted.partition_point(|(k, _)| &**k <= key)
    }

    fn len(&self) -> usize {
        self.sorted.len()
    }
}

/// A built zone's names. A zone changed by a transfer shares the names of the
/// version it came from (`base`, never copied) and holds only what changed: an
/// IXFR of a thousand records to a million-record zone builds a thousand names,
/// not a million. The NSEC3 chain is layered the same way, keyed by hash.
#[derive(Clone, Debug)]
pub(crate) struct Layered<V> {
    base: Arc<Sorted<V>>,
    /// Keys changed since `base` was built: their value now, or `None` for a key
    /// that is gone. Empty for a version built whole.
    changes: Sorted<Change<V>>,
}

/// A changed key's value, `None` when the key is gone.
type Change<V> = Option<Arc<V>>;

/// A zone's names, by canonical key.
pub(crate) type Nodes = Layered<Node>;

/// Changes past which a version should get names of its own ([`Nodes::compacted`],
/// off the path to serving): every lookup also looks at the changes, and a name
/// gone is skipped at each ordered walk. (Small in tests, so that they compact.)
const MAX_CHANGES: usize = if cfg!(test) { 16 } else { 4096 };

impl<V: Clone> Layered<V> {
    /// From the builder's names, sorted by key (canonical order).
    pub(crate) fn from_sorted(names: Vec<(Box<[u8]>, V)>) -> Self {
        Self {
            base: Arc::new(Sorted::from_sorted(names)),
            changes: Sorted::from_sorted(Vec::new()),
        }
    }

    /// These names with the names of `changed` (sorted by key) replaced, added or,
    /// where their node is `None`, removed. Shares this version's names unless the
    /// changes have grown past half of them; then every name is copied into a
    /// version of its own at once.
    pub(crate) fn with_changes(&self, changed: Vec<(Box<[u8]>, Option<V>)>) -> Self {
        let mut merged: Vec<(Box<[u8]>, Change<V>)> =
            Vec::with_capacity(self.changes.len() + changed.len());
        let mut old = self
            .changes
            .sorted
            .iter()
            .map(|(key, node)| (key.clone(), node.clone()))
            .peekable();
        let mut new = changed
            .into_iter()
            .map(|(key, node)| (key, node.map(Arc::new)))
            .peekable();
        loop {
            let take_new = match (old.peek(), new.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((a, _)), Some((b, _))) => b <= a,
            };
            if take_new {
                if let Some((key, node)) = new.next() {
                    old.next_if(|(k, _)| *k == key);
                    // A name new since `base` that is gone again needs no entry.
                    if node.is_some() || self.base.get(&key).is_some() {
                        merged.push((key, node));
                    }
                }
            } else if let Some(entry) = old.next() {
                merged.push(entry);
            }
        }
        let nodes = Self {
            base: self.base.clone(),
            changes: Sorted::from_sorted(merged),
        };
        if nodes.changes.len() > MAX_CHANGES.max(nodes.base.len() / 2) {
            return nodes.compacted();
        }
        nodes
    }

    /// When `other` shares this version's base: the keys changed in either since
    /// that base, in order — the only keys where the two versions can differ.
    pub(crate) fn keys_changed_apart<'a>(&'a self, other: &'a Self) -> Option<Vec<&'a [u8]>> {
        if !Arc::ptr_eq(&self.base, &other.base) {
            return None;
        }
        let mut keys: Vec<&[u8]> = self
            .changes
            .sorted
            .iter()
            .chain(&other.changes.sorted)
            .map(|(key, _)| &**key)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Some(keys)
    }

    /// Whether `other` shares this version's base (it was made by changes to it).
    #[cfg(test)]
    pub(crate) fn shares_base_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.base, &other.base)
    }

    /// Whether the changes have grown past an eighth of the names (or 4096): then
    /// [`Nodes::compacted`] is worth its copy.
    pub(crate) fn compaction_due(&self) -> bool {
        self.changes.len() > MAX_CHANGES.max(self.base.len() / 8)
    }

    /// The same names in a version of their own, sharing nothing.
    pub(crate) fn compacted(&self) -> Self {
        let whole = self
            .iter()
            .map(|(key, node)| (Box::from(key), node.clone()))
            .collect();
        Self::from_sorted(whole)
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        if self.changes.sorted.is_empty() {
            return self.base.get(key);
        }
        match self.changes.get(key) {
            Some(changed) => changed.as_deref(),
            None => self.base.get(key),
        }
    }

    /// The first key after `key` in canonical order.
    pub(crate) fn next_key_after(&self, key: &[u8]) -> Option<&[u8]> {
        let unchanged = self.base.sorted[self.base.after(key)..]
            .iter()
            .map(|(k, _)| &**k)
            .find(|k| self.changes.get(k).is_none());
        let changed = self.changes.sorted[self.changes.after(key)..]
            .iter()
            .find(|(_, node)| node.is_some())
            .map(|(k, _)| &**k);
        match (unchanged, changed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The last name at or before `key` in canonical order whose node `has`
    /// something (an NSEC, say), wrapping to the last such name of the zone.
    pub(crate) fn at_or_before(&self, key: &[u8], has: impl Fn(&V) -> bool) -> Option<(&[u8], &V)> {
        self.last_before(self.base.after(key), self.changes.after(key), &has)
            .or_else(|| self.last_before(self.base.len(), self.changes.len(), &has))
    }

    /// The last name strictly before `key` whose node `has` something, wrapping
    /// to the last such name.
    pub(crate) fn before(&self, key: &[u8], has: impl Fn(&V) -> bool) -> Option<(&[u8], &V)> {
        let base = self.base.sorted.partition_point(|(k, _)| &**k < key);
        let changes = self.changes.sorted.partition_point(|(k, _)| &**k < key);
        self.last_before(base, changes, &has)
            .or_else(|| self.last_before(self.base.len(), self.changes.len(), &has))
    }

    /// The last key among the first `end_base` of the base and the first
    /// `end_changes` of the changes whose value `has` something.
    fn last_before(
        &self,
        end_base: usize,
        end_changes: usize,
        has: &dyn Fn(&V) -> bool,
    ) -> Option<(&[u8], &V)> {
        let unchanged = self.base.sorted[..end_base]
            .iter()
            .rev()
            .find(|(k, node)| has(node) && self.changes.get(k).is_none())
            .map(|(k, node)| (&**k, node));
        let changed = self.changes.sorted[..end_changes]
            .iter()
            .rev()
            .find_map(|(k, node)| node.as_deref().filter(|n| has(n)).map(|n| (&**k, n)));
        match (unchanged, changed) {
            (Some(a), Some(b)) => Some(if a.0 >= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> {
        let mut base = self
            .base
            .sorted
            .iter()
            .filter(|(k, _)| self.changes.get(k).is_none())
            .map(|(k, node)| (&**k, node))
            .peekable();
        let mut changed = self
            .changes
            .sorted
            .iter()
            .filter_map(|(k, node)| Some((&**k, node.as_deref()?)))
            .peekable();
        std::iter::from_fn(move || match (base.peek(), changed.peek()) {
            (Some(a), Some(b)) if b.0 < a.0 => changed.next(),
            (Some(_), _) => base.next(),
            (None, _) => changed.next(),
        })
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

    fn node(marker: u32) -> Node {
        Node {
            rrsets: vec![RRset::new(RecordType::A, marker)],
        }
    }

    #[test]
    fn changes_are_seen_by_every_question_and_the_base_is_shared() {
        let names: Vec<_> = [&b"a\0"[..], b"b\0", b"b\0x\0", b"c\0", b"e\0"]
            .into_iter()
            .enumerate()
            .map(|(i, key)| (Box::<[u8]>::from(key), node(i as u32)))
            .collect();
        let nodes = Nodes::from_sorted(names);
        // b.x gone, c changed, d new, a gone.
        let changed = vec![
            (Box::<[u8]>::from(&b"a\0"[..]), None),
            (Box::from(&b"b\0x\0"[..]), None),
            (Box::from(&b"c\0"[..]), Some(node(30))),
            (Box::from(&b"d\0"[..]), Some(node(40))),
        ];
        let next = nodes.with_changes(changed);
        assert!(Arc::ptr_eq(&nodes.base, &next.base));
        let keys: Vec<&[u8]> = next.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [&b"b\0"[..], b"c\0", b"d\0", b"e\0"]);
        assert!(next.get(b"a\0").is_none());
        assert_eq!(next.get(b"c\0").unwrap().rrsets[0].ttl, 30);
        assert_eq!(next.get(b"e\0").unwrap().rrsets[0].ttl, 4);
        assert_eq!(next.next_key_after(b"b\0"), Some(&b"c\0"[..]));
        assert_eq!(next.next_key_after(b"c\0"), Some(&b"d\0"[..]));
        assert_eq!(next.next_key_after(b"e\0"), None);
        let has = |wanted: u32| move |node: &Node| node.rrsets[0].ttl == wanted;
        assert_eq!(next.at_or_before(b"d\0z\0", has(40)).unwrap().0, b"d\0");
        assert_eq!(next.at_or_before(b"b\0", |_| true).unwrap().0, b"b\0");
        // Nothing at or before the first name: wraps to the last.
        assert_eq!(next.at_or_before(b"a\0", |_| true).unwrap().0, b"e\0");
        // A removed name is never found, even wrapping.
        assert!(next.at_or_before(b"z\0", has(0)).is_none());
        // The version before is what it was.
        assert_eq!(nodes.iter().count(), 5);
        // A name added then removed again leaves no entry.
        let again = next.with_changes(vec![(Box::from(&b"d\0"[..]), None)]);
        assert_eq!(again.changes.len(), 3);
        assert!(again.get(b"d\0").is_none());
        // Past an eighth of the names (at least MAX_CHANGES) compaction is due, and
        // copies every name into a version of its own; past half of them that
        // happens at once.
        let base: Vec<_> = (0..200u32)
            .map(|i| (Box::<[u8]>::from(format!("b{i:05}\0").as_bytes()), node(i)))
            .collect();
        let big = Nodes::from_sorted(base);
        let changes = |count: u32| -> Vec<(Box<[u8]>, Option<Node>)> {
            (0..count)
                .map(|i| {
                    (
                        Box::<[u8]>::from(format!("m{i:05}\0").as_bytes()),
                        Some(node(i)),
                    )
                })
                .collect()
        };
        let grown = big.with_changes(changes(30));
        assert!(grown.compaction_due());
        assert!(Arc::ptr_eq(&grown.base, &big.base), "not yet copied");
        let whole = grown.compacted();
        assert!(!Arc::ptr_eq(&whole.base, &big.base));
        assert!(whole.changes.sorted.is_empty());
        assert!(!whole.compaction_due());
        let keys =
            |nodes: &Nodes| -> Vec<Box<[u8]>> { nodes.iter().map(|(k, _)| Box::from(k)).collect() };
        assert_eq!(keys(&whole), keys(&grown));
        assert_eq!(whole.iter().count(), 230);
        let at_once = big.with_changes(changes(150));
        assert!(at_once.changes.sorted.is_empty());
        assert_eq!(at_once.iter().count(), 350);
    }
}
