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
    /// Right after start-up and one resolution, MB (PSS).
    idle_mb: f64,
    memory_mb: f64,
}

pub(crate) fn bench_resolver(quick: bool) -> anyhow::Result<()> {
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
        for (zone, ip) in LAB {
            lab.push(start_nsd(&work, zone, ip, names)?);
        }
        let hints = work.join("root.hints");
        std::fs::write(
            &hints,
            format!(
                ". 3600000 NS a.root.lab.\na.root.lab. 3600000 A {}\n",
                ip_text(LAB[0].1)
            ),
        )?;
        let hits = work.join("hits.txt");
        let misses = work.join("misses.txt");
        let mut hit_lines = String::new();
        let mut miss_lines = String::new();
        for i in 0..names {
            writeln!(hit_lines, "h{i}.bench.test A")?;
            writeln!(miss_lines, "m{i}.bench.test A")?;
        }
        std::fs::write(&hits, hit_lines)?;
        std::fs::write(&misses, miss_lines)?;

        let mut results = Vec::new();
        for (index, server) in ["sextant", "sextant-nocache", "unbound", "pdns-recursor"]
            .into_iter()
            .enumerate()
        {
            let port = 15400 + index as u16;
            let dir = work.join(server);
            std::fs::create_dir_all(&dir)?;
            eprintln!("== {server} on 127.0.0.1:{port}");
            let mut processes = start(server, &root, &dir, &hints, port, cpus.server)?;
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let measured = wait_resolving(addr, &mut processes).and_then(|()| {
                repin(&processes, cpus.server)?;
                let run = Run {
                    hits: &hits,
                    misses: &misses,
                    seconds,
                    rate,
                    cpu: cpus.client,
                };
                measure(server, addr, &run, &processes)
            });
            stop(&mut processes);
            results.push(measured?);
        }
        Ok(results)
    })();
    stop(&mut lab);
    report(&outcome?, &work)
}

fn ip_text(ip: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3])
}

/// One NSD for `zone` on `ip`:53 with the delegation below it (or `names` hosts).
fn start_nsd(work: &Path, zone: &str, ip: [u8; 4], names: usize) -> anyhow::Result<Child> {
    let dir = work.join(format!(
        "nsd-{}",
        zone.trim_end_matches('.').replace('.', "_")
    ));
    let dir = if zone == "." {
        work.join("nsd-root")
    } else {
        dir
    };
    std::fs::create_dir_all(&dir)?;
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
            let cache = if server == "sextant" { 64 << 20 } else { 0 };
            let config = dir.join("sextant.toml");
            std::fs::write(
                &config,
                format!(
                    "[log]\nlevel = \"warn\"\n[listener]\nlisten = [\"127.0.0.1:{port}\"]\npacket_cache_bytes = {cache}\n\
                     [resolver]\ngrpc = \"unix:{d}/resolver.sock\"\nready_file = \"{d}/resolver.ready\"\nroot_hints = \"{hints}\"\n\
                     # The bench lab is unsigned.\nvalidation = false\n"
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
            let config = dir.join("unbound.conf");
            std::fs::write(
                &config,
                format!(
                    "server:\n  interface: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  \
                     pidfile: \"{d}/unbound.pid\"\n  root-hints: \"{hints}\"\n  do-not-query-localhost: no\n  \
                     access-control: 127.0.0.0/8 allow\n  num-threads: 1\n  do-ip6: no\n  module-config: \"iterator\"\n  \
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
            let args: Vec<String> = [
                format!("--config-dir={d}"),
                format!("--socket-dir={d}"),
                "--local-address=127.0.0.1".into(),
                format!("--local-port={port}"),
                format!("--hint-file={hints}"),
                "--threads=1".into(),
                "--daemon=no".into(),
                "--write-pid=no".into(),
                "--dnssec=off".into(),
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

/// Polls with a recursive query until the resolver answers it through the lab.
fn wait_resolving(addr: SocketAddr, processes: &mut [Child]) -> anyhow::Result<()> {
    // h0.bench.test A, RD=1.
    let mut query = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["h0", "bench", "test"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
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
    misses: &'a Path,
    seconds: u32,
    /// Queries per second of the fixed-rate run.
    rate: u32,
    /// dnsperf's CPU.
    cpu: Option<usize>,
}

fn measure(
    server: &str,
    addr: SocketAddr,
    run: &Run<'_>,
    processes: &[Child],
) -> anyhow::Result<Measure> {
    let dnsperf = |queries: &Path, args: &[&str]| dnsperf_on(run.cpu, addr, queries, args);
    let memory_mb = || processes.iter().map(|c| pss_kb(c.id())).sum::<u64>() as f64 / 1024.0;
    let idle_mb = memory_mb();
    // Misses: a few queries at a time (dnsperf paces `-q 1` at about 10 per second),
    // each name new to the resolver; the average latency is that of a cache miss.
    let cold = dnsperf(run.misses, &["-n", "1", "-c", "1", "-q", "4"])?;
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
        miss_latency_us: field(&cold, "Average Latency (s):") * 1e6,
        idle_mb,
        memory_mb: memory_mb(),
    };
    eprintln!("   {measure:?}");
    Ok(measure)
}

fn report(results: &[Measure], work: &Path) -> anyhow::Result<()> {
    let unbound = results.iter().find(|m| m.server == "unbound");
    let ratio = |value: f64, base: Option<f64>| match base {
        Some(base) if base > 0.0 => format!("{:.2}x", value / base),
        _ => "-".into(),
    };
    let mut table = format!(
        "{:<16} {:>10} {:>10} {:>10} {:>10} {:>16} {:>8} {:>10}\n",
        "resolver",
        "hits q/s",
        "vs Unbound",
        "cpu µs/hit",
        "vs Unbound",
        "miss latency us",
        "idle MB",
        "PSS MB"
    );
    for m in results {
        writeln!(
            table,
            "{:<16} {:>10.0} {:>10} {:>10.1} {:>10} {:>16.0} {:>8.1} {:>10.1}",
            m.server,
            m.hit_qps,
            ratio(m.hit_qps, unbound.map(|u| u.hit_qps)),
            m.cpu_us_per_hit,
            ratio(m.cpu_us_per_hit, unbound.map(|u| u.cpu_us_per_hit)),
            m.miss_latency_us,
            m.idle_mb,
            m.memory_mb
        )?;
    }
    println!("\n{table}");
    std::fs::write(work.join("results.txt"), &table)?;
    Ok(())
}
