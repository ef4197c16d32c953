//! The store's on-disk names and encodings (the schema in the crate documentation).

use crate::StoreError;

/// Bytes of records per chunk value.
pub(crate) const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks written per sled batch while staging.
pub(crate) const BATCH_CHUNKS: usize = 16;
pub(crate) const SCHEMA_KEY: &[u8] = b"schema";
pub(crate) const SCHEMA_VERSION: &[u8] = b"3";
/// Schemas this build replaces by an empty store (their data can be transferred again).
pub(crate) const SCHEMA_REPLACED: &[&[u8]] = &[b"1", b"2"];
pub(crate) const PUBLISHED_PREFIX: &str = "published/";
pub(crate) const VERSION_PREFIX: &str = "version/";
pub(crate) const REFRESHED_PREFIX: &str = "refreshed/";
pub(crate) const STEP_PREFIX: &str = "step/";
/// Keys of a delta tree (see the crate documentation).
pub(crate) const DELTA_SOA: &[u8] = b"soa";
pub(crate) const DELTA_REMOVED: &[u8] = b"removed";
pub(crate) const DELTA_ADDED: &[u8] = b"added";
/// Bytes of a published entry.
const PUBLISHED_BYTES: usize = 60;

/// The version of a zone that is published (served).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The id of the tree holding the version's records, or for a version made by
    /// incremental transfers, the records they started from.
    pub version: u64,
    /// The zone's SOA serial in that version.
    pub serial: u32,
    /// Records in the version.
    pub records: u64,
    /// What names the version: SHA-256 of its records for a version transferred
    /// whole; for one made by an incremental transfer, SHA-256 of its parent's
    /// digest and the step (see [`crate::Step`]). Both sides of the watch compare it.
    pub digest: [u8; 32],
    /// The id of the delta tree: what the incremental transfers since `version`
    /// removed and added, composed; 0 when the version is `version`'s records alone.
    pub delta: u64,
}

impl Published {
    pub(crate) fn encode(&self) -> [u8; PUBLISHED_BYTES] {
        let mut bytes = [0u8; PUBLISHED_BYTES];
        bytes[..8].copy_from_slice(&self.version.to_be_bytes());
        bytes[8..12].copy_from_slice(&self.serial.to_be_bytes());
        bytes[12..20].copy_from_slice(&self.records.to_be_bytes());
        bytes[20..52].copy_from_slice(&self.digest);
        bytes[52..].copy_from_slice(&self.delta.to_be_bytes());
        bytes
    }

    pub(crate) fn decode(key: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        let bytes: &[u8; PUBLISHED_BYTES] = bytes.try_into().map_err(|_| StoreError::Corrupt {
            key: key.to_string(),
            what: "published entry is not 60 bytes",
        })?;
        let (version, rest) = bytes.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
        let (serial, rest) = rest.split_first_chunk::<4>().unwrap_or((&[0; 4], &[]));
        let (records, rest) = rest.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
        let (digest, rest) = rest.split_first_chunk::<32>().unwrap_or((&[0; 32], &[]));
        let delta = rest.first_chunk::<8>().unwrap_or(&[0; 8]);
        Ok(Self {
            version: u64::from_be_bytes(*version),
            serial: u32::from_be_bytes(*serial),
            records: u64::from_be_bytes(*records),
            digest: *digest,
            delta: u64::from_be_bytes(*delta),
        })
    }

    /// The trees the version's records are in.
    pub(crate) fn trees(&self) -> impl Iterator<Item = u64> {
        std::iter::once(self.version).chain((self.delta != 0).then_some(self.delta))
    }
}

/// Appends a list of records: a count (u32 BE), then each as its length (u32 BE)
/// and its bytes.
pub(crate) fn encode_list(out: &mut Vec<u8>, list: &[Vec<u8>]) {
    out.extend_from_slice(&(list.len() as u32).to_be_bytes());
    for record in list {
        out.extend_from_slice(&(record.len() as u32).to_be_bytes());
        out.extend_from_slice(record);
    }
}

/// Reads a list [`encode_list`] wrote at `*at`, moving `*at` past it.
pub(crate) fn decode_list(bytes: &[u8], at: &mut usize) -> Option<Vec<Vec<u8>>> {
    let count = u32::from_be_bytes(*bytes.get(*at..)?.first_chunk::<4>()?);
    *at += 4;
    // Each record takes at least its 4-byte length: a larger count is damage.
    if count as usize > bytes.len().saturating_sub(*at) / 4 {
        return None;
    }
    let mut list = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = u32::from_be_bytes(*bytes.get(*at..)?.first_chunk::<4>()?) as usize;
        *at += 4;
        list.push(bytes.get(*at..*at + len)?.to_vec());
        *at += len;
    }
    Some(list)
}

pub(crate) fn version_tree_name(zone: &str, version: u64) -> String {
    format!("{VERSION_PREFIX}{zone}/{version:016x}")
}

/// Splits `version/<zone>/<id>` into zone and id.
pub(crate) fn parse_version_tree_name(name: &[u8]) -> Option<(String, u64)> {
    let name = std::str::from_utf8(name).ok()?;
    let rest = name.strip_prefix(VERSION_PREFIX)?;
    let (zone, id) = rest.rsplit_once('/')?;
    Some((zone.to_string(), u64::from_str_radix(id, 16).ok()?))
}

/// The records of one chunk value.
pub(crate) struct Chunk<'a>(pub(crate) &'a [u8]);

impl<'a> Iterator for Chunk<'a> {
    type Item = Result<&'a [u8], &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let Some((len, rest)) = self.0.split_first_chunk::<4>() else {
            self.0 = &[];
            return Some(Err("a chunk ends inside a record length"));
        };
        let len = u32::from_be_bytes(*len) as usize;
        let Some((record, rest)) = rest.split_at_checked(len) else {
            self.0 = &[];
            return Some(Err("a chunk ends inside a record"));
        };
        self.0 = rest;
        Some(Ok(record))
    }
}
