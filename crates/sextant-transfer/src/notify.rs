//! NOTIFY (RFC 1996), routed here by the listener: answer it, and wake the zone's
//! refresh task when it comes from an allowed address for a zone we are secondary for.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;
use sextant_rpc::{Answer, Query, QueryHandler};

use crate::zones::Zones;

impl QueryHandler for Zones {
    fn handle(&self, query: Query) -> impl Future<Output = Answer> + Send {
        std::future::ready(self.answer_notify(&query))
    }
}

impl Zones {
    fn answer_notify(&self, query: &Query) -> Answer {
        let Ok(request) = Message::from_vec(&query.wire) else {
            return Answer::default();
        };
        let mut response = Message::new(
            request.metadata.id,
            MessageType::Response,
            request.metadata.op_code,
        );
        response.queries = request.queries.clone();
        let rcode = self.judge(&request, query);
        response.metadata.response_code = rcode;
        response.metadata.authoritative = rcode == ResponseCode::NoError;
        Answer {
            wire: response.to_vec().map(Into::into).unwrap_or_default(),
            cache_ttl: 0,
        }
    }

    fn judge(&self, request: &Message, query: &Query) -> ResponseCode {
        if request.metadata.op_code != OpCode::Notify {
            return ResponseCode::NotImp;
        }
        let [question] = request.queries.as_slice() else {
            return ResponseCode::FormErr;
        };
        if question.query_type() != RecordType::SOA {
            return ResponseCode::NotImp;
        }
        let key = question.name().to_lowercase().to_string();
        let Some(zone) = self.zones.get(&key) else {
            tracing::info!(zone = %key, client = %query.client, "NOTIFY for a zone we are not secondary for");
            return ResponseCode::NotAuth;
        };
        if !zone.allow_notify.contains(&query.client.ip()) {
            tracing::info!(zone = %key, client = %query.client, "NOTIFY from an address not allowed to send it; refused");
            return ResponseCode::Refused;
        }
        // A full channel means a check is already pending: one check covers both.
        let _ = zone.trigger.try_send(());
        ResponseCode::NoError
    }
}
