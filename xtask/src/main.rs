//! `cargo xtask run`: build and start the whole suite on loopback with the sample
//! configuration. `cargo xtask test`: lint, build and run every test, installing the
//! test peers (dig, ...) from Debian packages when they are missing and we may.
//! `cargo xtask bench`: dnsperf against Sextant and the peers, side by side.

mod bench;
mod bench_encrypted;
mod bench_floor;
mod bench_load;
mod bench_resolver;
mod bench_restart;
mod bench_rpc;
mod bench_sign;
mod bench_transfer;
mod install;
mod peers;
mod run;

use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Sextant project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build and run every daemon with samples/sextant.toml until Ctrl-C.
    Run {
        /// Build and run release binaries.
        #[arg(long)]
        release: bool,
    },
    /// Measure Sextant and NSD, Knot and BIND with dnsperf on the same zone and queries.
    Bench {
        /// A one-minute smoke run (small zone, short runs) that proves the bench works.
        #[arg(long)]
        quick: bool,
        /// Only these rows: a comma-separated list of parts of row names (`sextant`,
        /// `nsd`, `dnssec` for the signed-zone rows, `cookie`) or whole names after `=`
        /// (`=floor,=sextant-cache,=nsd`).
        #[arg(long)]
        only: Option<String>,
        /// Also measure the Sextant binaries in this directory (another build, e.g.
        /// the previous commit's target/release), as `baseline-cache` and
        /// `baseline-nocache` rows beside this build's: a before/after in one run.
        #[arg(long)]
        baseline: Option<std::path::PathBuf>,
        /// Let servers and dnsperf run on any CPU (by default, with two CPUs or more,
        /// each server runs on one CPU and dnsperf on another).
        #[arg(long)]
        no_pin: bool,
    },
    /// The bench's floor row: a minimal UDP responder on 127.0.0.1:PORT (run by
    /// `bench`, not by hand).
    #[command(hide = true)]
    BenchFloor {
        #[arg(long)]
        port: u16,
    },
    /// The listener-to-backend hop alone: a unary gRPC call per query against the
    /// streaming lanes, on an authority loaded with the benchmark zone.
    BenchRpc {
        /// Seconds per mode.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Resolver cache hits and misses on a loopback hierarchy: Sextant, Unbound,
    /// PowerDNS Recursor (needs root: the lab servers use port 53).
    BenchResolver {
        /// Fewer names and shorter runs.
        #[arg(long)]
        quick: bool,
        /// Sign the lab (dnssec-signzone, each DS in its parent) and run every
        /// resolver validating, with DO=1 on every query.
        #[arg(long)]
        signed: bool,
        /// Instead of the hit and miss runs: a random-subdomain flood (10k q/s of new
        /// names under one zone, 60 s, 10 s with --quick) with a prober, peak memory
        /// of each resolver beside the others.
        #[arg(long)]
        flood: bool,
        /// The flood's length in seconds (e.g. 600 for the drift run: memory at each
        /// minute and its change from minute 2 to the end).
        #[arg(long, requires = "flood")]
        flood_secs: Option<u32>,
    },
    /// DNS over TLS and over HTTPS at saturation (dnsperf -m dot / -m doh): Sextant
    /// against dnsdist in front of NSD, same zone, one CPU each.
    BenchEncrypted {
        /// Seconds of each measurement.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// Do not pin the servers and dnsperf to CPUs of their own.
        #[arg(long)]
        no_pin: bool,
    },
    /// A rolling restart under a fixed dnsperf load: each daemon of a front listener,
    /// two authorities (one a secondary) and a transfer daemon stopped and started in
    /// turn; queries lost and SERVFAIL per step.
    BenchRestart {
        /// Queries per second.
        #[arg(long, default_value_t = 20_000)]
        rate: u32,
        /// Seconds of load per step.
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        /// Fail unless every step lost nothing and got no SERVFAIL.
        #[arg(long)]
        check: bool,
    },
    /// AXFR of a large generated zone from a Knot primary into Sextant, Knot and
    /// BIND as secondaries: time until served and peak memory; then an IXFR of
    /// 1,000 changed records: time from NOTIFY until served.
    BenchTransfer {
        /// Records in the generated zone.
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
        /// Only these secondaries (sextant, knot, bind), e.g. `--only sextant`.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Sign a large generated zone with Sextant, dnssec-signzone and Knot (NSEC3
    /// and NSEC), then time Sextant's re-signing after one change.
    BenchSign {
        /// Records in the generated zone.
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
    },
    /// Load a large generated zone into Sextant, NSD and Knot: time and memory.
    BenchLoad {
        /// Records in the generated zone.
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
    },
    /// Install the binaries, systemd units, sysusers entry, docs and a starting
    /// /etc/sextant/sextant.toml (never overwritten) as docs/operations.md lays out.
    Install {
        /// Where binaries, units and docs go (bin/, lib/systemd/system/, share/doc/).
        #[arg(long, default_value = "/usr")]
        prefix: std::path::PathBuf,
        /// Stage the tree under this directory instead of / (packaging, tests).
        #[arg(long)]
        destdir: Option<std::path::PathBuf>,
        /// Install the debug build instead of the release build.
        #[arg(long)]
        debug: bool,
        /// Install what target/ already holds; do not run cargo build.
        #[arg(long)]
        no_build: bool,
    },
    /// Check formatting and lints, build, and run the whole test suite.
    Test {
        /// Skip `cargo fmt --check` and `cargo clippy`.
        #[arg(long)]
        no_lint: bool,
        /// Skip the closing `bench --quick` smoke run (it builds release binaries).
        #[arg(long)]
        no_bench: bool,
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Run { release } => run::run(release),
        Task::BenchLoad { records } => bench_load::bench_load(records),
        Task::BenchSign { records } => bench_sign::bench_sign(records),
        Task::BenchRpc { seconds } => bench_rpc::bench_rpc(seconds),
        Task::BenchResolver {
            quick,
            signed,
            flood,
            flood_secs,
        } => {
            let seconds = flood_secs.unwrap_or(if quick { 10 } else { 60 });
            bench_resolver::bench_resolver(quick, signed, flood.then_some(seconds))
        }
        Task::BenchEncrypted { seconds, no_pin } => {
            bench_encrypted::bench_encrypted(seconds, !no_pin)
        }
        Task::BenchRestart {
            rate,
            seconds,
            check,
        } => bench_restart::bench_restart(rate, seconds, check),
        Task::BenchTransfer { records, only } => bench_transfer::bench_transfer(records, &only),
        Task::Bench {
            quick,
            only,
            baseline,
            no_pin,
        } => {
            let mut plan = if quick {
                bench::Plan::quick()
            } else {
                bench::Plan::full()
            };
            plan.pin = !no_pin;
            bench::bench(plan, only.as_deref(), baseline.as_deref())
        }
        Task::BenchFloor { port } => bench_floor::serve(port),
        Task::Install {
            prefix,
            destdir,
            debug,
            no_build,
        } => install::install(&prefix, destdir.as_deref(), debug, no_build),
        Task::Test {
            no_lint,
            no_bench,
            cargo_args,
        } => test(no_lint, no_bench, &cargo_args),
    }
}

fn test(no_lint: bool, no_bench: bool, cargo_args: &[String]) -> anyhow::Result<()> {
    peers::ensure(peers::TEST_PEERS)?;
    if !no_lint {
        cargo(&["fmt", "--all", "--", "--check"])
            .context("formatting differs: run `cargo fmt --all`")?;
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])?;
    }
    // System tests start the real binaries: build them before the tests run.
    cargo(&["build", "--workspace", "--bins"])?;
    // The systemd test boots the tree `xtask install` lays out: build this binary too.
    cargo(&["build", "--package", "xtask"])?;
    let mut args = vec!["test", "--workspace"];
    args.extend(cargo_args.iter().map(String::as_str));
    cargo(&args)?;
    // The benchmark is part of the product (README promises every figure from one
    // command): prove it still runs end to end, without judging this machine's speed.
    if !no_bench && cargo_args.is_empty() {
        bench::bench(bench::Plan::quick(), None, None)
            .context("`cargo xtask bench --quick` failed")?;
        bench::check_smoke_run()?;
        // The rolling restart at a rate any machine keeps up with: lost queries here
        // are the restarts' fault, not the machine's.
        bench_restart::bench_restart(5_000, 3, true)
            .context("`cargo xtask bench-restart --rate 5000 --seconds 3 --check` failed")?;
    }
    Ok(())
}

pub(crate) fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

pub(crate) fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}
