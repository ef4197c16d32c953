//! The AXFR receiver (RFC 5936 §2.2): a state machine fed one response message at a
//! time. It checks every message and record and hands the zone's records to a sink;
//! it reports the transfer complete only at the closing SOA equal to the opening one.

use std::net::SocketAddr;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::XfrError;

/// Bounds on one transfer, so a hostile or broken primary cannot exhaust memory or disk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_records: u64,
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_records: 20_000_000,
            max_bytes: 4 << 30,
        }
    }
}

/// Where the receiver is in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// More messages are needed.
    More,
    /// The closing SOA arrived: the transfer is whole.
    Complete { serial: u32 },
}

#[derive(Debug)]
pub(crate) struct AxfrReceiver {
    primary: SocketAddr,
    zone: Name,
    query_id: u16,
    limits: Limits,
    opening: Option<Record>,
    complete: bool,
    apex_ns: bool,
    records: u64,
    bytes: u64,
}

impl AxfrReceiver {
    pub(crate) fn new(primary: SocketAddr, zone: &Name, query_id: u16, limits: Limits) -> Self {
        Self {
            primary,
            zone: zone.to_lowercase(),
            query_id,
            limits,
            opening: None,
            complete: false,
            apex_ns: false,
            records: 0,
            bytes: 0,
        }
    }

    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    fn malformed(&self, reason: impl Into<String>) -> XfrError {
        XfrError::Malformed {
            primary: self.primary,
            reason: reason.into(),
        }
    }

    /// Checks one message of `wire_len` bytes and passes its zone records to `sink`
    /// (the opening SOA included, the closing SOA not).
    pub(crate) fn accept(
        &mut self,
        message: &Message,
        wire_len: usize,
        sink: &mut (dyn FnMut(&Record) -> Result<(), XfrError> + Send),
    ) -> Result<Progress, XfrError> {
        if self.complete {
            return Err(self.malformed("a message arrived after the closing SOA"));
        }
        check_message(
            self.primary,
            &self.zone,
            self.query_id,
            RecordType::AXFR,
            message,
        )?;
        self.bytes += wire_len as u64;
        if self.bytes > self.limits.max_bytes {
            return Err(XfrError::TooLarge {
                primary: self.primary,
                limit: self.limits.max_bytes,
                what: "bytes",
            });
        }
        let last = message.answers.len();
        for (index, record) in message.answers.iter().enumerate() {
            if record.dns_class != DNSClass::IN {
                return Err(self.malformed(format!(
                    "{} has class {}, not IN",
                    record.name, record.dns_class
                )));
            }
            if !self.zone.zone_of(&record.name) {
                return Err(
                    self.malformed(format!("{} is outside zone {}", record.name, self.zone))
                );
            }
            let is_apex = record.name.to_lowercase() == self.zone;
            let Some(opening) = &self.opening else {
                if record.record_type() != RecordType::SOA || !is_apex {
                    return Err(self.malformed("the transfer does not begin with the zone's SOA"));
                }
                self.opening = Some(record.clone());
                self.count(record, sink)?;
                continue;
            };
            if record.record_type() == RecordType::SOA {
                if !is_apex {
                    return Err(
                        self.malformed(format!("SOA record at {}, below the apex", record.name))
                    );
                }
                let (opening_serial, closing_serial) = (serial_of(opening), serial_of(record));
                if record.data != opening.data {
                    return Err(XfrError::SoaMismatch {
                        primary: self.primary,
                        opening: opening_serial,
                        closing: closing_serial,
                    });
                }
                if index + 1 != last {
                    return Err(self.malformed("records follow the closing SOA"));
                }
                if !self.apex_ns {
                    return Err(self.malformed("the zone has no NS records at its apex"));
                }
                self.complete = true;
                return Ok(Progress::Complete {
                    serial: opening_serial,
                });
            }
            if is_apex && record.record_type() == RecordType::NS {
                self.apex_ns = true;
            }
            self.count(record, sink)?;
        }
        Ok(Progress::More)
    }

    fn count(
        &mut self,
        record: &Record,
        sink: &mut (dyn FnMut(&Record) -> Result<(), XfrError> + Send),
    ) -> Result<(), XfrError> {
        self.records += 1;
        if self.records > self.limits.max_records {
            return Err(XfrError::TooLarge {
                primary: self.primary,
                limit: self.limits.max_records,
                what: "records",
            });
        }
        sink(record)
    }
}

/// The checks every message of a transfer response must pass (RFC 5936 §2.2.1 and
/// RFC 1995): our ID, a response to QUERY, NOERROR, no TC, and the question, when
/// repeated, for this zone and transfer type.
pub(crate) fn check_message(
    primary: SocketAddr,
    zone: &Name,
    query_id: u16,
    qtype: RecordType,
    message: &Message,
) -> Result<(), XfrError> {
    let malformed = |reason: String| XfrError::Malformed { primary, reason };
    let meta = &message.metadata;
    if meta.id != query_id {
        return Err(malformed(format!(
            "message ID {} is not the query's {query_id}",
            meta.id
        )));
    }
    if meta.message_type != MessageType::Response || meta.op_code != OpCode::Query {
        return Err(malformed("a message is not a query response".into()));
    }
    if meta.response_code != ResponseCode::NoError {
        return Err(XfrError::Refused {
            primary,
            rcode: meta.response_code.to_string(),
        });
    }
    if meta.truncation {
        return Err(malformed("a message has TC set".into()));
    }
    match message.queries.as_slice() {
        [] => Ok(()),
        [question] if question.query_type() == qtype && question.name().to_lowercase() == *zone => {
            Ok(())
        }
        _ => Err(malformed(format!(
            "the question is not this zone's {qtype}"
        ))),
    }
}

pub(crate) fn serial_of(record: &Record) -> u32 {
    match &record.data {
        RData::SOA(soa) => soa.serial,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::test_records::{name, ns, soa};

    fn a(host: &str) -> Record {
        crate::test_records::a(host, 1)
    }

    fn message(records: Vec<Record>) -> Message {
        crate::test_records::message(7, RecordType::AXFR, records)
    }

    fn run(messages: Vec<Message>) -> (Result<Progress, XfrError>, Vec<String>) {
        let mut receiver = AxfrReceiver::new(
            "127.0.0.1:53".parse().unwrap(),
            &name("example.com."),
            7,
            Limits::default(),
        );
        let mut seen = Vec::new();
        let mut last = Ok(Progress::More);
        for m in messages {
            last = receiver.accept(&m, 100, &mut |r| {
                seen.push(format!("{} {}", r.name, r.record_type()));
                Ok(())
            });
            if last.is_err() {
                break;
            }
        }
        (last, seen)
    }

    #[test]
    fn a_whole_transfer_over_several_messages_completes() {
        let (result, seen) = run(vec![
            message(vec![soa(5), ns()]),
            message(vec![a("www.example.com.")]),
            message(vec![soa(5)]),
        ]);
        assert_eq!(result.unwrap(), Progress::Complete { serial: 5 });
        assert_eq!(
            seen,
            ["example.com. SOA", "example.com. NS", "www.example.com. A"]
        );
    }

    #[test]
    fn an_unfinished_transfer_is_not_complete() {
        let (result, _) = run(vec![message(vec![soa(5), ns(), a("www.example.com.")])]);
        assert_eq!(result.unwrap(), Progress::More);
    }

    #[test]
    fn a_different_closing_soa_fails() {
        let (result, _) = run(vec![message(vec![soa(5), ns(), soa(6)])]);
        assert!(matches!(
            result,
            Err(XfrError::SoaMismatch {
                opening: 5,
                closing: 6,
                ..
            })
        ));
    }

    #[test]
    fn garbage_in_the_stream_fails() {
        let (result, _) = run(vec![message(vec![a("www.example.com."), soa(5)])]);
        assert!(
            result
                .unwrap_err()
                .to_string()
                .contains("does not begin with the zone's SOA")
        );
        let (result, _) = run(vec![message(vec![soa(5), ns(), a("www.example.org.")])]);
        assert!(result.unwrap_err().to_string().contains("outside zone"));
        let (result, _) = run(vec![message(vec![soa(5), a("www.example.com."), soa(5)])]);
        assert!(result.unwrap_err().to_string().contains("no NS records"));
        let (result, _) = run(vec![message(vec![
            soa(5),
            ns(),
            soa(5),
            a("x.example.com."),
        ])]);
        assert!(
            result
                .unwrap_err()
                .to_string()
                .contains("follow the closing SOA")
        );
        let mut wrong_id = message(vec![soa(5)]);
        wrong_id.metadata.id = 8;
        let (result, _) = run(vec![wrong_id]);
        assert!(result.unwrap_err().to_string().contains("not the query's"));
        let mut refused = message(vec![]);
        refused.metadata.response_code = ResponseCode::NotAuth;
        let (result, _) = run(vec![refused]);
        assert!(matches!(result, Err(XfrError::Refused { .. })));
    }

    /// Replays fuzz/corpus/axfr_stream (length-prefixed messages after an ID byte),
    /// where crash reproducers are committed.
    #[test]
    fn fuzz_corpus_replays() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/axfr_stream");
        let mut complete = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            if crate::fuzzing::axfr_stream(&data) {
                complete += 1;
            }
        }
        assert!(complete >= 1, "the valid seed must complete");
    }

    #[test]
    fn limits_stop_a_runaway_primary() {
        let mut receiver = AxfrReceiver::new(
            "127.0.0.1:53".parse().unwrap(),
            &name("example.com."),
            7,
            Limits {
                max_records: 2,
                max_bytes: 1 << 20,
            },
        );
        let result = receiver.accept(
            &message(vec![soa(1), ns(), a("a.example.com.")]),
            100,
            &mut |_| Ok(()),
        );
        assert!(matches!(
            result,
            Err(XfrError::TooLarge {
                what: "records",
                ..
            })
        ));
    }
}
