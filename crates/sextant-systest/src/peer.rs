//! Reference servers from Debian packages (NSD, ...) started for comparison tests.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::READY_TIMEOUT;

/// A peer server process, killed by PID when dropped.
#[derive(Debug)]
pub struct Peer {
    child: Child,
    /// Where it answers.
    pub addr: SocketAddr,
    /// A loopback address added to `lo` for this peer, removed when it stops.
    lo_address: Option<std::net::IpAddr>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(ip) = self.lo_address {
            let _ = Command::new("ip")
                .args(["addr", "del", &format!("{ip}/32"), "dev", "lo"])
                .output();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ports handed out by [`free_port`]: below the kernel's ephemeral range (32768 and
/// up), where no client socket of a resolver, dig or a peer is ever placed between
/// the moment a port is found free and the moment it is bound; each port is handed
/// out once per test process.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;
static NEXT_TEST_PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

/// A loopback port free for UDP and TCP right now (for a peer, a metrics endpoint),
/// to be bound a moment later.
pub fn free_port() -> anyhow::Result<u16> {
    use std::sync::atomic::Ordering;
    let span = TEST_PORTS.end - TEST_PORTS.start;
    // Test processes that run side by side start in different places.
    let start = (std::process::id() % u32::from(span)) as u16;
    for _ in 0..span {
        let step = NEXT_TEST_PORT.fetch_add(1, Ordering::Relaxed);
        let port = TEST_PORTS.start + start.wrapping_add(step) % span;
        let udp = UdpSocket::bind(("127.0.0.1", port));
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        if udp.is_ok() && tcp.is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port found in {TEST_PORTS:?}")
}

impl Peer {
    /// NSD serving `zones` (apex, file) from `dir`, one server process, no rate
    /// limiting, on a free loopback port.
    pub fn nsd(dir: &Path, zones: &[(&str, &Path)]) -> anyhow::Result<Self> {
        Self::nsd_with(dir, zones, "")
    }

    /// Sends SIGHUP: NSD re-reads its zone files (and NOTIFYs its secondaries).
    pub fn reload(&self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -HUP failed");
        }
        Ok(())
    }

    /// NSD as above, with `zone_options` (indented lines) added to every zone.
    pub fn nsd_with(
        dir: &Path,
        zones: &[(&str, &Path)],
        zone_options: &str,
    ) -> anyhow::Result<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        Self::nsd_on(dir, addr, zones, zone_options, None)
    }

    /// NSD as in `nsd_with`, knowing TSIG key `key` (name, base64 secret) for the
    /// zone options to use (`provide-xfr: 127.0.0.1 NAME`).
    pub fn nsd_keyed(
        dir: &Path,
        zones: &[(&str, &Path)],
        zone_options: &str,
        key: (&str, &str),
    ) -> anyhow::Result<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        Self::nsd_on(dir, addr, zones, zone_options, Some(key))
    }

    /// NSD on a given address (a lab server on port 53, say).
    pub fn nsd_on(
        dir: &Path,
        addr: SocketAddr,
        zones: &[(&str, &Path)],
        zone_options: &str,
        key: Option<(&str, &str)>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (ip, port) = (addr.ip(), addr.port());
        let d = dir.display();
        let mut config = format!(
            "server:\n  ip-address: {ip}@{port}\n  server-count: 1\n  username: \"\"\n  chroot: \"\"\n  \
             zonesdir: \"{d}\"\n  pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
             xfrdir: \"{d}\"\n  zonelistfile: \"{d}/zone.list\"\n  verbosity: 1\n  rrl-ratelimit: 0\n  \
             logfile: \"{d}/nsd.log\"\n  minimal-responses: yes\nremote-control:\n  control-enable: no\n"
        );
        if let Some((name, secret)) = key {
            config.push_str(&format!(
                "key:\n  name: {name}\n  algorithm: hmac-sha256\n  secret: \"{secret}\"\n"
            ));
        }
        for (apex, file) in zones {
            config.push_str(&format!(
                "zone:\n  name: {apex}\n  zonefile: \"{}\"\n{zone_options}",
                file.display()
            ));
        }
        let path = dir.join("nsd.conf");
        std::fs::write(&path, config)?;
        let child = Command::new("nsd")
            .arg("-d")
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nsd (install it with `apt-get install nsd`)")?;
        let mut peer = Self {
            child,
            addr,
            lo_address: None,
        };
        peer.wait_answering(zones.first().map(|z| z.0).unwrap_or("."))?;
        Ok(peer)
    }

    /// Knot serving `zone` from `file` in `dir`, allowing AXFR from loopback (only
    /// with TSIG key `key`, name and base64 secret, when given) and sending NOTIFY to
    /// `notify` (the secondary's listener). Changes to the file are journaled, so
    /// Knot answers IXFR with differences.
    pub fn knot_primary(
        dir: &Path,
        zone: &str,
        file: &Path,
        notify: SocketAddr,
        key: Option<(&str, &str)>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let d = dir.display();
        let head = knot_head(dir, port);
        let (key_section, acl_key) = match key {
            Some((name, secret)) => (
                format!("key:\n  - id: {name}\n    algorithm: hmac-sha256\n    secret: {secret}\n"),
                format!("    key: {name}\n"),
            ),
            None => (String::new(), String::new()),
        };
        let config = format!(
            "{head}{key_section}\
             remote:\n  - id: secondary\n    address: {}@{}\n\
             acl:\n  - id: transfer\n    address: 127.0.0.0/8\n{acl_key}    action: transfer\n\
             zone:\n  - domain: {zone}\n    file: \"{}\"\n    storage: \"{d}\"\n    zonefile-sync: -1\n    \
             journal-content: changes\n    zonefile-load: difference\n    notify: secondary\n    acl: transfer\n",
            notify.ip(),
            notify.port(),
            file.display()
        );
        Self::spawn_knot(dir, &config, port, zone)
    }

    /// Knot as a catalog zone producer (RFC 9432): it serves `members` (apex, file,
    /// optional group) and generates catalog zone `catalog` listing them, allowing
    /// transfers from loopback and sending NOTIFY for every zone to `notify`. Change
    /// the members with [`Peer::knot_catalog_members`].
    pub fn knot_catalog(
        dir: &Path,
        catalog: &str,
        members: &[(&str, &Path, Option<&str>)],
        notify: SocketAddr,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let config = knot_catalog_config(dir, port, catalog, members, notify);
        // Knot answers no query about a catalog it generates (transfers only).
        let apex = members.first().map_or(".", |m| m.0);
        Self::spawn_knot(dir, &config, port, apex)
    }

    /// Gives the Knot of [`Peer::knot_catalog`] a new member list (`knotc reload`):
    /// it regenerates the catalog with a new serial and sends NOTIFY.
    pub fn knot_catalog_members(
        &self,
        dir: &Path,
        catalog: &str,
        members: &[(&str, &Path, Option<&str>)],
        notify: SocketAddr,
    ) -> anyhow::Result<()> {
        let config = knot_catalog_config(dir, self.addr.port(), catalog, members, notify);
        let path = dir.join("knot.conf");
        std::fs::write(&path, config)?;
        let output = Command::new("knotc")
            .arg("-c")
            .arg(&path)
            .arg("reload")
            .output()
            .context("running knotc (package knot)")?;
        if !output.status.success() {
            bail!(
                "knotc reload failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Knot as a catalog zone consumer (RFC 9432): it transfers catalog zone
    /// `catalog` from `primary` and serves every member it lists, transferred from
    /// there too (NOTIFY from loopback accepted).
    pub fn knot_catalog_consumer(
        dir: &Path,
        catalog: &str,
        primary: SocketAddr,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let d = dir.display();
        let head = knot_head(dir, port);
        let (ip, primary_port) = (primary.ip(), primary.port());
        let config = format!(
            "{head}\
             remote:\n  - id: primary\n    address: {ip}@{primary_port}\n\
             acl:\n  - id: notify\n    address: 127.0.0.0/8\n    action: notify\n\
             template:\n  - id: member\n    master: primary\n    acl: notify\n    storage: \"{d}\"\n\
             zone:\n  - domain: {catalog}\n    master: primary\n    acl: notify\n    storage: \"{d}\"\n    \
             catalog-role: interpret\n    catalog-template: member\n"
        );
        Self::launch(dir, "knot.conf", &config, "knotd", &["-c"], "knot", port)
    }

    /// BIND as a catalog zone consumer: it transfers catalog zone `catalog` from
    /// `primary` and serves every member it lists, transferred from there too.
    pub fn bind_catalog_consumer(
        dir: &Path,
        catalog: &str,
        primary: SocketAddr,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let d = dir.display();
        let (ip, primary_port) = (primary.ip(), primary.port());
        let config = format!(
            "options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; listen-on port {port} {{ 127.0.0.1; }};\n  \
             listen-on-v6 {{ none; }}; recursion no; allow-notify {{ 127.0.0.0/8; }};\n  \
             catalog-zones {{ zone \"{catalog}\" default-primaries {{ {ip} port {primary_port}; }} in-memory yes min-update-interval 1; }};\n}};\n\
             controls {{ }};\n\
             zone \"{catalog}\" {{ type secondary; primaries {{ {ip} port {primary_port}; }}; file \"{d}/catalog.db\"; }};\n"
        );
        Self::launch(
            dir,
            "named.conf",
            &config,
            "named",
            &["-g", "-n", "1", "-c"],
            "bind9",
            port,
        )
    }

    /// Knot serving `zones` (apex, file) as they are (pre-signed zones are served
    /// signed, nothing is signed or journaled), on a free loopback port.
    pub fn knot(dir: &Path, zones: &[(&str, &Path)]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let d = dir.display();
        let head = knot_head(dir, port);
        let mut config = format!("{head}zone:\n");
        for (apex, file) in zones {
            config.push_str(&format!(
                "  - domain: {apex}\n    file: \"{}\"\n    storage: \"{d}\"\n    zonefile-sync: -1\n    journal-content: none\n    semantic-checks: off\n",
                file.display()
            ));
        }
        let apex = zones.first().map_or(".", |z| z.0);
        Self::spawn_knot(dir, &config, port, apex)
    }

    /// BIND (named) on `addr` serving `zones` (apex, file) as their authority; BIND
    /// answers DNS Cookies by default.
    pub fn bind_on(dir: &Path, addr: SocketAddr, zones: &[(&str, &Path)]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let d = dir.display();
        let mut config = format!(
            "options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; listen-on port {} {{ {}; }};\n  \
             listen-on-v6 {{ none; }}; recursion no; }};\ncontrols {{ }};\n",
            addr.port(),
            addr.ip()
        );
        for (apex, file) in zones {
            config.push_str(&format!(
                "zone \"{apex}\" {{ type primary; file \"{}\"; }};\n",
                file.display()
            ));
        }
        let path = dir.join("named.conf");
        std::fs::write(&path, config)?;
        // BIND listens only on addresses an interface holds; 127.x.y.z is routed to
        // lo but not held by it until added (removed again when the peer stops).
        let added = Command::new("ip")
            .args(["addr", "add", &format!("{}/32", addr.ip()), "dev", "lo"])
            .output()
            .is_ok_and(|o| o.status.success());
        let log = std::fs::File::create(dir.join("named.log"))?;
        let child = Command::new("named")
            .args(["-g", "-n", "1", "-c"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting named (install it with `apt-get install bind9`)")?;
        let mut peer = Self {
            child,
            addr,
            lo_address: added.then_some(addr.ip()),
        };
        peer.wait_answering(zones.first().map_or(".", |z| z.0))?;
        Ok(peer)
    }

    /// BIND (named) as a validating resolver from the root hints `hints`, trusting
    /// `anchor_key` (the root KSK's DNSKEY data: `257 3 13 base64`), on a free
    /// loopback port.
    pub fn bind_resolver(dir: &Path, hints: &Path, anchor_key: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let d = dir.display();
        let mut fields = anchor_key.split_whitespace();
        let (flags, protocol, algorithm) = (
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
        );
        let key: String = fields.collect();
        let config = format!(
            "options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; listen-on port {port} {{ 127.0.0.1; }};\n  \
             listen-on-v6 {{ none; }}; recursion yes; allow-recursion {{ 127.0.0.0/8; }};\n  \
             dnssec-validation yes; qname-minimization relaxed; }};\n\
             trust-anchors {{ . static-key {flags} {protocol} {algorithm} \"{key}\"; }};\n\
             zone \".\" {{ type hint; file \"{}\"; }};\ncontrols {{ }};\n",
            hints.display()
        );
        let mut peer = Self::launch(
            dir,
            "named.conf",
            &config,
            "named",
            &["-g", "-n", "1", "-c"],
            "bind9",
            port,
        )?;
        peer.wait_resolving("named", dir, ".")?;
        Ok(peer)
    }

    /// Knot on `addr` serving `zones` (apex, file), answering DNS Cookies with its
    /// `mod-cookies` module.
    pub fn knot_on(dir: &Path, addr: SocketAddr, zones: &[(&str, &Path)]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let d = dir.display();
        let mut config = format!(
            "server:\n    listen: {}@{}\n    rundir: \"{d}\"\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
             database:\n    storage: \"{d}\"\nlog:\n  - target: stderr\n    any: info\n\
             mod-cookies:\n  - id: default\n\
             template:\n  - id: default\n    global-module: mod-cookies/default\nzone:\n",
            addr.ip(),
            addr.port()
        );
        for (apex, file) in zones {
            config.push_str(&format!(
                "  - domain: {apex}\n    file: \"{}\"\n    storage: \"{d}\"\n    zonefile-sync: -1\n    journal-content: none\n",
                file.display()
            ));
        }
        let path = dir.join("knot.conf");
        std::fs::write(&path, config)?;
        let log = std::fs::File::create(dir.join("knotd.log"))?;
        let child = Command::new("knotd")
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting knotd (install it with `apt-get install knot`)")?;
        let mut peer = Self {
            child,
            addr,
            lo_address: None,
        };
        peer.wait_answering(zones.first().map_or(".", |z| z.0))?;
        Ok(peer)
    }

    /// BIND (named) serving `zone` from `file` in `dir`, allowing AXFR from loopback
    /// (only with TSIG key `key`, name and base64 secret, when given) and sending
    /// NOTIFY to `notify`; `ixfr-from-differences` makes it answer IXFR with
    /// differences after a reload.
    pub fn bind_primary(
        dir: &Path,
        zone: &str,
        file: &Path,
        notify: SocketAddr,
        key: Option<(&str, &str)>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let d = dir.display();
        let (key_statement, allowed) = match key {
            Some((name, secret)) => (
                format!("key \"{name}\" {{ algorithm hmac-sha256; secret \"{secret}\"; }};\n"),
                format!("key {name};"),
            ),
            None => (String::new(), "127.0.0.0/8;".to_string()),
        };
        let config = format!(
            "{key_statement}options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; listen-on port {port} {{ 127.0.0.1; }};\n  \
             listen-on-v6 {{ none; }}; recursion no; notify explicit; also-notify {{ {} port {}; }};\n  \
             allow-transfer {{ {allowed} }}; notify-source 127.0.0.1; }};\ncontrols {{ }};\n\
             zone \"{zone}\" {{ type primary; file \"{}\"; ixfr-from-differences yes; max-ixfr-ratio unlimited; }};\n",
            notify.ip(),
            notify.port(),
            file.display()
        );
        Self::spawn(
            dir,
            "named.conf",
            &config,
            "named",
            &["-g", "-n", "1", "-c"],
            "bind9",
            port,
            zone,
        )
    }

    /// Unbound as a plain iterating resolver (no validation) whose root hints are
    /// `hints`, on a free loopback port; loopback upstreams allowed (a lab), and
    /// `test.` resolved instead of answered NXDOMAIN by Unbound's RFC 6761 defaults.
    pub fn unbound(dir: &Path, hints: &Path) -> anyhow::Result<Self> {
        Self::unbound_with(dir, hints, "  module-config: \"iterator\"\n")
    }

    /// Unbound validating from `anchor` (a DNSKEY or DS record in presentation
    /// form, e.g. `. DNSKEY 257 3 13 ...`), with Extended DNS Errors on; otherwise as
    /// [`Peer::unbound`].
    pub fn unbound_validating(dir: &Path, hints: &Path, anchor: &str) -> anyhow::Result<Self> {
        let extra = format!(
            "  module-config: \"validator iterator\"\n  trust-anchor: \"{anchor}\"\n  \
             ede: yes\n  val-log-level: 2\n"
        );
        Self::unbound_with(dir, hints, &extra)
    }

    /// Unbound validating `zone` (served at `server`, a stub zone) from `anchor`,
    /// with signatures judged at `date` (`YYYYMMDDHHMMSS`, Unbound's
    /// val-override-date) instead of now: for zones signed with a moved clock.
    pub fn unbound_validating_stub(
        dir: &Path,
        zone: &str,
        server: std::net::SocketAddr,
        anchor: &str,
        date: &str,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        // No root: the only zone asked is the stub.
        let hints = dir.join("root.hints");
        std::fs::write(
            &hints,
            ". 3600 NS a.root.invalid.\na.root.invalid. 3600 A 127.0.0.1\n",
        )?;
        let extra = format!(
            "  module-config: \"validator iterator\"\n  trust-anchor: \"{anchor}\"\n  \
             val-override-date: \"{date}\"\n  ede: yes\n  val-log-level: 2\n\
             stub-zone:\n  name: \"{zone}\"\n  stub-addr: {}@{}\nserver:\n",
            server.ip(),
            server.port()
        );
        Self::unbound_asked(dir, &hints, &extra, zone)
    }

    fn unbound_with(dir: &Path, hints: &Path, extra: &str) -> anyhow::Result<Self> {
        Self::unbound_asked(dir, hints, extra, ".")
    }

    /// Unbound with `extra` server options, ready once it answers for `probe`.
    fn unbound_asked(dir: &Path, hints: &Path, extra: &str, probe: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let d = dir.display();
        let config = format!(
            "server:\n  interface: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  \
             directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  root-hints: \"{}\"\n  \
             do-not-query-localhost: no\n  access-control: 127.0.0.0/8 allow\n  num-threads: 1\n  \
             do-ip6: no\n  qname-minimisation: yes\n  use-syslog: no\n  \
             logfile: \"\"\n  verbosity: 1\n  minimal-responses: yes\n  local-zone: \"test.\" nodefault\n\
             {extra}remote-control:\n  control-enable: no\n",
            hints.display()
        );
        let mut peer = Self::launch(
            dir,
            "unbound.conf",
            &config,
            "unbound",
            &["-d", "-c"],
            "unbound",
            port,
        )?;
        peer.wait_resolving("unbound", dir, probe)?;
        Ok(peer)
    }

    /// Waits until a resolver peer answers a recursive query (any answer will do).
    fn wait_resolving(
        &mut self,
        program: &str,
        dir: &Path,
        probe_name: &str,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{program} exited ({status}) during start-up; see {}/{program}.log",
                    dir.display()
                );
            }
            let mut probe = hickory_proto::op::Message::query();
            probe.metadata.recursion_desired = true;
            let name = hickory_proto::rr::Name::from_ascii(probe_name)
                .unwrap_or_else(|_| hickory_proto::rr::Name::root());
            probe.add_query(hickory_proto::op::Query::query(
                name,
                hickory_proto::rr::RecordType::SOA,
            ));
            if crate::exchange(self.addr, &probe, false).is_ok() {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!("{program} did not answer within {READY_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Knot with `config` as `dir/knot.conf` on `port`, once it answers for `zone`.
    fn spawn_knot(dir: &Path, config: &str, port: u16, zone: &str) -> anyhow::Result<Self> {
        Self::spawn(
            dir,
            "knot.conf",
            config,
            "knotd",
            &["-c"],
            "knot",
            port,
            zone,
        )
    }

    /// Writes `config` as `dir/config_name`, runs `program ARGS CONFIG` with its
    /// stderr in `dir/program.log`, and waits until it answers for `zone` on `port`.
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        dir: &Path,
        config_name: &str,
        config: &str,
        program: &str,
        args: &[&str],
        package: &str,
        port: u16,
        zone: &str,
    ) -> anyhow::Result<Self> {
        let mut peer = Self::launch(dir, config_name, config, program, args, package, port)?;
        peer.wait_answering(zone)?;
        Ok(peer)
    }

    /// Writes `config` as `dir/config_name` and runs `program ARGS CONFIG` on
    /// 127.0.0.1:`port` with its stderr in `dir/program.log`, without waiting.
    fn launch(
        dir: &Path,
        config_name: &str,
        config: &str,
        program: &str,
        args: &[&str],
        package: &str,
        port: u16,
    ) -> anyhow::Result<Self> {
        let path = dir.join(config_name);
        std::fs::write(&path, config)?;
        let log = std::fs::File::create(dir.join(format!("{program}.log")))?;
        let child = Command::new(program)
            .args(args)
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!("starting {program} (install it with `apt-get install {package}`)")
            })?;
        Ok(Self {
            child,
            addr: ([127, 0, 0, 1], port).into(),
            lo_address: None,
        })
    }

    /// Polls with an SOA query for `apex` until the server answers it.
    fn wait_answering(&mut self, apex: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the peer exited ({status}) during start-up");
            }
            if let Ok(response) =
                crate::query_udp(self.addr, apex, hickory_proto::rr::RecordType::SOA)
                && !response.answers.is_empty()
            {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!("the peer did not answer within {READY_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Knot signs `unsigned` (the master file of `zone`) with a fresh KSK and ZSK of
/// `algorithm` and writes the signed zone to `dir/ZONE.knot.signed`; Knot is stopped
/// once the file holds the signatures.
pub(crate) fn knot_sign(
    dir: &Path,
    zone: &str,
    unsigned: &Path,
    algorithm: &str,
    denial: crate::signing::Denial,
) -> anyhow::Result<crate::signing::SignedZone> {
    use crate::signing::Denial;
    let signed = dir.join(format!("{zone}.knot.signed"));
    std::fs::copy(unsigned, &signed)?;
    let nsec3 = match denial {
        Denial::Nsec => "    nsec3: off\n".to_string(),
        Denial::Nsec3 | Denial::Nsec3OptOut => format!(
            "    nsec3: on\n    nsec3-iterations: 0\n    nsec3-salt-length: 0\n    nsec3-opt-out: {}\n",
            if denial == Denial::Nsec3OptOut {
                "on"
            } else {
                "off"
            }
        ),
    };
    let sizes = if algorithm == "rsasha256" {
        "    ksk-size: 2048\n    zsk-size: 2048\n"
    } else {
        ""
    };
    let port = free_port()?;
    let d = dir.display();
    let config = format!(
        "server:\n    listen: 127.0.0.1@{port}\n    rundir: \"{d}\"\n    background-workers: 1\n\
         database:\n    storage: \"{d}\"\nlog:\n  - target: stderr\n    any: info\n\
         policy:\n  - id: test\n    algorithm: {algorithm}\n{sizes}{nsec3}    rrsig-lifetime: 365d\n    rrsig-refresh: 7d\n    single-type-signing: off\n\
         zone:\n  - domain: {zone}\n    file: \"{}\"\n    storage: \"{d}\"\n    dnssec-signing: on\n    dnssec-policy: test\n    zonefile-sync: 0\n    journal-content: none\n",
        signed.display()
    );
    let knot = Peer::spawn(
        dir,
        "knot-sign.conf",
        &config,
        "knotd",
        &["-c"],
        "knot",
        port,
        zone,
    )?;
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&signed).unwrap_or_default();
        let anchor = text
            .lines()
            .filter(|line| line.contains("DNSKEY") && !line.trim_start().starts_with(';'))
            .find_map(|line| {
                let data = line.split_once("DNSKEY")?.1.trim();
                data.starts_with("257 ").then(|| data.to_string())
            });
        if let Some(anchor) = anchor.filter(|_| text.contains("RRSIG")) {
            drop(knot);
            return Ok(crate::signing::SignedZone {
                file: signed,
                anchor,
            });
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!("Knot did not write the signed zone within {READY_TIMEOUT:?}; see {d}/knotd.log");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn knot_catalog_config(
    dir: &Path,
    port: u16,
    catalog: &str,
    members: &[(&str, &Path, Option<&str>)],
    notify: SocketAddr,
) -> String {
    let d = dir.display();
    let head = knot_head(dir, port);
    let mut config = format!(
        "{head}\
         remote:\n  - id: secondary\n    address: {}@{}\n\
         acl:\n  - id: transfer\n    address: 127.0.0.0/8\n    action: transfer\n\
         zone:\n  - domain: {catalog}\n    catalog-role: generate\n    storage: \"{d}\"\n    notify: secondary\n    acl: transfer\n",
        notify.ip(),
        notify.port(),
    );
    for (apex, file, group) in members {
        config.push_str(&format!(
            "  - domain: {apex}\n    file: \"{}\"\n    storage: \"{d}\"\n    zonefile-sync: -1\n    journal-content: none\n    \
             notify: secondary\n    acl: transfer\n    catalog-role: member\n    catalog-zone: {catalog}\n",
            file.display()
        ));
        if let Some(group) = group {
            config.push_str(&format!("    catalog-group: {group}\n"));
        }
    }
    config
}

/// The start of a Knot configuration: one process on 127.0.0.1:`port`, files in
/// `dir`, the log on stderr.
fn knot_head(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "server:\n    listen: 127.0.0.1@{port}\n    rundir: \"{d}\"\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
         database:\n    storage: \"{d}\"\nlog:\n  - target: stderr\n    any: info\n"
    )
}
