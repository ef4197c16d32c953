//! Which backend answers a query: the zones the authority serves, kept current by
//! its watch stream. The listener holds zone names only, never zone data.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use sextant_rpc::ZoneSet;
use sextant_wire::{Question, wire_name_from_text};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Where a query goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Authority,
    /// The name is in no zone we serve: the resolver's, when the client may
    /// recurse; REFUSED otherwise.
    Refuse,
    /// The authority's zone set is not known yet: we cannot tell, so SERVFAIL.
    Unknown,
}

#[derive(Debug, Default)]
struct Zones {
    known: bool,
    generation: u64,
    /// Lower-cased wire-form apex names.
    apexes: HashSet<Box<[u8]>>,
}

#[derive(Debug, Default)]
pub(crate) struct Router {
    zones: ArcSwap<Zones>,
}

impl Router {
    pub(crate) fn route(&self, question: &Question) -> Route {
        let zones = self.zones.load();
        if !zones.known {
            return Route::Unknown;
        }
        if question
            .suffixes()
            .any(|suffix| zones.apexes.contains(suffix))
        {
            Route::Authority
        } else {
            Route::Refuse
        }
    }

    /// A router that knows there are no zones (no authority configured).
    pub(crate) fn without_zones() -> Self {
        let router = Self::default();
        router.apply(&ZoneSet {
            generation: 0,
            zones: Vec::new(),
        });
        router
    }

    pub(crate) fn generation(&self) -> Option<u64> {
        let zones = self.zones.load();
        zones.known.then_some(zones.generation)
    }

    pub(crate) fn zone_count(&self) -> usize {
        self.zones.load().apexes.len()
    }

    fn apply(&self, set: &ZoneSet) {
        let apexes = set
            .zones
            .iter()
            .filter_map(|name| {
                let wire = wire_name_from_text(name);
                if wire.is_none() {
                    tracing::warn!(zone = %name, "backend announced a zone name that does not parse; ignored");
                }
                wire.map(Vec::into_boxed_slice)
            })
            .collect();
        self.zones.store(Arc::new(Zones {
            known: true,
            generation: set.generation,
            apexes,
        }));
    }

    /// Applies every zone set the watcher receives until shutdown.
    pub(crate) fn follow(
        self: &Arc<Self>,
        mut sets: watch::Receiver<Option<ZoneSet>>,
        shutdown: CancellationToken,
    ) {
        let router = self.clone();
        tokio::spawn(async move {
            loop {
                if let Some(set) = sets.borrow_and_update().clone() {
                    router.apply(&set);
                    tracing::info!(
                        zones = set.zones.len(),
                        generation = set.generation,
                        "zone set updated"
                    );
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = sets.changed() => if changed.is_err() { return },
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn question(packet: &[u8]) -> Question {
        sextant_wire::parse_query(packet).unwrap().question
    }

    fn packet(name: &[u8]) -> Vec<u8> {
        let mut p = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(name);
        p.extend_from_slice(&[0, 1, 0, 1]);
        p
    }

    #[test]
    fn routes_by_longest_zone_suffix() {
        let router = Router::default();
        let q = question(&packet(b"\x03www\x07Example\x03com\x00"));
        assert_eq!(router.route(&q), Route::Unknown);
        router.apply(&ZoneSet {
            generation: 1,
            zones: vec!["example.com.".into()],
        });
        assert_eq!(router.route(&q), Route::Authority);
        let other = question(&packet(b"\x03www\x07example\x03net\x00"));
        assert_eq!(router.route(&other), Route::Refuse);
        assert_eq!(router.generation(), Some(1));
    }
}

/// A backend's cache generation as last heard (see `sextant_rpc::CacheGenerations`).
#[derive(Debug)]
pub(crate) struct Generation {
    /// `UNKNOWN` until the first value arrives.
    value: AtomicU64,
}

const UNKNOWN: u64 = u64::MAX;

impl Generation {
    /// Follows `generations` until `shutdown`.
    pub(crate) fn follow(
        mut generations: watch::Receiver<Option<u64>>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let generation = Arc::new(Self {
            value: AtomicU64::new(UNKNOWN),
        });
        let following = generation.clone();
        tokio::spawn(async move {
            loop {
                if let Some(value) = *generations.borrow_and_update() {
                    following
                        .value
                        .store(value.min(UNKNOWN - 1), Ordering::Relaxed);
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = generations.changed() => if changed.is_err() { return },
                }
            }
        });
        generation
    }

    /// The generation, once known.
    pub(crate) fn get(&self) -> Option<u64> {
        let value = self.value.load(Ordering::Relaxed);
        (value != UNKNOWN).then_some(value)
    }
}
