//! `dnssec status`: how the authority signs each zone (policy, keys and their DS for
//! the parent, when the zone is signed next), from its control service. Only public
//! facts travel: the authority never sends key material.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use sextant_rpc::{ControlClient, ZoneStatus};

use crate::Outcome;

async fn authority(config: &Path) -> Result<ControlClient, Outcome> {
    let config = sextant_config::load(config).map_err(|error| {
        eprintln!("{error}");
        Outcome::BadInput
    })?;
    let Some(endpoint) = config.authority_endpoint() else {
        eprintln!("the configuration names no authority ([authority] section)");
        return Err(Outcome::BadInput);
    };
    ControlClient::connect(endpoint).await.map_err(|error| {
        eprintln!("{error}; is sextant-authority running?");
        Outcome::Unreachable
    })
}

pub(crate) fn import_bind(config: &Path, zone: &str, files: &[std::path::PathBuf]) -> Outcome {
    let config = match sextant_config::load(config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return Outcome::BadInput;
        }
    };
    match sextant_authority::import_bind_keys(&config, zone, files) {
        Ok(keys) => {
            for key in &keys {
                say!("imported {key}");
            }
            say!(
                "{zone}: the keys are in the authority's key store; `sextantctl zone reload {zone}` (or a restart) signs with them"
            );
            Outcome::Ok
        }
        Err(error) => {
            eprintln!("{error}");
            Outcome::BadInput
        }
    }
}

pub(crate) async fn ksk_submitted(config: &Path, zone: &str, tag: Option<u16>) -> Outcome {
    let mut client = match authority(config).await {
        Ok(client) => client,
        Err(outcome) => return outcome,
    };
    match client.ksk_submitted(zone, tag).await {
        Ok(Ok(tag)) => {
            say!(
                "{zone}: the DS of key {tag} is recorded as published by the parent; the rollover goes on once the old DS has left the caches (parent_ds_ttl + propagation_delay)"
            );
            Outcome::Ok
        }
        Ok(Err(refusal)) => {
            eprintln!("{refusal}");
            Outcome::BadInput
        }
        Err(error) => {
            eprintln!("{error}");
            Outcome::Unreachable
        }
    }
}

pub(crate) async fn status(config: &Path, zone: Option<&str>, json: bool) -> Outcome {
    let status = match authority(config).await {
        Ok(mut client) => client.status().await,
        Err(outcome) => return outcome,
    };
    let status = match status {
        Ok(status) => status,
        Err(error) => {
            eprintln!("{error}");
            return Outcome::Unreachable;
        }
    };
    let wanted = zone.map(|z| z.trim_end_matches('.').to_ascii_lowercase() + ".");
    let zones: Vec<&ZoneStatus> = status
        .zones
        .iter()
        .filter(|z| z.signing.is_some())
        .filter(|z| wanted.as_ref().is_none_or(|w| &z.name == w))
        .collect();
    if let Some(wanted) = &wanted
        && zones.is_empty()
    {
        eprintln!(
            "zone {wanted} is not signed by this authority (no dnssec_policy, or not served)"
        );
        return Outcome::BadInput;
    }
    if json {
        let list: Vec<serde_json::Value> = zones.iter().map(|z| zone_json(z)).collect();
        say!("{:#}", serde_json::Value::Array(list));
        return Outcome::Ok;
    }
    if zones.is_empty() {
        say!("no zone is signed by this authority");
    }
    for zone in zones {
        let Some(signing) = &zone.signing else {
            continue;
        };
        say!(
            "{} serial {} signed by policy {:?}; signed again in {}",
            zone.name,
            zone.serial,
            signing.policy,
            humantime::format_duration(Duration::from_secs(signing.next_signing_seconds))
        );
        if let Some(tag) = signing.waiting_for_ds {
            say!(
                "  a key rollover waits for the parent: publish the DS of key {tag}, then run `sextantctl dnssec ksk-submitted {}`",
                zone.name
            );
        }
        for key in &signing.keys {
            let made =
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(key.created));
            say!(
                "  {:<3}  tag {:<5}  algorithm {:<3}  made {made}  {}",
                key.role,
                key.tag,
                key.algorithm,
                key.state
            );
            if !key.ds.is_empty() {
                say!("       DS for the parent: {} IN DS {}", zone.name, key.ds);
            }
        }
    }
    Outcome::Ok
}

fn zone_json(zone: &ZoneStatus) -> serde_json::Value {
    let signing = zone.signing.as_ref();
    serde_json::json!({
        "zone": zone.name,
        "serial": zone.serial,
        "policy": signing.map(|s| s.policy.clone()),
        "next_signing_seconds": signing.map(|s| s.next_signing_seconds),
        "waiting_for_ds": signing.and_then(|s| s.waiting_for_ds),
        "keys": signing.map(|s| s.keys.iter().map(|k| serde_json::json!({
            "role": k.role, "algorithm": k.algorithm, "tag": k.tag,
            "created": k.created, "ds": k.ds, "state": k.state,
        })).collect::<Vec<_>>()),
    })
}
