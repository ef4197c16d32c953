//! The response writer: one way to write a DNS response, for every answer a Sextant
//! daemon sends. It copies the question from the query, writes RRsets whose data is
//! already in wire form straight into the packet with name compression, adds whole
//! RRsets or none (so a caller truncates at RRset boundaries and decides when TC is
//! due), keeps room for the OPT record and a signature, and fills in the header last.
//!
//! Names are compressed only against names written earlier in their exact case, so a
//! name always reads back as it was given (the question's spelling for the query
//! name, the zone's for the rest). RDATA names are compressed only for the types of
//! RFC 1035 (RFC 3597 §4 forbids it for the others).

use crate::consts::CLASSIC_UDP_SIZE;
use crate::edns::EdnsReply;
use crate::header::{HEADER_LEN, Header, flags};
use crate::name::{label_starts, name_len};
use crate::{QueryView, Rcode};

/// A message section that holds records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// The answer section.
    Answer,
    /// The authority section.
    Authority,
    /// The additional section.
    Additional,
}

/// An RRset did not fit in the room left; nothing of it was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// What signs a finished message (TSIG): the room its record needs, then the signing.
pub trait Signer {
    /// Bytes the signature record takes at most.
    fn space(&self) -> usize;
    /// Appends the signature record to the finished `message` (and counts it).
    fn sign(&self, message: &mut Vec<u8>) -> Result<(), String>;
}

/// Offsets (below 0x4000, where a pointer can reach) of names written so far.
const MAX_COMPRESSION_TARGETS: usize = 96;
/// Pointers followed while comparing against a name already in the message.
const MAX_POINTER_HOPS: usize = 16;

/// Writes one response into a caller's buffer.
#[derive(Debug)]
pub struct ResponseWriter<'o> {
    out: &'o mut Vec<u8>,
    /// Largest message allowed, bytes.
    limit: usize,
    /// Bytes held back at the end (a signature).
    reserved: usize,
    edns: Option<EdnsReply>,
    rcode: Rcode,
    flags: u16,
    section: Section,
    /// Records in the answer, authority and additional sections.
    counts: [u16; 3],
    /// Where the question ends (the records start).
    records_start: usize,
    targets: [u16; MAX_COMPRESSION_TARGETS],
    target_count: usize,
    /// Targets inside the question: kept when the records are cleared.
    question_targets: usize,
}

impl<'o> ResponseWriter<'o> {
    /// Starts the response to `query` (whose view is `view`): the header with QR, the
    /// opcode, RD and CD copied, and the question copied byte for byte (its case
    /// echoed). `limit` is the largest message the client takes (512 at least).
    pub fn new(out: &'o mut Vec<u8>, query: &[u8], view: &QueryView, limit: usize) -> Self {
        let mut writer = Self::start(out, &view.header, limit);
        let question = query.get(HEADER_LEN..view.question_end).unwrap_or_default();
        writer.out.extend_from_slice(question);
        writer.records_start = writer.out.len();
        if !question.is_empty() {
            for at in label_starts(view.qname(query)) {
                writer.add_target(HEADER_LEN + at);
            }
        }
        writer.question_targets = writer.target_count;
        writer
    }

    /// Starts a response with no question (to a query whose question is unreadable).
    pub fn without_question(out: &'o mut Vec<u8>, header: &Header, limit: usize) -> Self {
        Self::start(out, header, limit)
    }

    fn start(out: &'o mut Vec<u8>, header: &Header, limit: usize) -> Self {
        out.clear();
        out.extend_from_slice(&header.id.to_be_bytes());
        out.extend_from_slice(&[0; HEADER_LEN - 2]);
        let copied = header.flags & (flags::OPCODE_MASK | flags::RD | flags::CD);
        Self {
            out,
            limit: limit.max(usize::from(CLASSIC_UDP_SIZE)),
            reserved: 0,
            edns: None,
            rcode: Rcode::NOERROR,
            flags: flags::QR | copied,
            section: Section::Answer,
            counts: [0; 3],
            records_start: HEADER_LEN,
            targets: [0; MAX_COMPRESSION_TARGETS],
            target_count: 0,
            question_targets: 0,
        }
    }

    /// Sets the RCODE (an extended one needs [`ResponseWriter::set_edns`]; without an
    /// OPT record the response says FORMERR instead).
    pub fn set_rcode(&mut self, rcode: Rcode) {
        self.rcode = rcode;
    }

    /// Sets or clears header flags (see [`flags`]): AA, TC, RA, AD.
    pub fn set_flag(&mut self, flag: u16, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    /// Whether a header flag is set.
    pub fn flag(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    /// Gives the response an OPT record; its room is kept free from now on.
    pub fn set_edns(&mut self, edns: EdnsReply) {
        self.edns = Some(edns);
    }

    /// The OPT record, to add options to before [`ResponseWriter::finish`].
    pub fn edns_mut(&mut self) -> Option<&mut EdnsReply> {
        self.edns.as_mut()
    }

    /// Keeps `bytes` free at the end of the message (for a signature).
    pub fn reserve(&mut self, bytes: usize) {
        self.reserved += bytes;
    }

    /// Bytes still free for records.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.out.len() + self.tail_len())
    }

    fn tail_len(&self) -> usize {
        self.reserved + self.edns.as_ref().map_or(0, EdnsReply::wire_len)
    }

    /// Records written to `section` so far.
    pub fn count(&self, section: Section) -> u16 {
        self.counts[section as usize]
    }

    /// Writes an RRset, all of it or nothing. `owner` is an uncompressed name in the
    /// case it should read; `rdatas` the records' data, names uncompressed. Sections
    /// are written in order: an RRset for a section before the current one is
    /// refused as [`Full`] (a caller bug that must not corrupt the message).
    pub fn push_rrset<'d>(
        &mut self,
        section: Section,
        owner: &[u8],
        rtype: u16,
        class: u16,
        ttl: u32,
        rdatas: impl IntoIterator<Item = &'d [u8]>,
    ) -> Result<(), Full> {
        if section < self.section {
            debug_assert!(false, "{section:?} written after {:?}", self.section);
            return Err(Full);
        }
        self.section = section;
        let mark = self.out.len();
        let targets_mark = self.target_count;
        let mut written = 0u16;
        let fits = rdatas.into_iter().all(|rdata| {
            self.write_record(owner, rtype, class, ttl, rdata);
            written = written.saturating_add(1);
            self.out.len() + self.tail_len() <= self.limit
        });
        let count = &mut self.counts[section as usize];
        match count.checked_add(written) {
            Some(total) if fits => {
                *count = total;
                Ok(())
            }
            _ => {
                self.out.truncate(mark);
                self.target_count = targets_mark;
                Err(Full)
            }
        }
    }

    /// Writes one record (a set of one).
    pub fn push_record(
        &mut self,
        section: Section,
        owner: &[u8],
        rtype: u16,
        class: u16,
        ttl: u32,
        rdata: &[u8],
    ) -> Result<(), Full> {
        self.push_rrset(section, owner, rtype, class, ttl, [rdata])
    }

    /// Removes every record written, keeping the question (for a TC=1 answer that
    /// carries nothing, or to start the sections again).
    pub fn clear_records(&mut self) {
        self.out.truncate(self.records_start);
        self.counts = [0; 3];
        self.section = Section::Answer;
        self.target_count = self.question_targets;
    }

    /// Completes the message: the OPT record, the counts, the flags and RCODE.
    /// Returns the message's length.
    pub fn finish(self) -> usize {
        self.complete().len()
    }

    /// [`ResponseWriter::finish`], then `signer` appends its record; the room for it
    /// must have been kept with [`ResponseWriter::reserve`].
    pub fn finish_signed(self, signer: &dyn Signer) -> Result<usize, String> {
        let out = self.complete();
        signer.sign(out)?;
        Ok(out.len())
    }

    fn complete(self) -> &'o mut Vec<u8> {
        let mut rcode = self.rcode;
        if rcode.is_extended() && self.edns.is_none() {
            rcode = Rcode::FORMERR;
        }
        let mut arcount = self.counts[Section::Additional as usize];
        if let Some(edns) = &self.edns {
            edns.write(self.out, rcode.extended_bits());
            arcount = arcount.saturating_add(1);
        }
        let qdcount = u16::from(self.records_start > HEADER_LEN);
        let flags = self.flags | rcode.header_bits();
        let header = &mut self.out[2..HEADER_LEN];
        header[0..2].copy_from_slice(&flags.to_be_bytes());
        header[2..4].copy_from_slice(&qdcount.to_be_bytes());
        header[4..6].copy_from_slice(&self.counts[0].to_be_bytes());
        header[6..8].copy_from_slice(&self.counts[1].to_be_bytes());
        header[8..10].copy_from_slice(&arcount.to_be_bytes());
        self.out
    }

    fn write_record(&mut self, owner: &[u8], rtype: u16, class: u16, ttl: u32, rdata: &[u8]) {
        self.write_name(owner);
        self.out.extend_from_slice(&rtype.to_be_bytes());
        self.out.extend_from_slice(&class.to_be_bytes());
        self.out.extend_from_slice(&ttl.to_be_bytes());
        let length_at = self.out.len();
        self.out.extend_from_slice(&[0, 0]);
        self.write_rdata(rtype, rdata);
        let length = self.out.len() - length_at - 2;
        // Stored RDATA is at most 65535 bytes; compression only shortens it.
        let length = u16::try_from(length).unwrap_or(u16::MAX);
        self.out[length_at..length_at + 2].copy_from_slice(&length.to_be_bytes());
    }

    /// RDATA with its names compressed where RFC 1035 defines the type; any data
    /// that does not read as its type says is copied as it is.
    fn write_rdata(&mut self, rtype: u16, rdata: &[u8]) {
        let (fixed_before, names, fixed_after) = match rtype {
            // NS, MD, MF, CNAME, MB, MG, MR, PTR: one name.
            2..=5 | 7..=9 | 12 => (0, 1, 0),
            // SOA: MNAME, RNAME, then five 32-bit numbers.
            6 => (0, 2, 20),
            // MINFO: two names.
            14 => (0, 2, 0),
            // MX: preference, exchange.
            15 => (2, 1, 0),
            _ => {
                self.out.extend_from_slice(rdata);
                return;
            }
        };
        let Some(layout) = name_layout(rdata, fixed_before, names, fixed_after) else {
            self.out.extend_from_slice(rdata);
            return;
        };
        self.out.extend_from_slice(&rdata[..fixed_before]);
        let mut at = fixed_before;
        for len in layout.iter().take(names) {
            self.write_name(&rdata[at..at + len]);
            at += len;
        }
        self.out.extend_from_slice(&rdata[at..]);
    }

    /// Writes an uncompressed name, pointing at an earlier copy of its longest suffix
    /// already in the message; its own labels become targets for later names.
    fn write_name(&mut self, name: &[u8]) {
        let found = label_starts(name).find_map(|start| {
            let suffix = &name[start..];
            self.targets[..self.target_count]
                .iter()
                .find(|&&target| self.same_name(usize::from(target), suffix))
                .map(|&target| (start, target))
        });
        let (prefix, pointer) = match found {
            Some((start, target)) => (start, Some(target)),
            None => (name.len(), None),
        };
        let base = self.out.len();
        self.out.extend_from_slice(&name[..prefix]);
        for at in label_starts(&name[..prefix]) {
            self.add_target(base + at);
        }
        if let Some(target) = pointer {
            self.out.extend_from_slice(&(0xc000 | target).to_be_bytes());
        }
    }

    fn add_target(&mut self, offset: usize) {
        if let Ok(offset) = u16::try_from(offset)
            && offset < 0x4000
            && self.target_count < MAX_COMPRESSION_TARGETS
        {
            self.targets[self.target_count] = offset;
            self.target_count += 1;
        }
    }

    /// Whether the name at `at` in the message is exactly `name` (same bytes, same
    /// case), following pointers.
    fn same_name(&self, mut at: usize, name: &[u8]) -> bool {
        let mut rest = name;
        let mut hops = 0;
        loop {
            let Some(&len) = self.out.get(at) else {
                return false;
            };
            if len & 0xc0 == 0xc0 {
                let Some(&low) = self.out.get(at + 1) else {
                    return false;
                };
                hops += 1;
                if hops > MAX_POINTER_HOPS {
                    return false;
                }
                at = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                continue;
            }
            let label_len = 1 + usize::from(len);
            let (Some(ours), Some(theirs)) =
                (self.out.get(at..at + label_len), rest.get(..label_len))
            else {
                return false;
            };
            if ours != theirs {
                return false;
            }
            if len == 0 {
                return true;
            }
            rest = &rest[label_len..];
            at += label_len;
        }
    }
}

/// The lengths of the names in RDATA laid out as `fixed_before` bytes, `names`
/// uncompressed names and exactly `fixed_after` bytes; `None` when it is not.
fn name_layout(
    rdata: &[u8],
    fixed_before: usize,
    names: usize,
    fixed_after: usize,
) -> Option<[usize; 2]> {
    let mut lengths = [0usize; 2];
    let mut at = fixed_before;
    for slot in lengths.iter_mut().take(names) {
        let len = name_len(rdata.get(at..)?)?;
        *slot = len;
        at += len;
    }
    (rdata.len() == at + fixed_after).then_some(lengths)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::parse_query;

    fn query(name: &str, rtype: RecordType, edns: bool) -> Vec<u8> {
        let mut message = Message::query();
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        if edns {
            message.set_edns(Edns::new());
        }
        message.to_vec().unwrap()
    }

    fn wire(text: &str) -> Vec<u8> {
        crate::wire_name_from_text(text).unwrap()
    }

    #[test]
    fn names_compress_against_the_question_and_each_other() {
        let packet = query("Www.Example.com.", RecordType::MX, true);
        let view = parse_query(&packet).unwrap();
        let mut out = Vec::new();
        let mut writer = ResponseWriter::new(&mut out, &packet, &view, 512);
        writer.set_flag(flags::AA, true);
        writer.set_edns(EdnsReply::new(1232, true));
        let qname = view.qname(&packet).to_vec();
        let mut mx = vec![0, 10];
        mx.extend_from_slice(b"\x04mail\x07Example\x03com\x00");
        writer
            .push_rrset(Section::Answer, &qname, 15, 1, 300, [&mx[..]])
            .unwrap();
        let mail = b"\x04mail\x07Example\x03com\x00";
        writer
            .push_record(Section::Additional, mail, 1, 1, 300, &[192, 0, 2, 1])
            .unwrap();
        let len = writer.finish();
        assert_eq!(len, out.len());
        let response = Message::from_vec(&out).unwrap();
        assert!(response.metadata.authoritative);
        assert_eq!(response.answers[0].name.to_string(), "Www.Example.com.");
        assert_eq!(response.answers[0].data.to_string(), "10 mail.Example.com.");
        assert_eq!(
            response.additionals[0].name.to_string(),
            "mail.Example.com."
        );
        assert!(response.edns.unwrap().flags().dnssec_ok);
        // Owner: a pointer to the question; MX exchange: "mail" + a pointer; the
        // additional owner: one pointer to the exchange.
        let records = &out[view.question_end..];
        assert_eq!(&records[..2], &[0xc0, 12]);
        let exchange_at = view.question_end + 2 + 10 + 2;
        assert_eq!(&out[exchange_at..exchange_at + 5], b"\x04mail");
        assert_eq!(&out[exchange_at + 5..exchange_at + 7], &[0xc0, 16]);
        let additional = exchange_at + 7;
        assert_eq!(
            &out[additional..additional + 2],
            &(0xc000u16 | exchange_at as u16).to_be_bytes()
        );
    }

    #[test]
    fn case_differences_are_not_compressed_away() {
        let packet = query("WWW.example.com.", RecordType::A, false);
        let view = parse_query(&packet).unwrap();
        let mut out = Vec::new();
        let mut writer = ResponseWriter::new(&mut out, &packet, &view, 512);
        writer
            .push_record(
                Section::Answer,
                &wire("www.example.com."),
                1,
                1,
                60,
                &[1, 2, 3, 4],
            )
            .unwrap();
        writer.finish();
        let response = Message::from_vec(&out).unwrap();
        assert_eq!(response.answers[0].name.to_string(), "www.example.com.");
    }

    #[test]
    fn an_rrset_that_does_not_fit_leaves_nothing_behind() {
        let packet = query("big.example.com.", RecordType::TXT, false);
        let view = parse_query(&packet).unwrap();
        let mut out = Vec::new();
        let mut writer = ResponseWriter::new(&mut out, &packet, &view, 512);
        let qname = view.qname(&packet).to_vec();
        let text = [[100u8; 1].as_slice(), &[b'x'; 100]].concat();
        writer
            .push_rrset(Section::Answer, &qname, 16, 1, 60, [&text[..], &text[..]])
            .unwrap();
        let before = writer.room();
        let many: Vec<&[u8]> = vec![&text[..]; 4];
        assert_eq!(
            writer.push_rrset(Section::Authority, &qname, 16, 1, 60, many),
            Err(Full)
        );
        assert_eq!(writer.room(), before, "rolled back");
        assert_eq!(writer.count(Section::Authority), 0);
        writer.set_flag(flags::TC, true);
        writer.finish();
        let response = Message::from_vec(&out).unwrap();
        assert_eq!(response.answers.len(), 2);
        assert!(response.authorities.is_empty());
        assert!(response.metadata.truncation);
        assert!(out.len() <= 512);
    }

    #[test]
    fn cleared_records_and_extended_rcodes() {
        let packet = query("a.example.", RecordType::A, true);
        let view = parse_query(&packet).unwrap();
        let mut out = Vec::new();
        let mut writer = ResponseWriter::new(&mut out, &packet, &view, 512);
        let qname = view.qname(&packet).to_vec();
        writer
            .push_record(Section::Answer, &qname, 1, 1, 60, &[1, 2, 3, 4])
            .unwrap();
        writer.clear_records();
        writer
            .push_record(Section::Additional, &qname, 1, 1, 60, &[1, 2, 3, 4])
            .unwrap();
        writer.set_edns(EdnsReply::new(1232, false));
        writer.set_rcode(Rcode::BADCOOKIE);
        writer.finish();
        let response = Message::from_vec(&out).unwrap();
        assert!(response.answers.is_empty());
        assert_eq!(response.additionals.len(), 1);
        assert_eq!(u16::from(response.metadata.response_code), 23);
    }

    #[test]
    fn soa_rdata_names_compress_and_odd_rdata_is_copied_as_is() {
        let packet = query("example.com.", RecordType::SOA, false);
        let view = parse_query(&packet).unwrap();
        let mut out = Vec::new();
        let mut writer = ResponseWriter::new(&mut out, &packet, &view, 512);
        let mut soa = wire("ns.example.com.");
        soa.extend_from_slice(&wire("h.example.com."));
        soa.extend_from_slice(&[0; 20]);
        writer
            .push_record(Section::Answer, &wire("example.com."), 6, 1, 60, &soa)
            .unwrap();
        // A CNAME whose data is not a name is copied, not misread.
        writer
            .push_record(Section::Answer, &wire("x.example.com."), 5, 1, 60, &[9, 9])
            .unwrap();
        writer.finish();
        let soa_rdata_at = view.question_end + 2 + 10;
        assert_eq!(&out[soa_rdata_at..soa_rdata_at + 5], b"\x02ns\xc0\x0c");
        assert_eq!(&out[out.len() - 2..], &[9, 9]);
    }

    /// A name of 1-4 labels drawn from a few spellings, so that suffixes repeat in
    /// several cases.
    fn arbitrary_name() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        proptest::collection::vec(
            prop_oneof![
                Just("a"),
                Just("A"),
                Just("www"),
                Just("Www"),
                Just("example"),
                Just("EXAMPLE"),
                Just("com")
            ],
            1..4,
        )
        .prop_map(|labels| format!("{}.", labels.join(".")))
    }

    proptest::proptest! {
        /// Whatever is written reads back, record for record, with every name in the
        /// case it was given, and never past the limit.
        #[test]
        fn what_is_written_reads_back_exactly(
            records in proptest::collection::vec(
                (0usize..3, arbitrary_name(), 0u8..5, arbitrary_name()),
                0..40,
            ),
            limit in 512usize..1500,
        ) {
            let packet = query("Www.example.com.", RecordType::A, true);
            let view = parse_query(&packet).unwrap();
            let mut out = Vec::new();
            let mut writer = ResponseWriter::new(&mut out, &packet, &view, limit);
            writer.set_edns(EdnsReply::new(1232, false));
            let mut sorted = records.clone();
            sorted.sort_by_key(|r| r.0);
            let mut expected = Vec::new();
            for (section, owner, kind, target) in &sorted {
                let section = [Section::Answer, Section::Authority, Section::Additional][*section];
                let (rtype, rdata) = match kind {
                    0 => (1u16, vec![192, 0, 2, 1]),
                    1 => (2, wire_cased(target)),
                    2 => (5, wire_cased(target)),
                    3 => (15, [&[0u8, 5][..], &wire_cased(target)].concat()),
                    _ => (16, vec![3, b'a', b'b', b'c']),
                };
                if writer
                    .push_record(section, &wire_cased(owner), rtype, 1, 60, &rdata)
                    .is_ok()
                {
                    expected.push((owner.clone(), rtype, kind, target.clone()));
                }
            }
            let len = writer.finish();
            proptest::prop_assert!(len <= limit);
            let response = Message::from_vec(&out).unwrap();
            let got: Vec<_> = response
                .answers
                .iter()
                .chain(&response.authorities)
                .chain(&response.additionals)
                .collect();
            proptest::prop_assert_eq!(got.len(), expected.len());
            for (record, (owner, rtype, kind, target)) in got.iter().zip(&expected) {
                proptest::prop_assert_eq!(record.name.to_string(), owner.clone());
                proptest::prop_assert_eq!(u16::from(record.record_type()), *rtype);
                let data = record.data.to_string();
                match kind {
                    1 | 2 => proptest::prop_assert_eq!(data, target.clone()),
                    3 => proptest::prop_assert_eq!(data, format!("5 {target}")),
                    _ => {}
                }
            }
        }
    }

    /// The wire form of `text` in its own case.
    fn wire_cased(text: &str) -> Vec<u8> {
        let mut wire = Vec::new();
        for label in text.trim_end_matches('.').split('.') {
            wire.push(label.len() as u8);
            wire.extend_from_slice(label.as_bytes());
        }
        wire.push(0);
        wire
    }
}
