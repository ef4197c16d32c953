//! Recording each zone change in the IXFR journal: when a zone's serial changes, the
//! records removed and added (compared as wire bytes) are appended, off the query
//! path, so that secondaries can be sent only the difference.

use std::sync::Arc;

use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use sextant_store::{Diff, Store};
use sextant_zone::{Catalog, Zone};

/// Appends a difference for every zone whose serial moved between `old` and `new`.
pub(crate) fn record(journal: &Arc<Store>, old: &Catalog, new: &Catalog) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for zone in new.zones() {
        let Some(before) = old.zones().find(|z| z.origin() == zone.origin()) else {
            continue;
        };
        if before.serial() == zone.serial() {
            continue;
        }
        let (journal, before, after) = (journal.clone(), before.clone(), zone.clone());
        runtime.spawn(async move {
            let computed = tokio::task::spawn_blocking(move || diff(&before, &after)).await;
            let Ok(Some(diff)) = computed else { return };
            let zone = diff_zone_name(&diff);
            match journal.append_diff(&zone, &diff).await {
                Ok(()) => tracing::info!(
                    %zone,
                    from = diff.from,
                    to = diff.to,
                    removed = diff.removed.len() - 1,
                    added = diff.added.len() - 1,
                    "zone change journaled for IXFR"
                ),
                Err(error) => tracing::warn!(%zone, %error, "cannot journal the zone change; IXFR will send the whole zone"),
            }
        });
    }
}

/// The journal key of a zone: its lower-case name.
pub(crate) fn key(zone: &Zone) -> String {
    zone.origin().to_string()
}

fn diff_zone_name(diff: &Diff) -> String {
    diff.added
        .first()
        .and_then(|soa| Record::from_bytes(soa).ok())
        .map(|soa| soa.name.to_lowercase().to_string())
        .unwrap_or_default()
}

/// The records of `before` not in `after` and the other way round, each list led by
/// its SOA; `None` if an SOA does not encode.
pub(crate) fn diff(before: &Zone, after: &Zone) -> Option<Diff> {
    let differences = before.differences(after);
    let mut removed = vec![before.soa().to_bytes().ok()?];
    removed.extend(differences.removed);
    let mut added = vec![after.soa().to_bytes().ok()?];
    added.extend(differences.added);
    Some(Diff {
        from: before.serial(),
        to: after.serial(),
        removed,
        added,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use hickory_proto::rr::Name;

    use super::*;

    fn zone(serial: u32, hosts: &[&str]) -> Zone {
        let mut text = format!("$TTL 60\n@ SOA ns h {serial} 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n");
        for host in hosts {
            text.push_str(&format!("{host} A 192.0.2.9\n"));
        }
        let none =
            |_: &Path| -> std::io::Result<String> { Err(std::io::ErrorKind::NotFound.into()) };
        Zone::from_master_text(
            &Name::from_ascii("example.com.").unwrap(),
            Path::new("z"),
            &text,
            &none,
        )
        .unwrap()
        .0
    }

    #[test]
    fn the_difference_holds_only_what_changed_led_by_the_soas() {
        let diff = diff(&zone(1, &["a", "b"]), &zone(2, &["b", "c"])).unwrap();
        assert_eq!((diff.from, diff.to), (1, 2));
        let names = |list: &[Vec<u8>]| -> Vec<String> {
            list.iter()
                .map(|b| {
                    let r = Record::from_bytes(b).unwrap();
                    format!("{} {}", r.name, r.record_type())
                })
                .collect()
        };
        assert_eq!(
            names(&diff.removed),
            ["example.com. SOA", "a.example.com. A"]
        );
        assert_eq!(names(&diff.added), ["example.com. SOA", "c.example.com. A"]);
    }
}
