//! DNS messages: the one place where Sextant reads a query and writes a response.
//!
//! A query is read once, from untrusted bytes, into a [`QueryView`] (header,
//! question, OPT record, TSIG position) without allocating, panicking or looping;
//! the listener decides on it, and the backends check and answer from it. Every
//! response a daemon sends is written by [`ResponseWriter`]: the question copied,
//! stored wire RRsets copied in with name compression, whole RRsets or none, the
//! OPT record and its options, room kept for a signature. The locally made answers
//! (an RCODE alone, CH TXT) are written by it too.
//!
//! Invariant: never panics on any input, never allocates on the read path, bounded
//! work per packet; no dependency beyond the standard library. Complete message
//! models (zone-file RDATA text, the resolver's view of an upstream answer, TSIG
//! MACs) are hickory-proto's job elsewhere.

mod edns;
mod header;
mod local;
mod name;
mod qtype_label;
mod query;
mod rcode;
mod ttl;
mod writer;

pub use edns::{
    EdnsReply, ExtendedError, OPTION_COOKIE, OPTION_EDE, OPTION_PADDING, OPTION_TCP_KEEPALIVE,
    OPTION_TRACE, RESPONSE_PADDING_BLOCK, add_option, add_padding, add_tcp_keepalive, find_option,
};
pub use header::{HEADER_LEN, Header, flags, opcode, parse_header};
pub use local::{error_response, rcode_answer, write_chaos_txt, write_error_response};
pub use name::{
    MAX_NAME_LEN, is_subdomain, label_count, label_starts, lowercase_into, name_len, read_name,
    skip_name, suffix_with_labels, wire_name_from_text, wire_name_to_text,
};
pub use qtype_label::{QTYPE_LABELS, qtype_index};
pub use query::{
    BadQuery, Edns, Malformed, QueryView, Question, Refusal, check_query, parse_query,
};
pub use rcode::Rcode;
pub use ttl::{age_ttls, min_ttl, question_end, ttl_offsets};
pub use writer::{Full, ResponseWriter, Section, Signer};

/// Type and class codes the servers act on, and the classic size limit.
pub mod consts {
    /// TXT (RFC 1035).
    pub const TYPE_TXT: u16 = 16;
    /// OPT, the EDNS pseudo-record (RFC 6891).
    pub const TYPE_OPT: u16 = 41;
    /// TSIG (RFC 8945).
    pub const TYPE_TSIG: u16 = 250;
    /// IXFR (RFC 1995).
    pub const TYPE_IXFR: u16 = 251;
    /// AXFR (RFC 5936).
    pub const TYPE_AXFR: u16 = 252;
    /// The Internet class.
    pub const CLASS_IN: u16 = 1;
    /// The CHAOS class (`version.bind` and friends).
    pub const CLASS_CH: u16 = 3;
    /// The size every DNS client must accept over UDP (RFC 1035).
    pub const CLASSIC_UDP_SIZE: u16 = 512;
}
