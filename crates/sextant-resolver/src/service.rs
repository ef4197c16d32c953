//! The resolver's side of the gRPC query stream: a client's wire query in, the
//! wire response out. The checks are the authority's (`sextant_wire::check_query`);
//! the answer comes from [`Resolver::resolve`] and is written by the shared response
//! writer.

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use std::sync::Arc;

use bytes::Bytes;
use hickory_proto::rr::{Name, Record};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding,
};
use sextant_rpc::{Answer, Query, QueryHandler};
use sextant_wire::{EdnsReply, ExtendedError, Rcode, ResponseWriter, Section, check_query, flags};

use crate::dnssec::Security;
use crate::resolve::{Outcome, Resolver};
use crate::upstream::EDNS_PAYLOAD;

#[derive(Debug)]
pub(crate) struct ResolverService {
    pub resolver: Arc<Resolver>,
}

impl QueryHandler for ResolverService {
    fn handle(&self, query: Query) -> impl Future<Output = Answer> + Send {
        let resolver = self.resolver.clone();
        async move {
            let traced = query
                .traceparent
                .as_deref()
                .and_then(sextant_trace::remote_parent)
                .map(|parent| {
                    sextant_trace::span("resolver.resolve", SpanKind::Server, &parent, Vec::new())
                });
            let answer = match &traced {
                // Upstream exchanges made for it become its children.
                Some(cx) => {
                    opentelemetry::context::FutureExt::with_context(
                        respond(&resolver, &query),
                        cx.clone(),
                    )
                    .await
                }
                None => respond(&resolver, &query).await,
            };
            let rcode = answer
                .wire()
                .and_then(|wire| Rcode::of_message(wire))
                .map_or("NONE", Rcode::name);
            metrics::counter!("sextant_resolver_answers_total", "rcode" => rcode).increment(1);
            if let Some(cx) = traced {
                cx.span().set_attribute(KeyValue::new("dns.rcode", rcode));
            }
            answer
        }
    }

    fn transfer(&self, query: Query) -> tokio::sync::mpsc::Receiver<Bytes> {
        // A resolver has no zones to transfer.
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        let ede = sextant_wire::ExtendedError::prohibited("no zone transfers from a resolver");
        let refusal =
            sextant_wire::rcode_answer(&query.wire, Rcode::REFUSED, Some(ede), EDNS_PAYLOAD);
        if let Some(refusal) = refusal {
            let _ = sender.try_send(Bytes::from(refusal));
        }
        receiver
    }
}

/// Answers one recursive query. Never fails: every problem becomes an RCODE.
pub(crate) async fn respond(resolver: &Arc<Resolver>, query: &Query) -> Answer {
    let wire = &query.wire[..];
    let mut out = Vec::with_capacity(512);
    let view = match check_query(wire) {
        Ok(view) => view,
        Err(sextant_wire::Refusal::Silent) => return Answer::Silent,
        Err(refusal) => {
            refusal.write(wire, EDNS_PAYLOAD, &mut out);
            // RA: this is a recursive server, even when it refuses.
            if let Some(flags) = out.get_mut(3) {
                *flags |= 0x80;
            }
            return Answer::once(out);
        }
    };
    // The resolver's model of names and records is hickory-proto's.
    let Ok(qname) = Name::read(&mut BinDecoder::new(view.qname(wire))) else {
        return Answer::once(refused_with(wire, &view, Rcode::FORMERR));
    };
    let resolved = resolver.resolve(&qname, view.question.qtype.into()).await;
    // Data that failed validation goes only to a client that asked for it unchecked
    // (CD=1, RFC 4035 §3.2.2); everyone else gets SERVFAIL and the reason.
    let checking_disabled = view.header.checking_disabled();
    let bogus = resolved.bogus_reason();
    let outcome = match bogus {
        Some(why) if !checking_disabled => Arc::new(Outcome::bogus(why)),
        _ => resolved,
    };
    // Stale, bogus and failed answers must not be reused by the listener: they
    // stand in only until the upstreams (or the zone's signatures) are back.
    let reusable = !outcome.stale
        && bogus.is_none()
        && outcome.rcode != hickory_proto::op::ResponseCode::ServFail;

    let mut writer =
        ResponseWriter::new(&mut out, wire, &view, usize::from(query.max_response_size));
    writer.set_flag(flags::RA, true);
    writer.set_rcode(Rcode::new(u16::from(outcome.rcode)));
    // AD only for data proven secure, and only to a client that says it understands
    // it, by DO or AD (RFC 6840 §5.8).
    let understands_ad =
        view.header.flags & flags::AD != 0 || view.edns.is_some_and(|edns| edns.dnssec_ok);
    writer.set_flag(
        flags::AD,
        understands_ad && outcome.security == Security::Secure,
    );
    if let Some(edns) = view.edns {
        let mut reply = EdnsReply::new(EDNS_PAYLOAD, edns.dnssec_ok);
        // Why the answer is stale or missing (RFC 8914).
        if let Some(why) = outcome.bogus_reason() {
            reply.push_extended_error(why.extended_error());
        } else if outcome.stale {
            reply.push_extended_error(ExtendedError::stale_answer(
                "authorities unreachable; expired data",
            ));
        } else if outcome.busy {
            reply.push_extended_error(ExtendedError::other(
                "too many questions being resolved; try again",
            ));
        } else if outcome.cached_failure {
            reply.push_extended_error(ExtendedError::cached_error(
                "resolution failed moments ago; not retried yet",
            ));
        } else if outcome.rcode == hickory_proto::op::ResponseCode::ServFail {
            reply.push_extended_error(ExtendedError::no_reachable_authority(
                "no authority answered",
            ));
        }
        writer.set_edns(reply);
    }
    let dnssec_ok = view.edns.is_some_and(|edns| edns.dnssec_ok);
    let complete = write_outcome(&mut writer, &outcome, dnssec_ok);
    writer.finish();
    let cache_ttl = if reusable && complete {
        min_ttl(&outcome)
    } else {
        0
    };
    Answer::Reply {
        wire: Bytes::from(out),
        cache_ttl,
    }
}

/// Writes the answer and authority sections whole, or TC=1 with no records when
/// they do not fit (RFC 2181 §9). Returns whether they went in.
fn write_outcome(writer: &mut ResponseWriter<'_>, outcome: &Outcome, dnssec_ok: bool) -> bool {
    // Signatures and denial records only for clients that set DO (RFC 4035 §3.2.1).
    let (answer_sigs, authority_sigs) = if dnssec_ok {
        (&outcome.answer_sigs[..], &outcome.authority_sigs[..])
    } else {
        (&[][..], &[][..])
    };
    let records = outcome
        .answer
        .iter()
        .chain(answer_sigs)
        .map(|record| (Section::Answer, record))
        .chain(
            outcome
                .authority
                .iter()
                .chain(authority_sigs)
                .map(|r| (Section::Authority, r)),
        );
    for (section, record) in records {
        let written = encode(record).is_some_and(|(owner, rdata)| {
            writer
                .push_record(
                    section,
                    &owner,
                    u16::from(record.record_type()),
                    u16::from(record.dns_class),
                    record.ttl,
                    &rdata,
                )
                .is_ok()
        });
        if !written {
            writer.clear_records();
            writer.set_flag(flags::TC, true);
            return false;
        }
    }
    true
}

/// A record's owner and data in uncompressed wire form, the owner in its own case.
fn encode(record: &Record) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut owner = Vec::with_capacity(record.name.len() + 2);
    for label in record.name.iter() {
        owner.push(u8::try_from(label.len()).ok()?);
        owner.extend_from_slice(label);
    }
    owner.push(0);
    let mut rdata = Vec::with_capacity(32);
    let mut encoder = BinEncoder::new(&mut rdata);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    record.data.emit(&mut encoder).ok()?;
    Some((owner, rdata))
}

fn refused_with(wire: &[u8], view: &sextant_wire::QueryView, rcode: Rcode) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    sextant_wire::write_error_response(
        &mut out,
        wire,
        &view.header,
        Some(view),
        rcode,
        None,
        EDNS_PAYLOAD,
    );
    out
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
