//! What the secondary knows of each zone between refreshes: the SOA timers in effect
//! and the outcome of the last refresh. Shared by the refresh task, expiry and status.

use std::time::{Instant, SystemTime};

use hickory_proto::rr::{RData, Record};

/// SOA timers in effect for a zone, seconds as the SOA gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SoaTimers {
    pub(crate) refresh: u32,
    pub(crate) retry: u32,
    pub(crate) expire: u32,
}

impl SoaTimers {
    /// Before any SOA is known: RFC 1912's suggested values.
    pub(crate) const DEFAULT: Self = Self {
        refresh: 3600,
        retry: 600,
        expire: 1_209_600,
    };

    pub(crate) fn of(record: &Record) -> Option<Self> {
        match &record.data {
            RData::SOA(soa) => Some(Self {
                refresh: u32::try_from(soa.refresh).unwrap_or(0),
                retry: u32::try_from(soa.retry).unwrap_or(0),
                expire: u32::try_from(soa.expire).unwrap_or(0),
            }),
            _ => None,
        }
    }
}

/// What the refresh task knows of one zone.
#[derive(Clone, Debug)]
pub(crate) struct ZoneState {
    pub(crate) timers: SoaTimers,
    /// Wall-clock time: it is persisted and must mean the same after a reboot.
    pub(crate) last_success: Option<SystemTime>,
    pub(crate) last_failure: Option<String>,
    pub(crate) expired: bool,
    pub(crate) next_refresh: Option<Instant>,
    /// The next refresh transfers even when the serial has not moved (retransfer).
    pub(crate) force: bool,
}
