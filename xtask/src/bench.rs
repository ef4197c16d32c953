//! `cargo xtask bench`: Sextant (packet cache on and off) and the peers (NSD, Knot,
//! BIND) serve the same generated zone, one after another, and dnsperf measures each
//! with the same query file and settings; then the same with DNS Cookies on every
//! query, and on the zone signed with DO=1 queries. Prints a table with ratios to NSD
//! (and what cookies cost each server), writes JSON and an SVG chart under
//! target/bench/.

use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{cargo, peers, workspace_root};

/// Sizes and durations of one benchmark run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// Names in the generated zone (each with an A record).
    pub names: usize,
    /// Seconds of each dnsperf run.
    pub seconds: u32,
    /// Queries per second of the fixed-rate run (latency and CPU per query).
    pub latency_rate: u32,
    /// Servers on a CPU of their own and dnsperf on another, when there are two.
    pub pin: bool,
    /// Alternating UDP runs, without and with dnstap, per server logging dnstap:
    /// single runs at saturation vary by +-10% here, the median of pairs run
    /// back to back much less.
    pub dnstap_pairs: usize,
}

impl Plan {
    pub(crate) fn full() -> Self {
        Self {
            names: 100_000,
            seconds: 10,
            latency_rate: 20_000,
            pin: true,
            dnstap_pairs: 3,
        }
    }
    pub(crate) fn quick() -> Self {
        Self {
            names: 10_000,
            seconds: 2,
            latency_rate: 5_000,
            pin: true,
            dnstap_pairs: 1,
        }
    }
}

const BENCH_PEERS: &[(&str, &str)] = &[
    ("dnsperf", "dnsperf"),
    ("taskset", "util-linux"),
    ("dig", "bind9-dnsutils"),
    ("dnssec-signzone", "bind9-utils"),
    ("nsd", "nsd"),
    ("knotd", "knot"),
    ("named", "bind9"),
    ("fstrm_capture", "fstrm-bin"),
];
pub(crate) const ZONE: &str = "bench.test";
/// Long enough for a million-record zone on a slow machine.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, Default)]
struct Measure {
    server: String,
    udp_qps: f64,
    tcp_qps: f64,
    /// Average latency at the fixed rate, microseconds.
    avg_latency_us: f64,
    /// 99th percentile latency at the fixed rate, microseconds.
    p99_latency_us: f64,
    /// The longest latency at the fixed rate, microseconds.
    max_latency_us: f64,
    /// Server CPU (user + system, every process of the server) per query answered
    /// at the fixed rate, microseconds.
    cpu_us_per_query: f64,
    /// Memory after the runs (PSS over the server's process tree), MB.
    memory_mb: f64,
    lost: u64,
}

pub(crate) fn bench(plan: Plan, only: Option<&str>, baseline: Option<&Path>) -> anyhow::Result<()> {
    peers::ensure(BENCH_PEERS)?;
    cargo(&["build", "--release", "--workspace", "--bins"])?;
    let root = workspace_root();
    let out = root.join("target/bench");
    let work = out.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let zone_file = work.join(format!("{ZONE}.zone"));
    let queries = work.join("queries.txt");
    generate(plan.names, &zone_file, &queries)?;

    // A baseline build runs right after this build's rows, so the two are measured
    // in the same phase of a machine whose speed drifts.
    let baseline_rows: &[&str] = if baseline.is_some() {
        &["baseline-cache", "baseline-nocache"]
    } else {
        &[]
    };
    let cpus = Cpus::choose(plan.pin);
    let servers: Vec<&str> = [FLOOR, "sextant-cache", "sextant-nocache"]
        .iter()
        .chain(baseline_rows)
        .chain(&["nsd", "knot", "bind"])
        .copied()
        .filter(|s| selected(s, only))
        .collect();
    let release = root.join("target/release");
    let binaries = |server: &str| match (server.starts_with("baseline"), baseline) {
        (true, Some(dir)) => dir.to_path_buf(),
        _ => release.clone(),
    };
    // The same zone signed (NSEC3, RFC 9276 parameters) and asked with DO=1: every
    // answer carries RRSIGs, every negative one its NSEC3 proof.
    let signed_zone = sign_zone(&zone_file, &work.join("sign"))?;
    let signed: Vec<String> = ["sextant-cache", "sextant-nocache", "nsd", "knot", "bind"]
        .iter()
        .chain(baseline_rows)
        .map(|s| format!("{s}{DNSSEC}"))
        .filter(|s| selected(s, only))
        .collect();
    // Every query with EDNS, then also with a COOKIE option (a client cookie and the
    // server cookie the server gave it, as a cookie-speaking resolver sends after its
    // first query): the difference is what cookies cost.
    let cookies: Vec<String> = ["sextant-cache", "sextant-nocache", "nsd"]
        .iter()
        .flat_map(|s| [format!("{s}{EDNS}"), format!("{s}{COOKIE}")])
        .filter(|s| selected(s, only))
        .collect();
    // Every exchange logged (both entries) to a Frame Streams reader: what dnstap costs,
    // Sextant's and that of the peers built with it (NSD, BIND).
    let dnstap: Vec<String> = ["sextant-cache", "sextant-nocache", "nsd", "bind"]
        .iter()
        .map(|s| format!("{s}{DNSTAP}"))
        .filter(|s| selected(s, only))
        .collect();
    let runs = servers
        .iter()
        .map(|s| (s.to_string(), &zone_file))
        .chain(dnstap.into_iter().map(|s| (s, &zone_file)))
        .chain(cookies.into_iter().map(|s| (s, &zone_file)))
        .chain(signed.into_iter().map(|s| (s, &signed_zone)));
    let mut results = Vec::new();
    for (index, (server, zone)) in runs.enumerate() {
        let port = 15300 + index as u16;
        let dir = work.join(&server);
        std::fs::create_dir_all(&dir)?;
        eprintln!("== {server} on 127.0.0.1:{port}");
        let kind = base_server(&server);
        let variant = Variant {
            cookies: server.ends_with(COOKIE),
            dnstap: server.ends_with(DNSTAP),
        };
        let cookies = variant.cookies;
        let mut processes = start(
            kind,
            &binaries(kind),
            &dir,
            zone,
            port,
            variant,
            cpus.server,
        )?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let outcome = wait_answering(addr, &mut processes).and_then(|()| {
            repin(&processes, cpus.server)?;
            let mut extra = Vec::new();
            if server.ends_with(DNSSEC) {
                extra.push("-D".to_string());
            }
            if server.ends_with(EDNS) {
                extra.push("-e".to_string());
            }
            if cookies {
                extra.push("-E".to_string());
                extra.push(format!("10:{}", server_cookie(addr)?));
            }
            measure(
                &server,
                addr,
                &queries,
                plan,
                &extra,
                &processes,
                cpus.client,
            )
        });
        stop(&mut processes);
        results.push(outcome?);
    }
    let mut pairs = Vec::new();
    for row in results.iter().filter(|m| m.server.ends_with(DNSTAP)) {
        let plain = base_server(&row.server);
        if results.iter().any(|r| r.server == plain) {
            let ratios = alternate_dnstap(
                plain,
                &binaries(plain),
                &work,
                &zone_file,
                &queries,
                plan,
                cpus,
            )?;
            pairs.push((plain.to_string(), ratios));
        }
    }
    report(&results, &pairs, &out, cpus)
}

/// `server` measured at UDP saturation without and with dnstap, one right after
/// the other, `plan.dnstap_pairs` times: the ratio of each pair.
fn alternate_dnstap(
    server: &str,
    binaries: &Path,
    work: &Path,
    zone: &Path,
    queries: &Path,
    plan: Plan,
    cpus: Cpus,
) -> anyhow::Result<Vec<f64>> {
    let seconds = plan.seconds.to_string();
    let mut ratios = Vec::new();
    for pair in 0..plan.dnstap_pairs {
        let mut rates = [0.0; 2];
        for (side, dnstap) in [false, true].into_iter().enumerate() {
            let dir = work.join(format!("pair-{server}-{pair}-{side}"));
            std::fs::create_dir_all(&dir)?;
            let port = 15400 + (pair * 2 + side) as u16;
            eprintln!(
                "== {server} dnstap={dnstap} (pair {}) on 127.0.0.1:{port}",
                pair + 1
            );
            let variant = Variant {
                cookies: false,
                dnstap,
            };
            let mut processes = start(server, binaries, &dir, zone, port, variant, cpus.server)?;
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let measured = wait_answering(addr, &mut processes).and_then(|()| {
                repin(&processes, cpus.server)?;
                dnsperf_on(
                    cpus.client,
                    addr,
                    queries,
                    &["-l", "1", "-c", "4", "-q", "200"],
                )?;
                let udp = dnsperf_on(
                    cpus.client,
                    addr,
                    queries,
                    &["-l", &seconds, "-c", "8", "-q", "500"],
                )?;
                Ok(field(&udp, "Queries per second:"))
            });
            stop(&mut processes);
            rates[side] = measured?;
        }
        if rates[0] > 0.0 {
            ratios.push(rates[1] / rates[0]);
        }
    }
    Ok(ratios)
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => sorted.get(middle).copied(),
        _ => Some((sorted[middle - 1] + sorted[middle]) / 2.0),
    }
}

/// Whether row `row` is measured under `--only`: a comma-separated list of patterns,
/// each a part of a row's name (`nsd`, `dnssec`) or, after `=`, a whole name
/// (`=nsd` is NSD's plain row alone).
fn selected(row: &str, only: Option<&str>) -> bool {
    only.is_none_or(|only| {
        only.split(',')
            .map(str::trim)
            .any(|pattern| match pattern.strip_prefix('=') {
                Some(name) => row == name,
                None => row.contains(pattern),
            })
    })
}

/// The row of the floor responder (see `bench_floor`).
const FLOOR: &str = "floor";

/// Where the servers and dnsperf run: on CPUs of their own when the machine has two
/// or more, so that a server's figures are one core's and dnsperf never competes
/// with it for that core.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cpus {
    pub(crate) server: Option<usize>,
    pub(crate) client: Option<usize>,
}

impl Cpus {
    pub(crate) fn choose(pin: bool) -> Self {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get());
        if pin && count >= 2 {
            Cpus {
                server: Some(count - 1),
                client: Some(0),
            }
        } else {
            Cpus {
                server: None,
                client: None,
            }
        }
    }
}

/// This program's binary, to run the floor from. `cargo xtask test` rebuilds it
/// while it runs, which leaves /proc/self/exe naming the replaced file "(deleted)":
/// the new binary at the same path has the same subcommands.
fn xtask_binary() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    let text = exe.to_string_lossy();
    Ok(match text.strip_suffix(" (deleted)") {
        Some(path) => std::path::PathBuf::from(path),
        None => exe,
    })
}

/// Moves every thread of every process of a started server back onto `cpu`: some
/// servers pin their own threads (Knot puts UDP worker N on CPU N), which would let
/// them share dnsperf's CPU and make their figures more than one core's.
pub(crate) fn repin(processes: &[Child], cpu: Option<usize>) -> anyhow::Result<()> {
    let Some(cpu) = cpu else {
        return Ok(());
    };
    for pid in processes.iter().flat_map(|child| process_tree(child.id())) {
        let status = Command::new("taskset")
            .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
            .stdout(Stdio::null())
            .status()
            .context("running taskset")?;
        anyhow::ensure!(
            status.success(),
            "taskset could not move process {pid} to CPU {cpu}"
        );
    }
    Ok(())
}

/// `program` to be run on `cpu` alone, when one is given (`taskset` execs it: the
/// child's PID is the program's).
pub(crate) fn command_on(cpu: Option<usize>, program: &Path) -> Command {
    match cpu {
        Some(cpu) => {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(cpu.to_string()).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// The suffix of the rows measured on the signed zone with DO=1 queries.
const DNSSEC: &str = "+dnssec";
/// The suffix of the rows whose queries all have EDNS (and nothing more).
const EDNS: &str = "+edns";
/// The suffix of the rows whose queries all carry a DNS cookie (in EDNS).
const COOKIE: &str = "+cookie";
/// The suffix of the rows that log every exchange in dnstap, to `fstrm_capture`.
const DNSTAP: &str = "+dnstap";
/// The client cookie of the cookie rows.
const CLIENT_COOKIE: &str = "5ec7a47c00c0ffee";

/// The server a row measures: its name without the `+variant`.
fn base_server(row: &str) -> &str {
    row.split('+').next().unwrap_or(row)
}

/// The whole cookie (client and server part, hex) that the server at `addr` gives
/// `CLIENT_COOKIE`, asked with dig.
fn server_cookie(addr: SocketAddr) -> anyhow::Result<String> {
    let output = Command::new("dig")
        .args([
            &format!("@{}", addr.ip()),
            "-p",
            &addr.port().to_string(),
            &format!("+cookie={CLIENT_COOKIE}"),
            "+norec",
            "+tries=3",
            &format!("ns1.{ZONE}"),
        ])
        .output()
        .context("running dig for a server cookie")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.trim().strip_prefix("; COOKIE: "))
        .and_then(|rest| rest.split_whitespace().next())
        .filter(|cookie| cookie.len() > CLIENT_COOKIE.len())
        .map(str::to_string)
        .with_context(|| format!("{addr} gave no server cookie:\n{text}"))
}

/// Signs `zone` with a fresh ECDSA P-256 KSK and ZSK and NSEC3 without salt or extra
/// iterations (RFC 9276), as most signed zones are; returns the signed file.
fn sign_zone(zone: &Path, dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let output = Command::new(args[0])
            .args(&args[1..])
            .current_dir(dir)
            .output()
            .with_context(|| format!("running {}", args[0]))?;
        anyhow::ensure!(
            output.status.success(),
            "{} failed: {}",
            args[0],
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(())
    };
    for ksk in [true, false] {
        let mut args = vec!["dnssec-keygen", "-q", "-a", "ECDSAP256SHA256", "-n", "ZONE"];
        if ksk {
            args.extend(["-f", "KSK"]);
        }
        args.push(ZONE);
        run(&args)?;
    }
    let signed = dir.join("signed.zone");
    eprintln!("== signing the zone (dnssec-signzone, NSEC3)");
    run(&[
        "dnssec-signzone",
        "-q",
        "-S",
        "-K",
        ".",
        "-3",
        "-",
        "-H",
        "0",
        "-e",
        "+31536000",
        "-o",
        ZONE,
        "-f",
        &signed.display().to_string(),
        &zone.display().to_string(),
    ])?;
    Ok(signed)
}

/// A zone of `names` hosts (serial 1).
pub(crate) fn generate_zone(names: usize, zone: &Path) -> anyhow::Result<()> {
    let mut text = format!(
        "$ORIGIN {ZONE}.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n  NS ns1\nns1 A 192.0.2.1\n"
    );
    for i in 0..names {
        writeln!(
            text,
            "h{i} A 10.{}.{}.{}",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        )?;
    }
    std::fs::write(zone, text)?;
    Ok(())
}

/// A zone of `names` hosts and a query file: 80% existing names, 10% NXDOMAIN, 10%
/// NODATA, in a fixed pseudo-random order (same every run).
pub(crate) fn generate(names: usize, zone: &Path, queries: &Path) -> anyhow::Result<()> {
    generate_zone(names, zone)?;
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut lines = String::new();
    for _ in 0..names.max(100_000) {
        // xorshift64: deterministic, no dependency.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let pick = (state % 10) as u32;
        let host = (state >> 8) as usize % names;
        match pick {
            0 => writeln!(lines, "nx{host}.{ZONE} A")?,
            1 => writeln!(lines, "h{host}.{ZONE} MX")?,
            _ => writeln!(lines, "h{host}.{ZONE} A")?,
        }
    }
    std::fs::write(queries, lines)?;
    Ok(())
}

/// Starts `server`; Sextant's binaries come from `sextant_bin`.
/// What a row changes in its server's configuration.
#[derive(Clone, Copy, Debug, Default)]
struct Variant {
    /// Server cookies answered (NSD's are off by default).
    cookies: bool,
    /// Every exchange logged in dnstap to an `fstrm_capture` of its own.
    dnstap: bool,
}

fn start(
    server: &str,
    sextant_bin: &Path,
    dir: &Path,
    zone: &Path,
    port: u16,
    variant: Variant,
    cpu: Option<usize>,
) -> anyhow::Result<Vec<Child>> {
    let cookies = variant.cookies;
    let zone = zone.display();
    let spawn = |program: &Path, args: &[&str]| -> anyhow::Result<Child> {
        let log = std::fs::File::create(dir.join("server.log"))?;
        command_on(cpu, program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))
    };
    match server {
        FLOOR => {
            let xtask = xtask_binary()?;
            Ok(vec![spawn(
                &xtask,
                &["bench-floor", "--port", &port.to_string()],
            )?])
        }
        "sextant-cache" | "sextant-nocache" | "baseline-cache" | "baseline-nocache" => {
            let cache = if server.ends_with("-cache") {
                64 * 1024 * 1024
            } else {
                0
            };
            let config = dir.join("sextant.toml");
            let mut processes = Vec::new();
            let dnstap = if variant.dnstap {
                let (reader, socket) = dnstap_reader(dir, cpu)?;
                processes.push(reader);
                format!("[listener.dnstap]\nsocket = \"{}\"\n", socket.display())
            } else {
                String::new()
            };
            std::fs::write(
                &config,
                format!(
                    "[log]\nlevel = \"warn\"\n[listener]\nlisten = [\"127.0.0.1:{port}\"]\npacket_cache_bytes = {cache}\n{dnstap}\
                     [authority]\ngrpc = \"unix:authority.sock\"\nready_file = \"authority.ready\"\n\
                     [[authority.zone]]\nname = \"{ZONE}\"\nfile = \"{zone}\"\n"
                ),
            )?;
            let bin = sextant_bin;
            let config = config.display().to_string();
            let authority = spawn(&bin.join("sextant-authority"), &["--config", &config])?;
            let ready = dir.join("authority.ready");
            let started = Instant::now();
            while !ready.exists() {
                if started.elapsed() > READY_TIMEOUT {
                    bail!(
                        "sextant-authority not ready; see {}",
                        dir.join("server.log").display()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let listener = spawn(&bin.join("sextant-listener"), &["--config", &config])?;
            processes.extend([authority, listener]);
            Ok(processes)
        }
        "nsd" => {
            let d = dir.display();
            let answer_cookie = if cookies { "yes" } else { "no" };
            let mut processes = Vec::new();
            let dnstap = if variant.dnstap {
                let (reader, socket) = dnstap_reader(dir, cpu)?;
                processes.push(reader);
                format!(
                    "dnstap:\n  dnstap-enable: yes\n  dnstap-socket-path: \"{}\"\n  \
                     dnstap-log-auth-query-messages: yes\n  dnstap-log-auth-response-messages: yes\n",
                    socket.display()
                )
            } else {
                String::new()
            };
            let config = dir.join("nsd.conf");
            std::fs::write(
                &config,
                format!(
                    "server:\n  ip-address: 127.0.0.1@{port}\n  server-count: 1\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  \
                     pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n  xfrdir: \"{d}\"\n  \
                     zonelistfile: \"{d}/zone.list\"\n  verbosity: 0\n  hide-version: yes\n  rrl-ratelimit: 0\n  answer-cookie: {answer_cookie}\n\
                     remote-control:\n  control-enable: no\n{dnstap}zone:\n  name: {ZONE}\n  zonefile: \"{zone}\"\n"
                ),
            )?;
            processes.push(spawn(
                Path::new("nsd"),
                &["-d", "-c", &config.display().to_string()],
            )?);
            Ok(processes)
        }
        "knot" => {
            let d = dir.display();
            let config = dir.join("knot.conf");
            std::fs::write(
                &config,
                format!(
                    "server:\n    listen: 127.0.0.1@{port}\n    rundir: \"{d}\"\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
                     database:\n    storage: \"{d}\"\nlog:\n  - target: stderr\n    any: warning\n\
                     zone:\n  - domain: {ZONE}\n    file: \"{zone}\"\n    storage: \"{d}\"\n    zonefile-sync: -1\n    journal-content: none\n"
                ),
            )?;
            Ok(vec![spawn(
                Path::new("knotd"),
                &["-c", &config.display().to_string()],
            )?])
        }
        "bind" => {
            let d = dir.display();
            let mut processes = Vec::new();
            let dnstap = if variant.dnstap {
                let (reader, socket) = dnstap_reader(dir, cpu)?;
                processes.push(reader);
                format!(
                    " dnstap {{ auth; }}; dnstap-output unix \"{}\";",
                    socket.display()
                )
            } else {
                String::new()
            };
            let config = dir.join("named.conf");
            std::fs::write(
                &config,
                format!(
                    "options {{ directory \"{d}\"; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};\n  \
                     recursion no; pid-file \"{d}/named.pid\";{dnstap} }};\ncontrols {{ }};\n\
                     zone \"{ZONE}\" {{ type primary; file \"{zone}\"; }};\n"
                ),
            )?;
            processes.push(spawn(
                Path::new("named"),
                &["-g", "-n", "1", "-c", &config.display().to_string()],
            )?);
            Ok(processes)
        }
        other => bail!("unknown server {other}"),
    }
}

/// A Frame Streams reader (`fstrm_capture`) writing to `dir/dnstap.fstrm`, and the
/// socket it listens on. It runs beside the server, on its CPU: reading the log is
/// part of what logging costs, for every server alike.
fn dnstap_reader(dir: &Path, cpu: Option<usize>) -> anyhow::Result<(Child, std::path::PathBuf)> {
    let socket = dir.join("dnstap.sock");
    let reader = command_on(cpu, Path::new("fstrm_capture"))
        .args(["-t", "protobuf:dnstap.Dnstap", "-u"])
        .arg(&socket)
        .arg("-w")
        .arg(dir.join("dnstap.fstrm"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting fstrm_capture (fstrm-bin)")?;
    // The servers connect at start: the socket is there first.
    let started = Instant::now();
    while !socket.exists() && started.elapsed() < READY_TIMEOUT {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((reader, socket))
}

/// Starts `program` in `dir` (on `cpu` when one is given), its stderr appended to
/// `<program>.log` there, so a restarted server's log follows its first one.
pub(crate) fn spawn_logged(
    cpu: Option<usize>,
    program: &Path,
    args: &[String],
    dir: &Path,
) -> anyhow::Result<Child> {
    let name = program
        .file_name()
        .map_or("server".into(), |n| n.to_string_lossy().into_owned());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))?;
    command_on(cpu, program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))
}

/// Polls with a real query until the server answers for the zone.
pub(crate) fn wait_answering(addr: SocketAddr, processes: &mut [Child]) -> anyhow::Result<()> {
    let query = [
        0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'n', b's', b'1', 5, b'b', b'e', b'n', b'c',
        b'h', 4, b't', b'e', b's', b't', 0, 0, 1, 0, 1,
    ];
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    // A query to a port nobody listens on yet waits out the whole timeout: short,
    // so that start-up times are not rounded up to it.
    socket.set_read_timeout(Some(Duration::from_millis(5)))?;
    let started = Instant::now();
    let mut buffer = [0u8; 512];
    loop {
        for child in processes.iter_mut() {
            if let Some(status) = child.try_wait()? {
                bail!("the server exited ({status}) during start-up");
            }
        }
        socket.send_to(&query, addr)?;
        if let Ok((len, _)) = socket.recv_from(&mut buffer) {
            // NOERROR with an answer: the zone is loaded.
            if len > 12 && buffer[3] & 0x0f == 0 && buffer[7] > 0 {
                return Ok(());
            }
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!("no answer from {addr} after {READY_TIMEOUT:?}");
        }
    }
}

pub(crate) fn dnsperf(addr: SocketAddr, queries: &Path, args: &[&str]) -> anyhow::Result<String> {
    dnsperf_on(None, addr, queries, args)
}

/// dnsperf on `cpu` alone, when one is given.
pub(crate) fn dnsperf_on(
    cpu: Option<usize>,
    addr: SocketAddr,
    queries: &Path,
    args: &[&str],
) -> anyhow::Result<String> {
    let output = command_on(cpu, Path::new("dnsperf"))
        .args(["-s", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .arg("-d")
        .arg(queries)
        .args(args)
        .output()
        .context("running dnsperf")?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub(crate) fn field(text: &str, label: &str) -> f64 {
    text.lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0)
}

fn measure(
    server: &str,
    addr: SocketAddr,
    queries: &Path,
    plan: Plan,
    extra: &[String],
    processes: &[Child],
    cpu: Option<usize>,
) -> anyhow::Result<Measure> {
    let seconds = plan.seconds.to_string();
    let dnsperf = |addr, queries, args: &[&str]| {
        let mut args = args.to_vec();
        args.extend(extra.iter().map(String::as_str));
        dnsperf_on(cpu, addr, queries, &args)
    };
    // Warm-up: fills caches so every server is measured in its steady state.
    dnsperf(addr, queries, &["-l", "1", "-c", "4", "-q", "200"])?;
    let udp = dnsperf(addr, queries, &["-l", &seconds, "-c", "8", "-q", "500"])?;
    // The floor answers UDP only.
    let tcp = if server == FLOOR {
        String::new()
    } else {
        dnsperf(
            addr,
            queries,
            &["-m", "tcp", "-l", &seconds, "-c", "8", "-q", "500"],
        )?
    };
    let rate = plan.latency_rate.to_string();
    // At an ordinary rate every packet pays its own wake-ups and hand-offs, which
    // saturation batches away: that is where CPU per query is measured.
    let cpu_before = cpu_seconds(processes);
    let fixed = dnsperf(
        addr,
        queries,
        &["-l", &seconds, "-c", "4", "-q", "200", "-Q", &rate],
    )?;
    let cpu_used = cpu_seconds(processes) - cpu_before;
    let completed = field(&fixed, "Queries completed:");
    // dnsperf reports no percentiles: a second run prints every query's latency. The
    // printing slows dnsperf itself, so the average comes from the plain run above.
    let verbose = dnsperf(
        addr,
        queries,
        &["-l", &seconds, "-c", "4", "-q", "200", "-Q", &rate, "-v"],
    )?;
    let mut latencies: Vec<f64> = verbose
        .lines()
        .filter(|l| l.starts_with('>'))
        .filter_map(|l| l.split_whitespace().last()?.parse().ok())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies
        .get(latencies.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or(0.0);
    let memory_kb: u64 = processes.iter().map(|c| pss_kb(c.id())).sum();
    let measure = Measure {
        server: server.to_string(),
        udp_qps: field(&udp, "Queries per second:"),
        tcp_qps: field(&tcp, "Queries per second:"),
        avg_latency_us: field(&fixed, "Average Latency (s):") * 1e6,
        p99_latency_us: p99 * 1e6,
        max_latency_us: max_latency(&fixed) * 1e6,
        cpu_us_per_query: if completed > 0.0 {
            cpu_used * 1e6 / completed
        } else {
            0.0
        },
        memory_mb: memory_kb as f64 / 1024.0,
        lost: field(&udp, "Queries lost:") as u64,
    };
    eprintln!("   {measure:?}");
    Ok(measure)
}

/// The longest latency dnsperf saw, seconds: the `max` of its "Average Latency (s):
/// A (min B, max C)" line.
fn max_latency(text: &str) -> f64 {
    text.lines()
        .find_map(|line| line.trim().strip_prefix("Average Latency (s):"))
        .and_then(|rest| rest.split("max ").nth(1))
        .and_then(|rest| rest.trim_end_matches(')').trim().parse().ok())
        .unwrap_or(0.0)
}

/// CPU seconds used so far by every thread of every process of the servers started
/// as `processes`, forked children included. From each thread's schedstat (the
/// scheduler's own nanosecond count of time on a CPU): utime and stime are sampled at
/// the clock tick, which misjudges a server that wakes briefly thousands of times a
/// second.
pub(crate) fn cpu_seconds(processes: &[Child]) -> f64 {
    processes
        .iter()
        .flat_map(|child| process_tree(child.id()))
        .flat_map(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum::<f64>()
        / 1e9
}

/// `pid` and its descendants.
fn process_tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((child, ppid))
        })
        .collect();
    let mut tree = vec![pid];
    let mut at = 0;
    while let Some(&parent) = tree.get(at) {
        tree.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        at += 1;
    }
    tree
}

/// Waits until Sextant's snapshot of the bench zone in `snapshots` is written
/// (modified at or after `since`, no temporary file beside it).
pub(crate) fn wait_snapshot(
    snapshots: &Path,
    since: std::time::SystemTime,
    limit: Duration,
) -> anyhow::Result<()> {
    let snapshot = snapshots.join(format!("{ZONE}.zsnap"));
    let started = Instant::now();
    loop {
        let written = std::fs::metadata(&snapshot)
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified >= since);
        let writing = std::fs::read_dir(snapshots).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "tmp"))
        });
        if written && !writing {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("no snapshot written in {}", snapshots.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Memory of a server: proportional set size (shared pages split between the
/// processes sharing them) summed over the process and its descendants, so a server
/// that forks workers (NSD) is measured whole and nothing is counted twice. KiB.
pub(crate) fn pss_kb(pid: u32) -> u64 {
    process_tree(pid)
        .iter()
        .filter_map(|pid| {
            let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
            rollup
                .lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .sum()
}

/// Stops by PID: SIGTERM, then SIGKILL after a grace period.
pub(crate) fn stop(processes: &mut [Child]) {
    for child in processes.iter().rev() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
    }
    for child in processes.iter_mut() {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn report(
    results: &[Measure],
    dnstap_pairs: &[(String, Vec<f64>)],
    out: &Path,
    cpus: Cpus,
) -> anyhow::Result<()> {
    // Each row against NSD in the same variant (signed zone, cookies).
    let nsd_of = |server: &str| {
        let name = server.replacen(base_server(server), "nsd", 1);
        results.iter().find(|m| m.server == name)
    };
    let floor = results.iter().find(|m| m.server == FLOOR);
    let ratio = |value: f64, base: Option<f64>| match base {
        Some(base) if base > 0.0 && value > 0.0 => format!("{:.2}x", value / base),
        _ => "-".into(),
    };
    let number = |value: f64, digits: usize| {
        if value > 0.0 {
            format!("{value:.digits$}")
        } else {
            "-".into()
        }
    };
    let mut table = String::new();
    match cpus.server {
        Some(cpu) => writeln!(
            table,
            "servers pinned to CPU {cpu}, dnsperf to CPU {}: every figure is one core's",
            cpus.client.unwrap_or(0)
        )?,
        None => writeln!(
            table,
            "servers and dnsperf not pinned (one CPU, or --no-pin)"
        )?,
    }
    writeln!(
        table,
        "{:<24} {:>9} {:>6} {:>8} {:>9} {:>6} {:>8} {:>6} {:>6} {:>6} {:>7} {:>7} {:>6}",
        "server",
        "udp q/s",
        "vs nsd",
        "vs floor",
        "tcp q/s",
        "vs nsd",
        "cpu µs/q",
        "vs nsd",
        "avg µs",
        "p99 µs",
        "max µs",
        "mem MB",
        "lost"
    )?;
    for m in results {
        let nsd = nsd_of(&m.server);
        writeln!(
            table,
            "{:<24} {:>9.0} {:>6} {:>8} {:>9} {:>6} {:>8.1} {:>6} {:>6.0} {:>6.0} {:>7.0} {:>7.1} {:>6}",
            m.server,
            m.udp_qps,
            ratio(m.udp_qps, nsd.map(|n| n.udp_qps)),
            ratio(m.udp_qps, floor.map(|f| f.udp_qps)),
            number(m.tcp_qps, 0),
            ratio(m.tcp_qps, nsd.map(|n| n.tcp_qps)),
            m.cpu_us_per_query,
            ratio(m.cpu_us_per_query, nsd.map(|n| n.cpu_us_per_query)),
            m.avg_latency_us,
            m.p99_latency_us,
            m.max_latency_us,
            m.memory_mb,
            m.lost
        )?;
    }
    let rate = |m: &Measure| m.cpu_us_per_query;
    for m in results.iter().filter(|m| m.server.ends_with(COOKIE)) {
        let plain = base_server(&m.server);
        let edns = format!("{plain}{EDNS}");
        if let Some(without) = results.iter().find(|r| r.server == edns) {
            writeln!(
                table,
                "cookies cost {plain}: udp {} tcp {} of its throughput with EDNS alone, cpu per query {}",
                ratio(m.udp_qps, Some(without.udp_qps)),
                ratio(m.tcp_qps, Some(without.tcp_qps)),
                ratio(rate(m), Some(rate(without))),
            )?;
        }
    }
    for m in results.iter().filter(|m| m.server.ends_with(DNSTAP)) {
        let plain = base_server(&m.server);
        if let Some(without) = results.iter().find(|r| r.server == plain) {
            writeln!(
                table,
                "dnstap (every exchange, to fstrm_capture on the server's CPU) costs {plain}: udp {} tcp {} of its throughput, cpu per query {} (reader included)",
                ratio(m.udp_qps, Some(without.udp_qps)),
                ratio(m.tcp_qps, Some(without.tcp_qps)),
                ratio(rate(m), Some(rate(without))),
            )?;
            if let Some((_, ratios)) = dnstap_pairs.iter().find(|(server, _)| server == plain)
                && let Some(middle) = median(ratios)
            {
                let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}x")).collect();
                writeln!(
                    table,
                    "  {plain} udp with dnstap against without, {} run back to back: median {middle:.2}x ({})",
                    match ratios.len() {
                        1 => "one pair".to_string(),
                        n => format!("{n} pairs"),
                    },
                    each.join(", "),
                )?;
            }
        }
    }
    if let Some(floor) = floor {
        writeln!(
            table,
            "floor: a one-thread recvmmsg/sendmmsg responder with a canned answer, the most \
             this machine's UDP path and dnsperf allow ({:.0} q/s, {:.1} µs CPU per query)",
            floor.udp_qps, floor.cpu_us_per_query
        )?;
    }
    println!("\n{table}");
    let json: Vec<serde_json::Value> = results
        .iter()
        .map(|m| {
            serde_json::json!({
                "server": m.server, "udp_qps": m.udp_qps, "tcp_qps": m.tcp_qps,
                "cpu_us_per_query": m.cpu_us_per_query,
                "avg_latency_us": m.avg_latency_us, "p99_latency_us": m.p99_latency_us,
                "max_latency_us": m.max_latency_us,
                "memory_mb": m.memory_mb, "lost": m.lost,
            })
        })
        .collect();
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    std::fs::write(out.join("results.txt"), &table)?;
    std::fs::write(out.join("chart.svg"), chart(results))?;
    println!("results: {0}/results.json, {0}/chart.svg", out.display());
    Ok(())
}

/// What CI asks of `bench --quick`: that every server was measured and the table,
/// JSON and chart were written. Not a speed: this machine's speed is not a test.
pub(crate) fn check_smoke_run() -> anyhow::Result<()> {
    let out = workspace_root().join("target/bench");
    let json = std::fs::read_to_string(out.join("results.json"))
        .context("the bench wrote no results.json")?;
    let results: Vec<serde_json::Value> =
        serde_json::from_str(&json).context("results.json is not a JSON list")?;
    let servers = ["sextant-cache", "sextant-nocache", "nsd", "knot", "bind"];
    let signed = servers.map(|s| format!("{s}{DNSSEC}"));
    let dnstap = ["sextant-cache", "sextant-nocache"].map(|s| format!("{s}{DNSTAP}"));
    let cookies: Vec<String> = ["sextant-cache", "sextant-nocache", "nsd"]
        .iter()
        .flat_map(|s| [format!("{s}{EDNS}"), format!("{s}{COOKIE}")])
        .collect();
    for server in servers
        .iter()
        .copied()
        .chain(signed.iter().map(String::as_str))
        .chain(cookies.iter().map(String::as_str))
        .chain(dnstap.iter().map(String::as_str))
    {
        let measured = results.iter().find(|r| r["server"] == server);
        let positive = |key: &str| {
            measured
                .and_then(|r| r[key].as_f64())
                .is_some_and(|value| value > 0.0)
        };
        anyhow::ensure!(
            positive("udp_qps") && positive("tcp_qps") && positive("cpu_us_per_query"),
            "the bench has no UDP, TCP and CPU figures for {server}"
        );
    }
    let floor = results.iter().find(|r| r["server"] == FLOOR);
    anyhow::ensure!(
        floor
            .and_then(|r| r["udp_qps"].as_f64())
            .is_some_and(|qps| qps > 0.0),
        "the bench has no floor row"
    );
    let table = std::fs::read_to_string(out.join("results.txt"))
        .context("the bench wrote no results.txt")?;
    anyhow::ensure!(table.contains("vs nsd"), "results.txt has no table");
    let chart =
        std::fs::read_to_string(out.join("chart.svg")).context("the bench drew no chart.svg")?;
    anyhow::ensure!(chart.contains("<svg"), "chart.svg is not an SVG image");
    println!("bench smoke run: every server measured; table, JSON and chart written");
    Ok(())
}

/// Three bar groups, one column per server: throughput, CPU per query and latency.
fn chart(results: &[Measure]) -> String {
    let bar = 22.0;
    let column = 2.0 * bar + 30.0;
    let width = 40.0 + results.len() as f64 * column;
    let max_qps = results
        .iter()
        .map(|m| m.udp_qps.max(m.tcp_qps))
        .fold(1.0, f64::max);
    let max_cpu = results
        .iter()
        .map(|m| m.cpu_us_per_query)
        .fold(1.0, f64::max);
    let max_lat = results.iter().map(|m| m.p99_latency_us).fold(1.0, f64::max);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"800\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"10\" y=\"20\" font-size=\"15\">UDP and TCP queries per second (higher is better)</text>\n\
         <text x=\"10\" y=\"290\" font-size=\"15\">Server CPU per query at a fixed rate, µs (lower is better)</text>\n\
         <text x=\"10\" y=\"550\" font-size=\"15\">Latency at a fixed rate, µs: average and p99 (lower is better)</text>\n"
    );
    let mut bars = |x: f64,
                    base: f64,
                    height: f64,
                    values: &[(f64, &str)],
                    scale: f64,
                    unit: f64| {
        for (j, (value, color)) in values.iter().enumerate() {
            let h = height * value / scale;
            let left = x + j as f64 * bar;
            let _ = writeln!(
                svg,
                "<rect x=\"{left:.0}\" y=\"{:.0}\" width=\"{bar}\" height=\"{h:.0}\" fill=\"{color}\"/>",
                base - h
            );
            let _ = writeln!(
                svg,
                "<text x=\"{left:.0}\" y=\"{:.0}\" font-size=\"9\">{:.0}</text>",
                base - h - 4.0,
                value / unit
            );
        }
    };
    for (i, m) in results.iter().enumerate() {
        let x = 20.0 + i as f64 * column;
        bars(
            x,
            240.0,
            200.0,
            &[(m.udp_qps, "#4477aa"), (m.tcp_qps, "#66ccee")],
            max_qps,
            1000.0,
        );
        bars(
            x,
            500.0,
            180.0,
            &[(m.cpu_us_per_query, "#aa3377")],
            max_cpu,
            1.0,
        );
        bars(
            x,
            760.0,
            180.0,
            &[(m.avg_latency_us, "#228833"), (m.p99_latency_us, "#ccbb44")],
            max_lat,
            1.0,
        );
    }
    for (i, m) in results.iter().enumerate() {
        let x = 20.0 + i as f64 * column;
        for y in [256.0, 516.0, 776.0] {
            let _ = writeln!(
                svg,
                "<text x=\"{x:.0}\" y=\"{y:.0}\" font-size=\"9\" transform=\"rotate(20 {x:.0} {y:.0})\">{}</text>",
                m.server
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}
