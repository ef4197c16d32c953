//! `cargo xtask bench-encrypted`: DNS over TLS and DNS over HTTPS at saturation,
//! Sextant (listener with its packet cache, and the authority) against dnsdist
//! (with its packet cache) in front of NSD, both serving the bench zone, each stack
//! on one CPU and the load generator on the other, in one run. DoT is loaded by
//! `dnsperf -m dot`; DoH by `h2load` (nghttp2-client) with GET requests made from
//! the same query file, because dnsperf 2.10's DoH mode stalls after its first
//! answers against every server (it waits for answers it already has; see
//! DNS-OARC/dnsperf issues #240 and #272 on GitHub).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::{
    Cpus, ZONE, command_on, dnsperf_on, field, generate, repin, spawn_logged, stop, wait_answering,
};
use crate::{cargo, peers, workspace_root};

const PEERS: &[(&str, &str)] = &[
    ("dnsdist", "dnsdist"),
    ("nsd", "nsd"),
    ("openssl", "openssl"),
    ("dnsperf", "dnsperf"),
    ("h2load", "nghttp2-client"),
];
/// DoH requests made from the query file (h2load cycles through them).
const DOH_REQUESTS: usize = 20_000;
const BASE_PORT: u16 = 15700;
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One stack's figures.
struct Figures {
    dot_qps: f64,
    doh_qps: f64,
    dot_lost: f64,
    doh_lost: f64,
}

pub(crate) fn bench_encrypted(seconds: u32, pin: bool) -> anyhow::Result<()> {
    peers::ensure(PEERS)?;
    cargo(&["build", "--release", "--workspace", "--bins"])?;
    let root = workspace_root();
    let work = root.join("target/bench/encrypted");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let zone = work.join(format!("{ZONE}.zone"));
    let queries = work.join("queries.txt");
    generate(100_000, &zone, &queries)?;
    certificate(&work)?;
    let cpus = Cpus::choose(pin);
    let uris = work.join("doh-uris.txt");
    let mut table = format!(
        "DNS over TLS (dnsperf -m dot -c 8 -q 500) and HTTPS (h2load -c 8 -m 32, GET) at saturation,\n\
         {seconds} s each, 100,000-name zone, each server stack on one CPU; dnsdist forwards to NSD,\n\
         both caches on; lost: DoT queries unanswered, DoH requests failed\n\
         {:<10} {:>12} {:>12} {:>10} {:>10}\n",
        "server", "DoT q/s", "DoH q/s", "DoT lost", "DoH lost"
    );
    let mut rows = Vec::new();
    for (index, server) in ["sextant", "dnsdist"].into_iter().enumerate() {
        let ports = BASE_PORT + 10 * index as u16;
        let dir = work.join(server);
        std::fs::create_dir_all(&dir)?;
        eprintln!("== {server}");
        let mut processes = match server {
            "sextant" => start_sextant(
                &root.join("target/release"),
                &dir,
                &zone,
                &work,
                ports,
                cpus.server,
            )?,
            _ => start_dnsdist(&dir, &zone, &work, ports, cpus.server)?,
        };
        let plain: SocketAddr = ([127, 0, 0, 1], ports).into();
        doh_uris(&queries, ports + 2, &uris)?;
        let outcome = wait_answering(plain, &mut processes).and_then(|()| {
            repin(&processes, cpus.server)?;
            let run = |mode: &str, port: u16, length: &str| {
                let addr: SocketAddr = ([127, 0, 0, 1], port).into();
                dnsperf_on(
                    cpus.client,
                    addr,
                    &queries,
                    &["-m", mode, "-l", length, "-c", "8", "-q", "500"],
                )
            };
            let seconds = seconds.to_string();
            run("dot", ports + 1, "1")?;
            let dot = run("dot", ports + 1, &seconds)?;
            let doh = |length: &str| {
                command_on(cpus.client, Path::new("h2load"))
                    .args(["-D", length, "-c", "8", "-m", "32", "-i"])
                    .arg(&uris)
                    .output()
                    .context("running h2load")
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            };
            doh("1")?;
            let doh = doh(&seconds)?;
            Ok(Figures {
                dot_qps: field(&dot, "Queries per second:"),
                doh_qps: h2load_rate(&doh),
                dot_lost: field(&dot, "Queries lost:"),
                doh_lost: h2load_failed(&doh),
            })
        });
        stop(&mut processes);
        let figures = outcome?;
        if figures.dot_qps == 0.0 || figures.doh_qps == 0.0 {
            bail!(
                "{server} answered nothing over DoT or DoH; see {}",
                dir.display()
            );
        }
        writeln!(
            table,
            "{server:<10} {:>12.0} {:>12.0} {:>10.0} {:>10.0}",
            figures.dot_qps, figures.doh_qps, figures.dot_lost, figures.doh_lost
        )?;
        rows.push(figures);
    }
    if let [sextant, dnsdist] = rows.as_slice() {
        writeln!(
            table,
            "sextant / dnsdist: DoT {:.2}x, DoH {:.2}x",
            sextant.dot_qps / dnsdist.dot_qps,
            sextant.doh_qps / dnsdist.doh_qps
        )?;
    }
    println!("\n{table}");
    std::fs::write(work.join("results.txt"), &table)?;
    Ok(())
}

/// One GET URI per query of `queries` (the first `DOH_REQUESTS`), for the DoH
/// server on `port`.
fn doh_uris(queries: &Path, port: u16, out: &Path) -> anyhow::Result<()> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(queries)?;
    let mut uris = String::new();
    for line in text.lines().take(DOH_REQUESTS) {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(qtype)) = (fields.next(), fields.next()) else {
            continue;
        };
        let qtype: u16 = match qtype {
            "A" => 1,
            "NS" => 2,
            "MX" => 15,
            "TXT" => 16,
            "AAAA" => 28,
            _ => continue,
        };
        // RFC 8484 §4.1: ID 0 for caching; RD clear (authoritative data).
        let mut message = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.trim_end_matches('.').split('.') {
            message.push(label.len() as u8);
            message.extend_from_slice(label.as_bytes());
        }
        message.push(0);
        message.extend_from_slice(&qtype.to_be_bytes());
        message.extend_from_slice(&[0, 1]);
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&message);
        writeln!(uris, "https://127.0.0.1:{port}/dns-query?dns={encoded}")?;
    }
    std::fs::write(out, uris)?;
    Ok(())
}

/// h2load's requests per second ("finished in 1.00s, 12345.67 req/s, ...").
fn h2load_rate(text: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix("finished in "))
        .and_then(|rest| rest.split(", ").nth(1))
        .and_then(|rate| rate.strip_suffix(" req/s"))
        .and_then(|rate| rate.parse().ok())
        .unwrap_or(0.0)
}

/// h2load's failed and errored requests.
fn h2load_failed(text: &str) -> f64 {
    let count = |label: &str| -> f64 {
        text.lines()
            .find(|line| line.starts_with("requests:"))
            .and_then(|line| {
                line.split(", ")
                    .find_map(|part| part.trim().strip_suffix(label))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0.0)
    };
    count(" failed") + count(" errored")
}

/// A self-signed certificate for localhost in `work` (cert.pem, key.pem).
fn certificate(work: &Path) -> anyhow::Result<()> {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(work.join("key.pem"))
        .arg("-out")
        .arg(work.join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .context("running openssl")?;
    if !status.success() {
        bail!("openssl could not make a certificate ({status})");
    }
    Ok(())
}

/// Listener (UDP/TCP on `port`, DoT on `port + 1`, DoH on `port + 2`) and authority.
fn start_sextant(
    bin: &Path,
    dir: &Path,
    zone: &Path,
    work: &Path,
    port: u16,
    cpu: Option<usize>,
) -> anyhow::Result<Vec<Child>> {
    let config = dir.join("sextant.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\nlevel = \"warn\"\n[listener]\nlisten = [\"127.0.0.1:{port}\"]\npacket_cache_bytes = 67108864\n\
             [listener.tls]\ndot = [\"127.0.0.1:{}\"]\ndoh = [\"127.0.0.1:{}\"]\ncertificate = \"{}\"\nkey = \"{}\"\n\
             [authority]\ngrpc = \"unix:authority.sock\"\nready_file = \"authority.ready\"\n\
             [[authority.zone]]\nname = \"{ZONE}\"\nfile = \"{}\"\n",
            port + 1,
            port + 2,
            work.join("cert.pem").display(),
            work.join("key.pem").display(),
            zone.display()
        ),
    )?;
    let args = vec!["--config".to_string(), config.display().to_string()];
    let mut processes = vec![spawn_logged(
        cpu,
        &bin.join("sextant-authority"),
        &args,
        dir,
    )?];
    let started = Instant::now();
    while !dir.join("authority.ready").exists() {
        if started.elapsed() > READY_TIMEOUT {
            stop(&mut processes);
            bail!("sextant-authority not ready; see {}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    processes.push(spawn_logged(
        cpu,
        &bin.join("sextant-listener"),
        &args,
        dir,
    )?);
    Ok(processes)
}

/// NSD on `port + 3`, dnsdist in front of it: plain DNS on `port`, DoT on `port + 1`,
/// DoH on `port + 2`.
fn start_dnsdist(
    dir: &Path,
    zone: &Path,
    work: &Path,
    port: u16,
    cpu: Option<usize>,
) -> anyhow::Result<Vec<Child>> {
    let d = dir.display();
    let backend = port + 3;
    let nsd_config = dir.join("nsd.conf");
    std::fs::write(
        &nsd_config,
        format!(
            "server:\n  ip-address: 127.0.0.1@{backend}\n  server-count: 1\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  \
             pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n  xfrdir: \"{d}\"\n  \
             zonelistfile: \"{d}/zone.list\"\n  verbosity: 0\n  hide-version: yes\n  rrl-ratelimit: 0\n\
             remote-control:\n  control-enable: no\nzone:\n  name: {ZONE}\n  zonefile: \"{}\"\n",
            zone.display()
        ),
    )?;
    let mut processes = vec![spawn_logged(
        cpu,
        Path::new("nsd"),
        &["-d".into(), "-c".into(), nsd_config.display().to_string()],
        dir,
    )?];
    let (cert, key) = (work.join("cert.pem"), work.join("key.pem"));
    let config = dir.join("dnsdist.conf");
    std::fs::write(
        &config,
        format!(
            "setLocal(\"127.0.0.1:{port}\")\n\
             addTLSLocal(\"127.0.0.1:{}\", \"{}\", \"{}\")\n\
             addDOHLocal(\"127.0.0.1:{}\", \"{}\", \"{}\", \"/dns-query\")\n\
             newServer({{address=\"127.0.0.1:{backend}\", healthCheckMode=\"up\"}})\n\
             getPool(\"\"):setCache(newPacketCache(200000))\n\
             setSecurityPollSuffix(\"\")\n",
            port + 1,
            cert.display(),
            key.display(),
            port + 2,
            cert.display(),
            key.display()
        ),
    )?;
    processes.push(spawn_logged(
        cpu,
        Path::new("dnsdist"),
        &[
            "--supervised".into(),
            "--disable-syslog".into(),
            "-C".into(),
            config.display().to_string(),
        ],
        dir,
    )?);
    Ok(processes)
}
