//! Records of a small `example.com.` zone for the transfer receivers' unit tests.
#![allow(clippy::unwrap_used)]

use hickory_proto::op::{Message, OpCode, Query};
use hickory_proto::rr::rdata::{A, NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

pub(crate) fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap() // ok: test fixtures only; the module is #[cfg(test)]
}

pub(crate) fn soa(serial: u32) -> Record {
    let soa = SOA::new(
        name("ns.example.com."),
        name("h.example.com."),
        serial,
        1,
        2,
        3,
        4,
    );
    Record::from_rdata(name("example.com."), 300, RData::SOA(soa))
}

pub(crate) fn ns() -> Record {
    Record::from_rdata(
        name("example.com."),
        300,
        RData::NS(NS(name("ns.example.com."))),
    )
}

pub(crate) fn a(host: &str, last: u8) -> Record {
    Record::from_rdata(name(host), 300, RData::A(A::new(192, 0, 2, last)))
}

/// A transfer response with ID `id` for `qtype`, carrying `records`.
pub(crate) fn message(id: u16, qtype: RecordType, records: Vec<Record>) -> Message {
    let mut m = Message::response(id, OpCode::Query);
    m.add_query(Query::query(name("example.com."), qtype));
    m.answers = records;
    m
}
