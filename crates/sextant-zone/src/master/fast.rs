//! Record data of the types large zones are made of (A, AAAA, NS, CNAME, PTR, MX,
//! SRV, SOA) written straight to wire form. hickory-proto's text parser, which reads
//! the rest, costs a parser and a formatted line per record; a million-record zone
//! spent most of its load there. Names are read as [`super::names`] reads them;
//! the numbers of an SOA take units (`1h`, `2w`) as BIND's do.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::RecordType;

use super::Token;

/// Appends the data of a `rtype` record read from `tokens` to `out`: `None` when
/// `rtype` is not read here, an error (a sentence) when the data is not valid.
pub(super) fn push_rdata(
    rtype: RecordType,
    tokens: &[&Token<'_>],
    origin: &[u8],
    out: &mut Vec<u8>,
) -> Option<Result<(), String>> {
    let fields: &[&str] = match rtype {
        RecordType::A | RecordType::AAAA => &["address"],
        RecordType::NS | RecordType::CNAME | RecordType::PTR => &["target name"],
        RecordType::MX => &["preference", "exchange"],
        RecordType::SRV => &["priority", "weight", "port", "target"],
        RecordType::SOA => &[
            "primary server",
            "mailbox",
            "serial",
            "refresh",
            "retry",
            "expire",
            "minimum",
        ],
        _ => return None,
    };
    let start = out.len();
    let result = if tokens.len() != fields.len() {
        Err(format!(
            "{rtype} takes {} field(s) ({}), not {}",
            fields.len(),
            fields.join(", "),
            tokens.len()
        ))
    } else if let Some(quoted) = tokens.iter().find(|t| t.quoted) {
        Err(format!(
            "{} is quoted; write it without quotes",
            quoted.text
        ))
    } else {
        push(rtype, tokens, origin, out)
    };
    if result.is_err() {
        out.truncate(start);
    }
    Some(result.map_err(|e| format!("bad {rtype} data: {e}")))
}

/// `tokens` has the right number of unquoted fields for `rtype`.
fn push(
    rtype: RecordType,
    tokens: &[&Token<'_>],
    origin: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let text = |at: usize| tokens.get(at).map_or("", |t| t.text);
    match rtype {
        RecordType::A => {
            let address: Ipv4Addr = text(0)
                .parse()
                .map_err(|_| format!("{:?} is not an IPv4 address", text(0)))?;
            out.extend_from_slice(&address.octets());
        }
        RecordType::AAAA => {
            let address: Ipv6Addr = text(0)
                .parse()
                .map_err(|_| format!("{:?} is not an IPv6 address", text(0)))?;
            out.extend_from_slice(&address.octets());
        }
        RecordType::NS | RecordType::CNAME | RecordType::PTR => name(text(0), origin, out)?,
        RecordType::MX => {
            out.extend_from_slice(&number16(text(0))?.to_be_bytes());
            name(text(1), origin, out)?;
        }
        RecordType::SRV => {
            for at in 0..3 {
                out.extend_from_slice(&number16(text(at))?.to_be_bytes());
            }
            name(text(3), origin, out)?;
        }
        RecordType::SOA => {
            name(text(0), origin, out)?;
            name(text(1), origin, out)?;
            for at in 2..7 {
                let value = hickory_proto::serialize::txt::parse_ttl(text(at)).map_err(|_| {
                    format!("{:?} is not a number or a time (3600, 1h, 2w)", text(at))
                })?;
                out.extend_from_slice(&value.to_be_bytes());
            }
        }
        _ => {}
    }
    Ok(())
}

/// A name, by `super::names` (or IDNA for other scripts).
fn name(text: &str, origin: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let lower = super::names::Case::Lower;
    if super::names::push_wire(text, origin, lower, out)? {
        return Ok(());
    }
    let origin = super::name_from_wire(origin)?;
    out.extend_from_slice(&super::name_wire(&super::parse_name(text, &origin, lower)?));
    Ok(())
}

fn number16(text: &str) -> Result<u16, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a number from 0 to 65535"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::master::Lexer;

    const ORIGIN: &[u8] = b"\x07example\x03com\x00";

    fn read(rtype: RecordType, text: &str) -> Result<Vec<u8>, String> {
        let line = format!("x {text}\n");
        let mut tokens = Vec::new();
        Lexer::new(&line).next_into(&mut tokens).unwrap();
        let data: Vec<&Token<'_>> = tokens[1..].iter().collect();
        let mut out = vec![7];
        let result = push_rdata(rtype, &data, ORIGIN, &mut out).unwrap();
        match result {
            Ok(()) => Ok(out[1..].to_vec()),
            Err(error) => {
                assert_eq!(out, [7], "{rtype} {text}: the buffer is as it was");
                Err(error)
            }
        }
    }

    #[test]
    fn reads_the_common_types() {
        assert_eq!(read(RecordType::A, "192.0.2.1").unwrap(), [192, 0, 2, 1]);
        assert_eq!(
            read(RecordType::AAAA, "2001:db8::1").unwrap()[..4],
            [0x20, 1, 0xd, 0xb8]
        );
        assert_eq!(
            read(RecordType::NS, "NS1.Example.NET.").unwrap(),
            b"\x03ns1\x07example\x03net\x00"
        );
        assert_eq!(
            read(RecordType::CNAME, "www").unwrap(),
            b"\x03www\x07example\x03com\x00"
        );
        assert_eq!(read(RecordType::MX, "10 @").unwrap()[..2], [0, 10]);
        assert_eq!(
            read(RecordType::SRV, "0 5 5060 sip.example.com.").unwrap()[..6],
            [0, 0, 0, 5, 0x13, 0xc4]
        );
        let soa = read(RecordType::SOA, "ns1 hostmaster 1 1h 15m 1w 5m").unwrap();
        let numbers: Vec<u32> = soa[soa.len() - 20..]
            .chunks(4)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(numbers, [1, 3600, 900, 604800, 300]);
        assert!(read(RecordType::SOA, "ns1 h 4294967295 1 1 1 1").is_ok());
        assert!(push_rdata(RecordType::TXT, &[], ORIGIN, &mut Vec::new()).is_none());
    }

    #[test]
    fn refuses_bad_data_with_a_reason() {
        for (rtype, text, reason) in [
            (RecordType::A, "192.0.2", "not an IPv4 address"),
            (RecordType::A, "192.0.2.300", "not an IPv4 address"),
            (RecordType::A, "192.0.2.1 extra", "takes 1 field(s)"),
            (RecordType::AAAA, "2001:db8::g", "not an IPv6 address"),
            (RecordType::NS, "a..b", "not a valid domain name"),
            (RecordType::MX, "65536 mail", "not a number from 0 to 65535"),
            (RecordType::MX, "10", "takes 2 field(s)"),
            (RecordType::SRV, "0 5 70000 sip", "not a number"),
            (
                RecordType::SOA,
                "ns1 hostmaster 1 2 3 4",
                "takes 7 field(s)",
            ),
            (
                RecordType::SOA,
                "ns1 hostmaster 1 2 3 4 soon",
                "not a number or a time",
            ),
            (RecordType::A, "\"192.0.2.1\"", "quoted"),
        ] {
            let error = read(rtype, text).unwrap_err();
            assert!(error.starts_with(&format!("bad {rtype} data: ")), "{error}");
            assert!(error.contains(reason), "{rtype} {text}: {error}");
        }
    }
}
