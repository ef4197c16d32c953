//! Writing a zone version where nobody reads it, then publishing it in one small
//! transaction, after its records are durable.

use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::schema::*;
use crate::{Published, Store, StoreError, sled_error};

/// A zone version being written. Dropped without `publish`, it is deleted.
pub struct Staging<'s> {
    pub(crate) store: &'s Store,
    pub(crate) zone: String,
    pub(crate) version: u64,
    pub(crate) tree: sled::Tree,
    /// Records not yet in a batch, encoded as in a chunk value.
    pub(crate) chunk: Vec<u8>,
    pub(crate) chunks: u64,
    pub(crate) batch: sled::Batch,
    pub(crate) in_batch: usize,
    pub(crate) records: u64,
    /// SHA-256 over the records, each as its length (u32 BE) and its bytes.
    pub(crate) digest: ring::digest::Context,
    pub(crate) finished: bool,
}

impl std::fmt::Debug for Staging<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staging")
            .field("zone", &self.zone)
            .field("version", &self.version)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl Staging<'_> {
    /// Adds one record (opaque bytes) to the version.
    pub fn push(&mut self, record: &[u8]) -> Result<(), StoreError> {
        let len = u32::try_from(record.len()).map_err(|_| StoreError::Corrupt {
            key: version_tree_name(&self.zone, self.version),
            what: "a record longer than 4 GiB",
        })?;
        self.chunk.extend_from_slice(&len.to_be_bytes());
        self.chunk.extend_from_slice(record);
        self.digest.update(&len.to_be_bytes());
        self.digest.update(record);
        self.records += 1;
        if self.chunk.len() >= CHUNK_BYTES {
            self.close_chunk();
            if self.in_batch >= BATCH_CHUNKS {
                self.write_batch()?;
            }
        }
        Ok(())
    }

    pub(crate) fn close_chunk(&mut self) {
        if self.chunk.is_empty() {
            return;
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_BYTES + 1024));
        self.batch.insert(&self.chunks.to_be_bytes(), chunk);
        self.chunks += 1;
        self.in_batch += 1;
    }

    /// Records added so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    pub(crate) fn write_batch(&mut self) -> Result<(), StoreError> {
        let batch = std::mem::take(&mut self.batch);
        self.in_batch = 0;
        self.tree
            .apply_batch(batch)
            .map_err(sled_error("stage records"))
    }

    /// Makes this version the published one, durably, and deletes the previous one.
    /// The caller has verified the version (closing SOA, serial, apex NS...).
    pub async fn publish(self, serial: u32) -> Result<Published, StoreError> {
        let digest = self.digest.clone().finish();
        let mut named = [0u8; 32];
        named.copy_from_slice(digest.as_ref());
        self.publish_as(serial, named, None).await
    }

    /// [`Staging::publish`] of a version named by `digest`, made by `step` (the
    /// incremental transfer it holds the result of), if any.
    pub(crate) async fn publish_as(
        mut self,
        serial: u32,
        digest: [u8; 32],
        step: Option<Vec<u8>>,
    ) -> Result<Published, StoreError> {
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
            digest,
            delta: 0,
        };
        self.store.point(&self.zone, &published, step).await?;
        self.finished = true;
        Ok(published)
    }
}

impl Store {
    /// Makes `published` the version of `zone`, with the `step` that made it (or
    /// none), in one transaction, durably; then deletes the trees of the version it
    /// replaces that it does not use itself. Its trees are durable already.
    pub(crate) async fn point(
        &self,
        zone: &str,
        published: &Published,
        step: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let key = format!("{PUBLISHED_PREFIX}{zone}");
        let step_key = format!("{STEP_PREFIX}{zone}");
        let value = published.encode();
        let previous = self
            .db
            .transaction(|tx| {
                match &step {
                    Some(step) => tx.insert(step_key.as_bytes(), step.as_slice())?,
                    None => tx.remove(step_key.as_bytes())?,
                };
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
        self.db
            .flush_async()
            .await
            .map_err(sled_error("flush the published pointer"))?;
        if let Some(previous) = previous {
            let old = Published::decode(&key, &previous)?;
            for tree in old
                .trees()
                .filter(|t| !published.trees().any(|new| new == *t))
            {
                // If this fails or we crash first, `open` collects it next time.
                let _ = self.db.drop_tree(version_tree_name(zone, tree));
            }
        }
        Ok(())
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
