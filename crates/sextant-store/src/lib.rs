//! The transfer daemon's store: zone versions in sled, staged where nobody reads them
//! and published by one small transaction (lesson 4: an interrupted transfer must
//! never publish half a zone).
//!
//! Invariant: the only crate that sees sled. Records are opaque bytes here; the
//! transfer daemon decides their encoding.
//!
//! Schema, version 2:
//! - default tree: `schema` → `2`; `published/<zone>` → version id (u64 BE), serial
//!   (u32 BE), record count (u64 BE).
//! - default tree, optional: `refreshed/<zone>` → Unix time (u64 BE) of the last
//!   successful refresh, so that expiry counts from it across restarts.
//! - one tree per zone version, `version/<zone>/<id as 16 hex digits>`: key = chunk
//!   sequence number (u64 BE), value = a chunk of records in staging order, each as
//!   its length (u32 BE) and its bytes. Chunks of about 64 KiB, not one entry per
//!   record: sled copies a leaf node on every insert, so a million single-record
//!   inserts cost seconds where a few hundred chunk inserts cost milliseconds.
//!   (Schema 1 stored one record per entry; a schema 1 store is emptied at open and
//!   its zones transferred again.)
//!
//! - one tree per primary zone, `journal/<zone>`: the IXFR journal (see `journal`).
//!
//! Discipline: records go into a fresh version tree in batches; `publish` flushes
//! them, flips `published/<zone>` in one transaction, flushes again, and only then
//! drops the previous version. A crash at any point leaves either the old or the new
//! version published, whole; `open` deletes every version tree no zone points at.

mod journal;

pub use journal::Diff;

use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError};

/// Bytes of records per chunk value.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks written per sled batch while staging.
const BATCH_CHUNKS: usize = 16;
const SCHEMA_KEY: &[u8] = b"schema";
const SCHEMA_VERSION: &[u8] = b"2";
/// Schemas this build replaces by an empty store (their data can be transferred again).
const SCHEMA_REPLACED: &[&[u8]] = &[b"1"];
const PUBLISHED_PREFIX: &str = "published/";
const VERSION_PREFIX: &str = "version/";
const REFRESHED_PREFIX: &str = "refreshed/";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {context}: {cause}")]
    Sled { context: String, cause: sled::Error },
    #[error(
        "store at {path} has schema {found:?}, this build reads schema 1; restore a matching backup or start with an empty state directory"
    )]
    Schema { path: String, found: String },
    #[error("store entry {key} is corrupt ({what}); the zone will be transferred again")]
    Corrupt { key: String, what: &'static str },
}

fn sled_error(context: impl Into<String>) -> impl FnOnce(sled::Error) -> StoreError {
    let context = context.into();
    move |cause| StoreError::Sled { context, cause }
}

/// The version of a zone that is published (served).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    pub version: u64,
    pub serial: u32,
    pub records: u64,
}

impl Published {
    fn encode(&self) -> [u8; 20] {
        let mut bytes = [0u8; 20];
        bytes[..8].copy_from_slice(&self.version.to_be_bytes());
        bytes[8..12].copy_from_slice(&self.serial.to_be_bytes());
        bytes[12..].copy_from_slice(&self.records.to_be_bytes());
        bytes
    }

    fn decode(key: &str, bytes: &[u8]) -> Result<Self, StoreError> {
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

fn version_tree_name(zone: &str, version: u64) -> String {
    format!("{VERSION_PREFIX}{zone}/{version:016x}")
}

/// Splits `version/<zone>/<id>` into zone and id.
fn parse_version_tree_name(name: &[u8]) -> Option<(String, u64)> {
    let name = std::str::from_utf8(name).ok()?;
    let rest = name.strip_prefix(VERSION_PREFIX)?;
    let (zone, id) = rest.rsplit_once('/')?;
    Some((zone.to_string(), u64::from_str_radix(id, 16).ok()?))
}

/// What `open` cleaned up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cleanup {
    /// Version trees no zone pointed at (staging left by a crash, or a previous
    /// version whose drop was interrupted), deleted.
    pub orphan_versions: Vec<String>,
    /// The store had this older schema and was emptied: every zone is transferred
    /// again.
    pub replaced_schema: Option<String>,
}

#[derive(Debug)]
pub struct Store {
    db: sled::Db,
}

impl Store {
    /// Opens (or creates) the store and deletes orphaned version trees.
    pub fn open(path: &Path) -> Result<(Self, Cleanup), StoreError> {
        let db = sled::Config::new()
            .path(path)
            .open()
            .map_err(sled_error(format!("open {}", path.display())))?;
        let mut replaced_schema = None;
        match db.get(SCHEMA_KEY).map_err(sled_error("read schema"))? {
            None => {
                db.insert(SCHEMA_KEY, SCHEMA_VERSION)
                    .map_err(sled_error("write schema"))?;
            }
            Some(found) if found.as_ref() == SCHEMA_VERSION => {}
            Some(found) if SCHEMA_REPLACED.contains(&found.as_ref()) => {
                for name in db.tree_names() {
                    if name.as_ref() != b"__sled__default" {
                        db.drop_tree(&name)
                            .map_err(sled_error("drop an old-schema tree"))?;
                    }
                }
                db.clear()
                    .map_err(sled_error("clear an old-schema store"))?;
                db.insert(SCHEMA_KEY, SCHEMA_VERSION)
                    .map_err(sled_error("write schema"))?;
                db.flush().map_err(sled_error("flush the new schema"))?;
                replaced_schema = Some(String::from_utf8_lossy(&found).into_owned());
            }
            Some(found) => {
                return Err(StoreError::Schema {
                    path: path.display().to_string(),
                    found: String::from_utf8_lossy(&found).into_owned(),
                });
            }
        }
        let store = Self { db };
        let mut cleanup = store.collect_garbage()?;
        cleanup.replaced_schema = replaced_schema;
        Ok((store, cleanup))
    }

    fn collect_garbage(&self) -> Result<Cleanup, StoreError> {
        let mut cleanup = Cleanup::default();
        for name in self.db.tree_names() {
            let Some((zone, version)) = parse_version_tree_name(&name) else {
                continue;
            };
            let live = self.published(&zone)?.is_some_and(|p| p.version == version);
            if !live {
                self.db
                    .drop_tree(&name)
                    .map_err(sled_error("drop an orphaned version"))?;
                cleanup
                    .orphan_versions
                    .push(String::from_utf8_lossy(&name).into_owned());
            }
        }
        if !cleanup.orphan_versions.is_empty() {
            self.db.flush().map_err(sled_error("flush after cleanup"))?;
        }
        Ok(cleanup)
    }

    /// Remembers, durably, when `zone` was last refreshed successfully (Unix
    /// seconds).
    pub async fn set_last_refresh(&self, zone: &str, unix_seconds: u64) -> Result<(), StoreError> {
        let key = format!("{REFRESHED_PREFIX}{zone}");
        self.db
            .insert(&key, &unix_seconds.to_be_bytes())
            .map_err(sled_error(format!("write {key}")))?;
        self.db
            .flush_async()
            .await
            .map_err(sled_error(format!("flush {key}")))?;
        Ok(())
    }

    /// When `zone` was last refreshed successfully (Unix seconds), if ever.
    pub fn last_refresh(&self, zone: &str) -> Result<Option<u64>, StoreError> {
        let key = format!("{REFRESHED_PREFIX}{zone}");
        let Some(bytes) = self
            .db
            .get(&key)
            .map_err(sled_error(format!("read {key}")))?
        else {
            return Ok(None);
        };
        let bytes: [u8; 8] = bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt {
            key,
            what: "last refresh time is not 8 bytes",
        })?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    /// The published version of `zone` (apex name as the caller spells it), if any.
    pub fn published(&self, zone: &str) -> Result<Option<Published>, StoreError> {
        let key = format!("{PUBLISHED_PREFIX}{zone}");
        self.db
            .get(&key)
            .map_err(sled_error(format!("read {key}")))?
            .map(|bytes| Published::decode(&key, &bytes))
            .transpose()
    }

    /// Every zone with a published version.
    pub fn zones(&self) -> Result<Vec<(String, Published)>, StoreError> {
        let mut zones = Vec::new();
        for entry in self.db.scan_prefix(PUBLISHED_PREFIX) {
            let (key, value) = entry.map_err(sled_error("scan published zones"))?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let published = Published::decode(&key, &value)?;
            let zone = key.trim_start_matches(PUBLISHED_PREFIX).to_string();
            zones.push((zone, published));
        }
        Ok(zones)
    }

    /// The published version of `zone` with its tree and the tree's name.
    fn published_tree(
        &self,
        zone: &str,
    ) -> Result<Option<(Published, sled::Tree, String)>, StoreError> {
        let Some(published) = self.published(zone)? else {
            return Ok(None);
        };
        let name = version_tree_name(zone, published.version);
        let tree = self
            .db
            .open_tree(&name)
            .map_err(sled_error(format!("open {name}")))?;
        Ok(Some((published, tree, name)))
    }

    /// The records of the published version of `zone`, in the order they were staged.
    pub fn records(&self, zone: &str) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        let Some((published, tree, name)) = self.published_tree(zone)? else {
            return Ok(None);
        };
        let mut records = Vec::with_capacity(usize::try_from(published.records).unwrap_or(0));
        for entry in tree.iter() {
            let (_, chunk) = entry.map_err(sled_error(format!("read {name}")))?;
            for record in Chunk(&chunk) {
                records.push(
                    record
                        .map_err(|what| StoreError::Corrupt {
                            key: name.clone(),
                            what,
                        })?
                        .to_vec(),
                );
            }
        }
        if records.len() as u64 != published.records {
            return Err(StoreError::Corrupt {
                key: name,
                what: "record count differs from the published count",
            });
        }
        Ok(Some(records))
    }

    /// The first record of the published version of `zone` (the SOA, by convention of
    /// the caller), without reading the rest.
    pub fn first_record(&self, zone: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((_, tree, name)) = self.published_tree(zone)? else {
            return Ok(None);
        };
        let first = tree.first().map_err(sled_error(format!("read {name}")))?;
        let Some((_, chunk)) = first else {
            return Ok(None);
        };
        match Chunk(&chunk).next() {
            Some(Ok(record)) => Ok(Some(record.to_vec())),
            Some(Err(what)) => Err(StoreError::Corrupt { key: name, what }),
            None => Ok(None),
        }
    }

    /// Starts a new version of `zone`; nothing is visible until [`Staging::publish`].
    pub fn begin(&self, zone: &str) -> Result<Staging<'_>, StoreError> {
        let version = self
            .db
            .generate_id()
            .map_err(sled_error("allocate a version id"))?;
        let name = version_tree_name(zone, version);
        let tree = self
            .db
            .open_tree(&name)
            .map_err(sled_error(format!("create {name}")))?;
        Ok(Staging {
            store: self,
            zone: zone.to_string(),
            version,
            tree,
            chunk: Vec::with_capacity(CHUNK_BYTES + 1024),
            chunks: 0,
            batch: sled::Batch::default(),
            in_batch: 0,
            records: 0,
            finished: false,
        })
    }
}

/// A zone version being written. Dropped without `publish`, it is deleted.
#[derive(Debug)]
pub struct Staging<'s> {
    store: &'s Store,
    zone: String,
    version: u64,
    tree: sled::Tree,
    /// Records not yet in a batch, encoded as in a chunk value.
    chunk: Vec<u8>,
    chunks: u64,
    batch: sled::Batch,
    in_batch: usize,
    records: u64,
    finished: bool,
}

/// The records of one chunk value.
struct Chunk<'a>(&'a [u8]);

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

impl Staging<'_> {
    pub fn push(&mut self, record: &[u8]) -> Result<(), StoreError> {
        let len = u32::try_from(record.len()).map_err(|_| StoreError::Corrupt {
            key: version_tree_name(&self.zone, self.version),
            what: "a record longer than 4 GiB",
        })?;
        self.chunk.extend_from_slice(&len.to_be_bytes());
        self.chunk.extend_from_slice(record);
        self.records += 1;
        if self.chunk.len() >= CHUNK_BYTES {
            self.close_chunk();
            if self.in_batch >= BATCH_CHUNKS {
                self.write_batch()?;
            }
        }
        Ok(())
    }

    fn close_chunk(&mut self) {
        if self.chunk.is_empty() {
            return;
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_BYTES + 1024));
        self.batch.insert(&self.chunks.to_be_bytes(), chunk);
        self.chunks += 1;
        self.in_batch += 1;
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    fn write_batch(&mut self) -> Result<(), StoreError> {
        let batch = std::mem::take(&mut self.batch);
        self.in_batch = 0;
        self.tree
            .apply_batch(batch)
            .map_err(sled_error("stage records"))
    }

    /// Makes this version the published one, durably, and deletes the previous one.
    /// The caller has verified the version (closing SOA, serial, apex NS...).
    pub async fn publish(mut self, serial: u32) -> Result<Published, StoreError> {
        self.close_chunk();
        self.write_batch()?;
        // The records must be durable before the pointer to them is.
        self.tree
            .flush_async()
            .await
            .map_err(sled_error("flush staged records"))?;
        let published = Published {
            version: self.version,
            serial,
            records: self.records,
        };
        let key = format!("{PUBLISHED_PREFIX}{}", self.zone);
        let value = published.encode();
        let previous = self
            .store
            .db
            .transaction(|tx| {
                Ok::<_, ConflictableTransactionError<()>>(tx.insert(key.as_bytes(), &value[..])?)
            })
            .map_err(|e| match e {
                TransactionError::Storage(cause) => StoreError::Sled {
                    context: format!("publish {key}"),
                    cause,
                },
                TransactionError::Abort(()) => StoreError::Corrupt {
                    key: key.clone(),
                    what: "publish transaction aborted",
                },
            })?;
        self.store
            .db
            .flush_async()
            .await
            .map_err(sled_error("flush the published pointer"))?;
        self.finished = true;
        if let Some(previous) = previous {
            let old = Published::decode(&key, &previous)?;
            if old.version != self.version {
                let name = version_tree_name(&self.zone, old.version);
                // If this fails or we crash first, `open` collects it next time.
                let _ = self.store.db.drop_tree(name);
            }
        }
        Ok(published)
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self
                .store
                .db
                .drop_tree(version_tree_name(&self.zone, self.version));
        }
    }
}

#[cfg(test)]
mod tests;
