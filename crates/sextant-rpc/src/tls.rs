//! Mutual TLS 1.3 for gRPC over TCP (`[grpc]` ca, certificate, key): every `tcp:`
//! endpoint a daemon serves asks for a client certificate chaining to the CA, and
//! every one it dials presents this host's certificate and checks the server's
//! against the CA and the IP address dialled. Unix sockets are left as they are
//! (file permissions guard them).
//!
//! The settings are the process's, like its tracer: installed at start and again on
//! SIGHUP. A new handshake uses the settings of its moment; connections already made
//! keep theirs, so a reload drops nothing.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sextant_config::{GrpcConfig, GrpcTlsFiles};

/// The process's mutual TLS, when configured.
static CURRENT: ArcSwapOption<Settings> = ArcSwapOption::const_empty();

/// Both ends of this host's mutual TLS.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) server: Arc<ServerConfig>,
    pub(crate) client: Arc<ClientConfig>,
}

/// Reads `[grpc]`'s files and makes them the process's (none: plaintext). On an
/// error the settings in use stay, and the error is one sentence naming the file.
/// Returns whether TLS is on.
pub fn install_grpc_tls(config: Option<&GrpcConfig>) -> Result<bool, String> {
    match config.and_then(GrpcConfig::tls) {
        Some(files) => {
            CURRENT.store(Some(Arc::new(load(&files)?)));
            Ok(true)
        }
        None => {
            CURRENT.store(None);
            Ok(false)
        }
    }
}

/// The settings in use now.
pub(crate) fn current() -> Option<Arc<Settings>> {
    CURRENT.load_full()
}

fn load(files: &GrpcTlsFiles<'_>) -> Result<Settings, String> {
    let ca = sextant_config::tls::read_certificates(files.ca)?;
    let chain = sextant_config::tls::read_certificates(files.certificate)?;
    let key = sextant_config::tls::read_key(files.key)?;
    let mut roots = RootCertStore::empty();
    for certificate in ca {
        roots.add(certificate).map_err(|e| {
            format!(
                "{} is not a usable CA certificate ({e}); give the PEM of the CA that signed every daemon's certificate",
                files.ca.display()
            )
        })?;
    }
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pair_error = |e: rustls::Error| {
        format!(
            "{} and {} do not make a usable certificate ({e}); give the key that belongs to the chain's first certificate",
            files.certificate.display(),
            files.key.display()
        )
    };
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| format!("{}: {e}", files.ca.display()))?;
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(pair_error)?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(pair_error)?;
    client.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Settings {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}
