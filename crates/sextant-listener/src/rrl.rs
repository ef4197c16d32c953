//! Response rate limiting (as BIND and Knot do it) for UDP answers: a flood of
//! queries with a forged source must not turn us into an amplifier aimed at that
//! source. Identical responses (same client network, name, type and kind of answer)
//! beyond a rate per second are dropped, except every `slip`-th, which is sent as a
//! tiny truncated answer so that a real client retries over TCP, where no limit
//! applies (TCP cannot be forged).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::time::Instant;

use parking_lot::Mutex;

/// What to do with one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Send a truncated (TC=1) empty answer instead.
    Slip,
    Drop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RrlSettings {
    /// Identical responses allowed per second per client network; 0 = off.
    pub responses_per_second: u32,
    /// Every `slip`-th limited response is sent truncated; 0 = never, 1 = always.
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    limited: u32,
}

const SHARDS: usize = 16;
/// Buckets per shard; past it, full (idle) buckets are forgotten first.
const MAX_PER_SHARD: usize = 16_384;

#[derive(Debug)]
pub struct Rrl {
    settings: RrlSettings,
    shards: Vec<Mutex<HashMap<u64, Bucket>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Rrl {
    /// `None` when the settings turn it off.
    pub fn new(settings: RrlSettings) -> Option<Self> {
        (settings.responses_per_second > 0).then(|| Self {
            settings,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        })
    }

    pub fn settings(&self) -> RrlSettings {
        self.settings
    }

    /// Accounts one response to `client`: `name` is the lower-cased wire question
    /// name, `kind` distinguishes answers, NXDOMAIN and errors (so that a flood of
    /// one kind does not starve the others).
    pub fn check(&self, client: IpAddr, name: &[u8], qtype: u16, kind: u8) -> Verdict {
        let mut hasher = self.hasher.build_hasher();
        network(client, &self.settings).hash(&mut hasher);
        name.hash(&mut hasher);
        qtype.hash(&mut hasher);
        kind.hash(&mut hasher);
        let key = hasher.finish();
        let rate = f64::from(self.settings.responses_per_second);
        let now = Instant::now();
        let mut shard = self.shards[(key as usize) % SHARDS].lock();
        if shard.len() >= MAX_PER_SHARD {
            shard.retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < rate);
            if shard.len() >= MAX_PER_SHARD {
                shard.clear();
            }
        }
        let bucket = shard.entry(key).or_insert(Bucket {
            tokens: rate,
            last: now,
            limited: 0,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.last).as_secs_f64() * rate).min(rate);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Send;
        }
        bucket.limited = bucket.limited.wrapping_add(1);
        let slip = self.settings.slip;
        if slip > 0 && bucket.limited.is_multiple_of(slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

/// The client's network: responses to a whole /24 (IPv4) or /56 (IPv6) share a
/// budget, so spreading forged sources over a subnet does not multiply it.
fn network(client: IpAddr, settings: &RrlSettings) -> IpAddr {
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
        v4 => v4,
    };
    match client {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let prefix = u32::from(settings.ipv4_prefix.min(32));
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let prefix = u32::from(settings.ipv6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            IpAddr::V6((bits & mask).into())
        }
    }
}

/// The smallest honest answer to a limited query: the header (TC=1, QR=1, no
/// records) and the question, so the client retries over TCP.
pub fn slip_response(response: &[u8], question_end: usize) -> Option<Vec<u8>> {
    let mut out = response.get(..question_end)?.to_vec();
    out[2] |= 0x02; // TC
    for count in &mut out[6..12] {
        *count = 0; // no answer, authority or additional records
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings(rate: u32, slip: u32) -> RrlSettings {
        RrlSettings {
            responses_per_second: rate,
            slip,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
        }
    }

    #[test]
    fn off_when_the_rate_is_zero() {
        assert!(Rrl::new(settings(0, 2)).is_none());
    }

    #[test]
    fn a_burst_is_cut_to_the_rate_with_every_second_limited_response_slipped() {
        let rrl = Rrl::new(settings(5, 2)).unwrap();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..25)
            .map(|_| rrl.check(client, b"\x03www\x00", 1, 0))
            .collect();
        let sent = verdicts.iter().filter(|v| **v == Verdict::Send).count();
        let slipped = verdicts.iter().filter(|v| **v == Verdict::Slip).count();
        assert!((5..=6).contains(&sent), "{verdicts:?}");
        assert!((9..=11).contains(&slipped), "{verdicts:?}");
        // The same network shares the budget; another name has its own.
        let neighbour: IpAddr = "192.0.2.200".parse().unwrap();
        assert_ne!(rrl.check(neighbour, b"\x03www\x00", 1, 0), Verdict::Send);
        assert_eq!(rrl.check(neighbour, b"\x04mail\x00", 1, 0), Verdict::Send);
        let elsewhere: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(rrl.check(elsewhere, b"\x03www\x00", 1, 0), Verdict::Send);
    }

    #[test]
    fn the_slip_answer_is_the_truncated_question() {
        let mut response = vec![0, 9, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 1];
        response.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01");
        let question_end = response.len();
        response.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        let slip = slip_response(&response, question_end).unwrap();
        assert_eq!(slip.len(), question_end);
        assert_eq!(slip[2] & 0x02, 0x02);
        assert_eq!(&slip[6..12], &[0; 6]);
    }
}
