//! The real programs the tests talk to, and the Debian packages that provide them.

use std::process::Command;

use anyhow::{Context, bail};

/// (program, Debian package) pairs the test suite needs.
pub(crate) const TEST_PEERS: &[(&str, &str)] = &[
    ("dig", "bind9-dnsutils"),
    ("nsd", "nsd"),
    ("knotd", "knot"),
    ("named", "bind9"),
    ("dnssec-signzone", "bind9-utils"),
    // Signed zones from a second signer, and the validator that checks our answers.
    ("ldns-signzone", "ldnsutils"),
    ("delv", "bind9-dnsutils"),
    ("kdig", "knot-dnsutils"),
    ("unbound", "unbound"),
    ("systemd-analyze", "systemd"),
    // The systemd boot test: a loopback interface in its namespace, and nsenter.
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    // The closing `bench --quick` smoke run.
    ("dnsperf", "dnsperf"),
];

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs missing peers with apt-get when running as root; otherwise says exactly
/// what to install.
pub(crate) fn ensure(peers: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = peers
        .iter()
        .filter(|(program, _)| !have(program))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root || !have("apt-get") {
        bail!(
            "the tests need these Debian packages: {0}; install them with `sudo apt-get install -y {0}`",
            missing.join(" ")
        );
    }
    eprintln!("installing test peers: {}", missing.join(" "));
    // Packaged daemons must not start on install: the tests start their own.
    let policy = std::path::Path::new("/usr/sbin/policy-rc.d");
    if !policy.exists() {
        std::fs::write(policy, "#!/bin/sh\nexit 101\n").context("writing policy-rc.d")?;
        Command::new("chmod")
            .args(["+x", "/usr/sbin/policy-rc.d"])
            .status()?;
    }
    let update = Command::new("apt-get").args(["update", "-q"]).status()?;
    if !update.success() {
        bail!("apt-get update failed");
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !status.success() {
        bail!("apt-get install {} failed", missing.join(" "));
    }
    Ok(())
}
