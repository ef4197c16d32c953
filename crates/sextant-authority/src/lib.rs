//! The authority daemon: loads zones, answers the listener's queries over gRPC and
//! publishes the set of zones it serves.

mod answer;
mod control;
mod journal;
mod load;
mod notify_out;
mod outgoing;
mod secondary;
mod service;

pub use answer::respond;
use control::Control;
use load::load_catalog;
use outgoing::TransferPolicy;
use service::Authority;

use std::sync::Arc;

use anyhow::Context;
use sextant_config::{AuthorityConfig, Config};
use sextant_daemon::Daemon;
use sextant_rpc::{GrpcServer, Services, ZoneSetPublisher};
use tokio_util::sync::CancellationToken;

/// The authority as `sextant_daemon` runs it.
#[derive(Debug)]
pub struct AuthorityDaemon {
    authority: Arc<Authority>,
    control: Arc<Control>,
    endpoint: sextant_rpc::Endpoint,
    serving: tokio::task::JoinHandle<Result<(), sextant_rpc::RpcError>>,
}

impl Daemon for AuthorityDaemon {
    const NAME: &'static str = "sextant-authority";
    type Section = AuthorityConfig;

    fn check(_config: &Config, section: &AuthorityConfig) -> anyhow::Result<()> {
        let (catalog, warnings) = load_catalog(&section.zones)?;
        for warning in warnings {
            eprintln!("warning: {warning}");
        }
        println!("{} zone(s) load cleanly", catalog.zones().count());
        Ok(())
    }

    async fn start(
        config: Config,
        section: AuthorityConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let zones = section.zones.clone();
        let (catalog, warnings) = tokio::task::spawn_blocking(move || load_catalog(&zones))
            .await
            .context("zone loading task failed")??;
        for warning in &warnings {
            tracing::warn!(%warning, "zone loaded with a fix-up");
        }
        let authority = Arc::new(Authority::new(
            catalog,
            section.edns_payload_size,
            transfer_policy(&config, &section)?,
            section.notify.clone(),
        ));
        let publisher = ZoneSetPublisher::new();
        publisher.publish(authority.zone_names());
        let control = Arc::new(Control {
            authority: authority.clone(),
            publisher: publisher.clone(),
            zones: section.zones.clone(),
            started: std::time::Instant::now(),
        });
        if let Some(endpoint) = config.secondaries_endpoint() {
            secondary::follow(
                endpoint.clone(),
                authority.clone(),
                publisher.clone(),
                shutdown.clone(),
            )
            .await;
        }
        let server = GrpcServer::bind(&section.grpc).await?;
        let endpoint = server.local_endpoint().clone();
        let services = Services::new()
            .with_query(authority.clone())
            .with_zones(&publisher)
            .with_control(control.clone());
        let serving = tokio::spawn(server.serve(services, shutdown));
        authority.notify_all();
        let stats = authority.stats();
        tracing::info!(
            grpc = %endpoint,
            zones = stats.zones,
            records = stats.records,
            "authority serving"
        );
        Ok(Self {
            authority,
            control,
            endpoint,
            serving,
        })
    }

    fn ready_info(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut info = serde_json::Map::new();
        info.insert("grpc".into(), self.endpoint.to_string().into());
        info.insert("zones".into(), self.authority.zone_names().into());
        info
    }

    async fn reload(&self) {
        if let Err(error) = self.control.reload_zones(None).await {
            tracing::error!(%error, "reload failed; still serving the previous zones");
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.serving.await.context("gRPC server task failed")??;
        Ok(())
    }
}

/// Who may transfer zones out, and the key they must sign with.
fn transfer_policy(config: &Config, section: &AuthorityConfig) -> anyhow::Result<TransferPolicy> {
    let key = match &section.transfer_key {
        None => None,
        Some(name) => {
            let key = config
                .keys
                .iter()
                .find(|k| &k.name == name)
                .with_context(|| format!("authority.transfer_key {name} is not defined"))?;
            let secret = sextant_config::key_secret(&key.secret)
                .with_context(|| format!("the secret of key {name} is not base64"))?;
            Some(
                sextant_tsig::Key::new(&key.name, &key.algorithm, secret)
                    .map_err(anyhow::Error::msg)?,
            )
        }
    };
    let journal = match &section.state_dir {
        None => None,
        Some(dir) => {
            let dir = dir.clone();
            let (store, _) = tokio::task::block_in_place(|| sextant_store::Store::open(&dir))
                .with_context(|| {
                    format!(
                        "opening the IXFR journal in authority.state_dir {}",
                        dir.display()
                    )
                })?;
            Some(std::sync::Arc::new(store))
        }
    };
    Ok(TransferPolicy {
        allow: section.allow_transfer.clone(),
        key,
        journal,
    })
}
