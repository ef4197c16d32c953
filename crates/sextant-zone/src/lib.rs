//! Zones in memory: reading RFC 1035 master files, the checks `named-checkzone` makes,
//! and the authoritative lookup of RFC 1034 §4.3.2.
//!
//! Invariant: this crate does no I/O. `$INCLUDE` files are read through a function
//! the caller passes in, so the daemon decides where files may come from.

mod apply;
mod canonical;
mod catalog;
mod chain_check;
mod differences;
mod error;
mod lookup;
mod master;
mod neighbours;
mod nodes;
mod nsec3;
mod proofs;
mod rrset;
mod signed;
mod snapshot;
mod zone;

pub use catalog::Catalog;
pub use differences::Differences;
pub use error::{Location, ZoneError, ZoneWarning};
pub use lookup::{Lookup, Outcome, Part};
pub use master::{LocatedRecord, Progress, ReadInclude, parse};
pub use neighbours::name_of_key;
use rrset::RRset;
pub use snapshot::{SNAPSHOT_FORMAT, SnapshotReader};
pub use zone::{Zone, ZoneBuilder};

/// The bytes whose plain order is the canonical DNS order of names (RFC 4034 §6.1):
/// labels from the root down, lower-cased, each closed by a 0 byte (0 and 1 escaped).
/// Comparing them is a `memcmp`, comparing `Name`s walks labels backwards.
pub fn canonical_key(name: &hickory_proto::rr::Name) -> Box<[u8]> {
    canonical::key(name)
}
