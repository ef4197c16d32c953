//! Opening the store (schema check, garbage from a crash deleted) and reading the
//! published versions.

use std::collections::HashSet;
use std::path::Path;

use crate::schema::*;
use crate::{Staging, StoreError, sled_error};

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

/// Bytes of sled's page cache.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// The transfer daemon's store: published and staged zone versions, the refresh times, the IXFR journals.
#[derive(Debug)]
pub struct Store {
    pub(crate) db: sled::Db,
}

impl Store {
    /// Opens (or creates) the store and deletes orphaned version trees.
    pub fn open(path: &Path) -> Result<(Self, Cleanup), StoreError> {
        let db = sled::Config::new()
            .path(path)
            // sled's default page cache is 1 GiB, filled by every version written:
            // the store streams versions, it does not need them cached.
            .cache_capacity(CACHE_BYTES)
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
                    schema: "3",
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
            let live = self
                .published(&zone)?
                .is_some_and(|p| p.trees().any(|tree| tree == version));
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

    /// Deletes everything held of `zone`: its published version first (durably, so
    /// that a crash in the middle leaves only orphaned trees, deleted at the next
    /// open), then its version trees, step, journal and refresh time. For a zone
    /// no longer served (a catalog zone's member removed).
    pub async fn forget(&self, zone: &str) -> Result<(), StoreError> {
        let published = format!("{PUBLISHED_PREFIX}{zone}");
        self.db
            .remove(&published)
            .map_err(sled_error(format!("remove {published}")))?;
        self.db
            .flush_async()
            .await
            .map_err(sled_error(format!("flush the removal of {published}")))?;
        for name in self.db.tree_names() {
            let ours = parse_version_tree_name(&name).is_some_and(|(z, _)| z == zone)
                || name.as_ref() == format!("journal/{zone}").as_bytes();
            if ours {
                self.db
                    .drop_tree(&name)
                    .map_err(sled_error(format!("drop a tree of {zone}")))?;
            }
        }
        for key in [
            format!("{REFRESHED_PREFIX}{zone}"),
            format!("{STEP_PREFIX}{zone}"),
        ] {
            self.db
                .remove(&key)
                .map_err(sled_error(format!("remove {key}")))?;
        }
        self.db
            .flush_async()
            .await
            .map_err(sled_error(format!("flush the removal of {zone}")))?;
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

    /// The published version's records handed to `each` a stored chunk at a time
    /// (never the whole version in memory), until it returns false; false when the
    /// zone has no published version. A version whose record count does not match
    /// its pointer is an error, after its records were handed over: the caller must
    /// not use what it got. The SOA comes first.
    pub fn for_each_records(
        &self,
        zone: &str,
        each: &mut dyn FnMut(Vec<Vec<u8>>) -> bool,
    ) -> Result<bool, StoreError> {
        let Some((published, tree, name)) = self.published_tree(zone)? else {
            return Ok(false);
        };
        let delta = match published.delta {
            0 => None,
            id => Some(self.delta(zone, id)?),
        };
        let gone: HashSet<&[u8]> = delta
            .iter()
            .flat_map(|d| d.removed.iter().map(Vec::as_slice))
            .collect();
        let mut count: u64 = 0;
        if let Some(delta) = &delta {
            count += 1;
            if !each(vec![delta.soa.clone()]) {
                return Ok(true);
            }
        }
        for entry in tree.iter() {
            let (_, chunk) = entry.map_err(sled_error(format!("read {name}")))?;
            let mut records = Vec::new();
            for record in Chunk(&chunk) {
                let record = record.map_err(|what| StoreError::Corrupt {
                    key: name.clone(),
                    what,
                })?;
                if !gone.contains(record) {
                    records.push(record.to_vec());
                }
            }
            count += records.len() as u64;
            if !each(records) {
                return Ok(true);
            }
        }
        if let Some(delta) = &delta {
            for records in delta.added.chunks(1000) {
                let records: Vec<Vec<u8>> = records
                    .iter()
                    .filter(|r| **r != delta.soa)
                    .cloned()
                    .collect();
                count += records.len() as u64;
                if !each(records) {
                    return Ok(true);
                }
            }
        }
        if count != published.records {
            return Err(StoreError::Corrupt {
                key: name,
                what: "record count differs from the published count",
            });
        }
        Ok(true)
    }

    /// The records of the published version of `zone`, in the order they were staged.
    pub fn records(&self, zone: &str) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        let mut records = Vec::new();
        let published = self.for_each_records(zone, &mut |chunk| {
            records.extend(chunk);
            true
        })?;
        Ok(published.then_some(records))
    }

    /// The first record of the published version of `zone` (the SOA, by convention of
    /// the caller), without reading the rest.
    pub fn first_record(&self, zone: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((published, tree, name)) = self.published_tree(zone)? else {
            return Ok(None);
        };
        if published.delta != 0 {
            return Ok(Some(self.delta(zone, published.delta)?.soa));
        }
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

    /// A new, empty tree for a version (or delta) of `zone`: its id, name and tree.
    pub(crate) fn new_tree(&self, zone: &str) -> Result<(u64, String, sled::Tree), StoreError> {
        let id = self
            .db
            .generate_id()
            .map_err(sled_error("allocate a version id"))?;
        let name = version_tree_name(zone, id);
        let tree = self
            .db
            .open_tree(&name)
            .map_err(sled_error(format!("create {name}")))?;
        Ok((id, name, tree))
    }

    /// Starts a new version of `zone`; nothing is visible until [`Staging::publish`].
    pub fn begin(&self, zone: &str) -> Result<Staging<'_>, StoreError> {
        let (version, _, tree) = self.new_tree(zone)?;
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
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            finished: false,
        })
    }
}
