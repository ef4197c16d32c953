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
