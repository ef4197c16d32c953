//! Expiry (RFC 1035 §3.3.13): a secondary that could not refresh a zone for longer
//! than the SOA's EXPIRE stops answering for it (SERVFAIL) until a refresh succeeds.

use std::time::{Duration, SystemTime};

use crate::state::ZoneState;

/// Whether `state` is past expire at `now`. The last success is remembered across
/// restarts; a zone never refreshed (nothing in the store) counts from the start of
/// the daemon, so that a first start does not expire it at once.
pub(crate) fn is_expired(state: &ZoneState, started: SystemTime, now: SystemTime) -> bool {
    let since = state.last_success.unwrap_or(started);
    // A wall clock set back makes the age zero, never negative.
    now.duration_since(since).unwrap_or_default()
        > Duration::from_secs(u64::from(state.timers.expire))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SoaTimers;

    #[test]
    fn expires_only_after_expire_without_success() {
        let start = SystemTime::now();
        let mut state = ZoneState {
            timers: SoaTimers {
                refresh: 1,
                retry: 1,
                expire: 10,
            },
            last_success: None,
            last_failure: None,
            expired: false,
            next_refresh: None,
            force: false,
        };
        assert!(!is_expired(&state, start, start + Duration::from_secs(9)));
        assert!(is_expired(&state, start, start + Duration::from_secs(11)));
        state.last_success = Some(start + Duration::from_secs(5));
        assert!(!is_expired(&state, start, start + Duration::from_secs(11)));
    }
}
