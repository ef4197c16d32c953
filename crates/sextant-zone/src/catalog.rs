//! The set of zones one server is authoritative for.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hickory_proto::rr::{Name, RecordType};

use crate::Zone;
use crate::zone::wire_name;

/// Zones by apex. Immutable: a reload builds a new catalog and swaps it in whole, so a
/// query sees either the old set of zones or the new one.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    /// Keyed by the apex in wire form, lower case: a query's name suffixes are looked
    /// up as they are, without building names.
    zones: HashMap<Box<[u8]>, Arc<Zone>>,
    /// Secondary zones past their SOA expire: answered SERVFAIL (RFC 1035 §3.3.13).
    expired: HashSet<Box<[u8]>>,
}

impl Catalog {
    /// A catalog of `zones`, none expired.
    pub fn new(zones: impl IntoIterator<Item = Arc<Zone>>) -> Self {
        Self {
            zones: zones
                .into_iter()
                .map(|zone| (Box::from(zone.origin_wire()), zone))
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
            next.zones.insert(Box::from(zone.origin_wire()), zone);
        }
        for (origin, is_expired) in expired {
            let origin = wire_name(origin).into_boxed_slice();
            if *is_expired {
                next.expired.insert(origin);
            } else {
                next.expired.remove(&origin);
            }
        }
        next
    }

    /// A copy without the zone at `origin`.
    pub fn without(&self, origin: &Name) -> Self {
        let origin = wire_name(origin);
        let mut next = self.clone();
        next.zones.remove(origin.as_slice());
        next.expired.remove(origin.as_slice());
        next
    }

    /// Whether the zone at `origin` is past its SOA expire.
    pub fn is_expired(&self, origin: &Name) -> bool {
        self.is_expired_wire(&wire_name(origin))
    }

    pub(crate) fn is_expired_wire(&self, origin: &[u8]) -> bool {
        !self.expired.is_empty() && self.expired.contains(origin)
    }

    /// Every zone.
    pub fn zones(&self) -> impl Iterator<Item = &Arc<Zone>> {
        self.zones.values()
    }

    /// The zone whose data answers `qname`: the most specific one, except that DS
    /// lives on the parent side of a cut (RFC 4035 §3.1.4.1), so a DS query for the
    /// apex of a zone goes to its parent when we serve that too, and is answered by
    /// the zone itself (no data) when we do not.
    pub fn zone_for(&self, qname: &Name, qtype: RecordType) -> Option<&Arc<Zone>> {
        self.zone_for_wire(&wire_name(qname), qtype)
    }

    /// [`Catalog::zone_for`] of a lower-cased wire name.
    pub(crate) fn zone_for_wire(&self, qname: &[u8], qtype: RecordType) -> Option<&Arc<Zone>> {
        let mut apex_zone = None;
        let root = qname.len().saturating_sub(1);
        for start in sextant_wire::label_starts(qname).chain([root]) {
            let suffix = qname.get(start..).unwrap_or_default();
            let Some(zone) = self.zones.get(suffix) else {
                continue;
            };
            if start == 0 && qtype == RecordType::DS && suffix != [0] {
                apex_zone = Some(zone);
                continue;
            }
            return Some(zone);
        }
        apex_zone
    }
}
