//! DNS wire format for the listener's hot path.
//!
//! The listener must decide what to do with every packet (answer, route, refuse,
//! drop) after reading only the header, the question and the OPT record, and it must
//! do so for hostile bytes without allocating, panicking or looping. This crate does
//! exactly that and nothing more; complete messages are hickory-proto's job in the
//! backends.

mod opt;
mod question;
mod response;
mod ttl;

pub use opt::add_tcp_keepalive;
pub use question::{
    Edns, Header, Malformed, QueryView, Question, parse_header, parse_query, wire_name_from_text,
};
pub use response::{error_response, write_chaos_txt, write_error_response};
pub use ttl::{age_ttls, question_end, ttl_offsets};

/// The mnemonic of a 4-bit RCODE, for logs and metrics labels.
pub fn rcode_name(rcode: u8) -> &'static str {
    match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        9 => "NOTAUTH",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod label_tests {
    use super::*;

    #[test]
    fn every_known_qtype_has_its_own_label_and_the_rest_share_one() {
        assert_eq!(QTYPE_LABELS[qtype_index(1)], "A");
        assert_eq!(QTYPE_LABELS[qtype_index(28)], "AAAA");
        assert_eq!(QTYPE_LABELS[qtype_index(65)], "HTTPS");
        assert_eq!(QTYPE_LABELS[qtype_index(252)], "AXFR");
        assert_eq!(QTYPE_LABELS[qtype_index(39)], "DNAME");
        assert_eq!(QTYPE_LABELS[qtype_index(4242)], "OTHER");
        let mut seen: Vec<usize> = (0..=u16::MAX).map(qtype_index).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), QTYPE_LABELS.len(), "every label is reachable");
    }
}

/// The types a metrics label may name, in [`qtype_index`] order; every other type is
/// counted as `OTHER`, so a client cannot grow the label set.
pub const QTYPE_LABELS: [&str; 24] = [
    "A", "NS", "CNAME", "SOA", "PTR", "MX", "TXT", "AAAA", "SRV", "NAPTR", "DS", "RRSIG", "NSEC",
    "DNSKEY", "NSEC3", "TLSA", "SVCB", "HTTPS", "CAA", "ANY", "AXFR", "IXFR", "DNAME", "OTHER",
];

/// Where a QTYPE's label sits in [`QTYPE_LABELS`].
pub fn qtype_index(qtype: u16) -> usize {
    match qtype {
        1 => 0,
        2 => 1,
        5 => 2,
        6 => 3,
        12 => 4,
        15 => 5,
        16 => 6,
        28 => 7,
        33 => 8,
        35 => 9,
        43 => 10,
        46 => 11,
        47 => 12,
        48 => 13,
        50 => 14,
        52 => 15,
        64 => 16,
        65 => 17,
        257 => 18,
        255 => 19,
        252 => 20,
        251 => 21,
        39 => 22,
        _ => 23,
    }
}

/// Header field values used across the crate.
pub mod consts {
    pub const HEADER_LEN: usize = 12;
    pub const OPCODE_QUERY: u8 = 0;
    pub const OPCODE_NOTIFY: u8 = 4;
    pub const RCODE_NOERROR: u8 = 0;
    pub const RCODE_FORMERR: u8 = 1;
    pub const RCODE_SERVFAIL: u8 = 2;
    pub const RCODE_NXDOMAIN: u8 = 3;
    pub const RCODE_NOTIMP: u8 = 4;
    pub const RCODE_REFUSED: u8 = 5;
    /// Extended RCODE 16 (RFC 6891): upper 8 bits travel in the OPT TTL.
    pub const RCODE_BADVERS: u16 = 16;
    pub const TYPE_OPT: u16 = 41;
    pub const TYPE_TSIG: u16 = 250;
    pub const TYPE_IXFR: u16 = 251;
    pub const TYPE_AXFR: u16 = 252;
    pub const CLASS_IN: u16 = 1;
    pub const CLASS_CH: u16 = 3;
    pub const TYPE_TXT: u16 = 16;
    /// The size every DNS client must accept over UDP (RFC 1035).
    pub const CLASSIC_UDP_SIZE: u16 = 512;
}
