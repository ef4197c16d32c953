//! The last signed version of a zone, kept in its DNSSEC directory as
//! `signed.bin`: after a restart or a reload the signer starts from it and keeps
//! every signature still fresh, so the zone's serial and signatures do not change
//! unless its data or its keys did. The file is the records in wire form between a
//! header and a trailer (their count and a SHA-256 over everything before it),
//! written and read as a stream so that a large zone is never held twice; a damaged
//! or foreign file is ignored (the zone is then signed anew, with a new serial),
//! never half-used.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read as _, Write as _};
use std::path::{Path, PathBuf};

use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable};

const MAGIC: &[u8; 16] = b"sextant-signed\x00\x02";
const DIGEST_LEN: u64 = 32;
/// The count and the digest after the records.
const TRAILER_LEN: u64 = 8 + DIGEST_LEN;
/// A record longer than this is not one we wrote.
const MAX_RECORD: usize = 70_000;

/// The file's place in a zone's directory.
pub(crate) fn path(zone_dir: &Path) -> PathBuf {
    zone_dir.join("signed.bin")
}

/// The records of the last signed version, one at a time, if a sound file holds
/// them (the whole file is checked before the first record is given), with the
/// signed changes made to it since (see `signed_steps`).
pub(crate) fn read(zone_dir: &Path) -> Option<Version> {
    let path = path(zone_dir);
    match open_checked(&path) {
        Ok(Some(base)) => {
            let counts = digest(zone_dir)
                .and_then(|digest| {
                    crate::signed_steps::read(zone_dir, &digest, || serial_in(&path))
                })
                .unwrap_or_default();
            Some(Version {
                base,
                counts,
                added: None,
            })
        }
        Ok(None) => None,
        Err(why) => {
            tracing::warn!(path = %path.display(), %why, "the last signed version is unusable; signing anew");
            None
        }
    }
}

/// The SOA serial of the version in the checked file at `path`: the records are
/// walked in wire form and only the SOA is decoded (the one record of its type;
/// first in AXFR order, among the last as the signer emits it).
fn serial_in(path: &Path) -> Option<u32> {
    let mut reader = BufReader::new(File::open(path).ok()?);
    let mut magic = [0u8; 16];
    reader.read_exact(&mut magic).ok()?;
    let mut wire = Vec::new();
    loop {
        let mut len = [0u8; 4];
        reader.read_exact(&mut len).ok()?;
        let len = usize::try_from(u32::from_be_bytes(len)).ok()?;
        if len > MAX_RECORD {
            // The count after the records, or not our file.
            return None;
        }
        wire.resize(len, 0);
        reader.read_exact(&mut wire).ok()?;
        if type_of(&wire) == Some(u16::from(hickory_proto::rr::RecordType::SOA)) {
            return match Record::from_bytes(&wire).ok()?.data {
                hickory_proto::rr::RData::SOA(soa) => Some(soa.serial),
                _ => None,
            };
        }
    }
}

/// The type of a record in wire form, read past its owner name (written whole:
/// the first name of a message is never compressed).
fn type_of(wire: &[u8]) -> Option<u16> {
    let at = sextant_wire::name_len(wire)?;
    Some(u16::from_be_bytes([*wire.get(at)?, *wire.get(at + 1)?]))
}

/// The digest the file ends with: what names this version to its steps.
pub(crate) fn digest(zone_dir: &Path) -> Option<[u8; 32]> {
    use std::io::{Seek as _, SeekFrom};
    let mut file = File::open(path(zone_dir)).ok()?;
    file.seek(SeekFrom::End(-(DIGEST_LEN as i64))).ok()?;
    let mut digest = [0u8; DIGEST_LEN as usize];
    file.read_exact(&mut digest).ok()?;
    Some(digest)
}

/// A record in the form the steps compare: decoded and encoded again, so that
/// the same record made or read gives the same bytes.
pub(crate) fn step_wire(record: &Record) -> Option<Vec<u8>> {
    let wire = record.to_bytes().ok()?;
    Record::from_bytes(&wire).ok()?.to_bytes().ok()
}

/// The last signed version: the file's records with the steps applied.
pub(crate) struct Version {
    base: Records,
    /// Per record (see [`step_wire`]): how many times the steps took it out
    /// (negative) or put it in (positive).
    counts: std::collections::HashMap<Vec<u8>, i64>,
    /// The records the steps put in, once the file's are given.
    added: Option<std::vec::IntoIter<Vec<u8>>>,
}

impl Iterator for Version {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        if self.added.is_none() {
            for record in self.base.by_ref() {
                if self.counts.is_empty() {
                    return Some(record);
                }
                let taken_out = step_wire(&record)
                    .and_then(|wire| self.counts.get_mut(&wire))
                    .filter(|count| **count < 0);
                match taken_out {
                    Some(count) => *count += 1,
                    None => return Some(record),
                }
            }
            let added: Vec<Vec<u8>> = self
                .counts
                .iter()
                .filter(|(_, count)| **count > 0)
                .map(|(wire, _)| wire.clone())
                .collect();
            self.added = Some(added.into_iter());
        }
        self.added
            .as_mut()?
            .find_map(|wire| Record::from_bytes(&wire).ok())
    }
}

/// Every record of the last signed version (for re-signing a secondary zone from it).
#[cfg(test)]
pub(crate) fn read_all(zone_dir: &Path) -> Option<Vec<Record>> {
    read(zone_dir).map(Iterator::collect)
}

fn open_checked(path: &Path) -> Result<Option<Records>, String> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let body_len = len
        .checked_sub(DIGEST_LEN)
        .filter(|body| *body >= MAGIC.len() as u64 + 8)
        .ok_or("too short")?;
    // First pass: the digest over the body.
    let mut reader = BufReader::new(file);
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut remaining = body_len;
    let mut buffer = vec![0u8; 64 * 1024];
    while remaining > 0 {
        let want = usize::try_from(remaining.min(buffer.len() as u64)).unwrap_or(buffer.len());
        let chunk = buffer.get_mut(..want).ok_or("buffer")?;
        reader.read_exact(chunk).map_err(|e| e.to_string())?;
        context.update(chunk);
        remaining -= want as u64;
    }
    let mut digest = [0u8; DIGEST_LEN as usize];
    reader.read_exact(&mut digest).map_err(|e| e.to_string())?;
    if context.finish().as_ref() != digest {
        return Err("checksum mismatch".into());
    }
    // Second pass: the records.
    let mut reader = BufReader::new(File::open(path).map_err(|e| e.to_string())?);
    let mut magic = [0u8; 16];
    reader.read_exact(&mut magic).map_err(|e| e.to_string())?;
    if &magic != MAGIC {
        return Err("not a signed version of this format".into());
    }
    Ok(Some(Records {
        reader,
        left: len - MAGIC.len() as u64 - TRAILER_LEN,
    }))
}

/// The records of a checked file.
pub(crate) struct Records {
    reader: BufReader<File>,
    /// Record bytes not yet read.
    left: u64,
}

impl Iterator for Records {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        if self.left < 4 {
            return None;
        }
        let mut len = [0u8; 4];
        self.reader.read_exact(&mut len).ok()?;
        let len = usize::try_from(u32::from_be_bytes(len)).ok()?;
        if len > MAX_RECORD || (len as u64 + 4) > self.left {
            self.left = 0;
            return None;
        }
        let mut wire = vec![0u8; len];
        self.reader.read_exact(&mut wire).ok()?;
        self.left -= 4 + len as u64;
        Record::read(&mut BinDecoder::new(&wire)).ok()
    }
}

/// A new signed version being written beside the old one; it replaces the old one
/// only by [`Writer::commit`].
pub(crate) struct Writer {
    temporary: PathBuf,
    target: PathBuf,
    out: BufWriter<File>,
    context: ring::digest::Context,
    count: u64,
    failed: Option<std::io::Error>,
}

impl Writer {
    pub(crate) fn create(zone_dir: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let target = path(zone_dir);
        let temporary = target.with_extension("tmp");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        let mut writer = Self {
            temporary,
            target,
            out: BufWriter::with_capacity(256 * 1024, file),
            context: ring::digest::Context::new(&ring::digest::SHA256),
            count: 0,
            failed: None,
        };
        writer.write(MAGIC);
        Ok(writer)
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        self.context.update(bytes);
        if let Err(e) = self.out.write_all(bytes) {
            self.failed = Some(e);
        }
    }

    /// Appends `record`; an error is kept for [`Writer::commit`].
    pub(crate) fn push(&mut self, record: &Record) {
        match record.to_bytes() {
            Ok(wire) => {
                let len = u32::try_from(wire.len()).unwrap_or(u32::MAX);
                self.write(&len.to_be_bytes());
                self.write(&wire);
                self.count += 1;
            }
            Err(e) => {
                self.failed
                    .get_or_insert_with(|| std::io::Error::other(e.to_string()));
            }
        }
    }

    /// Finishes the file, fsyncs it and puts it in place of the old one.
    pub(crate) fn commit(mut self) -> std::io::Result<()> {
        let count = self.count.to_be_bytes();
        self.write(&count);
        if let Some(error) = self.failed.take() {
            let _ = std::fs::remove_file(&self.temporary);
            return Err(error);
        }
        let digest = self.context.clone().finish();
        self.out.write_all(digest.as_ref())?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&self.temporary, &self.target)?;
        match self.target.parent() {
            Some(parent) => {
                // The rename made durable first: removed before it, the steps
                // could be lost while the old version they change came back.
                File::open(parent)?.sync_all()?;
                // The steps were of the version replaced and name it by its
                // digest: should a crash keep this removal from happening, they
                // are ignored (a new version always differs from the one the
                // steps changed: its serial has moved past theirs).
                crate::signed_steps::remove(parent);
                File::open(parent)?.sync_all()
            }
            None => Ok(()),
        }
    }

    /// Drops the new file (the version did not change).
    pub(crate) fn discard(self) {
        drop(self.out);
        let _ = std::fs::remove_file(&self.temporary);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use hickory_proto::rr::{Name, RData};

    use super::*;

    fn records() -> Vec<Record> {
        (0..50u8)
            .map(|i| {
                Record::from_rdata(
                    Name::from_ascii(format!("n{i}.example.")).unwrap(),
                    300,
                    RData::A(std::net::Ipv4Addr::new(192, 0, 2, i).into()),
                )
            })
            .collect()
    }

    fn write(dir: &Path, records: &[Record]) {
        let mut writer = Writer::create(dir).unwrap();
        for record in records {
            writer.push(record);
        }
        writer.commit().unwrap();
    }

    #[test]
    fn a_version_reads_back_whole_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &records());
        assert_eq!(read_all(dir.path()).unwrap(), records());
        let mut bytes = std::fs::read(path(dir.path())).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(path(dir.path()), &bytes).unwrap();
        assert!(read(dir.path()).is_none());
        std::fs::write(path(dir.path()), b"short").unwrap();
        assert!(read(dir.path()).is_none());
    }

    #[test]
    fn a_discarded_version_leaves_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &records());
        let mut writer = Writer::create(dir.path()).unwrap();
        writer.push(&records()[0]);
        writer.discard();
        assert_eq!(read_all(dir.path()).unwrap(), records());
        assert!(!path(dir.path()).with_extension("tmp").exists());
    }
}
