//! A built zone written as bytes and read back without parsing text: names in
//! canonical order, each with its RRsets in wire form, as the builder groups them.
//! Reading one costs an allocation or three per name and the zone-wide checks a
//! text load ends with (the NSEC/NSEC3 chains included), so a snapshot can never
//! give a zone that loading its text would refuse.
//!
//! Encoding (integers little-endian): format (u32), origin (u8 length, wire
//! name), records (u64), names (u64), then per name: key length (u16), canonical
//! key, RRsets (u16), and per RRset: type (u16), TTL (u32), data length (u32),
//! data (each record's 2-byte length and RDATA, as [`RRset`] keeps them).
//!
//! No checksum here: the caller stores the bytes and knows how to guard them.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use hickory_proto::rr::{Name, RecordType};

use crate::nodes::{Node, Nodes};
use crate::zone::{Zone, finish, wire_name};
use crate::{RRset, canonical};

/// Changes whenever the encoding or what a zone holds changes: a snapshot of
/// another format is ignored, never misread.
pub const SNAPSHOT_FORMAT: u32 = 1;

impl Zone {
    /// Writes the zone to `out` (a large zone in many small writes: buffer them).
    pub fn write_snapshot(&self, out: &mut dyn Write) -> std::io::Result<()> {
        out.write_all(&SNAPSHOT_FORMAT.to_le_bytes())?;
        let origin = wire_name(self.origin());
        out.write_all(&[origin.len() as u8])?;
        out.write_all(&origin)?;
        out.write_all(&(self.record_count() as u64).to_le_bytes())?;

        // NSEC3 records live apart from the names once built; they go back to
        // their owners' places, where a text load finds them.
        let mut hashed: Vec<(Box<[u8]>, &Node)> = self
            .nsec3_entries()
            .map(|entry| (canonical::key_of_wire(&entry.owner), &entry.node))
            .collect();
        hashed.sort_by(|a, b| a.0.cmp(&b.0));
        // The count leads the list: one walk to count, one to write.
        let mut count: u64 = 0;
        merge(self.nodes(), &hashed, &mut |_, _| {
            count += 1;
            Ok(())
        })?;
        out.write_all(&count.to_le_bytes())?;
        merge(self.nodes(), &hashed, &mut |key, sets| {
            write_name(out, key, sets)
        })?;
        Ok(())
    }

    /// Reads a zone `write_snapshot` wrote, for `origin`; `source` is named in
    /// errors. The bytes are checked as they are read: a damaged or foreign
    /// snapshot is an error, never a panic or a wrong zone.
    pub fn read_snapshot(origin: &Name, source: &Path, bytes: &[u8]) -> Result<Zone, String> {
        let mut input = SnapshotReader::new(bytes);
        let format = input.u32()?;
        if format != SNAPSHOT_FORMAT {
            return Err(format!(
                "snapshot format {format}, this version reads {SNAPSHOT_FORMAT}"
            ));
        }
        let origin_len = usize::from(input.take(1)?[0]);
        let stored_origin = input.take(origin_len)?;
        let mut origin = origin.to_lowercase();
        origin.set_fqdn(true);
        if stored_origin != wire_name(&origin).as_slice() {
            return Err("the snapshot is of another zone".into());
        }
        let origin_key = canonical::key(&origin);
        let record_count = usize::try_from(input.u64()?).map_err(|_| "record count")?;
        let name_count = usize::try_from(input.u64()?).map_err(|_| "name count")?;
        // Each name takes at least 4 bytes: a count past that is damage, and must
        // not reserve memory for it.
        if name_count > bytes.len() / 4 {
            return Err("the name count is larger than the snapshot".into());
        }
        let mut names: Vec<(Box<[u8]>, Node)> = Vec::with_capacity(name_count);
        for _ in 0..name_count {
            let key_len = usize::from(input.u16()?);
            let key = input.take(key_len)?;
            if !key.starts_with(&origin_key) {
                return Err("a name outside the zone".into());
            }
            if names.last().is_some_and(|(last, _)| **last >= *key) {
                return Err("names out of order".into());
            }
            let set_count = usize::from(input.u16()?);
            let mut rrsets = Vec::with_capacity(set_count);
            for _ in 0..set_count {
                let rtype = RecordType::from(input.u16()?);
                let ttl = input.u32()?;
                let len = usize::try_from(input.u32()?).map_err(|_| "data length")?;
                let data = input.take(len)?;
                let set = RRset::from_wire(rtype, ttl, data.into())
                    .ok_or("an RRset whose records do not add up")?;
                rrsets.push(set);
            }
            if rrsets.is_empty() {
                return Err("a name without RRsets".into());
            }
            names.push((key.into(), Node { rrsets }));
        }
        if !input.rest().is_empty() {
            return Err("bytes after the last name".into());
        }
        let file = Arc::new(source.to_path_buf());
        finish(&origin, &file, names, &Default::default(), record_count)
            .map_err(|e| format!("the snapshot does not build: {e}"))
    }
}

/// Takes one name's key and RRsets.
type NameVisitor<'v> = dyn FnMut(&[u8], &[&RRset]) -> std::io::Result<()> + 'v;

/// Calls `each` for every name in canonical order with all its RRsets: those of
/// `names` and those of `hashed` (sorted by key) at the same owner.
fn merge(
    names: &Nodes,
    hashed: &[(Box<[u8]>, &Node)],
    each: &mut NameVisitor<'_>,
) -> std::io::Result<()> {
    let mut names = names.iter().peekable();
    let mut hashed = hashed.iter().peekable();
    let mut sets: Vec<&RRset> = Vec::new();
    loop {
        let next_name: Option<&[u8]> = names.peek().map(|&(key, _)| key);
        let next_hashed: Option<&[u8]> = hashed.peek().map(|&(key, _)| &**key);
        let key = match (next_name, next_hashed) {
            (None, None) => return Ok(()),
            (Some(key), None) | (None, Some(key)) => key,
            (Some(key), Some(other)) => key.min(other),
        };
        sets.clear();
        if let Some((_, node)) = names.next_if(|(next, _)| *next == key) {
            sets.extend(node.rrsets());
        }
        while let Some((_, node)) = hashed.next_if(|(next, _)| **next == *key) {
            sets.extend(node.rrsets());
        }
        each(key, &sets)?;
    }
}

fn write_name(out: &mut dyn Write, key: &[u8], sets: &[&RRset]) -> std::io::Result<()> {
    out.write_all(&(key.len() as u16).to_le_bytes())?;
    out.write_all(key)?;
    out.write_all(&(sets.len() as u16).to_le_bytes())?;
    for set in sets {
        out.write_all(&u16::from(set.rtype).to_le_bytes())?;
        out.write_all(&set.ttl.to_le_bytes())?;
        out.write_all(&(set.wire().len() as u32).to_le_bytes())?;
        out.write_all(set.wire())?;
    }
    Ok(())
}

/// Reads a snapshot's little-endian integers and slices, every read checked
/// against the end (the authority reads its own header with it too).
#[derive(Debug)]
pub struct SnapshotReader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> SnapshotReader<'b> {
    /// Reads `bytes` from the start.
    pub fn new(bytes: &'b [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// What is left to read.
    pub fn rest(&self) -> &'b [u8] {
        &self.bytes[self.at..]
    }

    /// The next `len` bytes.
    pub fn take(&mut self, len: usize) -> Result<&'b [u8], String> {
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or("the snapshot ends early")?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    /// The next `u16`.
    pub fn u16(&mut self) -> Result<u16, String> {
        self.array().map(u16::from_le_bytes)
    }

    /// The next `u32`.
    pub fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }

    /// The next `u64`.
    pub fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use hickory_proto::rr::Record;

    use super::*;

    use crate::zone::test_zone as load;

    fn snapshot(zone: &Zone) -> Vec<u8> {
        let mut bytes = Vec::new();
        zone.write_snapshot(&mut bytes).unwrap();
        bytes
    }

    fn axfr(zone: &Zone) -> Vec<String> {
        let mut records: Vec<String> = zone.axfr_records().map(|r: Record| r.to_string()).collect();
        records.sort();
        records
    }

    const PLAIN: &str = "$TTL 300\n@ SOA ns hostmaster 7 2 3 4 60\n  NS ns\nns A 192.0.2.1\n  AAAA 2001:db8::1\nwww CNAME ns\n* TXT \"wild\"\nsub NS ns.sub\nns.sub A 192.0.2.9\nmail MX 10 ns\n_sip._udp SRV 0 5 5060 ns\nd DNAME example.net.\n";

    #[test]
    fn a_zone_reads_back_as_it_was_written() {
        let zone = load("example.com.", PLAIN);
        let back = Zone::read_snapshot(
            &Name::from_ascii("example.com.").unwrap(),
            Path::new("z"),
            &snapshot(&zone),
        )
        .unwrap();
        assert_eq!(axfr(&back), axfr(&zone));
        assert_eq!(back.serial(), 7);
        assert_eq!(back.record_count(), zone.record_count());
        assert_eq!(back.has_cuts(), zone.has_cuts());
    }

    #[test]
    fn a_signed_nsec3_zone_keeps_its_chain() {
        let text = include_str!("../../sextant-resolver/src/dnssec/testdata/nsec3.db");
        let zone = load("example.test.", text);
        assert!(zone.is_signed());
        assert!(zone.nsec3_entries().count() > 0);
        let back = Zone::read_snapshot(
            &Name::from_ascii("example.test.").unwrap(),
            Path::new("z"),
            &snapshot(&zone),
        )
        .unwrap();
        assert!(back.is_signed());
        assert_eq!(back.nsec3_entries().count(), zone.nsec3_entries().count());
        assert_eq!(axfr(&back), axfr(&zone));
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let origin = Name::from_ascii("example.com.").unwrap();
        let bytes = snapshot(&load("example.com.", PLAIN));
        for len in 0..bytes.len() {
            assert!(
                Zone::read_snapshot(&origin, Path::new("z"), &bytes[..len]).is_err(),
                "cut at {len}"
            );
        }
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x5a;
            // Some flips still make a valid zone (a TTL, an address); none panics.
            let _ = Zone::read_snapshot(&origin, Path::new("z"), &damaged);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Zone::read_snapshot(&origin, Path::new("z"), &longer).is_err());
        let mut other_format = bytes.clone();
        other_format[0] ^= 1;
        let error = Zone::read_snapshot(&origin, Path::new("z"), &other_format).unwrap_err();
        assert!(error.contains("format"), "{error}");
        let error = Zone::read_snapshot(
            &Name::from_ascii("example.net.").unwrap(),
            Path::new("z"),
            &bytes,
        )
        .unwrap_err();
        assert!(error.contains("another zone"), "{error}");
    }

    /// Replays fuzz/corpus/zone_wire the way the fuzz target reads it: as a
    /// snapshot, and as length-prefixed standalone records; a zone that builds
    /// comes back whole from its own snapshot.
    #[test]
    fn fuzz_corpus_replays() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/zone_wire");
        let origin = Name::from_ascii("example.com.").unwrap();
        let location = crate::Location {
            file: Arc::new("fuzz".into()),
            line: 1,
        };
        let mut built = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            let _ = Zone::read_snapshot(&origin, Path::new("z"), &data);
            let mut builder = crate::ZoneBuilder::new(&origin, Path::new("fuzz"));
            let mut ordered = crate::ZoneBuilder::new(&origin, Path::new("fuzz")).in_order();
            let mut records = Vec::new();
            let mut rest = &data[..];
            while let Some((len, tail)) = rest.split_first_chunk::<2>() {
                let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
                let _ = builder.add_record(&tail[..len], &location);
                let _ = ordered.add_record(&tail[..len], &location);
                records.push(tail[..len].to_vec());
                rest = &tail[len..];
            }
            let general = builder.build();
            let in_order = ordered.build();
            assert_eq!(general.is_ok(), in_order.is_ok());
            if let (Ok((zone, _)), Ok((again, _))) = (&general, &in_order) {
                assert_eq!(axfr(zone), axfr(again));
                let half = records.len() / 2;
                let _ = zone.apply(&records[..half], &records[half..], Path::new("step"));
            }
            if let Ok((zone, _)) = general {
                let back = Zone::read_snapshot(&origin, Path::new("z"), &snapshot(&zone)).unwrap();
                assert_eq!(axfr(&back), axfr(&zone));
                built += 1;
            }
        }
        assert!(built > 0);
    }
}
