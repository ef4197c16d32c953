//! The Prometheus endpoint every daemon can serve (`metrics = "127.0.0.1:9153"` in its
//! section; off by default). Names follow Prometheus conventions: `sextant_<daemon>_`
//! prefix, `_total` counters, `_seconds` histograms.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Latency buckets, seconds: 50 µs to 2.5 s, dense where DNS answers live.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// The Prometheus recorder, installed before the daemon starts so that nothing it
/// counts is missed, and the HTTP socket for /metrics once it could be bound.
#[derive(Debug)]
pub struct MetricsEndpoint {
    address: SocketAddr,
    handle: PrometheusHandle,
    /// `None` while another process holds the address.
    socket: Option<std::net::TcpListener>,
}

/// Installs the recorder and binds /metrics when `address` is configured. A taken
/// address is not an error yet: a successor shares it with the daemon it replaces
/// (see [`MetricsEndpoint::serve`]). Call inside the runtime.
pub fn install_metrics(address: Option<SocketAddr>) -> anyhow::Result<Option<MetricsEndpoint>> {
    let Some(address) = address else {
        return Ok(None);
    };
    let socket = match std::net::TcpListener::bind(address) {
        Ok(socket) => Some(socket),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => None,
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "cannot serve metrics on {address}: the address is not on this host; change `metrics`"
            )));
        }
    };
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .context("configuring the metrics histograms")?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).context("installing the metrics recorder")?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP).await;
            upkeep.run_upkeep();
        }
    });
    Ok(Some(MetricsEndpoint {
        address,
        handle,
        socket,
    }))
}

/// How often the recorder's histograms are drained (the exporter's own default).
const UPKEEP: Duration = Duration::from_secs(5);
/// How often a successor tries the address its predecessor still holds.
const RETRY: Duration = Duration::from_millis(100);
/// A scrape has this long; a client that stalls loses its connection.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(30);

impl MetricsEndpoint {
    /// Serves /metrics until `shutdown`. An address another process holds is an
    /// error, unless `predecessor` (a daemon taking over from a running one): then it
    /// is taken as soon as the predecessor lets go.
    pub fn serve(self, predecessor: bool, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            address,
            handle,
            socket,
        } = self;
        let socket = match socket {
            Some(socket) => Some(socket),
            None if predecessor => None,
            None => anyhow::bail!(
                "cannot serve metrics on {address}: another program uses the address; change `metrics`"
            ),
        };
        tokio::spawn(async move {
            let socket = match socket {
                Some(socket) => socket,
                None => loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(RETRY) => {}
                    }
                    match std::net::TcpListener::bind(address) {
                        Ok(socket) => break socket,
                        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
                        Err(error) => {
                            tracing::error!(%error, %address, "cannot serve metrics");
                            return;
                        }
                    }
                },
            };
            let listener = match socket
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(socket))
            {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::error!(%error, %address, "cannot serve metrics");
                    return;
                }
            };
            tracing::info!(%address, "metrics served at /metrics");
            serve_scrapes(listener, handle, shutdown).await;
        });
        Ok(())
    }
}

async fn serve_scrapes(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(%error, "metrics accept failed");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            },
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = scrape(&handle, &request);
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(SCRAPE_TIMEOUT, connection).await;
        });
    }
}

fn scrape(handle: &PrometheusHandle, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, handle.render()),
        (&Method::GET, _) => (StatusCode::NOT_FOUND, "not found; try /metrics\n".into()),
        _ => (StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
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
