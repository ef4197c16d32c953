//! Reading a query's header, question and EDNS OPT record from untrusted bytes, once:
//! the [`QueryView`] is what every later step (routing, the packet cache, the
//! backends' checks and lookups) reads instead of the bytes.

use crate::Rcode;
use crate::consts::*;
use crate::edns::{OPTION_PADDING, OPTION_TCP_KEEPALIVE};
use crate::header::{HEADER_LEN, Header, opcode, parse_header};
use crate::name::{MAX_NAME_LEN, skip_name, wire_name_to_text};

/// The EDNS(0) OPT record of a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// The requestor's UDP payload size, as sent (may be below 512).
    pub payload_size: u16,
    /// The EDNS version (only 0 is answered; others get BADVERS).
    pub version: u8,
    /// DO: the client wants DNSSEC records (RFC 3225).
    pub dnssec_ok: bool,
    /// The query carries an edns-tcp-keepalive option (RFC 7828).
    pub tcp_keepalive: bool,
    /// The query is padded (RFC 7830): over an encrypted transport its answer is
    /// padded too.
    pub padding: bool,
    /// Where the OPT record's options are in the packet (start, end).
    options: (u16, u16),
}

impl Edns {
    /// The OPT record's options as sent (code, length, data, ...).
    pub fn options<'p>(&self, packet: &'p [u8]) -> &'p [u8] {
        packet
            .get(usize::from(self.options.0)..usize::from(self.options.1))
            .unwrap_or_default()
    }
}

/// The question, with the name kept lower-cased in wire form for lookups and cache
/// keys (the original case stays in the packet).
#[derive(Clone, Copy)]
pub struct Question {
    name: [u8; MAX_NAME_LEN],
    name_len: u8,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
}

impl std::fmt::Debug for Question {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} type {} class {}",
            self.name_text(),
            self.qtype,
            self.qclass
        )
    }
}

impl Question {
    /// The lower-cased name in wire form (length-prefixed labels, ending with 0).
    pub fn name_wire(&self) -> &[u8] {
        &self.name[..usize::from(self.name_len)]
    }

    /// Each suffix of the name that starts at a label, longest first, ending with the
    /// root: `www.example.com.`, `example.com.`, `com.`, `.`.
    pub fn suffixes(&self) -> impl Iterator<Item = &[u8]> {
        let wire = self.name_wire();
        let mut offset = Some(0usize);
        std::iter::from_fn(move || {
            let start = offset?;
            let suffix = wire.get(start..)?;
            let label_len = usize::from(*suffix.first()?);
            offset = if label_len == 0 {
                None
            } else {
                Some(start + 1 + label_len)
            };
            Some(suffix)
        })
    }

    /// The name in presentation form, for logs.
    pub fn name_text(&self) -> String {
        wire_name_to_text(self.name_wire())
    }
}

/// A query that has a readable header but is otherwise malformed: answer FORMERR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed {
    /// The header, for the FORMERR's ID and flags.
    pub header: Header,
    /// What is wrong, for logs and metrics.
    pub reason: &'static str,
}

/// Why a message is not a readable query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadQuery {
    /// No header, or a response: send nothing back.
    Silent,
    /// A header but a malformed rest: answer FORMERR.
    Malformed(Malformed),
}

/// A query read once: its header, question, OPT record and TSIG position.
#[derive(Clone, Copy, Debug)]
pub struct QueryView {
    /// The header as sent.
    pub header: Header,
    /// The question, its name lower-cased.
    pub question: Question,
    /// Offset just past the question: the question's bytes are `[12..question_end]`.
    pub question_end: usize,
    /// The OPT record, when the query has one.
    pub edns: Option<Edns>,
    /// Where the TSIG record starts, when the query is signed (it is the last record;
    /// the backend must see the message untouched to check it).
    pub tsig_at: Option<usize>,
}

impl QueryView {
    /// Whether the query carries a TSIG record.
    pub fn is_signed(&self) -> bool {
        self.tsig_at.is_some()
    }

    /// The question name as the client wrote it (uncompressed, original case).
    pub fn qname<'p>(&self, packet: &'p [u8]) -> &'p [u8] {
        packet
            .get(HEADER_LEN..self.question_end.saturating_sub(4))
            .unwrap_or(&[0])
    }

    /// Whether the client set DO (wants DNSSEC records).
    pub fn dnssec_ok(&self) -> bool {
        self.edns.is_some_and(|edns| edns.dnssec_ok)
    }
}

/// Most records we walk past in a query before calling it malformed. A real query has
/// at most an OPT and a TSIG (plus a SOA in an IXFR request): the bound keeps the work
/// per packet small whatever the counts claim.
const MAX_RECORDS_SKIPPED: usize = 8;

/// Reads header, question and OPT of a query.
pub fn parse_query(packet: &[u8]) -> Result<QueryView, BadQuery> {
    let header = parse_header(packet).ok_or(BadQuery::Silent)?;
    if header.is_response() {
        return Err(BadQuery::Silent);
    }
    let malformed = |reason| BadQuery::Malformed(Malformed { header, reason });
    if header.qdcount != 1 {
        return Err(malformed("the question count is not 1"));
    }
    let mut name = [0u8; MAX_NAME_LEN];
    let (name_len, mut at) =
        read_question_name(packet, HEADER_LEN, &mut name).map_err(malformed)?;
    let qtype = read_u16(packet, at).ok_or_else(|| malformed("the question is cut short"))?;
    let qclass = read_u16(packet, at + 2).ok_or_else(|| malformed("the question is cut short"))?;
    at += 4;
    let question_end = at;

    let others = usize::from(header.ancount) + usize::from(header.nscount);
    let total = others + usize::from(header.arcount);
    if total > MAX_RECORDS_SKIPPED {
        return Err(malformed("too many records for a query"));
    }
    let mut edns = None;
    let mut tsig_at = None;
    for index in 0..total {
        if tsig_at.is_some() {
            return Err(malformed("a record follows the TSIG record"));
        }
        let record_start = at;
        let record = read_record(packet, at).ok_or_else(|| malformed("a record is cut short"))?;
        at = record.end;
        if index < others {
            if record.rtype == TYPE_OPT || record.rtype == TYPE_TSIG {
                return Err(malformed("OPT or TSIG outside the additional section"));
            }
            continue;
        }
        match record.rtype {
            TYPE_OPT => {
                if edns.is_some() {
                    return Err(malformed("more than one OPT record"));
                }
                if !record.owner_is_root {
                    return Err(malformed("the OPT record's owner is not the root"));
                }
                let options = packet.get(record.rdata..record.end).unwrap_or_default();
                // A query is at most 65535 bytes, so its offsets fit.
                let span = |at: usize| u16::try_from(at).unwrap_or(u16::MAX);
                edns = Some(Edns {
                    payload_size: record.class,
                    version: ((record.ttl >> 16) & 0xff) as u8,
                    dnssec_ok: record.ttl & 0x8000 != 0,
                    tcp_keepalive: has_option(options, OPTION_TCP_KEEPALIVE),
                    padding: has_option(options, OPTION_PADDING),
                    options: (span(record.rdata), span(record.end)),
                });
            }
            TYPE_TSIG => tsig_at = Some(record_start),
            _ => {}
        }
    }
    if at != packet.len() {
        return Err(malformed("bytes after the last record"));
    }
    Ok(QueryView {
        header,
        question: Question {
            name,
            name_len,
            qtype,
            qclass,
        },
        question_end,
        edns,
        tsig_at,
    })
}

/// Why a backend gives a query no normal answer.
#[derive(Clone, Debug)]
pub enum Refusal {
    /// Not a query at all: no answer.
    Silent,
    /// Answer with this RCODE alone.
    Answer {
        /// The query's header (ID and flags to echo).
        header: Header,
        /// The view, when the question could be read (it is then echoed).
        /// Boxed: a view is 300 bytes, and this path is the rare one.
        view: Option<Box<QueryView>>,
        /// The RCODE to answer with.
        rcode: Rcode,
        /// Why, for the client (RFC 8914).
        ede: Option<crate::ExtendedError>,
    },
}

impl Refusal {
    /// The answer to the query this refusal is about, into `out`; nothing for
    /// [`Refusal::Silent`]. `payload_size` is the EDNS size we advertise.
    pub fn write(&self, query: &[u8], payload_size: u16, out: &mut Vec<u8>) {
        out.clear();
        if let Refusal::Answer {
            header,
            view,
            rcode,
            ede,
        } = self
        {
            crate::local::write_error_response(
                out,
                query,
                header,
                view.as_deref(),
                *rcode,
                *ede,
                payload_size,
            );
        }
    }
}

/// The checks every backend makes before answering a query: readable, a QUERY, EDNS
/// version 0, class IN, and not a zone transfer (those arrive on their own stream).
pub fn check_query(wire: &[u8]) -> Result<QueryView, Refusal> {
    let view = match parse_query(wire) {
        Ok(view) => view,
        Err(BadQuery::Silent) => return Err(Refusal::Silent),
        Err(BadQuery::Malformed(malformed)) => {
            return Err(Refusal::Answer {
                header: malformed.header,
                view: None,
                rcode: Rcode::FORMERR,
                ede: None,
            });
        }
    };
    let (rcode, ede) = if view.header.opcode() != opcode::QUERY {
        (Rcode::NOTIMP, None)
    } else if view.edns.is_some_and(|e| e.version > 0) {
        (Rcode::BADVERS, None)
    } else if view.question.qclass != CLASS_IN {
        (
            Rcode::REFUSED,
            Some(crate::ExtendedError::not_authoritative("class not served")),
        )
    } else if matches!(view.question.qtype, TYPE_AXFR | TYPE_IXFR) {
        (
            Rcode::REFUSED,
            Some(crate::ExtendedError::prohibited(
                "zone transfers over TCP only",
            )),
        )
    } else {
        return Ok(view);
    };
    Err(Refusal::Answer {
        header: view.header,
        view: Some(Box::new(view)),
        rcode,
        ede,
    })
}

fn read_u16(packet: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]))
}

fn read_u32(packet: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *packet.get(at)?,
        *packet.get(at + 1)?,
        *packet.get(at + 2)?,
        *packet.get(at + 3)?,
    ]))
}

/// Reads the uncompressed question name into `out`, lower-cased. The question is the
/// first name in the message, so a compression pointer there can only point into the
/// header: that is malformed.
fn read_question_name(
    packet: &[u8],
    mut at: usize,
    out: &mut [u8; MAX_NAME_LEN],
) -> Result<(u8, usize), &'static str> {
    let mut len = 0usize;
    loop {
        let label_len = *packet.get(at).ok_or("the question name is cut short")?;
        if label_len & 0xc0 != 0 {
            return Err("the question name is compressed or uses an unknown label type");
        }
        let label_len = usize::from(label_len);
        if len + 1 + label_len > out.len() {
            return Err("the question name is longer than 255 bytes");
        }
        let label = packet
            .get(at + 1..at + 1 + label_len)
            .ok_or("the question name is cut short")?;
        out[len] = label_len as u8;
        for (dst, src) in out[len + 1..len + 1 + label_len].iter_mut().zip(label) {
            *dst = src.to_ascii_lowercase();
        }
        len += 1 + label_len;
        at += 1 + label_len;
        if label_len == 0 {
            return Ok((len as u8, at));
        }
    }
}

struct RecordSpan {
    rtype: u16,
    class: u16,
    ttl: u32,
    owner_is_root: bool,
    /// Where the record's data starts.
    rdata: usize,
    end: usize,
}

/// Whether the OPT data `options` holds option `code`; a cut-short list counts only
/// the options before the cut.
pub(crate) fn has_option(mut options: &[u8], code: u16) -> bool {
    while options.len() >= 4 {
        let this = u16::from_be_bytes([options[0], options[1]]);
        let len = usize::from(u16::from_be_bytes([options[2], options[3]]));
        if this == code {
            return true;
        }
        options = options.get(4 + len..).unwrap_or_default();
    }
    false
}

/// Walks over one resource record without decoding its data.
fn read_record(packet: &[u8], at: usize) -> Option<RecordSpan> {
    let owner_is_root = *packet.get(at)? == 0;
    let at = skip_name(packet, at)?;
    let rtype = read_u16(packet, at)?;
    let class = read_u16(packet, at + 2)?;
    let ttl = read_u32(packet, at + 4)?;
    let rdlength = usize::from(read_u16(packet, at + 8)?);
    let end = at + 10 + rdlength;
    if end > packet.len() {
        return None;
    }
    Some(RecordSpan {
        rtype,
        class,
        ttl,
        owner_is_root,
        rdata: at + 10,
        end,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use hickory_proto::op::{Edns as HEdns, Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    use proptest::prelude::*;

    fn query(name: &str, rtype: RecordType, edns: Option<u16>) -> Vec<u8> {
        let mut message = Message::query();
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        if let Some(size) = edns {
            let mut e = HEdns::new();
            e.set_max_payload(size);
            e.set_dnssec_ok(true);
            message.set_edns(e);
        }
        message.to_vec().unwrap()
    }

    #[test]
    fn reads_question_and_edns() {
        let packet = query("WWW.Example.COM.", RecordType::AAAA, Some(1400));
        let view = parse_query(&packet).unwrap();
        assert_eq!(view.question.name_text(), "www.example.com.");
        assert_eq!(view.question.qtype, 28);
        assert_eq!(view.question.qclass, 1);
        let edns = view.edns.unwrap();
        assert_eq!(edns.payload_size, 1400);
        assert!(edns.dnssec_ok);
        assert_eq!(edns.version, 0);
        // The original case stays in the packet.
        assert_eq!(&packet[13..16], b"WWW");
    }

    #[test]
    fn suffixes_walk_label_boundaries() {
        let packet = query("a.b.c.", RecordType::A, None);
        let view = parse_query(&packet).unwrap();
        let texts: Vec<String> = view.question.suffixes().map(wire_name_to_text).collect();
        assert_eq!(texts, ["a.b.c.", "b.c.", "c.", "."]);
    }

    #[test]
    fn short_packets_and_responses_are_dropped() {
        assert!(matches!(parse_query(&[0; 11]), Err(BadQuery::Silent)));
        let mut packet = query("a.", RecordType::A, None);
        packet[2] |= 0x80;
        assert!(matches!(parse_query(&packet), Err(BadQuery::Silent)));
    }

    fn malformed(packet: &[u8]) -> Option<Malformed> {
        match parse_query(packet) {
            Err(BadQuery::Malformed(malformed)) => Some(malformed),
            _ => None,
        }
    }

    #[test]
    fn malformed_queries_keep_their_header() {
        let mut packet = query("a.", RecordType::A, None);
        packet[5] = 2; // QDCOUNT 2
        let err = malformed(&packet).unwrap();
        assert_eq!(err.header.id, u16::from_be_bytes([packet[0], packet[1]]));
        // A compression pointer in the question.
        let mut packet = query("a.", RecordType::A, None);
        packet[12] = 0xc0;
        packet[13] = 0x00;
        assert!(malformed(&packet).is_some());
        // Trailing garbage.
        let mut packet = query("a.", RecordType::A, None);
        packet.push(0);
        assert!(malformed(&packet).is_some());
    }

    #[test]
    fn two_opt_records_are_formerr() {
        let mut packet = query("a.", RecordType::A, Some(1232));
        let opt = packet[packet.len() - 11..].to_vec();
        packet.extend_from_slice(&opt);
        packet[11] = 2;
        assert_eq!(
            malformed(&packet).unwrap().reason,
            "more than one OPT record"
        );
    }

    #[test]
    fn the_view_keeps_the_original_name_options_and_tsig_position() {
        let packet = query("WWW.Example.COM.", RecordType::A, Some(1232));
        let view = parse_query(&packet).unwrap();
        assert_eq!(view.qname(&packet), b"\x03WWW\x07Example\x03COM\x00");
        assert!(view.dnssec_ok());
        assert_eq!(view.edns.unwrap().options(&packet), b"");
        assert!(!view.is_signed());
        let mut signed = packet.clone();
        signed[11] = 2;
        let tsig_at = signed.len();
        signed.extend_from_slice(b"\x01k\x00\x00\xfa\x00\xff\x00\x00\x00\x00\x00\x00");
        assert_eq!(parse_query(&signed).unwrap().tsig_at, Some(tsig_at));
    }

    #[test]
    fn backends_refuse_what_they_do_not_answer() {
        let rcode = |packet: &[u8]| match check_query(packet) {
            Ok(_) => Rcode::NOERROR,
            Err(Refusal::Silent) => Rcode::new(0xfff),
            Err(Refusal::Answer { rcode, .. }) => rcode,
        };
        assert_eq!(rcode(&query("a.", RecordType::A, None)), Rcode::NOERROR);
        assert_eq!(rcode(&query("a.", RecordType::AXFR, None)), Rcode::REFUSED);
        let mut notify = query("a.", RecordType::SOA, None);
        notify[2] |= 4 << 3;
        assert_eq!(rcode(&notify), Rcode::NOTIMP);
        let mut chaos = query("a.", RecordType::TXT, None);
        let class_at = chaos.len() - 1;
        chaos[class_at] = 3;
        assert_eq!(rcode(&chaos), Rcode::REFUSED);
        let mut version1 = query("a.", RecordType::A, Some(1232));
        let version_at = version1.len() - 5;
        version1[version_at] = 1;
        assert_eq!(rcode(&version1), Rcode::BADVERS);
        assert_eq!(rcode(&[1, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]), Rcode::FORMERR);
        assert_eq!(rcode(&[1, 2, 0x80]), Rcode::new(0xfff));
    }

    /// Replays fuzz/corpus/listener_message, where crash reproducers are committed.
    #[test]
    fn fuzz_corpus_replays() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/listener_message");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            if let Ok(view) = parse_query(&bytes) {
                assert!(view.question_end <= bytes.len());
            }
            count += 1;
        }
        assert!(count > 0);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_query(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_queries(flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..8)) {
            let mut packet = query("www.example.com.", RecordType::A, Some(4096));
            for (at, byte) in flips {
                if let Some(slot) = packet.get_mut(at) { *slot = byte; }
            }
            if let Ok(view) = parse_query(&packet) {
                prop_assert!(view.question_end <= packet.len());
            }
        }
    }
}
