//! From a query's wire bytes to the response's wire bytes: validation, the lookup, EDNS
//! and truncation. One function, read top to bottom.

use bytes::Bytes;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query as Question, ResponseCode};
use hickory_proto::rr::DNSClass;
use sextant_rpc::{Answer, Query};
use sextant_wire::consts::*;
use sextant_wire::{QueryView, write_error_response};
use sextant_zone::{Catalog, Lookup, Rcode, Rejection, checked_question, encode_to_fit};

/// Answers one query from `catalog`. Never fails: every problem becomes an RCODE.
pub fn respond(catalog: &Catalog, query: &Query, edns_payload_size: u16) -> Answer {
    let wire = &query.wire[..];
    // Zone transfers arrive on their own stream (`outgoing`): on this path they are
    // refused with the other queries no backend answers here.
    let (view, question) = match checked_question(wire) {
        Ok(checked) => checked,
        Err(Rejection::Silent) => return Answer::default(),
        Err(Rejection::Rcode {
            header,
            view,
            rcode,
        }) => {
            return error(wire, &header, view.as_deref(), rcode, edns_payload_size);
        }
    };
    let header = view.header;
    let reject = |rcode: u16| error(wire, &header, Some(&view), rcode, edns_payload_size);

    let lookup = catalog.lookup(question.name(), question.query_type());
    match lookup.rcode {
        Rcode::Refused => return reject(u16::from(RCODE_REFUSED)),
        // An expired secondary zone: no data, not authoritative, never cached.
        Rcode::ServFail => return reject(u16::from(RCODE_SERVFAIL)),
        Rcode::NoError | Rcode::NxDomain | Rcode::YxDomain => {}
    }
    let cache_ttl = lookup.min_ttl();
    let mut message = response_message(&view, question, lookup, edns_payload_size);
    match encode_to_fit(&mut message, usize::from(query.max_response_size)) {
        // Only a complete answer may be reused for other clients: a trimmed or
        // truncated one was cut for this client's size.
        Some((bytes, complete)) => Answer {
            wire: Bytes::from(bytes),
            cache_ttl: if complete { cache_ttl } else { 0 },
        },
        None => error(
            wire,
            &header,
            Some(&view),
            u16::from(RCODE_SERVFAIL),
            edns_payload_size,
        ),
    }
}

fn response_message(
    view: &QueryView,
    question: Question,
    lookup: Lookup,
    edns_payload_size: u16,
) -> Message {
    let mut message = Message::new(view.header.id, MessageType::Response, OpCode::Query);
    message.metadata.authoritative = lookup.authoritative;
    message.metadata.recursion_desired = view.header.recursion_desired();
    message.metadata.checking_disabled = view.header.checking_disabled();
    message.metadata.response_code = match lookup.rcode {
        Rcode::NoError => ResponseCode::NoError,
        Rcode::NxDomain => ResponseCode::NXDomain,
        Rcode::YxDomain => ResponseCode::YXDomain,
        Rcode::Refused => ResponseCode::Refused,
        Rcode::ServFail => ResponseCode::ServFail,
    };
    message.add_query(question);
    message.answers = lookup.answer;
    message.authorities = lookup.authority;
    message.additionals = lookup.additional;
    for record in message
        .answers
        .iter_mut()
        .chain(&mut message.authorities)
        .chain(&mut message.additionals)
    {
        record.dns_class = DNSClass::IN;
    }
    if let Some(request_edns) = view.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(edns_payload_size.max(CLASSIC_UDP_SIZE));
        // RFC 3225: the DO bit is copied into the response.
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
    size: u16,
) -> Answer {
    let mut out = Vec::with_capacity(64);
    write_error_response(&mut out, wire, header, view, rcode, size);
    Answer {
        wire: Bytes::from(out),
        cache_ttl: 0,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::Path;
    use std::sync::Arc;

    use hickory_proto::rr::{Name, RecordType};
    use sextant_rpc::Transport;
    use sextant_zone::Zone;

    use super::*;

    fn catalog() -> Catalog {
        let mut text = String::from(
            "$TTL 300\n@ SOA ns h 1 2 3 4 60\n  NS ns\nns A 192.0.2.53\nwww A 192.0.2.1\n",
        );
        for i in 0..100 {
            text.push_str(&format!(
                "big TXT \"record number {i} with some padding to make it long\"\n"
            ));
        }
        let none =
            |_: &Path| -> std::io::Result<String> { Err(std::io::ErrorKind::NotFound.into()) };
        let (zone, _) = Zone::from_master_text(
            &Name::from_ascii("example.com.").unwrap(),
            Path::new("t"),
            &text,
            &none,
        )
        .unwrap();
        Catalog::new([Arc::new(zone)])
    }

    fn ask(name: &str, rtype: RecordType, edns: bool, max: u16) -> Message {
        let mut message = Message::query();
        message.add_query(Question::query(Name::from_ascii(name).unwrap(), rtype));
        if edns {
            message.set_edns(Edns::new());
        }
        let query = Query {
            wire: Bytes::from(message.to_vec().unwrap()),
            client: "127.0.0.1:5000".parse().unwrap(),
            transport: Transport::Udp,
            max_response_size: max,
        };
        let answer = respond(&catalog(), &query, 1232);
        let response = Message::from_vec(&answer.wire).unwrap();
        assert_eq!(response.metadata.id, message.metadata.id);
        response
    }

    #[test]
    fn authoritative_answer_with_edns() {
        let response = ask("www.Example.com.", RecordType::A, true, 1232);
        assert!(response.metadata.authoritative);
        assert_eq!(response.answers[0].data.to_string(), "192.0.2.1");
        assert_eq!(response.queries[0].name().to_string(), "www.Example.com.");
        assert_eq!(response.edns.unwrap().max_payload(), 1232);
    }

    #[test]
    fn refused_outside_our_zones_and_for_transfers() {
        let response = ask("www.example.net.", RecordType::A, false, 512);
        assert_eq!(response.metadata.response_code, ResponseCode::Refused);
        let response = ask("example.com.", RecordType::AXFR, false, 512);
        assert_eq!(response.metadata.response_code, ResponseCode::Refused);
    }

    #[test]
    fn large_answers_truncate_to_the_limit() {
        let response = ask("big.example.com.", RecordType::TXT, false, 512);
        assert!(response.metadata.truncation);
        assert!(response.answers.is_empty());
        let response = ask("big.example.com.", RecordType::TXT, true, 65535);
        assert!(!response.metadata.truncation);
        assert_eq!(response.answers.len(), 100);
    }
}
