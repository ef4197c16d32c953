//! Zones in memory: reading RFC 1035 master files, the checks `named-checkzone` makes,
//! and the authoritative lookup of RFC 1034 §4.3.2.
//!
//! Invariant: this crate does no I/O. `$INCLUDE` files are read through a function
//! the caller passes in, so the daemon decides where files may come from.

mod canonical;
mod catalog;
mod error;
mod lookup;
mod master;
mod nodes;
mod nsec3;
mod proofs;
mod rrset;
mod signed;
mod zone;

pub use catalog::Catalog;
pub use error::{Location, ZoneError, ZoneWarning};
pub use lookup::{Lookup, Outcome, Part};
pub use master::{LocatedRecord, Progress, ReadInclude, parse};
use rrset::RRset;
pub use zone::{Zone, ZoneBuilder};
