//! check-config and check-zone: what the daemons' --check does, without a daemon.

use std::path::Path;

use hickory_proto::rr::Name;
use sextant_zone::Zone;

use crate::Outcome;

pub(crate) fn check_config(file: &Path) -> Outcome {
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

pub(crate) fn check_zone(origin: &str, file: &Path) -> Outcome {
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
    let bar = progress_bar(&text, file);
    let loaded =
        Zone::from_master_text_with_progress(origin, file, &text, &read_include, &|line| {
            bar.set_position(line as u64)
        });
    bar.finish_and_clear();
    let (zone, warnings) = loaded.map_err(|e| e.to_string())?;
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

/// Zone files above this size get a progress bar (on a terminal; indicatif hides it
/// when stderr is a pipe or a file).
const PROGRESS_ABOVE_BYTES: usize = 4 << 20;

/// A bar over the file's lines while it is parsed; indexing the records after the
/// last line takes a moment more, which the message says.
fn progress_bar(text: &str, file: &Path) -> indicatif::ProgressBar {
    if text.len() < PROGRESS_ABOVE_BYTES {
        return indicatif::ProgressBar::hidden();
    }
    let lines = text.bytes().filter(|b| *b == b'\n').count() as u64;
    let bar = indicatif::ProgressBar::new(lines);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:40}] {pos}/{len} lines, {per_sec}, {eta} left",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(format!(
        "reading {}",
        file.file_name().unwrap_or_default().to_string_lossy()
    ));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}
