//! Reading the certificate chain and key of `[listener.tls]`: at `--check`, at
//! start and on SIGHUP, each failure as one sentence naming the file and the fix.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The certificates of a PEM file, the server's own first.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            format!(
                "{} cannot be read as PEM certificates ({e}); give the chain in PEM, the server's certificate first",
                path.display()
            )
        })?;
    if certificates.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the chain, the server's certificate first",
            path.display()
        ));
    }
    Ok(certificates)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        format!(
            "{} holds no PEM private key that can be read ({e}); give the key in PEM (PKCS#8, PKCS#1 or SEC1), readable by the listener",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn missing_or_empty_files_say_which_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = read_certificates(&missing).unwrap_err();
        assert!(error.contains("missing.pem"), "{error}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let error = read_certificates(&empty).unwrap_err();
        assert!(error.contains("holds no PEM certificate"), "{error}");
        let error = read_key(&empty).unwrap_err();
        assert!(error.contains("empty.pem"), "{error}");
    }
}
