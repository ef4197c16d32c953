//! `cargo xtask bench-transfer`: a Knot primary serves a generated zone; Sextant
//! (transfer daemon + authority + listener), Knot and BIND each start empty as its
//! secondary, one after another. Reported: seconds from start until the secondary
//! answers with the zone's serial (the whole AXFR received, checked, stored and
//! served), and the peak memory of the secondary's processes (VmHWM). Then, with the
//! secondary serving, 1,000 records of the primary change by one dynamic update
//! (`nsupdate`), and the bench sends the secondary a NOTIFY: the time from that
//! NOTIFY until the secondary answers with the new serial is the IXFR figure. (The
//! bench sends it rather than the primary: Knot sends its own about a second after
//! a dynamic update, which would be measured for every secondary alike.)

use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::{generate_zone, stop, wait_snapshot};
use crate::{cargo, peers, workspace_root};

const PEERS: &[(&str, &str)] = &[("knotd", "knot"), ("named", "bind9")];
const ZONE: &str = "bench.test";
const SERIAL: u32 = 1;
/// Records changed by the update that the IXFR carries.
const CHANGED: usize = 1000;
const PRIMARY_PORT: u16 = 15500;
/// A million records take a while everywhere.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

pub(crate) fn bench_transfer(records: usize, only: &[String]) -> anyhow::Result<()> {
    peers::ensure(PEERS)?;
    cargo(&["build", "--release", "--workspace", "--bins"])?;
    let root = workspace_root();
    let work = root.join("target/bench/transfer");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let zone_file = work.join("primary.zone");
    generate_zone(records, &zone_file)?;
    let primary_addr: SocketAddr = ([127, 0, 0, 1], PRIMARY_PORT).into();
    let mut primary = vec![start_knot_primary(&work.join("primary"), &zone_file)?];
    let outcome = (|| -> anyhow::Result<String> {
        wait_serial(primary_addr, SERIAL, &mut primary, TRANSFER_TIMEOUT)
            .context("the Knot primary did not load the zone")?;
        let mut table = format!(
            "AXFR of {records} records from a Knot primary; IXFR: {CHANGED} of them changed on the\n\
             primary, ms from a NOTIFY until the secondary answers the new serial;\n\
             restart: Sextant's three daemons stopped and started again, until the zone is\n\
             answered (from the store and the authority's snapshot); peak MB per process:\n\
             transfer + authority + listener\n{:<10} {:>10} {:>10} {:>10} {:>10}\n",
            "secondary", "AXFR s", "peak MB", "IXFR ms", "restart s"
        );
        let mut serial = SERIAL;
        for (index, secondary) in ["sextant", "knot", "bind"].into_iter().enumerate() {
            if !only.is_empty() && !only.iter().any(|o| o == secondary) {
                continue;
            }
            let port = PRIMARY_PORT + 1 + index as u16;
            let dir = work.join(secondary);
            std::fs::create_dir_all(&dir)?;
            eprintln!("== {secondary} as the secondary on 127.0.0.1:{port}");
            let started = Instant::now();
            let mut processes = start_secondary(secondary, &root, &dir, port)?;
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let waited = wait_serial(addr, serial, &mut processes, TRANSFER_TIMEOUT);
            let seconds = started.elapsed().as_secs_f64();
            let peaks: Vec<u64> = processes.iter().map(|c| peak_kb(c.id())).collect();
            let peak_kb: u64 = peaks.iter().sum();
            // Sextant's three daemons one by one (transfer, authority, listener).
            let per_process = if peaks.len() > 1 {
                let mb: Vec<String> = peaks
                    .iter()
                    .map(|kb| format!("{:.0}", *kb as f64 / 1024.0))
                    .collect();
                format!(" ({})", mb.join(" + "))
            } else {
                String::new()
            };
            let snapshot = if secondary == "sextant" && waited.is_ok() {
                wait_snapshot(
                    &dir.join("authority-state/snapshots"),
                    std::time::UNIX_EPOCH,
                    TRANSFER_TIMEOUT,
                )
            } else {
                Ok(())
            };
            let ixfr = match (&waited, &snapshot) {
                (Ok(()), Ok(())) => {
                    serial += 1;
                    change_primary(&work, records, serial).and_then(|()| {
                        let started = Instant::now();
                        notify(addr)?;
                        wait_serial(addr, serial, &mut processes, TRANSFER_TIMEOUT)?;
                        Ok(started.elapsed().as_secs_f64() * 1000.0)
                    })
                }
                _ => Ok(0.0),
            };
            stop(&mut processes);
            waited?;
            snapshot?;
            let ixfr = ixfr?;
            let restart = if secondary == "sextant" {
                let started = Instant::now();
                let mut processes = start_secondary(secondary, &root, &dir, port)?;
                let waited = wait_serial(addr, serial, &mut processes, TRANSFER_TIMEOUT);
                let seconds = started.elapsed().as_secs_f64();
                stop(&mut processes);
                waited?;
                format!("{seconds:.2}")
            } else {
                "-".into()
            };
            writeln!(
                table,
                "{secondary:<10} {seconds:>10.2} {:>10.1} {ixfr:>10.1} {restart:>10}{per_process}",
                peak_kb as f64 / 1024.0
            )?;
        }
        Ok(table)
    })();
    stop(&mut primary);
    let table = outcome?;
    println!("\n{table}");
    std::fs::write(work.join("results.txt"), &table)?;
    Ok(())
}

fn spawn(program: &Path, args: &[String], dir: &Path) -> anyhow::Result<Child> {
    crate::bench::spawn_logged(None, program, args, dir)
}

fn start_knot_primary(dir: &Path, zone_file: &Path) -> anyhow::Result<Child> {
    std::fs::create_dir_all(dir)?;
    let d = dir.display();
    let config = dir.join("knot.conf");
    std::fs::write(
        &config,
        format!(
            "server:\n    listen: 127.0.0.1@{PRIMARY_PORT}\n    rundir: \"{d}\"\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
             database:\n    storage: \"{d}\"\nlog:\n  - target: stderr\n    any: warning\n\
             acl:\n  - id: transfer\n    address: 127.0.0.0/8\n    action: [transfer, update]\n\
             zone:\n  - domain: {ZONE}\n    file: \"{}\"\n    storage: \"{d}\"\n    zonefile-sync: -1\n    journal-content: changes\n    acl: transfer\n",
            zone_file.display()
        ),
    )?;
    spawn(
        Path::new("knotd"),
        &["-c".into(), config.display().to_string()],
        dir,
    )
}

fn start_secondary(
    secondary: &str,
    root: &Path,
    dir: &Path,
    port: u16,
) -> anyhow::Result<Vec<Child>> {
    let d = dir.display();
    match secondary {
        "sextant" => {
            let config = dir.join("sextant.toml");
            std::fs::write(
                &config,
                format!(
                    "[log]\nlevel = \"info\"\n[listener]\nlisten = [\"127.0.0.1:{port}\"]\n\
                     [authority]\ngrpc = \"unix:{d}/authority.sock\"\nready_file = \"{d}/authority.ready\"\nstate_dir = \"{d}/authority-state\"\n\
                     [transfer]\ngrpc = \"unix:{d}/transfer.sock\"\nstate_dir = \"{d}/state\"\nready_file = \"{d}/transfer.ready\"\n\
                     transfer_timeout = \"60s\"\n\
                     [[transfer.zone]]\nname = \"{ZONE}\"\nprimaries = [\"127.0.0.1:{PRIMARY_PORT}\"]\n"
                ),
            )?;
            let bin = root.join("target/release");
            let args = vec!["--config".to_string(), config.display().to_string()];
            let mut processes = Vec::new();
            for (daemon, ready) in [
                ("sextant-transfer", Some("transfer.ready")),
                ("sextant-authority", Some("authority.ready")),
                ("sextant-listener", None),
            ] {
                if let Some(ready) = ready {
                    let _ = std::fs::remove_file(dir.join(ready));
                }
                processes.push(spawn(&bin.join(daemon), &args, dir)?);
                if let Some(ready) = ready {
                    let started = Instant::now();
                    while !dir.join(ready).exists() {
                        if started.elapsed() > TRANSFER_TIMEOUT {
                            stop(&mut processes);
                            bail!("{daemon} not ready; see {d}/{daemon}.log");
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            Ok(processes)
        }
        "knot" => {
            let config = dir.join("knot.conf");
            std::fs::write(
                &config,
                format!(
                    "server:\n    listen: 127.0.0.1@{port}\n    rundir: \"{d}\"\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
                     database:\n    storage: \"{d}\"\nlog:\n  - target: stderr\n    any: warning\n\
                     remote:\n  - id: primary\n    address: 127.0.0.1@{PRIMARY_PORT}\n\
                     acl:\n  - id: notify\n    address: 127.0.0.1\n    action: notify\n\
                     zone:\n  - domain: {ZONE}\n    master: primary\n    acl: notify\n    storage: \"{d}\"\n    zonefile-sync: -1\n    journal-content: none\n"
                ),
            )?;
            Ok(vec![spawn(
                Path::new("knotd"),
                &["-c".into(), config.display().to_string()],
                dir,
            )?])
        }
        "bind" => {
            let config = dir.join("named.conf");
            std::fs::write(
                &config,
                format!(
                    "options {{ directory \"{d}\"; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};\n  \
                     recursion no; pid-file \"{d}/named.pid\"; }};\ncontrols {{ }};\n\
                     zone \"{ZONE}\" {{ type secondary; primaries {{ 127.0.0.1 port {PRIMARY_PORT}; }}; file \"{d}/secondary.zone\"; }};\n"
                ),
            )?;
            Ok(vec![spawn(
                Path::new("named"),
                &[
                    "-g".into(),
                    "-n".into(),
                    "1".into(),
                    "-c".into(),
                    config.display().to_string(),
                ],
                dir,
            )?])
        }
        other => bail!("unknown secondary {other}"),
    }
}

/// Changes `CHANGED` of the primary's records, spread over the zone, by one dynamic
/// update (the primary's serial becomes `serial`); returns once the primary
/// answers with it.
fn change_primary(work: &Path, records: usize, serial: u32) -> anyhow::Result<()> {
    let mut script = format!("server 127.0.0.1 {PRIMARY_PORT}\nzone {ZONE}.\n");
    let step = (records / CHANGED).max(1);
    for k in 0..CHANGED.min(records) {
        let host = k * step;
        writeln!(script, "update delete h{host}.{ZONE}. A")?;
        writeln!(
            script,
            "update add h{host}.{ZONE}. 3600 A 172.{}.{}.{}",
            16 + serial % 16,
            (k >> 8) & 255,
            k & 255
        )?;
    }
    script.push_str("send\n");
    let path = work.join("update.txt");
    std::fs::write(&path, script)?;
    let status = Command::new("nsupdate")
        .arg("-v")
        .arg(&path)
        .status()
        .context("running nsupdate (bind9-dnsutils)")?;
    if !status.success() {
        bail!("nsupdate failed ({status}); see {}", path.display());
    }
    let mut none = [];
    wait_serial(
        ([127, 0, 0, 1], PRIMARY_PORT).into(),
        serial,
        &mut none,
        TRANSFER_TIMEOUT,
    )
    .context("the primary did not take the update")
}

/// A message with ID `id`, the first flags byte `flags` (QR, opcode, AA...) and one
/// question: the zone's SOA.
fn soa_question(id: u16, flags: u8) -> Vec<u8> {
    let mut message = id.to_be_bytes().to_vec();
    message.extend_from_slice(&[flags, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in ZONE.split('.') {
        message.push(label.len() as u8);
        message.extend_from_slice(label.as_bytes());
    }
    message.extend_from_slice(&[0, 0, 6, 0, 1]);
    message
}

/// Sends a NOTIFY for the zone to `addr` from 127.0.0.1 (the primary's address, so
/// every secondary accepts it) and waits for its answer.
fn notify(addr: SocketAddr) -> anyhow::Result<()> {
    // Opcode NOTIFY with AA.
    let message = soa_question(0x4e07, 0x24);
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buffer = [0u8; 512];
    for _ in 0..10 {
        socket.send_to(&message, addr)?;
        if let Ok((len, _)) = socket.recv_from(&mut buffer)
            && len >= 4
            && buffer[..2] == message[..2]
        {
            return Ok(());
        }
    }
    bail!("{addr} did not answer a NOTIFY")
}

/// Polls `addr` with SOA queries until it answers with `serial`.
fn wait_serial(
    addr: SocketAddr,
    serial: u32,
    processes: &mut [Child],
    limit: Duration,
) -> anyhow::Result<()> {
    // A query, no RD.
    let query = soa_question(0x510a, 0);
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    // Short: a millisecond figure is read from this poll.
    socket.set_read_timeout(Some(Duration::from_millis(2)))?;
    let started = Instant::now();
    let mut buffer = [0u8; 1500];
    loop {
        for child in processes.iter_mut() {
            if let Some(status) = child.try_wait()? {
                bail!("a process exited ({status}) before the zone was served");
            }
        }
        socket.send_to(&query, addr)?;
        if let Ok((len, _)) = socket.recv_from(&mut buffer)
            && answered_serial(&buffer[..len]) == Some(serial)
        {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("{addr} did not serve serial {serial} within {limit:?}");
        }
    }
}

/// The serial of an answer whose first answer record is an SOA.
fn answered_serial(answer: &[u8]) -> Option<u32> {
    let rcode = answer.get(3)? & 0x0f;
    let answers = u16::from_be_bytes([*answer.get(6)?, *answer.get(7)?]);
    if rcode != 0 || answers == 0 {
        return None;
    }
    let question_end = skip_name(answer, 12)? + 4;
    let rdata = skip_name(answer, question_end)? + 10;
    let serial_at = skip_name(answer, skip_name(answer, rdata)?)?;
    let serial = answer.get(serial_at..serial_at + 4)?;
    Some(u32::from_be_bytes([
        serial[0], serial[1], serial[2], serial[3],
    ]))
}

/// Skips a possibly compressed name.
fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *message.get(at)?;
        match len & 0xc0 {
            0 if len == 0 => return Some(at + 1),
            0 => at += 1 + usize::from(len),
            0xc0 => return Some(at + 2),
            _ => return None,
        }
    }
    None
}

/// Peak resident memory of a process, KiB.
fn peak_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}
