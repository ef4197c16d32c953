//! The checks every backend makes on a query before answering it: readable, a QUERY,
//! EDNS version 0, class IN, not a zone transfer (those arrive on their own stream),
//! and a question hickory-proto can decode.

use hickory_proto::op::Query as Question;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use sextant_wire::consts::*;
use sextant_wire::{Header, QueryView, parse_query};

/// Why a query is not answered normally.
#[derive(Clone, Debug)]
pub enum Rejection {
    /// Not a query at all: no answer.
    Silent,
    /// Answer with this RCODE (the view when the question could be read).
    Rcode {
        header: Header,
        /// Boxed: a view is 300 bytes, and this path is the rare one.
        view: Option<Box<QueryView>>,
        rcode: u16,
    },
}

/// The query's view and decoded question, or why it gets no normal answer.
pub fn checked_question(wire: &[u8]) -> Result<(QueryView, Question), Rejection> {
    let view = match parse_query(wire) {
        Ok(view) => view,
        Err(None) => return Err(Rejection::Silent),
        Err(Some(malformed)) => {
            return Err(Rejection::Rcode {
                header: malformed.header,
                view: None,
                rcode: u16::from(RCODE_FORMERR),
            });
        }
    };
    let reject = |rcode: u16| {
        Err(Rejection::Rcode {
            header: view.header,
            view: Some(Box::new(view)),
            rcode,
        })
    };
    if view.header.opcode() != OPCODE_QUERY {
        return reject(u16::from(RCODE_NOTIMP));
    }
    if view.edns.is_some_and(|e| e.version > 0) {
        return reject(RCODE_BADVERS);
    }
    if view.question.qclass != CLASS_IN || matches!(view.question.qtype, TYPE_AXFR | TYPE_IXFR) {
        return reject(u16::from(RCODE_REFUSED));
    }
    match wire
        .get(HEADER_LEN..view.question_end)
        .and_then(|bytes| Question::read(&mut BinDecoder::new(bytes)).ok())
    {
        Some(question) => Ok((view, question)),
        None => reject(u16::from(RCODE_FORMERR)),
    }
}
