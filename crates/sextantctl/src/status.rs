//! status and zone reload, over the daemons' gRPC control service.

use std::path::Path;

use sextant_rpc::{ControlClient, DaemonStatus, Endpoint, HealthState, check_health};

use crate::Outcome;

fn authority_endpoint(config: &Path) -> Result<Endpoint, Outcome> {
    let config = sextant_config::load(config).map_err(|error| {
        eprintln!("{error}");
        Outcome::BadInput
    })?;
    config.authority_endpoint().cloned().ok_or_else(|| {
        eprintln!("the configuration names no authority (no [authority] section and no listener.authority)");
        Outcome::BadInput
    })
}

pub async fn status(config: &Path, json: bool) -> Outcome {
    let endpoint = match authority_endpoint(config) {
        Ok(endpoint) => endpoint,
        Err(outcome) => return outcome,
    };
    let status = fetch(&endpoint).await;
    if json {
        let value = match &status {
            Ok(s) => serde_json::json!({
                "daemons": [{
                    "daemon": s.daemon, "endpoint": endpoint.to_string(), "reachable": true,
                    "version": s.version, "uptime_seconds": s.uptime_seconds,
                }],
                "zones": s.zones.iter().map(|z| serde_json::json!({
                    "name": z.name, "serial": z.serial, "records": z.records, "source": z.source,
                })).collect::<Vec<_>>(),
            }),
            Err(error) => serde_json::json!({
                "daemons": [{"daemon": "sextant-authority", "endpoint": endpoint.to_string(), "reachable": false, "error": error}],
                "zones": [],
            }),
        };
        say!("{value:#}");
    } else {
        print_table(&endpoint, &status);
    }
    match status {
        Ok(_) => Outcome::Ok,
        Err(_) => Outcome::Unreachable,
    }
}

async fn fetch(endpoint: &Endpoint) -> Result<DaemonStatus, String> {
    match check_health(endpoint, "").await {
        Ok(HealthState::Serving) => {}
        Ok(other) => return Err(format!("health is {other:?}")),
        Err(error) => return Err(format!("{error}; is sextant-authority running?")),
    }
    let mut client = ControlClient::connect(endpoint)
        .await
        .map_err(|e| e.to_string())?;
    client.status().await.map_err(|e| e.to_string())
}

fn print_table(endpoint: &Endpoint, status: &Result<DaemonStatus, String>) {
    say!(
        "{:<20} {:<44} {:<10} {:>10}",
        "DAEMON",
        "ENDPOINT",
        "VERSION",
        "UPTIME"
    );
    match status {
        Ok(s) => {
            say!(
                "{:<20} {:<44} {:<10} {:>9}s",
                s.daemon,
                endpoint.to_string(),
                s.version,
                s.uptime_seconds
            );
            say!();
            say!("{:<32} {:>12} {:>10}  SOURCE", "ZONE", "SERIAL", "RECORDS");
            for zone in &s.zones {
                say!(
                    "{:<32} {:>12} {:>10}  {}",
                    zone.name,
                    zone.serial,
                    zone.records,
                    zone.source
                );
            }
        }
        Err(error) => say!(
            "{:<20} {:<44} unreachable: {error}",
            "sextant-authority",
            endpoint.to_string()
        ),
    }
}

pub async fn reload(config: &Path, zone: Option<&str>) -> Outcome {
    let endpoint = match authority_endpoint(config) {
        Ok(endpoint) => endpoint,
        Err(outcome) => return outcome,
    };
    let mut client = match ControlClient::connect(&endpoint).await {
        Ok(client) => client,
        Err(error) => {
            eprintln!("{error}; is sextant-authority running?");
            return Outcome::Unreachable;
        }
    };
    match client.reload(zone).await {
        Ok(Ok(zones)) => {
            for zone in zones {
                say!(
                    "{} serial {} ({} records) served",
                    zone.name,
                    zone.serial,
                    zone.records
                );
            }
            Outcome::Ok
        }
        Ok(Err(message)) => {
            eprintln!("reload refused, previous zones still served: {message}");
            Outcome::BadInput
        }
        Err(error) => {
            eprintln!("{error}");
            Outcome::Unreachable
        }
    }
}
