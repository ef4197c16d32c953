//! Names as byte strings whose plain byte order is the canonical DNS order (RFC 4034
//! §6.1): labels from the root down, lower-cased, each closed by a 0 byte, with the
//! bytes 0 and 1 escaped so that a closing 0 sorts before any label byte. A name's
//! descendants then follow it directly and start with its key. Comparing these keys
//! is a `memcmp`; comparing `Name`s walks labels backwards at every step, which made
//! loading a million-record zone spend three quarters of its time in comparisons.

use hickory_proto::rr::Name;

/// Longest key: 255 name bytes, every one escaped, plus a terminator per label.
pub(crate) const MAX_KEY: usize = 2 * 255 + 128;

/// Writes the key of `name` into `out` and returns its length.
pub(crate) fn write_key(name: &Name, out: &mut [u8; MAX_KEY]) -> usize {
    name.iter()
        .rev()
        .fold(0, |len, label| push_label(label, out, len))
}

/// Writes the key of the uncompressed wire name `wire` into `out` and returns its
/// length (the same key [`write_key`] makes of the same name).
pub(crate) fn write_key_wire(wire: &[u8], out: &mut [u8; MAX_KEY]) -> usize {
    let mut starts = [0usize; 128];
    let mut labels = 0;
    for start in sextant_wire::label_starts(wire).take(starts.len()) {
        // Only whole labels within a name's 255 bytes: the key of damaged data
        // must still fit its buffer.
        let end = start + 1 + usize::from(wire[start]);
        if end >= wire.len() || end > sextant_wire::MAX_NAME_LEN {
            break;
        }
        starts[labels] = start;
        labels += 1;
    }
    starts[..labels].iter().rev().fold(0, |len, &start| {
        let label_len = usize::from(wire[start]);
        push_label(&wire[start + 1..start + 1 + label_len], out, len)
    })
}

/// Appends one label, lower-cased and escaped, and its closing 0 at `len`; returns
/// the new length.
fn push_label(label: &[u8], out: &mut [u8; MAX_KEY], mut len: usize) -> usize {
    for &byte in label {
        match byte.to_ascii_lowercase() {
            0 => {
                out[len] = 1;
                out[len + 1] = 1;
                len += 2;
            }
            1 => {
                out[len] = 1;
                out[len + 1] = 2;
                len += 2;
            }
            other => {
                out[len] = other;
                len += 1;
            }
        }
    }
    out[len] = 0;
    len + 1
}

/// The key of an uncompressed wire name.
pub(crate) fn key_of_wire(wire: &[u8]) -> Box<[u8]> {
    let mut buffer = [0u8; MAX_KEY];
    let len = write_key_wire(wire, &mut buffer);
    buffer[..len].into()
}

pub(crate) fn key(name: &Name) -> Box<[u8]> {
    let mut buffer = [0u8; MAX_KEY];
    let len = write_key(name, &mut buffer);
    buffer[..len].into()
}

/// The name a key was made from (lower case, fully qualified).
pub(crate) fn name(key: &[u8]) -> Name {
    let mut labels: Vec<Vec<u8>> = Vec::new();
    let mut label = Vec::new();
    let mut bytes = key.iter();
    while let Some(&byte) = bytes.next() {
        match byte {
            0 => labels.push(std::mem::take(&mut label)),
            1 => label.push(bytes.next().map_or(0, |b| b - 1)),
            other => label.push(other),
        }
    }
    labels.reverse();
    let mut name = Name::from_labels(labels).unwrap_or_default();
    name.set_fqdn(true);
    name
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A name from text, where `\\DDD` stands for the byte DDD (hickory's text
    /// parser does not read that escape).
    fn n(text: &str) -> Name {
        if text == "." {
            return Name::root();
        }
        let labels: Vec<Vec<u8>> = text
            .trim_end_matches('.')
            .split('.')
            .map(|label| match label.strip_prefix('\\') {
                Some(digits) => vec![digits.parse::<u8>().unwrap()],
                None => label.as_bytes().to_vec(),
            })
            .collect();
        let mut name = Name::from_labels(labels).unwrap();
        name.set_fqdn(true);
        name
    }

    #[test]
    fn byte_order_is_the_canonical_order() {
        // RFC 4034 §6.1's example, in canonical order.
        let names = [
            "example.",
            "a.example.",
            "yljkjljk.a.example.",
            "Z.a.example.",
            "zABC.a.EXAMPLE.",
            "z.example.",
            "\\001.z.example.",
            "*.z.example.",
            "\\200.z.example.",
        ];
        let keys: Vec<Box<[u8]>> = names.iter().map(|t| key(&n(t))).collect();
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
        }
        let mut by_name: Vec<Name> = names.iter().map(|t| n(t)).collect();
        by_name.sort();
        let sorted: Vec<Box<[u8]>> = by_name.iter().map(key).collect();
        assert_eq!(sorted, keys, "same order as Name's Ord");
    }

    #[test]
    fn wire_names_make_the_same_keys() {
        for text in [
            "example.com.",
            ".",
            "\\000.\\001.x.",
            "*.Wild.example.",
            "A.b.C.",
        ] {
            let name = n(text);
            let mut wire = Vec::new();
            for label in name.iter() {
                wire.push(label.len() as u8);
                wire.extend_from_slice(label);
            }
            wire.push(0);
            let mut buffer = [0u8; MAX_KEY];
            let len = write_key_wire(&wire, &mut buffer);
            assert_eq!(&buffer[..len], &*key(&name), "{text}");
        }
    }

    #[test]
    fn descendants_start_with_the_ancestor_key_and_names_round_trip() {
        let parent = key(&n("Example.com."));
        assert!(key(&n("www.example.com.")).starts_with(&parent));
        assert!(!key(&n("examples.com.")).starts_with(&parent));
        assert!(key(&n("a.b.example.com.")).starts_with(&parent));
        for text in ["example.com.", ".", "\\000.\\001.x.", "*.Wild.example."] {
            let name = n(text);
            assert_eq!(self::name(&key(&name)), name.to_lowercase(), "{text}");
        }
    }
}
