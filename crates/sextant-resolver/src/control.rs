//! Operator control of the resolver: status with cache figures, and cache flushes
//! that reach the listener's packet cache too.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hickory_proto::rr::Name;
use sextant_rpc::{
    CacheGenerations, CacheStatus, ControlHandler, DaemonStatus, Flush, NtaAction, ZoneStatus,
};

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
                budget: resolver.cache.budget(),
                hits: resolver.hits.load(Ordering::Relaxed),
                misses: resolver.misses.load(Ordering::Relaxed),
            }),
            backends: Vec::new(),
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

    fn negative_trust_anchors(&self, action: NtaAction) -> Result<(bool, Vec<String>), String> {
        let Some(validator) = &self.resolver.validator else {
            return Err("DNSSEC validation is off (resolver.validation = false)".into());
        };
        let anchors = &validator.negative;
        let (changed, touched) = match &action {
            NtaAction::List => (false, None),
            NtaAction::Add(text) => {
                let name = domain(text)?;
                (anchors.add(&name), Some(name))
            }
            NtaAction::Remove(text) => {
                let name = domain(text)?;
                (anchors.remove(&name), Some(name))
            }
        };
        if let (true, Some(name)) = (changed, touched) {
            // What was cached under the old rule (bogus, or unvalidated) must go, here
            // and in the listener's packet cache.
            self.resolver.cache.flush(&name, true);
            validator.forget();
            self.generations.bump();
            tracing::info!(?action, "negative trust anchors changed");
        }
        let names = anchors.list().iter().map(Name::to_string).collect();
        Ok((changed, names))
    }

    fn flush(&self, what: Flush) -> Result<u64, String> {
        let parse = domain;
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

/// A name as an operator types it (`example.com`, with or without the final dot).
fn domain(text: &str) -> Result<Name, String> {
    let mut name =
        Name::from_str(text).map_err(|e| format!("{text:?} is not a domain name ({e})"))?;
    name.set_fqdn(true);
    Ok(name)
}
