//! Response rate limiting (as BIND and Knot do it) for UDP answers: a flood of
//! queries with a forged source must not turn us into an amplifier aimed at that
//! source. Identical responses (same client network, name, type and kind of answer)
//! beyond a rate per second are dropped, except every `slip`-th, which is sent as a
//! tiny truncated answer so that a real client retries over TCP, where no limit
//! applies (TCP cannot be forged).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Instant;

use parking_lot::Mutex;
use sextant_wire::{Header, QueryView, Rcode};

/// A question as rate limiting sees it: its lower-cased name and type, hashed once
/// when the query is read, so that the answer (perhaps a backend's, much later) is
/// accounted without reading it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct QuestionKey(u64);

impl QuestionKey {
    /// The key of the question of `view`.
    pub(crate) fn of(view: &QueryView) -> Self {
        // Seeded per process: clients must not be able to make their questions share
        // a bucket with someone else's.
        static SEED: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
        let mut hasher = SEED.get_or_init(Default::default).build_hasher();
        view.question.name_wire().hash(&mut hasher);
        view.question.qtype.hash(&mut hasher);
        QuestionKey(hasher.finish())
    }
}

/// The kind of an answer: a flood of one kind must not starve the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AnswerKind {
    /// NOERROR with records in the answer section.
    Answer,
    /// NOERROR without: NODATA or a referral.
    Empty,
    /// NXDOMAIN.
    NxDomain,
    /// Any other RCODE.
    Error,
}

impl AnswerKind {
    /// The kind of the response whose header is `header`.
    pub(crate) fn of(header: &Header) -> Self {
        match (Rcode::from_header(header.flags as u8), header.ancount) {
            (Rcode::NOERROR, 0) => AnswerKind::Empty,
            (Rcode::NOERROR, _) => AnswerKind::Answer,
            (Rcode::NXDOMAIN, _) => AnswerKind::NxDomain,
            _ => AnswerKind::Error,
        }
    }
}

/// What to do with one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the rate: send it.
    Send,
    /// Send a truncated (TC=1) empty answer instead.
    Slip,
    /// Send nothing.
    Drop,
}

/// Rate limiting as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RrlSettings {
    /// Identical responses allowed per second per client network; 0 = off.
    pub responses_per_second: u32,
    /// Every `slip`-th limited response is sent truncated; 0 = never, 1 = always.
    pub slip: u32,
    /// IPv4 clients in one network of this prefix length share a budget.
    pub ipv4_prefix: u8,
    /// IPv6 clients in one network of this prefix length share a budget.
    pub ipv6_prefix: u8,
    /// Buckets kept at most, all shards together.
    pub table_size: usize,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    limited: u32,
}

const SHARDS: usize = 16;

#[derive(Debug)]
pub(crate) struct Rrl {
    settings: RrlSettings,
    shards: Vec<Mutex<HashMap<u64, Bucket>>>,
    /// Buckets per shard; past it, full (idle) buckets are forgotten first.
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl Rrl {
    /// `None` when the settings turn it off.
    pub(crate) fn new(settings: RrlSettings) -> Option<Self> {
        (settings.responses_per_second > 0).then(|| Self {
            settings,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: settings.table_size.div_ceil(SHARDS).max(1),
            hasher: std::collections::hash_map::RandomState::new(),
        })
    }

    /// Accounts one response of `kind` to `client`'s `question`.
    pub(crate) fn check(&self, client: IpAddr, question: QuestionKey, kind: AnswerKind) -> Verdict {
        let mut hasher = self.hasher.build_hasher();
        network(client, &self.settings).hash(&mut hasher);
        question.hash(&mut hasher);
        kind.hash(&mut hasher);
        let key = hasher.finish();
        let rate = f64::from(self.settings.responses_per_second);
        let now = Instant::now();
        let mut shard = self.shards[(key as usize) % SHARDS].lock();
        if shard.len() >= self.per_shard {
            shard.retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < rate);
            if shard.len() >= self.per_shard {
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
pub(crate) fn slip_response(response: &[u8]) -> Option<Vec<u8>> {
    let question_end = sextant_wire::question_end(response)?;
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
            table_size: 65_536,
        }
    }

    #[test]
    fn off_when_the_rate_is_zero() {
        assert!(Rrl::new(settings(0, 2)).is_none());
    }

    /// The key of a question for `name` (presentation form) and type A.
    fn question(name: &str) -> QuestionKey {
        let mut packet = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        packet.extend_from_slice(&sextant_wire::wire_name_from_text(name).unwrap());
        packet.extend_from_slice(&[0, 1, 0, 1]);
        QuestionKey::of(&sextant_wire::parse_query(&packet).unwrap())
    }

    #[test]
    fn the_question_key_ignores_case() {
        assert_eq!(question("WWW.example."), question("www.EXAMPLE."));
        assert_ne!(question("www.example."), question("mail.example."));
    }

    #[test]
    fn a_burst_is_cut_to_the_rate_with_every_second_limited_response_slipped() {
        let rrl = Rrl::new(settings(5, 2)).unwrap();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let www = question("www.");
        let verdicts: Vec<Verdict> = (0..25)
            .map(|_| rrl.check(client, www, AnswerKind::Answer))
            .collect();
        let sent = verdicts.iter().filter(|v| **v == Verdict::Send).count();
        let slipped = verdicts.iter().filter(|v| **v == Verdict::Slip).count();
        assert!((5..=6).contains(&sent), "{verdicts:?}");
        assert!((9..=11).contains(&slipped), "{verdicts:?}");
        // The same network shares the budget; another name has its own.
        let neighbour: IpAddr = "192.0.2.200".parse().unwrap();
        assert_ne!(rrl.check(neighbour, www, AnswerKind::Answer), Verdict::Send);
        assert_eq!(
            rrl.check(neighbour, question("mail."), AnswerKind::Answer),
            Verdict::Send
        );
        assert_eq!(
            rrl.check(neighbour, www, AnswerKind::NxDomain),
            Verdict::Send
        );
        let elsewhere: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(rrl.check(elsewhere, www, AnswerKind::Answer), Verdict::Send);
    }

    #[test]
    fn the_table_never_holds_more_buckets_than_configured() {
        let rrl = Rrl::new(RrlSettings {
            table_size: 1_000,
            ..settings(5, 2)
        })
        .unwrap();
        let www = question("www.");
        for i in 0..50_000u32 {
            let client = IpAddr::from((i << 8).to_be_bytes());
            rrl.check(client, www, AnswerKind::Answer);
        }
        let held: usize = rrl.shards.iter().map(|s| s.lock().len()).sum();
        assert!(held <= 1_000 + SHARDS, "{held}");
    }

    #[test]
    fn the_slip_answer_is_the_truncated_question() {
        let mut response = vec![0, 9, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 1];
        response.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01");
        let question_end = response.len();
        response.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        let slip = slip_response(&response).unwrap();
        assert_eq!(slip.len(), question_end);
        assert_eq!(slip[2] & 0x02, 0x02);
        assert_eq!(&slip[6..12], &[0; 6]);
    }
}
