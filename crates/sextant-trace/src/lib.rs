//! One trace per query across the daemons. The listener picks the queries to trace
//! and starts their root span; the W3C `traceparent` of its backend span travels
//! with the query over gRPC (`Query.traceparent`), and the authority or the resolver
//! continue the trace from it, the resolver down to each upstream exchange. Spans
//! go to an OTLP collector through the OpenTelemetry SDK's batch processor (a
//! thread of its own; the query path only records).
//!
//! Every daemon also keeps the spans it ended last in memory ([`spans_of`]), so
//! `sextantctl trace` shows a query's trace with no collector configured. Without
//! `[trace]`, only the queries `sextantctl trace` marks are traced; nothing here runs
//! for the others.

use std::borrow::Cow;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use sextant_config::TraceConfig;

mod recent;

pub use recent::{SpanRecord, spans_of};

/// The instrumentation scope of every span.
const SCOPE: &str = "sextant";

/// A daemon's tracer: the in-memory ring, and the exporter when `[trace]` names a
/// collector; flushed by [`Tracing::shutdown`].
#[derive(Debug)]
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Installs the process's tracer, the spans named as coming from `service`
    /// (`sextant-listener`...): kept in the ring, and exported over OTLP when
    /// `config` is set. Must run inside the Tokio runtime: the exporter's gRPC
    /// channel lives on it.
    pub fn start(config: Option<&TraceConfig>, service: &'static str) -> anyhow::Result<Tracing> {
        let mut builder = SdkTracerProvider::builder()
            .with_span_processor(recent::Recent { service })
            .with_resource(Resource::builder().with_service_name(service).build());
        if let Some(config) = config {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(config.otlp.clone())
                .build()
                .map_err(|e| anyhow::anyhow!("trace.otlp {}: {e}", config.otlp))?;
            builder = builder.with_batch_exporter(exporter);
        }
        let provider = builder.build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        Ok(Tracing { provider })
    }

    /// Sends what is still buffered (blocking, bounded by the SDK's timeout).
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}

/// Starts a span named `name` under `parent` and returns the context holding it;
/// the span ends when the last clone of that context is dropped.
pub fn span(
    name: &'static str,
    kind: SpanKind,
    parent: &Context,
    attributes: Vec<KeyValue>,
) -> Context {
    let tracer = opentelemetry::global::tracer(SCOPE);
    let span = tracer
        .span_builder(Cow::Borrowed(name))
        .with_kind(kind)
        .with_attributes(attributes)
        .start_with_context(&tracer, parent);
    parent.with_span(span)
}

/// Whether `cx` holds a span of a trace being recorded (so children are worth making).
pub fn is_traced(cx: &Context) -> bool {
    let span = cx.span();
    span.span_context().is_valid() && span.is_recording()
}

/// The trace id of the span in `cx`, when it is part of one.
pub fn trace_id(cx: &Context) -> Option<[u8; 16]> {
    let span = cx.span();
    let context = span.span_context();
    context.is_valid().then(|| context.trace_id().to_bytes())
}

/// The W3C `traceparent` of the span in `cx`: `00-<trace id>-<span id>-<flags>`.
pub fn traceparent(cx: &Context) -> Option<String> {
    let span = cx.span();
    let context = span.span_context();
    context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            context.trace_id(),
            context.span_id(),
            context.trace_flags().to_u8()
        )
    })
}

/// A context whose parent is the remote span `traceparent` names; `None` when it
/// is not a version-00 W3C trace context.
pub fn remote_parent(traceparent: &str) -> Option<Context> {
    let mut parts = traceparent.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || parts.next().is_some() || trace.len() != 32 || span.len() != 16 {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok()?;
    let span = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let context = SpanContext::new(
        trace,
        span,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    context
        .is_valid()
        .then(|| Context::new().with_remote_span_context(context))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn traceparent_round_trips_and_bad_ones_are_refused() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = remote_parent(text).unwrap();
        assert_eq!(traceparent(&cx).as_deref(), Some(text));
        assert!(cx.span().span_context().is_remote());
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(remote_parent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn without_a_provider_spans_are_not_recorded() {
        let cx = span("test", SpanKind::Internal, &Context::new(), Vec::new());
        assert!(!is_traced(&cx));
        assert_eq!(traceparent(&cx), None);
    }
}
