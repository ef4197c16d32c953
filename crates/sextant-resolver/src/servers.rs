//! What we know about each upstream server: smoothed RTT, timeouts in a row (with
//! backoff) and whether it chokes on EDNS. Selection prefers the fastest server but
//! keeps exploring, so a server that recovers, or a new one, gets tried again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::Rng;

#[derive(Clone, Copy, Debug)]
struct Stat {
    /// Smoothed round-trip time, milliseconds.
    srtt_ms: f64,
    /// Timeouts since the last answer.
    timeouts: u32,
    /// Until then the server is tried only after the others.
    held_back_until: Option<Instant>,
    /// The server answered FORMERR/NOTIMP to a query with EDNS.
    no_edns: bool,
}

/// Servers remembered unless the configuration says otherwise.
pub(crate) const DEFAULT_CAPACITY: usize = 10_000;
/// One query in this many goes to a random server instead of the fastest.
const EXPLORE_ONE_IN: u32 = 20;
/// Timeout for a server never measured.
const FIRST_TIMEOUT: Duration = Duration::from_millis(400);
/// Longest a server that timed out is held back.
const MAX_HOLD_BACK: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Servers {
    stats: Mutex<HashMap<IpAddr, Stat>>,
    /// Servers remembered at most (`resolver.server_entries`): a zone can delegate
    /// to any addresses it likes, so whoever controls zones controls this table.
    capacity: usize,
}

impl Default for Servers {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl Servers {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            stats: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    /// Orders `candidates` best first: measured-fast servers, then unmeasured ones
    /// (in random order), then servers held back after timeouts.
    pub fn order<T>(&self, candidates: &mut [(IpAddr, T)]) {
        let now = Instant::now();
        let mut rng = rand::rng();
        let scores: HashMap<IpAddr, f64> = {
            let stats = self.stats.lock();
            candidates
                .iter()
                .map(|(ip, _)| {
                    let score = match stats.get(ip) {
                        None => rng.random_range(0.0..20.0),
                        Some(stat) => {
                            let held = stat.held_back_until.is_some_and(|until| until > now);
                            stat.srtt_ms + if held { 100_000.0 } else { 0.0 }
                        }
                    };
                    (*ip, score)
                })
                .collect()
        };
        candidates.sort_by(|a, b| scores[&a.0].total_cmp(&scores[&b.0]));
        if candidates.len() > 1 && rng.random_ratio(1, EXPLORE_ONE_IN) {
            let pick = rng.random_range(0..candidates.len());
            candidates.swap(0, pick);
        }
    }

    /// How long to wait for `ip`: a few RTTs, doubled per recent timeout, capped.
    pub fn timeout(&self, ip: IpAddr, cap: Duration) -> Duration {
        let stats = self.stats.lock();
        let base = match stats.get(&ip) {
            None => FIRST_TIMEOUT,
            Some(stat) => {
                let rtt = Duration::from_secs_f64(stat.srtt_ms.max(1.0) / 1000.0);
                (rtt * 4 + Duration::from_millis(50)) * 2u32.saturating_pow(stat.timeouts.min(4))
            }
        };
        base.min(cap)
    }

    pub fn answered(&self, ip: IpAddr, rtt: Duration) {
        let mut stats = self.stats.lock();
        self.bound(&mut stats);
        let ms = rtt.as_secs_f64() * 1000.0;
        let stat = stats.entry(ip).or_insert(Stat {
            srtt_ms: ms,
            timeouts: 0,
            held_back_until: None,
            no_edns: false,
        });
        stat.srtt_ms = 0.7 * stat.srtt_ms + 0.3 * ms;
        stat.timeouts = 0;
        stat.held_back_until = None;
    }

    pub fn timed_out(&self, ip: IpAddr, waited: Duration) {
        let mut stats = self.stats.lock();
        self.bound(&mut stats);
        let stat = stats.entry(ip).or_insert(Stat {
            srtt_ms: waited.as_secs_f64() * 1000.0,
            timeouts: 0,
            held_back_until: None,
            no_edns: false,
        });
        stat.timeouts = stat.timeouts.saturating_add(1);
        stat.srtt_ms = stat.srtt_ms.max(waited.as_secs_f64() * 1000.0);
        let hold = Duration::from_secs(1) * 2u32.saturating_pow(stat.timeouts.min(6));
        stat.held_back_until = Some(Instant::now() + hold.min(MAX_HOLD_BACK));
    }

    pub fn no_edns(&self, ip: IpAddr) -> bool {
        self.stats.lock().get(&ip).is_some_and(|s| s.no_edns)
    }

    pub fn set_no_edns(&self, ip: IpAddr) {
        let mut stats = self.stats.lock();
        self.bound(&mut stats);
        stats
            .entry(ip)
            .or_insert(Stat {
                srtt_ms: 100.0,
                timeouts: 0,
                held_back_until: None,
                no_edns: false,
            })
            .no_edns = true;
    }

    /// Makes room for one more server: first the servers that are neither held
    /// back nor known to lack EDNS (what is forgotten is only a measurement, so a
    /// forgotten server is simply measured again), then, if that is not enough,
    /// everything.
    fn bound(&self, stats: &mut HashMap<IpAddr, Stat>) {
        if stats.len() < self.capacity {
            return;
        }
        let now = Instant::now();
        stats.retain(|_, s| s.no_edns || s.held_back_until.is_some_and(|until| until > now));
        if stats.len() >= self.capacity / 2 {
            stats.clear();
        }
    }

    /// Servers remembered now.
    pub fn len(&self) -> usize {
        self.stats.lock().len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn the_fastest_server_usually_comes_first_and_timeouts_hold_back() {
        let servers = Servers::default();
        servers.answered(ip(1), Duration::from_millis(50));
        servers.answered(ip(2), Duration::from_millis(5));
        servers.answered(ip(3), Duration::from_millis(1));
        servers.timed_out(ip(3), Duration::from_millis(400));
        let mut firsts = HashMap::new();
        for _ in 0..1000 {
            let mut candidates = vec![(ip(1), ()), (ip(2), ()), (ip(3), ())];
            servers.order(&mut candidates);
            *firsts.entry(candidates[0].0).or_insert(0) += 1;
        }
        assert!(firsts[&ip(2)] > 850, "{firsts:?}");
        // Exploration still tries the others now and then.
        assert!(firsts.get(&ip(1)).copied().unwrap_or(0) > 0, "{firsts:?}");
    }

    #[test]
    fn the_table_never_holds_more_than_its_capacity() {
        let servers = Servers::with_capacity(100);
        for i in 0..10_000u32 {
            servers.answered(IpAddr::from(i.to_be_bytes()), Duration::from_millis(5));
            assert!(servers.len() <= 100);
        }
        // A server known to choke on EDNS survives a purge of plain measurements.
        let servers = Servers::with_capacity(100);
        servers.set_no_edns(ip(1));
        for i in 0..150u32 {
            servers.answered(
                IpAddr::from((1000 + i).to_be_bytes()),
                Duration::from_millis(5),
            );
        }
        assert!(servers.no_edns(ip(1)));
    }

    #[test]
    fn timeouts_grow_after_failures_and_stay_capped() {
        let servers = Servers::default();
        let cap = Duration::from_millis(800);
        assert_eq!(servers.timeout(ip(1), cap), FIRST_TIMEOUT);
        servers.answered(ip(1), Duration::from_millis(10));
        let fast = servers.timeout(ip(1), cap);
        assert!(fast < Duration::from_millis(200), "{fast:?}");
        for _ in 0..5 {
            servers.timed_out(ip(1), fast);
        }
        assert_eq!(servers.timeout(ip(1), cap), cap);
    }
}
