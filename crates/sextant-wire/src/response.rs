//! Responses the listener writes itself (FORMERR, REFUSED, SERVFAIL, NOTIMP,
//! BADVERS): header, the question copied byte for byte (so its case is echoed) and an
//! OPT record when the query had one.

use crate::consts::*;
use crate::{Header, QueryView};

/// Builds an error response into a new buffer. See [`write_error_response`].
pub fn error_response(
    packet: &[u8],
    header: &Header,
    view: Option<&QueryView>,
    rcode: u16,
    our_payload_size: u16,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_error_response(&mut out, packet, header, view, rcode, our_payload_size);
    out
}

/// Writes an error response to `packet` into `out` (cleared first).
///
/// `view` is `None` when the question could not be read: the response then has no
/// question and no OPT (RFC 6891 §7: a FORMERR for an unparseable query carries no
/// OPT). An extended `rcode` (> 15) needs EDNS; without an OPT in the query it falls
/// back to FORMERR.
pub fn write_error_response(
    out: &mut Vec<u8>,
    packet: &[u8],
    header: &Header,
    view: Option<&QueryView>,
    rcode: u16,
    our_payload_size: u16,
) {
    out.clear();
    let edns = view.and_then(|v| v.edns);
    let rcode = if rcode > 15 && edns.is_none() {
        u16::from(RCODE_FORMERR)
    } else {
        rcode
    };
    // QR=1, opcode copied, RD and CD copied, everything else clear.
    let flags = 0x8000
        | (header.flags & 0x7800)
        | (header.flags & 0x0100)
        | (header.flags & 0x0010)
        | (rcode & 0x0f);
    out.extend_from_slice(&header.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    let question = view.and_then(|v| packet.get(HEADER_LEN..v.question_end));
    out.extend_from_slice(&u16::from(question.is_some()).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes()); // ANCOUNT
    out.extend_from_slice(&0u16.to_be_bytes()); // NSCOUNT
    out.extend_from_slice(&u16::from(edns.is_some()).to_be_bytes());
    if let Some(question) = question {
        out.extend_from_slice(question);
    }
    if edns.is_some() {
        out.push(0); // root owner
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&our_payload_size.max(CLASSIC_UDP_SIZE).to_be_bytes());
        let extended_rcode = ((rcode >> 4) & 0xff) as u8;
        out.extend_from_slice(&[extended_rcode, 0, 0, 0]); // version 0, DO clear
        out.extend_from_slice(&0u16.to_be_bytes()); // no options
    }
}

/// Writes the answer to a CH TXT query (`version.bind` and the like) into `out`: the
/// question copied, one TXT record with `text` (at most 255 bytes are sent), an OPT
/// when the query had one. The owner name points at the question (no allocation).
pub fn write_chaos_txt(
    out: &mut Vec<u8>,
    packet: &[u8],
    view: &QueryView,
    text: &str,
    our_payload_size: u16,
) {
    out.clear();
    let header = &view.header;
    let flags = 0x8000 | (header.flags & 0x7800) | (header.flags & 0x0100) | 0x0400; // QR, AA
    out.extend_from_slice(&header.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    out.extend_from_slice(&1u16.to_be_bytes()); // ANCOUNT
    out.extend_from_slice(&0u16.to_be_bytes()); // NSCOUNT
    out.extend_from_slice(&u16::from(view.edns.is_some()).to_be_bytes());
    out.extend_from_slice(
        packet
            .get(HEADER_LEN..view.question_end)
            .unwrap_or_default(),
    );
    let text = &text.as_bytes()[..text.len().min(255)];
    out.extend_from_slice(&[0xc0, HEADER_LEN as u8]); // owner: the question name
    out.extend_from_slice(&16u16.to_be_bytes()); // TXT
    out.extend_from_slice(&3u16.to_be_bytes()); // CH
    out.extend_from_slice(&0u32.to_be_bytes()); // TTL
    out.extend_from_slice(&(text.len() as u16 + 1).to_be_bytes());
    out.push(text.len() as u8);
    out.extend_from_slice(text);
    if view.edns.is_some() {
        out.push(0);
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&our_payload_size.max(CLASSIC_UDP_SIZE).to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
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
            u16::from(RCODE_REFUSED),
            1232,
        );
        let response = Message::from_vec(&wire).unwrap();
        assert_eq!(response.metadata.id, message.metadata.id);
        assert_eq!(response.metadata.response_code, ResponseCode::Refused);
        assert!(response.metadata.recursion_desired);
        assert_eq!(response.queries[0].name().to_string(), "WwW.Example.org.");
        assert_eq!(response.edns.as_ref().unwrap().max_payload(), 1232);
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
        let wire = error_response(&packet, &view.header, Some(&view), RCODE_BADVERS, 1232);
        let response = Message::from_vec(&wire).unwrap();
        // BADVERS and BADSIG share the value 16; hickory names it BADSIG.
        assert_eq!(u16::from(response.metadata.response_code), RCODE_BADVERS);
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
        let wire = error_response(&packet, &header, None, u16::from(RCODE_FORMERR), 1232);
        assert_eq!(wire, [0x12, 0x34, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
