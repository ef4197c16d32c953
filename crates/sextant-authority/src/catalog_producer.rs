//! The catalog zone (RFC 9432, version 2) of this authority's primary zones, when
//! `authority.catalog` names one: secondaries that consume catalogs (BIND, Knot,
//! NSD, Sextant's transfer daemon) provision every zone from it. It is served and
//! transferred like the primary zones. Each member's unique id is derived from its
//! name, so it is the same at every start; the serial moves only when the member set
//! does (remembered in `authority.state_dir`).

use std::path::Path;

use hickory_proto::rr::rdata::{NS, PTR, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record};
use sextant_zone::Zone;

/// The unique id of `member`: 64 bits of the SHA-256 of its lower-case wire name,
/// in hex, as the RFC suggests ids be made (stable, not guessable from the list).
pub(crate) fn member_id(member: &Name) -> String {
    let lower = member.to_lowercase();
    let wire = hickory_proto::serialize::binary::BinEncodable::to_bytes(&lower)
        .unwrap_or_else(|_| lower.to_string().into_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &wire);
    hex(&digest.as_ref()[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The file under the state directory remembering the serial and the member set.
const STATE_FILE: &str = "catalog-zone.state";

/// The catalog zone `catalog` listing `members`.
pub(crate) fn produce(
    catalog: &Name,
    members: &[Name],
    state_dir: Option<&Path>,
) -> Result<Zone, String> {
    let mut members: Vec<Name> = members.iter().map(Name::to_lowercase).collect();
    members.sort();
    members.dedup();
    let serial = serial(catalog, &members, state_dir);
    let name = |text: &str| Name::from_ascii(text).map_err(|e| e.to_string());
    let under = |label: &str, base: &Name| {
        name(label).and_then(|l| l.append_domain(base).map_err(|e| e.to_string()))
    };
    let invalid = name("invalid.")?;
    let zones = under("zones", catalog)?;
    // TTL 0: a catalog is for transfers, not for caches.
    let record = |owner: Name, data: RData| Record::from_rdata(owner, 0, data);
    let mut records = vec![
        record(
            catalog.clone(),
            RData::SOA(SOA::new(
                invalid.clone(),
                invalid.clone(),
                serial,
                3600,
                600,
                2_419_200,
                0,
            )),
        ),
        record(catalog.clone(), RData::NS(NS(invalid))),
        record(
            under("version", catalog)?,
            RData::TXT(TXT::new(vec!["2".to_string()])),
        ),
    ];
    for member in &members {
        records.push(record(
            under(&member_id(member), &zones)?,
            RData::PTR(PTR(member.clone())),
        ));
    }
    let source = Path::new("catalog zone made by the authority");
    crate::secondary::build_records(catalog, source, records)
}

/// The serial for `members`: the one remembered when they are the same set, else
/// one past it (at least the current Unix time, so that a lost state file still
/// moves forward).
fn serial(catalog: &Name, members: &[Name], state_dir: Option<&Path>) -> u32 {
    let list = members
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    let digest = ring::digest::digest(&ring::digest::SHA256, list.as_bytes());
    let digest = hex(digest.as_ref());
    let now = u32::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
    .unwrap_or(u32::MAX);
    let Some(dir) = state_dir else {
        return now;
    };
    let path = dir.join(STATE_FILE);
    let remembered = std::fs::read_to_string(&path).ok().and_then(|text| {
        let mut fields = text.split_whitespace();
        let serial = fields.next()?.parse::<u32>().ok()?;
        let of = fields.next()?.to_string();
        Some((serial, of))
    });
    let serial = match remembered {
        Some((serial, of)) if of == digest => return serial,
        Some((serial, _)) => now.max(serial.wrapping_add(1)),
        None => now,
    };
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, format!("{serial} {digest}\n")));
    if let Err(error) = written {
        tracing::warn!(catalog = %catalog, path = %path.display(), %error, "cannot remember the catalog zone's serial; the next start may move it without a change");
    }
    serial
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[test]
    fn the_catalog_lists_each_member_once_under_a_stable_id() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = name("catalog.invalid.");
        let members = [name("b.example."), name("A.example."), name("b.example.")];
        let zone = produce(&catalog, &members, Some(dir.path())).unwrap();
        let first = zone.serial();
        // version, SOA, NS and one PTR per member.
        assert_eq!(zone.record_count(), 5);
        assert_eq!(
            member_id(&name("a.example.")),
            member_id(&name("A.EXAMPLE."))
        );
        assert_eq!(member_id(&name("a.example.")).len(), 16);
        // The same members: the same serial; another set: a later one.
        let again = produce(&catalog, &members, Some(dir.path())).unwrap();
        assert_eq!(again.serial(), first);
        let changed = produce(&catalog, &[name("a.example.")], Some(dir.path())).unwrap();
        assert!(changed.serial() > first);
    }
}
