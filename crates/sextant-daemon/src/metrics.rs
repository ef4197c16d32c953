//! The Prometheus endpoint every daemon can serve (`metrics = "127.0.0.1:9153"` in its
//! section; off by default). Names follow Prometheus conventions: `sextant_<daemon>_`
//! prefix, `_total` counters, `_seconds` histograms.

use std::net::SocketAddr;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Latency buckets, seconds: 50 µs to 2.5 s, dense where DNS answers live.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// Serves /metrics on `address` when one is configured. Call inside the runtime.
pub fn serve_metrics(address: Option<SocketAddr>) -> anyhow::Result<()> {
    let Some(address) = address else {
        return Ok(());
    };
    // The HTTP listener binds in the background; probe first so that a taken port
    // is a clear start-up error rather than a silent missing endpoint.
    std::net::TcpListener::bind(address).with_context(|| {
        format!("cannot serve metrics on {address}: the address is taken or not on this host; change `metrics`")
    })?;
    PrometheusBuilder::new()
        .with_http_listener(address)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .context("configuring the metrics histograms")?
        .install()
        .with_context(|| format!("cannot serve metrics on {address}"))?;
    tracing::info!(%address, "metrics served at /metrics");
    Ok(())
}

/// How often [`publish_every`] samples what it publishes.
pub const GAUGE_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

/// Calls `publish` now and every [`GAUGE_PERIOD`] until `shutdown`: for gauges of
/// state that is cheap to read but changes on every packet (cache bytes and
/// entries), so that the hot path never updates them itself.
pub fn publish_every(
    shutdown: tokio_util::sync::CancellationToken,
    publish: impl Fn() + Send + 'static,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(GAUGE_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => publish(),
                () = shutdown.cancelled() => return,
            }
        }
    });
}
