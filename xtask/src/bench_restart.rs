//! `cargo xtask bench-restart`: a rolling restart under a fixed load. A front
//! listener sends to two authorities serving one zone (its packet cache off, so
//! every query reaches one): A loads it from its file and transfers it out through a
//! listener of its own; B serves it as a secondary, kept by a transfer daemon. One
//! query in ten is recursive and goes to one of two resolvers, which recurse from a
//! root served by an authority and listener of their own (C, not behind the front).
//! dnsperf
//! asks the front at a fixed rate for a few seconds per step; a second into each
//! step one daemon is stopped (SIGTERM) and started again — the front listener the
//! other way round, as an operator replaces it: its successor started beside it
//! (SO_REUSEPORT) and the old one stopped once the new one is ready. Reported per step:
//! queries sent, lost (unanswered within dnsperf's 1 s timeout) and answered SERVFAIL
//! — what a client would have seen.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::bench::{dnsperf, field, generate, spawn_logged, stop, wait_answering};
use crate::{cargo, workspace_root};

/// The front listener; A's own listener (for transfers) is the next port.
const PORT: u16 = 15700;
const NAMES: usize = 10_000;
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One daemon of the suite, restartable.
struct Daemon {
    name: &'static str,
    binary: &'static str,
    /// Its config file in the work directory, and the ready file it names.
    file: &'static str,
    ready: &'static str,
    /// Replaced by a successor started first (the listener), not stopped then started.
    takeover: bool,
    child: Option<Child>,
}

pub(crate) fn bench_restart(rate: u32, seconds: u32, check: bool) -> anyhow::Result<()> {
    cargo(&["build", "--release", "--workspace", "--bins"])?;
    let root = workspace_root();
    let bin = root.join("target/release");
    let work = root.join("target/bench/restart");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let (zone, queries) = (work.join("bench.zone"), work.join("queries.txt"));
    generate(NAMES, &zone, &queries)?;
    // One query in ten for a name only the resolvers can answer (100 names, so
    // their caches matter, and a restarted resolver's empty cache too).
    let mixed: String = std::fs::read_to_string(&queries)?
        .lines()
        .enumerate()
        .map(|(i, line)| {
            if i % 10 == 9 {
                format!("r{}.rtest A\n", i % 100)
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    std::fs::write(&queries, mixed)?;
    let root_port = PORT + 2;
    std::fs::write(
        work.join("root.zone"),
        "$TTL 3600\n@ SOA ns. hostmaster.ns. 1 7200 3600 1209600 300\n@ NS ns.\nns. A 127.0.0.1\n\
         rtest. NS ns.rtest.\nns.rtest. A 127.0.0.1\n",
    )?;
    std::fs::write(
        work.join("rtest.zone"),
        "$ORIGIN rtest.\n$TTL 3600\n@ SOA ns hostmaster 1 7200 3600 1209600 300\n@ NS ns\nns A 127.0.0.1\n* A 192.0.2.99\n",
    )?;
    std::fs::write(
        work.join("root.hints"),
        ". 3600000 NS ns.\nns. 3600000 A 127.0.0.1\n",
    )?;
    let listen: SocketAddr = ([127, 0, 0, 1], PORT).into();
    let primary: SocketAddr = ([127, 0, 0, 1], PORT + 1).into();
    let head = "[log]\nlevel = \"warn\"\n";
    let configs = [
        (
            "a.toml",
            format!(
                "{head}[listener]\nlisten = [\"{primary}\"]\nready_file = \"a-listener.ready\"\n\
                 [authority]\ngrpc = \"unix:a.sock\"\nready_file = \"a.ready\"\n\
                 allow_transfer = [\"127.0.0.0/8\"]\n\
                 [[authority.zone]]\nname = \"bench.test\"\nfile = \"{}\"\n",
                zone.display()
            ),
        ),
        (
            "b.toml",
            format!(
                "{head}[authority]\ngrpc = \"unix:b.sock\"\nready_file = \"b.ready\"\n\
                 [transfer]\ngrpc = \"unix:transfer.sock\"\nstate_dir = \"transfer-state\"\n\
                 ready_file = \"transfer.ready\"\n\
                 [[transfer.zone]]\nname = \"bench.test\"\nprimaries = [\"{primary}\"]\n"
            ),
        ),
        (
            "c.toml",
            format!(
                "{head}[listener]\nlisten = [\"127.0.0.1:{root_port}\"]\nready_file = \"c-listener.ready\"\n\
                 authority = \"unix:c.sock\"\n\
                 [authority]\ngrpc = \"unix:c.sock\"\nready_file = \"c.ready\"\n\
                 [[authority.zone]]\nname = \".\"\nfile = \"root.zone\"\n\
                 [[authority.zone]]\nname = \"rtest\"\nfile = \"rtest.zone\"\n"
            ),
        ),
        ("r1.toml", resolver_config(head, 1, root_port)),
        ("r2.toml", resolver_config(head, 2, root_port)),
        (
            "front.toml",
            format!(
                "{head}[listener]\nlisten = [\"{listen}\"]\nready_file = \"front.ready\"\n\
                 authority = [\"unix:a.sock\", \"unix:b.sock\"]\n\
                 resolver = [\"unix:r1.sock\", \"unix:r2.sock\"]\npacket_cache_bytes = 0\n"
            ),
        ),
    ];
    for (file, text) in &configs {
        std::fs::write(work.join(file), text)?;
    }
    let daemon = |name, binary, file, ready| Daemon {
        name,
        binary,
        file,
        ready,
        takeover: binary == "sextant-listener",
        child: None,
    };
    let mut daemons = vec![
        daemon("authority A", "sextant-authority", "a.toml", "a.ready"),
        daemon(
            "A's listener",
            "sextant-listener",
            "a.toml",
            "a-listener.ready",
        ),
        daemon("transfer", "sextant-transfer", "b.toml", "transfer.ready"),
        daemon("authority B", "sextant-authority", "b.toml", "b.ready"),
        daemon("root authority", "sextant-authority", "c.toml", "c.ready"),
        daemon(
            "root listener",
            "sextant-listener",
            "c.toml",
            "c-listener.ready",
        ),
        daemon("resolver 1", "sextant-resolver", "r1.toml", "r1.ready"),
        daemon("resolver 2", "sextant-resolver", "r2.toml", "r2.ready"),
        daemon(
            "front listener",
            "sextant-listener",
            "front.toml",
            "front.ready",
        ),
    ];
    let outcome = (|| -> anyhow::Result<String> {
        for daemon in &mut daemons {
            start(daemon, &bin, &work)?;
        }
        wait_answering(listen, &mut [])?;
        // B has the zone once the front gets only answers, whichever authority it asks.
        let started = Instant::now();
        while !all_answer(listen, 50)? {
            if started.elapsed() > READY_TIMEOUT {
                bail!("authority B never served the transferred zone");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut failed = Vec::new();
        let mut table = format!(
            "dnsperf at {rate} q/s for {seconds} s per step (1 s timeout); 1 s into its step one\n\
             daemon stopped (SIGTERM) and started again, a listener replaced by a successor\n\
             started first (REFUSED would mean a recursive query routed wrong)\n\
             {:<16} {:>8} {:>6} {:>9} {:>8} {:>10}\n",
            "restarted", "sent", "lost", "SERVFAIL", "REFUSED", "restart s"
        );
        // Each restartable daemon in turn (A's listener only carries transfers, C and
        // its listener are the resolvers' internet).
        for step in [None, Some(0), Some(3), Some(2), Some(6), Some(7), Some(8)] {
            let label = step.map_or("nothing", |i| daemons[i].name);
            eprintln!("== {label}");
            let load = {
                let queries = queries.clone();
                let args = [
                    "-Q".to_string(),
                    rate.to_string(),
                    "-l".to_string(),
                    seconds.to_string(),
                    "-t".to_string(),
                    "1".to_string(),
                ];
                std::thread::spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    dnsperf(listen, &queries, &args)
                })
            };
            std::thread::sleep(Duration::from_secs(1));
            let took = match step {
                Some(index) => {
                    let started = Instant::now();
                    let daemon = &mut daemons[index];
                    let old = daemon.child.take();
                    if daemon.takeover {
                        start(daemon, &bin, &work)?;
                    }
                    if let Some(child) = old {
                        stop(&mut [child]);
                    }
                    if !daemon.takeover {
                        start(daemon, &bin, &work)?;
                    }
                    format!("{:.2}", started.elapsed().as_secs_f64())
                }
                None => "-".into(),
            };
            let report = load
                .join()
                .map_err(|_| anyhow::anyhow!("the dnsperf thread panicked"))??;
            let code = |name: &str| {
                report
                    .lines()
                    .find(|l| l.trim_start().starts_with("Response codes:"))
                    .and_then(|l| l.split(&format!("{name} ")).nth(1))
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let (servfail, refused) = (code("SERVFAIL"), code("REFUSED"));
            let lost = field(&report, "Queries lost:");
            let sent = field(&report, "Queries sent:");
            if sent < 1.0 || lost > 0.0 || servfail != 0 || refused != 0 {
                failed.push(label);
            }
            writeln!(
                table,
                "{:<16} {:>8} {:>6} {:>9} {:>8} {:>10}",
                label, sent, lost, servfail, refused, took
            )?;
        }
        if check && !failed.is_empty() {
            bail!(
                "queries lost or answered SERVFAIL or REFUSED at: {}\n{table}",
                failed.join(", ")
            );
        }
        Ok(table)
    })();
    for daemon in daemons.iter_mut().rev() {
        if let Some(child) = daemon.child.take() {
            stop(&mut [child]);
        }
    }
    let table = outcome?;
    println!("{table}");
    std::fs::write(work.join("results.txt"), &table)?;
    Ok(())
}

/// Resolver `n`'s config: recursion from C's root, no validation (an unsigned lab).
fn resolver_config(head: &str, n: u8, root_port: u16) -> String {
    format!(
        "{head}[resolver]\ngrpc = \"unix:r{n}.sock\"\nready_file = \"r{n}.ready\"\n\
         root_hints = \"root.hints\"\nupstream_port = {root_port}\nvalidation = false\n"
    )
}

/// Starts `daemon` and waits for its ready file.
fn start(daemon: &mut Daemon, bin: &Path, work: &Path) -> anyhow::Result<()> {
    let config = daemon.file;
    let ready = work.join(daemon.ready);
    let _ = std::fs::remove_file(&ready);
    let args = vec![
        "--config".to_string(),
        work.join(config).display().to_string(),
    ];
    let mut child = spawn_logged(None, &bin.join(daemon.binary), &args, work)?;
    let started = Instant::now();
    while !ready.exists() {
        if let Some(status) = child.try_wait()? {
            bail!(
                "{} exited ({status}) during start-up; see {}",
                daemon.name,
                work.display()
            );
        }
        if started.elapsed() > READY_TIMEOUT {
            let _ = child.kill();
            bail!("{} not ready after {READY_TIMEOUT:?}", daemon.name);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    daemon.child = Some(child);
    Ok(())
}

/// Whether `count` queries for a name of the zone all get NOERROR with an answer.
fn all_answer(addr: SocketAddr, count: usize) -> anyhow::Result<bool> {
    let query = [
        0x43, 0x21, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'n', b's', b'1', 5, b'b', b'e', b'n', b'c',
        b'h', 4, b't', b'e', b's', b't', 0, 0, 1, 0, 1,
    ];
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut buffer = [0u8; 512];
    for _ in 0..count {
        socket.send_to(&query, addr)?;
        match socket.recv_from(&mut buffer) {
            Ok((len, _)) if len > 12 && buffer[3] & 0x0f == 0 && buffer[7] > 0 => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}
