//! A resource record set: the records of one owner and type, sharing one TTL.
//!
//! The records' data is kept in wire form. hickory-proto's `RData` takes 184 bytes
//! whatever it holds (an A record's data is 4), and a million-record zone held as
//! `RData`s needed about 490 bytes per record; as wire bytes it needs far less, and
//! an answer decodes only the sets it sends.

use hickory_proto::rr::rdata::{A, AAAA, NULL};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{
    BinDecoder, BinEncodable, BinEncoder, NameEncoding, Restrict,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RRset {
    pub rtype: RecordType,
    /// Seconds; one value for the whole set (RFC 2181 §5.2).
    pub ttl: u32,
    /// Each record's RDATA after its 2-byte length; names uncompressed, in the case
    /// they were written. A boxed slice: sets are built once and rarely grow.
    data: Box<[u8]>,
}

impl RRset {
    /// An empty set.
    pub(crate) fn new(rtype: RecordType, ttl: u32) -> Self {
        Self {
            rtype,
            ttl,
            data: Box::default(),
        }
    }

    /// Adds `rdata` unless the set holds the same data already (RFC 2181 §5: a set
    /// has no duplicates). False when it was a duplicate or cannot be encoded.
    #[cfg(test)]
    pub(crate) fn push(&mut self, rdata: &RData) -> bool {
        encode(rdata).is_some_and(|wire| self.push_wire(&wire))
    }

    /// [`RRset::push`] of data already in wire form (names uncompressed).
    pub(crate) fn push_wire(&mut self, wire: &[u8]) -> bool {
        if self.wire_rdatas().any(|existing| existing == wire) {
            return false;
        }
        let Ok(len) = u16::try_from(wire.len()) else {
            return false;
        };
        let mut data = std::mem::take(&mut self.data).into_vec();
        data.reserve_exact(2 + wire.len());
        data.extend_from_slice(&len.to_be_bytes());
        data.extend_from_slice(wire);
        self.data = data.into_boxed_slice();
        true
    }

    /// A set from its stored form (each record's 2-byte length, then its data);
    /// `None` when the lengths do not add up to the bytes.
    pub(crate) fn from_wire(rtype: RecordType, ttl: u32, data: Box<[u8]>) -> Option<Self> {
        let mut rest = &data[..];
        while !rest.is_empty() {
            let (len, tail) = rest.split_first_chunk::<2>()?;
            rest = tail.get(usize::from(u16::from_be_bytes(*len))..)?;
        }
        Some(Self { rtype, ttl, data })
    }

    pub(crate) fn len(&self) -> usize {
        self.wire_rdatas().count()
    }

    /// Each record's data in wire form.
    pub(crate) fn wire_rdatas(&self) -> impl Iterator<Item = &[u8]> + '_ {
        split_rdatas(&self.data)
    }

    /// For an RRSIG set, the type its signatures cover (the first two bytes of data).
    pub(crate) fn covered_type(&self) -> Option<u16> {
        let first = self.wire_rdatas().next()?;
        Some(u16::from_be_bytes([*first.first()?, *first.get(1)?]))
    }

    /// The records' data as stored: each one's 2-byte length, then its data.
    pub(crate) fn wire(&self) -> &[u8] {
        &self.data
    }

    /// Each record's data, decoded.
    pub(crate) fn rdatas(&self) -> impl Iterator<Item = RData> + '_ {
        self.wire_rdatas().map(|wire| decode(self.rtype, wire))
    }

    #[cfg(test)]
    pub(crate) fn first(&self) -> Option<RData> {
        self.rdatas().next()
    }

    /// The set as records owned by `owner` (the query's spelling of the name, so that
    /// the answer compresses against the question and echoes its case).
    pub(crate) fn records<'s>(&'s self, owner: &Name) -> impl Iterator<Item = Record> + use<'s> {
        let owner = owner.clone();
        let ttl = self.ttl;
        self.rdatas()
            .map(move |rdata| Record::from_rdata(owner.clone(), ttl, rdata))
    }
}

/// Each record's data in a buffer of length-prefixed records.
pub(crate) fn split_rdatas(mut rest: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (len, tail) = rest.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        let (data, tail) = tail.split_at_checked(len)?;
        rest = tail;
        Some(data)
    })
}

pub(crate) fn encode(rdata: &RData) -> Option<Vec<u8>> {
    let mut wire = Vec::with_capacity(16);
    let mut encoder = BinEncoder::new(&mut wire);
    // Offsets into this buffer would mean nothing in an answer: no compression.
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    rdata.emit(&mut encoder).ok()?;
    Some(wire)
}

/// Back to `RData` (addresses built directly, the rest by hickory-proto's decoder);
/// data it cannot read, or might not give back byte for byte, stays as the bytes,
/// which encode back to exactly themselves.
pub(crate) fn decode(rtype: RecordType, wire: &[u8]) -> RData {
    match (rtype, wire) {
        (RecordType::A, [a, b, c, d]) => return RData::A(A::new(*a, *b, *c, *d)),
        (RecordType::AAAA, bytes) if bytes.len() == 16 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(bytes);
            return RData::AAAA(AAAA::from(std::net::Ipv6Addr::from(octets)));
        }
        // CAA's decoder does not always give back what its encoder was given (tags
        // and values are re-formatted): its bytes are served as they are.
        (RecordType::CAA, _) => {}
        _ => {
            let mut decoder = BinDecoder::new(wire);
            if let Ok(length) = u16::try_from(wire.len())
                && let Ok(rdata) = RData::read(&mut decoder, rtype, Restrict::new(length))
            {
                return rdata;
            }
        }
    }
    RData::Unknown {
        code: rtype,
        // Empty data is legal (RFC 3597 `\# 0`), and `NULL::with` refuses it.
        rdata: if wire.is_empty() {
            NULL::new()
        } else {
            NULL::with(wire.to_vec())
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::str::FromStr;

    use hickory_proto::rr::rdata::{CNAME, MX, NS, SOA, TXT};

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[test]
    fn data_comes_back_as_it_went_in_and_duplicates_are_refused() {
        let cases = [
            (RecordType::A, RData::A(A::from_str("192.0.2.1").unwrap())),
            (
                RecordType::AAAA,
                RData::AAAA(AAAA::from_str("2001:db8::1").unwrap()),
            ),
            (RecordType::NS, RData::NS(NS(name("Ns1.Example.com.")))),
            (
                RecordType::CNAME,
                RData::CNAME(CNAME(name("www.example.net."))),
            ),
            (
                RecordType::MX,
                RData::MX(MX::new(10, name("mail.example.com."))),
            ),
            (
                RecordType::SOA,
                RData::SOA(SOA::new(
                    name("ns1.example.com."),
                    name("hostmaster.example.com."),
                    2026112101,
                    7200,
                    3600,
                    1209600,
                    300,
                )),
            ),
        ];
        for (rtype, rdata) in cases {
            let mut set = RRset::new(rtype, 300);
            assert!(set.push(&rdata));
            assert!(!set.push(&rdata), "{rtype} duplicate");
            assert_eq!(set.len(), 1);
            assert_eq!(set.first().unwrap(), rdata, "{rtype} round trip");
        }
    }

    #[test]
    fn other_types_encode_back_to_the_same_wire() {
        let txt = RData::TXT(TXT::new(vec!["v=spf1 -all".into(), "second".into()]));
        let mut set = RRset::new(RecordType::TXT, 60);
        assert!(set.push(&txt));
        assert_eq!(set.first().unwrap(), txt);
        let unknown = RData::Unknown {
            code: RecordType::CAA,
            rdata: NULL::with(vec![0, 5, b'i', b's', b's', b'u', b'e', b'c', b'a']),
        };
        let mut set = RRset::new(RecordType::CAA, 60);
        assert!(set.push(&unknown));
        let back = set.first().unwrap();
        assert_eq!(back.record_type(), RecordType::CAA);
        assert_eq!(encode(&back).unwrap(), encode(&unknown).unwrap());
        // Empty data of a type without a decoder (RFC 3597 `\# 0`) comes back
        // empty; the fuzzer found it panicking in hickory-proto's NULL.
        let empty = decode(RecordType::Unknown(65000), &[]);
        assert_eq!(encode(&empty).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn records_take_the_owner_given_and_the_set_ttl() {
        let mut set = RRset::new(RecordType::A, 42);
        for address in ["192.0.2.1", "192.0.2.2"] {
            assert!(set.push(&RData::A(A::from_str(address).unwrap())));
        }
        let records: Vec<Record> = set.records(&name("WWW.example.com.")).collect();
        assert_eq!(records.len(), 2);
        assert!(records.iter().all(|r| r.ttl == 42));
        assert_eq!(records[1].name.to_ascii(), "WWW.example.com.");
        assert_eq!(records[1].data.to_string(), "192.0.2.2");
    }
}
