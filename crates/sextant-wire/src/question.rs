//! Reading a query's header, question and EDNS OPT record from untrusted bytes.

use crate::consts::*;

/// The fixed 12-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    /// Bytes 2 and 3: QR, opcode, AA, TC, RD, RA, Z, AD, CD, RCODE.
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0x0f) as u8
    }
    pub fn recursion_desired(&self) -> bool {
        self.flags & 0x0100 != 0
    }
    pub fn checking_disabled(&self) -> bool {
        self.flags & 0x0010 != 0
    }
}

/// The EDNS(0) OPT record of a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// The requestor's UDP payload size, as sent (may be below 512).
    pub payload_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    /// The query carries an edns-tcp-keepalive option (RFC 7828).
    pub tcp_keepalive: bool,
}

/// The question, with the name kept lower-cased in wire form for lookups and cache
/// keys (the original case stays in the packet).
#[derive(Clone, Copy)]
pub struct Question {
    name: [u8; 255],
    name_len: u8,
    pub qtype: u16,
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
    pub header: Header,
    pub reason: &'static str,
}

/// The parts of a query the listener needs.
#[derive(Clone, Copy, Debug)]
pub struct QueryView {
    pub header: Header,
    pub question: Question,
    /// Offset just past the question: the question's bytes are `[12..question_end]`.
    pub question_end: usize,
    pub edns: Option<Edns>,
    /// A TSIG record is present (the backend must see the message untouched).
    pub signed: bool,
}

/// Reads the header, or `None` when the packet is too short to have one (silence).
pub fn parse_header(packet: &[u8]) -> Option<Header> {
    let word = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*packet.get(i)?, *packet.get(i + 1)?]))
    };
    Some(Header {
        id: word(0)?,
        flags: word(2)?,
        qdcount: word(4)?,
        ancount: word(6)?,
        nscount: word(8)?,
        arcount: word(10)?,
    })
}

/// Most records we walk past in a query before calling it malformed. A real query has
/// at most an OPT and a TSIG (plus a SOA in an IXFR request): the bound keeps the work
/// per packet small whatever the counts claim.
const MAX_RECORDS_SKIPPED: usize = 8;

/// Reads header, question and OPT of a query. Returns `Err(None)` when the packet must
/// be dropped silently (no header, or it is a response), `Err(Some(_))` for FORMERR.
pub fn parse_query(packet: &[u8]) -> Result<QueryView, Option<Malformed>> {
    let header = parse_header(packet).ok_or(None)?;
    if header.is_response() {
        return Err(None);
    }
    let malformed = |reason| Some(Malformed { header, reason });
    if header.qdcount != 1 {
        return Err(malformed("the question count is not 1"));
    }
    let mut name = [0u8; 255];
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
    let mut signed = false;
    for index in 0..total {
        if signed {
            return Err(malformed("a record follows the TSIG record"));
        }
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
                edns = Some(Edns {
                    payload_size: record.class,
                    version: ((record.ttl >> 16) & 0xff) as u8,
                    dnssec_ok: record.ttl & 0x8000 != 0,
                    tcp_keepalive: has_option(options, OPTION_TCP_KEEPALIVE),
                });
            }
            TYPE_TSIG => signed = true,
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
        signed,
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
    out: &mut [u8; 255],
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

/// edns-tcp-keepalive (RFC 7828).
pub(crate) const OPTION_TCP_KEEPALIVE: u16 = 11;

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

/// Skips a possibly compressed name in place; a pointer ends it, so no loop can form.
pub(crate) fn skip_name(packet: &[u8], mut at: usize) -> Option<usize> {
    // 128 labels of one byte each fill 255 bytes: more means garbage.
    for _ in 0..128 {
        let label_len = *packet.get(at)?;
        match label_len & 0xc0 {
            0x00 if label_len == 0 => return Some(at + 1),
            0x00 => at += 1 + usize::from(label_len),
            0xc0 => {
                packet.get(at + 1)?;
                return Some(at + 2);
            }
            _ => return None,
        }
    }
    None
}

/// Wire form (lower-cased) of a name in presentation form such as `example.com.`,
/// with `\\X` and `\\DDD` escapes; `None` if it is not a valid name.
pub fn wire_name_from_text(text: &str) -> Option<Vec<u8>> {
    let mut wire = Vec::with_capacity(text.len() + 2);
    let bytes = text.as_bytes();
    if text == "." {
        return Some(vec![0]);
    }
    let mut label = Vec::with_capacity(63);
    let mut at = 0;
    let finish = |label: &mut Vec<u8>, wire: &mut Vec<u8>| -> Option<()> {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        wire.push(label.len() as u8);
        wire.extend(label.iter().map(u8::to_ascii_lowercase));
        label.clear();
        Some(())
    };
    while at < bytes.len() {
        match bytes[at] {
            b'.' => {
                finish(&mut label, &mut wire)?;
                at += 1;
            }
            b'\\' => {
                let digits = bytes
                    .get(at + 1..at + 4)
                    .filter(|d| d.iter().all(u8::is_ascii_digit));
                if let Some(digits) = digits {
                    let value = digits
                        .iter()
                        .fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
                    label.push(u8::try_from(value).ok()?);
                    at += 4;
                } else {
                    label.push(*bytes.get(at + 1)?);
                    at += 2;
                }
            }
            byte => {
                label.push(byte);
                at += 1;
            }
        }
    }
    if !label.is_empty() {
        finish(&mut label, &mut wire)?;
    }
    wire.push(0);
    (wire.len() <= 255).then_some(wire)
}

/// Presentation form of a wire name, escaping what needs it.
pub(crate) fn wire_name_to_text(wire: &[u8]) -> String {
    let mut text = String::new();
    let mut at = 0;
    while let Some(&len) = wire.get(at) {
        if len == 0 {
            break;
        }
        let label = wire.get(at + 1..at + 1 + usize::from(len)).unwrap_or(&[]);
        for &byte in label {
            match byte {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    text.push('\\');
                    text.push(char::from(byte));
                }
                0x21..=0x7e => text.push(char::from(byte)),
                _ => text.push_str(&format!("\\{byte:03}")),
            }
        }
        text.push('.');
        at += 1 + usize::from(len);
    }
    if text.is_empty() {
        text.push('.');
    }
    text
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
        assert!(matches!(parse_query(&[0; 11]), Err(None)));
        let mut packet = query("a.", RecordType::A, None);
        packet[2] |= 0x80;
        assert!(matches!(parse_query(&packet), Err(None)));
    }

    #[test]
    fn malformed_queries_keep_their_header() {
        let mut packet = query("a.", RecordType::A, None);
        packet[5] = 2; // QDCOUNT 2
        let err = parse_query(&packet).unwrap_err().unwrap();
        assert_eq!(err.header.id, u16::from_be_bytes([packet[0], packet[1]]));
        // A compression pointer in the question.
        let mut packet = query("a.", RecordType::A, None);
        packet[12] = 0xc0;
        packet[13] = 0x00;
        assert!(parse_query(&packet).unwrap_err().is_some());
        // Trailing garbage.
        let mut packet = query("a.", RecordType::A, None);
        packet.push(0);
        assert!(parse_query(&packet).unwrap_err().is_some());
    }

    #[test]
    fn two_opt_records_are_formerr() {
        let mut packet = query("a.", RecordType::A, Some(1232));
        let opt = packet[packet.len() - 11..].to_vec();
        packet.extend_from_slice(&opt);
        packet[11] = 2;
        assert_eq!(
            parse_query(&packet).unwrap_err().unwrap().reason,
            "more than one OPT record"
        );
    }

    #[test]
    fn text_names_round_trip_to_wire() {
        assert_eq!(
            wire_name_from_text("Example.COM.").unwrap(),
            b"\x07example\x03com\x00"
        );
        assert_eq!(wire_name_from_text(".").unwrap(), [0]);
        assert_eq!(wire_name_from_text("a\\.b.").unwrap(), b"\x03a.b\x00");
        assert_eq!(wire_name_from_text("a\\046b").unwrap(), b"\x03a.b\x00");
        assert!(wire_name_from_text("a..b.").is_none());
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
