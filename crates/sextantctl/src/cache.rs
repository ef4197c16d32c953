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

pub(crate) async fn stats(config: &Path, json: bool) -> Outcome {
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
            })
        );
    } else {
        say!("entries   {}", cache.entries);
        let used = if cache.budget == 0 {
            0.0
        } else {
            cache.bytes as f64 * 100.0 / cache.budget as f64
        };
        say!("bytes     {} of {} ({used:.1}%)", cache.bytes, cache.budget);
        say!("hits      {}", cache.hits);
        say!("misses    {}", cache.misses);
        say!("hit ratio {:.1}%", hit_ratio * 100.0);
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
