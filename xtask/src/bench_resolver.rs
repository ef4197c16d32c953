//! `cargo xtask bench-resolver`: Sextant's resolver beside Unbound and PowerDNS
//! Recursor on the same loopback hierarchy (a root, `test.` and `bench.test.`, each
//! an NSD on port 53 of its own 127.53.0.x address). For each resolver: the average
//! latency of cache misses (one query at a time through names it has never seen; the
//! delegations are cached after the first), the throughput of cache hits, the
//! resolver's CPU per cache hit at a fixed rate, and its memory idle and after the
//! runs. Each resolver runs on one CPU and dnsperf on another, as in `bench`. Needs
//! root (port 53).

use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::{Cpus, command_on, cpu_seconds, dnsperf_on, field, pss_kb, repin, stop};
use crate::{cargo, peers, workspace_root};

const PEERS: &[(&str, &str)] = &[
    ("dnsperf", "dnsperf"),
    ("nsd", "nsd"),
    ("unbound", "unbound"),
    ("pdns_recursor", "pdns-recursor"),
];
/// The lab's servers: root, `test.`, `bench.test.`.
const LAB: [(&str, [u8; 4]); 3] = [
    (".", [127, 53, 0, 1]),
    ("test.", [127, 53, 0, 2]),
    ("bench.test.", [127, 53, 0, 3]),
];
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Measure {
    server: String,
    hit_qps: f64,
    /// CPU (every process of the resolver) per cache hit at a fixed rate, µs.
    cpu_us_per_hit: f64,
    miss_latency_us: f64,
    miss_median_us: f64,
    /// The flood run's figures (`--flood`).
    flood: Option<FloodFigures>,
    /// Right after start-up and one resolution, MB (PSS).
    idle_mb: f64,
    memory_mb: f64,
}

/// `flood`: the random-subdomain flood's length in seconds instead of the hit and
/// miss runs.
pub(crate) fn bench_resolver(quick: bool, signed: bool, flood: Option<u32>) -> anyhow::Result<()> {
    peers::ensure(PEERS)?;
    cargo(&["build", "--release", "--workspace", "--bins"])?;
    let root = workspace_root();
    let work = root.join("target/bench/resolver");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let (names, seconds, rate) = if quick {
        (500, 2, 5_000)
    } else {
        (2_000, 10, 20_000)
    };
    let cpus = Cpus::choose(true);

    let mut lab = Vec::new();
    let outcome = (|| -> anyhow::Result<Vec<Measure>> {
        let anchor = start_lab(&work, names, signed, &mut lab)?;
        let hints = work.join("root.hints");
        std::fs::write(
            &hints,
            format!(
                ". 3600000 NS a.root.lab.\na.root.lab. 3600000 A {}\n",
                ip_text(LAB[0].1)
            ),
        )?;
        let hits = work.join("hits.txt");
        let mut hit_lines = String::new();
        for i in 0..names {
            writeln!(hit_lines, "h{i}.bench.test A")?;
        }
        std::fs::write(&hits, hit_lines)?;

        let mut results = Vec::new();
        // A long flood (the drift run) compares the default Sextant with Unbound only,
        // to keep it within the hour.
        let servers: &[&str] = match flood {
            Some(seconds) if seconds > 120 => &["sextant", "unbound"],
            _ => &["sextant", "sextant-nocache", "unbound", "pdns-recursor"],
        };
        for (index, server) in servers.iter().copied().enumerate() {
            let port = 15400 + index as u16;
            let dir = work.join(server);
            std::fs::create_dir_all(&dir)?;
            eprintln!("== {server} on 127.0.0.1:{port}");
            let mut processes = start(
                server,
                &root,
                &dir,
                &hints,
                port,
                cpus.server,
                anchor.as_ref(),
            )?;
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let measured = wait_resolving(addr, &mut processes, anchor.is_some()).and_then(|()| {
                repin(&processes, cpus.server)?;
                let run = Run {
                    hits: &hits,
                    misses: names,
                    seconds,
                    rate,
                    cpu: cpus.client,
                    dnssec: anchor.is_some(),
                };
                if let Some(seconds) = flood {
                    flooded(server, addr, &run, &processes, &work, seconds, names)
                } else {
                    measure(server, addr, &run, &processes)
                }
            });
            stop(&mut processes);
            results.push(measured?);
        }
        Ok(results)
    })();
    stop(&mut lab);
    if flood.is_some() {
        return report_flood(&outcome?, &work);
    }
    report(&outcome?, &work, signed)
}

/// Queries per second of the random-subdomain flood ("water torture"): every name
/// new, under one zone, each answered NXDOMAIN by the zone's server.
const FLOOD_RATE: u32 = 10_000;

/// The flood run: `seconds` of random nonexistent names at [`FLOOD_RATE`] while a
/// prober asks real names every 20 ms; memory (every process of the resolver)
/// sampled every half second.
fn flooded(
    server: &str,
    addr: SocketAddr,
    run: &Run<'_>,
    processes: &[Child],
    work: &Path,
    seconds: u32,
    names: usize,
) -> anyhow::Result<Measure> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let file = work.join(format!("flood-{seconds}s.txt"));
    if !file.exists() {
        let mut text = String::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..(u64::from(FLOOD_RATE) * u64::from(seconds)) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            writeln!(text, "r{:012x}.bench.test A", seed & 0xffff_ffff_ffff)?;
        }
        std::fs::write(&file, text)?;
    }
    let pids: Vec<u32> = processes.iter().map(Child::id).collect();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let (mut peak, mut minutes) = (0u64, Vec::new());
            while !done.load(Ordering::Relaxed) {
                let now: u64 = pids.iter().map(|p| pss_kb(*p)).sum();
                peak = peak.max(now);
                // Memory at each full minute, for the drift of a long run.
                if started.elapsed() >= Duration::from_secs(60 * (minutes.len() as u64 + 1)) {
                    minutes.push(now as f64 / 1024.0);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            (peak, minutes)
        })
    };
    let prober = {
        let done = done.clone();
        let dnssec = run.dnssec;
        std::thread::spawn(move || -> anyhow::Result<(usize, Vec<f64>)> {
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            socket.set_read_timeout(Some(Duration::from_secs(1)))?;
            let mut buffer = [0u8; 4096];
            let (mut sent, mut times) = (0usize, Vec::new());
            while !done.load(Ordering::Relaxed) {
                let id = (sent % 65_536) as u16;
                let started = Instant::now();
                socket.send_to(
                    &query(id, &format!("h{}.bench.test", sent % names), dnssec),
                    addr,
                )?;
                sent += 1;
                while let Ok((len, _)) = socket.recv_from(&mut buffer) {
                    if len > 12 && buffer[..2] == id.to_be_bytes() {
                        if buffer[3] & 0x0f == 0 {
                            times.push(started.elapsed().as_secs_f64() * 1e3);
                        }
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok((sent, times))
        })
    };
    let rate = FLOOD_RATE.to_string();
    let secs = seconds.to_string();
    let mut args = vec!["-l", &secs, "-c", "4", "-q", "1000", "-Q", &rate, "-t", "2"];
    if run.dnssec {
        args.push("-D");
    }
    let flooded = dnsperf_on(run.cpu, addr, &file, &args);
    done.store(true, Ordering::Relaxed);
    let (peak_kb, minutes) = sampler.join().unwrap_or_default();
    let (probes, mut times) = prober
        .join()
        .map_err(|_| anyhow::anyhow!("the prober panicked"))??;
    let flooded = flooded?;
    times.sort_by(f64::total_cmp);
    let p99 = times
        .get((times.len() * 99 / 100).min(times.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);
    let measure = Measure {
        server: server.to_string(),
        hit_qps: field(&flooded, "Queries per second:"),
        memory_mb: processes.iter().map(|c| pss_kb(c.id())).sum::<u64>() as f64 / 1024.0,
        flood: Some(FloodFigures {
            peak_mb: peak_kb as f64 / 1024.0,
            probes,
            probes_answered: times.len(),
            probe_p99_ms: p99,
            minutes,
        }),
        ..Measure::default()
    };
    eprintln!("   {measure:?}");
    Ok(measure)
}

/// What the flood did to one resolver.
#[derive(Debug, Default)]
struct FloodFigures {
    peak_mb: f64,
    probes: usize,
    /// Probes answered NOERROR within a second.
    probes_answered: usize,
    probe_p99_ms: f64,
    /// Memory at the end of each full minute, MB.
    minutes: Vec<f64>,
}

fn report_flood(results: &[Measure], work: &Path) -> anyhow::Result<()> {
    let mut table = format!(
        "random-subdomain flood, {FLOOD_RATE} q/s of new names under one zone, a real name probed every 20 ms\n\
         {:<16} {:>12} {:>10} {:>10} {:>12} {:>12}\n",
        "resolver", "answered q/s", "peak MB", "end MB", "probes ok", "probe p99 ms"
    );
    for m in results {
        let Some(f) = &m.flood else { continue };
        writeln!(
            table,
            "{:<16} {:>12.0} {:>10.1} {:>10.1} {:>7}/{:<4} {:>12.1}",
            m.server,
            m.hit_qps,
            f.peak_mb,
            m.memory_mb,
            f.probes_answered,
            f.probes,
            f.probe_p99_ms
        )?;
    }
    // A long run: is memory flat once the caches are full? From the end of minute 2
    // (caches filled at 10k new names/s) to the end.
    if results
        .iter()
        .any(|m| m.flood.as_ref().is_some_and(|f| f.minutes.len() >= 3))
    {
        writeln!(
            table,
            "\nmemory (MB) at the end of each minute; drift = last - minute 2"
        )?;
        for m in results {
            let Some(f) = &m.flood else { continue };
            let minutes: Vec<String> = f.minutes.iter().map(|mb| format!("{mb:.0}")).collect();
            let drift = match (f.minutes.get(1), f.minutes.last()) {
                (Some(second), Some(last)) => format!("{:+.1}", last - second),
                _ => "-".to_string(),
            };
            writeln!(
                table,
                "{:<16} drift {:>7}  [{}]",
                m.server,
                drift,
                minutes.join(" ")
            )?;
        }
    }
    println!("\n{table}");
    std::fs::write(work.join("flood.txt.results"), &table)?;
    Ok(())
}

fn ip_text(ip: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3])
}

/// Where a validating resolver's trust starts on the signed lab: the root key as
/// DNSKEY data (`257 3 13 ...`) and as DS data (`tag 13 2 hex`).
struct Anchor {
    dnskey: String,
    ds: String,
}

/// Starts the lab's three NSDs, the zones signed (each DS in its parent) when
/// `signed`; returns the root's anchor then.
fn start_lab(
    work: &Path,
    names: usize,
    signed: bool,
    lab: &mut Vec<Child>,
) -> anyhow::Result<Option<Anchor>> {
    let mut below = String::new();
    let mut anchor = None;
    // Leaf first: each parent needs its child's DS before it is signed.
    for (zone, ip) in LAB.iter().rev() {
        let dir = nsd_dir(work, zone);
        std::fs::create_dir_all(&dir)?;
        let mut text = zone_text(zone, names)?;
        text.push_str(&below);
        let text = if signed {
            let (text, dnskey, ds) = sign(&dir, zone, &text)?;
            below = format!("{ds}\n");
            anchor = Some(Anchor {
                dnskey,
                ds: ds
                    .split_once(" DS ")
                    .map_or(String::new(), |(_, d)| d.trim().to_string()),
            });
            text
        } else {
            text
        };
        lab.push(start_nsd(&dir, zone, *ip, &text)?);
    }
    Ok(anchor.filter(|_| signed))
}

/// One key (ECDSA P-256, the algorithm most signed zones use), the zone signed with
/// it by dnssec-signzone; returns the signed text, the key's DNSKEY data and its
/// DS record as the parent writes it.
fn sign(dir: &Path, zone: &str, text: &str) -> anyhow::Result<(String, String, String)> {
    let run = |command: &mut Command, what: &str| -> anyhow::Result<String> {
        let output = command
            .current_dir(dir)
            .output()
            .with_context(|| format!("running {what} (bind9-utils)"))?;
        if !output.status.success() {
            bail!(
                "{what} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    let base = run(
        Command::new("dnssec-keygen").args([
            "-q",
            "-a",
            "ECDSAP256SHA256",
            "-f",
            "KSK",
            "-n",
            "ZONE",
            zone,
        ]),
        "dnssec-keygen",
    )?;
    let key_file = std::fs::read_to_string(dir.join(format!("{base}.key")))?;
    std::fs::write(dir.join("unsigned"), format!("{text}{key_file}"))?;
    run(
        Command::new("dnssec-signzone").args([
            "-q",
            "-z",
            "-o",
            zone,
            "-f",
            "signed",
            "unsigned",
            &format!("{base}.private"),
        ]),
        "dnssec-signzone",
    )?;
    let ds = run(
        Command::new("dnssec-dsfromkey").args(["-2", &format!("{base}.key")]),
        "dnssec-dsfromkey",
    )?;
    let dnskey = key_file
        .lines()
        .find(|l| !l.starts_with(';'))
        .and_then(|l| l.split_once("DNSKEY"))
        .map(|(_, data)| data.trim().to_string())
        .context("no DNSKEY in the key file")?;
    Ok((std::fs::read_to_string(dir.join("signed"))?, dnskey, ds))
}

fn nsd_dir(work: &Path, zone: &str) -> std::path::PathBuf {
    if zone == "." {
        work.join("nsd-root")
    } else {
        work.join(format!(
            "nsd-{}",
            zone.trim_end_matches('.').replace('.', "_")
        ))
    }
}

/// The master file of a lab zone: the delegation below it, or `names` hosts (and
/// as many never asked twice, for the cold runs).
fn zone_text(zone: &str, names: usize) -> anyhow::Result<String> {
    let apex_host = if zone == "." { "a.root.lab." } else { "ns" };
    let mut text = format!(
        "$ORIGIN {zone}\n$TTL 86400\n@ SOA {apex_host} hostmaster 1 7200 3600 1209600 300\n"
    );
    let origin = if zone == "." { "" } else { zone };
    match zone {
        "." => {
            writeln!(
                text,
                "@ NS a.root.lab.\na.root.lab. A {}",
                ip_text(LAB[0].1)
            )?;
            writeln!(text, "test. NS ns.test.\nns.test. A {}", ip_text(LAB[1].1))?;
        }
        "test." => {
            writeln!(
                text,
                "@ NS ns.{origin}\nns.{origin} A {}",
                ip_text(LAB[1].1)
            )?;
            writeln!(
                text,
                "bench NS ns.bench.{origin}\nns.bench.{origin} A {}",
                ip_text(LAB[2].1)
            )?;
        }
        _ => {
            writeln!(
                text,
                "@ NS ns.{origin}\nns.{origin} A {}",
                ip_text(LAB[2].1)
            )?;
            for i in 0..names {
                writeln!(text, "h{i} A 10.0.{}.{}", (i >> 8) & 255, i & 255)?;
                writeln!(text, "m{i} A 10.1.{}.{}", (i >> 8) & 255, i & 255)?;
            }
        }
    }
    Ok(text)
}

/// One NSD in `dir` for `zone` on `ip`:53, serving `text`.
fn start_nsd(dir: &Path, zone: &str, ip: [u8; 4], text: &str) -> anyhow::Result<Child> {
    let zone_file = dir.join("zone");
    std::fs::write(&zone_file, text)?;
    let d = dir.display();
    let config = dir.join("nsd.conf");
    std::fs::write(
        &config,
        format!(
            "server:\n  ip-address: {}\n  port: 53\n  server-count: 1\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  \
             pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n  xfrdir: \"{d}\"\n  \
             zonelistfile: \"{d}/zone.list\"\n  verbosity: 0\n  rrl-ratelimit: 0\n\
             remote-control:\n  control-enable: no\nzone:\n  name: \"{zone}\"\n  zonefile: \"{}\"\n",
            ip_text(ip),
            zone_file.display()
        ),
    )?;
    let log = std::fs::File::create(dir.join("nsd.log"))?;
    Command::new("nsd")
        .args(["-d", "-c"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting nsd")
}

fn start(
    server: &str,
    root: &Path,
    dir: &Path,
    hints: &Path,
    port: u16,
    cpu: Option<usize>,
    anchor: Option<&Anchor>,
) -> anyhow::Result<Vec<Child>> {
    let spawn = |program: &Path, args: &[String]| -> anyhow::Result<Child> {
        let log = std::fs::File::create(dir.join("server.log"))?;
        command_on(cpu, program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))
    };
    let hints = hints.display();
    let d = dir.display();
    match server {
        "sextant" | "sextant-nocache" => {
            // "sextant" runs with the default budgets, as an operator would.
            let cache = if server == "sextant" {
                String::new()
            } else {
                "packet_cache_bytes = 0\n".to_string()
            };
            let validation = match anchor {
                Some(anchor) => {
                    let file = dir.join("anchors");
                    std::fs::write(&file, format!(". IN DNSKEY {}\n", anchor.dnskey))?;
                    format!(
                        "validation = true\ntrust_anchor_file = \"{}\"\n",
                        file.display()
                    )
                }
                None => "validation = false\n".to_string(),
            };
            let config = dir.join("sextant.toml");
            std::fs::write(
                &config,
                format!(
                    "[log]\nlevel = \"warn\"\n[listener]\nlisten = [\"127.0.0.1:{port}\"]\n{cache}\
                     [resolver]\ngrpc = \"unix:{d}/resolver.sock\"\nready_file = \"{d}/resolver.ready\"\nroot_hints = \"{hints}\"\n\
                     {validation}"
                ),
            )?;
            let bin = root.join("target/release");
            let args = vec!["--config".to_string(), config.display().to_string()];
            let resolver = spawn(&bin.join("sextant-resolver"), &args)?;
            let started = Instant::now();
            while !dir.join("resolver.ready").exists() {
                if started.elapsed() > READY_TIMEOUT {
                    bail!("sextant-resolver not ready; see {d}/server.log");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let listener = spawn(&bin.join("sextant-listener"), &args)?;
            Ok(vec![resolver, listener])
        }
        "unbound" => {
            let modules = match anchor {
                Some(anchor) => format!(
                    "  module-config: \"validator iterator\"\n  trust-anchor: \". DNSKEY {}\"\n",
                    anchor.dnskey
                ),
                None => "  module-config: \"iterator\"\n".to_string(),
            };
            let config = dir.join("unbound.conf");
            std::fs::write(
                &config,
                format!(
                    "server:\n  interface: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  \
                     pidfile: \"{d}/unbound.pid\"\n  root-hints: \"{hints}\"\n  do-not-query-localhost: no\n  \
                     access-control: 127.0.0.0/8 allow\n  num-threads: 1\n  do-ip6: no\n{modules}  \
                     use-syslog: no\n  verbosity: 0\n  local-zone: \"test.\" nodefault\n\
                     remote-control:\n  control-enable: no\n"
                ),
            )?;
            Ok(vec![spawn(
                Path::new("unbound"),
                &["-d".into(), "-c".into(), config.display().to_string()],
            )?])
        }
        "pdns-recursor" => {
            std::fs::write(dir.join("recursor.conf"), "")?;
            let lua = dir.join("anchors.lua");
            let dnssec = match anchor {
                Some(anchor) => {
                    std::fs::write(&lua, format!("clearTA()\naddTA('.', \"{}\")\n", anchor.ds))?;
                    "validate"
                }
                None => {
                    std::fs::write(&lua, "")?;
                    "off"
                }
            };
            let args: Vec<String> = [
                format!("--config-dir={d}"),
                format!("--socket-dir={d}"),
                "--local-address=127.0.0.1".into(),
                format!("--local-port={port}"),
                format!("--hint-file={hints}"),
                "--threads=1".into(),
                "--daemon=no".into(),
                "--write-pid=no".into(),
                format!("--dnssec={dnssec}"),
                format!("--lua-config-file={}", lua.display()),
                "--dont-query=".into(),
                "--allow-from=127.0.0.0/8".into(),
                "--disable-syslog".into(),
                "--loglevel=3".into(),
            ]
            .into();
            Ok(vec![spawn(Path::new("pdns_recursor"), &args)?])
        }
        other => bail!("unknown resolver {other}"),
    }
}

/// A recursive query (RD=1) for `name` A; with `dnssec`, an OPT record with DO=1.
fn query(id: u16, name: &str, dnssec: bool) -> Vec<u8> {
    let mut query = id.to_be_bytes().to_vec();
    query.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(dnssec)]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    if dnssec {
        // OPT: root owner, type 41, payload 1232, DO set.
        query.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
    }
    query
}

/// Polls with a recursive query until the resolver answers it through the lab; on
/// the signed lab the answer must be validated (AD), or the figures would not be
/// those of a validating resolver.
fn wait_resolving(addr: SocketAddr, processes: &mut [Child], dnssec: bool) -> anyhow::Result<()> {
    let query = query(0x1234, "h0.bench.test", dnssec);
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(300)))?;
    let started = Instant::now();
    let mut buffer = [0u8; 512];
    loop {
        for child in processes.iter_mut() {
            if let Some(status) = child.try_wait()? {
                bail!("the resolver exited ({status}) during start-up");
            }
        }
        socket.send_to(&query, addr)?;
        if let Ok((len, _)) = socket.recv_from(&mut buffer)
            && len > 12
            && buffer[3] & 0x0f == 0
            && buffer[7] > 0
        {
            if dnssec && buffer[3] & 0x20 == 0 {
                bail!("{addr} answered the signed lab without AD: it does not validate");
            }
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!("no recursive answer from {addr} after {READY_TIMEOUT:?}");
        }
    }
}

/// The query files and pace of one resolver's runs.
struct Run<'a> {
    hits: &'a Path,
    /// Names never asked before (`m0.bench.test`...), asked one at a time.
    misses: usize,
    seconds: u32,
    /// Queries per second of the fixed-rate run.
    rate: u32,
    /// dnsperf's CPU.
    cpu: Option<usize>,
    /// DO=1 on every query (the signed lab).
    dnssec: bool,
}

/// Median and mean latency of cache misses, µs: names the resolver has never seen,
/// one at a time (the delegations are cached after the first), with a fresh ID each.
fn cold_latency(addr: SocketAddr, names: usize, dnssec: bool) -> anyhow::Result<(f64, f64)> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buffer = [0u8; 4096];
    let mut times = Vec::with_capacity(names);
    for i in 0..names {
        let id = (i % 65_536) as u16;
        let started = Instant::now();
        socket.send_to(&query(id, &format!("m{i}.bench.test"), dnssec), addr)?;
        loop {
            let (len, _) = socket
                .recv_from(&mut buffer)
                .with_context(|| format!("no answer for m{i}.bench.test within 2 s"))?;
            if len >= 2 && buffer[..2] == id.to_be_bytes() {
                break;
            }
        }
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    Ok((median, mean))
}

fn measure(
    server: &str,
    addr: SocketAddr,
    run: &Run<'_>,
    processes: &[Child],
) -> anyhow::Result<Measure> {
    let dnsperf = |queries: &Path, args: &[&str]| {
        let mut args = args.to_vec();
        if run.dnssec {
            args.push("-D");
        }
        dnsperf_on(run.cpu, addr, queries, &args)
    };
    let memory_mb = || processes.iter().map(|c| pss_kb(c.id())).sum::<u64>() as f64 / 1024.0;
    let idle_mb = memory_mb();
    let (miss_median_us, miss_latency_us) = cold_latency(addr, run.misses, run.dnssec)?;
    // Hits: every name once to fill the cache, then the same names for `seconds`.
    dnsperf(run.hits, &["-n", "1", "-c", "1", "-q", "20"])?;
    let seconds = run.seconds.to_string();
    let hot = dnsperf(run.hits, &["-l", &seconds, "-c", "8", "-q", "500"])?;
    // CPU per hit at an ordinary rate, where each packet pays its own wake-ups.
    let rate = run.rate.to_string();
    let before = cpu_seconds(processes);
    let fixed = dnsperf(
        run.hits,
        &["-l", &seconds, "-c", "4", "-q", "200", "-Q", &rate],
    )?;
    let used = cpu_seconds(processes) - before;
    let completed = field(&fixed, "Queries completed:");
    let measure = Measure {
        server: server.to_string(),
        hit_qps: field(&hot, "Queries per second:"),
        cpu_us_per_hit: if completed > 0.0 {
            used * 1e6 / completed
        } else {
            0.0
        },
        miss_latency_us,
        miss_median_us,
        idle_mb,
        memory_mb: memory_mb(),
        flood: None,
    };
    eprintln!("   {measure:?}");
    Ok(measure)
}

fn report(results: &[Measure], work: &Path, signed: bool) -> anyhow::Result<()> {
    let unbound = results.iter().find(|m| m.server == "unbound");
    let ratio = |value: f64, base: Option<f64>| match base {
        Some(base) if base > 0.0 => format!("{:.2}x", value / base),
        _ => "-".into(),
    };
    let mut table = if signed {
        "signed lab, every resolver validating, DO=1 on every query\n".to_string()
    } else {
        String::new()
    };
    writeln!(
        table,
        "{:<16} {:>10} {:>10} {:>10} {:>10} {:>12} {:>10} {:>12} {:>8} {:>8}",
        "resolver",
        "hits q/s",
        "vs Unbound",
        "cpu µs/hit",
        "vs Unbound",
        "miss med µs",
        "vs Unbound",
        "miss mean µs",
        "idle MB",
        "PSS MB"
    )?;
    for m in results {
        writeln!(
            table,
            "{:<16} {:>10.0} {:>10} {:>10.1} {:>10} {:>12.0} {:>10} {:>12.0} {:>8.1} {:>8.1}",
            m.server,
            m.hit_qps,
            ratio(m.hit_qps, unbound.map(|u| u.hit_qps)),
            m.cpu_us_per_hit,
            ratio(m.cpu_us_per_hit, unbound.map(|u| u.cpu_us_per_hit)),
            m.miss_median_us,
            ratio(m.miss_median_us, unbound.map(|u| u.miss_median_us)),
            m.miss_latency_us,
            m.idle_mb,
            m.memory_mb
        )?;
    }
    println!("\n{table}");
    std::fs::write(work.join("results.txt"), &table)?;
    Ok(())
}
