//! NOTIFY (RFC 1996), routed here by the listener: answer it, and wake the zone's
//! refresh task when it comes from an allowed address for a zone we are secondary for.

use sextant_rpc::{Answer, Query, QueryHandler};
use sextant_wire::{BadQuery, QueryView, Rcode, ResponseWriter, flags, opcode, parse_query};

use crate::zones::Zones;

/// The SOA type: a NOTIFY's question asks about the zone's SOA (RFC 1996 §3.7).
const TYPE_SOA: u16 = 6;

impl QueryHandler for Zones {
    fn handle(&self, query: Query) -> impl Future<Output = Answer> + Send {
        std::future::ready(self.answer_notify(&query))
    }

    fn transfer(&self, query: Query) -> tokio::sync::mpsc::Receiver<bytes::Bytes> {
        // The transfer daemon serves no zones out.
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        let size = sextant_wire::consts::CLASSIC_UDP_SIZE;
        if let Some(refusal) = sextant_wire::rcode_answer(&query.wire, Rcode::REFUSED, None, size) {
            let _ = sender.try_send(bytes::Bytes::from(refusal));
        }
        receiver
    }
}

impl Zones {
    fn answer_notify(&self, query: &Query) -> Answer {
        let size = sextant_wire::consts::CLASSIC_UDP_SIZE;
        let view = match parse_query(&query.wire) {
            Ok(view) => view,
            Err(BadQuery::Silent) => return Answer::Silent,
            Err(BadQuery::Malformed(_)) => {
                return sextant_wire::rcode_answer(&query.wire, Rcode::FORMERR, None, size)
                    .map_or(Answer::Silent, Answer::once);
            }
        };
        let rcode = self.judge(&view, query);
        let mut out = Vec::with_capacity(64);
        let mut writer = ResponseWriter::new(&mut out, &query.wire, &view, usize::from(size));
        writer.set_rcode(rcode);
        writer.set_flag(flags::AA, rcode == Rcode::NOERROR);
        writer.finish();
        Answer::once(out)
    }

    fn judge(&self, view: &QueryView, query: &Query) -> Rcode {
        if view.header.opcode() != opcode::NOTIFY || view.question.qtype != TYPE_SOA {
            return Rcode::NOTIMP;
        }
        let key = view.question.name_text();
        let Some(zone) = self.zone(&key) else {
            tracing::info!(zone = %key, client = %query.client, "NOTIFY for a zone we are not secondary for");
            return Rcode::NOTAUTH;
        };
        if !zone.allow_notify.contains(&query.client.ip()) {
            tracing::info!(zone = %key, client = %query.client, "NOTIFY from an address not allowed to send it; refused");
            return Rcode::REFUSED;
        }
        // A full channel means a check is already pending: one check covers both.
        let _ = zone.trigger.try_send(());
        Rcode::NOERROR
    }
}
