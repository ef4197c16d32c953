//! DNSSEC signing for the authority (RFC 4033-4035, RFC 5155, RFC 9276): keys made
//! here, an NSEC or NSEC3 chain and RRSIGs over a zone version, with the previous
//! version's fresh signatures kept.
//!
//! Invariant: this crate does no I/O. The authority stores the keys and the signed
//! versions; this crate only turns records and keys into signed records.

mod bind_import;
mod chain;
mod incremental;
mod key;
mod policy;
mod previous;
mod rollover;
mod sign;

pub use bind_import::{ImportError, ImportedKey, import_bind_key};
pub use incremental::{Resign, ResignRequest, SignedChange, resign};
pub use key::{KeyError, KeyRole, KeyUse, PrivateKey, RSA_BITS, ZoneKey};
pub use policy::{DenialPolicy, INCEPTION_OFFSET, KeySplit, Policy};
pub use rollover::{Action, ManagedKey, Plan, Timing, plan, usage};
pub use sign::{
    SignError, SignRequest, Signed, is_signer_type, refresh_in, sign_zone, soa_unchanged,
};

#[cfg(test)]
mod tests;
