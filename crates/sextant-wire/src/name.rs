//! Domain names in wire form: walking them in a message, and converting to and from
//! presentation form. Stored names are uncompressed (length-prefixed labels ending
//! with a 0 byte); names inside a message may end with a compression pointer.

/// Longest name in wire form (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;

/// Most compression pointers followed while reading one name: a real message needs a
/// handful; the bound stops a loop of pointers.
const MAX_POINTER_HOPS: usize = 32;

/// Skips a possibly compressed name in place; a pointer ends it, so no loop can form.
pub fn skip_name(packet: &[u8], mut at: usize) -> Option<usize> {
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

/// Length of the uncompressed name at the start of `wire`, or `None` when it is not
/// one (cut short, a pointer or an unknown label type, over 255 bytes).
pub fn name_len(wire: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let label_len = usize::from(*wire.get(at)?);
        if label_len & 0xc0 != 0 {
            return None;
        }
        at += 1 + label_len;
        if at > MAX_NAME_LEN {
            return None;
        }
        if label_len == 0 {
            return Some(at);
        }
        wire.get(at - 1)?;
    }
}

/// Number of labels of an uncompressed name, the root not counted (`*` counts).
pub fn label_count(wire: &[u8]) -> usize {
    label_starts(wire).count()
}

/// The offset of each label of an uncompressed name, longest suffix first, the root
/// not included: for `www.example.com.` 0, 4, 12.
pub fn label_starts(wire: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let len = usize::from(*wire.get(at)?);
        if len == 0 || len & 0xc0 != 0 {
            return None;
        }
        let start = at;
        at += 1 + len;
        Some(start)
    })
}

/// The suffix of an uncompressed name that keeps its last `labels` labels.
pub fn suffix_with_labels(wire: &[u8], labels: usize) -> &[u8] {
    let total = label_count(wire);
    let skip = total.saturating_sub(labels);
    let start = label_starts(wire)
        .nth(skip)
        .unwrap_or(wire.len().saturating_sub(1));
    &wire[start..]
}

/// Whether `name` is `ancestor` or below it (both uncompressed, compared without case).
pub fn is_subdomain(name: &[u8], ancestor: &[u8]) -> bool {
    if ancestor.len() > name.len() {
        return false;
    }
    let start = name.len() - ancestor.len();
    // The suffix must begin at a label boundary.
    (start == 0 || start + 1 == name.len() || label_starts(name).any(|at| at == start))
        && name[start..].eq_ignore_ascii_case(ancestor)
}

/// Copies `wire` (uncompressed) into `out` lower-cased; returns the length.
pub fn lowercase_into(wire: &[u8], out: &mut [u8; MAX_NAME_LEN]) -> usize {
    let len = wire.len().min(MAX_NAME_LEN);
    for (dst, src) in out[..len].iter_mut().zip(wire) {
        *dst = src.to_ascii_lowercase();
    }
    len
}

/// Reads the possibly compressed name at `at` in `message` into `out`, uncompressed
/// and in its own case. Returns the name's length and where the name ends in the
/// message (after its first pointer, if any).
pub fn read_name(
    message: &[u8],
    at: usize,
    out: &mut [u8; MAX_NAME_LEN],
) -> Option<(usize, usize)> {
    let mut len = 0usize;
    let mut position = at;
    let mut end = None;
    let mut hops = 0;
    loop {
        let label_len = *message.get(position)?;
        match label_len & 0xc0 {
            0x00 => {
                let label_len = usize::from(label_len);
                if len + 1 + label_len > MAX_NAME_LEN {
                    return None;
                }
                let label = message.get(position..position + 1 + label_len)?;
                out[len..len + 1 + label_len].copy_from_slice(label);
                len += 1 + label_len;
                position += 1 + label_len;
                if label_len == 0 {
                    return Some((len, end.unwrap_or(position)));
                }
            }
            0xc0 => {
                let low = *message.get(position + 1)?;
                end.get_or_insert(position + 2);
                hops += 1;
                if hops > MAX_POINTER_HOPS {
                    return None;
                }
                position = usize::from(u16::from_be_bytes([label_len & 0x3f, low]));
            }
            _ => return None,
        }
    }
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
    (wire.len() <= MAX_NAME_LEN).then_some(wire)
}

/// Presentation form of an uncompressed wire name, escaping what needs it.
pub fn wire_name_to_text(wire: &[u8]) -> String {
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
    #![allow(clippy::unwrap_used)]
    use super::*;

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
        assert_eq!(wire_name_to_text(b"\x03a.b\x01c\x00"), "a\\.b.c.");
    }

    #[test]
    fn labels_suffixes_and_ancestry() {
        let name = b"\x03www\x07example\x03com\x00";
        assert_eq!(name_len(name), Some(name.len()));
        assert_eq!(name_len(&name[..5]), None);
        assert_eq!(label_starts(name).collect::<Vec<_>>(), [0, 4, 12]);
        assert_eq!(label_count(name), 3);
        assert_eq!(label_count(b"\x00"), 0);
        assert_eq!(suffix_with_labels(name, 2), b"\x07example\x03com\x00");
        assert_eq!(suffix_with_labels(name, 0), b"\x00");
        assert!(is_subdomain(name, b"\x07EXAMPLE\x03com\x00"));
        assert!(is_subdomain(name, b"\x00"));
        assert!(!is_subdomain(name, b"\x03com\x03com\x00"));
        assert!(!is_subdomain(b"\x04xcom\x00", b"\x03com\x00"));
    }

    #[test]
    fn compressed_names_are_read_and_pointer_loops_refused() {
        // "example.com." at 0, then "www" + pointer to 0.
        let mut message = b"\x07example\x03com\x00".to_vec();
        message.extend_from_slice(b"\x03www\xc0\x00");
        let mut out = [0u8; MAX_NAME_LEN];
        let (len, end) = read_name(&message, 13, &mut out).unwrap();
        assert_eq!(&out[..len], b"\x03www\x07example\x03com\x00");
        assert_eq!(end, message.len());
        let looped = [0xc0u8, 0x00];
        assert!(read_name(&looped, 0, &mut out).is_none());
    }
}
