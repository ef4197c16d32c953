//! The last signed version of a zone, kept in its DNSSEC directory as
//! `signed.bin`: after a restart or a reload the signer starts from it and keeps
//! every signature still fresh, so the zone's serial and signatures do not change
//! unless its data or its keys did. The file is the records in wire form behind a
//! header, with a SHA-256 over everything: a damaged or foreign file is ignored
//! (the zone is then signed anew, with a new serial), never half-used.

use std::path::Path;

use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable};

const MAGIC: &[u8; 16] = b"sextant-signed\x00\x01";
const DIGEST_LEN: usize = 32;

/// The file's place in a zone's directory.
pub(crate) fn path(zone_dir: &Path) -> std::path::PathBuf {
    zone_dir.join("signed.bin")
}

/// The records of the last signed version, if a sound file holds them.
pub(crate) fn read(zone_dir: &Path) -> Option<Vec<Record>> {
    let path = path(zone_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the last signed version; signing anew");
            return None;
        }
    };
    let decoded = decode(&bytes);
    if decoded.is_none() {
        tracing::warn!(path = %path.display(), "the last signed version is damaged or from another version; signing anew");
    }
    decoded
}

/// Stores `records` as the last signed version (atomically, fsynced).
pub(crate) fn write(zone_dir: &Path, records: &[Record]) -> std::io::Result<()> {
    crate::key_store::write_atomically(&path(zone_dir), &encode(records)?)
}

fn encode(records: &[Record]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(MAGIC.len() + 8 + records.len() * 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(records.len() as u64).to_be_bytes());
    for record in records {
        let wire = record.to_bytes().map_err(std::io::Error::other)?;
        let len = u32::try_from(wire.len()).map_err(std::io::Error::other)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&wire);
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &out);
    out.extend_from_slice(digest.as_ref());
    Ok(out)
}

fn decode(bytes: &[u8]) -> Option<Vec<Record>> {
    let body_len = bytes.len().checked_sub(DIGEST_LEN)?;
    let (body, digest) = bytes.split_at(body_len);
    if ring::digest::digest(&ring::digest::SHA256, body).as_ref() != digest {
        return None;
    }
    let rest = body.strip_prefix(MAGIC.as_slice())?;
    let (count, mut rest) = rest.split_at_checked(8)?;
    let count = u64::from_be_bytes(count.try_into().ok()?);
    let mut records = Vec::with_capacity(usize::try_from(count).ok()?.min(1 << 20));
    for _ in 0..count {
        let (len, tail) = rest.split_at_checked(4)?;
        let len = usize::try_from(u32::from_be_bytes(len.try_into().ok()?)).ok()?;
        let (wire, tail) = tail.split_at_checked(len)?;
        records.push(Record::read(&mut BinDecoder::new(wire)).ok()?);
        rest = tail;
    }
    rest.is_empty().then_some(records)
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

    #[test]
    fn a_version_reads_back_whole_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &records()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), records());
        let mut bytes = std::fs::read(path(dir.path())).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(path(dir.path()), &bytes).unwrap();
        assert!(read(dir.path()).is_none());
        std::fs::write(path(dir.path()), b"short").unwrap();
        assert!(read(dir.path()).is_none());
    }
}
