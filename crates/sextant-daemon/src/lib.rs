//! What every Sextant daemon does the same way: command-line arguments, logging,
//! readiness (ready file and systemd), signals and the exit status.
//!
//! A daemon's `main.rs` is one call to [`main`] with its [`Daemon`] implementation.

mod metrics;
mod ready;
mod replace;
mod signals;

pub use metrics::{GAUGE_PERIOD, MetricsEndpoint, install_metrics, publish_every};
pub use ready::{ReadyFile, notify_ready, notify_stopping};
pub use replace::SUCCESSOR_OF;
pub use signals::shutdown_on_signals;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use sextant_config::{Config, LogConfig, LogFormat, MissingSection, Section};
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

/// What a daemon plugs into [`main`]: how it starts, reloads and stops. Everything
/// else — arguments, configuration, logging, the metrics endpoint, the ready file,
/// systemd readiness and watchdog, signals — is done the same way for all of them by
/// [`run`].
pub trait Daemon: Sized + Send + Sync + 'static {
    /// The process name, in logs and errors (`sextant-listener`).
    const NAME: &'static str;
    /// The configuration section the daemon runs from.
    type Section: Section;
    /// Whether a second instance can start beside a running one and take its place
    /// (SIGUSR2; the listener). Default: no, SIGUSR2 is refused with a warning.
    const REPLACEABLE: bool = false;

    /// What `--check` verifies beyond the configuration file itself (zone files, root
    /// hints), saying what it found on stdout. Default: nothing more.
    fn check(_config: &Config, _section: &Self::Section) -> anyhow::Result<()> {
        Ok(())
    }

    /// Binds, loads and starts serving; returns once the daemon answers. Errors are
    /// the one-sentence start-up messages.
    fn start(
        config: Config,
        section: Self::Section,
        shutdown: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// Whether it started beside a running instance it replaces, which still holds
    /// its ports (the listener's restart without loss): the metrics endpoint is then
    /// taken when that instance lets go of it. Default: no.
    fn took_over(&self) -> bool {
        false
    }

    /// What the ready file says beside the PID: bound addresses, zones served.
    fn ready_info(&self) -> serde_json::Map<String, serde_json::Value>;

    /// SIGHUP: re-read what can change without a restart. Default: nothing.
    fn reload(&self) -> impl Future<Output = ()> + Send {
        async {
            tracing::info!("SIGHUP: nothing to reload");
        }
    }

    /// After shutdown is asked for: finish what is in flight, then return.
    fn stop(self) -> impl Future<Output = anyhow::Result<()>> + Send;
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
        let checked = section::<D>(&config).and_then(|section| D::check(&config, section));
        return match checked {
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
        run::<D>(config, shutdown).await
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

fn section<D: Daemon>(config: &Config) -> anyhow::Result<&D::Section> {
    Ok(D::Section::of(config).ok_or(MissingSection(D::Section::NAME))?)
}

/// Runs daemon `D` until `shutdown` is cancelled: its metrics endpoint, its start,
/// the ready file and systemd readiness once it serves, SIGHUP reloads, then its
/// graceful stop.
pub async fn run<D: Daemon>(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let section = section::<D>(&config)?.clone();
    // Installed first: SIGHUP's default action would end a daemon still starting.
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    // Likewise SIGUSR2's, which would end any daemon.
    let mut replace = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2())
        .context("installing the SIGUSR2 handler")?;
    let metrics = install_metrics(section.metrics())?;
    // Before the daemon starts: its first traced query already has a tracer.
    let traces = sextant_trace::Tracing::start(config.trace.as_ref(), D::NAME)?;
    // Before any gRPC endpoint is served or dialled.
    let grpc_tls =
        sextant_rpc::install_grpc_tls(config.grpc.as_ref()).map_err(anyhow::Error::msg)?;
    if grpc_tls {
        tracing::info!("gRPC over TCP uses mutual TLS ([grpc])");
    }
    let source = config.source.clone();
    let daemon = D::start(config, section.clone(), shutdown.clone()).await?;
    if let Some(metrics) = metrics {
        metrics.serve(daemon.took_over(), shutdown.clone())?;
    }
    let mut ready = daemon.ready_info();
    ready.insert("pid".into(), std::process::id().into());
    let _ready = ReadyFile::write(section.ready_file(), &ready)?;
    // A successor tells its predecessor, which tells systemd.
    if !replace::tell_predecessor() {
        notify_ready();
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = hangup.recv() => {
                if grpc_tls {
                    reload_grpc_tls(source.as_deref());
                }
                daemon.reload().await;
            }
            _ = replace.recv() => {
                if !D::REPLACEABLE {
                    tracing::warn!("SIGUSR2: {} cannot be replaced while it runs; restart it instead", D::NAME);
                    continue;
                }
                match replace::start_successor().await {
                    Ok(pid) => {
                        tracing::info!(pid, "SIGUSR2: the successor serves; stopping");
                        shutdown.cancel();
                        break;
                    }
                    Err(error) => tracing::error!(
                        error = format!("{error:#}"),
                        "SIGUSR2: no successor; this process goes on serving"
                    ),
                }
            }
        }
    }
    daemon.stop().await?;
    // The last spans are sent before the process ends (bounded by the SDK).
    let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    tracing::info!("{} stopped", D::NAME);
    Ok(())
}

/// SIGHUP: reads `[grpc]`'s certificate files again for the connections made from
/// now on (those open keep theirs); a file that does not load changes nothing, and
/// turning TLS on or off takes a restart (the endpoints' peers must change with it).
fn reload_grpc_tls(source: Option<&std::path::Path>) {
    let Some(path) = source else { return };
    let config = match sextant_config::load(path) {
        Ok(config) => config,
        // The daemon's own reload reports the file's problems.
        Err(_) => return,
    };
    if config
        .grpc
        .as_ref()
        .and_then(sextant_config::GrpcConfig::tls)
        .is_none()
    {
        tracing::warn!(
            "SIGHUP: [grpc] no longer names TLS files; mutual TLS stays on until a restart"
        );
        return;
    }
    match sextant_rpc::install_grpc_tls(config.grpc.as_ref()) {
        Ok(_) => tracing::info!("SIGHUP: gRPC TLS certificate, key and CA read again"),
        Err(error) => {
            tracing::error!(%error, "SIGHUP: the gRPC TLS files do not load; the ones in use stay")
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
