//! A `[[dnssec_policy]]` section turned into the signer's terms, once: the
//! configuration's strings become enums here so that nothing below compares text.

use std::time::Duration;

use hickory_proto::dnssec::Algorithm;
use sextant_config::DnssecPolicyConfig;

/// How the zone's keys divide the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySplit {
    /// One combined signing key signs every RRset.
    Csk,
    /// A key-signing key signs the DNSKEY RRset, a zone-signing key the rest.
    KskZsk,
}

/// The proof of non-existence the zone carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DenialPolicy {
    /// NSEC (RFC 4034 §4).
    Nsec,
    /// NSEC3 (RFC 5155) with these parameters.
    Nsec3 {
        /// Extra hash iterations.
        iterations: u16,
        /// Salt length in bytes; a new random salt each time the chain is made.
        salt_length: u8,
        /// Unsigned delegations get no NSEC3 record.
        opt_out: bool,
    },
}

/// A signing policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The policy's name, for messages.
    pub name: String,
    /// The algorithm of every key.
    pub algorithm: Algorithm,
    /// CSK or KSK + ZSK.
    pub split: KeySplit,
    /// NSEC or NSEC3.
    pub denial: DenialPolicy,
    /// How long a new signature is valid.
    pub validity: Duration,
    /// A signature with less than this left is made again.
    pub refresh: Duration,
    /// TTL of the DNSKEY RRset.
    pub dnskey_ttl: u32,
    /// How long a zone-signing key is used; zero: for good.
    pub zsk_lifetime: Duration,
    /// How long a key-signing (or combined) key is used; zero: for good.
    pub ksk_lifetime: Duration,
    /// How long a change takes to reach every secondary, on top of TTLs.
    pub propagation_delay: Duration,
    /// TTL of the zone's DS records at the parent.
    pub parent_ds_ttl: Duration,
}

/// Signatures start this long before they are made, so that validators whose
/// clocks are behind accept them (BIND and Knot do the same).
pub const INCEPTION_OFFSET: Duration = Duration::from_secs(3_600);

impl Policy {
    /// The policy a configuration section describes. The configuration's own check
    /// has rejected what is not understood; this says so again rather than guess.
    pub fn from_config(config: &DnssecPolicyConfig) -> Result<Self, String> {
        let algorithm = match config.algorithm.as_str() {
            "ecdsap256sha256" => Algorithm::ECDSAP256SHA256,
            "ed25519" => Algorithm::ED25519,
            "rsasha256" => Algorithm::RSASHA256,
            other => {
                return Err(format!(
                    "dnssec_policy {:?}: unknown algorithm {other:?}; use ecdsap256sha256, ed25519 or rsasha256",
                    config.name
                ));
            }
        };
        let split = match config.keys.as_str() {
            "csk" => KeySplit::Csk,
            "ksk-zsk" => KeySplit::KskZsk,
            other => {
                return Err(format!(
                    "dnssec_policy {:?}: keys {other:?} is not csk or ksk-zsk",
                    config.name
                ));
            }
        };
        let denial = match config.denial.as_str() {
            "nsec" => DenialPolicy::Nsec,
            "nsec3" => DenialPolicy::Nsec3 {
                iterations: config.nsec3_iterations,
                salt_length: config.nsec3_salt_length,
                opt_out: config.nsec3_opt_out,
            },
            other => {
                return Err(format!(
                    "dnssec_policy {:?}: denial {other:?} is not nsec3 or nsec",
                    config.name
                ));
            }
        };
        Ok(Self {
            name: config.name.clone(),
            algorithm,
            split,
            denial,
            validity: config.signature_validity,
            refresh: config.signature_refresh,
            dnskey_ttl: config.dnskey_ttl,
            zsk_lifetime: config.zsk_lifetime,
            ksk_lifetime: config.ksk_lifetime,
            propagation_delay: config.propagation_delay,
            parent_ds_ttl: config.parent_ds_ttl,
        })
    }

    /// The rollover waits for a zone whose largest TTL is `max_zone_ttl`.
    pub fn timing(&self, max_zone_ttl: Duration) -> crate::Timing {
        crate::Timing {
            dnskey_ttl: Duration::from_secs(u64::from(self.dnskey_ttl)),
            propagation: self.propagation_delay,
            max_zone_ttl,
            parent_ds_ttl: self.parent_ds_ttl,
            zsk_lifetime: self.zsk_lifetime,
            ksk_lifetime: self.ksk_lifetime,
        }
    }
}
