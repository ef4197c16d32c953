//! The transfer daemon, Sextant's secondary: SOA refresh/retry/expire timers, NOTIFY,
//! and AXFR (RFC 5936) received as a checked stream into a staged store version that
//! is published only when the transfer ended with the SOA it began with, so an
//! interrupted transfer never publishes half a zone.
//! The authority follows the published versions over gRPC.

mod axfr;
mod catalog_zone;
mod client;
mod control;
mod error;
mod expire;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod index;
mod ixfr;
mod notify;
mod refresh;
mod serial;
mod state;
#[cfg(test)]
mod test_records;
mod zones;

use error::XfrError;
use zones::Zones;

use std::sync::Arc;

use anyhow::Context;
use sextant_config::{Config, TransferConfig};
use sextant_daemon::Daemon;
use sextant_rpc::{GrpcServer, Services};
use tokio_util::sync::CancellationToken;

/// The transfer daemon as `sextant_daemon` runs it.
#[derive(Debug)]
pub struct TransferDaemon {
    zones: Arc<Zones>,
    endpoint: sextant_rpc::Endpoint,
    names: Vec<String>,
    serving: tokio::task::JoinHandle<Result<(), sextant_rpc::RpcError>>,
}

impl Daemon for TransferDaemon {
    const NAME: &'static str = "sextant-transfer";
    type Section = TransferConfig;

    async fn start(
        config: Config,
        section: TransferConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
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
        let zones = Arc::new(Zones::new(
            Arc::new(store),
            &section,
            &config.keys,
            shutdown.clone(),
        )?);
        let server = GrpcServer::bind(&section.grpc).await?;
        let endpoint = server.local_endpoint().clone();
        let services = Services::new()
            .with_query(zones.clone())
            .with_secondary_versions(zones.clone(), zones.notifier())
            .with_control(zones.clone());
        let serving = tokio::spawn(server.serve(services, shutdown.clone()));
        // Catalog zones' members as their published versions list them, before
        // any refresh: they survive a restart in the store.
        for zone in &section.zones {
            if zone.catalog {
                catalog_zone::follow(&zones, &zone.name.to_string()).await;
            }
        }
        for zone in &section.zones {
            tokio::spawn(refresh::run(zones.clone(), zone.name.to_string()));
        }
        let names: Vec<String> = section.zones.iter().map(|z| z.name.to_string()).collect();
        tracing::info!(grpc = %endpoint, zones = names.len(), published = zones.published_count(), "transfer serving");
        Ok(Self {
            zones,
            endpoint,
            names,
            serving,
        })
    }

    fn ready_info(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut info = serde_json::Map::new();
        info.insert("grpc".into(), self.endpoint.to_string().into());
        info.insert("zones".into(), self.names.clone().into());
        info
    }

    async fn stop(self) -> anyhow::Result<()> {
        drop(self.zones);
        self.serving.await.context("gRPC server task failed")??;
        Ok(())
    }
}
