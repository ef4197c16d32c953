//! Which queries are traced (`[trace]`: a share of all, and always those for some
//! names or from some clients), and the listener's spans of a traced query: the
//! root `dns.query` and its `backend` child, whose context travels with the query.

use std::net::{IpAddr, SocketAddr};

use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use sextant_config::TraceConfig;
use sextant_rpc::Transport;
use sextant_wire::QueryView;

use crate::backend::Backend;

/// The listener's choice of queries to trace.
#[derive(Debug)]
pub(crate) struct TraceRules {
    rate: f64,
    /// Lower-cased wire names.
    names: Vec<Vec<u8>>,
    clients: Vec<ipnet::IpNet>,
}

impl TraceRules {
    pub(crate) fn new(config: &TraceConfig) -> Self {
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

    /// Whether this query is traced: a rule picks it, or the dice do.
    pub(crate) fn wants(&self, view: &QueryView, client: IpAddr) -> bool {
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
}

impl Traced {
    pub(crate) fn of(view: &QueryView) -> Box<Self> {
        Box::new(Traced {
            name: view.question.name_text(),
            qtype: view.question.qtype,
        })
    }
}

/// The spans of a traced query on its way through a backend; they end when this
/// is dropped (after `finish`).
#[derive(Debug)]
pub(crate) struct QuerySpans {
    root: Context,
    backend: Context,
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
                KeyValue::new("dns.question.type", i64::from(traced.qtype)),
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
        Self { root, backend }
    }

    /// The context the backend continues the trace from.
    pub(crate) fn traceparent(&self) -> Option<String> {
        sextant_trace::traceparent(&self.backend)
    }

    /// Records the outcome: the answer's RCODE, or that none came.
    pub(crate) fn finish(self, answer: Option<&[u8]>) {
        let rcode = answer
            .and_then(|wire| wire.get(3))
            .map(|flags| i64::from(flags & 0x0f));
        for cx in [&self.backend, &self.root] {
            match rcode {
                Some(rcode) => cx.span().set_attribute(KeyValue::new("dns.rcode", rcode)),
                None => cx
                    .span()
                    .set_attribute(KeyValue::new("dns.answered", false)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A query for `name` (wire form, any case), type A.
    fn query(name: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        packet.extend_from_slice(name);
        packet.extend_from_slice(&[0, 1, 0, 1]);
        packet
    }

    fn rules(rate: f64, names: &[&str], clients: &[&str]) -> TraceRules {
        TraceRules::new(&TraceConfig {
            otlp: "http://127.0.0.1:4317".into(),
            sample_rate: rate,
            always_names: names.iter().map(|n| n.to_string()).collect(),
            always_clients: clients.iter().map(|c| c.parse().unwrap()).collect(),
        })
    }

    #[test]
    fn names_at_or_below_a_rule_and_clients_in_a_network_are_always_traced() {
        let rules = rules(0.0, &["Example.COM"], &["192.0.2.0/24"]);
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        let traced = |name: &[u8], client: IpAddr| {
            let packet = query(name);
            let view = sextant_wire::parse_query(&packet).unwrap();
            rules.wants(&view, client)
        };
        assert!(traced(b"\x03www\x07example\x03com\x00", stranger));
        assert!(traced(b"\x07EXAMPLE\x03com\x00", stranger));
        assert!(!traced(b"\x0anotexample\x03com\x00", stranger));
        assert!(!traced(b"\x03com\x00", stranger));
        assert!(traced(b"\x03com\x00", "192.0.2.77".parse().unwrap()));
    }

    #[test]
    fn the_rate_picks_a_share() {
        let packet = query(b"\x03www\x07example\x03com\x00");
        let view = sextant_wire::parse_query(&packet).unwrap();
        let client: IpAddr = "198.51.100.1".parse().unwrap();
        let all = rules(1.0, &[], &[]);
        let none = rules(0.0, &[], &[]);
        assert!((0..100).all(|_| all.wants(&view, client)));
        assert!((0..100).all(|_| !none.wants(&view, client)));
    }
}
