//! What the listener counts, as Prometheus metrics (`sextant_listener_*`). Per-packet
//! events are counted here and never logged.

use std::time::Duration;

use sextant_rpc::Transport;

use crate::frontend::Backend;

pub fn query(transport: Transport) {
    metrics::counter!("sextant_listener_queries_total", "transport" => transport.as_str())
        .increment(1);
}

/// A message not answered: `reason` is `not_a_query`, `blackhole`,
/// `malformed_from_stranger`, `overload` or `tcp_limit`.
pub fn dropped(reason: &'static str) {
    metrics::counter!("sextant_listener_dropped_total", "reason" => reason).increment(1);
}

/// An answer sent; `source` is `listener` (written here), `cache` or `backend`.
pub fn answered(source: &'static str, wire: &[u8]) {
    let rcode = wire
        .get(3)
        .map_or("NONE", |flags| sextant_wire::rcode_name(flags & 0x0f));
    metrics::counter!("sextant_listener_answers_total", "source" => source, "rcode" => rcode)
        .increment(1);
}

pub fn cache(hit: bool) {
    if hit {
        metrics::counter!("sextant_listener_packet_cache_hits_total").increment(1);
    } else {
        metrics::counter!("sextant_listener_packet_cache_misses_total").increment(1);
    }
}

pub fn backend_answered(backend: Backend, elapsed: Duration) {
    metrics::histogram!("sextant_listener_backend_seconds", "backend" => backend.name())
        .record(elapsed.as_secs_f64());
}

pub fn backend_failed(backend: Backend) {
    metrics::counter!("sextant_listener_backend_failures_total", "backend" => backend.name())
        .increment(1);
}

/// Open TCP connections, up or down by one.
pub fn tcp_connections(delta: f64) {
    metrics::gauge!("sextant_listener_tcp_connections").increment(delta);
}
