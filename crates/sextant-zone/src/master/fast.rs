//! Record data of the types large zones are made of (A, AAAA, NS, CNAME, PTR, MX,
//! SRV, SOA) written straight to wire form. hickory-proto's text parser, which reads
//! the rest, costs a parser and a formatted line per record; a million-record zone
//! spent most of its load there.
//!
//! Every form read here gives the bytes hickory-proto would have produced; anything
//! else (a wrong number of fields, a name with escapes, a TTL with units in the SOA)
//! is left to it, so its acceptance and its error messages do not change.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::RecordType;

use super::Token;
use super::names::push_wire;

/// Appends the data of a `rtype` record read from `tokens` to `out`; false, with
/// `out` as it was, when this is not a form read here.
pub(super) fn push_rdata(
    rtype: RecordType,
    tokens: &[&Token<'_>],
    origin: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    let start = out.len();
    let done = push(rtype, tokens, origin, out).is_some();
    if !done {
        out.truncate(start);
    }
    done
}

fn push(rtype: RecordType, tokens: &[&Token<'_>], origin: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let texts = |n: usize| -> Option<Vec<&str>> {
        (tokens.len() == n && tokens.iter().all(|t| !t.quoted))
            .then(|| tokens.iter().map(|t| t.text).collect())
    };
    match rtype {
        RecordType::A => {
            let [address] = tokens else { return None };
            let address: Ipv4Addr = address.text.parse().ok()?;
            out.extend_from_slice(&address.octets());
        }
        RecordType::AAAA => {
            let [address] = tokens else { return None };
            let address: Ipv6Addr = address.text.parse().ok()?;
            out.extend_from_slice(&address.octets());
        }
        RecordType::NS | RecordType::CNAME | RecordType::PTR => {
            let [target] = tokens else { return None };
            name(target, origin, out)?;
        }
        RecordType::MX => {
            let [preference, exchange] = tokens else {
                return None;
            };
            out.extend_from_slice(&number::<u16>(preference)?.to_be_bytes());
            name(exchange, origin, out)?;
        }
        RecordType::SRV => {
            let [priority, weight, port, target] = tokens else {
                return None;
            };
            for field in [priority, weight, port] {
                out.extend_from_slice(&number::<u16>(field)?.to_be_bytes());
            }
            name(target, origin, out)?;
        }
        RecordType::SOA => {
            let fields = texts(7)?;
            let [mname, rname, serial, refresh, retry, expire, minimum] = fields[..] else {
                return None;
            };
            if !push_wire(mname, origin, out) || !push_wire(rname, origin, out) {
                return None;
            }
            out.extend_from_slice(&digits::<u32>(serial)?.to_be_bytes());
            // hickory-proto keeps these three as i32.
            for field in [refresh, retry, expire] {
                let value = digits::<u32>(field)?;
                i32::try_from(value).ok()?;
                out.extend_from_slice(&value.to_be_bytes());
            }
            out.extend_from_slice(&digits::<u32>(minimum)?.to_be_bytes());
        }
        _ => return None,
    }
    Some(())
}

fn name(token: &Token<'_>, origin: &[u8], out: &mut Vec<u8>) -> Option<()> {
    (!token.quoted && push_wire(token.text, origin, out)).then_some(())
}

fn number<T: std::str::FromStr>(token: &Token<'_>) -> Option<T> {
    if token.quoted {
        return None;
    }
    token.text.parse().ok()
}

/// Plain decimal digits only: the SOA's fields also take units (`1h`), read by the
/// slow path.
fn digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use hickory_proto::rr::Name;

    use super::*;
    use crate::master::Lexer;

    /// The bytes the slow path gives for the same text.
    fn slow(rtype: RecordType, tokens: &[&Token<'_>]) -> Result<Vec<u8>, String> {
        let origin = Name::from_ascii("example.com.").unwrap();
        super::super::parse_rdata(rtype, tokens, &origin).map(|(wire, _)| wire)
    }

    #[test]
    fn agrees_with_the_slow_path_wherever_it_answers() {
        let origin = Name::from_ascii("example.com.").unwrap();
        let mut origin_wire = Vec::new();
        assert!(push_wire(&origin.to_ascii(), &[0], &mut origin_wire));
        let cases = [
            (RecordType::A, "192.0.2.1"),
            (RecordType::A, "192.0.2"),
            (RecordType::A, "192.0.2.1 extra"),
            (RecordType::AAAA, "2001:db8::1"),
            (RecordType::AAAA, "::ffff:192.0.2.1"),
            (RecordType::NS, "NS1.Example.NET."),
            (RecordType::NS, "ns1"),
            (RecordType::NS, "ns\\.1"),
            (RecordType::CNAME, "target"),
            (RecordType::PTR, "host.example."),
            (RecordType::MX, "10 mail"),
            (RecordType::MX, "65536 mail"),
            (RecordType::MX, "10"),
            (RecordType::SRV, "0 5 5060 sip.example.com."),
            (RecordType::SRV, "0 5 70000 sip"),
            (
                RecordType::SOA,
                "ns1 hostmaster 2026113001 7200 3600 1209600 300",
            ),
            (RecordType::SOA, "ns1 hostmaster 1 1h 15m 1w 5m"),
            (RecordType::SOA, "ns1 hostmaster 1 4294967295 1 1 1"),
            (RecordType::SOA, "ns1 hostmaster 1 2 3 4"),
        ];
        let mut answered = 0;
        for (rtype, text) in cases {
            let line = format!("x {text}\n");
            let mut tokens = Vec::new();
            Lexer::new(&line).next_into(&mut tokens).unwrap();
            let data: Vec<&Token<'_>> = tokens[1..].iter().collect();
            let mut out = vec![7];
            if push_rdata(rtype, &data, &origin_wire, &mut out) {
                answered += 1;
                assert_eq!(Ok(out[1..].to_vec()), slow(rtype, &data), "{rtype} {text}");
            } else {
                assert_eq!(out, [7], "{rtype} {text}");
            }
        }
        assert_eq!(answered, 10);
    }
}
