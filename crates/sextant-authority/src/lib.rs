//! The authority daemon: loads zones, answers the listener's queries over gRPC and
//! publishes the set of zones it serves.

mod answer;
mod control;
mod journal;
mod key_store;
mod load;
mod notify_out;
mod outgoing;
mod secondary;
mod service;
mod signed_version;
mod signing;

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

    fn check(config: &Config, section: &AuthorityConfig) -> anyhow::Result<()> {
        // Checked as written: making keys or signatures is not a check's business.
        let (catalog, warnings) = load_catalog(&section.zones, None)?;
        for warning in warnings {
            eprintln!("warning: {warning}");
        }
        println!("{} zone(s) load cleanly", catalog.zones().count());
        signing::Signing::new(config, section)?;
        for zone in &section.zones {
            let Some(policy) = &zone.dnssec_policy else {
                continue;
            };
            let keys = section
                .state_dir
                .as_ref()
                .and_then(|dir| key_store::read_entries(dir, &zone.name));
            match keys {
                Some(keys) => println!(
                    "zone {} is signed by dnssec_policy {policy:?} with {} key(s) (tags {})",
                    zone.name,
                    keys.len(),
                    keys.iter()
                        .map(|k| k.tag.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => println!(
                    "zone {} will be signed by dnssec_policy {policy:?}; its keys are made at the first start",
                    zone.name
                ),
            }
        }
        Ok(())
    }

    async fn start(
        config: Config,
        section: AuthorityConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let signing = signing::Signing::new(&config, &section)?.map(Arc::new);
        let zones = section.zones.clone();
        let load_signing = signing.clone();
        let (catalog, warnings) =
            tokio::task::spawn_blocking(move || load_catalog(&zones, load_signing.as_deref()))
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
            signing: signing.clone(),
            started: std::time::Instant::now(),
        });
        if let Some(signing) = signing.clone() {
            tokio::spawn(refresh_signatures(
                signing,
                control.clone(),
                shutdown.clone(),
            ));
        }
        if let Some(endpoint) = config.secondaries_endpoint() {
            secondary::follow(
                endpoint.clone(),
                authority.clone(),
                publisher.clone(),
                signing.clone(),
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

/// Signs each zone again when its first signature falls due (the signer keeps the
/// others), so that no signature served ever expires.
async fn refresh_signatures(
    signing: Arc<signing::Signing>,
    control: Arc<Control>,
    shutdown: CancellationToken,
) {
    loop {
        let due = tokio::select! {
            due = signing.wait_for_due() => due,
            () = shutdown.cancelled() => return,
        };
        let Some(zone) = due else { continue };
        if let Err(error) = control.resign(&zone).await {
            // Retried at the next wake-up; the signatures served are still valid
            // for at least signature_refresh.
            tracing::error!(%zone, %error, "re-signing failed; still serving the previous version");
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        }
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
