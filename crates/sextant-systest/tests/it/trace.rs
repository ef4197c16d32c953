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

/// `sextantctl trace` against the suite: what it printed on stdout, checked to
/// have succeeded.
pub(crate) fn sextantctl_trace(config: &std::path::Path, dns: SocketAddr, args: &[&str]) -> String {
    let server = dns.to_string();
    let mut all = vec!["trace"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--server", &server]);
    let output = sextant_systest::sextantctl(config, &all).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The span line named `name`, and how deep in the tree it is drawn (the column of
/// its name after the two time columns).
pub(crate) fn span_line<'a>(printed: &'a str, name: &str) -> (&'a str, usize) {
    let line = printed
        .lines()
        .find(|line| line.contains(&format!("{name} [")))
        .unwrap_or_else(|| panic!("no {name} span in:\n{printed}"));
    let tree = &line[23..];
    let depth = tree
        .chars()
        .take_while(|c| !c.is_ascii_alphabetic())
        .count();
    (line, depth)
}

/// A listener (with its control endpoint) and an authority serving the example
/// zone, without `[trace]`; the config's path and the running suite.
fn suite_with_control(lab: &sextant_systest::Lab) -> (std::path::PathBuf, sextant_systest::Suite) {
    let config = lab
        .suite_config(
            &[("example.com", crate::EXAMPLE_ZONE)],
            "control = \"unix:listener.sock\"",
        )
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    (config, suite)
}

#[test]
fn sextantctl_trace_shows_a_query_through_the_authority_without_a_collector() {
    use sextant_systest::Lab;
    let lab = Lab::new().unwrap();
    // No [trace] section: only the marked query is traced, into each daemon's memory.
    let (config, suite) = suite_with_control(&lab);
    // Twice: the second would be a packet-cache hit, but a traced query goes
    // through to the authority every time.
    for _ in 0..2 {
        let printed = sextantctl_trace(&config, suite.dns, &["www.example.com", "A"]);
        assert!(
            printed.starts_with(";; www.example.com. A: NOERROR, 1 answer record(s)"),
            "{printed}"
        );
        let (root, root_depth) = span_line(&printed, "dns.query");
        let (backend, backend_depth) = span_line(&printed, "backend");
        let (answer, answer_depth) = span_line(&printed, "authority.answer");
        assert!(
            root.contains("[sextant-listener]")
                && root.contains("dns.question.name=www.example.com. dns.question.type=A "),
            "{printed}"
        );
        assert!(backend.contains("sextant.backend=authority"), "{printed}");
        assert!(
            answer.contains("[sextant-authority]") && answer.contains("dns.rcode=NOERROR"),
            "{printed}"
        );
        assert!(
            root_depth < backend_depth && backend_depth < answer_depth,
            "{printed}"
        );
        assert_eq!(printed.matches("dns.query [").count(), 1, "{printed}");
    }
    assert_eq!(
        suite.listener.ready()["control"]
            .as_str()
            .map(|c| c.ends_with("listener.sock")),
        Some(true)
    );
}

#[test]
fn sextantctl_trace_explains_an_answer_the_listener_gave_by_itself() {
    use sextant_systest::Lab;
    let lab = Lab::new().unwrap();
    let (config, suite) = suite_with_control(&lab);
    // No resolver: the listener refuses a name outside its zones on its own.
    let server = suite.dns.to_string();
    let output = sextant_systest::sextantctl(
        &config,
        &["trace", "www.example.org", "A", "--server", &server],
    )
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("answered by itself"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("REFUSED"),
        "{:?}",
        output
    );
}

#[test]
fn sighup_changes_which_queries_are_traced_without_a_restart() {
    use hickory_proto::rr::RecordType;
    use sextant_systest::{Lab, query_udp};
    let collector = Collector::start();
    let lab = Lab::new().unwrap();
    // At first no rule picks any query.
    let suite = traced_suite(&lab, collector.address, "sample_rate = 0.0");
    query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    let config = lab.path().join("sextant.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "sample_rate = 0.0",
        "sample_rate = 0.0\nalways_names = [\"mail.example.com\"]",
    );
    std::fs::write(&config, text).unwrap();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &suite.listener.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    sextant_systest::eventually(std::time::Duration::from_secs(5), "the reload", || {
        suite.listener.log_text().contains("trace rules reloaded")
    })
    .unwrap();
    query_udp(suite.dns, "mail.example.com.", RecordType::A).unwrap();
    query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    stop(suite, std::time::Duration::from_secs(15));
    sextant_systest::eventually(std::time::Duration::from_secs(15), "the root span", || {
        collector.spans().iter().any(|s| s.name == "dns.query")
    })
    .unwrap();
    // Only the query the new rule picks; not www, before or after.
    let names: Vec<_> = collector
        .spans()
        .iter()
        .filter(|s| s.name == "dns.query")
        .filter_map(|s| s.attribute("dns.question.name").map(str::to_owned))
        .collect();
    assert_eq!(names, ["mail.example.com."]);
}
