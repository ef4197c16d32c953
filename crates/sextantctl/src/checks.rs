//! check-config and check-zone: what the daemons' --check does, without a daemon.

use std::path::Path;

use hickory_proto::rr::Name;
use sextant_zone::Zone;

use crate::Outcome;

pub fn check_config(file: &Path) -> Outcome {
    let config = match sextant_config::load(file) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return Outcome::BadInput;
        }
    };
    let mut ok = true;
    if let Some(authority) = &config.authority {
        for zone in &authority.zones {
            match load(&zone.name, &zone.file) {
                Ok(summary) => say!("zone {}: {summary}", zone.name),
                Err(error) => {
                    eprintln!("zone {}: {error}", zone.name);
                    ok = false;
                }
            }
        }
    }
    if ok {
        say!("{} is valid", file.display());
        Outcome::Ok
    } else {
        Outcome::BadInput
    }
}

pub fn check_zone(origin: &str, file: &Path) -> Outcome {
    let name = match Name::from_ascii(origin) {
        Ok(mut name) => {
            name.set_fqdn(true);
            name
        }
        Err(error) => {
            eprintln!("{origin:?} is not a domain name ({error}); write it like example.com");
            return Outcome::BadInput;
        }
    };
    match load(&name, file) {
        Ok(summary) => {
            say!("zone {name}: {summary}");
            Outcome::Ok
        }
        Err(error) => {
            eprintln!("{error}");
            Outcome::BadInput
        }
    }
}

/// Loads a zone file; the summary counts records and repeats the load's warnings.
fn load(origin: &Name, file: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!(
            "cannot read {}: {e}; check the path and permissions",
            file.display()
        )
    })?;
    let read_include = |path: &Path| std::fs::read_to_string(path);
    let (zone, warnings) =
        Zone::from_master_text(origin, file, &text, &read_include).map_err(|e| e.to_string())?;
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    Ok(format!(
        "loaded serial {}, {} records, {} warning(s)",
        zone.serial(),
        zone.record_count(),
        warnings.len()
    ))
}
