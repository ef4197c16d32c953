//! Client questions whose resolution just failed (RFC 9520). Without this memory
//! every client retry of a broken name would send a new burst of upstream queries
//! at servers that are already failing; with it, the retry gets SERVFAIL at once
//! (marked "Cached Error") until the hold ends. A question that keeps failing is held
//! twice as long each time, up to a ceiling, as RFC 9520 §3.2 suggests.

use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, RecordType};

/// How long failures are held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureHold {
    /// After the first failure. Zero turns the memory off.
    pub first: Duration,
    /// The ceiling for a question that keeps failing.
    pub max: Duration,
    /// Questions remembered at most (`resolver.failure_entries`); beyond this the
    /// least used are forgotten first, which only costs a resolution attempt.
    pub entries: usize,
}

#[derive(Clone, Copy, Debug)]
struct Held {
    until: Instant,
    hold: Duration,
}

/// Recently failed client questions, keyed by lower-cased name and type.
#[derive(Debug)]
pub(crate) struct FailureCache {
    entries: quick_cache::sync::Cache<(Name, RecordType), Held>,
    limits: FailureHold,
}

impl FailureCache {
    pub(crate) fn new(limits: FailureHold) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(limits.entries.max(1)),
            limits,
        }
    }

    /// Whether `key` failed recently enough that it is not tried again yet.
    pub(crate) fn holds(&self, key: &(Name, RecordType), now: Instant) -> bool {
        self.entries.get(key).is_some_and(|held| now < held.until)
    }

    /// Remembers that resolving `key` failed at `now`.
    pub(crate) fn failed(&self, key: (Name, RecordType), now: Instant) {
        if self.limits.first.is_zero() {
            return;
        }
        // Failing again soon after the last hold ended: back off further.
        let hold = match self.entries.get(&key) {
            Some(last) if now < last.until + self.limits.max => {
                (last.hold * 2).min(self.limits.max)
            }
            _ => self.limits.first.min(self.limits.max),
        };
        self.entries.insert(
            key,
            Held {
                until: now + hold,
                hold,
            },
        );
    }

    /// Forgets `key` after it resolved.
    pub(crate) fn succeeded(&self, key: &(Name, RecordType)) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key() -> (Name, RecordType) {
        (Name::from_ascii("broken.example.").unwrap(), RecordType::A)
    }

    fn cache(first: u64, max: u64) -> FailureCache {
        FailureCache::new(FailureHold {
            first: Duration::from_secs(first),
            max: Duration::from_secs(max),
            entries: 1000,
        })
    }

    #[test]
    fn a_failure_is_held_for_the_first_hold_then_tried_again() {
        let failures = cache(1, 30);
        let start = Instant::now();
        assert!(!failures.holds(&key(), start));
        failures.failed(key(), start);
        assert!(failures.holds(&key(), start + Duration::from_millis(999)));
        assert!(!failures.holds(&key(), start + Duration::from_secs(1)));
    }

    #[test]
    fn repeated_failures_back_off_up_to_the_ceiling() {
        let failures = cache(1, 5);
        let mut now = Instant::now();
        let mut holds = Vec::new();
        for _ in 0..5 {
            failures.failed(key(), now);
            let mut hold = 0;
            while failures.holds(&key(), now + Duration::from_secs(hold)) {
                hold += 1;
            }
            holds.push(hold);
            now += Duration::from_secs(hold);
        }
        assert_eq!(holds, [1, 2, 4, 5, 5]);
    }

    #[test]
    fn success_and_long_quiet_reset_the_hold() {
        let failures = cache(1, 8);
        let now = Instant::now();
        failures.failed(key(), now);
        failures.failed(key(), now + Duration::from_secs(1));
        failures.succeeded(&key());
        assert!(!failures.holds(&key(), now + Duration::from_secs(1)));
        failures.failed(key(), now + Duration::from_secs(2));
        assert!(!failures.holds(&key(), now + Duration::from_secs(3)));
        // Failing again long after the last hold starts over at the first hold.
        failures.failed(key(), now + Duration::from_secs(3));
        failures.failed(key(), now + Duration::from_secs(100));
        assert!(!failures.holds(&key(), now + Duration::from_secs(101)));
    }

    #[test]
    fn no_more_questions_are_held_than_configured() {
        let failures = cache(30, 30);
        let now = Instant::now();
        for i in 0..10_000 {
            let name = Name::from_ascii(format!("n{i}.example.")).unwrap();
            failures.failed((name, RecordType::A), now);
        }
        assert!(failures.entries.len() <= 1000, "{}", failures.entries.len());
    }

    #[test]
    fn a_zero_first_hold_turns_the_memory_off() {
        let failures = cache(0, 30);
        let now = Instant::now();
        failures.failed(key(), now);
        assert!(!failures.holds(&key(), now));
    }
}
