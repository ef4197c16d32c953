//! The store's on-disk names and encodings (the schema in the crate documentation).

use crate::StoreError;

/// Bytes of records per chunk value.
pub(crate) const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks written per sled batch while staging.
pub(crate) const BATCH_CHUNKS: usize = 16;
pub(crate) const SCHEMA_KEY: &[u8] = b"schema";
pub(crate) const SCHEMA_VERSION: &[u8] = b"2";
/// Schemas this build replaces by an empty store (their data can be transferred again).
pub(crate) const SCHEMA_REPLACED: &[&[u8]] = &[b"1"];
pub(crate) const PUBLISHED_PREFIX: &str = "published/";
pub(crate) const VERSION_PREFIX: &str = "version/";
pub(crate) const REFRESHED_PREFIX: &str = "refreshed/";

/// The version of a zone that is published (served).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The version tree's id.
    pub version: u64,
    /// The zone's SOA serial in that version.
    pub serial: u32,
    /// Records in the version.
    pub records: u64,
}

impl Published {
    pub(crate) fn encode(&self) -> [u8; 20] {
        let mut bytes = [0u8; 20];
        bytes[..8].copy_from_slice(&self.version.to_be_bytes());
        bytes[8..12].copy_from_slice(&self.serial.to_be_bytes());
        bytes[12..].copy_from_slice(&self.records.to_be_bytes());
        bytes
    }

    pub(crate) fn decode(key: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = || StoreError::Corrupt {
            key: key.to_string(),
            what: "published entry is not 20 bytes",
        };
        let version = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        let serial = bytes
            .get(8..12)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        let records = bytes
            .get(12..20)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        Ok(Self {
            version: u64::from_be_bytes(version),
            serial: u32::from_be_bytes(serial),
            records: u64::from_be_bytes(records),
        })
    }
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
