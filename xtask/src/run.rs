//! `cargo xtask run`: the whole suite on loopback with samples/sextant.toml.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{cargo, workspace_root};

/// Backends first: the authority follows the transfer daemon's versions, the listener
/// learns its zones from the authority.
const DAEMONS: &[(&str, &str)] = &[
    ("sextant-transfer", "transfer.ready.json"),
    ("sextant-authority", "authority.ready.json"),
    ("sextant-resolver", "resolver.ready.json"),
    ("sextant-listener", "listener.ready.json"),
];
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn run(release: bool) -> anyhow::Result<()> {
    let mut build = vec!["build", "--workspace", "--bins"];
    if release {
        build.push("--release");
    }
    cargo(&build)?;
    let root = workspace_root();
    let bin_dir = root
        .join("target")
        .join(if release { "release" } else { "debug" });
    let config = root.join("samples/sextant.toml");
    let run_dir = root.join("samples/run");
    std::fs::create_dir_all(&run_dir)?;

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;

    let mut children: Vec<(&str, Child)> = Vec::new();
    let outcome = start_all(&bin_dir, &config, &run_dir, &mut children).and_then(|listen| {
        println!();
        println!("Sextant is running with samples/sextant.toml. Try:");
        println!("    dig @127.0.0.1 -p {} www.example.com A", listen.port());
        println!(
            "    dig @127.0.0.1 -p {} www.example.com AAAA +tcp",
            listen.port()
        );
        println!("    dig @127.0.0.1 -p {} -x 192.0.2.80", listen.port());
        println!(
            "    dig @127.0.0.1 -p {} www.iana.org   # recursion (needs Internet access)",
            listen.port()
        );
        println!("    kdig @127.0.0.1 -p 8530 +tls www.example.com     # DNS over TLS");
        println!("    dig @127.0.0.1 -p 4430 +https www.example.com    # DNS over HTTPS");
        println!("Ctrl-C stops every daemon.");
        supervise(&mut children, &stop)
    });
    stop_all(&mut children);
    outcome
}

fn start_all(
    bin_dir: &Path,
    config: &Path,
    run_dir: &Path,
    children: &mut Vec<(&'static str, Child)>,
) -> anyhow::Result<std::net::SocketAddr> {
    let mut listen = None;
    for (name, ready_file) in DAEMONS {
        let ready_path = run_dir.join(ready_file);
        let _ = std::fs::remove_file(&ready_path);
        let child = Command::new(bin_dir.join(name))
            .arg("--config")
            .arg(config)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        children.push((name, child));
        let ready = wait_ready(&ready_path, children)?;
        if let Some(addr) = ready
            .get("udp")
            .and_then(|v| v.get(0))
            .and_then(|v| v.as_str())
        {
            listen = Some(addr.parse()?);
        }
    }
    listen.context("the listener's ready file has no address")
}

fn wait_ready(path: &PathBuf, children: &mut [(&str, Child)]) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(value) = serde_json::from_str(&text)
        {
            return Ok(value);
        }
        for (name, child) in children.iter_mut() {
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited ({status}) during start-up; its error is printed above");
            }
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!("no ready file {} after {READY_TIMEOUT:?}", path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for Ctrl-C or for a daemon to stop. Ctrl-C reaches the daemons too (same
/// process group), so one may exit before our handler runs: a clean exit is a stop,
/// only a failure is an error.
fn supervise(children: &mut [(&str, Child)], stop: &AtomicBool) -> anyhow::Result<()> {
    while !stop.load(Ordering::SeqCst) {
        for (name, child) in children.iter_mut() {
            if let Some(status) = child.try_wait()? {
                std::thread::sleep(Duration::from_millis(300));
                if status.success() || stop.load(Ordering::SeqCst) {
                    eprintln!("{name} stopped; stopping the others");
                    return Ok(());
                }
                bail!("{name} exited ({status}); stopping the others");
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// SIGTERM to each child by PID (graceful), SIGKILL after a grace period.
fn stop_all(children: &mut Vec<(&str, Child)>) {
    for (_, child) in children.iter() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for (name, child) in children.iter_mut().rev() {
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = child.try_wait() {
            eprintln!("{name} did not stop in time; killing it");
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    children.clear();
}
