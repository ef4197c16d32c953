//! `sextantctl trace NAME TYPE`: one query through the listener, marked to be traced
//! (the trace option, honoured from this host), then the spans it left in each
//! daemon's memory, printed as a tree with each hop's start and duration.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use sextant_config::Config;
use sextant_rpc::{ControlClient, SpanRecord};

use crate::Outcome;

use sextant_wire::OPTION_TRACE;

/// How long the spans may take to reach the daemons' memory: the listener's root
/// span ends just after the answer is sent.
const SPANS_WAIT: Duration = Duration::from_secs(3);

/// What to ask and where.
pub(crate) struct Ask<'a> {
    pub name: &'a str,
    pub qtype: &'a str,
    /// The listener's DNS address; default: the first of `listener.listen`.
    pub server: Option<SocketAddr>,
    /// RD=0: only the authority's zones answer.
    pub norecurse: bool,
}

pub(crate) async fn trace(config: &Path, ask: Ask<'_>) -> Outcome {
    let config = match sextant_config::load(config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return Outcome::BadInput;
        }
    };
    let (name, qtype) = match question(ask.name, ask.qtype) {
        Ok(question) => question,
        Err(message) => {
            eprintln!("{message}");
            return Outcome::BadInput;
        }
    };
    let listen = config.listener.as_ref().and_then(|l| l.listen.first());
    let Some(server) = ask.server.or(listen.copied().filter(|a| a.port() != 0)) else {
        eprintln!(
            "no listener address to ask: the configuration has no [listener] listen address with a fixed port; give --server ADDRESS:PORT"
        );
        return Outcome::BadInput;
    };
    let sent = Instant::now();
    let answer = match exchange(server, &name, qtype, !ask.norecurse).await {
        Ok(answer) => answer,
        Err(message) => {
            eprintln!("{message}");
            return Outcome::Unreachable;
        }
    };
    let elapsed = sent.elapsed();
    let rcode = answer.metadata.response_code;
    let rcode = sextant_wire::Rcode::new(u16::from(rcode)).name();
    let summary = format!(
        "{name} {qtype}: {rcode}, {} answer record(s), {:.3} ms at the client{}",
        answer.answers.len(),
        millis(elapsed),
        if answer.metadata.truncation {
            " (truncated)"
        } else {
            ""
        }
    );
    let Some(trace_id) = trace_id(&answer) else {
        say!(";; {summary}");
        eprintln!(
            "the answer carries no trace id: the listener answered by itself (no backend was asked), or it does not honour the trace mark from this address (only from its own host and trace.always_clients)"
        );
        return Outcome::Unreachable;
    };
    let (spans, problems) = collect(&config, trace_id).await;
    say!(";; {summary}");
    say!(";; trace {}", hex(&trace_id));
    for line in render(&spans) {
        say!("{line}");
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    if spans.is_empty() {
        eprintln!(
            "no daemon kept a span of this trace; set listener.control so the listener's spans can be read"
        );
        return Outcome::Unreachable;
    }
    Outcome::Ok
}

fn question(name: &str, qtype: &str) -> Result<(Name, RecordType), String> {
    let name = Name::from_ascii(name)
        .map(|mut name| {
            name.set_fqdn(true);
            name
        })
        .map_err(|e| format!("{name:?} is not a domain name ({e})"))?;
    let qtype = RecordType::from_str(&qtype.to_ascii_uppercase())
        .map_err(|_| format!("{qtype:?} is not a record type; write it as A, AAAA, MX..."))?;
    Ok((name, qtype))
}

/// Sends the marked query over UDP and waits for its answer (5 s at most).
async fn exchange(
    server: SocketAddr,
    name: &Name,
    qtype: RecordType,
    recurse: bool,
) -> Result<Message, String> {
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(name.clone(), qtype));
    query.metadata.recursion_desired = recurse;
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.options_mut()
        .insert(EdnsOption::Unknown(OPTION_TRACE, Vec::new()));
    query.set_edns(edns);
    let wire = query
        .to_vec()
        .map_err(|e| format!("cannot write the query: {e}"))?;
    let local: SocketAddr = if server.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let exchange = async {
        let socket = tokio::net::UdpSocket::bind(local).await?;
        socket.connect(server).await?;
        socket.send(&wire).await?;
        let mut buffer = vec![0u8; 65_535];
        loop {
            let len = socket.recv(&mut buffer).await?;
            if let Ok(answer) = Message::from_vec(&buffer[..len])
                && answer.metadata.id == id
                && answer.metadata.message_type == MessageType::Response
            {
                return Ok::<_, std::io::Error>(answer);
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(error)) => Err(format!(
            "asking {server}: {error}; is sextant-listener running?"
        )),
        Err(_) => Err(format!(
            "no answer from {server} in 5 s; is sextant-listener running?"
        )),
    }
}

fn trace_id(answer: &Message) -> Option<[u8; 16]> {
    match answer
        .edns
        .as_ref()?
        .option(EdnsCode::Unknown(OPTION_TRACE))?
    {
        EdnsOption::Unknown(_, data) => data.as_slice().try_into().ok(),
        _ => None,
    }
}

/// Every daemon's spans of the trace, and why some daemon could not be asked.
async fn collect(config: &Config, trace_id: [u8; 16]) -> (Vec<SpanRecord>, Vec<String>) {
    let daemons = crate::status::daemons(config);
    let listener = config.listener.as_ref().and_then(|l| l.control.clone());
    let mut clients = Vec::new();
    let mut problems = Vec::new();
    for (daemon, endpoint) in daemons {
        match ControlClient::connect(&endpoint).await {
            Ok(client) => clients.push((daemon, endpoint, client)),
            Err(error) => problems.push(format!("{daemon}: {error}")),
        }
    }
    let deadline = Instant::now() + SPANS_WAIT;
    loop {
        let mut spans = Vec::new();
        let mut failed = Vec::new();
        for (daemon, endpoint, client) in &mut clients {
            match client.spans(trace_id).await {
                Ok(mut kept) => spans.append(&mut kept),
                Err(error) => failed.push(format!("{daemon} ({endpoint}): {error}")),
            }
        }
        // The root (the listener's, when it can be asked) ends last: once it is
        // there, every hop is.
        let complete = if listener.is_some() {
            spans.iter().any(SpanRecord::is_root)
        } else {
            !spans.is_empty()
        };
        if complete || Instant::now() >= deadline {
            problems.extend(failed);
            if listener.is_none() {
                problems.push(
                    "listener.control is not set: the listener's own spans (dns.query, backend) are not shown".into(),
                );
            }
            return (spans, problems);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The spans as a tree, children in the order they started: each line gives the
/// start after the first span, the duration, the span and its attributes.
fn render(spans: &[SpanRecord]) -> Vec<String> {
    let Some(first) = spans.iter().map(|s| s.start).min() else {
        return Vec::new();
    };
    let ids: HashMap<[u8; 8], usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    let mut children: HashMap<Option<[u8; 8]>, Vec<usize>> = HashMap::new();
    for (i, span) in spans.iter().enumerate() {
        // A span whose parent is not here (a daemon not asked) is shown as a root.
        let parent = Some(span.parent_span_id).filter(|p| ids.contains_key(p));
        children.entry(parent).or_default().push(i);
    }
    for list in children.values_mut() {
        list.sort_by_key(|&i| spans[i].start);
    }
    let tree = Tree {
        spans,
        children,
        first,
    };
    let mut lines = vec![format!("{:>10} {:>10}  SPAN", "START ms", "TOOK ms")];
    for &root in tree.children.get(&None).into_iter().flatten() {
        tree.lines(root, "", Branch::Root, &mut lines);
    }
    lines
}

/// How a span hangs from its parent.
#[derive(Clone, Copy, PartialEq)]
enum Branch {
    Root,
    Middle,
    Last,
}

struct Tree<'a> {
    spans: &'a [SpanRecord],
    children: HashMap<Option<[u8; 8]>, Vec<usize>>,
    first: std::time::SystemTime,
}

impl Tree<'_> {
    /// Span `i`'s line, drawn after `prefix`, then its children's.
    fn lines(&self, i: usize, prefix: &str, branch: Branch, lines: &mut Vec<String>) {
        let span = &self.spans[i];
        let start = span.start.duration_since(self.first).unwrap_or_default();
        let attributes: Vec<String> = span
            .attributes
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        let glyph = match branch {
            Branch::Root => "",
            Branch::Middle => "├─ ",
            Branch::Last => "└─ ",
        };
        lines.push(format!(
            "{:>10.3} {:>10.3}  {prefix}{glyph}{} [{}] {}",
            millis(start),
            millis(span.duration()),
            span.name,
            span.service,
            attributes.join(" ")
        ));
        let prefix = match branch {
            Branch::Root => prefix.to_string(),
            Branch::Middle => format!("{prefix}│  "),
            Branch::Last => format!("{prefix}   "),
        };
        let below = self.children.get(&Some(span.span_id));
        let below = below.map(Vec::as_slice).unwrap_or_default();
        for (n, &child) in below.iter().enumerate() {
            let branch = if n + 1 == below.len() {
                Branch::Last
            } else {
                Branch::Middle
            };
            self.lines(child, &prefix, branch, lines);
        }
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn span(id: u8, parent: u8, name: &str, start_us: u64, took_us: u64) -> SpanRecord {
        let start =
            UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_micros(start_us);
        SpanRecord {
            trace_id: [7; 16],
            span_id: [id; 8],
            parent_span_id: [parent; 8],
            name: name.into(),
            service: if id < 3 {
                "sextant-listener"
            } else {
                "sextant-resolver"
            }
            .into(),
            start,
            end: start + Duration::from_micros(took_us),
            attributes: vec![("zone".into(), format!("z{id}"))],
        }
    }

    #[test]
    fn spans_are_drawn_as_a_tree_in_start_order_with_offsets_and_durations() {
        // Given out of order, as the daemons return them.
        let spans = [
            span(5, 3, "upstream", 900, 300),
            span(4, 3, "upstream", 300, 500),
            span(3, 2, "resolver.resolve", 200, 1200),
            span(1, 0, "dns.query", 0, 1500),
            span(2, 1, "backend", 100, 1350),
        ];
        let lines = render(&spans);
        assert_eq!(
            lines,
            [
                "  START ms    TOOK ms  SPAN",
                "     0.000      1.500  dns.query [sextant-listener] zone=z1",
                "     0.100      1.350  └─ backend [sextant-listener] zone=z2",
                "     0.200      1.200     └─ resolver.resolve [sextant-resolver] zone=z3",
                "     0.300      0.500        ├─ upstream [sextant-resolver] zone=z4",
                "     0.900      0.300        └─ upstream [sextant-resolver] zone=z5",
            ]
        );
    }

    #[test]
    fn a_span_whose_parent_was_not_collected_is_shown_as_a_root() {
        // The listener was not asked: the resolver's span hangs from nothing here.
        let lines = render(&[
            span(4, 3, "upstream", 300, 500),
            span(3, 2, "resolver.resolve", 200, 1200),
        ]);
        assert_eq!(lines.len(), 3);
        assert!(
            lines[1].ends_with("  resolver.resolve [sextant-resolver] zone=z3"),
            "{lines:?}"
        );
        assert!(lines[2].contains("└─ upstream"), "{lines:?}");
        assert!(render(&[]).is_empty());
        let _ = SystemTime::now();
    }

    #[test]
    fn names_and_types_are_checked_before_anything_is_sent() {
        assert!(question("www.example.com", "aaaa").is_ok());
        assert!(question("www.example.com", "BOGUS").is_err());
        assert!(question("a..b", "A").is_err());
    }
}
