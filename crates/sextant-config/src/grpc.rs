//! `[grpc]`: how the daemons' gRPC travels between hosts. Unix sockets (the
//! single-host default) are guarded by file permissions; a `tcp:` endpoint carries
//! mutual TLS 1.3 with the CA, certificate and key given here. Plain TCP is allowed
//! on loopback, and elsewhere only when the operator says so.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::validate::Problems;
use crate::{Config, Endpoint};

/// Mutual TLS for gRPC over TCP, read by every daemon and by `sextantctl`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// The CA (PEM) that signed every daemon's certificate: a peer is trusted when
    /// its certificate chains to it.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// This host's certificate chain (PEM), presented to peers both ways. Its
    /// subjectAltName holds the IP address other hosts dial it at.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// This host's private key (PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Allows plaintext gRPC on `tcp:` endpoints that are not loopback (a network
    /// the operator trusts wholly). Default false: such a configuration is refused.
    #[serde(default)]
    pub allow_plaintext: bool,
}

/// The three files of mutual TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcTlsFiles<'a> {
    /// The CA.
    pub ca: &'a Path,
    /// This host's certificate chain.
    pub certificate: &'a Path,
    /// Its key.
    pub key: &'a Path,
}

impl GrpcConfig {
    /// The files of mutual TLS, when all three are set.
    pub fn tls(&self) -> Option<GrpcTlsFiles<'_>> {
        Some(GrpcTlsFiles {
            ca: self.ca.as_deref()?,
            certificate: self.certificate.as_deref()?,
            key: self.key.as_deref()?,
        })
    }

    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        for path in [&mut self.ca, &mut self.certificate, &mut self.key]
            .into_iter()
            .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    pub(crate) fn validate(&self, problems: &mut Problems) {
        let set = [&self.ca, &self.certificate, &self.key]
            .iter()
            .filter(|p| p.is_some())
            .count();
        if set != 0 && set != 3 {
            problems.add(
                "grpc",
                "mutual TLS needs all of ca, certificate and key; give the three files, or none for Unix sockets only",
            );
        }
        if let Some(files) = self.tls() {
            let checks = [
                crate::tls::read_certificates(files.ca).map(|_| ()),
                crate::tls::read_certificates(files.certificate).map(|_| ()),
                crate::tls::read_key(files.key).map(|_| ()),
            ];
            for (key, check) in ["grpc.ca", "grpc.certificate", "grpc.key"]
                .into_iter()
                .zip(checks)
            {
                if let Err(message) = check {
                    problems.add(key, message);
                }
            }
        }
    }
}

impl Config {
    /// Every gRPC endpoint the file names, with its key.
    pub fn grpc_endpoints(&self) -> Vec<(&'static str, &Endpoint)> {
        let mut all = Vec::new();
        if let Some(listener) = &self.listener {
            all.extend(listener.authority.iter().map(|e| ("listener.authority", e)));
            all.extend(listener.resolver.iter().map(|e| ("listener.resolver", e)));
            all.extend(listener.transfer.iter().map(|e| ("listener.transfer", e)));
            all.extend(listener.control.iter().map(|e| ("listener.control", e)));
        }
        if let Some(authority) = &self.authority {
            all.push(("authority.grpc", &authority.grpc));
            all.extend(
                authority
                    .secondaries
                    .iter()
                    .map(|e| ("authority.secondaries", e)),
            );
        }
        if let Some(resolver) = &self.resolver {
            all.push(("resolver.grpc", &resolver.grpc));
        }
        if let Some(transfer) = &self.transfer {
            all.push(("transfer.grpc", &transfer.grpc));
        }
        all
    }

    /// A `tcp:` endpoint off loopback needs mutual TLS, or the operator's word.
    pub(crate) fn check_plaintext(&self, problems: &mut Problems) {
        let grpc = self.grpc.clone().unwrap_or_default();
        if grpc.tls().is_some() || grpc.allow_plaintext {
            return;
        }
        for (key, endpoint) in self.grpc_endpoints() {
            if let Endpoint::Tcp(address) = endpoint
                && !address.ip().is_loopback()
            {
                problems.add(
                    key,
                    format!(
                        "{endpoint} would carry queries and control in plaintext off this host; set [grpc] ca, certificate and key for mutual TLS, or allow_plaintext = true on a network you trust wholly"
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let mut config: Config = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        config.resolve_paths(Path::new("/nonexistent"));
        let mut problems = Problems::default();
        if let Some(grpc) = &config.grpc {
            grpc.validate(&mut problems);
        }
        config.check_plaintext(&mut problems);
        problems.into_vec().into_iter().map(|p| p.key).collect()
    }

    const REMOTE: &str = "[listener]\nlisten = [\"127.0.0.1:53\"]\nauthority = [\"unix:/a.sock\", \"tcp:198.18.0.2:7001\"]\n";

    #[test]
    fn plaintext_off_loopback_is_refused_unless_allowed() {
        assert_eq!(problems(REMOTE), ["listener.authority"]);
        assert!(problems(&format!("{REMOTE}\n[grpc]\nallow_plaintext = true\n")).is_empty());
        let local = "[listener]\nlisten = [\"127.0.0.1:53\"]\nauthority = \"tcp:127.0.0.1:7001\"\n";
        assert!(problems(local).is_empty());
    }

    #[test]
    fn tls_needs_all_three_files_and_each_must_read() {
        let keys = problems(&format!("{REMOTE}\n[grpc]\nca = \"ca.pem\"\n"));
        assert_eq!(keys, ["grpc", "listener.authority"]);
        let keys = problems(&format!(
            "{REMOTE}\n[grpc]\nca = \"ca.pem\"\ncertificate = \"host.pem\"\nkey = \"host.key\"\n"
        ));
        assert_eq!(keys, ["grpc.ca", "grpc.certificate", "grpc.key"]);
    }
}
