//! The certificate of the encrypted transports, DNS over TLS (RFC 7858) and DNS
//! over HTTPS (RFC 8484): read at start and again on SIGHUP. A new certificate
//! serves the connections made after it; those open keep the one they were made
//! with, and a file that does not load changes nothing.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use sextant_config::ListenerTlsConfig;
use tokio_rustls::TlsAcceptor;

/// Which encrypted transport a connection is for: each has its own ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encrypted {
    /// DNS over TLS: ALPN `dot` (RFC 7858 has none; clients that offer one offer it).
    Dot,
    /// DNS over HTTPS: HTTP/2, ALPN `h2`.
    Doh,
}

impl Encrypted {
    /// The `transport` label of metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Encrypted::Dot => "dot",
            Encrypted::Doh => "doh",
        }
    }
}

/// The server configurations in use, one per transport.
pub(crate) struct Certificates {
    dot: ArcSwap<ServerConfig>,
    doh: ArcSwap<ServerConfig>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Certificates")
    }
}

impl Certificates {
    /// Reads the certificate chain and key of `tls`.
    pub(crate) fn load(tls: &ListenerTlsConfig) -> anyhow::Result<Self> {
        let (dot, doh) = server_configs(tls)?;
        Ok(Self {
            dot: ArcSwap::from(dot),
            doh: ArcSwap::from(doh),
        })
    }

    /// Reads them again (SIGHUP); on an error the ones in use stay.
    pub(crate) fn reload(&self, tls: &ListenerTlsConfig) -> anyhow::Result<()> {
        let (dot, doh) = server_configs(tls)?;
        self.dot.store(dot);
        self.doh.store(doh);
        Ok(())
    }

    /// The acceptor for a new connection of `transport`.
    pub(crate) fn acceptor(&self, transport: Encrypted) -> TlsAcceptor {
        match transport {
            Encrypted::Dot => TlsAcceptor::from(self.dot.load_full()),
            Encrypted::Doh => TlsAcceptor::from(self.doh.load_full()),
        }
    }
}

fn server_configs(
    tls: &ListenerTlsConfig,
) -> anyhow::Result<(Arc<ServerConfig>, Arc<ServerConfig>)> {
    let certificates =
        sextant_config::tls::read_certificates(&tls.certificate).map_err(anyhow::Error::msg)?;
    let key = sextant_config::tls::read_key(&tls.key).map_err(anyhow::Error::msg)?;
    let config = |alpn: &[u8]| -> anyhow::Result<Arc<ServerConfig>> {
        // TLS 1.2 and 1.3 (RFC 8310 §9 asks for 1.2 at least), ring's ciphers.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certificates.clone(), key.clone_key())
            .map_err(|e| {
                anyhow::anyhow!(
                    "{} and {} do not make a usable certificate ({e}); give the key that belongs to the chain's first certificate",
                    tls.certificate.display(),
                    tls.key.display()
                )
            })?;
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Arc::new(config))
    };
    Ok((config(b"dot")?, config(b"h2")?))
}
