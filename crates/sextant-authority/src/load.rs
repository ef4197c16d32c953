//! Loading the configured zone files into a catalog.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

use sextant_config::ZoneConfig;
use sextant_zone::{Catalog, LocatedRecord, Location, Zone, ZoneBuilder, ZoneError, ZoneWarning};

use crate::signing::{Signing, SigningError};
use crate::zone_snapshot::{self, Snapshot, Source};

/// Display carries the whole sentence; no `#[source]`, so `{:#}` does not repeat it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("zone {zone}: cannot read {path}: {cause}; check the path and permissions")]
    Read {
        zone: String,
        path: String,
        cause: std::io::Error,
    },
    #[error("zone {zone}: {cause}")]
    Zone { zone: String, cause: ZoneError },
    #[error(transparent)]
    Signing(#[from] SigningError),
}

/// What loading the configured zones gave.
pub(crate) struct Loaded {
    pub catalog: Catalog,
    pub warnings: Vec<ZoneWarning>,
    /// Zones read from their text, with what they were read from: their
    /// snapshots are to be written (off the path to serving them).
    pub to_snapshot: Vec<(Arc<Zone>, Vec<Source>, Vec<ZoneWarning>)>,
}

/// Loads every zone, signing those with a policy when `signing` is given (without
/// it, as `--check` does, they are checked as their files have them); the first
/// broken zone fails the whole load, so a catalog is only ever served complete.
/// With `snapshots` (the state directory), a zone without a policy whose files are
/// unchanged since its snapshot is served from that snapshot.
pub(crate) fn load_catalog(
    zones: &[ZoneConfig],
    signing: Option<&Signing>,
    snapshots: Option<&Path>,
    served: Option<&Catalog>,
) -> Result<Loaded, LoadError> {
    let mut loaded = Vec::with_capacity(zones.len());
    let mut warnings = Vec::new();
    let mut to_snapshot = Vec::new();
    for config in zones {
        let (zone, zone_warnings) = match (&config.dnssec_policy, signing) {
            (Some(policy), Some(signing)) => {
                let current = served.and_then(|catalog| {
                    catalog
                        .zones()
                        .find(|z| *z.origin() == config.name)
                        .cloned()
                });
                let (zone, zone_warnings) = load_signed_zone(config, policy, signing, current)?;
                loaded.push(zone);
                warnings.extend(zone_warnings);
                continue;
            }
            _ => {
                let from_snapshot = snapshots.and_then(|dir| {
                    match zone_snapshot::load(dir, &config.name, &config.file) {
                        Snapshot::Served(zone, warnings) => {
                            tracing::info!(zone = %config.name, records = zone.record_count(), "zone served from its snapshot");
                            Some((*zone, warnings))
                        }
                        Snapshot::Absent => None,
                        Snapshot::Stale(reason) => {
                            tracing::info!(zone = %config.name, "zone snapshot not used: {reason}; reading the zone file");
                            None
                        }
                        Snapshot::Unusable(reason) => {
                            tracing::warn!(zone = %config.name, "zone snapshot not used: {reason}; reading the zone file");
                            None
                        }
                    }
                });
                match from_snapshot {
                    Some(found) => found,
                    None => {
                        let (zone, zone_warnings, sources) = load_zone(config)?;
                        if snapshots.is_some() {
                            let zone = Arc::new(zone);
                            to_snapshot.push((zone.clone(), sources, zone_warnings.clone()));
                            loaded.push(zone);
                            warnings.extend(zone_warnings);
                            continue;
                        }
                        (zone, zone_warnings)
                    }
                }
            }
        };
        loaded.push(Arc::new(zone));
        warnings.extend(zone_warnings);
    }
    Ok(Loaded {
        catalog: Catalog::new(loaded),
        warnings,
        to_snapshot,
    })
}

/// Writes the snapshots a load asked for; a failure costs only the next start's
/// speed, so it is logged, not raised.
pub(crate) fn write_snapshots(
    state_dir: &Path,
    zones: Vec<(Arc<Zone>, Vec<Source>, Vec<ZoneWarning>)>,
) {
    for (zone, sources, warnings) in zones {
        let started = std::time::Instant::now();
        match zone_snapshot::save(
            state_dir,
            &zone,
            &zone_snapshot::Origin::Files(&sources),
            &warnings,
        ) {
            Ok(()) => tracing::info!(
                zone = %zone.origin(),
                seconds = started.elapsed().as_secs_f64(),
                "zone snapshot written"
            ),
            Err(error) => tracing::warn!(
                zone = %zone.origin(),
                %error,
                "zone snapshot not written; the next start reads the zone file"
            ),
        }
    }
}

/// A zone read from its text, with the files it was read from.
fn load_zone(config: &ZoneConfig) -> Result<(Zone, Vec<ZoneWarning>, Vec<Source>), LoadError> {
    let read_error = |path: &Path, cause| LoadError::Read {
        zone: config.name.to_string(),
        path: path.display().to_string(),
        cause,
    };
    let (text, source) = zone_snapshot::read_source(&config.file)
        .map_err(|cause| read_error(&config.file, cause))?;
    let sources = RefCell::new(vec![source]);
    let read_include = |path: &Path| {
        let (text, source) = zone_snapshot::read_source(path)?;
        sources.borrow_mut().push(source);
        Ok(text)
    };
    let (zone, warnings) = Zone::from_master_text(&config.name, &config.file, &text, &read_include)
        .map_err(|cause| LoadError::Zone {
            zone: config.name.to_string(),
            cause,
        })?;
    Ok((zone, warnings, sources.into_inner()))
}

/// A zone signed by `policy`: checked as written first (every error and warning
/// with its file and line), then signed, then built again from the signed records.
fn load_signed_zone(
    config: &ZoneConfig,
    policy: &str,
    signing: &Signing,
    served: Option<Arc<Zone>>,
) -> Result<(Arc<Zone>, Vec<ZoneWarning>), LoadError> {
    let text = std::fs::read_to_string(&config.file).map_err(|cause| LoadError::Read {
        zone: config.name.to_string(),
        path: config.file.display().to_string(),
        cause,
    })?;
    let zone_error = |cause| LoadError::Zone {
        zone: config.name.to_string(),
        cause,
    };
    let read_include = |path: &std::path::Path| std::fs::read_to_string(path);
    let located = sextant_zone::parse(&text, &config.file, &config.name, &read_include)
        .map_err(zone_error)?;
    // The zone's own DNSSEC records are replaced by the signer: checking their old
    // chain could only refuse a zone about to be fixed.
    let mut checked = ZoneBuilder::new(&config.name, &config.file);
    for record in &located {
        if !sextant_signer::is_signer_type(record.record.record_type()) {
            checked.add(record.clone());
        }
    }
    let (unsigned, warnings) = checked.build().map_err(zone_error)?;
    // A reload of a zone served signed: only what changed is signed.
    if let Some(current) = served.filter(|zone| zone.is_signed()) {
        let differences =
            current.differences_where(&unsigned, &|t| !sextant_signer::is_signer_type(t));
        if differences.removed.is_empty()
            && differences.added.is_empty()
            && sextant_signer::soa_unchanged(current.soa(), unsigned.soa())
        {
            tracing::info!(zone = %config.name, "zone unchanged; its signed version stays served");
            return Ok((current, warnings));
        }
        if let Some(zone) = signing.sign_version(&current, &unsigned, policy)? {
            return Ok((Arc::new(zone), warnings));
        }
    }
    drop(unsigned);
    let records = located.into_iter().map(|l| l.record).collect();
    let generated = Location {
        file: Arc::new(config.file.clone()),
        line: 0,
    };
    let mut builder = ZoneBuilder::new(&config.name, &config.file);
    signing.sign(config, policy, records, &mut |record| {
        builder.add(LocatedRecord {
            record,
            location: generated.clone(),
        });
    })?;
    let (zone, _) = builder.build().map_err(zone_error)?;
    Ok((Arc::new(zone), warnings))
}
