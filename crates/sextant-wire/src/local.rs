//! The answers a server writes without a backend's data: an RCODE alone (FORMERR,
//! REFUSED, SERVFAIL, NOTIMP, BADVERS, NOTAUTH) with the question echoed byte for
//! byte and an OPT record when the query had one, and the CH TXT answers.

use crate::consts::*;
use crate::edns::{EdnsReply, ExtendedError};
use crate::header::{Header, flags};
use crate::writer::{ResponseWriter, Section};
use crate::{BadQuery, QueryView, Rcode, parse_query};

/// Builds an error response into a new buffer. See [`write_error_response`].
pub fn error_response(
    packet: &[u8],
    header: &Header,
    view: Option<&QueryView>,
    rcode: Rcode,
    ede: Option<ExtendedError>,
    our_payload_size: u16,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_error_response(&mut out, packet, header, view, rcode, ede, our_payload_size);
    out
}

/// Writes an error response to `packet` into `out` (cleared first).
///
/// `view` is `None` when the question could not be read: the response then has no
/// question and no OPT (RFC 6891 §7: a FORMERR for an unparseable query carries no
/// OPT). An extended `rcode` (> 15) needs EDNS; without an OPT in the query it falls
/// back to FORMERR. `ede` goes in the OPT record, when the query had one.
pub fn write_error_response(
    out: &mut Vec<u8>,
    packet: &[u8],
    header: &Header,
    view: Option<&QueryView>,
    rcode: Rcode,
    ede: Option<ExtendedError>,
    our_payload_size: u16,
) {
    let mut writer = match view {
        Some(view) => {
            let mut writer = ResponseWriter::new(out, packet, view, usize::from(u16::MAX));
            if view.edns.is_some() {
                let mut edns = EdnsReply::new(our_payload_size, false);
                if let Some(ede) = ede {
                    edns.push_extended_error(ede);
                }
                writer.set_edns(edns);
            }
            writer
        }
        None => ResponseWriter::without_question(out, header, usize::from(u16::MAX)),
    };
    writer.set_rcode(rcode);
    writer.finish();
}

/// The answer to `packet` carrying only `rcode` (and `ede`): FORMERR when the
/// question does not read, `None` when it is not a query at all (no answer is due).
pub fn rcode_answer(
    packet: &[u8],
    rcode: Rcode,
    ede: Option<ExtendedError>,
    our_payload_size: u16,
) -> Option<Vec<u8>> {
    match parse_query(packet) {
        Ok(view) => Some(error_response(
            packet,
            &view.header,
            Some(&view),
            rcode,
            ede,
            our_payload_size,
        )),
        Err(BadQuery::Malformed(malformed)) => Some(error_response(
            packet,
            &malformed.header,
            None,
            Rcode::FORMERR,
            None,
            our_payload_size,
        )),
        Err(BadQuery::Silent) => None,
    }
}

/// Writes the answer to a CH TXT query (`version.bind` and the like) into `out`: the
/// question copied, one TXT record with `text` (at most 255 bytes are sent), an OPT
/// when the query had one. The owner name points at the question.
pub fn write_chaos_txt(
    out: &mut Vec<u8>,
    packet: &[u8],
    view: &QueryView,
    text: &str,
    our_payload_size: u16,
) {
    let mut writer = ResponseWriter::new(out, packet, view, usize::from(u16::MAX));
    writer.set_flag(flags::AA, true);
    if view.edns.is_some() {
        writer.set_edns(EdnsReply::new(our_payload_size, false));
    }
    let text = &text.as_bytes()[..text.len().min(255)];
    let mut rdata = Vec::with_capacity(1 + text.len());
    rdata.push(text.len() as u8);
    rdata.extend_from_slice(text);
    // A 256-byte record always fits in a 64 KiB message.
    let _ = writer.push_record(
        Section::Answer,
        view.qname(packet),
        TYPE_TXT,
        CLASS_CH,
        0,
        &rdata,
    );
    writer.finish();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::parse_query;
    use hickory_proto::op::{Edns, Message, Query, ResponseCode};
    use hickory_proto::rr::{Name, RecordType};

    #[test]
    fn refused_echoes_question_case_and_edns() {
        let mut message = Message::query();
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(
            Name::from_ascii("WwW.Example.org.").unwrap(),
            RecordType::MX,
        ));
        message.set_edns(Edns::new());
        let packet = message.to_vec().unwrap();
        let view = parse_query(&packet).unwrap();
        let wire = error_response(
            &packet,
            &view.header,
            Some(&view),
            Rcode::REFUSED,
            Some(crate::ExtendedError::prohibited("not allowed")),
            1232,
        );
        let response = Message::from_vec(&wire).unwrap();
        assert_eq!(response.metadata.id, message.metadata.id);
        assert_eq!(response.metadata.response_code, ResponseCode::Refused);
        assert!(response.metadata.recursion_desired);
        assert_eq!(response.queries[0].name().to_string(), "WwW.Example.org.");
        assert_eq!(response.edns.as_ref().unwrap().max_payload(), 1232);
        let ede = &wire[wire.len() - 17..];
        assert_eq!(
            ede, b"\x00\x0f\x00\x0d\x00\x12not allowed",
            "EDE 18 in the OPT"
        );
    }

    #[test]
    fn badvers_needs_edns_and_sets_the_extended_bits() {
        let mut message = Message::query();
        message.add_query(Query::query(Name::from_ascii("a.").unwrap(), RecordType::A));
        let mut edns = Edns::new();
        edns.set_version(1);
        message.set_edns(edns);
        let packet = message.to_vec().unwrap();
        let view = parse_query(&packet).unwrap();
        let wire = error_response(
            &packet,
            &view.header,
            Some(&view),
            Rcode::BADVERS,
            None,
            1232,
        );
        let response = Message::from_vec(&wire).unwrap();
        // BADVERS and BADSIG share the value 16; hickory names it BADSIG.
        assert_eq!(
            u16::from(response.metadata.response_code),
            Rcode::BADVERS.code()
        );
    }

    #[test]
    fn chaos_txt_answers_with_the_text() {
        let mut message = Message::query();
        let mut query = Query::query(Name::from_ascii("version.bind.").unwrap(), RecordType::TXT);
        query.set_query_class(hickory_proto::rr::DNSClass::CH);
        message.add_query(query);
        let packet = message.to_vec().unwrap();
        let view = parse_query(&packet).unwrap();
        let mut out = Vec::new();
        write_chaos_txt(&mut out, &packet, &view, "Sextant 0.1.0", 1232);
        let response = Message::from_vec(&out).unwrap();
        assert!(response.metadata.authoritative);
        assert_eq!(response.answers[0].data.to_string(), "Sextant 0.1.0");
    }

    #[test]
    fn formerr_without_question() {
        let packet = [0x12, 0x34, 0x01, 0x00, 0, 2, 0, 0, 0, 0, 0, 0];
        let header = crate::parse_header(&packet).unwrap();
        let wire = error_response(&packet, &header, None, Rcode::FORMERR, None, 1232);
        assert_eq!(wire, [0x12, 0x34, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
