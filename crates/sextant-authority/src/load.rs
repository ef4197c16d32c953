//! Loading the configured zone files into a catalog.

use std::sync::Arc;

use sextant_config::ZoneConfig;
use sextant_zone::{Catalog, LocatedRecord, Location, Zone, ZoneBuilder, ZoneError, ZoneWarning};

use crate::signing::{Signing, SigningError};

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

/// Loads every zone, signing those with a policy when `signing` is given (without
/// it, as `--check` does, they are checked as their files have them); the first
/// broken zone fails the whole load, so a catalog is only ever served complete.
pub(crate) fn load_catalog(
    zones: &[ZoneConfig],
    signing: Option<&Signing>,
) -> Result<(Catalog, Vec<ZoneWarning>), LoadError> {
    let mut loaded = Vec::with_capacity(zones.len());
    let mut warnings = Vec::new();
    for config in zones {
        let (zone, zone_warnings) = match (&config.dnssec_policy, signing) {
            (Some(policy), Some(signing)) => load_signed_zone(config, policy, signing)?,
            _ => load_zone(config)?,
        };
        loaded.push(Arc::new(zone));
        warnings.extend(zone_warnings);
    }
    Ok((Catalog::new(loaded), warnings))
}

fn load_zone(config: &ZoneConfig) -> Result<(Zone, Vec<ZoneWarning>), LoadError> {
    let text = std::fs::read_to_string(&config.file).map_err(|cause| LoadError::Read {
        zone: config.name.to_string(),
        path: config.file.display().to_string(),
        cause,
    })?;
    let read_include = |path: &std::path::Path| std::fs::read_to_string(path);
    Zone::from_master_text(&config.name, &config.file, &text, &read_include).map_err(|cause| {
        LoadError::Zone {
            zone: config.name.to_string(),
            cause,
        }
    })
}

/// A zone signed by `policy`: checked as written first (every error and warning
/// with its file and line), then signed, then built again from the signed records.
fn load_signed_zone(
    config: &ZoneConfig,
    policy: &str,
    signing: &Signing,
) -> Result<(Zone, Vec<ZoneWarning>), LoadError> {
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
    let (_, warnings) = checked.build().map_err(zone_error)?;
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
    Ok((zone, warnings))
}
