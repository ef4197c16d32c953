//! Versions made by incremental transfers (IXFR), stored as what they changed
//! rather than as a copy of the zone: a million-record zone changed by a thousand
//! records writes a thousand records, not a million.
//!
//! Such a version is its base (a version tree written whole) less the records
//! the steps since then removed, plus those they added: composed in one delta
//! tree, rewritten at each step. Past a share of the zone, the version is written
//! whole again and the delta starts afresh. The step that made the published
//! version is kept beside its pointer (`step/<zone>`), so that a watcher holding
//! the version before is sent the step, not the zone.
//!
//! A delta past a share of the zone makes every read filter more: the caller then
//! compacts the version off the path to serving ([`Store::compact`]: the same
//! version written whole, swapped in only if it is still the one published). A
//! single step past half the zone is written whole at once.

use std::collections::HashSet;

use crate::schema::*;
use crate::{Published, Store, StoreError, sled_error};

/// Delta records past which the version should be compacted: reading a version
/// filters every base record through the delta.
const MIN_DELTA: usize = 4096;

/// A published step, and whether its version should now be compacted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stepped {
    /// The version published.
    pub published: Published,
    /// Its delta has passed its share: call [`Store::compact`] (off the path to
    /// serving).
    pub compaction_due: bool,
}

/// One incremental transfer's net change to a zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The digest of the version it starts from.
    pub parent: [u8; 32],
    /// The records it removed, the old SOA first.
    pub removed: Vec<Vec<u8>>,
    /// The records it added, the new SOA first.
    pub added: Vec<Vec<u8>>,
}

impl Step {
    fn encode(&self) -> Vec<u8> {
        let mut out = self.parent.to_vec();
        encode_list(&mut out, &self.removed);
        encode_list(&mut out, &self.added);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let parent = *bytes.first_chunk::<32>()?;
        let mut at = 32;
        let removed = decode_list(bytes, &mut at)?;
        let added = decode_list(bytes, &mut at)?;
        (at == bytes.len()).then_some(Self {
            parent,
            removed,
            added,
        })
    }

    /// The name of the version it makes: its parent's name and itself, hashed.
    fn digest(&self, serial: u32) -> [u8; 32] {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(b"sextant step");
        context.update(&serial.to_be_bytes());
        context.update(&self.encode());
        let mut digest = [0u8; 32];
        digest.copy_from_slice(context.finish().as_ref());
        digest
    }
}

/// What the steps since the base changed, composed: `removed` are base records,
/// `added` are not; the SOA is among `added` and also kept apart (it leads the
/// version's records).
#[derive(Debug, Default)]
pub(crate) struct Delta {
    pub(crate) soa: Vec<u8>,
    pub(crate) removed: Vec<Vec<u8>>,
    pub(crate) added: Vec<Vec<u8>>,
}

impl Delta {
    /// Adds `step` on top.
    fn compose(&mut self, step: &Step) {
        let mut removed: HashSet<Vec<u8>> = std::mem::take(&mut self.removed).into_iter().collect();
        let mut added: HashSet<Vec<u8>> = std::mem::take(&mut self.added).into_iter().collect();
        for record in &step.removed {
            // A record added by an earlier step is simply no longer added.
            if !added.remove(record) {
                removed.insert(record.clone());
            }
        }
        for record in &step.added {
            // A base record removed by an earlier step is back.
            if !removed.remove(record) {
                added.insert(record.clone());
            }
        }
        self.removed = removed.into_iter().collect();
        self.added = added.into_iter().collect();
        if let Some(soa) = step.added.first() {
            self.soa = soa.clone();
        }
    }
}

impl Store {
    /// Publishes the published version of `zone` changed by `removed` and `added`
    /// (the old SOA first in one, the new SOA first in the other) as the version of
    /// `serial`. The caller has checked the change against the published version:
    /// every removed record is in it, no added one is.
    pub async fn publish_step(
        &self,
        zone: &str,
        serial: u32,
        removed: Vec<Vec<u8>>,
        added: Vec<Vec<u8>>,
    ) -> Result<Stepped, StoreError> {
        let key = format!("{PUBLISHED_PREFIX}{zone}");
        let current = self.published(zone)?.ok_or_else(|| StoreError::Corrupt {
            key: key.clone(),
            what: "an incremental transfer needs a published version to change",
        })?;
        let step = Step {
            parent: current.digest,
            removed,
            added,
        };
        let digest = step.digest(serial);
        let records = (current.records + step.added.len() as u64)
            .checked_sub(step.removed.len() as u64)
            .ok_or_else(|| StoreError::Corrupt {
                key: key.clone(),
                what: "a step removes more records than the version holds",
            })?;
        let mut delta = match current.delta {
            0 => Delta::default(),
            id => self.delta(zone, id)?,
        };
        delta.compose(&step);
        let encoded_step = step.encode();
        let delta_records = delta.removed.len() + delta.added.len();
        if delta_records > MIN_DELTA.max(records as usize / 2) {
            let published = self
                .write_whole(zone, serial, digest, &step, encoded_step)
                .await?;
            return Ok(Stepped {
                published,
                compaction_due: false,
            });
        }
        let compaction_due = delta_records > MIN_DELTA.max(records as usize / 8);
        let (id, name, tree) = self.new_tree(zone)?;
        let mut batch = sled::Batch::default();
        for (key, list) in [(DELTA_REMOVED, &delta.removed), (DELTA_ADDED, &delta.added)] {
            let mut value = Vec::new();
            encode_list(&mut value, list);
            batch.insert(key, value);
        }
        batch.insert(DELTA_SOA, delta.soa.as_slice());
        let written = tree
            .apply_batch(batch)
            .map_err(sled_error(format!("write {name}")));
        let durable = match written {
            Ok(()) => tree
                .flush_async()
                .await
                .map_err(sled_error(format!("flush {name}"))),
            Err(error) => Err(error),
        };
        let published = Published {
            version: current.version,
            serial,
            records,
            digest,
            delta: id,
        };
        let pointed = match durable {
            Ok(_) => self.point(zone, &published, Some(encoded_step)).await,
            Err(error) => Err(error),
        };
        if let Err(error) = pointed {
            // Not published: the new delta tree is garbage (`open` would collect it).
            let _ = self.db.drop_tree(name);
            return Err(error);
        }
        Ok(Stepped {
            published,
            compaction_due,
        })
    }

    /// Writes `zone`'s published version whole, as a base without delta, and
    /// publishes it in its place if it is still the one published when written (a
    /// step published meanwhile wins; the copy is dropped). Same serial, digest and
    /// step: watchers see no new version. Blocking: call it off the async threads.
    /// `None` when there was nothing to compact or the version moved on.
    pub fn compact(&self, zone: &str) -> Result<Option<Published>, StoreError> {
        let key = format!("{PUBLISHED_PREFIX}{zone}");
        let Some(current) = self.published(zone)?.filter(|p| p.delta != 0) else {
            return Ok(None);
        };
        let mut staging = self.begin(zone)?;
        self.copy_published(zone, &mut staging, None, &HashSet::new())?;
        staging.close_chunk();
        staging.write_batch()?;
        staging
            .tree
            .flush()
            .map_err(sled_error("flush a compacted version"))?;
        if staging.records != current.records {
            return Err(StoreError::Corrupt {
                key,
                what: "a compacted version's record count differs from the published count",
            });
        }
        let compacted = Published {
            version: staging.version,
            delta: 0,
            ..current
        };
        let (expected, value) = (current.encode(), compacted.encode());
        let swapped = self
            .db
            .transaction(|tx| {
                if tx.get(key.as_bytes())?.as_deref() != Some(&expected[..]) {
                    return Ok(false);
                }
                tx.insert(key.as_bytes(), &value[..])?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(true)
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(cause) => StoreError::Sled {
                    context: format!("compact {key}"),
                    cause,
                },
                sled::transaction::TransactionError::Abort(()) => StoreError::Corrupt {
                    key: key.clone(),
                    what: "compaction transaction aborted",
                },
            })?;
        if !swapped {
            // Dropped with `staging`.
            return Ok(None);
        }
        self.db
            .flush()
            .map_err(sled_error("flush the compacted pointer"))?;
        staging.finished = true;
        for tree in current.trees() {
            // If this fails or we crash first, `open` collects it next time.
            let _ = self.db.drop_tree(version_tree_name(zone, tree));
        }
        Ok(Some(compacted))
    }

    /// The published version with `step` applied, written whole as a new base.
    async fn write_whole(
        &self,
        zone: &str,
        serial: u32,
        digest: [u8; 32],
        step: &Step,
        encoded_step: Vec<u8>,
    ) -> Result<Published, StoreError> {
        let gone: HashSet<&[u8]> = step.removed.iter().map(Vec::as_slice).collect();
        let mut staging = self.begin(zone)?;
        // The new SOA leads, as in every version.
        let soa = step.added.first().map(Vec::as_slice);
        self.copy_published(zone, &mut staging, soa, &gone)?;
        for record in step.added.iter().skip(1) {
            staging.push(record)?;
        }
        staging.publish_as(serial, digest, Some(encoded_step)).await
    }

    /// Pushes the published version of `zone` onto `staging`: `first` before it,
    /// the records in `gone` left out.
    fn copy_published(
        &self,
        zone: &str,
        staging: &mut crate::Staging<'_>,
        first: Option<&[u8]>,
        gone: &HashSet<&[u8]>,
    ) -> Result<(), StoreError> {
        if let Some(first) = first {
            staging.push(first)?;
        }
        let mut failed = None;
        self.for_each_records(zone, &mut |records| {
            for record in records.iter().filter(|r| !gone.contains(r.as_slice())) {
                if let Err(error) = staging.push(record) {
                    failed = Some(error);
                    return false;
                }
            }
            true
        })?;
        failed.map_or(Ok(()), Err)
    }

    /// The step that made the published version of `zone`, if an incremental
    /// transfer made it.
    pub fn step(&self, zone: &str) -> Result<Option<Step>, StoreError> {
        let key = format!("{STEP_PREFIX}{zone}");
        let Some(bytes) = self
            .db
            .get(&key)
            .map_err(sled_error(format!("read {key}")))?
        else {
            return Ok(None);
        };
        Step::decode(&bytes).map(Some).ok_or(StoreError::Corrupt {
            key,
            what: "a step does not decode",
        })
    }

    pub(crate) fn delta(&self, zone: &str, id: u64) -> Result<Delta, StoreError> {
        let name = version_tree_name(zone, id);
        let tree = self
            .db
            .open_tree(&name)
            .map_err(sled_error(format!("open {name}")))?;
        let corrupt = |what| StoreError::Corrupt {
            key: name.clone(),
            what,
        };
        let read = |key: &[u8]| {
            tree.get(key)
                .map_err(sled_error(format!("read {name}")))?
                .ok_or_else(|| corrupt("a delta entry is missing"))
        };
        let list = |key: &[u8]| -> Result<Vec<Vec<u8>>, StoreError> {
            let bytes = read(key)?;
            let mut at = 0;
            decode_list(&bytes, &mut at)
                .filter(|_| at == bytes.len())
                .ok_or_else(|| corrupt("a delta list does not decode"))
        };
        Ok(Delta {
            soa: read(DELTA_SOA)?.to_vec(),
            removed: list(DELTA_REMOVED)?,
            added: list(DELTA_ADDED)?,
        })
    }
}
