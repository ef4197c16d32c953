//! A harness for system tests: starts Sextant's real binaries on ephemeral loopback
//! ports with a temporary directory, waits on their ready files (never on sleeps or
//! log lines), and stops them by PID when dropped, even when a test fails.

mod certs;
mod client;
mod daemon;
mod dns_lab;
mod fake_primary;
mod netns;
mod peer;
pub mod procstat;
mod scrape;
pub mod signing;

pub use certs::TestCa;
pub use client::{
    dig, exchange, extended_error, notify, query_tcp, query_udp, query_udp_raw, question_with,
    recv_within,
};
pub use daemon::{Adopted, Daemon, binary};
pub use dns_lab::{Behaviour, DnsLab, LabServer};
pub use fake_primary::{FakePrimary, Fault, IxfrMode};
pub use netns::{Host, HostNetwork, netns_unavailable};
pub use peer::{Peer, free_port};
pub use scrape::{metric, scrape_metrics};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

/// How long a daemon may take to become ready before the test fails.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A temporary directory holding a config file, zones, sockets and ready files.
#[derive(Debug)]
pub struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    /// A lab in a fresh temporary directory.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            dir: tempfile::Builder::new().prefix("sextant-test-").tempdir()?,
        })
    }

    /// The lab's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file into the lab's directory.
    pub fn write(&self, name: &str, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Writes a config for a listener and an authority serving `zones`
    /// (name, master-file text) and returns its path.
    pub fn suite_config(
        &self,
        zones: &[(&str, &str)],
        listener_extra: &str,
    ) -> anyhow::Result<PathBuf> {
        let mut config = format!(
            "[log]\nlevel = \"info\"\n\n[listener]\nlisten = [\"127.0.0.1:0\"]\nready_file = \"listener.ready.json\"\n{listener_extra}\n\n[authority]\ngrpc = \"unix:authority.sock\"\nready_file = \"authority.ready.json\"\n"
        );
        for (name, text) in zones {
            let file = format!("zones/{}.zone", name.trim_end_matches('.'));
            self.write(&file, text)?;
            config.push_str(&format!(
                "\n[[authority.zone]]\nname = \"{name}\"\nfile = \"{file}\"\n"
            ));
        }
        self.write("sextant.toml", &config)
    }

    /// Starts the transfer daemon when `config` has one, then the authority, then
    /// the listener, all with `config`.
    pub fn start_suite(&self, config: &Path) -> anyhow::Result<Suite> {
        let transfer = if std::fs::read_to_string(config)?.contains("\n[transfer]") {
            Some(self.start_transfer(config)?)
        } else {
            None
        };
        let authority = self.start_authority(config)?;
        let (listener, dns) = self.start_listener(config)?;
        Ok(Suite {
            transfer,
            authority: Some(authority),
            resolver: None,
            listener,
            dns,
        })
    }

    /// Writes a config for a listener and a resolver whose root hints are `hints`
    /// (named.root text); `resolver_extra` is added to the `[resolver]` section.
    pub fn resolver_config(&self, hints: &str, resolver_extra: &str) -> anyhow::Result<PathBuf> {
        self.write("root.hints", hints)?;
        // The lab hierarchies are unsigned: validating them against the real root's
        // keys would make every answer bogus. Tests of validation say so themselves.
        let validation = if resolver_extra.contains("validation =") {
            ""
        } else {
            "validation = false\n"
        };
        let resolver_extra = format!("{validation}{resolver_extra}");
        let config = format!(
            "[log]\nlevel = \"info,sextant_resolver=debug\"\n\n[listener]\nlisten = [\"127.0.0.1:0\"]\nready_file = \"listener.ready.json\"\n\n[resolver]\ngrpc = \"unix:resolver.sock\"\nready_file = \"resolver.ready.json\"\nroot_hints = \"root.hints\"\nupstream_timeout = \"300ms\"\n{resolver_extra}\n"
        );
        self.write("sextant.toml", &config)
    }

    /// Starts the resolver, then the listener, with `config`.
    pub fn start_resolver_suite(&self, config: &Path) -> anyhow::Result<Suite> {
        let resolver = self.start_resolver(config)?;
        let (listener, dns) = self.start_listener(config)?;
        Ok(Suite {
            transfer: None,
            authority: None,
            resolver: Some(resolver),
            listener,
            dns,
        })
    }

    /// Starts the listener and returns it with the address it answers on.
    pub fn start_listener(&self, config: &Path) -> anyhow::Result<(Daemon, SocketAddr)> {
        let listener = Daemon::start(
            "sextant-listener",
            config,
            &self.path().join("listener.ready.json"),
            self.path(),
        )?;
        let dns = listener
            .ready()
            .get("udp")
            .and_then(|v| v.get(0))
            .and_then(|v| v.as_str())
            .context("listener ready file has no udp address")?
            .parse()
            .context("listener ready file has a bad address")?;
        Ok((listener, dns))
    }

    /// Starts a resolver with `config` and waits for its ready file.
    pub fn start_resolver(&self, config: &Path) -> anyhow::Result<Daemon> {
        Daemon::start(
            "sextant-resolver",
            config,
            &self.path().join("resolver.ready.json"),
            self.path(),
        )
    }

    /// Starts the transfer daemon (before the authority, which follows it).
    pub fn start_transfer(&self, config: &Path) -> anyhow::Result<Daemon> {
        Daemon::start(
            "sextant-transfer",
            config,
            &self.path().join("transfer.ready.json"),
            self.path(),
        )
    }

    /// Adds a `[transfer]` section with `secondaries` (zone, primary) to `config`.
    /// Timers are short so tests run in seconds: refresh and retry at least 1s,
    /// a primary silent for 1s fails the transfer.
    pub fn add_transfer(
        &self,
        config: &Path,
        secondaries: &[(&str, SocketAddr)],
    ) -> anyhow::Result<()> {
        self.add_transfer_with_key(config, secondaries, None)
    }

    /// As `add_transfer`, every zone signed with TSIG key `key` (name, base64 secret).
    pub fn add_transfer_with_key(
        &self,
        config: &Path,
        secondaries: &[(&str, SocketAddr)],
        key: Option<(&str, &str)>,
    ) -> anyhow::Result<()> {
        let mut text = std::fs::read_to_string(config)?;
        if let Some((name, secret)) = key {
            text.push_str(&format!(
                "\n[[key]]\nname = \"{name}\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{secret}\"\n"
            ));
        }
        text.push_str(
            "\n[transfer]\ngrpc = \"unix:transfer.sock\"\nstate_dir = \"transfer-state\"\nready_file = \"transfer.ready.json\"\nmin_refresh = \"1s\"\ntransfer_timeout = \"1s\"\n",
        );
        for (zone, primary) in secondaries {
            text.push_str(&format!(
                "\n[[transfer.zone]]\nname = \"{zone}\"\nprimaries = [\"{primary}\"]\n"
            ));
            if let Some((name, _)) = key {
                text.push_str(&format!("key = \"{name}\"\n"));
            }
        }
        std::fs::write(config, text)?;
        Ok(())
    }

    /// Starts an authority with `config` and waits for its ready file.
    pub fn start_authority(&self, config: &Path) -> anyhow::Result<Daemon> {
        self.start_authority_with_env(config, &[])
    }

    /// [`Lab::start_authority`] with extra environment variables (e.g. the signer's
    /// clock offset).
    pub fn start_authority_with_env(
        &self,
        config: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Daemon> {
        Daemon::start_with_env(
            "sextant-authority",
            config,
            &self.path().join("authority.ready.json"),
            self.path(),
            env,
        )
    }
}

/// Polls `condition` every 50 ms until it holds; an error naming `what` after `limit`.
/// Tests wait for effects this way, never with a bare sleep.
pub fn eventually(
    limit: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + limit;
    while !condition() {
        if std::time::Instant::now() >= deadline {
            anyhow::bail!("{what} did not happen within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Runs `sextantctl --config CONFIG ARGS` and returns what it printed and its status.
pub fn sextantctl(config: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(std::process::Command::new(binary("sextantctl")?)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()?)
}

/// A running listener and authority.
#[derive(Debug)]
pub struct Suite {
    /// The transfer daemon, when the config has one.
    pub transfer: Option<Daemon>,
    /// The authority, when the config has one.
    pub authority: Option<Daemon>,
    /// The resolver, when the config has one.
    pub resolver: Option<Daemon>,
    /// The listener.
    pub listener: Daemon,
    /// Where the listener answers DNS (UDP and TCP).
    pub dns: SocketAddr,
}
