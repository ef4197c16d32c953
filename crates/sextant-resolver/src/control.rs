//! Operator control of the resolver: status with cache figures, and cache flushes
//! that reach the listener's packet cache too.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hickory_proto::rr::Name;
use sextant_rpc::{CacheGenerations, CacheStatus, ControlHandler, DaemonStatus, Flush, ZoneStatus};

use crate::resolve::Resolver;

#[derive(Debug)]
pub(crate) struct Control {
    pub resolver: Arc<Resolver>,
    /// Bumped on every flush; the listener watches it.
    pub generations: CacheGenerations,
    pub started: std::time::Instant,
}

impl ControlHandler for Control {
    fn status(&self) -> DaemonStatus {
        let resolver = &self.resolver;
        DaemonStatus {
            daemon: "sextant-resolver".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs(),
            zones: Vec::new(),
            cache: Some(CacheStatus {
                entries: resolver.cache.len() as u64,
                bytes: resolver.cache.bytes(),
                hits: resolver.hits.load(Ordering::Relaxed),
                misses: resolver.misses.load(Ordering::Relaxed),
            }),
        }
    }

    fn reload(
        &self,
        _zone: Option<String>,
    ) -> impl Future<Output = Result<Vec<ZoneStatus>, String>> + Send {
        std::future::ready(Err(
            "the resolver has no zones to reload; use `sextantctl cache flush`".to_string(),
        ))
    }

    fn flush(&self, what: Flush) -> Result<u64, String> {
        let parse = |text: &str| {
            let mut name =
                Name::from_str(text).map_err(|e| format!("{text:?} is not a domain name ({e})"))?;
            name.set_fqdn(true);
            Ok::<Name, String>(name)
        };
        let removed = match what {
            Flush::All => {
                if let Some(validator) = &self.resolver.validator {
                    validator.forget();
                }
                self.resolver.cache.flush_all()
            }
            Flush::Name(text) => self.resolver.cache.flush(&parse(&text)?, false),
            Flush::Subtree(text) => self.resolver.cache.flush(&parse(&text)?, true),
        };
        self.generations.bump();
        tracing::info!(removed, "cache flushed");
        Ok(removed as u64)
    }
}
