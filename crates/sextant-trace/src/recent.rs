//! The last spans this process ended, kept in memory so `sextantctl trace` can show
//! a query's trace without a collector: every daemon answers `Control.Spans` from
//! here. Only traced queries make spans, so the ring costs nothing per untraced query.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

/// Spans kept: a few hundred traced queries' worth, ~1 MiB at most.
pub(crate) const CAPACITY: usize = 4096;

/// One ended span, in plain types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanRecord {
    /// The trace it belongs to.
    pub trace_id: [u8; 16],
    /// Its own id.
    pub span_id: [u8; 8],
    /// Its parent's id; all zeros for a root span.
    pub parent_span_id: [u8; 8],
    /// `dns.query`, `backend`, `upstream`...
    pub name: String,
    /// The daemon that made it (`sextant-listener`...).
    pub service: String,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Its attributes, values in text form.
    pub attributes: Vec<(String, String)>,
}

impl SpanRecord {
    /// How long it lasted (zero if the clock stepped back).
    pub fn duration(&self) -> Duration {
        self.end.duration_since(self.start).unwrap_or_default()
    }

    /// Whether it starts a trace.
    pub fn is_root(&self) -> bool {
        self.parent_span_id == [0; 8]
    }
}

static RING: Mutex<VecDeque<SpanRecord>> = Mutex::new(VecDeque::new());

/// Keeps `span`, forgetting the oldest past [`CAPACITY`].
fn keep(span: SpanRecord) {
    let mut ring = RING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if ring.len() >= CAPACITY {
        ring.pop_front();
    }
    ring.push_back(span);
}

/// The kept spans of `trace_id`, in the order they ended.
pub fn spans_of(trace_id: [u8; 16]) -> Vec<SpanRecord> {
    let ring = RING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    ring.iter()
        .filter(|span| span.trace_id == trace_id)
        .cloned()
        .collect()
}

/// The span processor feeding the ring.
#[derive(Debug)]
pub(crate) struct Recent {
    pub(crate) service: &'static str,
}

impl SpanProcessor for Recent {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        keep(SpanRecord {
            trace_id: span.span_context.trace_id().to_bytes(),
            span_id: span.span_context.span_id().to_bytes(),
            parent_span_id: span.parent_span_id.to_bytes(),
            name: span.name.into_owned(),
            service: self.service.to_owned(),
            start: span.start_time,
            end: span.end_time,
            attributes: span
                .attributes
                .into_iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect(),
        });
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(trace: u8, span: u8) -> SpanRecord {
        SpanRecord {
            trace_id: [trace; 16],
            span_id: [span; 8],
            parent_span_id: [0; 8],
            name: "dns.query".into(),
            service: "sextant-listener".into(),
            start: SystemTime::UNIX_EPOCH,
            end: SystemTime::UNIX_EPOCH + Duration::from_micros(1500),
            attributes: Vec::new(),
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_spans_and_finds_them_by_trace() {
        // One trace's spans among many others; then enough to push it out.
        keep(record(200, 1));
        keep(record(201, 2));
        keep(record(200, 3));
        let found = spans_of([200; 16]);
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].span_id, [3; 8]);
        assert_eq!(found[0].duration(), Duration::from_micros(1500));
        assert!(found[0].is_root());
        for n in 0..CAPACITY {
            keep(record(202, (n % 250) as u8));
        }
        assert!(spans_of([200; 16]).is_empty());
        assert_eq!(spans_of([202; 16]).len(), CAPACITY);
    }
}
