//! The set of zones one server is authoritative for.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::rr::{Name, RecordType};

use crate::Zone;

/// Zones by apex. Immutable: a reload builds a new catalog and swaps it in whole, so a
/// query sees either the old set of zones or the new one.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    zones: HashMap<Name, Arc<Zone>>,
}

impl Catalog {
    pub fn new(zones: impl IntoIterator<Item = Arc<Zone>>) -> Self {
        Self {
            zones: zones
                .into_iter()
                .map(|zone| (zone.origin().clone(), zone))
                .collect(),
        }
    }

    pub fn zones(&self) -> impl Iterator<Item = &Arc<Zone>> {
        self.zones.values()
    }

    pub fn get(&self, origin: &Name) -> Option<&Arc<Zone>> {
        self.zones.get(&origin.to_lowercase())
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
