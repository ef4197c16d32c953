//! Signing keys: made here (no external tool), held as PKCS#8 in memory that is
//! wiped when dropped, and never printed: `Debug` shows the algorithm, role and
//! tag only, so a key cannot reach a log line by accident.

use hickory_proto::dnssec::crypto::{EcdsaSigningKey, Ed25519SigningKey, RsaSigningKey};
use hickory_proto::dnssec::rdata::{CDNSKEY, CDS, DNSKEY, DS};
use hickory_proto::dnssec::{Algorithm, DigestType, PublicKey, SigningKey, Verifier};
use hickory_proto::rr::Name;
use rustls_pki_types::PrivatePkcs8KeyDer;
use zeroize::Zeroizing;

/// RSA modulus size of keys made here (RFC 8624 §3.1 recommends 2048 bits).
pub const RSA_BITS: usize = 2048;

/// What a key signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyRole {
    /// Everything: the DNSKEY RRset and the zone's data (flags 257).
    Csk,
    /// The DNSKEY RRset (flags 257, the secure entry point the parent's DS names).
    Ksk,
    /// Everything but the DNSKEY RRset (flags 256).
    Zsk,
}

impl KeyRole {
    /// The DNSKEY flags (RFC 4034 §2.1.1): Zone Key, plus SEP for key-signing keys.
    pub fn flags(self) -> u16 {
        match self {
            KeyRole::Csk | KeyRole::Ksk => 257,
            KeyRole::Zsk => 256,
        }
    }

    /// Whether it signs the DNSKEY (and CDS/CDNSKEY) RRsets.
    pub fn signs_keys(self) -> bool {
        matches!(self, KeyRole::Csk | KeyRole::Ksk)
    }

    /// Whether it signs the zone's other RRsets.
    pub fn signs_zone(self) -> bool {
        matches!(self, KeyRole::Csk | KeyRole::Zsk)
    }

    /// The name used in state files and `sextantctl`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::Csk => "csk",
            KeyRole::Ksk => "ksk",
            KeyRole::Zsk => "zsk",
        }
    }

    /// The role named by [`KeyRole::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "csk" => Some(KeyRole::Csk),
            "ksk" => Some(KeyRole::Ksk),
            "zsk" => Some(KeyRole::Zsk),
            _ => None,
        }
    }
}

/// Why a key could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The algorithm has no key maker or signer here.
    #[error(
        "algorithm {0} is not supported for signing; use ECDSAP256SHA256, ED25519 or RSASHA256"
    )]
    Unsupported(Algorithm),
    /// Generating a key failed (the system's random source, or the library).
    #[error("making a {algorithm} key failed: {reason}")]
    Generate {
        /// The algorithm asked for.
        algorithm: Algorithm,
        /// What failed.
        reason: String,
    },
    /// Stored key material does not decode as a key of its algorithm.
    #[error(
        "the stored {algorithm} key does not decode ({reason}); restore it from a backup or remove the zone's keys to start over (a rollover)"
    )]
    Decode {
        /// The algorithm it should be.
        algorithm: Algorithm,
        /// What the decoder said.
        reason: String,
    },
}

/// A private key as PKCS#8 DER.
pub struct PrivateKey {
    algorithm: Algorithm,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// A new random key.
    pub fn generate(algorithm: Algorithm) -> Result<Self, KeyError> {
        let failed = |reason: String| KeyError::Generate { algorithm, reason };
        let pkcs8: Vec<u8> = match algorithm {
            Algorithm::ECDSAP256SHA256 => EcdsaSigningKey::generate_pkcs8(algorithm)
                .map_err(|e| failed(e.to_string()))?
                .secret_pkcs8_der()
                .to_vec(),
            Algorithm::ED25519 => Ed25519SigningKey::generate_pkcs8()
                .map_err(|e| failed(e.to_string()))?
                .secret_pkcs8_der()
                .to_vec(),
            Algorithm::RSASHA256 => {
                use rsa::pkcs8::EncodePrivateKey;
                let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
                    .map_err(|e| failed(e.to_string()))?;
                key.to_pkcs8_der()
                    .map_err(|e| failed(e.to_string()))?
                    .as_bytes()
                    .to_vec()
            }
            other => return Err(KeyError::Unsupported(other)),
        };
        let key = Self {
            algorithm,
            pkcs8: Zeroizing::new(pkcs8),
        };
        // A key that cannot sign is caught here, not at the first signature.
        key.signer()?;
        Ok(key)
    }

    /// A key from stored PKCS#8 bytes.
    pub fn from_pkcs8(algorithm: Algorithm, pkcs8: Vec<u8>) -> Result<Self, KeyError> {
        let key = Self {
            algorithm,
            pkcs8: Zeroizing::new(pkcs8),
        };
        key.signer()?;
        Ok(key)
    }

    /// The PKCS#8 bytes, to store.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn signer(&self) -> Result<Box<dyn SigningKey>, KeyError> {
        let der = PrivatePkcs8KeyDer::from(self.pkcs8.as_slice());
        let decode = |reason: String| KeyError::Decode {
            algorithm: self.algorithm,
            reason,
        };
        Ok(match self.algorithm {
            Algorithm::ECDSAP256SHA256 => Box::new(
                EcdsaSigningKey::from_pkcs8(&der, self.algorithm)
                    .map_err(|e| decode(e.to_string()))?,
            ),
            Algorithm::ED25519 => {
                Box::new(Ed25519SigningKey::from_pkcs8(&der).map_err(|e| decode(e.to_string()))?)
            }
            Algorithm::RSASHA256 => Box::new(
                RsaSigningKey::from_pkcs8(&der, self.algorithm)
                    .map_err(|e| decode(e.to_string()))?,
            ),
            other => return Err(KeyError::Unsupported(other)),
        })
    }
}

/// What a key does in the zone now: a key being rolled in or out is published
/// without signing, or signs the DNSKEY RRset without being the one the parent's
/// DS should name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyUse {
    /// Its DNSKEY is in the zone.
    pub publish: bool,
    /// It signs the DNSKEY, CDS and CDNSKEY RRsets.
    pub sign_keyset: bool,
    /// It signs the zone's other RRsets.
    pub sign_zone: bool,
    /// The CDS and CDNSKEY records name it (the DS the parent should have).
    pub ds: bool,
}

impl KeyUse {
    /// What a key of `role` does when it is the zone's only key of that role.
    pub fn of(role: KeyRole) -> Self {
        Self {
            publish: true,
            sign_keyset: role.signs_keys(),
            sign_zone: role.signs_zone(),
            ds: role.signs_keys(),
        }
    }
}

/// A key ready to sign with for one zone: its role, its DNSKEY and key tag, and
/// what it does now.
pub struct ZoneKey {
    role: KeyRole,
    dnskey: DNSKEY,
    tag: u16,
    signer: Box<dyn SigningKey>,
    usage: KeyUse,
}

impl std::fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneKey")
            .field("role", &self.role)
            .field("tag", &self.tag)
            .field("algorithm", &self.dnskey.algorithm())
            .field("usage", &self.usage)
            .finish_non_exhaustive()
    }
}

impl ZoneKey {
    /// `private` in `role`.
    pub fn new(role: KeyRole, private: &PrivateKey) -> Result<Self, KeyError> {
        let signer = private.signer()?;
        let public = signer.to_public_key().map_err(|e| KeyError::Decode {
            algorithm: private.algorithm,
            reason: e.to_string(),
        })?;
        let dnskey = DNSKEY::with_flags(role.flags(), public);
        let tag = dnskey.calculate_key_tag().map_err(|e| KeyError::Decode {
            algorithm: private.algorithm,
            reason: e.to_string(),
        })?;
        Ok(Self {
            role,
            dnskey,
            tag,
            signer,
            usage: KeyUse::of(role),
        })
    }

    /// The key doing `usage` instead of what its role alone implies.
    pub fn with_use(mut self, usage: KeyUse) -> Self {
        self.usage = usage;
        self
    }

    /// What it does now.
    pub fn usage(&self) -> KeyUse {
        self.usage
    }

    /// What it signs.
    pub fn role(&self) -> KeyRole {
        self.role
    }

    /// Its DNSKEY record data.
    pub fn dnskey(&self) -> &DNSKEY {
        &self.dnskey
    }

    /// Its key tag (RFC 4034 Appendix B).
    pub fn tag(&self) -> u16 {
        self.tag
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.dnskey.algorithm()
    }

    /// The DS record the parent of `zone` publishes for this key (SHA-256, the
    /// digest every validator supports, RFC 8624 §3.3).
    pub fn ds(&self, zone: &Name) -> Result<DS, KeyError> {
        let digest = self
            .dnskey
            .to_digest(zone, DigestType::SHA256)
            .map_err(|e| KeyError::Decode {
                algorithm: self.algorithm(),
                reason: e.to_string(),
            })?;
        Ok(DS::new(
            self.tag,
            self.algorithm(),
            DigestType::SHA256,
            digest.as_ref().to_vec(),
        ))
    }

    /// The CDS record asking the parent for [`ZoneKey::ds`] (RFC 7344).
    pub fn cds(&self, zone: &Name) -> Result<CDS, KeyError> {
        let ds = self.ds(zone)?;
        Ok(CDS::new(
            ds.key_tag(),
            Some(ds.algorithm()),
            ds.digest_type(),
            ds.digest().to_vec(),
        ))
    }

    /// The CDNSKEY record: this key, for parents that make the DS themselves.
    pub fn cdnskey(&self) -> CDNSKEY {
        CDNSKEY::with_flags(
            self.dnskey.flags(),
            Some(self.algorithm()),
            self.dnskey.public_key().public_bytes().to_vec(),
        )
    }

    pub(crate) fn sign(&self, tbs: &hickory_proto::dnssec::TBS) -> Result<Vec<u8>, String> {
        self.signer.sign(tbs).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_of_each_algorithm_are_made_stored_and_read_back_with_the_same_tag() {
        for algorithm in [
            Algorithm::ECDSAP256SHA256,
            Algorithm::ED25519,
            Algorithm::RSASHA256,
        ] {
            let key = PrivateKey::generate(algorithm).unwrap();
            let stored = key.pkcs8().to_vec();
            let again = PrivateKey::from_pkcs8(algorithm, stored).unwrap();
            let first = ZoneKey::new(KeyRole::Ksk, &key).unwrap();
            let second = ZoneKey::new(KeyRole::Ksk, &again).unwrap();
            assert_eq!(first.tag(), second.tag(), "{algorithm}");
            assert_eq!(first.dnskey().flags(), 257);
            assert_eq!(
                ZoneKey::new(KeyRole::Zsk, &key).unwrap().dnskey().flags(),
                256
            );
        }
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let key = PrivateKey::generate(Algorithm::ED25519).unwrap();
        let text = format!("{key:?} {:?}", ZoneKey::new(KeyRole::Csk, &key).unwrap());
        let hex: String = key.pkcs8().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!text.contains(&hex[hex.len() - 16..]), "{text}");
        assert!(!text.contains("pkcs8"), "{text}");
    }

    #[test]
    fn garbage_is_not_a_key() {
        let error = PrivateKey::from_pkcs8(Algorithm::ECDSAP256SHA256, vec![1, 2, 3]).unwrap_err();
        assert!(error.to_string().contains("does not decode"), "{error}");
    }
}
