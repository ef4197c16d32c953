//! The authority daemon: loads zones, answers the listener's queries over gRPC and
//! publishes the set of zones it serves.

mod answer;
mod catalog_producer;
mod control;
mod journal;
mod key_store;
mod load;
mod notify_out;
mod outgoing;
mod secondary;
mod service;
mod signed_steps;
mod signed_version;
mod signing;
mod zone_snapshot;

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
        let load::Loaded {
            catalog, warnings, ..
        } = load_catalog(&section.zones, None, None, None)?;
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
        let snapshots = section.state_dir.clone();
        let load_snapshots = snapshots.clone();
        let load::Loaded {
            mut catalog,
            warnings,
            to_snapshot,
        } = tokio::task::spawn_blocking(move || {
            load_catalog(
                &zones,
                load_signing.as_deref(),
                load_snapshots.as_deref(),
                None,
            )
        })
        .await
        .context("zone loading task failed")??;
        if let Some(name) = &section.catalog {
            let members: Vec<_> = section.zones.iter().map(|z| z.name.clone()).collect();
            let zone = catalog_producer::produce(name, &members, section.state_dir.as_deref())
                .map_err(|e| anyhow::anyhow!("authority.catalog: {e}"))?;
            tracing::info!(catalog = %name, members = members.len(), serial = zone.serial(), "catalog zone made");
            catalog = catalog.updated([Arc::new(zone)], &[]);
        }
        for warning in &warnings {
            tracing::warn!(%warning, "zone loaded with a fix-up");
        }
        if let Some(dir) = snapshots.clone() {
            tokio::task::spawn_blocking(move || load::write_snapshots(&dir, to_snapshot));
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
            snapshots,
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
                section.state_dir.clone(),
                section.zones.iter().map(|z| z.name.clone()).collect(),
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

/// Takes over the BIND key pairs `files` (`K*.key` or `K*.private` paths; each
/// names its pair) for `zone`, a zone this configuration signs whose key store is
/// still empty: a zone moves from BIND to Sextant without a rollover. Returns a
/// line per key ("ksk 12345"). The authority uses them from its next reload.
pub fn import_bind_keys(
    config: &Config,
    zone: &str,
    files: &[std::path::PathBuf],
) -> Result<Vec<String>, String> {
    use sextant_signer::{KeyRole, KeySplit, Policy};
    let wanted = zone.trim_end_matches('.').to_ascii_lowercase() + ".";
    let name = hickory_proto::rr::Name::from_ascii(&wanted)
        .map_err(|e| format!("{zone:?} is not a zone name ({e})"))?;
    let policy_name = config
        .authority
        .iter()
        .flat_map(|a| &a.zones)
        .filter(|z| z.name == name)
        .map(|z| z.dnssec_policy.clone())
        .chain(
            config
                .transfer
                .iter()
                .flat_map(|t| &t.zones)
                .filter(|z| z.name == name)
                .map(|z| z.dnssec_policy.clone()),
        )
        .flatten()
        .next()
        .ok_or_else(|| {
            format!("zone {wanted} has no dnssec_policy in this configuration; give it one first")
        })?;
    let policy = config
        .dnssec_policies
        .iter()
        .find(|p| p.name == policy_name)
        .ok_or_else(|| format!("dnssec_policy {policy_name:?} is not defined"))
        .and_then(Policy::from_config)?;
    let state_dir = config
        .authority
        .as_ref()
        .and_then(|a| a.state_dir.as_ref())
        .ok_or("authority.state_dir is not set; the keys go there")?;
    let mut store = key_store::KeyStore::open(state_dir, &name).map_err(|e| e.to_string())?;
    if !store.entries.is_empty() {
        return Err(format!(
            "zone {wanted} already has keys in {}; import only into a zone not signed here yet",
            store.dir.display()
        ));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut done = Vec::new();
    // `Kexample.com.+013+12345` has dots of its own: only .key and .private go.
    let mut pairs: Vec<std::path::PathBuf> = files
        .iter()
        .map(|f| match f.extension().and_then(|e| e.to_str()) {
            Some("key" | "private") => f.with_extension(""),
            _ => f.clone(),
        })
        .collect();
    pairs.sort();
    pairs.dedup();
    for base in pairs {
        let read = |extension: &str| {
            let mut path = base.clone().into_os_string();
            path.push(".");
            path.push(extension);
            let path = std::path::PathBuf::from(path);
            std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let key = sextant_signer::import_bind_key(
            &base.display().to_string(),
            &read("key")?,
            &read("private")?,
        )
        .map_err(|e| e.to_string())?;
        if key.private.algorithm() != policy.algorithm {
            return Err(format!(
                "{}: its algorithm is {}, dnssec_policy {policy_name:?} says {}; set the policy's algorithm to the keys' (an algorithm change is a rollover)",
                base.display(),
                key.private.algorithm(),
                policy.algorithm
            ));
        }
        let ksk = key.flags & 1 == 1;
        let role = match (policy.split, ksk) {
            (KeySplit::Csk, true) => KeyRole::Csk,
            (KeySplit::Csk, false) => {
                return Err(format!(
                    "{}: a zone-signing key, but dnssec_policy {policy_name:?} uses one combined key; set keys = \"ksk-zsk\"",
                    base.display()
                ));
            }
            (KeySplit::KskZsk, true) => KeyRole::Ksk,
            (KeySplit::KskZsk, false) => KeyRole::Zsk,
        };
        store
            .import(role, &key.private, key.tag, now)
            .map_err(|e| e.to_string())?;
        done.push(format!("{} {}", role.as_str(), key.tag));
    }
    if done.is_empty() {
        return Err("no key files given".into());
    }
    // A key-signing key alone would leave the zone's data to a new ZSK published
    // and used at once, before caches hold it: take the pair over, or neither.
    let has = |role: &str| done.iter().any(|d| d.starts_with(role));
    if policy.split == KeySplit::KskZsk && !(has("ksk") && has("zsk")) {
        return Err(format!(
            "dnssec_policy {policy_name:?} needs both a key-signing key and a zone-signing key; give both pairs (K*.key/K*.private)"
        ));
    }
    store.check_policy(&policy).map_err(|e| e.to_string())?;
    store.save().map_err(|e| e.to_string())?;
    Ok(done)
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
