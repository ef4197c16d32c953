//! Zones in memory: reading RFC 1035 master files, the checks `named-checkzone` makes,
//! and the authoritative lookup of RFC 1034 §4.3.2.
//!
//! Invariant: this crate does no I/O. `$INCLUDE` files are read through a function
//! the caller passes in, so the daemon decides where files may come from.

mod canonical;
mod catalog;
mod error;
mod fit;
mod lookup;
pub mod master;
mod nodes;
mod query;
mod rrset;
mod zone;

pub use catalog::Catalog;
pub use error::{Location, ZoneError, ZoneWarning};
pub use fit::encode_to_fit;
pub use lookup::{Lookup, Rcode};
pub use query::{Rejection, checked_question};
pub use rrset::RRset;
pub use zone::{Zone, ZoneBuilder};
