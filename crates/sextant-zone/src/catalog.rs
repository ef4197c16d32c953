//! The set of zones one server is authoritative for.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hickory_proto::rr::{Name, RecordType};

use crate::Zone;

/// Zones by apex. Immutable: a reload builds a new catalog and swaps it in whole, so a
/// query sees either the old set of zones or the new one.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    zones: HashMap<Name, Arc<Zone>>,
    /// Secondary zones past their SOA expire: answered SERVFAIL (RFC 1035 §3.3.13).
    expired: HashSet<Name>,
}

impl Catalog {
    pub fn new(zones: impl IntoIterator<Item = Arc<Zone>>) -> Self {
        Self {
            zones: zones
                .into_iter()
                .map(|zone| (zone.origin().clone(), zone))
                .collect(),
            expired: HashSet::new(),
        }
    }

    /// A copy with `zones` added or replaced (by apex) and each zone's expired state
    /// set as `expired` says; everything else stays as it is.
    pub fn updated(
        &self,
        zones: impl IntoIterator<Item = Arc<Zone>>,
        expired: &[(Name, bool)],
    ) -> Self {
        let mut next = self.clone();
        for zone in zones {
            next.zones.insert(zone.origin().clone(), zone);
        }
        for (origin, is_expired) in expired {
            let origin = origin.to_lowercase();
            if *is_expired {
                next.expired.insert(origin);
            } else {
                next.expired.remove(&origin);
            }
        }
        next
    }

    pub fn is_expired(&self, origin: &Name) -> bool {
        self.expired.contains(origin)
    }

    pub fn zones(&self) -> impl Iterator<Item = &Arc<Zone>> {
        self.zones.values()
    }

    /// The zone whose data answers `qname`: the most specific one, except that DS
    /// lives on the parent side of a cut (RFC 4035 §3.1.4.1), so a DS query for the
    /// apex of a zone goes to its parent when we serve that too.
    pub fn zone_for(&self, qname: &Name, qtype: RecordType) -> Option<&Arc<Zone>> {
        let mut name = qname.to_lowercase();
        let mut skip_apex = qtype == RecordType::DS;
        loop {
            if let Some(zone) = self.zones.get(&name)
                && (!skip_apex || name.is_root())
            {
                return Some(zone);
            }
            skip_apex = false;
            if name.is_root() {
                return None;
            }
            name = name.base_name();
        }
    }
}
