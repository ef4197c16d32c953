//! EDNS (RFC 6891): the OPT record a response carries, and editing the OPT record of
//! a backend's response in place, so the listener adds what only it knows (its TCP
//! idle timeout) without re-encoding the message.

use crate::consts::TYPE_OPT;
use crate::header::{HEADER_LEN, count_at};
use crate::name::skip_name;
use crate::query::has_option;

/// edns-tcp-keepalive (RFC 7828).
pub const OPTION_TCP_KEEPALIVE: u16 = 11;
/// DNS cookie (RFC 7873).
pub const OPTION_COOKIE: u16 = 10;
/// Padding (RFC 7830).
pub const OPTION_PADDING: u16 = 12;
/// Extended DNS Error (RFC 8914).
pub const OPTION_EDE: u16 = 15;
/// Sextant's own, from the local/experimental range (RFC 6891 §9): empty in a query,
/// "trace this one" (`sextantctl trace`); in the answer, the 16-byte trace id.
pub const OPTION_TRACE: u16 = 0xff00;

/// An Extended DNS Error (RFC 8914): why an answer is what it is, for the person
/// reading `dig`'s output. The text is short and never names internal paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtendedError {
    /// The INFO-CODE (RFC 8914 §4).
    pub code: u16,
    /// The EXTRA-TEXT.
    pub text: &'static str,
}

impl ExtendedError {
    /// 3: data served past its TTL because the authorities could not be reached.
    pub const fn stale_answer(text: &'static str) -> Self {
        Self { code: 3, text }
    }
    /// 0: none of the others; the text says what.
    pub const fn other(text: &'static str) -> Self {
        Self { code: 0, text }
    }
    /// 13: an error answered from a cache.
    pub const fn cached_error(text: &'static str) -> Self {
        Self { code: 13, text }
    }
    /// 14: the server is not ready to answer yet.
    pub const fn not_ready(text: &'static str) -> Self {
        Self { code: 14, text }
    }
    /// 15: the name or the client is blocked by policy.
    pub const fn blocked(text: &'static str) -> Self {
        Self { code: 15, text }
    }
    /// 18: the client is not allowed this.
    pub const fn prohibited(text: &'static str) -> Self {
        Self { code: 18, text }
    }
    /// 20: the server is not authoritative for the name and does not recurse.
    pub const fn not_authoritative(text: &'static str) -> Self {
        Self { code: 20, text }
    }
    /// 22: no authority (here: the backend, or a zone's primaries) could be reached.
    pub const fn no_reachable_authority(text: &'static str) -> Self {
        Self { code: 22, text }
    }
    /// 23: a network error on the way to the authority.
    pub const fn network_error(text: &'static str) -> Self {
        Self { code: 23, text }
    }
}

/// The OPT record of a response: our payload size, the DO bit echoed (RFC 3225) and
/// any options. The extended RCODE bits are filled in by the writer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdnsReply {
    /// The largest UDP payload we accept, bytes (at least 512 goes on the wire).
    pub payload_size: u16,
    /// DO, copied from the query.
    pub dnssec_ok: bool,
    /// Options as they go on the wire (code, length, data, ...).
    options: Vec<u8>,
}

impl EdnsReply {
    /// An OPT record with no options.
    pub fn new(payload_size: u16, dnssec_ok: bool) -> Self {
        Self {
            payload_size,
            dnssec_ok,
            options: Vec::new(),
        }
    }

    /// Adds an option; options over 65535 bytes in all are not added (false).
    pub fn push_option(&mut self, code: u16, data: &[u8]) -> bool {
        let Ok(len) = u16::try_from(data.len()) else {
            return false;
        };
        if self.options.len() + 4 + data.len() > usize::from(u16::MAX) {
            return false;
        }
        self.options.extend_from_slice(&code.to_be_bytes());
        self.options.extend_from_slice(&len.to_be_bytes());
        self.options.extend_from_slice(data);
        true
    }

    /// Adds an Extended DNS Error (RFC 8914 §2).
    pub fn push_extended_error(&mut self, error: ExtendedError) -> bool {
        let mut data = Vec::with_capacity(2 + error.text.len());
        data.extend_from_slice(&error.code.to_be_bytes());
        data.extend_from_slice(error.text.as_bytes());
        self.push_option(OPTION_EDE, &data)
    }

    /// Bytes the record takes in a message.
    pub fn wire_len(&self) -> usize {
        11 + self.options.len()
    }

    /// Appends the record to `out` with the extended RCODE bits given.
    pub(crate) fn write(&self, out: &mut Vec<u8>, extended_rcode: u8) {
        out.push(0); // the root owner
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        let size = self.payload_size.max(crate::consts::CLASSIC_UDP_SIZE);
        out.extend_from_slice(&size.to_be_bytes());
        let do_bit = if self.dnssec_ok { 0x80 } else { 0 };
        out.extend_from_slice(&[extended_rcode, 0, do_bit, 0]); // version 0
        // `push_option` keeps the options under 65536 bytes.
        let len = u16::try_from(self.options.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.options);
    }
}

/// Adds edns-tcp-keepalive (RFC 7828 §3.3.2) with `timeout` in units of 100 ms to the
/// response's OPT record. Returns false, changing nothing, when the response has no
/// OPT, already has the option, or does not parse.
pub fn add_tcp_keepalive(response: &mut Vec<u8>, timeout: u16) -> bool {
    add_option(response, OPTION_TCP_KEEPALIVE, &timeout.to_be_bytes())
}

/// Responses over encrypted transports are padded to a multiple of this (RFC 8467
/// §4.1, the recommended block-length strategy for responses).
pub const RESPONSE_PADDING_BLOCK: usize = 468;

/// Pads a finished `response` (RFC 7830) so that its length is a multiple of
/// `block`, with a padding option added last to its OPT record. Returns false,
/// changing nothing, when the response has no OPT, is padded already, or would
/// pass 65535 bytes.
pub fn add_padding(response: &mut Vec<u8>, block: usize) -> bool {
    if block == 0 {
        return false;
    }
    // The option's own code and length count too.
    let unpadded = response.len() + 4;
    let fill = (block - unpadded % block) % block;
    if unpadded + fill > usize::from(u16::MAX) {
        return false;
    }
    add_option(response, OPTION_PADDING, &vec![0; fill])
}

/// Adds option `code` with `data` to the OPT record of a finished `response`, in
/// place. Returns false, changing nothing, when the response has no OPT, already
/// has the option, or does not parse.
pub fn add_option(response: &mut Vec<u8>, code: u16, data: &[u8]) -> bool {
    let Some((rdlength_at, rdata_end)) = find_opt(response) else {
        return false;
    };
    let rdata_start = rdlength_at + 2;
    if has_option(&response[rdata_start..rdata_end], code) {
        return false;
    }
    let (Ok(rdlength), Ok(len)) = (
        u16::try_from(rdata_end - rdata_start + 4 + data.len()),
        u16::try_from(data.len()),
    ) else {
        return false;
    };
    let option = code
        .to_be_bytes()
        .into_iter()
        .chain(len.to_be_bytes())
        .chain(data.iter().copied());
    response.splice(rdata_end..rdata_end, option);
    response[rdlength_at..rdlength_at + 2].copy_from_slice(&rdlength.to_be_bytes());
    true
}

/// The data of option `code` in OPT options `options` (as [`crate::Edns::options`]
/// gives them), when present.
pub fn find_option(mut options: &[u8], code: u16) -> Option<&[u8]> {
    while let [a, b, c, d, rest @ ..] = options {
        let len = usize::from(u16::from_be_bytes([*c, *d]));
        let data = rest.get(..len)?;
        if u16::from_be_bytes([*a, *b]) == code {
            return Some(data);
        }
        options = &rest[len..];
    }
    None
}

/// The OPT record's RDLENGTH offset and the end of its data.
fn find_opt(message: &[u8]) -> Option<(usize, usize)> {
    let questions = count_at(message, 4)?;
    let before_additional = count_at(message, 6)? + count_at(message, 8)?;
    let additional = count_at(message, 10)?;
    let mut at = HEADER_LEN;
    for _ in 0..questions {
        at = skip_name(message, at)? + 4;
    }
    for index in 0..before_additional + additional {
        at = skip_name(message, at)?;
        let fixed = message.get(at..at + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlength = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let end = at + 10 + rdlength;
        if end > message.len() {
            return None;
        }
        if rtype == TYPE_OPT && index >= before_additional {
            return Some((at + 8, end));
        }
        at = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `a.` with an empty OPT and, optionally, a record after it.
    fn response(trailing_record: bool) -> Vec<u8> {
        let mut m = vec![
            0,
            1,
            0x80,
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            if trailing_record { 2 } else { 1 },
        ];
        m.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
        if trailing_record {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        }
        m
    }

    #[test]
    fn the_option_is_added_once_and_the_message_stays_whole() {
        for trailing in [false, true] {
            let mut m = response(trailing);
            let before = m.len();
            assert!(add_tcp_keepalive(&mut m, 100));
            assert_eq!(m.len(), before + 6);
            let (rdlength_at, end) = find_opt(&m).unwrap_or_default();
            assert_eq!(&m[rdlength_at..rdlength_at + 2], &[0, 6]);
            assert_eq!(&m[end - 6..end], &[0, 11, 0, 2, 0, 100]);
            assert!(crate::ttl_offsets(&m).is_some(), "still parses to the end");
            assert!(!add_tcp_keepalive(&mut m, 100), "not twice");
        }
    }

    #[test]
    fn padding_fills_the_answer_to_a_block_after_the_other_options() {
        for trailing in [false, true] {
            let mut m = response(trailing);
            assert!(add_tcp_keepalive(&mut m, 100));
            assert!(add_padding(&mut m, RESPONSE_PADDING_BLOCK));
            assert_eq!(m.len(), RESPONSE_PADDING_BLOCK);
            let (rdlength_at, _) = find_opt(&m).unwrap_or_default();
            // Keepalive (6 bytes) first, then the padding option's code.
            assert_eq!(&m[rdlength_at + 8..rdlength_at + 10], &[0, 12]);
            assert!(crate::ttl_offsets(&m).is_some(), "still parses to the end");
            assert!(!add_padding(&mut m, RESPONSE_PADDING_BLOCK), "not twice");
        }
        // A message four bytes short of a block gains just the option's header.
        let mut m = response(false);
        let block = m.len() + 4;
        assert!(add_padding(&mut m, block));
        assert_eq!(m.len(), block);
    }

    #[test]
    fn no_opt_or_garbage_changes_nothing() {
        let mut m = response(false);
        m[11] = 0;
        m.truncate(HEADER_LEN + 7);
        let copy = m.clone();
        assert!(!add_tcp_keepalive(&mut m, 100));
        assert_eq!(m, copy);
        let mut garbage = vec![0xff; 40];
        assert!(!add_tcp_keepalive(&mut garbage, 100));
    }
}
