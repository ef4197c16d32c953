//! `cache stats` and `cache flush`, over the resolver's control service. A flush
//! also reaches the listener's packet cache: the resolver announces a new cache
//! generation and the listener drops the answers it kept.

use std::path::Path;

use sextant_rpc::{ControlClient, Flush};

use crate::Outcome;

pub(crate) async fn resolver(config: &Path) -> Result<ControlClient, Outcome> {
    let config = sextant_config::load(config).map_err(|error| {
        eprintln!("{error}");
        Outcome::BadInput
    })?;
    let Some(endpoint) = config
        .resolver
        .as_ref()
        .map(|r| &r.grpc)
        .or(config.resolver_endpoint())
    else {
        eprintln!("the configuration names no resolver ([resolver] section or listener.resolver)");
        return Err(Outcome::BadInput);
    };
    ControlClient::connect(endpoint).await.map_err(|error| {
        eprintln!("{error}; is sextant-resolver running?");
        Outcome::Unreachable
    })
}

/// The listener's packet cache as its metrics endpoint shows it (the listener has
/// no control service): entries, bytes, budget.
#[derive(Debug, Clone, Copy)]
struct PacketCache {
    entries: u64,
    bytes: u64,
    budget: u64,
}

/// `Ok(None)` when the listener has no metrics endpoint (or no packet cache).
async fn packet_cache(config: &Path) -> Result<Option<PacketCache>, String> {
    let config = sextant_config::load(config).map_err(|e| e.to_string())?;
    let Some(address) = config.listener.as_ref().and_then(|l| l.metrics) else {
        return Ok(None);
    };
    let text = crate::stats::scrape(address)
        .await
        .map_err(|e| format!("listener metrics at {address}: {e}"))?;
    let samples = crate::stats::parse(&text);
    let value = |name: &str| {
        samples
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.value as u64)
    };
    Ok(
        value("sextant_listener_packet_cache_budget_bytes").map(|budget| PacketCache {
            entries: value("sextant_listener_packet_cache_entries").unwrap_or(0),
            bytes: value("sextant_listener_packet_cache_bytes").unwrap_or(0),
            budget,
        }),
    )
}

fn percent(bytes: u64, budget: u64) -> f64 {
    if budget == 0 {
        0.0
    } else {
        bytes as f64 * 100.0 / budget as f64
    }
}

pub(crate) async fn stats(config: &Path, json: bool) -> Outcome {
    let listener = match packet_cache(config).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("{error}");
            None
        }
    };
    let mut client = match resolver(config).await {
        Ok(client) => client,
        Err(outcome) => return outcome,
    };
    let status = match client.status().await {
        Ok(status) => status,
        Err(error) => {
            eprintln!("{error}");
            return Outcome::Unreachable;
        }
    };
    let cache = status.cache.unwrap_or_default();
    let asked = cache.hits + cache.misses;
    let hit_ratio = if asked == 0 {
        0.0
    } else {
        cache.hits as f64 / asked as f64
    };
    if json {
        say!(
            "{:#}",
            serde_json::json!({
                "entries": cache.entries, "bytes": cache.bytes, "budget": cache.budget,
                "hits": cache.hits, "misses": cache.misses, "hit_ratio": hit_ratio,
                "listener_packet_cache": listener.map(|l| serde_json::json!({
                    "entries": l.entries, "bytes": l.bytes, "budget": l.budget,
                })),
            })
        );
    } else {
        say!("resolver cache");
        say!("entries   {}", cache.entries);
        let used = percent(cache.bytes, cache.budget);
        say!("bytes     {} of {} ({used:.1}%)", cache.bytes, cache.budget);
        say!("hits      {}", cache.hits);
        say!("misses    {}", cache.misses);
        say!("hit ratio {:.1}%", hit_ratio * 100.0);
        match listener {
            Some(l) => {
                say!("listener packet cache (as of its last 5 s sample)");
                say!("entries   {}", l.entries);
                let used = percent(l.bytes, l.budget);
                say!("bytes     {} of {} ({used:.1}%)", l.bytes, l.budget);
            }
            None => say!("listener packet cache: not shown (set listener.metrics to read it)"),
        }
    }
    Outcome::Ok
}

pub(crate) async fn flush(config: &Path, name: Option<&str>, all: bool, subtree: bool) -> Outcome {
    let what = match (name, all) {
        (None, true) => Flush::All,
        (Some(name), false) if subtree => Flush::Subtree(name.to_string()),
        (Some(name), false) => Flush::Name(name.to_string()),
        _ => {
            eprintln!("give a NAME or --all (not both)");
            return Outcome::BadInput;
        }
    };
    let mut client = match resolver(config).await {
        Ok(client) => client,
        Err(outcome) => return outcome,
    };
    match client.flush(&what).await {
        Ok(Ok(removed)) => {
            say!("{removed} cache entries removed");
            Outcome::Ok
        }
        Ok(Err(message)) => {
            eprintln!("refused: {message}");
            Outcome::BadInput
        }
        Err(error) => {
            eprintln!("{error}");
            Outcome::Unreachable
        }
    }
}
