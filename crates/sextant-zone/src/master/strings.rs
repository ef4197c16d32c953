//! The types whose data holds character-strings (RFC 1035 §5.1): TXT, SPF, HINFO,
//! NAPTR, CAA and the SVCB/HTTPS parameters (RFC 9460 §2.1). Their bytes must be
//! served exactly as written: `\DDD` is the byte DDD and `\X` the byte X, never a
//! UTF-8 sequence. hickory-proto's text parser reads escapes as characters, so these
//! types are encoded here.

use std::net::{Ipv4Addr, Ipv6Addr};

use base64::Engine as _;
use hickory_proto::rr::{Name, RecordType};

use super::Token;

/// The wire data of a record of `rtype` from its tokens, or `None` when `rtype` is
/// not one of the types handled here.
pub(super) fn encode(
    rtype: RecordType,
    tokens: &[&Token<'_>],
    origin: &Name,
) -> Option<Result<Vec<u8>, String>> {
    let result = match rtype {
        RecordType::TXT | RecordType::Unknown(99) => txt(tokens),
        RecordType::HINFO => hinfo(tokens),
        RecordType::NAPTR => naptr(tokens, origin),
        RecordType::CAA => caa(tokens),
        RecordType::SVCB | RecordType::HTTPS => svcb(tokens, origin),
        _ => return None,
    };
    Some(result.map_err(|e| format!("bad {rtype} data: {e}")))
}

/// The bytes a token stands for: quotes removed, `\DDD` and `\X` unescaped.
pub(crate) fn unescape(token: &Token<'_>) -> Result<Vec<u8>, String> {
    let text = if token.quoted {
        token
            .text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(token.text)
    } else {
        token.text
    };
    unescape_text(text)
}

fn unescape_text(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'\\' {
            out.push(bytes[at]);
            at += 1;
            continue;
        }
        let digits = bytes.get(at + 1..at + 4);
        match digits {
            Some(d) if d.iter().all(u8::is_ascii_digit) => {
                let value = d.iter().fold(0u32, |v, b| v * 10 + u32::from(b - b'0'));
                let byte = u8::try_from(value).map_err(|_| {
                    format!("\\{} is not a byte (\\000 to \\255)", &text[at + 1..at + 4])
                })?;
                out.push(byte);
                at += 4;
            }
            _ => match bytes.get(at + 1) {
                Some(b) if b.is_ascii_digit() => {
                    return Err("a \\DDD escape needs exactly three digits".into());
                }
                Some(&b) => {
                    out.push(b);
                    at += 2;
                }
                None => return Err("the text ends with a lone '\\'".into()),
            },
        }
    }
    Ok(out)
}

/// One character-string: its length byte, then its bytes (at most 255).
fn push_string(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), String> {
    let len = u8::try_from(bytes.len()).map_err(|_| {
        format!(
            "a character-string is {} bytes, longer than 255; split it into several quoted strings",
            bytes.len()
        )
    })?;
    out.push(len);
    out.extend_from_slice(bytes);
    Ok(())
}

/// TXT and SPF: one or more character-strings.
fn txt(tokens: &[&Token<'_>]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for token in tokens {
        push_string(&mut out, &unescape(token)?)?;
    }
    Ok(out)
}

/// HINFO: CPU and OS, two character-strings.
fn hinfo(tokens: &[&Token<'_>]) -> Result<Vec<u8>, String> {
    let [cpu, os] = tokens else {
        return Err("HINFO takes two strings, the CPU and the OS".into());
    };
    let mut out = Vec::new();
    push_string(&mut out, &unescape(cpu)?)?;
    push_string(&mut out, &unescape(os)?)?;
    Ok(out)
}

fn number<T: std::str::FromStr>(token: Option<&&Token<'_>>, what: &str) -> Result<T, String> {
    let text = token.ok_or_else(|| format!("the {what} is missing"))?.text;
    text.parse()
        .map_err(|_| format!("{text:?} is not a valid {what}"))
}

fn name(token: Option<&&Token<'_>>, origin: &Name, what: &str) -> Result<Vec<u8>, String> {
    let text = token.ok_or_else(|| format!("the {what} is missing"))?.text;
    if text == "." {
        return Ok(vec![0]);
    }
    Ok(super::name_wire(&super::parse_name(
        text,
        origin,
        super::names::Case::Lower,
    )?))
}

/// NAPTR (RFC 3403): order, preference, flags, services, regexp, replacement.
fn naptr(tokens: &[&Token<'_>], origin: &Name) -> Result<Vec<u8>, String> {
    if tokens.len() != 6 {
        return Err(
            "NAPTR takes order, preference, flags, services, regexp and replacement".into(),
        );
    }
    let mut out = Vec::new();
    out.extend_from_slice(&number::<u16>(tokens.first(), "order")?.to_be_bytes());
    out.extend_from_slice(&number::<u16>(tokens.get(1), "preference")?.to_be_bytes());
    for token in &tokens[2..5] {
        push_string(&mut out, &unescape(token)?)?;
    }
    out.extend(name(tokens.get(5), origin, "replacement")?);
    Ok(out)
}

/// CAA (RFC 8659): flags, tag, value (the value's bytes fill the rest of the data).
fn caa(tokens: &[&Token<'_>]) -> Result<Vec<u8>, String> {
    let [flags, tag, value] = tokens else {
        return Err("CAA takes flags, a tag and a value, e.g. 0 issue \"ca.example\"".into());
    };
    let flags: u8 = flags
        .text
        .parse()
        .map_err(|_| format!("{:?} is not a flags byte", flags.text))?;
    let tag = tag.text.as_bytes();
    if tag.is_empty() || tag.len() > 255 || !tag.iter().all(u8::is_ascii_alphanumeric) {
        return Err(format!(
            "{:?} is not a CAA tag (letters and digits)",
            String::from_utf8_lossy(tag)
        ));
    }
    let mut out = vec![flags];
    push_string(&mut out, tag)?;
    out.extend(unescape(value)?);
    Ok(out)
}

/// SvcParamKeys by name (RFC 9460 §14.3.2).
fn svc_key(name: &str) -> Result<u16, String> {
    Ok(match name {
        "mandatory" => 0,
        "alpn" => 1,
        "no-default-alpn" => 2,
        "port" => 3,
        "ipv4hint" => 4,
        "ech" => 5,
        "ipv6hint" => 6,
        other => other
            .strip_prefix("key")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("{other:?} is not an SvcParamKey"))?,
    })
}

/// Splits a value list at unescaped commas (RFC 9460 Appendix A.1), unescaping each item.
fn comma_list(value: &[u8]) -> Vec<Vec<u8>> {
    let mut items = vec![Vec::new()];
    let mut escaped = false;
    for &byte in value {
        match (escaped, byte) {
            (false, b'\\') => escaped = true,
            (false, b',') => items.push(Vec::new()),
            (_, byte) => {
                escaped = false;
                if let Some(last) = items.last_mut() {
                    last.push(byte);
                }
            }
        }
    }
    items
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "a parameter value is not text".to_string())
}

/// SVCB and HTTPS (RFC 9460): priority, target, then `key=value` parameters, written
/// in increasing key order as the RFC requires.
fn svcb(tokens: &[&Token<'_>], origin: &Name) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    out.extend_from_slice(&number::<u16>(tokens.first(), "priority")?.to_be_bytes());
    out.extend(name(tokens.get(1), origin, "target")?);
    let mut params: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut rest = tokens.get(2..).unwrap_or_default().iter().peekable();
    while let Some(token) = rest.next() {
        let (key, value) = match token.text.split_once('=') {
            Some((key, "")) => {
                // `key="value"`: the lexer ends the word at the quote.
                let value = rest
                    .next_if(|next| next.quoted)
                    .map(|quoted| unescape(quoted))
                    .transpose()?
                    .unwrap_or_default();
                (key, Some(value))
            }
            Some((key, value)) => (key, Some(unescape_text(value)?)),
            None => (token.text, None),
        };
        let code = svc_key(key)?;
        let wire = match (code, value) {
            (2, None) => Vec::new(),
            (2, Some(_)) => return Err("no-default-alpn takes no value".into()),
            (_, None) if code < 8 => return Err(format!("{key} needs a value")),
            (_, None) => Vec::new(),
            (0, Some(value)) => {
                let mut keys = Vec::new();
                for item in comma_list(&value) {
                    keys.push(svc_key(utf8(&item)?)?);
                }
                keys.sort_unstable();
                keys.iter().flat_map(|k| k.to_be_bytes()).collect()
            }
            (1, Some(value)) => {
                let mut wire = Vec::new();
                for id in comma_list(&value) {
                    push_string(&mut wire, &id)?;
                }
                wire
            }
            (3, Some(value)) => {
                let port: u16 = utf8(&value)?
                    .parse()
                    .map_err(|_| "the port is not a number".to_string())?;
                port.to_be_bytes().to_vec()
            }
            (4, Some(value)) => {
                let mut wire = Vec::new();
                for item in comma_list(&value) {
                    let address: Ipv4Addr = utf8(&item)?
                        .parse()
                        .map_err(|_| format!("{:?} is not an IPv4 address", utf8(&item)))?;
                    wire.extend_from_slice(&address.octets());
                }
                wire
            }
            (5, Some(value)) => base64::engine::general_purpose::STANDARD
                .decode(&value)
                .map_err(|_| "the ech value is not base64".to_string())?,
            (6, Some(value)) => {
                let mut wire = Vec::new();
                for item in comma_list(&value) {
                    let address: Ipv6Addr = utf8(&item)?
                        .parse()
                        .map_err(|_| format!("{:?} is not an IPv6 address", utf8(&item)))?;
                    wire.extend_from_slice(&address.octets());
                }
                wire
            }
            (_, Some(value)) => value,
        };
        if params.iter().any(|(existing, _)| *existing == code) {
            return Err(format!("{key} is given twice"));
        }
        params.push((code, wire));
    }
    params.sort_by_key(|(code, _)| *code);
    for (code, value) in params {
        let len = u16::try_from(value.len()).map_err(|_| "a parameter value is too long")?;
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend(value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::master::Lexer;
    use proptest::prelude::*;

    fn wire(rtype: RecordType, data: &str) -> Result<Vec<u8>, String> {
        let line = format!("x {data}\n");
        let entry = Lexer::new(&line).next().unwrap().unwrap();
        let tokens: Vec<&Token<'_>> = entry.tokens.iter().skip(1).collect();
        encode(rtype, &tokens, &Name::from_ascii("example.").unwrap()).unwrap()
    }

    #[test]
    fn decimal_escapes_are_bytes_not_characters() {
        assert_eq!(
            wire(RecordType::TXT, "\"\\010\\255\" plain \"a b\\\"c\"").unwrap(),
            b"\x02\x0a\xff\x05plain\x05a b\"c"
        );
        assert_eq!(wire(RecordType::TXT, "\"\"").unwrap(), b"\x00");
        assert!(
            wire(RecordType::TXT, "\"\\256\"")
                .unwrap_err()
                .contains("not a byte")
        );
        let long = format!("\"{}\"", "x".repeat(256));
        assert!(
            wire(RecordType::TXT, &long)
                .unwrap_err()
                .contains("longer than 255")
        );
        assert_eq!(
            wire(RecordType::HINFO, "\"PC\\233\" Linux").unwrap(),
            b"\x03PC\xe9\x05Linux"
        );
    }

    #[test]
    fn naptr_and_caa_keep_their_bytes() {
        assert_eq!(
            wire(
                RecordType::NAPTR,
                "100 10 \"S\" \"SIP+D2U\" \"!^.*$!sip:\\033@x!\" _sip._udp"
            )
            .unwrap(),
            [
                &[0, 100, 0, 10, 1, b'S', 7][..],
                b"SIP+D2U",
                b"\x0e!^.*$!sip:!@x!",
                b"\x04_sip\x04_udp\x07example\x00"
            ]
            .concat()
        );
        assert_eq!(
            wire(RecordType::CAA, "0 issue \"ca.example\\059 policy\"").unwrap(),
            [&[0u8, 5][..], b"issue", b"ca.example; policy"].concat()
        );
    }

    #[test]
    fn svcb_parameters_in_key_order() {
        let data = wire(
            RecordType::HTTPS,
            "1 . port=8443 alpn=\"h2,h3\\\\,x\" ipv4hint=192.0.2.1,192.0.2.2 mandatory=port,alpn key65000=\"\\000a\"",
        )
        .unwrap();
        let expected = [
            &[0u8, 1, 0][..],
            &[0, 0, 0, 4, 0, 1, 0, 3],
            &[0, 1, 0, 8, 2, b'h', b'2', 4, b'h', b'3', b',', b'x'],
            &[0, 3, 0, 2, 0x20, 0xfb],
            &[0, 4, 0, 8, 192, 0, 2, 1, 192, 0, 2, 2],
            &[0xfd, 0xe8, 0, 2, 0, b'a'],
        ]
        .concat();
        assert_eq!(data, expected);
        assert!(wire(RecordType::SVCB, "1 . port=1 port=2").is_err());
        assert!(wire(RecordType::SVCB, "1 . no-default-alpn=x").is_err());
    }

    /// Writes `bytes` as TXT character-strings of at most 255 bytes, every byte
    /// escaped as \DDD (or as itself when printable), and checks they read back as
    /// exactly those bytes.
    fn assert_round_trip(bytes: &[u8]) {
        let mut text = String::new();
        let mut expected = Vec::new();
        for chunk in bytes.chunks(255) {
            text.push_str(" \"");
            for &byte in chunk {
                match byte {
                    b'"' | b'\\' => {
                        text.push('\\');
                        text.push(char::from(byte));
                    }
                    0x20..=0x7e => text.push(char::from(byte)),
                    _ => text.push_str(&format!("\\{byte:03}")),
                }
            }
            text.push('"');
            expected.push(chunk.len() as u8);
            expected.extend_from_slice(chunk);
        }
        if bytes.is_empty() {
            return;
        }
        assert_eq!(wire(RecordType::TXT, &text).unwrap(), expected, "{text}");
    }

    /// Replays fuzz/corpus/character_strings, where the fuzz target's findings go.
    #[test]
    fn fuzz_corpus_replays() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/character_strings");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            assert_round_trip(&std::fs::read(entry.unwrap().path()).unwrap());
            count += 1;
        }
        assert!(count > 0);
    }

    proptest! {
        /// Any bytes survive the text form.
        #[test]
        fn any_bytes_survive_the_text_form(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            assert_round_trip(&bytes);
        }
    }
}
