//! Editing the OPT record of a backend's response in place: the listener adds what
//! only it knows (its TCP idle timeout) without re-encoding the message.

use crate::question::{OPTION_TCP_KEEPALIVE, has_option, skip_name};

const HEADER_LEN: usize = 12;
const TYPE_OPT: u16 = 41;

/// Adds edns-tcp-keepalive (RFC 7828 §3.3.2) with `timeout` in units of 100 ms to the
/// response's OPT record. Returns false, changing nothing, when the response has no
/// OPT, already has the option, or does not parse.
pub fn add_tcp_keepalive(response: &mut Vec<u8>, timeout: u16) -> bool {
    let Some((rdlength_at, rdata_end)) = find_opt(response) else {
        return false;
    };
    let rdata_start = rdlength_at + 2;
    if has_option(&response[rdata_start..rdata_end], OPTION_TCP_KEEPALIVE) {
        return false;
    }
    let rdlength = rdata_end - rdata_start + 6;
    let Ok(rdlength) = u16::try_from(rdlength) else {
        return false;
    };
    let mut option = Vec::with_capacity(6);
    option.extend_from_slice(&OPTION_TCP_KEEPALIVE.to_be_bytes());
    option.extend_from_slice(&2u16.to_be_bytes());
    option.extend_from_slice(&timeout.to_be_bytes());
    response.splice(rdata_end..rdata_end, option);
    response[rdlength_at..rdlength_at + 2].copy_from_slice(&rdlength.to_be_bytes());
    true
}

/// The OPT record's RDLENGTH offset and the end of its data.
fn find_opt(message: &[u8]) -> Option<(usize, usize)> {
    let count = |at: usize| -> Option<usize> {
        let bytes = message.get(at..at + 2)?;
        Some(usize::from(u16::from_be_bytes([bytes[0], bytes[1]])))
    };
    let questions = count(4)?;
    let before_additional = count(6)? + count(8)?;
    let additional = count(10)?;
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
