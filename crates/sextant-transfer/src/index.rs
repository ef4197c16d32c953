//! What the transfer daemon knows of a zone's published version without reading
//! it: a fingerprint of each record as stored, and the number of NS records at the
//! apex. An IXFR is checked against it (every record it deletes must be held
//! exactly, TTL included, as BIND requires; RFC 1995 §4) and turned into the net
//! step the store keeps, in milliseconds: reading a million-record version to
//! check a thousand deletions took seconds. Eight bytes a record in a sorted
//! vector (8 MB for a million records; a hash set took 19 to 28), built while the
//! AXFR is stored, and the changes since in small sets.
//!
//! Records are stored in one canonical form, so that a deleted record's stored
//! bytes are rebuilt exactly from the IXFR: owner in lower case, names in the data
//! uncompressed and as written.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::ixfr::Diff;

/// A record in the form the store keeps: owner (lower case), type, class, TTL,
/// data length, data (names uncompressed).
pub(crate) fn stored(record: &Record) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(64);
    for label in record.name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out.extend_from_slice(&u16::from(record.record_type()).to_be_bytes());
    out.extend_from_slice(&u16::from(record.dns_class).to_be_bytes());
    out.extend_from_slice(&record.ttl.to_be_bytes());
    let mut data = Vec::with_capacity(32);
    let mut encoder = BinEncoder::new(&mut data);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    record.data.emit(&mut encoder).map_err(|e| {
        format!(
            "{} {} cannot be encoded ({e})",
            record.name,
            record.record_type()
        )
    })?;
    let length = u16::try_from(data.len())
        .map_err(|_| format!("{} {} has too much data", record.name, record.record_type()))?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&data);
    Ok(out)
}

/// Where a stored record's owner ends (its type begins).
fn owner_end(stored: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let len = usize::from(*stored.get(at)?);
        if len == 0 {
            return Some(at + 1);
        }
        // Stored owners are never compressed.
        if len & 0xc0 != 0 {
            return None;
        }
        at += 1 + len;
    }
}

fn rtype_of(stored: &[u8], owner_end: usize) -> RecordType {
    let rtype = stored.get(owner_end..owner_end + 2).unwrap_or(&[0, 0]);
    RecordType::from(u16::from_be_bytes([rtype[0], rtype[1]]))
}

/// A set of fingerprints: a sorted vector for the version transferred whole, the
/// changes since in sets.
#[derive(Debug, Default)]
struct Fingerprints {
    base: Vec<u64>,
    /// `base` is sorted and without duplicates.
    sealed: bool,
    /// In `base`, gone since.
    removed: HashSet<u64>,
    /// Not in `base`, there since.
    added: HashSet<u64>,
}

impl Fingerprints {
    fn in_base(&self, fingerprint: u64) -> bool {
        self.base.binary_search(&fingerprint).is_ok()
    }

    fn contains(&self, fingerprint: u64) -> bool {
        self.added.contains(&fingerprint)
            || (!self.removed.contains(&fingerprint) && self.in_base(fingerprint))
    }

    fn insert(&mut self, fingerprint: u64) -> bool {
        if self.contains(fingerprint) {
            return false;
        }
        if self.in_base(fingerprint) {
            self.removed.remove(&fingerprint);
        } else {
            self.added.insert(fingerprint);
        }
        true
    }

    fn remove(&mut self, fingerprint: u64) -> bool {
        self.added.remove(&fingerprint)
            || (self.in_base(fingerprint) && self.removed.insert(fingerprint))
    }

    fn len(&self) -> usize {
        self.base.len() - self.removed.len() + self.added.len()
    }
}

/// The records of one published version, by fingerprint.
#[derive(Debug)]
pub(crate) struct RecordIndex {
    /// The version indexed ([`sextant_store::Published::digest`]).
    pub(crate) digest: [u8; 32],
    apex: Vec<u8>,
    /// Fingerprints of the stored records, the SOA apart.
    records: Fingerprints,
    /// While the version is added: the fingerprints of the apex's NS records.
    apex_ns_added: Vec<u64>,
    apex_ns: usize,
    /// Seeded per process: a primary must not be able to choose colliding records.
    hasher: foldhash::fast::RandomState,
}

/// A checked IXFR as the store takes it: the old SOA first in `removed`, the new
/// SOA first in `added`; each record as stored.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NetChange {
    pub(crate) removed: Vec<Vec<u8>>,
    pub(crate) added: Vec<Vec<u8>>,
}

impl RecordIndex {
    /// An empty index of the version named `digest` of zone `apex`.
    pub(crate) fn new(apex: &Name, digest: [u8; 32]) -> Self {
        let hasher = foldhash::fast::RandomState::default();
        Self {
            digest,
            apex: stored_name(apex),
            records: Fingerprints::default(),
            apex_ns_added: Vec::new(),
            apex_ns: 0,
            hasher,
        }
    }

    /// The fingerprint of a stored record and where its owner ends.
    fn fingerprint(&self, stored: &[u8]) -> Option<(u64, usize)> {
        Some((self.hasher.hash_one(stored), owner_end(stored)?))
    }

    /// Room for `records` more.
    pub(crate) fn reserve(&mut self, records: usize) {
        self.records.base.reserve(records);
    }

    fn is_apex_ns(&self, stored: &[u8], owner_end: usize) -> bool {
        rtype_of(stored, owner_end) == RecordType::NS && stored[..owner_end] == *self.apex
    }

    /// Adds one stored record of the version (the SOA is skipped); once every
    /// record is in, [`RecordIndex::seal`] makes the index usable.
    pub(crate) fn add(&mut self, stored: &[u8]) -> Result<(), &'static str> {
        let (fingerprint, owner_end) = self
            .fingerprint(stored)
            .ok_or("a stored record does not decode")?;
        if rtype_of(stored, owner_end) == RecordType::SOA {
            return Ok(());
        }
        self.records.base.push(fingerprint);
        self.records.sealed = false;
        if self.is_apex_ns(stored, owner_end) {
            self.apex_ns_added.push(fingerprint);
        }
        Ok(())
    }

    /// Sorts what [`RecordIndex::add`] gave (duplicates count once).
    pub(crate) fn seal(&mut self) {
        if self.records.sealed {
            return;
        }
        self.records.base.sort_unstable();
        self.records.base.dedup();
        self.records.base.shrink_to_fit();
        self.apex_ns_added.sort_unstable();
        self.apex_ns_added.dedup();
        self.apex_ns += self.apex_ns_added.len();
        self.apex_ns_added = Vec::new();
        self.records.sealed = true;
    }

    /// Records indexed, the SOA apart.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// The net change `diffs` make to the version (`ours` its stored SOA, `soa`
    /// the newest): each deleted record must be held, an added one already held is
    /// skipped, and the apex keeps NS records. Nothing changes until
    /// [`RecordIndex::commit`].
    pub(crate) fn check(
        &self,
        ours: Vec<u8>,
        diffs: &[Diff],
        soa: &Record,
    ) -> Result<NetChange, String> {
        // Each touched fingerprint: held now or not, and its stored bytes when the
        // version before held it (removed) or did not (added).
        let mut now: HashMap<u64, bool> = HashMap::new();
        let mut removed: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut added: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut apex_ns = self.apex_ns;
        let held = |now: &HashMap<u64, bool>, fingerprint: u64| {
            now.get(&fingerprint)
                .copied()
                .unwrap_or_else(|| self.records.contains(fingerprint))
        };
        for diff in diffs {
            for record in diff
                .deleted
                .iter()
                .filter(|r| r.record_type() != RecordType::SOA)
            {
                let bytes = stored(record)?;
                let (fingerprint, owner_end) = self
                    .fingerprint(&bytes)
                    .ok_or("a deleted record does not encode")?;
                if !held(&now, fingerprint) {
                    return Err(format!(
                        "serial {} deletes {} {} (TTL {}), which we do not have",
                        diff.from,
                        record.name,
                        record.record_type(),
                        record.ttl
                    ));
                }
                now.insert(fingerprint, false);
                if self.is_apex_ns(&bytes, owner_end) {
                    apex_ns = apex_ns.saturating_sub(1);
                }
                if added.remove(&fingerprint).is_none() {
                    removed.insert(fingerprint, bytes);
                }
            }
            for record in diff
                .added
                .iter()
                .filter(|r| r.record_type() != RecordType::SOA)
            {
                let bytes = stored(record)?;
                let (fingerprint, owner_end) = self
                    .fingerprint(&bytes)
                    .ok_or("an added record does not encode")?;
                if held(&now, fingerprint) {
                    continue;
                }
                now.insert(fingerprint, true);
                if self.is_apex_ns(&bytes, owner_end) {
                    apex_ns += 1;
                }
                // Deleted and added back: no change at all.
                if removed.remove(&fingerprint).is_none() {
                    added.insert(fingerprint, bytes);
                }
            }
        }
        if apex_ns == 0 {
            return Err("after the differences the zone has no NS records at its apex".into());
        }
        // Sorted: the same IXFR makes the same step (and digest) every time.
        let mut removed: Vec<Vec<u8>> = removed.into_values().collect();
        let mut added: Vec<Vec<u8>> = added.into_values().collect();
        removed.sort_unstable();
        added.sort_unstable();
        removed.insert(0, ours);
        added.insert(0, stored(soa)?);
        Ok(NetChange { removed, added })
    }

    /// The index of the version `change` made, named `digest` (the index is
    /// sealed).
    pub(crate) fn commit(&mut self, change: &NetChange, digest: [u8; 32]) {
        for bytes in change.removed.iter().skip(1) {
            if let Some((fingerprint, owner_end)) = self.fingerprint(bytes)
                && self.records.remove(fingerprint)
                && self.is_apex_ns(bytes, owner_end)
            {
                self.apex_ns = self.apex_ns.saturating_sub(1);
            }
        }
        for bytes in change.added.iter().skip(1) {
            if let Some((fingerprint, owner_end)) = self.fingerprint(bytes)
                && self.records.insert(fingerprint)
                && self.is_apex_ns(bytes, owner_end)
            {
                self.apex_ns += 1;
            }
        }
        self.digest = digest;
    }
}

fn stored_name(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_records::{a, name, soa};
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::NS;

    fn ns(owner: &str, target: &str) -> Record {
        Record::from_rdata(name(owner), 300, RData::NS(NS(name(target))))
    }

    fn index(records: &[Record]) -> RecordIndex {
        let mut index = RecordIndex::new(&name("example.com."), [0; 32]);
        for record in records {
            index.add(&stored(record).unwrap()).unwrap();
        }
        index.seal();
        index
    }

    fn diff(from: u32, to: u32, deleted: Vec<Record>, added: Vec<Record>) -> Diff {
        Diff {
            from,
            to: soa(to),
            deleted,
            added,
        }
    }

    #[test]
    fn the_stored_form_is_canonical() {
        let upper = a("WWW.Example.COM.", 1);
        let lower = a("www.example.com.", 1);
        assert_eq!(stored(&upper).unwrap(), stored(&lower).unwrap());
        // Names in the data are never compressed: the record stands alone.
        let bytes = stored(&ns("example.com.", "ns1.example.com.")).unwrap();
        assert!(!bytes.iter().any(|b| b & 0xc0 == 0xc0));
        assert_eq!(owner_end(&bytes), Some(13));
    }

    #[test]
    fn a_checked_ixfr_is_its_net_change() {
        let base = [
            ns("example.com.", "ns1.example.com."),
            a("a.example.com.", 1),
            a("b.example.com.", 2),
        ];
        let mut index = index(&base);
        let ours = stored(&soa(1)).unwrap();
        // 1→2: a goes, c comes; 2→3: c goes, b's record is deleted and added back
        // unchanged, d comes.
        let diffs = [
            diff(1, 2, vec![base[1].clone()], vec![a("c.example.com.", 3)]),
            diff(
                2,
                3,
                vec![a("c.example.com.", 3), base[2].clone()],
                vec![base[2].clone(), a("d.example.com.", 4)],
            ),
        ];
        let change = index.check(ours.clone(), &diffs, &soa(3)).unwrap();
        assert_eq!(change.removed, vec![ours, stored(&base[1]).unwrap()]);
        assert_eq!(
            change.added,
            vec![
                stored(&soa(3)).unwrap(),
                stored(&a("d.example.com.", 4)).unwrap()
            ]
        );
        index.commit(&change, [1; 32]);
        assert_eq!(index.len(), 3);
        assert_eq!(index.digest, [1; 32]);
        // A deletion of what is gone now is refused, and so is one whose TTL
        // differs from the record held.
        let again = [diff(3, 4, vec![base[1].clone()], vec![])];
        let error = index
            .check(stored(&soa(3)).unwrap(), &again, &soa(4))
            .unwrap_err();
        assert!(error.contains("which we do not have"), "{error}");
        let mut other_ttl = base[2].clone();
        other_ttl.ttl = 1;
        let error = index
            .check(
                stored(&soa(3)).unwrap(),
                &[diff(3, 4, vec![other_ttl], vec![])],
                &soa(4),
            )
            .unwrap_err();
        assert!(error.contains("TTL 1"), "{error}");
    }

    #[test]
    fn the_apex_keeps_its_ns_records() {
        let index = index(&[ns("example.com.", "ns1.example.com.")]);
        let diffs = [diff(
            1,
            2,
            vec![ns("example.com.", "ns1.example.com.")],
            vec![],
        )];
        let error = index
            .check(stored(&soa(1)).unwrap(), &diffs, &soa(2))
            .unwrap_err();
        assert!(error.contains("no NS records"), "{error}");
        let replaced = [diff(
            1,
            2,
            vec![ns("example.com.", "ns1.example.com.")],
            vec![ns("EXAMPLE.com.", "ns2.example.com.")],
        )];
        assert!(
            index
                .check(stored(&soa(1)).unwrap(), &replaced, &soa(2))
                .is_ok()
        );
    }
}
