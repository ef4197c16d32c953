//! Operator control of the authority: status, and reload by gRPC or SIGHUP. A reload
//! builds the new catalog aside and swaps it in whole; on any error nothing changes.

use std::sync::Arc;
use std::time::Instant;

use sextant_config::ZoneConfig;
use sextant_rpc::{ControlHandler, DaemonStatus, NotifyOutcome, ZoneSetPublisher, ZoneStatus};
use sextant_zone::Catalog;

use crate::{Authority, load_catalog};

#[derive(Debug)]
pub(crate) struct Control {
    pub authority: Arc<Authority>,
    pub publisher: ZoneSetPublisher,
    pub zones: Vec<ZoneConfig>,
    /// Where zone snapshots are kept (`authority.state_dir`), when anywhere.
    pub snapshots: Option<std::path::PathBuf>,
    /// Zones signed here, when any is.
    pub signing: Option<Arc<crate::signing::Signing>>,
    pub started: Instant,
}

impl Control {
    fn zone_statuses(&self, catalog: &Catalog) -> Vec<ZoneStatus> {
        let mut zones: Vec<ZoneStatus> = catalog
            .zones()
            .map(|zone| {
                let mut status = ZoneStatus::primary(
                    zone.origin().to_string(),
                    zone.serial(),
                    zone.record_count() as u64,
                    self.zones
                        .iter()
                        .find(|z| &z.name == zone.origin())
                        .map(|z| format!("file:{}", z.file.display()))
                        .unwrap_or_else(|| "secondary (sextant-transfer)".into()),
                );
                status.expired = catalog.is_expired(zone.origin());
                status.signing = self
                    .signing
                    .as_ref()
                    .and_then(|signing| signing.status(zone.origin()));
                status
            })
            .collect();
        zones.sort_by(|a, b| a.name.cmp(&b.name));
        zones
    }

    /// Signs `zone` again (its signatures or a rollover step fell due): a primary
    /// zone from its file, a secondary zone from the version served.
    pub(crate) async fn resign(&self, zone: &hickory_proto::rr::Name) -> Result<(), String> {
        if self.zones.iter().any(|z| &z.name == zone) {
            // Signatures falling due are a whole-zone matter: the zone is signed
            // whole, not as the change since the version served.
            return self
                .load_zones(Some(zone.to_string()), false)
                .await
                .map(|_| ());
        }
        let Some(signing) = self.signing.clone() else {
            return Err(format!("zone {zone} is not signed here"));
        };
        let lock = signing.clone();
        let _serving = lock.exclusive().await;
        let origin = zone.clone();
        // The data is the version served (its DNSSEC records are replaced); the
        // stored signed version only lends the signatures still fresh.
        let served = self
            .authority
            .catalog()
            .zones()
            .find(|z| z.origin() == zone)
            .cloned()
            .ok_or_else(|| format!("zone {zone} has no version served yet"))?;
        let built = tokio::task::spawn_blocking(move || {
            let policy = signing
                .secondary_policy(&origin)
                .ok_or_else(|| format!("zone {origin} is not signed here"))?
                .to_string();
            // The SOA comes first and last in AXFR order: once here.
            let records: Vec<hickory_proto::rr::Record> =
                served.axfr_records().take(served.record_count()).collect();
            let source = std::path::PathBuf::from(format!("re-signing of {origin}"));
            let mut builder = crate::secondary::Builder::new(&origin, &source);
            signing
                .sign_zone(&origin, &policy, records, &mut |record| builder.add(record))
                .map_err(|e| e.to_string())?;
            builder.build()
        })
        .await
        .map_err(|e| format!("re-signing task failed: {e}"))??;
        let expired = self.authority.catalog().is_expired(zone);
        let catalog = self
            .authority
            .catalog()
            .updated([Arc::new(built)], &[(zone.clone(), expired)]);
        self.authority.replace(catalog);
        self.publisher.publish(self.authority.zone_names());
        Ok(())
    }

    /// Reloads every zone, or only `zone`; returns the zones now served. A zone
    /// signed here is signed as the change since the version served.
    pub(crate) async fn reload_zones(
        &self,
        zone: Option<String>,
    ) -> Result<Vec<ZoneStatus>, String> {
        self.load_zones(zone, true).await
    }

    /// Loads every zone, or only `zone`, from its files; a zone signed here is
    /// signed as a change to the version served when `as_change`, else whole.
    async fn load_zones(
        &self,
        zone: Option<String>,
        as_change: bool,
    ) -> Result<Vec<ZoneStatus>, String> {
        let selected: Vec<ZoneConfig> = match &zone {
            None => self.zones.clone(),
            Some(name) => {
                let wanted = name.trim_end_matches('.').to_ascii_lowercase() + ".";
                let found: Vec<ZoneConfig> = self
                    .zones
                    .iter()
                    .filter(|z| z.name.to_string() == wanted)
                    .cloned()
                    .collect();
                if found.is_empty() {
                    return Err(format!(
                        "zone {wanted} is not configured here; the zones are {}",
                        self.zones
                            .iter()
                            .map(|z| z.name.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                found
            }
        };
        let signing = self.signing.clone();
        // Signed zones: no other signing path may serve between this load and
        // the swap below (see `Signing::exclusive`).
        let lock = signing.clone();
        let _serving = match &lock {
            Some(signing) => Some(signing.exclusive().await),
            None => None,
        };
        let snapshots = self.snapshots.clone();
        let served = as_change.then(|| self.authority.catalog());
        let crate::load::Loaded {
            catalog: loaded,
            warnings,
            to_snapshot,
        } = tokio::task::spawn_blocking(move || {
            load_catalog(
                &selected,
                signing.as_deref(),
                snapshots.as_deref(),
                served.as_deref(),
            )
        })
        .await
        .map_err(|e| format!("reload task failed: {e}"))?
        .map_err(|e| e.to_string())?;
        for warning in &warnings {
            tracing::warn!(%warning, "zone loaded with a fix-up");
        }
        if let Some(dir) = self.snapshots.clone() {
            tokio::task::spawn_blocking(move || crate::load::write_snapshots(&dir, to_snapshot));
        }
        // Keep every zone not reloaded (secondaries included), replace those that were.
        let catalog = self
            .authority
            .catalog()
            .updated(loaded.zones().cloned(), &[]);
        let statuses = self.zone_statuses(&catalog);
        self.authority.replace(catalog);
        let generation = self.publisher.publish(self.authority.zone_names());
        for zone in &statuses {
            tracing::info!(zone = %zone.name, serial = zone.serial, records = zone.records, generation, "zone served");
        }
        // Changes signed by this reload are folded into the whole signed version
        // once they have grown large, after serving and still under the lock (no
        // step may be appended while the version that replaces them is written).
        if let Some(signing) = self.signing.clone() {
            let signed: Vec<Arc<sextant_zone::Zone>> =
                loaded.zones().filter(|z| z.is_signed()).cloned().collect();
            let _ = tokio::task::spawn_blocking(move || {
                for zone in signed {
                    signing.compact_changes(&zone);
                }
            })
            .await;
        }
        Ok(statuses)
    }
}

impl ControlHandler for Control {
    fn status(&self) -> DaemonStatus {
        DaemonStatus {
            daemon: "sextant-authority".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs(),
            zones: self.zone_statuses(&self.authority.catalog()),
            cache: None,
            backends: Vec::new(),
        }
    }

    async fn reload(&self, zone: Option<String>) -> Result<Vec<ZoneStatus>, String> {
        self.reload_zones(zone).await
    }

    async fn ksk_submitted(&self, zone: String, tag: Option<u16>) -> Result<u16, String> {
        let Some(signing) = &self.signing else {
            return Err("this authority signs no zone (no dnssec_policy)".into());
        };
        let wanted = zone.trim_end_matches('.').to_ascii_lowercase() + ".";
        let name = hickory_proto::rr::Name::from_ascii(&wanted)
            .map_err(|e| format!("{zone:?} is not a zone name ({e})"))?;
        let primary = self
            .zones
            .iter()
            .any(|z| z.name == name && z.dnssec_policy.is_some());
        if !primary && signing.secondary_policy(&name).is_none() {
            return Err(format!("zone {wanted} is not signed by this authority"));
        }
        // The key list is a file: written off the async threads.
        let (store_signing, zone) = (signing.clone(), name.clone());
        let tag = tokio::task::spawn_blocking(move || store_signing.ksk_submitted(&zone, tag))
            .await
            .map_err(|e| format!("recording the submission failed: {e}"))??;
        // Signed again now: the rollover step this allows is timed from now.
        self.resign(&name).await?;
        Ok(tag)
    }

    async fn notify(&self, zone: Option<String>) -> Result<Vec<NotifyOutcome>, String> {
        let targets = self.authority.notify_targets();
        if targets.is_empty() {
            return Err(
                "authority.notify lists no secondary; add their addresses there to send NOTIFY"
                    .into(),
            );
        }
        let catalog = self.authority.catalog();
        let zones: Vec<_> = match &zone {
            None => catalog.zones().collect(),
            Some(name) => {
                let wanted = name.trim_end_matches('.').to_ascii_lowercase() + ".";
                let found: Vec<_> = catalog
                    .zones()
                    .filter(|z| z.origin().to_string().to_ascii_lowercase() == wanted)
                    .collect();
                if found.is_empty() {
                    return Err(format!("zone {wanted} is not served here"));
                }
                found
            }
        };
        let mut outcomes = Vec::new();
        for zone in zones {
            for (target, outcome) in
                crate::notify_out::notify_and_wait(zone.origin(), zone.soa(), targets).await
            {
                outcomes.push(NotifyOutcome {
                    zone: zone.origin().to_string(),
                    serial: zone.serial(),
                    target: target.to_string(),
                    acknowledged: outcome == crate::notify_out::Outcome::Acknowledged,
                    result: outcome.to_string(),
                });
            }
        }
        Ok(outcomes)
    }
}
