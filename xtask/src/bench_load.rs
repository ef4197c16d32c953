//! `cargo xtask bench-load`: a large zone loaded from text, reloaded after a change,
//! and restarted from each server's own compiled form (Sextant's snapshot, NSD's
//! nsd.db, Knot's journal), Sextant beside NSD and Knot on the same file.

use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

use crate::bench::{ZONE, dnsperf, generate, pss_kb, stop, wait_answering, wait_snapshot};
use crate::{cargo, peers, workspace_root};

const PEERS: &[(&str, &str)] = &[("dnsperf", "dnsperf"), ("nsd", "nsd"), ("knotd", "knot")];

/// Long enough for a ten-million-record zone on a slow machine.
const TIMEOUT: Duration = Duration::from_secs(600);

/// How a server keeps its zone between starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Read from the text at every start (NSD without a database, Knot without
    /// zone contents in its journal): the fastest text load each has.
    Nothing,
    /// Its own compiled form, written after a load from text.
    Compiled,
}

struct Server {
    name: &'static str,
    dir: PathBuf,
    zone_file: PathBuf,
    port: u16,
}

impl Server {
    fn start(&self, keep: Keep, from_compiled: bool) -> anyhow::Result<Vec<Child>> {
        let d = self.dir.display();
        let zone = self.zone_file.display();
        let port = self.port;
        let log = || -> anyhow::Result<Stdio> {
            Ok(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("server.log"))?,
            ))
        };
        let spawn = |program: &Path, args: &[&str]| -> anyhow::Result<Child> {
            Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log()?)
                .spawn()
                .with_context(|| format!("starting {}", program.display()))
        };
        match self.name {
            "sextant" => {
                let bin = workspace_root().join("target/release");
                let state = match keep {
                    Keep::Compiled => format!("state_dir = \"{d}/state\"\n"),
                    Keep::Nothing => String::new(),
                };
                let config = self.dir.join("sextant.toml");
                std::fs::write(
                    &config,
                    format!(
                        "[log]\nlevel = \"info\"\n[listener]\nlisten = [\"127.0.0.1:{port}\"]\npacket_cache_bytes = 0\n\
                         [authority]\ngrpc = \"unix:{d}/authority.sock\"\nready_file = \"{d}/authority.ready\"\n{state}\
                         [[authority.zone]]\nname = \"{ZONE}\"\nfile = \"{zone}\"\n"
                    ),
                )?;
                let config = config.display().to_string();
                let ready = self.dir.join("authority.ready");
                let _ = std::fs::remove_file(&ready);
                let authority = spawn(&bin.join("sextant-authority"), &["--config", &config])?;
                let started = Instant::now();
                while !ready.exists() {
                    if started.elapsed() > TIMEOUT {
                        bail!("sextant-authority not ready; see {d}/server.log");
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                let listener = spawn(&bin.join("sextant-listener"), &["--config", &config])?;
                Ok(vec![authority, listener])
            }
            "nsd" => {
                let database = match keep {
                    Keep::Compiled => format!("{d}/nsd.db"),
                    Keep::Nothing => String::new(),
                };
                let config = self.dir.join("nsd.conf");
                std::fs::write(
                    &config,
                    format!(
                        "server:\n  ip-address: 127.0.0.1@{port}\n  server-count: 1\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  \
                         pidfile: \"{d}/nsd.pid\"\n  database: \"{database}\"\n  xfrdfile: \"{d}/xfrd.state\"\n  xfrdir: \"{d}\"\n  \
                         zonelistfile: \"{d}/zone.list\"\n  verbosity: 0\n  hide-version: yes\n  rrl-ratelimit: 0\n\
                         remote-control:\n  control-enable: no\nzone:\n  name: {ZONE}\n  zonefile: \"{zone}\"\n"
                    ),
                )?;
                Ok(vec![spawn(
                    Path::new("nsd"),
                    &["-d", "-c", &config.display().to_string()],
                )?])
            }
            "knot" => {
                let (content, load) = match (keep, from_compiled) {
                    (Keep::Nothing, _) => ("none", "whole"),
                    (Keep::Compiled, false) => ("all", "whole"),
                    (Keep::Compiled, true) => ("all", "none"),
                };
                let config = self.dir.join("knot.conf");
                std::fs::write(
                    &config,
                    format!(
                        "server:\n    listen: 127.0.0.1@{port}\n    rundir: \"{d}\"\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
                         database:\n    storage: \"{d}\"\n    journal-db-max-size: 20G\nlog:\n  - target: stderr\n    any: warning\n\
                         zone:\n  - domain: {ZONE}\n    file: \"{zone}\"\n    storage: \"{d}\"\n    zonefile-sync: -1\n    \
                         journal-content: {content}\n    zonefile-load: {load}\n    journal-max-usage: 10G\n"
                    ),
                )?;
                Ok(vec![spawn(
                    Path::new("knotd"),
                    &["-c", &config.display().to_string()],
                )?])
            }
            other => bail!("unknown server {other}"),
        }
    }

    fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Waits until what the server keeps on disk is written: Sextant's snapshot
    /// newer than `since`, NSD's database and Knot's journal no longer growing.
    fn wait_compiled(&self, since: SystemTime) -> anyhow::Result<()> {
        let started = Instant::now();
        match self.name {
            "sextant" => wait_snapshot(&self.dir.join("state/snapshots"), since, TIMEOUT),
            _ => {
                // The server's files stop growing once it is done writing them.
                let mut last = (0, Instant::now());
                loop {
                    let size = dir_size(&self.dir);
                    if size != last.0 {
                        last = (size, Instant::now());
                    } else if last.1.elapsed() > Duration::from_secs(2) {
                        return Ok(());
                    }
                    if started.elapsed() > TIMEOUT {
                        bail!("{} kept writing to {}", self.name, self.dir.display());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The SOA serial the server at `addr` answers, if it answers.
fn serial(socket: &UdpSocket, addr: SocketAddr) -> Option<u32> {
    let mut query = vec![0x51, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ZONE.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 6, 0, 1]);
    socket.send_to(&query, addr).ok()?;
    let mut buffer = [0u8; 1500];
    let (len, _) = socket.recv_from(&mut buffer).ok()?;
    let answer = buffer.get(..len)?;
    if answer.get(..2)? != [0x51, 0x0a] || answer.get(7)? == &0 {
        return None;
    }
    // The question, then the first answer's owner, type, class, TTL and length.
    let at = skip_name(answer, 12)? + 4;
    let at = skip_name(answer, at)? + 10;
    let at = skip_name(answer, at)?;
    let at = skip_name(answer, at)?;
    Some(u32::from_be_bytes(answer.get(at..at + 4)?.try_into().ok()?))
}

fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *message.get(at)?;
        match len {
            0 => return Some(at + 1),
            len if len & 0xc0 == 0xc0 => return Some(at + 2),
            len => at += 1 + usize::from(len),
        }
    }
}

/// The zone file with its SOA serial made 2.
fn bump_serial(zone_file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(zone_file)?;
    let bumped = text.replacen(" hostmaster 1 ", " hostmaster 2 ", 1);
    if bumped == text {
        bail!("no serial 1 SOA in {}", zone_file.display());
    }
    std::fs::write(zone_file, bumped)?;
    Ok(())
}

struct Row {
    load: f64,
    loaded_kb: u64,
    serving_kb: u64,
    reload: f64,
    reload_peak_kb: u64,
    after_reload_kb: u64,
    restart: f64,
    restart_kb: u64,
}

/// Load time and memory of a large zone, its reload and its restart.
pub(crate) fn bench_load(records: usize) -> anyhow::Result<()> {
    peers::ensure(PEERS)?;
    cargo(&["build", "--release", "--workspace", "--bins"])?;
    let work = workspace_root().join("target/bench/load");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let zone_file = work.join(format!("{ZONE}.zone"));
    let queries = work.join("queries.txt");
    generate(records, &zone_file, &queries)?;
    let mut rows = Vec::new();
    for (index, name) in ["sextant", "nsd", "knot"].into_iter().enumerate() {
        let port = 15350 + index as u16;
        eprintln!("== {name}");
        let row = measure(name, port, &work, &zone_file, &queries)
            .with_context(|| format!("{name}: see {}", work.join(name).display()))?;
        rows.push((name, row));
    }
    let mb = |kb: u64| kb as f64 / 1024.0;
    let per_record = |kb: u64| kb as f64 * 1024.0 / records as f64;
    let mut table = format!(
        "zone of {records} A records ({:.0} MB of text); memory is PSS of every process\n\
         load: from text to the first answer; serving: after 3 s of queries; reload: a new serial\n\
         in the file, from SIGHUP to the new serial answered, the peak memory meanwhile and the\n\
         memory after 2 s more of queries;\n\
         restart: to the first answer from what the server keeps (sextant: its snapshot, nsd: nsd.db,\n\
         knot: zone contents in its journal), and the memory then\n\
         {:<8} {:>7} {:>10} {:>8} {:>11} {:>8} {:>9} {:>10} {:>9} {:>10} {:>11}\n",
        std::fs::metadata(&zone_file)?.len() as f64 / 1e6,
        "server",
        "load s",
        "loaded MB",
        "B/rec",
        "serving MB",
        "B/rec",
        "reload s",
        "peak MB",
        "after MB",
        "restart s",
        "restart MB",
    );
    for (name, row) in &rows {
        writeln!(
            table,
            "{name:<8} {:>7.2} {:>10.1} {:>8.0} {:>11.1} {:>8.0} {:>9.2} {:>10.1} {:>9.1} {:>10.2} {:>11.1}",
            row.load,
            mb(row.loaded_kb),
            per_record(row.loaded_kb),
            mb(row.serving_kb),
            per_record(row.serving_kb),
            row.reload,
            mb(row.reload_peak_kb),
            mb(row.after_reload_kb),
            row.restart,
            mb(row.restart_kb),
        )?;
    }
    println!("\n{table}");
    std::fs::write(work.join("results.txt"), &table)?;
    // Gigabytes at ten million records (NSD's database alone is several): only the
    // results and the servers' logs are kept.
    let _ = std::fs::remove_file(&zone_file);
    let _ = std::fs::remove_file(&queries);
    for name in ["sextant", "nsd", "knot"] {
        let dir = work.join(name);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == "server.log") {
                continue;
            }
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
    Ok(())
}

fn measure(
    name: &'static str,
    port: u16,
    work: &Path,
    zone_file: &Path,
    queries: &Path,
) -> anyhow::Result<Row> {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir)?;
    let own_zone = dir.join(format!("{ZONE}.zone"));
    std::fs::copy(zone_file, &own_zone)?;
    let server = Server {
        name,
        dir,
        zone_file: own_zone,
        port,
    };
    let addr = server.addr();
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;

    // From text, as fast as each server loads it: the peers keep nothing (writing
    // their database or journal slows their load); Sextant writes its snapshot
    // after it answers.
    let keep_on_first = if name == "sextant" {
        Keep::Compiled
    } else {
        Keep::Nothing
    };
    let started = Instant::now();
    let mut processes = server.start(keep_on_first, false)?;
    let first = (|| {
        wait_answering(addr, &mut processes)?;
        let load = started.elapsed().as_secs_f64();
        let loaded_kb = tree_kb(&processes);
        dnsperf(addr, queries, &["-l", "3", "-c", "4", "-q", "100"])?;
        let serving_kb = tree_kb(&processes);

        // Reload of a changed file.
        bump_serial(&server.zone_file)?;
        let reload_started = Instant::now();
        let signalled = SystemTime::now();
        // Each server's "reload the zones" signal.
        let signal = if name == "knot" { "-USR1" } else { "-HUP" };
        send_signal(&processes[0], signal)?;
        let mut peak = tree_kb(&processes);
        loop {
            peak = peak.max(tree_kb(&processes));
            if serial(&socket, addr) == Some(2) {
                break;
            }
            if reload_started.elapsed() > TIMEOUT {
                bail!("the new serial is not answered after {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let reload = reload_started.elapsed().as_secs_f64();
        if name == "sextant" {
            server.wait_compiled(signalled)?;
        }
        // The old version should be gone once the new one answers (and whatever
        // the allocator kept of it returned after a few seconds of work).
        dnsperf(addr, queries, &["-l", "2", "-c", "4", "-q", "100"])?;
        let after = tree_kb(&processes);
        Ok((load, loaded_kb, serving_kb, reload, peak, after))
    })();
    stop(&mut processes);
    let (load, loaded_kb, serving_kb, reload, reload_peak_kb, after_reload_kb) = first?;

    // The peers' compiled forms are made by a start that keeps them.
    if name != "sextant" {
        let mut processes = server.start(Keep::Compiled, false)?;
        let made = wait_answering(addr, &mut processes)
            .and_then(|()| server.wait_compiled(SystemTime::now()));
        stop(&mut processes);
        made?;
    }
    let started = Instant::now();
    let mut processes = server.start(Keep::Compiled, true)?;
    let restarted = wait_answering(addr, &mut processes).and_then(|()| {
        let restart = started.elapsed().as_secs_f64();
        match serial(&socket, addr) {
            Some(2) => Ok((restart, tree_kb(&processes))),
            other => bail!("restarted with serial {other:?}, not 2"),
        }
    });
    stop(&mut processes);
    let (restart, restart_kb) = restarted?;
    Ok(Row {
        load,
        loaded_kb,
        serving_kb,
        reload,
        reload_peak_kb,
        after_reload_kb,
        restart,
        restart_kb,
    })
}

fn tree_kb(processes: &[Child]) -> u64 {
    processes.iter().map(|child| pss_kb(child.id())).sum()
}

fn send_signal(process: &Child, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(signal)
        .arg(process.id().to_string())
        .status()?;
    if !status.success() {
        bail!("kill {signal} {} failed", process.id());
    }
    Ok(())
}
