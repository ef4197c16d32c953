//! status, zone reload and zone retransfer, over the daemons' gRPC control service.

use std::path::Path;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
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
pub(crate) fn daemons(config: &Config) -> Vec<(&'static str, Endpoint)> {
    let mut daemons = Vec::new();
    if let Some(endpoint) = config
        .authority
        .as_ref()
        .map(|a| &a.grpc)
        .or(config.authority_endpoint())
    {
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
    if let Some(endpoint) = config.listener.as_ref().and_then(|l| l.control.as_ref()) {
        daemons.push(("sextant-listener", endpoint.clone()));
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

pub(crate) async fn status(config: &Path, json: bool) -> Outcome {
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
    // A port 0 is chosen at start (tests): there is no address to probe.
    let listener = match config.listener.as_ref().and_then(|l| l.listen.first()) {
        Some(address) if address.port() != 0 => Some((*address, probe_listener(*address).await)),
        _ => None,
    };
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
                    "backends": s.backends.iter().map(|b| serde_json::json!({
                        "role": b.role, "endpoint": b.endpoint, "connected": b.connected, "serving": b.serving,
                    })).collect::<Vec<_>>(),
                }),
                Err(error) => serde_json::json!({
                    "daemon": daemon, "endpoint": endpoint.to_string(), "reachable": false, "error": error,
                }),
            })
            .collect();
        let listener = listener.as_ref().map(|(address, probe)| match probe {
            Ok(latency) => serde_json::json!({
                "daemon": "sextant-listener", "dns": address.to_string(), "reachable": true,
                "latency_us": latency.as_micros() as u64,
            }),
            Err(error) => serde_json::json!({
                "daemon": "sextant-listener", "dns": address.to_string(), "reachable": false, "error": error,
            }),
        });
        say!(
            "{:#}",
            serde_json::json!({ "daemons": daemons, "listener": listener })
        );
    } else {
        print_tables(&results, listener.as_ref());
    }
    if results.iter().all(|(_, _, r)| r.is_ok())
        && listener.as_ref().is_none_or(|(_, probe)| probe.is_ok())
    {
        Outcome::Ok
    } else {
        Outcome::Unreachable
    }
}

/// Whether the listener answers DNS (whether or not it has a control endpoint). Any
/// answer to our ID counts (REFUSED included); only silence or an ICMP error is "down".
async fn probe_listener(address: SocketAddr) -> Result<Duration, String> {
    let id: u16 = std::process::id() as u16;
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(Name::root(), RecordType::SOA));
    let wire = query.to_vec().map_err(|e| e.to_string())?;
    let local: SocketAddr = if address.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let exchange = async {
        let socket = tokio::net::UdpSocket::bind(local).await?;
        socket.connect(address).await?;
        let sent = Instant::now();
        socket.send(&wire).await?;
        let mut buffer = [0u8; 512];
        loop {
            let len = socket.recv(&mut buffer).await?;
            if len >= 12 && buffer[..2] == id.to_be_bytes() && buffer[2] & 0x80 != 0 {
                return Ok::<_, std::io::Error>(sent.elapsed());
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(2), exchange).await {
        Ok(Ok(latency)) => Ok(latency),
        Ok(Err(error)) => Err(format!("{error}; is sextant-listener running?")),
        Err(_) => Err("no DNS answer in 2 s; is sextant-listener running?".into()),
    }
}

type ListenerProbe = (SocketAddr, Result<Duration, String>);

fn print_tables(
    results: &[(&str, &Endpoint, Result<DaemonStatus, String>)],
    listener: Option<&ListenerProbe>,
) {
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
    if let Some((address, probe)) = listener {
        let endpoint = format!("dns {address}");
        match probe {
            Ok(latency) => say!(
                "{:<20} {:<44} answering in {} µs",
                "sextant-listener",
                endpoint,
                latency.as_micros()
            ),
            Err(error) => say!(
                "{:<20} {:<44} unreachable: {error}",
                "sextant-listener",
                endpoint
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
        if *daemon == "sextant-listener" {
            say!(
                "{:<10} {:<44} {:>10} {:>8}",
                "BACKEND",
                "ENDPOINT",
                "CONNECTED",
                "HEALTH"
            );
            for b in &status.backends {
                say!(
                    "{:<10} {:<44} {:>10} {:>8}",
                    b.role,
                    b.endpoint,
                    if b.connected { "yes" } else { "no" },
                    if b.serving { "serving" } else { "not" }
                );
            }
        } else if *daemon == "sextant-transfer" {
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
pub(crate) async fn control(config: &Path, zone: Option<&str>, retransfer: bool) -> Outcome {
    let config = match load(config) {
        Ok(config) => config,
        Err(outcome) => return outcome,
    };
    let (daemon, endpoint) = if retransfer {
        ("sextant-transfer", config.secondaries_endpoint())
    } else {
        ("sextant-authority", config.authority_endpoint())
    };
    let mut client = match connect(daemon, endpoint).await {
        Ok(client) => client,
        Err(outcome) => return outcome,
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

/// `zone notify`: the authority sends NOTIFY now and reports each secondary's answer.
/// Exit 1 when a secondary did not acknowledge (the command's purpose failed).
pub(crate) async fn notify(config: &Path, zone: Option<&str>) -> Outcome {
    let config = match load(config) {
        Ok(config) => config,
        Err(outcome) => return outcome,
    };
    let mut client = match connect("sextant-authority", config.authority_endpoint()).await {
        Ok(client) => client,
        Err(outcome) => return outcome,
    };
    match client.notify(zone).await {
        Ok(Ok(outcomes)) => {
            for o in &outcomes {
                say!(
                    "{} serial {} -> {}: {}",
                    o.zone,
                    o.serial,
                    o.target,
                    o.result
                );
            }
            if outcomes.iter().all(|o| o.acknowledged) {
                Outcome::Ok
            } else {
                Outcome::Unreachable
            }
        }
        Ok(Err(message)) => {
            eprintln!("{message}");
            Outcome::BadInput
        }
        Err(error) => {
            eprintln!("{error}");
            Outcome::Unreachable
        }
    }
}

/// The control client of `daemon`, or the outcome to exit with (said on stderr).
async fn connect(daemon: &str, endpoint: Option<&Endpoint>) -> Result<ControlClient, Outcome> {
    let Some(endpoint) = endpoint else {
        eprintln!("the configuration names no {daemon}");
        return Err(Outcome::BadInput);
    };
    ControlClient::connect(endpoint).await.map_err(|error| {
        eprintln!("{error}; is {daemon} running?");
        Outcome::Unreachable
    })
}
