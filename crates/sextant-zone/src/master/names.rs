//! Domain names of a master file straight to wire form, without building a `Name`.
//!
//! Loading a large zone spent most of its time making hickory-proto `Name`s (a label
//! at a time, each through IDNA) only to turn them into bytes. This reads the names
//! almost every zone is made of — labels of letters, digits and hyphens, `_service`
//! labels, the `*` wildcard — and gives exactly the bytes hickory-proto's
//! `Name::parse` would: letter-digit-hyphen labels lower-cased (its IDNA mapping
//! does that), `_` labels as written. Anything else (escapes, other characters,
//! non-ASCII, `xn--` labels, lengths past the limits) is left to `Name::parse`, so
//! what is accepted, and every error message, stays the same.

/// Appends the wire form of `text` to `out`; a relative name gets `origin` (a whole
/// wire name) after it. False, with `out` as it was, when `text` is not a name of
/// the kinds above.
pub(super) fn push_wire(text: &str, origin: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    if push_labels(text, origin, out) {
        true
    } else {
        out.truncate(start);
        false
    }
}

fn push_labels(text: &str, origin: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    if text == "." {
        out.push(0);
        return true;
    }
    let (body, absolute) = match text.strip_suffix('.') {
        Some(body) => (body, true),
        None => (text, false),
    };
    if body.is_empty() {
        return false;
    }
    for label in body.split('.') {
        let bytes = label.as_bytes();
        if bytes.is_empty() || bytes.len() > 63 || !plain_label(bytes) {
            return false;
        }
        out.push(bytes.len() as u8);
        if bytes[0] == b'_' {
            out.extend_from_slice(bytes);
        } else {
            out.extend(bytes.iter().map(u8::to_ascii_lowercase));
        }
    }
    if absolute {
        out.push(0);
    } else {
        out.extend_from_slice(origin);
    }
    out.len() - start <= 255
}

/// A label whose bytes `Name::parse` keeps as they are (or only lower-cases).
fn plain_label(bytes: &[u8]) -> bool {
    match bytes {
        b"*" => true,
        [b'_', rest @ ..] => rest
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        [first, ..] => {
            // IDNA checks the punycode of an `xn--` label: its own path.
            let punycode = bytes.len() >= 4 && bytes[..4].eq_ignore_ascii_case(b"xn--");
            first.is_ascii_alphanumeric()
                && !punycode
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        }
        [] => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use hickory_proto::rr::Name;
    use hickory_proto::serialize::binary::BinEncodable;

    use super::*;

    /// What the slow path makes of `text`, as wire bytes.
    fn hickory(text: &str, origin: &Name) -> Option<Vec<u8>> {
        let mut name = Name::parse(text, Some(origin)).ok()?;
        name.set_fqdn(true);
        name.to_bytes().ok()
    }

    #[test]
    fn agrees_with_name_parse_wherever_it_answers() {
        let origin = Name::from_ascii("Example.COM.").unwrap();
        let origin_wire = origin.to_bytes().unwrap();
        let long = "a".repeat(63);
        let too_long_label = "a".repeat(64);
        let too_long_name = [long.as_str(); 4].join(".");
        let cases = [
            "WWW.Ex-ample.COM.",
            "www",
            "h123",
            "_srv._TCP",
            "_dmarc",
            "*",
            "*.wild",
            "trail-",
            "1.2.3",
            "a.b.",
            ".",
            long.as_str(),
            // Left to the slow path (which accepts some and refuses others):
            "foo_bar",
            "-lead",
            "a\\.b",
            "a\\065b",
            "xn--bcher-kva",
            "XN--abc",
            "b\u{fc}cher",
            "a*b",
            "a/b",
            "a..b",
            "..",
            "",
            "@",
            too_long_label.as_str(),
            too_long_name.as_str(),
        ];
        for text in cases {
            let mut out = vec![9];
            if push_wire(text, &origin_wire, &mut out) {
                assert_eq!(
                    Some(&out[1..]),
                    hickory(text, &origin).as_deref(),
                    "{text:?}"
                );
            } else {
                assert_eq!(out, [9], "{text:?} left the buffer as it was");
            }
        }
        let mut out = Vec::new();
        assert!(push_wire("WWW", &origin_wire, &mut out));
        assert!(!push_wire("a\\.b", &origin_wire, &mut out));
        assert!(!push_wire(&too_long_name, &origin_wire, &mut out));
    }
}
