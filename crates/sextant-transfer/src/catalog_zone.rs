//! Catalog zones (RFC 9432, version 2), as a consumer: a secondary zone configured
//! with `catalog = true` lists other zones, and each one it lists becomes a secondary
//! zone of its own, transferred from the catalog's primaries with its key. After every
//! new version of the catalog the members are added, removed, reset (a new unique id)
//! or handed to another catalog (the `coo` property), as the RFC says. The members are
//! not written anywhere else: at start they are read back from the catalog's
//! published version in the store.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinDecodable;

use crate::zones::{Role, ZoneEntry, Zones};

/// A member's place in its catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Membership {
    /// The catalog zone that owns it (`catalog.example.`).
    pub catalog: String,
    /// Its unique id: the label under `zones.`.
    pub id: String,
    /// Its `group` properties (for the operator; no settings are tied to them yet).
    pub groups: Vec<String>,
    /// The catalog its `coo` property names: that one may take it over.
    pub coo: Option<String>,
}

/// A member as its catalog lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listed {
    pub member: Name,
    pub id: String,
    pub groups: Vec<String>,
    pub coo: Option<Name>,
}

/// The members `records` (a version of catalog zone `catalog`) list. An error says
/// why the whole version cannot be used (its schema version is not 2); members that
/// break the rules alone are left out, each with a warning.
pub(crate) fn parse(
    catalog: &Name,
    records: &[Vec<u8>],
) -> Result<(Vec<Listed>, Vec<String>), String> {
    let lower = catalog.to_lowercase();
    let zones = Name::from_ascii("zones")
        .and_then(|z| z.append_domain(&lower))
        .map_err(|e| format!("the catalog's name is too long: {e}"))?;
    let version = Name::from_ascii("version")
        .and_then(|v| v.append_domain(&lower))
        .map_err(|e| format!("the catalog's name is too long: {e}"))?;
    let mut versions = Vec::new();
    // Per unique id: the PTR targets, and the properties.
    let mut members: HashMap<String, Vec<Name>> = HashMap::new();
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    let mut coo: HashMap<String, Vec<Name>> = HashMap::new();
    for bytes in records {
        let Ok(record) = Record::from_bytes(bytes) else {
            return Err("a record of the catalog does not decode".into());
        };
        let owner = record.name.to_lowercase();
        if owner == version {
            if let RData::TXT(txt) = &record.data {
                let text: Vec<u8> = txt
                    .txt_data
                    .iter()
                    .flat_map(|s| s.iter().copied())
                    .collect();
                versions.push(String::from_utf8_lossy(&text).into_owned());
            }
            continue;
        }
        if !zones.zone_of(&owner) || owner == zones {
            continue;
        }
        let depth = owner.num_labels() - zones.num_labels();
        let label = |i: usize| {
            owner
                .iter()
                .nth(i)
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .unwrap_or_default()
        };
        match (depth, record.record_type(), &record.data) {
            (1, RecordType::PTR, RData::PTR(target)) => {
                members
                    .entry(label(0))
                    .or_default()
                    .push(target.0.to_lowercase());
            }
            (2, RecordType::PTR, RData::PTR(target)) if label(0) == "coo" => {
                coo.entry(label(1))
                    .or_default()
                    .push(target.0.to_lowercase());
            }
            (2, RecordType::TXT, RData::TXT(txt)) if label(0) == "group" => {
                for text in txt.txt_data.iter() {
                    groups
                        .entry(label(1))
                        .or_default()
                        .push(String::from_utf8_lossy(text).into_owned());
                }
            }
            // Other properties and record types: not ours to interpret.
            _ => {}
        }
    }
    match versions.as_slice() {
        [v] if v == "2" => {}
        [] => return Err("it has no version.<catalog> TXT record (RFC 9432 needs \"2\")".into()),
        [v] => {
            return Err(format!(
                "its schema version is \"{v}\"; only \"2\" is followed"
            ));
        }
        _ => return Err("it has more than one version TXT record".into()),
    }
    let mut warnings = Vec::new();
    let mut listed: Vec<Listed> = Vec::new();
    let mut by_member: HashMap<Name, usize> = HashMap::new();
    let mut ids: Vec<_> = members.into_iter().collect();
    ids.sort();
    for (id, targets) in ids {
        let [member] = targets.as_slice() else {
            warnings.push(format!(
                "unique id {id} has {} PTR records; it is left out",
                targets.len()
            ));
            continue;
        };
        *by_member.entry(member.clone()).or_default() += 1;
        let coo = match coo.get(&id).map(Vec::as_slice) {
            None => None,
            Some([one]) => Some(one.clone()),
            Some(_) => {
                warnings.push(format!(
                    "member {member} has several coo properties; they are ignored"
                ));
                None
            }
        };
        listed.push(Listed {
            member: member.clone(),
            groups: groups.remove(&id).unwrap_or_default(),
            id,
            coo,
        });
    }
    // A zone listed under two unique ids is ambiguous: neither entry is used.
    listed.retain(|l| {
        let once = by_member.get(&l.member) == Some(&1);
        if !once {
            warnings.push(format!(
                "member {} is listed under several unique ids; it is left out",
                l.member
            ));
        }
        once
    });
    Ok((listed, warnings))
}

/// Brings the members of catalog zone `key` in line with its published version.
pub(crate) async fn follow(zones: &Arc<Zones>, key: &str) {
    let Some(catalog) = zones.zone(key) else {
        return;
    };
    // Read off the async threads: a catalog of many members is a zone like others.
    let (store, owned) = (zones.store.clone(), key.to_string());
    let read = tokio::task::spawn_blocking(move || store.records(&owned))
        .await
        .unwrap_or_else(|e| {
            Err(sextant_store::StoreError::Corrupt {
                key: format!("catalog read task: {e}"),
                what: "the read failed",
            })
        });
    let records = match read {
        Ok(Some(records)) => records,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(catalog = %key, %error, "cannot read the catalog zone; its members stay as they are");
            return;
        }
    };
    let (listed, warnings) = match parse(&catalog.name, &records) {
        Ok(parsed) => parsed,
        Err(reason) => {
            tracing::warn!(catalog = %key, "catalog zone not followed: {reason}; its members stay as they are");
            return;
        }
    };
    for warning in warnings {
        tracing::warn!(catalog = %key, "catalog zone: {warning}");
    }
    let mut wanted = std::collections::HashSet::new();
    for listed in listed {
        let member = listed.member.to_string();
        wanted.insert(member.clone());
        let membership = Membership {
            catalog: key.to_string(),
            id: listed.id,
            groups: listed.groups,
            coo: listed.coo.map(|c| c.to_string()),
        };
        let Some(entry) = zones.zone(&member) else {
            add(zones, &catalog, listed.member, membership);
            continue;
        };
        let role = entry.role.lock().clone();
        match role {
            Role::Member(held) if held.catalog == key && held.id == membership.id => {
                *entry.role.lock() = Role::Member(membership);
            }
            Role::Member(held) if held.catalog == key => {
                // A new unique id: the member's state starts again (RFC 9432, "Zone-Associated
                // State Reset").
                tracing::info!(catalog = %key, zone = %member, old = %held.id, new = %membership.id, "catalog member reset: transferred again");
                forget(zones, &member).await;
                add(zones, &catalog, listed.member, membership);
            }
            Role::Member(held) if held.coo.as_deref() == Some(key) => {
                // Change of ownership (RFC 9432, "Migrating Member Zones between
                // Catalogs"): kept as it is under the same unique id, reset under
                // another.
                tracing::info!(zone = %member, from = %held.catalog, to = %key, "catalog member changes owner");
                if held.id == membership.id {
                    *entry.role.lock() = Role::Member(membership);
                } else {
                    forget(zones, &member).await;
                    add(zones, &catalog, listed.member, membership);
                }
            }
            Role::Member(held) => {
                tracing::warn!(catalog = %key, zone = %member, owner = %held.catalog, "catalog member already belongs to another catalog without handing it over (coo); ignored here");
            }
            Role::Configured | Role::Catalog => {
                tracing::warn!(catalog = %key, zone = %member, "catalog member is also configured as a secondary zone; the configuration wins");
            }
        }
    }
    let gone: Vec<String> = zones
        .all()
        .into_iter()
        .filter(|entry| {
            matches!(&*entry.role.lock(), Role::Member(m) if m.catalog == key)
                && !wanted.contains(&entry.key)
        })
        .map(|entry| entry.key.clone())
        .collect();
    for member in gone {
        tracing::info!(catalog = %key, zone = %member, "catalog member removed: no longer served");
        forget(zones, &member).await;
    }
}

fn add(zones: &Arc<Zones>, catalog: &ZoneEntry, name: Name, membership: Membership) {
    let entry = match ZoneEntry::new(
        &zones.store,
        name.clone(),
        catalog.primaries.clone(),
        catalog.allow_notify.clone(),
        catalog.tsig.clone(),
        Role::Member(membership.clone()),
        zones.shutdown.child_token(),
    ) {
        Ok(entry) => entry,
        Err(error) => {
            tracing::warn!(catalog = %membership.catalog, zone = %name, error = format!("{error:#}"), "catalog member cannot be added");
            return;
        }
    };
    if let Some(entry) = zones.insert(entry) {
        tracing::info!(catalog = %membership.catalog, zone = %entry.key, id = %membership.id, groups = ?membership.groups, "catalog member added");
        tokio::spawn(crate::refresh::run(zones.clone(), entry.key.clone()));
    }
}

/// Stops serving `member` and deletes what the store holds of it.
async fn forget(zones: &Zones, member: &str) {
    zones.remove(member);
    if let Err(error) = zones.store.forget(member).await {
        tracing::warn!(zone = %member, %error, "cannot delete a removed catalog member from the store; it is no longer served");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hickory_proto::rr::rdata::{PTR, TXT};
    use hickory_proto::serialize::binary::BinEncodable;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn record(owner: &str, data: RData) -> Vec<u8> {
        Record::from_rdata(name(owner), 0, data).to_bytes().unwrap()
    }

    fn ptr(owner: &str, target: &str) -> Vec<u8> {
        record(owner, RData::PTR(PTR(name(target))))
    }

    fn txt(owner: &str, text: &str) -> Vec<u8> {
        record(owner, RData::TXT(TXT::new(vec![text.to_string()])))
    }

    const CATALOG: &str = "catalog.example.";

    #[test]
    fn members_and_their_properties_are_read() {
        let records = [
            txt("version.catalog.example.", "2"),
            ptr("a1.zones.catalog.example.", "one.example."),
            ptr("b2.zones.catalog.example.", "Two.Example."),
            txt("group.b2.zones.catalog.example.", "signed"),
            ptr("coo.b2.zones.catalog.example.", "other.example."),
            // Not a member: deeper and unknown, or outside zones.
            ptr("x.y.b2.zones.catalog.example.", "nothing.example."),
            ptr("ext.catalog.example.", "nothing.example."),
        ];
        let (listed, warnings) = parse(&name(CATALOG), &records).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].member, name("one.example."));
        assert_eq!(listed[0].id, "a1");
        assert_eq!(listed[1].member, name("two.example."));
        assert_eq!(listed[1].groups, vec!["signed".to_string()]);
        assert_eq!(listed[1].coo, Some(name("other.example.")));
    }

    #[test]
    fn a_catalog_without_version_2_is_not_followed() {
        let members = ptr("a1.zones.catalog.example.", "one.example.");
        let err = parse(&name(CATALOG), std::slice::from_ref(&members)).unwrap_err();
        assert!(err.contains("no version"), "{err}");
        let err = parse(
            &name(CATALOG),
            &[txt("version.catalog.example.", "1"), members],
        )
        .unwrap_err();
        assert!(err.contains("\"1\""), "{err}");
    }

    #[test]
    fn ambiguous_members_are_left_out_with_a_warning() {
        let records = [
            txt("version.catalog.example.", "2"),
            ptr("a1.zones.catalog.example.", "one.example."),
            ptr("a1.zones.catalog.example.", "two.example."),
            ptr("b2.zones.catalog.example.", "three.example."),
            ptr("c3.zones.catalog.example.", "three.example."),
            ptr("d4.zones.catalog.example.", "four.example."),
        ];
        let (listed, warnings) = parse(&name(CATALOG), &records).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].member, name("four.example."));
        assert_eq!(warnings.len(), 3, "{warnings:?}");
    }
}
