//! status, zone reload and zone retransfer, over the daemons' gRPC control service.

use std::path::Path;

use sextant_config::Config;
use sextant_rpc::{ControlClient, DaemonStatus, Endpoint, HealthState, ZoneStatus, check_health};

use crate::Outcome;

fn load(config: &Path) -> Result<Config, Outcome> {
    sextant_config::load(config).map_err(|error| {
        eprintln!("{error}");
        Outcome::BadInput
    })
}

/// The controllable daemons the configuration names, with their endpoints.
fn daemons(config: &Config) -> Vec<(&'static str, Endpoint)> {
    let mut daemons = Vec::new();
    if let Some(endpoint) = config.authority_endpoint() {
        daemons.push(("sextant-authority", endpoint.clone()));
    }
    if let Some(endpoint) = config.secondaries_endpoint() {
        daemons.push(("sextant-transfer", endpoint.clone()));
    }
    if let Some(endpoint) = config
        .resolver
        .as_ref()
        .map(|r| &r.grpc)
        .or(config.resolver_endpoint())
    {
        daemons.push(("sextant-resolver", endpoint.clone()));
    }
    daemons
}

async fn fetch(endpoint: &Endpoint, daemon: &str) -> Result<DaemonStatus, String> {
    match check_health(endpoint, "").await {
        Ok(HealthState::Serving) => {}
        Ok(other) => return Err(format!("health is {other:?}")),
        Err(error) => return Err(format!("{error}; is {daemon} running?")),
    }
    let mut client = ControlClient::connect(endpoint)
        .await
        .map_err(|e| e.to_string())?;
    client.status().await.map_err(|e| e.to_string())
}

fn zone_json(z: &ZoneStatus) -> serde_json::Value {
    serde_json::json!({
        "name": z.name, "serial": z.serial, "records": z.records, "source": z.source,
        "last_success_seconds_ago": z.last_success_seconds_ago, "last_failure": z.last_failure,
        "next_refresh_seconds": z.next_refresh_seconds, "expired": z.expired,
    })
}

pub async fn status(config: &Path, json: bool) -> Outcome {
    let config = match load(config) {
        Ok(config) => config,
        Err(outcome) => return outcome,
    };
    let daemons = daemons(&config);
    if daemons.is_empty() {
        eprintln!(
            "the configuration names no daemon to ask ([authority], [transfer] or [resolver] sections)"
        );
        return Outcome::BadInput;
    }
    let mut results = Vec::new();
    for (daemon, endpoint) in &daemons {
        results.push((*daemon, endpoint, fetch(endpoint, daemon).await));
    }
    if json {
        let daemons: Vec<_> = results
            .iter()
            .map(|(daemon, endpoint, result)| match result {
                Ok(s) => serde_json::json!({
                    "daemon": daemon, "endpoint": endpoint.to_string(), "reachable": true,
                    "version": s.version, "uptime_seconds": s.uptime_seconds,
                    "zones": s.zones.iter().map(zone_json).collect::<Vec<_>>(),
                    "cache": s.cache.map(|c| serde_json::json!({
                        "entries": c.entries, "bytes": c.bytes, "hits": c.hits, "misses": c.misses,
                    })),
                }),
                Err(error) => serde_json::json!({
                    "daemon": daemon, "endpoint": endpoint.to_string(), "reachable": false, "error": error,
                }),
            })
            .collect();
        say!("{:#}", serde_json::json!({ "daemons": daemons }));
    } else {
        print_tables(&results);
    }
    if results.iter().all(|(_, _, r)| r.is_ok()) {
        Outcome::Ok
    } else {
        Outcome::Unreachable
    }
}

fn print_tables(results: &[(&str, &Endpoint, Result<DaemonStatus, String>)]) {
    say!(
        "{:<20} {:<44} {:<10} {:>10}",
        "DAEMON",
        "ENDPOINT",
        "VERSION",
        "UPTIME"
    );
    for (daemon, endpoint, result) in results {
        match result {
            Ok(s) => say!(
                "{:<20} {:<44} {:<10} {:>9}s",
                daemon,
                endpoint.to_string(),
                s.version,
                s.uptime_seconds
            ),
            Err(error) => say!(
                "{:<20} {:<44} unreachable: {error}",
                daemon,
                endpoint.to_string()
            ),
        }
    }
    for (daemon, _, result) in results {
        let Ok(status) = result else { continue };
        say!();
        if let Some(cache) = status.cache {
            say!(
                "{daemon} cache: {} entries, {} bytes, {} hits, {} misses",
                cache.entries,
                cache.bytes,
                cache.hits,
                cache.misses
            );
            continue;
        }
        if *daemon == "sextant-transfer" {
            say!(
                "{:<28} {:>11} {:>9} {:>9} {:>9} {:>8}  SOURCE / LAST FAILURE",
                "SECONDARY ZONE",
                "SERIAL",
                "RECORDS",
                "OK AGO",
                "NEXT IN",
                "EXPIRED"
            );
            for z in &status.zones {
                let seconds = |v: Option<u64>| v.map_or("-".to_string(), |s| format!("{s}s"));
                say!(
                    "{:<28} {:>11} {:>9} {:>9} {:>9} {:>8}  {}{}",
                    z.name,
                    z.serial,
                    z.records,
                    seconds(z.last_success_seconds_ago),
                    seconds(z.next_refresh_seconds),
                    if z.expired { "yes" } else { "no" },
                    z.source,
                    if z.last_failure.is_empty() {
                        String::new()
                    } else {
                        format!(" / {}", z.last_failure)
                    }
                );
            }
        } else {
            say!(
                "{:<32} {:>12} {:>10} {:>8}  SOURCE",
                "ZONE",
                "SERIAL",
                "RECORDS",
                "EXPIRED"
            );
            for z in &status.zones {
                say!(
                    "{:<32} {:>12} {:>10} {:>8}  {}",
                    z.name,
                    z.serial,
                    z.records,
                    if z.expired { "yes" } else { "no" },
                    z.source
                );
            }
        }
    }
}

/// `zone reload` asks the authority (re-read files); `zone retransfer` asks the
/// transfer daemon (force a transfer).
pub async fn control(config: &Path, zone: Option<&str>, retransfer: bool) -> Outcome {
    let config = match load(config) {
        Ok(config) => config,
        Err(outcome) => return outcome,
    };
    let (daemon, endpoint) = if retransfer {
        ("sextant-transfer", config.secondaries_endpoint())
    } else {
        ("sextant-authority", config.authority_endpoint())
    };
    let Some(endpoint) = endpoint else {
        eprintln!("the configuration names no {daemon}");
        return Outcome::BadInput;
    };
    let mut client = match ControlClient::connect(endpoint).await {
        Ok(client) => client,
        Err(error) => {
            eprintln!("{error}; is {daemon} running?");
            return Outcome::Unreachable;
        }
    };
    match client.reload(zone).await {
        Ok(Ok(zones)) => {
            for zone in zones {
                if retransfer {
                    say!(
                        "{} transfer requested (serial now {})",
                        zone.name,
                        zone.serial
                    );
                } else {
                    say!(
                        "{} serial {} ({} records) served",
                        zone.name,
                        zone.serial,
                        zone.records
                    );
                }
            }
            Outcome::Ok
        }
        Ok(Err(message)) => {
            eprintln!("refused, nothing changed: {message}");
            Outcome::BadInput
        }
        Err(error) => {
            eprintln!("{error}");
            Outcome::Unreachable
        }
    }
}
