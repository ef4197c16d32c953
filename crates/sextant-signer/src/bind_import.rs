//! Keys from BIND's `K<zone>+<alg>+<tag>.key` / `.private` pairs (private-key
//! format v1.x), so that a zone signed by BIND moves to Sextant with its keys: the
//! parent's DS stays right and no rollover is needed. Each key is turned into the
//! PKCS#8 form the signer keeps, and proven by its key tag: the one computed from
//! the converted key must be the one of the `.key` file.

use hickory_proto::dnssec::Algorithm;

use crate::key::{KeyRole, PrivateKey, ZoneKey};

/// Why a BIND key could not be taken over.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The `.key` file holds no DNSKEY record.
    #[error("{file}: no DNSKEY record found; give the K*.key file BIND wrote")]
    NoDnskey {
        /// The file.
        file: String,
    },
    /// A field the algorithm needs is missing or not base64.
    #[error("{file}: field {field} is missing or not base64; is this a BIND K*.private file?")]
    Field {
        /// The file.
        file: String,
        /// The field, e.g. `PrivateKey`.
        field: &'static str,
    },
    /// An algorithm the signer does not use.
    #[error(
        "{file}: algorithm {algorithm} cannot be imported; only ECDSAP256SHA256 (13), ED25519 (15) and RSASHA256 (8)"
    )]
    Algorithm {
        /// The file.
        file: String,
        /// Its algorithm number.
        algorithm: u8,
    },
    /// The converted key is not the key of the `.key` file.
    #[error(
        "{file}: the private key does not match its DNSKEY (tag {got}, expected {want}); are the .key and .private from the same pair?"
    )]
    Mismatch {
        /// The file.
        file: String,
        /// The tag of the converted key.
        got: u16,
        /// The tag of the DNSKEY.
        want: u16,
    },
    /// The key material was refused by the crypto library.
    #[error("{file}: {cause}")]
    Key {
        /// The file.
        file: String,
        /// What was refused.
        cause: String,
    },
}

/// A BIND key taken over.
#[derive(Debug)]
pub struct ImportedKey {
    /// The DNSKEY flags: 257 for a key-signing key, 256 for a zone-signing key.
    pub flags: u16,
    /// Its key tag (as BIND named it).
    pub tag: u16,
    /// The key, as the signer keeps it.
    pub private: PrivateKey,
}

/// The key of the `.key` text `public` and the `.private` text `private`; `file`
/// names them in errors.
pub fn import_bind_key(
    file: &str,
    public: &str,
    private: &str,
) -> Result<ImportedKey, ImportError> {
    let (flags, algorithm, public_key) = dnskey(file, public)?;
    let field = |name: &'static str| -> Result<Vec<u8>, ImportError> {
        private
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| data_encoding::BASE64.decode(value.trim().as_bytes()).ok())
            .ok_or(ImportError::Field {
                file: file.to_string(),
                field: name,
            })
    };
    let key_error = |cause: String| ImportError::Key {
        file: file.to_string(),
        cause,
    };
    let (algorithm, pkcs8) = match algorithm {
        13 => {
            let scalar = field("PrivateKey")?;
            (
                Algorithm::ECDSAP256SHA256,
                p256_pkcs8(&scalar, &public_key).map_err(key_error)?,
            )
        }
        15 => {
            let seed = field("PrivateKey")?;
            (
                Algorithm::ED25519,
                ed25519_pkcs8(&seed, &public_key).map_err(key_error)?,
            )
        }
        8 => {
            use rsa::pkcs8::EncodePrivateKey;
            let number = |name| field(name).map(|bytes| rsa::BigUint::from_bytes_be(&bytes));
            let key = rsa::RsaPrivateKey::from_components(
                number("Modulus")?,
                number("PublicExponent")?,
                number("PrivateExponent")?,
                vec![number("Prime1")?, number("Prime2")?],
            )
            .map_err(|e| key_error(e.to_string()))?;
            let der = key.to_pkcs8_der().map_err(|e| key_error(e.to_string()))?;
            (Algorithm::RSASHA256, der.as_bytes().to_vec())
        }
        other => {
            return Err(ImportError::Algorithm {
                file: file.to_string(),
                algorithm: other,
            });
        }
    };
    let private = PrivateKey::from_pkcs8(algorithm, pkcs8).map_err(|e| key_error(e.to_string()))?;
    let role = if flags & 1 == 1 {
        KeyRole::Ksk
    } else {
        KeyRole::Zsk
    };
    let converted = ZoneKey::new(role, &private).map_err(|e| key_error(e.to_string()))?;
    let want = hickory_proto::dnssec::rdata::DNSKEY::calculate_key_tag_internal(&dnskey_rdata(
        flags,
        algorithm,
        &public_key,
    ));
    if converted.tag() != want {
        return Err(ImportError::Mismatch {
            file: file.to_string(),
            got: converted.tag(),
            want,
        });
    }
    Ok(ImportedKey {
        flags,
        tag: want,
        private,
    })
}

/// Flags, algorithm and public key of the DNSKEY in a `.key` file.
fn dnskey(file: &str, text: &str) -> Result<(u16, u8, Vec<u8>), ImportError> {
    let missing = || ImportError::NoDnskey {
        file: file.to_string(),
    };
    let line = text
        .lines()
        .map(|l| l.split(';').next().unwrap_or_default())
        .find(|l| {
            l.split_whitespace()
                .any(|w| w.eq_ignore_ascii_case("DNSKEY"))
        })
        .ok_or_else(missing)?;
    let mut words = line
        .split_whitespace()
        .skip_while(|w| !w.eq_ignore_ascii_case("DNSKEY"))
        .skip(1);
    let flags = words
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or_else(missing)?;
    let _protocol = words.next();
    let algorithm = words
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or_else(missing)?;
    let key: String = words.collect();
    let key = data_encoding::BASE64
        .decode(key.as_bytes())
        .map_err(|_| missing())?;
    Ok((flags, algorithm, key))
}

/// A DNSKEY's RDATA: flags, protocol 3, algorithm, key.
fn dnskey_rdata(flags: u16, algorithm: Algorithm, key: &[u8]) -> Vec<u8> {
    let mut rdata = flags.to_be_bytes().to_vec();
    rdata.push(3);
    rdata.push(u8::from(algorithm));
    rdata.extend_from_slice(key);
    rdata
}

/// PKCS#8 (RFC 5208) of a P-256 key with its public point, as ring reads it.
fn p256_pkcs8(scalar: &[u8], public: &[u8]) -> Result<Vec<u8>, String> {
    if scalar.len() != 32 || public.len() != 64 {
        return Err(
            "an ECDSA P-256 key has a 32-byte private scalar and a 64-byte public key".into(),
        );
    }
    let mut der = vec![
        0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
        0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30,
        0x6b, 0x02, 0x01, 0x01, 0x04, 0x20,
    ];
    der.extend_from_slice(scalar);
    der.extend_from_slice(&[0xa1, 0x44, 0x03, 0x42, 0x00, 0x04]);
    der.extend_from_slice(public);
    Ok(der)
}

/// PKCS#8 v2 (RFC 8410) of an Ed25519 key with its public key, as ring reads it.
fn ed25519_pkcs8(seed: &[u8], public: &[u8]) -> Result<Vec<u8>, String> {
    if seed.len() != 32 || public.len() != 32 {
        return Err("an Ed25519 key has a 32-byte seed and a 32-byte public key".into());
    }
    let mut der = vec![
        0x30, 0x53, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(seed);
    der.extend_from_slice(&[0xa1, 0x23, 0x03, 0x21, 0x00]);
    der.extend_from_slice(public);
    Ok(der)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A pair written by `dnssec-keygen -a ECDSAP256SHA256 -f KSK example.com`.
    const KEY: &str = "example.com. IN DNSKEY 257 3 13 G7Zs/WX5fMPwQCl36aE4MxLU/zNG225YR5f1+BUn3ZmxLJFw4AlfLqOh g/n8xu8BDpyv2P3dJSgfDaxLBK/+eA==\n";
    const PRIVATE: &str = "Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: ph9MGy0SBBPs8JzVqQXBK2WqIuncrd0Cy6Bb8sAWt5k=\n";

    #[test]
    fn a_bind_ecdsa_key_keeps_its_tag() {
        let key = import_bind_key("Kexample.com.+013+59341", KEY, PRIVATE).unwrap();
        assert_eq!((key.flags, key.tag), (257, 59341));
    }

    #[test]
    fn a_private_key_of_another_pair_is_refused() {
        let other = PRIVATE.replace("ph9M", "AAAA");
        let error = import_bind_key("K", KEY, &other).unwrap_err().to_string();
        assert!(
            error.contains("does not match") || error.contains("does not decode"),
            "{error}"
        );
        let error = import_bind_key("K", KEY, "Algorithm: 13\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("PrivateKey"), "{error}");
    }
}
