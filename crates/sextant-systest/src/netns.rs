//! Hosts for multi-host tests: network namespaces made by the test, joined by a
//! bridge in a namespace of its own, addressed from 198.18.0.0/24 (RFC 2544's
//! benchmarking range) with no default route, so nothing a test sends can leave
//! them. They are checked before use and removed when dropped. Needs root and `ip`
//! (iproute2): without them [`netns_unavailable`] says why and the test skips
//! visibly; as root (CI) a namespace that cannot be made fails the test.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};

/// Namespaces made by one test.
#[derive(Debug)]
pub struct HostNetwork {
    switch: String,
    hosts: Vec<Host>,
}

/// One host: its name in the test, its namespace, its address.
#[derive(Clone, Debug)]
pub struct Host {
    /// The test's name for it.
    pub name: String,
    /// The network namespace it lives in.
    pub netns: String,
    /// Its address on the test network.
    pub address: Ipv4Addr,
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !output.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Why namespaces cannot be made here, if they cannot.
pub fn netns_unavailable() -> Option<String> {
    // The effective user from `id -u`: keeps this crate free of libc.
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("network namespaces need root (CI runs as root)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("the ip command (iproute2) is missing".into());
    }
    None
}

static MADE: AtomicUsize = AtomicUsize::new(0);

impl HostNetwork {
    /// Makes one namespace per host, each with `eth0` at its address (/24) on a
    /// bridge, and checks each is there with its address and without a default
    /// route before returning.
    pub fn create(hosts: &[(&str, Ipv4Addr)]) -> anyhow::Result<HostNetwork> {
        let tag = format!(
            "sx{}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        );
        let switch = format!("{tag}-sw");
        // Owned from here: a failure below removes what was made.
        let mut network = HostNetwork {
            switch: switch.clone(),
            hosts: Vec::new(),
        };
        ip(&["netns", "add", &switch])?;
        ip(&["-n", &switch, "link", "set", "lo", "up"])?;
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        for (index, (name, address)) in hosts.iter().enumerate() {
            let netns = format!("{tag}-{name}");
            ip(&["netns", "add", &netns])?;
            network.hosts.push(Host {
                name: (*name).to_string(),
                netns: netns.clone(),
                address: *address,
            });
            let port = format!("p{index}");
            ip(&["-n", &netns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n", &netns, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
                "netns", &switch,
            ])?;
            ip(&["-n", &switch, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &switch, "link", "set", &port, "up"])?;
            ip(&[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
        }
        network.check()?;
        Ok(network)
    }

    /// Every namespace exists, each host has its address, and none has a route
    /// out of the test network.
    fn check(&self) -> anyhow::Result<()> {
        let list = ip(&["netns", "list"])?;
        for host in &self.hosts {
            if !list
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&host.netns))
            {
                bail!("namespace {} is missing", host.netns);
            }
            let addresses = ip(&["-n", &host.netns, "-4", "addr", "show", "dev", "eth0"])?;
            if !addresses.contains(&format!("inet {}/24", host.address)) {
                bail!(
                    "{} has no address {}: {addresses}",
                    host.netns,
                    host.address
                );
            }
            let routes = ip(&["-n", &host.netns, "route", "show", "default"])?;
            if !routes.trim().is_empty() {
                bail!("{} has a default route: {routes}", host.netns);
            }
        }
        Ok(())
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> anyhow::Result<&Host> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .with_context(|| format!("no host {name}"))
    }
}

impl Drop for HostNetwork {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = ip(&["netns", "del", &host.netns]);
        }
        let _ = ip(&["netns", "del", &self.switch]);
    }
}
