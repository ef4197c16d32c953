//! Which queries are traced (`[trace]`: a share of all, and always those for some
//! names or from some clients; and, with or without `[trace]`, a query carrying the
//! trace option from a client allowed to ask for it: `sextantctl trace`), and the
//! listener's spans of a traced query: the root `dns.query` and its `backend` child,
//! whose context travels with the query.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use sextant_config::TraceConfig;
use sextant_rpc::Transport;
use sextant_wire::QueryView;

use crate::backend::Backend;

/// The listener's choice of queries to trace; by default only marked ones.
#[derive(Debug, Default)]
pub(crate) struct TraceRules {
    rate: f64,
    /// Lower-cased wire names.
    names: Vec<Vec<u8>>,
    clients: Vec<ipnet::IpNet>,
}

impl TraceRules {
    /// The rules of `[trace]`; without it, only marked queries are traced.
    pub(crate) fn new(config: Option<&TraceConfig>) -> Self {
        let Some(config) = config else {
            return Self::default();
        };
        Self {
            rate: config.sample_rate,
            names: config
                .always_names
                .iter()
                .filter_map(|name| sextant_wire::wire_name_from_text(name))
                .collect(),
            clients: config.always_clients.clone(),
        }
    }

    /// Whether and how this query is traced: marked by a client allowed to ask
    /// (its answer then carries the trace id), picked by a rule, or by the dice.
    pub(crate) fn choose(
        &self,
        packet: &[u8],
        view: &QueryView,
        client: IpAddr,
    ) -> Option<Box<Traced>> {
        let marked = view.edns.is_some_and(|edns| {
            sextant_wire::find_option(edns.options(packet), sextant_wire::OPTION_TRACE).is_some()
        });
        // IPv4 clients on a dual-stack socket are matched as IPv4.
        let client = client.to_canonical();
        let echo = marked && self.may_mark(client);
        (echo || self.wants(view, client)).then(|| {
            Box::new(Traced {
                name: view.question.name_text(),
                qtype: view.question.qtype,
                echo,
            })
        })
    }

    /// Who may have a query traced on demand: this host (`sextantctl`), and the
    /// clients the operator already traces. Anyone else's mark is ignored, so a
    /// stranger cannot make the daemons record spans.
    fn may_mark(&self, client: IpAddr) -> bool {
        client.is_loopback() || self.clients.iter().any(|net| net.contains(&client))
    }

    fn wants(&self, view: &QueryView, client: IpAddr) -> bool {
        let name = view.question.name_wire();
        self.names
            .iter()
            .any(|traced| sextant_wire::is_subdomain(name, traced))
            || self.clients.iter().any(|net| net.contains(&client))
            || (self.rate > 0.0 && rand::random::<f64>() < self.rate)
    }
}

/// What the spans of a traced query name, taken when it is decided.
#[derive(Clone, Debug)]
pub(crate) struct Traced {
    name: String,
    qtype: u16,
    /// The client marked the query (`sextantctl trace`): its answer carries the
    /// trace id, and it goes to the backend even when the packet cache has it.
    pub(crate) echo: bool,
}

/// The spans of a traced query on its way through a backend; they end when this
/// is dropped (after `finish`).
#[derive(Debug)]
pub(crate) struct QuerySpans {
    // Dropped in this order: the child ends before its parent.
    backend: Context,
    root: Context,
    echo: bool,
}

/// A type as `dig` writes it: its mnemonic, or `TYPE<n>` (RFC 3597).
fn type_text(qtype: u16) -> String {
    match sextant_wire::QTYPE_LABELS[sextant_wire::qtype_index(qtype)] {
        "OTHER" => format!("TYPE{qtype}"),
        known => known.to_string(),
    }
}

impl QuerySpans {
    pub(crate) fn start(
        traced: &Traced,
        client: SocketAddr,
        transport: Transport,
        backend: Backend,
    ) -> Self {
        let root = sextant_trace::span(
            "dns.query",
            SpanKind::Server,
            &Context::new(),
            vec![
                KeyValue::new("dns.question.name", traced.name.clone()),
                KeyValue::new("dns.question.type", type_text(traced.qtype)),
                KeyValue::new("client.address", client.ip().to_string()),
                KeyValue::new("client.port", i64::from(client.port())),
                KeyValue::new("network.transport", transport.as_str()),
            ],
        );
        let backend = sextant_trace::span(
            "backend",
            SpanKind::Client,
            &root,
            vec![KeyValue::new("sextant.backend", backend.name())],
        );
        Self {
            root,
            backend,
            echo: traced.echo,
        }
    }

    /// The context the backend continues the trace from.
    pub(crate) fn traceparent(&self) -> Option<String> {
        sextant_trace::traceparent(&self.backend)
    }

    /// Records the outcome: the answer's RCODE, or that none came. A marked
    /// query's answer comes back with the trace id added.
    pub(crate) fn finish(&self, answer: Option<Bytes>) -> Option<Bytes> {
        let rcode = answer
            .as_ref()
            .and_then(|wire| sextant_wire::Rcode::of_message(wire))
            .map(sextant_wire::Rcode::name);
        for cx in [&self.backend, &self.root] {
            match rcode {
                Some(rcode) => cx.span().set_attribute(KeyValue::new("dns.rcode", rcode)),
                None => cx
                    .span()
                    .set_attribute(KeyValue::new("dns.answered", false)),
            }
        }
        let answer = answer?;
        let Some(trace_id) = sextant_trace::trace_id(&self.root).filter(|_| self.echo) else {
            return Some(answer);
        };
        let mut wire = answer.to_vec();
        if sextant_wire::add_option(&mut wire, sextant_wire::OPTION_TRACE, &trace_id) {
            Some(Bytes::from(wire))
        } else {
            Some(answer)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A query for `name` (wire form, any case), type A, with an OPT record
    /// carrying `options` when given.
    fn query(name: &[u8], options: Option<&[u8]>) -> Vec<u8> {
        let additional = u8::from(options.is_some());
        let mut packet = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, additional];
        packet.extend_from_slice(name);
        packet.extend_from_slice(&[0, 1, 0, 1]);
        if let Some(options) = options {
            packet.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
            packet.extend_from_slice(&(options.len() as u16).to_be_bytes());
            packet.extend_from_slice(options);
        }
        packet
    }

    fn rules(rate: f64, names: &[&str], clients: &[&str]) -> TraceRules {
        TraceRules::new(Some(&TraceConfig {
            otlp: "http://127.0.0.1:4317".into(),
            sample_rate: rate,
            always_names: names.iter().map(|n| n.to_string()).collect(),
            always_clients: clients.iter().map(|c| c.parse().unwrap()).collect(),
        }))
    }

    /// Whether `rules` trace a query for `name` from `client`, and echo its id.
    fn chosen(rules: &TraceRules, packet: &[u8], client: &str) -> Option<bool> {
        let view = sextant_wire::parse_query(packet).unwrap();
        rules
            .choose(packet, &view, client.parse().unwrap())
            .map(|traced| traced.echo)
    }

    const WWW: &[u8] = b"\x03www\x07example\x03com\x00";

    #[test]
    fn names_at_or_below_a_rule_and_clients_in_a_network_are_always_traced() {
        let rules = rules(0.0, &["Example.COM"], &["192.0.2.0/24"]);
        let stranger = "198.51.100.1";
        let traced = |name: &[u8], client: &str| chosen(&rules, &query(name, None), client);
        assert_eq!(traced(WWW, stranger), Some(false));
        assert_eq!(traced(b"\x07EXAMPLE\x03com\x00", stranger), Some(false));
        assert_eq!(traced(b"\x0anotexample\x03com\x00", stranger), None);
        assert_eq!(traced(b"\x03com\x00", stranger), None);
        assert_eq!(traced(b"\x03com\x00", "192.0.2.77"), Some(false));
    }

    #[test]
    fn types_are_named_as_dig_names_them() {
        assert_eq!(type_text(28), "AAAA");
        assert_eq!(type_text(65_280), "TYPE65280");
    }

    #[test]
    fn the_rate_picks_a_share() {
        let packet = query(WWW, None);
        let all = rules(1.0, &[], &[]);
        let none = rules(0.0, &[], &[]);
        assert!((0..100).all(|_| chosen(&all, &packet, "198.51.100.1").is_some()));
        assert!((0..100).all(|_| chosen(&none, &packet, "198.51.100.1").is_none()));
    }

    #[test]
    fn a_marked_query_is_traced_on_demand_only_for_this_host_and_traced_clients() {
        // The trace option, empty, after a cookie: found wherever it is.
        let mut options = vec![0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        options.extend_from_slice(&sextant_wire::OPTION_TRACE.to_be_bytes());
        options.extend_from_slice(&[0, 0]);
        let marked = query(WWW, Some(&options));
        let unmarked = query(WWW, Some(&options[..12]));
        // Without [trace] at all.
        let off = TraceRules::new(None);
        assert_eq!(chosen(&off, &marked, "127.0.0.1"), Some(true));
        assert_eq!(chosen(&off, &marked, "::1"), Some(true));
        assert_eq!(chosen(&off, &marked, "::ffff:127.0.0.1"), Some(true));
        assert_eq!(chosen(&off, &unmarked, "127.0.0.1"), None);
        assert_eq!(chosen(&off, &marked, "198.51.100.1"), None);
        // A traced client may mark; a stranger's mark still only counts as a query.
        let some = rules(0.0, &["example.com"], &["192.0.2.0/24"]);
        assert_eq!(chosen(&some, &marked, "192.0.2.9"), Some(true));
        assert_eq!(chosen(&some, &marked, "198.51.100.1"), Some(false));
    }
}
