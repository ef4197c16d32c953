//! What the listener counts, as Prometheus metrics (`sextant_listener_*`). Per-packet
//! events are counted here and never logged.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::Counter;
use sextant_rpc::Transport;
use sextant_wire::{QTYPE_LABELS, qtype_index};

use crate::backend::Backend;
use crate::tls::Encrypted;

/// The per-packet counters, registered once: a `counter!` with labels looks its
/// series up in the registry on every call, and these run for every packet.
struct Hot {
    queries: [Counter; 2],
    qtypes: Vec<Counter>,
    /// [source][rcode], rcode as the low 4 bits of the header.
    answers: [Vec<Counter>; 3],
    cache_hits: Counter,
    cache_misses: Counter,
}

/// Who wrote an answer: the `source` label, and the answers' row in [`Hot`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Source {
    /// Written by the listener itself (errors, CH TXT, refusals).
    Listener = 0,
    Cache = 1,
    Backend = 2,
}

const SOURCES: [&str; 3] = ["listener", "cache", "backend"];

/// Built at the first packet, after the daemon installed its recorder.
fn hot() -> &'static Hot {
    static HOT: OnceLock<Hot> = OnceLock::new();
    HOT.get_or_init(|| Hot {
        queries: [Transport::Udp, Transport::Tcp].map(
            |t| metrics::counter!("sextant_listener_queries_total", "transport" => t.as_str()),
        ),
        qtypes: QTYPE_LABELS
            .iter()
            .map(|qtype| metrics::counter!("sextant_listener_questions_total", "qtype" => *qtype))
            .collect(),
        answers: SOURCES.map(|source| {
            (0..16u8)
                .map(|rcode| {
                    metrics::counter!(
                        "sextant_listener_answers_total",
                        "source" => source,
                        "rcode" => sextant_wire::Rcode::from_header(rcode).name()
                    )
                })
                .collect()
        }),
        cache_hits: metrics::counter!("sextant_listener_packet_cache_hits_total"),
        cache_misses: metrics::counter!("sextant_listener_packet_cache_misses_total"),
    })
}

pub(crate) fn query(transport: Transport) {
    let index = match transport {
        Transport::Udp => 0,
        Transport::Tcp => 1,
    };
    hot().queries[index].increment(1);
}

/// A query whose question could be read, by QTYPE (bounded label set).
pub(crate) fn question(qtype: u16) {
    if let Some(counter) = hot().qtypes.get(qtype_index(qtype)) {
        counter.increment(1);
    }
}

/// A message not answered: `reason` is `not_a_query`, `blackhole`,
/// `malformed_from_stranger`, `overload` or `tcp_limit`.
pub(crate) fn dropped(reason: &'static str) {
    metrics::counter!("sextant_listener_dropped_total", "reason" => reason).increment(1);
}

/// An answer sent, by who wrote it and its RCODE.
pub(crate) fn answered(source: Source, wire: &[u8]) {
    let rcode = sextant_wire::Rcode::of_message(wire).map_or(0, |rcode| rcode.header_bits());
    if let Some(counter) = hot().answers[source as usize].get(usize::from(rcode)) {
        counter.increment(1);
    }
}

/// A query's DNS cookie: `client` (a client cookie, no valid server cookie), `valid`
/// (a server cookie of ours, still valid) or `malformed`.
pub(crate) fn cookie(state: &'static str) {
    static COOKIES: OnceLock<[Counter; 3]> = OnceLock::new();
    let counters = COOKIES.get_or_init(|| {
        ["client", "valid", "malformed"]
            .map(|state| metrics::counter!("sextant_listener_cookies_total", "state" => state))
    });
    let index = match state {
        "client" => 0,
        "valid" => 1,
        _ => 2,
    };
    counters[index].increment(1);
}

pub(crate) fn cache(hit: bool) {
    if hit {
        hot().cache_hits.increment(1);
    } else {
        hot().cache_misses.increment(1);
    }
}

pub(crate) fn backend_answered(backend: Backend, elapsed: Duration) {
    metrics::histogram!("sextant_listener_backend_seconds", "backend" => backend.name())
        .record(elapsed.as_secs_f64());
}

pub(crate) fn backend_failed(backend: Backend) {
    metrics::counter!("sextant_listener_backend_failures_total", "backend" => backend.name())
        .increment(1);
}

/// A TLS handshake of DoT or DoH: `ok`, `failed` (garbage, a protocol error, a
/// client that gave up) or `timeout`.
pub(crate) fn tls_handshake(transport: Encrypted, result: &'static str) {
    metrics::counter!("sextant_listener_tls_handshakes_total", "transport" => transport.label(), "result" => result)
        .increment(1);
}

/// Open DoT or DoH connections, up or down by one.
pub(crate) fn encrypted_connections(transport: Encrypted, delta: f64) {
    metrics::gauge!("sextant_listener_encrypted_connections", "transport" => transport.label())
        .increment(delta);
}

/// A query received over DoT or DoH (also counted as TCP in
/// `sextant_listener_queries_total`: it is answered as one).
pub(crate) fn encrypted_query(transport: Encrypted) {
    metrics::counter!("sextant_listener_encrypted_queries_total", "transport" => transport.label())
        .increment(1);
}

/// Open TCP connections, up or down by one.
pub(crate) fn tcp_connections(delta: f64) {
    metrics::gauge!("sextant_listener_tcp_connections").increment(delta);
}
