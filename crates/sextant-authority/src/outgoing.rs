//! Outgoing zone transfers (the primary role): AXFR (RFC 5936) of any zone served,
//! to clients in `allow_transfer` only (nobody by default), over TCP only, and with
//! a TSIG-signed request when `transfer_key` is set (every answer message is then
//! signed too). IXFR (RFC 1995) is answered with the whole zone, which the RFC
//! allows when no history is kept, or with our SOA alone when the client is current.

use std::sync::Arc;

use bytes::Bytes;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use sextant_rpc::{Query, Transport};
use sextant_zone::{Catalog, Zone};
use tokio::sync::mpsc;

/// Bytes of records per answer message: well under 64 KiB, as BIND and Knot do.
const MESSAGE_BYTES: usize = 16 * 1024;
/// Messages buffered ahead of a slow client.
const QUEUE: usize = 4;

/// Who may transfer, and the key they must sign with.
#[derive(Debug, Default)]
pub(crate) struct TransferPolicy {
    pub allow: Vec<ipnet::IpNet>,
    pub key: Option<sextant_tsig::Key>,
    /// Differences between versions; without it IXFR gets the whole zone.
    pub journal: Option<Arc<sextant_store::Store>>,
}

impl TransferPolicy {
    fn allows(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// Answers a transfer request from `catalog`: the messages in order through the
/// returned channel, or one error message (REFUSED, NOTAUTH, FORMERR, SERVFAIL).
pub(crate) fn transfer(
    catalog: Arc<Catalog>,
    policy: &TransferPolicy,
    query: Query,
) -> mpsc::Receiver<Bytes> {
    let (sender, receiver) = mpsc::channel(QUEUE);
    let refuse = |rcode: ResponseCode, why: &str| {
        metrics::counter!("sextant_authority_transfers_total", "result" => "refused").increment(1);
        tracing::info!(client = %query.client, why, "zone transfer refused");
        let (sender, receiver) = mpsc::channel(1);
        let _ = sender.try_send(error_response(&query.wire, rcode));
        receiver
    };
    let Ok(request) = Message::from_vec(&query.wire) else {
        return refuse(ResponseCode::FormErr, "the request does not parse");
    };
    let Some(question) = request.queries.first().cloned() else {
        return refuse(ResponseCode::FormErr, "the request has no question");
    };
    if query.transport != Transport::Tcp {
        return refuse(ResponseCode::Refused, "transfers are served over TCP only");
    }
    if !policy.allows(query.client.ip()) {
        return refuse(ResponseCode::Refused, "the client is not in allow_transfer");
    }
    let request_mac = match (&policy.key, request.signature().is_some()) {
        (Some(key), true) => match key.verify_query(&query.wire, &request) {
            Ok(mac) => Some(mac),
            Err(why) => return refuse(ResponseCode::NotAuth, &why),
        },
        (Some(_), false) => return refuse(ResponseCode::NotAuth, "the request is not signed"),
        (None, true) => {
            return refuse(
                ResponseCode::NotAuth,
                "the request is signed with a key we do not have",
            );
        }
        (None, false) => None,
    };
    let Some(zone) = catalog
        .zones()
        .find(|z| *z.origin() == question.name().to_lowercase())
        .cloned()
    else {
        return refuse(
            ResponseCode::NotAuth,
            "we are not authoritative for that zone",
        );
    };
    if catalog.is_expired(zone.origin()) {
        return refuse(ResponseCode::ServFail, "the zone has expired");
    }
    let client_serial = (question.query_type() == RecordType::IXFR)
        .then(|| {
            request.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(soa.serial),
                _ => None,
            })
        })
        .flatten();
    let key = policy.key.clone();
    let journal = policy.journal.clone();
    let client = query.client;
    // The journal is read here too: sled reads are blocking I/O.
    tokio::task::spawn_blocking(move || {
        let answer = match client_serial {
            Some(serial) if serial == zone.serial() => Answer::UpToDate,
            Some(serial) => journal
                .as_ref()
                .and_then(|journal| {
                    journal
                        .diffs_since(&crate::journal::key(&zone), serial)
                        .ok()
                        .flatten()
                })
                .filter(|chain| chain.last().is_some_and(|d| d.to == zone.serial()))
                .map_or(Answer::Whole, Answer::Incremental),
            None => Answer::Whole,
        };
        let kind = match &answer {
            Answer::UpToDate => "up to date",
            Answer::Whole => "whole zone",
            Answer::Incremental(_) => "incremental",
        };
        let outcome = stream(&zone, &request, answer, key.as_ref(), request_mac, &sender);
        let result = if outcome.is_ok() { "ok" } else { "aborted" };
        metrics::counter!("sextant_authority_transfers_total", "result" => result).increment(1);
        match outcome {
            Ok(messages) => {
                tracing::info!(zone = %zone.origin(), serial = zone.serial(), %client, messages,
                    kind, "zone transferred")
            }
            Err(why) => {
                tracing::warn!(zone = %zone.origin(), %client, why, "zone transfer aborted")
            }
        }
    });
    receiver
}

/// What a transfer sends.
enum Answer {
    /// IXFR from our own serial: the SOA alone.
    UpToDate,
    /// AXFR, or IXFR without a journal chain from the client's serial (RFC 1995 §4).
    Whole,
    /// IXFR: the journal's differences from the client's serial to ours.
    Incremental(Vec<sextant_store::Diff>),
}

/// Packs the answer into messages and hands them over one by one; returns how many.
fn stream(
    zone: &Zone,
    request: &Message,
    answer: Answer,
    key: Option<&sextant_tsig::Key>,
    request_mac: Option<Vec<u8>>,
    sender: &mpsc::Sender<Bytes>,
) -> Result<usize, &'static str> {
    let mut signer = Signer {
        key,
        previous: request_mac.unwrap_or_default(),
        first: true,
    };
    let records: Box<dyn Iterator<Item = Record>> = match answer {
        Answer::UpToDate => Box::new(std::iter::once(zone.soa().clone())),
        Answer::Whole => Box::new(zone.axfr_records()),
        Answer::Incremental(diffs) => {
            // RFC 1995 §4: the newest SOA, then each difference (old SOA, removed,
            // new SOA, added), then the newest SOA again.
            let mut records = vec![zone.soa().clone()];
            for diff in &diffs {
                for bytes in diff.removed.iter().chain(&diff.added) {
                    records.push(
                        Record::from_bytes(bytes)
                            .map_err(|_| "a journal record does not decode")?,
                    );
                }
            }
            records.push(zone.soa().clone());
            Box::new(records.into_iter())
        }
    };
    let mut batch = Vec::new();
    let mut bytes = 0;
    let mut sent = 0;
    for record in records {
        let size = record.to_bytes().map_or(64, |b| b.len());
        if bytes + size > MESSAGE_BYTES && !batch.is_empty() {
            send(request, std::mem::take(&mut batch), &mut signer, sender)?;
            sent += 1;
            bytes = 0;
        }
        bytes += size;
        batch.push(record);
    }
    send(request, batch, &mut signer, sender)?;
    Ok(sent + 1)
}

struct Signer<'k> {
    key: Option<&'k sextant_tsig::Key>,
    previous: Vec<u8>,
    first: bool,
}

fn send(
    request: &Message,
    answers: Vec<Record>,
    signer: &mut Signer<'_>,
    sender: &mpsc::Sender<Bytes>,
) -> Result<(), &'static str> {
    let mut message = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    message.metadata.authoritative = true;
    message.queries = request.queries.clone();
    message.answers = answers;
    if let Some(key) = signer.key {
        signer.previous = key
            .sign_response(&mut message, &signer.previous, &[], signer.first)
            .map_err(|_| "signing an answer message failed")?;
        signer.first = false;
    }
    let wire = message.to_vec().map_err(|_| "a message does not encode")?;
    sender
        .blocking_send(Bytes::from(wire))
        .map_err(|_| "the client went away")
}

/// The answer carrying `rcode` alone; a refusal says so (RFC 8914: Prohibited).
fn error_response(wire: &[u8], rcode: ResponseCode) -> Bytes {
    let size = sextant_wire::consts::CLASSIC_UDP_SIZE;
    let ede = (rcode == ResponseCode::Refused).then_some(sextant_wire::ExtendedError::prohibited(
        "zone transfer not allowed",
    ));
    let rcode = sextant_wire::Rcode::new(u16::from(rcode));
    Bytes::from(sextant_wire::rcode_answer(wire, rcode, ede, size).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use hickory_proto::op::Query as Question;
    use hickory_proto::rr::Name;

    use super::*;

    fn catalog(hosts: usize) -> Arc<Catalog> {
        let mut text = String::from("$TTL 300\n@ SOA ns h 5 1 1 1 60\n@ NS ns\nns A 192.0.2.53\n");
        for i in 0..hosts {
            text.push_str(&format!("h{i} A 10.0.{}.{}\n", i / 256, i % 256));
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
        Arc::new(Catalog::new([Arc::new(zone)]))
    }

    fn request(key: Option<&sextant_tsig::Key>) -> Bytes {
        let mut message = Message::query();
        message.add_query(Question::query(
            Name::from_ascii("example.com.").unwrap(),
            RecordType::AXFR,
        ));
        if let Some(key) = key {
            key.sign_query(&mut message).unwrap();
        }
        Bytes::from(message.to_vec().unwrap())
    }

    async fn ask(policy: &TransferPolicy, wire: Bytes, transport: Transport) -> Vec<Message> {
        let query = Query {
            wire,
            client: "127.0.0.1:5353".parse().unwrap(),
            transport,
            max_response_size: u16::MAX,
            traceparent: None,
        };
        let mut receiver = transfer(catalog(2000), policy, query);
        let mut messages = Vec::new();
        while let Some(bytes) = receiver.recv().await {
            messages.push(Message::from_vec(&bytes).unwrap());
        }
        messages
    }

    fn loopback() -> Vec<ipnet::IpNet> {
        vec!["127.0.0.0/8".parse().unwrap()]
    }

    #[tokio::test]
    async fn axfr_streams_soa_records_soa_over_several_messages() {
        let policy = TransferPolicy {
            allow: loopback(),
            key: None,
            journal: None,
        };
        let messages = ask(&policy, request(None), Transport::Tcp).await;
        assert!(messages.len() > 1, "{} messages", messages.len());
        let records: Vec<&Record> = messages.iter().flat_map(|m| &m.answers).collect();
        assert_eq!(records.len(), 2000 + 2 + 2);
        assert_eq!(records[0].record_type(), RecordType::SOA);
        assert_eq!(records[records.len() - 1].record_type(), RecordType::SOA);
    }

    #[tokio::test]
    async fn refused_over_udp_to_strangers_and_without_the_key() {
        let rcode = |messages: Vec<Message>| messages[0].metadata.response_code;
        let nobody = TransferPolicy::default();
        assert_eq!(
            rcode(ask(&nobody, request(None), Transport::Tcp).await),
            ResponseCode::Refused
        );
        let open = TransferPolicy {
            allow: loopback(),
            key: None,
            journal: None,
        };
        assert_eq!(
            rcode(ask(&open, request(None), Transport::Udp).await),
            ResponseCode::Refused
        );
        let key = sextant_tsig::Key::new(
            &Name::from_ascii("k.").unwrap(),
            "hmac-sha256",
            b"0123456789abcdef0123456789abcdef".to_vec(),
        )
        .unwrap();
        let keyed = TransferPolicy {
            allow: loopback(),
            key: Some(key.clone()),
            journal: None,
        };
        assert_eq!(
            rcode(ask(&keyed, request(None), Transport::Tcp).await),
            ResponseCode::NotAuth
        );
        let messages = ask(&keyed, request(Some(&key)), Transport::Tcp).await;
        assert_eq!(messages[0].metadata.response_code, ResponseCode::NoError);
        assert!(
            messages.iter().all(|m| m.signature().is_some()),
            "every message signed"
        );
    }
}
