//! The transfer daemon's store: zone versions in sled, staged where nobody reads them
//! and published by one small transaction, so that an interrupted transfer never
//! publishes half a zone.
//!
//! Invariant: the only crate that sees sled. Records are opaque bytes here; the
//! transfer daemon decides their encoding.
//!
//! Schema, version 3:
//! - default tree: `schema` → `3`; `published/<zone>` → version id (u64 BE), serial
//!   (u32 BE), record count (u64 BE), digest (32 bytes: what names the version, see
//!   [`Published::digest`]), delta id (u64 BE, 0 for none).
//! - default tree, optional: `step/<zone>` → the step (IXFR) that made the
//!   published version: its parent's digest, then the removed and the added
//!   records, each list as a count (u32 BE) of length-prefixed (u32 BE) records.
//! - default tree, optional: `refreshed/<zone>` → Unix time (u64 BE) of the last
//!   successful refresh, so that expiry counts from it across restarts.
//! - one tree per zone version, `version/<zone>/<id as 16 hex digits>`: key = chunk
//!   sequence number (u64 BE), value = a chunk of records in staging order, each as
//!   its length (u32 BE) and its bytes. Chunks of about 64 KiB, not one entry per
//!   record: sled copies a leaf node on every insert, so a million single-record
//!   inserts cost seconds where a few hundred chunk inserts cost milliseconds.
//!   (Schema 1 stored one record per entry, schema 2 had no digests and no deltas;
//!   such a store is emptied at open and its zones transferred again.)
//! - one delta tree per version made by incremental transfers, named like a version
//!   tree: `soa` → the version's SOA record, `removed` → the base records it lacks,
//!   `added` → the records it has beyond the base (lists as in `step/`). See `step`.
//!
//! - one tree per primary zone, `journal/<zone>`: the IXFR journal (see `journal`).
//!
//! Modules: `schema` (the names and encodings above), `store` (opening, reading,
//! garbage collection), `staging` (writing a version and publishing it), `step`
//! (versions made by incremental transfers), `journal`.
//!
//! Discipline: records go into a fresh version tree in batches; `publish` flushes
//! them, flips `published/<zone>` in one transaction, flushes again, and only then
//! drops the previous version. A crash at any point leaves either the old or the new
//! version published, whole; `open` deletes every version tree no zone points at.
//! A step is published the same way: its delta tree is written and flushed, then
//! the pointer (and the step beside it) flips in one transaction.

mod journal;
mod schema;
mod staging;
mod step;
mod store;

pub use journal::Diff;
pub use schema::Published;
pub use staging::Staging;
pub use step::{Step, Stepped};
pub use store::{Cleanup, Store};

/// What the store can fail with; each says what happens next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("store {context}: {cause}")]
    Sled {
        /// What the store was doing.
        context: String,
        /// sled's error.
        cause: sled::Error,
    },
    /// The store was written by a build with another schema.
    #[error(
        "store at {path} has schema {found:?}, this build reads schema {schema}; restore a matching backup or start with an empty state directory"
    )]
    Schema {
        /// The store's directory.
        path: String,
        /// The schema found.
        found: String,
        /// The schema this build reads.
        schema: &'static str,
    },
    /// An entry does not decode.
    #[error("store entry {key} is corrupt ({what}); the zone will be transferred again")]
    Corrupt {
        /// The entry's key.
        key: String,
        /// What is wrong with it.
        what: &'static str,
    },
}

fn sled_error(context: impl Into<String>) -> impl FnOnce(sled::Error) -> StoreError {
    let context = context.into();
    move |cause| StoreError::Sled { context, cause }
}

#[cfg(test)]
mod tests;
