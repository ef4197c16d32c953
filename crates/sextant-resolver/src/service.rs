//! The resolver's side of the gRPC query stream: a client's wire query in, the
//! wire response out. Validation mirrors the authority's; the answer comes from
//! [`Resolver::resolve`].

use std::sync::Arc;

use bytes::Bytes;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query as Question};
use sextant_rpc::{Answer, Query, QueryHandler};
use sextant_wire::consts::*;
use sextant_wire::{QueryView, write_error_response};
use sextant_zone::{Rejection, checked_question, encode_to_fit};

use crate::resolve::{Outcome, Resolver};
use crate::upstream::EDNS_PAYLOAD;

#[derive(Debug)]
pub struct ResolverService {
    pub resolver: Arc<Resolver>,
}

impl QueryHandler for ResolverService {
    fn handle(&self, query: Query) -> impl Future<Output = Answer> + Send {
        let resolver = self.resolver.clone();
        async move {
            let answer = respond(&resolver, &query).await;
            let rcode = answer
                .wire
                .get(3)
                .map_or("NONE", |f| sextant_wire::rcode_name(f & 0x0f));
            metrics::counter!("sextant_resolver_answers_total", "rcode" => rcode).increment(1);
            answer
        }
    }
}

/// Answers one recursive query. Never fails: every problem becomes an RCODE.
pub async fn respond(resolver: &Arc<Resolver>, query: &Query) -> Answer {
    let wire = &query.wire[..];
    let (view, question) = match checked_question(wire) {
        Ok(checked) => checked,
        Err(Rejection::Silent) => return Answer::default(),
        Err(Rejection::Rcode {
            header,
            view,
            rcode,
        }) => {
            return error(wire, &header, view.as_deref(), rcode);
        }
    };
    let header = view.header;
    let reject = |rcode: u16| error(wire, &header, Some(&view), rcode);
    let outcome = resolver
        .resolve(question.name(), question.query_type())
        .await;
    // Stale and failed answers must not be reused by the listener: they stand in
    // only until the upstreams are back.
    let reusable = !outcome.stale && outcome.rcode != hickory_proto::op::ResponseCode::ServFail;
    let cache_ttl = if reusable { min_ttl(&outcome) } else { 0 };
    let mut message = response(&view, question, &outcome);
    match encode_to_fit(&mut message, usize::from(query.max_response_size)) {
        Some((bytes, complete)) => Answer {
            wire: Bytes::from(bytes),
            cache_ttl: if complete { cache_ttl } else { 0 },
        },
        None => reject(u16::from(RCODE_SERVFAIL)),
    }
}

fn min_ttl(outcome: &Outcome) -> u32 {
    outcome
        .answer
        .iter()
        .chain(&outcome.authority)
        .map(|r| r.ttl)
        .min()
        .unwrap_or(0)
}

fn response(view: &QueryView, question: Question, outcome: &Outcome) -> Message {
    let mut message = Message::new(view.header.id, MessageType::Response, OpCode::Query);
    message.metadata.recursion_desired = view.header.recursion_desired();
    message.metadata.recursion_available = true;
    message.metadata.checking_disabled = view.header.checking_disabled();
    message.metadata.response_code = outcome.rcode;
    message.add_query(question);
    message.answers = outcome.answer.clone();
    message.authorities = outcome.authority.clone();
    if let Some(request_edns) = view.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        edns.set_dnssec_ok(request_edns.dnssec_ok);
        message.set_edns(edns);
    }
    message
}

fn error(
    wire: &[u8],
    header: &sextant_wire::Header,
    view: Option<&QueryView>,
    rcode: u16,
) -> Answer {
    let mut out = Vec::with_capacity(64);
    write_error_response(&mut out, wire, header, view, rcode, EDNS_PAYLOAD);
    if let Some(flags) = out.get_mut(3) {
        *flags |= 0x80; // RA: this is a recursive server, even when it refuses.
    }
    Answer {
        wire: Bytes::from(out),
        cache_ttl: 0,
    }
}
