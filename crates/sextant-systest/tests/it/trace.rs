//! One trace per query across processes: an OTLP collector in the test receives the
//! spans the listener and the resolver export, and one recursive query through the
//! lab hierarchy must be one trace, each span under the right parent.

use std::net::SocketAddr;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use parking_lot::Mutex;
use sextant_systest::free_port;

/// One span as the collector received it.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub service: String,
    pub name: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent: Vec<u8>,
    pub attributes: Vec<(String, String)>,
}

impl Received {
    pub(crate) fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<Received>>>);

fn text(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(Value::BoolValue(b)) => b.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

#[tonic::async_trait]
impl TraceService for Spans {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .as_ref()
                .map(|r| text(&r.attributes))
                .and_then(|a| a.into_iter().find(|(k, _)| k == "service.name"))
                .map(|(_, v)| v)
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    self.0.lock().push(Received {
                        service: service.clone(),
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent: span.parent_span_id,
                        attributes: text(&span.attributes),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC collector on loopback, stopped when dropped.
pub(crate) struct Collector {
    pub address: SocketAddr,
    spans: Spans,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    pub(crate) fn start() -> Self {
        let address = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
        let spans = Spans::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = TraceServiceServer::new(spans.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let _ = tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_shutdown(address, async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        // Listening before the daemons start: they export within seconds.
        sextant_systest::eventually(
            std::time::Duration::from_secs(10),
            "the OTLP collector listens",
            || std::net::TcpStream::connect(address).is_ok(),
        )
        .unwrap();
        Collector {
            address,
            spans,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub(crate) fn spans(&self) -> Vec<Received> {
        self.spans.0.lock().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A listener and an authority serving the example zone, exporting spans to `otlp`
/// as `[trace]` with `rules` (e.g. `sample_rate = 1.0`).
fn traced_suite(
    lab: &sextant_systest::Lab,
    otlp: SocketAddr,
    rules: &str,
) -> sextant_systest::Suite {
    let config = lab
        .suite_config(&[("example.com", crate::EXAMPLE_ZONE)], "")
        .unwrap();
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!("\n[trace]\notlp = \"http://{otlp}\"\n{rules}\n");
    std::fs::write(&config, text).unwrap();
    lab.start_suite(&config).unwrap()
}

/// Stops the suite's listener and authority (each flushes its spans), within `limit`.
fn stop(suite: sextant_systest::Suite, limit: std::time::Duration) {
    let sextant_systest::Suite {
        listener,
        authority,
        ..
    } = suite;
    assert!(listener.terminate(limit).unwrap());
    assert!(authority.unwrap().terminate(limit).unwrap());
}

#[test]
fn an_authoritative_answer_is_a_child_of_the_listener_span_and_tcp_is_traced_too() {
    use hickory_proto::rr::RecordType;
    use sextant_systest::{Lab, query_tcp, query_udp};
    let collector = Collector::start();
    let lab = Lab::new().unwrap();
    // Every query traced, whatever its name or client.
    let suite = traced_suite(&lab, collector.address, "sample_rate = 1.0");
    query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    query_tcp(suite.dns, "www.example.com.", RecordType::AAAA).unwrap();
    stop(suite, std::time::Duration::from_secs(15));
    sextant_systest::eventually(std::time::Duration::from_secs(15), "six spans", || {
        collector.spans().len() >= 6
    })
    .unwrap();

    let spans = collector.spans();
    let roots: Vec<_> = spans.iter().filter(|s| s.name == "dns.query").collect();
    assert_eq!(roots.len(), 2, "{spans:#?}");
    let transports: Vec<_> = roots
        .iter()
        .filter_map(|r| r.attribute("network.transport"))
        .collect();
    assert!(
        transports.contains(&"udp") && transports.contains(&"tcp"),
        "{transports:?}"
    );
    for root in roots {
        let backend = spans
            .iter()
            .find(|s| s.name == "backend" && s.parent == root.span_id)
            .unwrap_or_else(|| panic!("no backend span under {root:?}"));
        let answer = spans
            .iter()
            .find(|s| s.name == "authority.answer" && s.parent == backend.span_id)
            .unwrap_or_else(|| panic!("no authority span under {backend:?}"));
        assert_eq!(answer.service, "sextant-authority");
        assert_eq!(answer.trace_id, root.trace_id);
        assert_eq!(answer.attribute("dns.rcode"), Some("NOERROR"));
    }
}

#[test]
fn a_collector_that_is_not_there_costs_no_answer_and_no_slow_stop() {
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::RecordType;
    use sextant_systest::{Lab, query_udp};
    let lab = Lab::new().unwrap();
    // Nothing listens on this port: every export fails.
    let nobody = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let suite = traced_suite(&lab, nobody, "sample_rate = 1.0");
    for _ in 0..50 {
        let answer = query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    }
    stop(suite, std::time::Duration::from_secs(10));
}
