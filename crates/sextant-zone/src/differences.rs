//! The records two versions of a zone do not share, found by walking both in
//! canonical order side by side: a name whose RRsets are the same in both costs
//! one comparison, and nothing is encoded but what changed. Comparing whole
//! encoded copies of both versions held a million-record zone three times over.

use std::cmp::Ordering;

use hickory_proto::rr::RecordType;

use crate::nodes::Node;
use crate::nsec3::Entry;
use crate::signed::Denial;
use crate::zone::{Zone, wire_name};
use crate::{RRset, canonical};

/// What changed from one version to the next, SOA excepted: each record
/// standalone in wire form (owner, type, class IN, TTL, length, data; names
/// uncompressed).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Differences {
    /// Records of the old version that the new one does not have.
    pub removed: Vec<Vec<u8>>,
    /// Records of the new version that the old one did not have.
    pub added: Vec<Vec<u8>>,
}

impl Zone {
    /// The records of `self` not in `after` and the other way round, SOA excepted.
    /// Two versions made by changes to the same one are compared at the names
    /// (and NSEC3 records) changed since, not along the whole zone.
    pub fn differences(&self, after: &Zone) -> Differences {
        let mut out = Differences::default();
        match self.nodes().keys_changed_apart(after.nodes()) {
            Some(keys) => walk(
                present(&keys, |key| self.nodes().get(key)),
                present(&keys, |key| after.nodes().get(key)),
                &|_| true,
                &mut out,
            ),
            None => walk(
                self.nodes().iter(),
                after.nodes().iter(),
                &|_| true,
                &mut out,
            ),
        }
        // NSEC3 records are kept apart from the names, in the same place in both.
        let (old, new) = match (self.denial(), after.denial()) {
            (Denial::Nsec3(old), Denial::Nsec3(new))
                if self.unused_nsec3_is_empty() && after.unused_nsec3_is_empty() =>
            {
                match old.entries.keys_changed_apart(&new.entries) {
                    Some(hashes) => (
                        by_owner(hashes.iter().filter_map(|h| old.entries.get(h))),
                        by_owner(hashes.iter().filter_map(|h| new.entries.get(h))),
                    ),
                    None => (hashed(self), hashed(after)),
                }
            }
            _ => (hashed(self), hashed(after)),
        };
        walk(
            old.iter().map(|(key, node)| (&**key, *node)),
            new.iter().map(|(key, node)| (&**key, *node)),
            &|_| true,
            &mut out,
        );
        out
    }

    /// The records of the types `keep` accepts (SOA excepted) that `self` holds
    /// and `after` does not, and the other way round; NSEC3 owners are not
    /// compared. What a reload changed in the data of a zone signed here, whose
    /// signer's records `keep` leaves out.
    pub fn differences_where(
        &self,
        after: &Zone,
        keep: &dyn Fn(RecordType) -> bool,
    ) -> Differences {
        let mut out = Differences::default();
        walk(self.nodes().iter(), after.nodes().iter(), keep, &mut out);
        out
    }
}

/// A zone's NSEC3 record sets by the key of their owners, in order.
fn hashed(zone: &Zone) -> Vec<(Box<[u8]>, &Node)> {
    by_owner(zone.nsec3_entries())
}

/// NSEC3 record sets by the key of their owners, in order.
fn by_owner<'a>(entries: impl Iterator<Item = &'a Entry>) -> Vec<(Box<[u8]>, &'a Node)> {
    let mut entries: Vec<(Box<[u8]>, &Node)> = entries
        .map(|entry| (canonical::key_of_wire(&entry.owner), &entry.node))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

/// The keys of `keys` that `get` finds, with what it finds, in order.
fn present<'a>(
    keys: &'a [&'a [u8]],
    get: impl Fn(&[u8]) -> Option<&'a Node> + 'a,
) -> impl Iterator<Item = (&'a [u8], &'a Node)> + 'a {
    keys.iter().filter_map(move |key| Some((*key, get(key)?)))
}

/// Both sequences sorted by key.
fn walk<'a>(
    old: impl Iterator<Item = (&'a [u8], &'a Node)>,
    new: impl Iterator<Item = (&'a [u8], &'a Node)>,
    keep: &dyn Fn(RecordType) -> bool,
    out: &mut Differences,
) {
    let mut old = old.peekable();
    let mut new = new.peekable();
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => return,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        match order {
            Ordering::Less => {
                if let Some((key, node)) = old.next() {
                    node_records(key, node.rrsets(), &[], keep, &mut out.removed);
                }
            }
            Ordering::Greater => {
                if let Some((key, node)) = new.next() {
                    node_records(key, node.rrsets(), &[], keep, &mut out.added);
                }
            }
            Ordering::Equal => {
                if let (Some((key, before)), Some((_, after))) = (old.next(), new.next())
                    && before.rrsets() != after.rrsets()
                {
                    node_records(key, before.rrsets(), after.rrsets(), keep, &mut out.removed);
                    node_records(key, after.rrsets(), before.rrsets(), keep, &mut out.added);
                }
            }
        }
    }
}

/// Appends to `out` each record of `sets` that `other` does not hold (same type,
/// TTL and data), the SOA excepted.
fn node_records(
    key: &[u8],
    sets: &[RRset],
    other: &[RRset],
    keep: &dyn Fn(RecordType) -> bool,
    out: &mut Vec<Vec<u8>>,
) {
    let mut owner: Option<Vec<u8>> = None;
    for set in sets
        .iter()
        .filter(|set| set.rtype != RecordType::SOA && keep(set.rtype))
    {
        for rdata in set.wire_rdatas() {
            let shared = other.iter().any(|theirs| {
                theirs.rtype == set.rtype
                    && theirs.ttl == set.ttl
                    && theirs.wire_rdatas().any(|data| data == rdata)
            });
            if shared {
                continue;
            }
            let owner = owner.get_or_insert_with(|| wire_name(&canonical::name(key)));
            let mut record = Vec::with_capacity(owner.len() + 10 + rdata.len());
            record.extend_from_slice(owner);
            record.extend_from_slice(&u16::from(set.rtype).to_be_bytes());
            record.extend_from_slice(&1u16.to_be_bytes());
            record.extend_from_slice(&set.ttl.to_be_bytes());
            record.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            record.extend_from_slice(rdata);
            out.push(record);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeSet;

    use hickory_proto::rr::Record;
    use hickory_proto::serialize::binary::BinDecodable;

    use super::*;

    use crate::zone::test_zone as load;

    /// The records of a zone as decoded text, SOA excepted: what a difference
    /// must account for.
    fn records(zone: &Zone) -> BTreeSet<String> {
        zone.axfr_records()
            .filter(|r| r.record_type() != RecordType::SOA)
            .map(|r| r.to_string())
            .collect()
    }

    fn decoded(list: &[Vec<u8>]) -> BTreeSet<String> {
        list.iter()
            .map(|bytes| Record::from_bytes(bytes).unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_difference_is_exactly_what_changed() {
        let head = "$TTL 60\n@ SOA ns h 1 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n";
        let before = load(
            "example.com.",
            &format!(
                "{head}a A 192.0.2.9\nb A 192.0.2.9\nb A 192.0.2.10\nt 60 TXT \"x\"\nm MX 10 ns\n"
            ),
        );
        let after = load(
            "example.com.",
            &format!(
                "{}b A 192.0.2.9\nb A 192.0.2.11\nc A 192.0.2.9\nt 30 TXT \"x\"\nm MX 10 ns\n",
                head.replace(" 1 1 1 1 1", " 2 1 1 1 1")
            ),
        );
        let differences = before.differences(&after);
        let (old, new) = (records(&before), records(&after));
        let removed: BTreeSet<String> = old.difference(&new).cloned().collect();
        let added: BTreeSet<String> = new.difference(&old).cloned().collect();
        assert_eq!(decoded(&differences.removed), removed);
        assert_eq!(decoded(&differences.added), added);
        // a, one of b's addresses, t's TTL: three each way at most.
        assert_eq!(differences.removed.len(), 3);
        assert_eq!(differences.added.len(), 3);
        assert_eq!(before.differences(&before), Differences::default());
    }

    /// Versions made by changes to one version are compared at their changes
    /// only, with the same result as walking them whole.
    #[test]
    fn versions_sharing_a_base_differ_exactly_where_they_changed() {
        use std::path::Path;
        let mut text = String::from("$TTL 60\n@ SOA ns h 1 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n");
        for i in 0..100 {
            text.push_str(&format!("h{i} A 10.0.0.{i}\n"));
        }
        let base = load("example.com.", &text);
        let change = |zone: &Zone, serial: u32, name: &str, from: &str, to: &str| {
            let wire = |t: &str| {
                let no_include = |_: &Path| -> std::io::Result<String> {
                    Err(std::io::ErrorKind::NotFound.into())
                };
                crate::parse(t, Path::new("t"), zone.origin(), &no_include)
                    .unwrap()
                    .into_iter()
                    .map(|l| {
                        hickory_proto::serialize::binary::BinEncodable::to_bytes(&l.record).unwrap()
                    })
                    .collect::<Vec<_>>()
            };
            let mut removed = wire(&format!("@ 60 SOA ns h {serial} 1 1 1 1\n"));
            removed.extend(wire(&format!("{name} 60 A {from}\n")));
            let mut added = wire(&format!("@ 60 SOA ns h {} 1 1 1 1\n", serial + 1));
            added.extend(wire(&format!("{name} 60 A {to}\n")));
            zone.apply(&removed, &added, Path::new("t")).unwrap().0
        };
        let one = change(&base, 1, "h3", "10.0.0.3", "10.9.9.3");
        let two = change(&one, 2, "h50", "10.0.0.50", "10.9.9.50");
        for (a, b) in [(&base, &two), (&one, &two), (&two, &one), (&base, &one)] {
            let shared = a.differences(b);
            let (old, new) = (records(a), records(b));
            assert_eq!(
                decoded(&shared.removed),
                old.difference(&new).cloned().collect()
            );
            assert_eq!(
                decoded(&shared.added),
                new.difference(&old).cloned().collect()
            );
        }
        assert_eq!(base.differences(&two).removed.len(), 2);
    }

    #[test]
    fn nsec3_records_are_compared_too() {
        let text = include_str!("../../sextant-resolver/src/dnssec/testdata/nsec3.db");
        let zone = load("example.test.", text);
        assert_eq!(zone.differences(&zone), Differences::default());
        let empty = load(
            "example.test.",
            "$TTL 60\n@ SOA ns h 1 1 1 1 1\n@ NS ns.example.test.\n",
        );
        let differences = zone.differences(&empty);
        let expected: BTreeSet<String> = records(&zone)
            .difference(&records(&empty))
            .cloned()
            .collect();
        assert_eq!(decoded(&differences.removed), expected);
        assert!(
            differences
                .removed
                .iter()
                .any(|r| Record::from_bytes(r).unwrap().record_type() == RecordType::NSEC3)
        );
    }
}
