//! sextantctl: the operator's tool, in the spirit of rndc, knotc and unbound-control.
//!
//! Exit status: 0 success; 1 a daemon is unreachable or refused the action (the reason
//! is printed); 2 the configuration, a zone or the arguments are wrong.

// `check-zone` builds whole zones, a few small allocations per record: the same
// allocator as the authority, so it checks as fast as the authority loads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Prints a line to stdout, ignoring a closed pipe (`sextantctl status | head`).
macro_rules! say {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod cache;
mod checks;
mod dnssec;
mod nta;
mod stats;
mod status;
mod trace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Control and inspect the Sextant daemons")]
struct Cli {
    /// The configuration file naming the daemons' endpoints.
    #[arg(
        long,
        short,
        global = true,
        default_value = "/etc/sextant/sextant.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Each daemon: reachable, version, uptime; each zone: serial, records, source.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Zone actions.
    Zone {
        #[command(subcommand)]
        action: ZoneAction,
    },
    /// The resolver's cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Zones the authority signs: keys, their DS for the parent, next signing.
    Dnssec {
        #[command(subcommand)]
        action: DnssecAction,
    },
    /// The resolver's DNSSEC validation.
    Resolver {
        #[command(subcommand)]
        action: ResolverAction,
    },
    /// Every daemon's counters (queries, answers by RCODE, caches, transfers...), read
    /// from the Prometheus endpoint of each section that sets `metrics`.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Send one query through the listener with tracing forced and print the tree
    /// of spans it left in the listener, the authority or the resolver and its
    /// upstream exchanges, with each hop's time. Needs no collector: each daemon
    /// keeps its last spans; the listener's are read at `listener.control`.
    Trace {
        name: String,
        #[arg(default_value = "A")]
        qtype: String,
        /// The listener's DNS address (default: the first of listener.listen).
        #[arg(long)]
        server: Option<std::net::SocketAddr>,
        /// Ask with RD=0 (only the authority's zones answer).
        #[arg(long)]
        norecurse: bool,
    },
    /// Validate a configuration file and every zone file it names.
    CheckConfig { file: PathBuf },
    /// Load one zone file as the authority would, and report what it holds.
    CheckZone { origin: String, file: PathBuf },
}

#[derive(Subcommand)]
enum ZoneAction {
    /// Re-read a zone's file (or every zone's) and serve it if it loads cleanly.
    Reload { name: Option<String> },
    /// Transfer a secondary zone (or every one) from its primary now, even if the
    /// serial has not changed.
    Retransfer { name: Option<String> },
    /// Send NOTIFY for a zone (or every zone) to the secondaries in authority.notify
    /// now, and show each one's answer.
    Notify { name: Option<String> },
}

#[derive(Subcommand)]
enum CacheAction {
    /// Entries, memory and hit ratio of the resolver's cache.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Forget a name (with --subtree, everything below it too) or everything.
    Flush {
        name: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        subtree: bool,
    },
}

#[derive(Subcommand)]
enum DnssecAction {
    /// Each signed zone (or ZONE): policy, keys with their DS records for the
    /// parent, and when the zone is signed next.
    Status {
        zone: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Tell the authority the parent now publishes the DS of ZONE's newest
    /// key-signing key (or of key --tag), so that its rollover goes on.
    KskSubmitted {
        zone: String,
        #[arg(long)]
        tag: Option<u16>,
    },
    /// Take over a zone's keys from BIND (its K*.key/K*.private pairs) into the
    /// authority's key store, so the zone moves without a rollover; then reload it.
    ImportBind {
        zone: String,
        /// K*.key or K*.private files (each names its pair).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ResolverAction {
    /// Negative trust anchors (RFC 7646): names below which answers are not
    /// validated, while their zone's signing is broken.
    Nta {
        #[command(subcommand)]
        action: NtaCommand,
    },
}

#[derive(Subcommand)]
enum NtaCommand {
    /// Show them.
    List,
    /// Stop validating below NAME (until removed or the resolver restarts).
    Add { name: String },
    /// Validate below NAME again.
    Remove { name: String },
}

/// Outcome of a command: its exit status.
pub(crate) enum Outcome {
    Ok,
    Unreachable,
    BadInput,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::CheckConfig { file } => checks::check_config(&file),
        Command::CheckZone { origin, file } => checks::check_zone(&origin, &file),
        Command::Dnssec {
            action: DnssecAction::ImportBind { zone, files },
        } => dnssec::import_bind(&cli.config, &zone, &files),
        command => {
            // The daemons' gRPC over TCP may need this host's mutual TLS; a file that
            // does not load is reported by the command itself.
            if let Ok(config) = sextant_config::load(&cli.config)
                && let Err(error) = sextant_rpc::install_grpc_tls(config.grpc.as_ref())
            {
                eprintln!("{error}");
                return ExitCode::from(2);
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("sextantctl: cannot start the async runtime: {error}");
                    return ExitCode::from(1);
                }
            };
            runtime.block_on(async {
                match command {
                    Command::Status { json } => status::status(&cli.config, json).await,
                    Command::Stats { json } => stats::stats(&cli.config, json).await,
                    Command::Zone {
                        action: ZoneAction::Reload { name },
                    } => status::control(&cli.config, name.as_deref(), false).await,
                    Command::Zone {
                        action: ZoneAction::Retransfer { name },
                    } => status::control(&cli.config, name.as_deref(), true).await,
                    Command::Zone {
                        action: ZoneAction::Notify { name },
                    } => status::notify(&cli.config, name.as_deref()).await,
                    Command::Cache {
                        action: CacheAction::Stats { json },
                    } => cache::stats(&cli.config, json).await,
                    Command::Cache {
                        action: CacheAction::Flush { name, all, subtree },
                    } => cache::flush(&cli.config, name.as_deref(), all, subtree).await,
                    Command::Dnssec {
                        action: DnssecAction::Status { zone, json },
                    } => dnssec::status(&cli.config, zone.as_deref(), json).await,
                    Command::Dnssec {
                        action: DnssecAction::KskSubmitted { zone, tag },
                    } => dnssec::ksk_submitted(&cli.config, &zone, tag).await,
                    Command::Trace {
                        name,
                        qtype,
                        server,
                        norecurse,
                    } => {
                        let ask = trace::Ask {
                            name: &name,
                            qtype: &qtype,
                            server,
                            norecurse,
                        };
                        trace::trace(&cli.config, ask).await
                    }
                    Command::Resolver {
                        action: ResolverAction::Nta { action },
                    } => {
                        let action = match action {
                            NtaCommand::List => sextant_rpc::NtaAction::List,
                            NtaCommand::Add { name } => sextant_rpc::NtaAction::Add(name),
                            NtaCommand::Remove { name } => sextant_rpc::NtaAction::Remove(name),
                        };
                        nta::nta(&cli.config, action).await
                    }
                    Command::CheckConfig { .. }
                    | Command::CheckZone { .. }
                    | Command::Dnssec {
                        action: DnssecAction::ImportBind { .. },
                    } => Outcome::BadInput,
                }
            })
        }
    };
    match outcome {
        Outcome::Ok => ExitCode::SUCCESS,
        Outcome::Unreachable => ExitCode::from(1),
        Outcome::BadInput => ExitCode::from(2),
    }
}
