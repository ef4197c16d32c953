//! Domain names of a master file (RFC 1035 §5.1) straight to wire form.
//!
//! Labels are separated by unescaped dots; `\DDD` is the byte of decimal value DDD
//! and `\X` the character X; every other byte stands for itself (as BIND and NSD
//! read them: `_` anywhere, a leading `-`, `*` inside a label are all data). A name
//! that does not end with a dot is completed with the origin; `@` alone is the
//! origin. Names are lower-cased as NSD stores them, except where the case is part
//! of what is signed (an NSEC's next name, RFC 6840 §5.1): [`Case::AsWritten`].
//!
//! Text with non-ASCII characters is not read here: hickory-proto's parser turns it
//! into its IDNA (punycode) form, as Sextant always has.
//!
//! This replaced hickory-proto's `Name::parse` for ASCII names, which cost most of a
//! large zone's load (a label at a time, each through IDNA) and disagreed with the
//! RFC and the other servers: it read `\DDD` as octal, refused `_` inside a label
//! and lower-cased names.

use sextant_wire::MAX_NAME_LEN;

/// Whether a name keeps the case it is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Case {
    Lower,
    AsWritten,
}

/// Appends the wire form of `text` to `out`; a relative name gets `origin` (a whole
/// wire name) after it. `Ok(false)`, with `out` as it was, when `text` is not ASCII;
/// an error (a sentence) when it is not a name.
pub(super) fn push_wire(
    text: &str,
    origin: &[u8],
    case: Case,
    out: &mut Vec<u8>,
) -> Result<bool, String> {
    if !text.is_ascii() {
        return Ok(false);
    }
    let start = out.len();
    let result = push_ascii(text, origin, case, out);
    if result.is_err() {
        out.truncate(start);
    }
    result.map(|()| true)
}

fn push_ascii(text: &str, origin: &[u8], case: Case, out: &mut Vec<u8>) -> Result<(), String> {
    let start = out.len();
    let invalid = |why: &str| format!("{text:?} is not a valid domain name ({why})");
    match text {
        "." => {
            out.push(0);
            return Ok(());
        }
        "@" => {
            out.extend_from_slice(origin);
            return Ok(());
        }
        "" => return Err(invalid("it is empty")),
        _ => {}
    }
    let bytes = text.as_bytes();
    let mut at = 0;
    let mut absolute = false;
    while at < bytes.len() {
        let length_at = out.len();
        out.push(0);
        while at < bytes.len() && bytes[at] != b'.' {
            let byte = if bytes[at] == b'\\' {
                let (byte, used) = escape(&bytes[at + 1..]).ok_or_else(|| {
                    invalid("a backslash must be followed by a character or three decimal digits up to 255")
                })?;
                at += 1 + used;
                byte
            } else {
                at += 1;
                bytes[at - 1]
            };
            out.push(match case {
                Case::Lower => byte.to_ascii_lowercase(),
                Case::AsWritten => byte,
            });
        }
        let label_len = out.len() - length_at - 1;
        if label_len == 0 {
            return Err(invalid(
                "an empty label: two dots in a row, or a leading dot",
            ));
        }
        if label_len > 63 {
            return Err(invalid("a label longer than 63 bytes"));
        }
        out[length_at] = label_len as u8;
        if at < bytes.len() {
            // The separating dot; a final one makes the name absolute.
            at += 1;
            absolute = at == bytes.len();
        }
    }
    if absolute {
        out.push(0);
    } else {
        out.extend_from_slice(origin);
    }
    if out.len() - start > MAX_NAME_LEN {
        return Err(invalid("longer than 255 bytes"));
    }
    Ok(())
}

/// The byte an escape stands for (`rest` follows the backslash) and how many bytes
/// of `rest` it used.
fn escape(rest: &[u8]) -> Option<(u8, usize)> {
    match rest {
        [a, b, c, ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            let value = [a, b, c]
                .iter()
                .fold(0u32, |value, d| value * 10 + u32::from(**d - b'0'));
            u8::try_from(value).ok().map(|byte| (byte, 3))
        }
        [d, ..] if d.is_ascii_digit() => None,
        [other, ..] => Some((*other, 1)),
        [] => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ORIGIN: &[u8] = b"\x07example\x03com\x00";

    fn wire_in(text: &str, case: Case) -> Result<Vec<u8>, String> {
        let mut out = vec![9];
        match push_wire(text, ORIGIN, case, &mut out) {
            Ok(true) => Ok(out[1..].to_vec()),
            Ok(false) => Err("not ascii".into()),
            Err(error) => {
                assert_eq!(out, [9], "{text:?} left the buffer as it was");
                Err(error)
            }
        }
    }

    fn wire(text: &str) -> Result<Vec<u8>, String> {
        wire_in(text, Case::Lower)
    }

    #[test]
    fn reads_names_as_rfc_1035_and_the_other_servers_do() {
        let cases: [(&str, &[u8]); 13] = [
            ("WWW.Ex-ample.COM.", b"\x03www\x08ex-ample\x03com\x00"),
            ("www", b"\x03www\x07example\x03com\x00"),
            ("_sip._TCP", b"\x04_sip\x04_tcp\x07example\x03com\x00"),
            ("foo_bar.", b"\x07foo_bar\x00"),
            ("-lead.", b"\x05-lead\x00"),
            ("*.wild.", b"\x01*\x04wild\x00"),
            ("a*b.", b"\x03a*b\x00"),
            ("a\\.b.", b"\x03a.b\x00"),
            ("a\\066c.", b"\x03abc\x00"),
            ("\\000\\255.", b"\x02\x00\xff\x00"),
            ("a\\\\b.", b"\x03a\\b\x00"),
            (".", b"\x00"),
            ("@", ORIGIN),
        ];
        for (text, expected) in cases {
            assert_eq!(wire(text).unwrap(), expected, "{text:?}");
        }
        assert_eq!(
            wire_in("Next.Example.", Case::AsWritten).unwrap(),
            b"\x04Next\x07Example\x00"
        );
    }

    #[test]
    fn refuses_what_is_not_a_name_and_leaves_other_scripts_to_idna() {
        let long_label = format!("{}.", "a".repeat(64));
        let long_name = format!("{}.", vec!["a".repeat(63); 4].join("."));
        for text in [
            "",
            "a..b",
            ".a",
            "..",
            "a\\256.",
            "a\\1.",
            "a\\",
            &long_label,
            &long_name,
        ] {
            let error = wire(text).unwrap_err();
            assert!(
                error.contains("not a valid domain name"),
                "{text:?}: {error}"
            );
        }
        assert_eq!(wire(&"a".repeat(63)).unwrap().len(), 64 + ORIGIN.len());
        assert_eq!(wire("b\u{fc}cher").unwrap_err(), "not ascii");
    }
}
