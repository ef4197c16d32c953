//! `cargo xtask bench-sign`: signing one large generated zone, from its unsigned
//! file to signed, with Sextant's authority, BIND's `dnssec-signzone` and Knot, all
//! with one ECDSA P-256 key (a CSK) and no NSEC3 salt or extra iterations, for NSEC3
//! and for NSEC; then Sextant's re-signing after one record changed.
//!
//! What each figure covers: Sextant, from the authority's start to its ready file
//! (keys made, zone read, checked, signed, stored and built for serving); BIND, the
//! `dnssec-signzone` run (read, sign with both cores, write; keys made before);
//! Knot, from knotd's start until it logs the zone signed (read, sign, load).

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::{ZONE, generate_zone, pss_kb, stop};
use crate::{cargo, peers, workspace_root};

/// Longest any signer may take before the run is called failed.
const SIGN_TIMEOUT: Duration = Duration::from_secs(1_800);

/// What the reload after one change said of its signing.
struct Change {
    /// The time the change's signing took, when it was signed as a change.
    ms: Option<f64>,
    made: u64,
}

/// One signer's figures.
struct Figures {
    seconds: f64,
    peak_mb: f64,
}

pub(crate) fn bench_sign(records: usize) -> anyhow::Result<()> {
    peers::ensure(&[("dnssec-signzone", "bind9-utils"), ("knotd", "knot")])?;
    cargo(&["build", "--release", "--workspace", "--bins"])?;
    let root = workspace_root();
    let work = root.join("target/bench/sign");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let zone_file = work.join(format!("{ZONE}.zone"));
    generate_zone(records, &zone_file)?;
    let mut table = format!(
        "signing a zone of {records} A records, one ECDSA P-256 key, no NSEC3 salt or extra iterations\n\
         {:<18} {:>7} {:>10} {:>12} {:>9}\n",
        "signer", "denial", "seconds", "records/s", "peak MB"
    );
    let mut resign = String::new();
    for denial in ["nsec3", "nsec"] {
        let dir = work.join(denial);
        std::fs::create_dir_all(&dir)?;
        let sextant = sextant(
            &root.join("target/release"),
            &dir.join("sextant"),
            &zone_file,
            denial,
        )?;
        let bind = bind(&dir.join("bind"), &zone_file, denial)?;
        let knot = knot(&dir.join("knot"), &zone_file, denial)?;
        for (name, figures) in [
            ("sextant", &sextant.0),
            ("dnssec-signzone", &bind),
            ("knot", &knot),
        ] {
            writeln!(
                table,
                "{name:<18} {denial:>7} {:>10.2} {:>12.0} {:>9.1}",
                figures.seconds,
                records as f64 / figures.seconds,
                figures.peak_mb
            )?;
        }
        let (reload, change) = &sextant.1;
        writeln!(
            resign,
            "sextant {denial}: one record changed: the reload (file read and checked again, the change signed, stored, served) {:.2} s; signing the change {} ({} signatures made)",
            reload,
            change.ms.map_or_else(
                || "was a whole-zone pass".to_string(),
                |ms| format!("{ms:.2} ms")
            ),
            change.made
        )?;
    }
    println!("\n{table}\n{resign}");
    std::fs::write(work.join("results.txt"), format!("{table}\n{resign}"))?;
    Ok(())
}

/// Samples the memory of `child` until it ends or `done` says so; the peak, MB.
fn watch_peak(
    child: &mut Child,
    mut done: impl FnMut(&mut Child) -> anyhow::Result<bool>,
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let mut peak = 0;
    loop {
        peak = peak.max(pss_kb(child.id()));
        if done(child)? {
            return Ok((started.elapsed().as_secs_f64(), peak as f64 / 1024.0));
        }
        if started.elapsed() > SIGN_TIMEOUT {
            bail!("no signed zone after {SIGN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The authority signing the zone at start; then one change and a reload.
/// Returns its figures, the re-signing time and the signatures it made.
fn sextant(
    bin: &Path,
    dir: &Path,
    zone: &Path,
    denial: &str,
) -> anyhow::Result<(Figures, (f64, Change))> {
    std::fs::create_dir_all(dir)?;
    let local_zone = dir.join("zone");
    std::fs::copy(zone, &local_zone)?;
    let d = dir.display();
    let config = dir.join("sextant.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\nlevel = \"info\"\n[authority]\ngrpc = \"unix:{d}/authority.sock\"\nready_file = \"{d}/ready.json\"\n\
             state_dir = \"{d}/state\"\n[[authority.zone]]\nname = \"{ZONE}\"\nfile = \"{}\"\ndnssec_policy = \"bench\"\n\
             [[dnssec_policy]]\nname = \"bench\"\ndenial = \"{denial}\"\n",
            local_zone.display()
        ),
    )?;
    let log_path = dir.join("authority.log");
    let mut child = Command::new(bin.join("sextant-authority"))
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .spawn()
        .context("starting sextant-authority")?;
    let ready = dir.join("ready.json");
    let outcome = watch_peak(&mut child, |child| {
        if let Some(status) = child.try_wait()? {
            bail!(
                "sextant-authority exited ({status}); see {}",
                log_path.display()
            );
        }
        Ok(ready.exists())
    });
    let resigned = outcome
        .as_ref()
        .ok()
        .map(|_| resign(bin, &config, &local_zone, &log_path));
    stop(std::slice::from_mut(&mut child));
    let (seconds, peak_mb) = outcome?;
    let resigned = resigned.unwrap_or_else(|| Ok((0.0, Change { ms: None, made: 0 })))?;
    Ok((Figures { seconds, peak_mb }, resigned))
}

/// One address changed in the file and `sextantctl zone reload`: the time until
/// the reload returned (the new version signed and served), and what the log
/// says of the change's signing.
fn resign(bin: &Path, config: &Path, zone: &Path, log: &Path) -> anyhow::Result<(f64, Change)> {
    let text = std::fs::read_to_string(zone)?;
    std::fs::write(
        zone,
        text.replacen("h0 A 10.0.0.0", "h0 A 10.255.255.255", 1),
    )?;
    let started = Instant::now();
    let status = Command::new(bin.join("sextantctl"))
        .args(["-c"])
        .arg(config)
        .args(["zone", "reload", ZONE])
        .stdout(Stdio::null())
        .status()?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("sextantctl zone reload failed; see {}", log.display());
    }
    // The last "zone change signed" line (or "zone signed", for a whole pass)
    // says how many signatures the reload made, and how long that took.
    let log = std::fs::read_to_string(log)?;
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("zone change signed") || l.contains("zone signed"))
        .unwrap_or_default();
    let field = |name: &str| {
        line.split(&format!("{name}="))
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(|v| v.trim_matches('"').to_string())
    };
    let made = field("made").and_then(|n| n.parse().ok()).unwrap_or(0);
    let ms = line
        .contains("zone change signed")
        .then(|| field("ms").and_then(|n| n.parse().ok()))
        .flatten();
    Ok((seconds, Change { ms, made }))
}

/// `dnssec-signzone` with both cores, one key made beforehand.
fn bind(dir: &Path, zone: &Path, denial: &str) -> anyhow::Result<Figures> {
    std::fs::create_dir_all(dir)?;
    let keygen = Command::new("dnssec-keygen")
        .current_dir(dir)
        .args([
            "-q",
            "-a",
            "ECDSAP256SHA256",
            "-f",
            "KSK",
            "-n",
            "ZONE",
            ZONE,
        ])
        .output()
        .context("dnssec-keygen (apt-get install bind9-utils)")?;
    if !keygen.status.success() {
        bail!("dnssec-keygen: {}", String::from_utf8_lossy(&keygen.stderr));
    }
    let mut args: Vec<String> = vec!["-S", "-z", "-q", "-n", "2", "-K", ".", "-o", ZONE]
        .into_iter()
        .map(String::from)
        .collect();
    if denial == "nsec3" {
        args.extend(["-3".into(), "-".into()]);
    }
    args.extend(["-f".into(), "signed".into()]);
    let mut child = Command::new("dnssec-signzone")
        .current_dir(dir)
        .args(&args)
        .arg(zone)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("signzone.log"))?)
        .spawn()
        .context("dnssec-signzone")?;
    let (seconds, peak_mb) = watch_peak(&mut child, |child| {
        Ok(match child.try_wait()? {
            Some(status) if status.success() => true,
            Some(status) => bail!(
                "dnssec-signzone failed ({status}); see {}/signzone.log",
                dir.display()
            ),
            None => false,
        })
    })?;
    Ok(Figures { seconds, peak_mb })
}

/// knotd with automatic signing, from its start until it logs the zone signed.
fn knot(dir: &Path, zone: &Path, denial: &str) -> anyhow::Result<Figures> {
    std::fs::create_dir_all(dir)?;
    let d = dir.display();
    let nsec3 = if denial == "nsec3" { "on" } else { "off" };
    let config = dir.join("knot.conf");
    std::fs::write(
        &config,
        format!(
            "server:\n    listen: 127.0.0.1@15390\n    rundir: \"{d}\"\n\
             database:\n    storage: \"{d}\"\nlog:\n  - target: stderr\n    any: info\n\
             policy:\n  - id: bench\n    algorithm: ecdsap256sha256\n    single-type-signing: on\n    \
             nsec3: {nsec3}\n    nsec3-iterations: 0\n    nsec3-salt-length: 0\n\
             zone:\n  - domain: {ZONE}.\n    file: \"{}\"\n    storage: \"{d}\"\n    zonefile-sync: -1\n    \
             journal-content: none\n    dnssec-signing: on\n    dnssec-policy: bench\n",
            zone.display()
        ),
    )?;
    let log_path = dir.join("knotd.log");
    let mut child = Command::new("knotd")
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .spawn()
        .context("knotd (apt-get install knot)")?;
    let outcome = watch_peak(&mut child, |child| {
        if let Some(status) = child.try_wait()? {
            bail!("knotd exited ({status}); see {}", log_path.display());
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        Ok(log.contains("successfully signed"))
    });
    stop(std::slice::from_mut(&mut child));
    let (seconds, peak_mb) = outcome?;
    Ok(Figures { seconds, peak_mb })
}
