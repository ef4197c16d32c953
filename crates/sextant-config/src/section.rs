//! What every daemon's section has in common, so that one lifecycle (`sextant-daemon`)
//! can run any daemon: where its section is, its ready file and metrics endpoint, and
//! its relative paths made absolute.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::{AuthorityConfig, Config, Endpoint, ListenerConfig, ResolverConfig, TransferConfig};

/// A daemon's section of the configuration file.
pub trait Section: Clone + Send + Sync + 'static {
    /// The section's name in the file (`listener` for `[listener]`).
    const NAME: &'static str;
    /// This section of `config`, when the file has one.
    fn of(config: &Config) -> Option<&Self>;
    /// The JSON file written once the daemon serves.
    fn ready_file(&self) -> Option<&Path>;
    /// The Prometheus endpoint, when configured.
    fn metrics(&self) -> Option<SocketAddr>;
    /// Makes every relative path absolute, starting at `base`.
    fn resolve_paths(&mut self, base: &Path);
}

/// Makes `path` absolute, starting at `base` when it is relative.
pub(crate) fn absolute(base: &Path, path: &mut PathBuf) {
    if path.is_relative() {
        *path = base.join(&*path);
    }
}

fn absolute_endpoint(base: &Path, endpoint: &mut Endpoint) {
    if let Endpoint::Unix(path) = endpoint {
        absolute(base, path);
    }
}

fn absolute_all<'p>(base: &Path, paths: impl IntoIterator<Item = &'p mut PathBuf>) {
    for path in paths {
        absolute(base, path);
    }
}

impl Section for ListenerConfig {
    const NAME: &'static str = "listener";
    fn of(config: &Config) -> Option<&Self> {
        config.listener.as_ref()
    }
    fn ready_file(&self) -> Option<&Path> {
        self.ready_file.as_deref()
    }
    fn metrics(&self) -> Option<SocketAddr> {
        self.metrics
    }
    fn resolve_paths(&mut self, base: &Path) {
        absolute_all(base, &mut self.ready_file);
        if let Some(tls) = &mut self.tls {
            absolute(base, &mut tls.certificate);
            absolute(base, &mut tls.key);
        }
        if let Some(dnstap) = &mut self.dnstap {
            dnstap.resolve_paths(base);
        }
        for endpoint in [&mut self.transfer, &mut self.control]
            .into_iter()
            .flatten()
            .chain(&mut self.authority)
            .chain(&mut self.resolver)
        {
            absolute_endpoint(base, endpoint);
        }
    }
}

impl Section for AuthorityConfig {
    const NAME: &'static str = "authority";
    fn of(config: &Config) -> Option<&Self> {
        config.authority.as_ref()
    }
    fn ready_file(&self) -> Option<&Path> {
        self.ready_file.as_deref()
    }
    fn metrics(&self) -> Option<SocketAddr> {
        self.metrics
    }
    fn resolve_paths(&mut self, base: &Path) {
        absolute_all(base, self.ready_file.iter_mut().chain(&mut self.state_dir));
        absolute_all(base, self.zones.iter_mut().map(|zone| &mut zone.file));
        absolute_endpoint(base, &mut self.grpc);
        if let Some(endpoint) = &mut self.secondaries {
            absolute_endpoint(base, endpoint);
        }
    }
}

impl Section for ResolverConfig {
    const NAME: &'static str = "resolver";
    fn of(config: &Config) -> Option<&Self> {
        config.resolver.as_ref()
    }
    fn ready_file(&self) -> Option<&Path> {
        self.ready_file.as_deref()
    }
    fn metrics(&self) -> Option<SocketAddr> {
        self.metrics
    }
    fn resolve_paths(&mut self, base: &Path) {
        absolute_all(
            base,
            self.ready_file
                .iter_mut()
                .chain(&mut self.root_hints)
                .chain(&mut self.trust_anchor_file)
                .chain(&mut self.state_dir),
        );
        absolute_endpoint(base, &mut self.grpc);
        if let Some(dnstap) = &mut self.dnstap {
            dnstap.resolve_paths(base);
        }
    }
}

impl Section for TransferConfig {
    const NAME: &'static str = "transfer";
    fn of(config: &Config) -> Option<&Self> {
        config.transfer.as_ref()
    }
    fn ready_file(&self) -> Option<&Path> {
        self.ready_file.as_deref()
    }
    fn metrics(&self) -> Option<SocketAddr> {
        self.metrics
    }
    fn resolve_paths(&mut self, base: &Path) {
        absolute_all(
            base,
            std::iter::once(&mut self.state_dir).chain(&mut self.ready_file),
        );
        absolute_endpoint(base, &mut self.grpc);
    }
}

impl Config {
    /// Makes every relative path of every section absolute, starting at `base`.
    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        if let Some(section) = &mut self.listener {
            section.resolve_paths(base);
        }
        if let Some(section) = &mut self.authority {
            section.resolve_paths(base);
        }
        if let Some(section) = &mut self.resolver {
            section.resolve_paths(base);
        }
        if let Some(section) = &mut self.transfer {
            section.resolve_paths(base);
        }
        if let Some(grpc) = &mut self.grpc {
            grpc.resolve_paths(base);
        }
    }
}
