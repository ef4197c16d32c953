//! The transfer daemon, Sextant's secondary: SOA refresh/retry/expire timers, NOTIFY,
//! and AXFR (RFC 5936) received as a checked stream into a staged store version that
//! is published only when the transfer ended with the SOA it began with (lesson 4).
//! The authority follows the published versions over gRPC.

pub mod axfr;
pub mod client;
mod control;
mod error;
mod expire;
pub mod ixfr;
mod notify;
mod refresh;
pub mod serial;
#[cfg(test)]
mod test_records;
mod zones;

pub use error::XfrError;
pub use zones::Zones;

use std::sync::Arc;

use anyhow::Context;
use sextant_config::Config;
use sextant_daemon::{Daemon, ReadyFile, notify_ready};
use sextant_rpc::{GrpcServer, Services};
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct TransferDaemon;

impl Daemon for TransferDaemon {
    const NAME: &'static str = "sextant-transfer";

    fn check(config: &Config) -> anyhow::Result<()> {
        section(config)?;
        Ok(())
    }

    fn run(
        config: Config,
        shutdown: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        run(config, shutdown)
    }
}

fn section(
    config: &Config,
) -> Result<&sextant_config::TransferConfig, sextant_config::MissingSection> {
    sextant_config::required(config.transfer.as_ref(), "transfer")
}

/// Runs the transfer daemon until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let section = section(&config)?.clone();
    let state_dir = section.state_dir.clone();
    let (store, cleanup) =
        tokio::task::spawn_blocking(move || sextant_store::Store::open(&state_dir))
            .await
            .context("store task failed")??;
    if let Some(old) = &cleanup.replaced_schema {
        tracing::warn!(schema = %old, "the store had an older schema and was emptied; every zone is transferred again");
    }
    for orphan in &cleanup.orphan_versions {
        tracing::warn!(version = %orphan, "deleted a zone version left unpublished by a crash");
    }
    sextant_daemon::serve_metrics(section.metrics)?;
    let zones = Arc::new(Zones::new(Arc::new(store), &section, &config.keys)?);

    let server = GrpcServer::bind(&section.grpc).await?;
    let endpoint = server.local_endpoint().clone();
    let services = Services::new()
        .with_query(zones.clone())
        .with_secondary_versions(zones.clone(), zones.notifier())
        .with_control(zones.clone());
    let serving = tokio::spawn(server.serve(services, shutdown.clone()));
    for zone in &section.zones {
        tokio::spawn(refresh::run(
            zones.clone(),
            zone.name.to_string(),
            shutdown.clone(),
        ));
    }

    let names: Vec<String> = section.zones.iter().map(|z| z.name.to_string()).collect();
    let _ready = ReadyFile::write(
        section.ready_file.as_deref(),
        &serde_json::json!({ "pid": std::process::id(), "grpc": endpoint.to_string(), "zones": names }),
    )?;
    notify_ready();
    tracing::info!(grpc = %endpoint, zones = names.len(), published = zones.published_count(), "transfer serving");
    shutdown.cancelled().await;
    serving.await.context("gRPC server task failed")??;
    tracing::info!("transfer stopped");
    Ok(())
}
