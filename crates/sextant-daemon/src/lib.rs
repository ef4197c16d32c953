//! What every Sextant daemon does the same way: command-line arguments, logging,
//! readiness (ready file and systemd), signals and the exit status.
//!
//! A daemon's `main.rs` is one call to [`main`] with its `run(config, shutdown)`.

mod metrics;
mod ready;
mod signals;

pub use metrics::serve_metrics;
pub use ready::{ReadyFile, notify_ready, notify_stopping};
pub use signals::shutdown_on_signals;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sextant_config::{Config, LogConfig, LogFormat};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Arguments every daemon takes.
#[derive(Debug, Parser)]
pub struct DaemonArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "/etc/sextant/sextant.toml")]
    pub config: PathBuf,
    /// Validate the configuration (and everything it names, such as zone files), then exit.
    #[arg(long)]
    pub check: bool,
}

/// What a daemon plugs into [`main`].
pub trait Daemon {
    const NAME: &'static str;
    /// Deeper checks for `--check` beyond the config file itself (e.g. loading zones).
    fn check(config: &Config) -> anyhow::Result<()>;
    fn run(
        config: Config,
        shutdown: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Parses arguments, loads the configuration, then checks or runs the daemon.
/// Errors end the process with status 1 and the error as one line on stderr.
pub fn main<D: Daemon>() -> ExitCode {
    let args = DaemonArgs::parse();
    let config = match sextant_config::load(&args.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{}: {error}", D::NAME);
            return ExitCode::FAILURE;
        }
    };
    if args.check {
        return match D::check(&config) {
            Ok(()) => {
                println!("{}: {} is valid", D::NAME, args.config.display());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{}: {error:#}", D::NAME);
                ExitCode::FAILURE
            }
        };
    }
    init_logging(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(D::NAME)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{}: cannot start the async runtime: {error}", D::NAME);
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = shutdown_on_signals()?;
        tokio::spawn(ready::watchdog(shutdown.clone()));
        D::run(config, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "{} stopped", D::NAME);
            eprintln!("{}: {error:#}", D::NAME);
            ExitCode::FAILURE
        }
    }
}

/// Logging to stderr; `RUST_LOG` overrides the configured level.
pub fn init_logging(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: journald and log files get plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    // A second init (tests running daemons in-process) is harmless: keep the first.
    let _ = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
