//! From a query's wire bytes to the response's wire bytes: the checks, the lookup,
//! and the response writer (EDNS, truncation at RRset boundaries, the TSIG signature
//! for signed queries). One function, read top to bottom.

use bytes::Bytes;
use sextant_rpc::{Answer, Query};
use sextant_tsig::{AnswerSigner, Key};
use sextant_wire::consts::CLASS_IN;
use sextant_wire::{
    EdnsReply, ExtendedError, QueryView, Rcode, Refusal, ResponseWriter, Section, Signer,
    check_query, flags,
};
use sextant_zone::{Catalog, Lookup, Outcome, Part};

/// Answers one query from `catalog`. Never fails: every problem becomes an RCODE.
/// With `key`, a query signed with it gets a signed answer (a secondary's SOA check),
/// and one that fails the check gets NOTAUTH.
pub fn respond(
    catalog: &Catalog,
    query: &Query,
    edns_payload_size: u16,
    key: Option<&Key>,
) -> Answer {
    let wire = &query.wire[..];
    let mut out = Vec::with_capacity(512);
    // Zone transfers arrive on their own stream (`outgoing`): on this path they are
    // refused with the other queries no backend answers here.
    let view = match check_query(wire) {
        Ok(view) => view,
        Err(refusal) => {
            refusal.write(wire, edns_payload_size, &mut out);
            return uncacheable(out);
        }
    };
    let signer = match key {
        Some(key) if view.is_signed() => match AnswerSigner::for_request(key, wire) {
            Ok(signer) => Some(signer),
            Err(why) => {
                tracing::debug!(why, "a signed query failed the TSIG check");
                refusal(&view, Rcode::NOTAUTH).write(wire, edns_payload_size, &mut out);
                return uncacheable(out);
            }
        },
        _ => None,
    };
    let signer = signer.as_ref().map(|s| s as &dyn Signer);

    let lookup = catalog.lookup(view.qname(wire), view.question.qtype, view.dnssec_ok());
    let mut writer =
        ResponseWriter::new(&mut out, wire, &view, usize::from(query.max_response_size));
    if let Some(edns) = view.edns {
        // RFC 3225: the DO bit is copied into the response.
        writer.set_edns(EdnsReply::new(edns_payload_size, edns.dnssec_ok));
    }
    if let Some(signer) = signer {
        writer.reserve(signer.space());
    }
    let complete = match lookup.outcome {
        Outcome::Refused => {
            writer.set_rcode(Rcode::REFUSED);
            explain(
                &mut writer,
                ExtendedError::not_authoritative("not a zone served here"),
            );
            false
        }
        // An expired secondary zone: no data, not authoritative, never cached.
        Outcome::ServFail => {
            writer.set_rcode(Rcode::SERVFAIL);
            explain(
                &mut writer,
                ExtendedError::no_reachable_authority(
                    "zone expired: its primaries are unreachable",
                ),
            );
            false
        }
        Outcome::NoError | Outcome::NxDomain | Outcome::YxDomain => {
            write_lookup(&mut writer, &lookup)
        }
    };
    let written = match signer {
        Some(signer) => writer.finish_signed(signer),
        None => Ok(writer.finish()),
    };
    if let Err(why) = written {
        tracing::debug!(why, "signing an answer failed");
        refusal(&view, Rcode::SERVFAIL).write(wire, edns_payload_size, &mut out);
        return uncacheable(out);
    }
    // Only a complete, unsigned answer may be reused for other clients: a trimmed or
    // truncated one was cut for this client's size, a signed one for its key.
    let cache_ttl = if complete && signer.is_none() {
        lookup.min_ttl()
    } else {
        0
    };
    Answer::Reply {
        wire: Bytes::from(out),
        cache_ttl,
    }
}

/// Writes the lookup's sections. The answer and authority sections go in whole or
/// not at all, each RRset with its RRSIGs: when they do not fit, the response says
/// TC=1 and carries no records, so the client asks again over TCP (RFC 2181 §9, RFC
/// 4035 §3.1.1). Additional RRsets are optional and left out one by one, and so are
/// their RRSIGs. Returns whether everything went in.
fn write_lookup(writer: &mut ResponseWriter<'_>, lookup: &Lookup<'_>) -> bool {
    writer.set_rcode(match lookup.outcome {
        Outcome::NxDomain => Rcode::NXDOMAIN,
        Outcome::YxDomain => Rcode::YXDOMAIN,
        _ => Rcode::NOERROR,
    });
    writer.set_flag(flags::AA, lookup.authoritative);
    let required = lookup
        .answer
        .iter()
        .map(|part| (Section::Answer, part))
        .chain(
            lookup
                .authority
                .iter()
                .map(|part| (Section::Authority, part)),
        );
    for (section, part) in required {
        let written =
            push(writer, section, part).and_then(|()| push_signatures(writer, section, part));
        if written.is_err() {
            writer.clear_records();
            writer.set_flag(flags::TC, true);
            return false;
        }
    }
    let mut complete = true;
    for part in &lookup.additional {
        complete &= push(writer, Section::Additional, part).is_ok()
            && push_signatures(writer, Section::Additional, part).is_ok();
    }
    complete
}

fn push(
    writer: &mut ResponseWriter<'_>,
    section: Section,
    part: &Part<'_>,
) -> Result<(), sextant_wire::Full> {
    writer.push_rrset(
        section,
        &part.owner,
        part.rtype,
        CLASS_IN,
        part.ttl,
        part.rdatas(),
    )
}

/// The RRSIGs of `part`, when it carries some.
fn push_signatures(
    writer: &mut ResponseWriter<'_>,
    section: Section,
    part: &Part<'_>,
) -> Result<(), sextant_wire::Full> {
    match part.signatures() {
        Some((ttl, signatures)) => {
            writer.push_rrset(section, &part.owner, TYPE_RRSIG, CLASS_IN, ttl, signatures)
        }
        None => Ok(()),
    }
}

/// RRSIG (RFC 4034).
const TYPE_RRSIG: u16 = 46;

/// An answer carrying `rcode` alone for a query whose view was read.
fn refusal(view: &QueryView, rcode: Rcode) -> Refusal {
    Refusal::Answer {
        header: view.header,
        view: Some(Box::new(*view)),
        rcode,
        ede: None,
    }
}

/// Says why in the OPT record, when the query had one (RFC 8914).
fn explain(writer: &mut ResponseWriter<'_>, ede: ExtendedError) {
    if let Some(edns) = writer.edns_mut() {
        edns.push_extended_error(ede);
    }
}

fn uncacheable(out: Vec<u8>) -> Answer {
    if out.is_empty() {
        Answer::Silent
    } else {
        Answer::once(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::Path;
    use std::sync::Arc;

    use hickory_proto::op::{Edns, Message, Query as Question, ResponseCode};
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
            traceparent: None,
        };
        let answer = respond(&catalog(), &query, 1232, None);
        let response = Message::from_vec(answer.wire().unwrap()).unwrap();
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
        // With EDNS it says why: not authoritative (RFC 8914, code 20).
        let response = ask("www.example.net.", RecordType::A, true, 512);
        let options = response.edns.as_ref().unwrap().options();
        let ede = options
            .as_ref()
            .iter()
            .find_map(|(_, option)| match option {
                hickory_proto::rr::rdata::opt::EdnsOption::Unknown(15, data) => Some(data.clone()),
                _ => None,
            });
        assert_eq!(
            ede.as_deref().and_then(|d| d.get(..2)),
            Some(&[0u8, 20][..])
        );
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

    /// Replays fuzz/corpus/authority_respond (first byte: transport and size, then
    /// the query), where crash reproducers are committed: an answer within the
    /// client's size, or silence.
    #[test]
    fn fuzz_corpus_replays() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/authority_respond");
        let catalog = catalog();
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            let Some((&size, packet)) = data.split_first() else {
                continue;
            };
            let query = Query {
                wire: Bytes::copy_from_slice(packet),
                client: "127.0.0.1:5353".parse().unwrap(),
                transport: if size & 1 == 0 {
                    Transport::Udp
                } else {
                    Transport::Tcp
                },
                max_response_size: 512 + u16::from(size) * 16,
                traceparent: None,
            };
            if let Some(wire) = respond(&catalog, &query, 1232, None).wire() {
                assert!(wire.len() >= 12);
                assert!(wire.len() <= usize::from(query.max_response_size));
            }
            count += 1;
        }
        assert!(count > 0);
    }
}
