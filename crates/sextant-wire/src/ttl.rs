//! Where the TTLs of a response are, so that a cached answer can be aged in place.

use crate::consts::TYPE_OPT;
use crate::header::{HEADER_LEN, count_at};
use crate::name::skip_name;

/// Byte offsets of every record's TTL in `message` (OPT excluded: its "TTL" holds
/// EDNS flags). `None` when the message does not parse to its last byte.
pub fn ttl_offsets(message: &[u8]) -> Option<Vec<usize>> {
    let records = count_at(message, 6)? + count_at(message, 8)? + count_at(message, 10)?;
    let mut offsets = Vec::with_capacity(records);
    each_ttl(message, &mut |at| offsets.push(at))?;
    Some(offsets)
}

/// The smallest TTL of `message`'s records (OPT excluded), without allocating:
/// how long an answer stays fresh (a DoH response's `max-age`). `None` when the
/// message has no record or does not parse to its last byte.
pub fn min_ttl(message: &[u8]) -> Option<u32> {
    let mut smallest: Option<u32> = None;
    each_ttl(message, &mut |at| {
        if let Some(ttl) = message.get(at..at + 4) {
            let ttl = u32::from_be_bytes([ttl[0], ttl[1], ttl[2], ttl[3]]);
            smallest = Some(smallest.map_or(ttl, |s| s.min(ttl)));
        }
    })?;
    smallest
}

/// Calls `each` with the offset of every record's TTL; `None` when the message
/// does not parse to its last byte.
fn each_ttl(message: &[u8], each: &mut dyn FnMut(usize)) -> Option<()> {
    let questions = count_at(message, 4)?;
    let records = count_at(message, 6)? + count_at(message, 8)? + count_at(message, 10)?;
    let mut at = HEADER_LEN;
    for _ in 0..questions {
        at = skip_name(message, at)? + 4;
    }
    for _ in 0..records {
        at = skip_name(message, at)?;
        let fixed = message.get(at..at + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlength = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        if rtype != TYPE_OPT {
            each(at + 4);
        }
        at += 10 + rdlength;
    }
    (at == message.len()).then_some(())
}

/// Where the one question of `message` ends (`None` without exactly one question).
pub fn question_end(message: &[u8]) -> Option<usize> {
    let questions = message.get(4..6)?;
    if questions != [0, 1] {
        return None;
    }
    let end = skip_name(message, HEADER_LEN)? + 4;
    (end <= message.len()).then_some(end)
}

/// Lowers every TTL at `offsets` by `seconds`, never below zero.
pub fn age_ttls(message: &mut [u8], offsets: &[usize], seconds: u32) {
    for &offset in offsets {
        if let Some(field) = message.get_mut(offset..offset + 4) {
            let ttl = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
            field.copy_from_slice(&ttl.saturating_sub(seconds).to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// www.test. A? answered with one A record (TTL 300, compressed owner) and an OPT.
    fn answer() -> Vec<u8> {
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 1];
        m.extend_from_slice(b"\x03www\x04test\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1]);
        m.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0x80, 0, 0, 0]);
        m
    }

    #[test]
    fn finds_record_ttls_but_not_the_opt_flags() {
        let mut m = answer();
        let offsets = ttl_offsets(&m).unwrap_or_default();
        assert_eq!(offsets, vec![12 + 14 + 6]);
        age_ttls(&mut m, &offsets, 100);
        assert_eq!(&m[32..36], &200u32.to_be_bytes());
        age_ttls(&mut m, &offsets, 1000);
        assert_eq!(&m[32..36], &0u32.to_be_bytes());
        assert_eq!(m[m.len() - 4], 0x80, "DO bit untouched");
    }

    #[test]
    fn truncated_or_padded_messages_are_refused() {
        let m = answer();
        assert!(ttl_offsets(&m[..m.len() - 1]).is_none());
        let mut longer = m.clone();
        longer.push(0);
        assert!(ttl_offsets(&longer).is_none());
        for cut in 0..m.len() {
            let _ = ttl_offsets(&m[..cut]);
        }
    }
}
