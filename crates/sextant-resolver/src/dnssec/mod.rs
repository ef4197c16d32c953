//! DNSSEC validation (RFC 4033-4035, RFC 5155, RFC 6840): what a validated answer
//! is (`Security`), how a signature is checked (`verify`), how a denial of existence
//! is proven (`denial`) and where trust starts (`anchors`). The chain of trust
//! itself, which needs the network, is `chain` in the resolver proper.

mod anchors;
mod denial;
#[cfg(test)]
mod tests;
mod verify;

#[cfg(test)]
pub(crate) use anchors::decoded as anchors_decoded;
pub(crate) use anchors::{NegativeAnchors, TrustAnchors};
pub(crate) use denial::{Denial, deny, proves_expansion};
pub(crate) use verify::{Clock, Work, ZoneKey, key_matches_ds, signatures_for, verify_rrset};

use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS, RRSIG};
use hickory_proto::rr::{RData, Record};
use sextant_wire::ExtendedError;

/// What validation concluded about a piece of data (RFC 4035 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Security {
    /// Signed, and every signature up to a trust anchor checks out.
    Secure,
    /// Provably unsigned: below a proven insecure delegation, a negative trust
    /// anchor, an algorithm we cannot check, or outside every trust anchor.
    Insecure,
    /// Should be signed and is not, or the signatures do not check out.
    Bogus(Bogus),
    /// Not validated: validation is off, or the client asked for CD=1.
    Indeterminate,
}

impl Security {
    /// The security of an answer made of parts: bogus if one part is, secure only if
    /// every part is.
    pub(crate) fn and(self, other: Security) -> Security {
        use Security::{Bogus, Indeterminate, Insecure, Secure};
        match (self, other) {
            (Bogus(why), _) | (_, Bogus(why)) => Bogus(why),
            (Indeterminate, _) | (_, Indeterminate) => Indeterminate,
            (Insecure, _) | (_, Insecure) => Insecure,
            (Secure, Secure) => Secure,
        }
    }
}

/// Why data is bogus; each maps to its Extended DNS Error (RFC 8914 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Bogus {
    #[error("a signature does not verify")]
    Signature,
    #[error("every signature has expired")]
    Expired,
    #[error("no signature is valid yet")]
    NotYetValid,
    #[error("no DNSKEY matches the DS records or the signatures")]
    DnskeyMissing,
    #[error("the data is not signed although its zone is")]
    RrsigsMissing,
    #[error("the denial of existence is not proven")]
    NsecMissing,
    #[error("the validation work limit for one query was reached")]
    WorkLimit,
    #[error("the DNSKEY or DS records could not be fetched")]
    Unreachable,
}

impl Bogus {
    /// The Extended DNS Error a client gets with the SERVFAIL.
    pub(crate) fn extended_error(self) -> ExtendedError {
        let code = match self {
            Bogus::Signature | Bogus::WorkLimit | Bogus::Unreachable => 6,
            Bogus::Expired => 7,
            Bogus::NotYetValid => 8,
            Bogus::DnskeyMissing => 9,
            Bogus::RrsigsMissing => 10,
            Bogus::NsecMissing => 12,
        };
        let text = match self {
            Bogus::Signature => "DNSSEC bogus: a signature does not verify",
            Bogus::WorkLimit => "DNSSEC bogus: validation work limit reached",
            Bogus::Unreachable => "DNSSEC bogus: keys could not be fetched",
            Bogus::Expired => "DNSSEC signature expired",
            Bogus::NotYetValid => "DNSSEC signature not yet valid",
            Bogus::DnskeyMissing => "DNSKEY missing: no key matches the DS",
            Bogus::RrsigsMissing => "RRSIGs missing in a signed zone",
            Bogus::NsecMissing => "NSEC/NSEC3 proof missing",
        };
        ExtendedError { code, text }
    }

    /// A short name for metrics labels.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Bogus::Signature => "signature",
            Bogus::Expired => "expired",
            Bogus::NotYetValid => "not_yet_valid",
            Bogus::DnskeyMissing => "dnskey_missing",
            Bogus::RrsigsMissing => "rrsigs_missing",
            Bogus::NsecMissing => "nsec_missing",
            Bogus::WorkLimit => "work_limit",
            Bogus::Unreachable => "unreachable",
        }
    }
}

pub(crate) fn rrsig(record: &Record) -> Option<&RRSIG> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::RRSIG(sig)) => Some(sig),
        _ => None,
    }
}

pub(crate) fn dnskey(record: &Record) -> Option<&DNSKEY> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::DNSKEY(key)) => Some(key),
        _ => None,
    }
}

pub(crate) fn ds(record: &Record) -> Option<&DS> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::DS(ds)) => Some(ds),
        _ => None,
    }
}
