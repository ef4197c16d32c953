//! `cargo xtask bench-rpc`: the listener-to-backend hop alone, a unary gRPC call per
//! query against the streaming lanes, on an authority loaded with the benchmark zone.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{bench, cargo, workspace_root};

/// Queries kept in flight, as a busy listener does.
const CONCURRENCY: usize = 64;

pub(crate) fn bench_rpc(seconds: u64) -> anyhow::Result<()> {
    cargo(&["build", "--release", "--package", "sextant-authority"])?;
    cargo(&[
        "build",
        "--release",
        "--package",
        "sextant-rpc",
        "--example",
        "unary_vs_stream",
    ])?;
    let root = workspace_root();
    let out = root.join("target/bench");
    let work = out.join("rpc");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let zone = work.join(format!("{}.zone", bench::ZONE));
    let queries = work.join("queries.txt");
    bench::generate(100_000, &zone, &queries)?;
    let config = work.join("sextant.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\nlevel = \"warn\"\n[authority]\ngrpc = \"unix:authority.sock\"\nready_file = \"authority.ready\"\n\
             [[authority.zone]]\nname = \"{}\"\nfile = \"{}\"\n",
            bench::ZONE,
            zone.display()
        ),
    )?;
    let log = std::fs::File::create(work.join("authority.log"))?;
    let authority = Command::new(root.join("target/release/sextant-authority"))
        .args(["--config", &config.display().to_string()])
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting sextant-authority")?;
    let mut processes = vec![authority];
    let outcome = (|| {
        let started = Instant::now();
        while !work.join("authority.ready").exists() {
            if started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "sextant-authority not ready; see {}",
                    work.join("authority.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let output = Command::new(root.join("target/release/examples/unary_vs_stream"))
            .args([
                format!("unix:{}", work.join("authority.sock").display()),
                queries.display().to_string(),
                seconds.to_string(),
                CONCURRENCY.to_string(),
                processes[0].id().to_string(),
            ])
            .stderr(Stdio::inherit())
            .output()
            .context("running unary_vs_stream")?;
        if !output.status.success() {
            bail!("unary_vs_stream failed ({})", output.status);
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    })();
    bench::stop(&mut processes);
    let table = outcome?;
    println!(
        "\nauthority over a Unix socket, 100,000-name zone, {CONCURRENCY} queries in flight, {seconds} s per mode\n{table}"
    );
    std::fs::write(out.join("rpc.txt"), &table)?;
    println!("results: {}", out.join("rpc.txt").display());
    Ok(())
}
