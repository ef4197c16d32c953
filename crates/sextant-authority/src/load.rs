//! Loading the configured zone files into a catalog.

use std::sync::Arc;

use sextant_config::ZoneConfig;
use sextant_zone::{Catalog, Zone, ZoneError, ZoneWarning};

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
}

/// Loads every zone; the first broken zone fails the whole load, so a catalog is
/// only ever served complete.
pub(crate) fn load_catalog(zones: &[ZoneConfig]) -> Result<(Catalog, Vec<ZoneWarning>), LoadError> {
    let mut loaded = Vec::with_capacity(zones.len());
    let mut warnings = Vec::new();
    for config in zones {
        let (zone, zone_warnings) = load_zone(config)?;
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
