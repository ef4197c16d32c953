//! Presentation forms of the DNSSEC types that hickory-proto's text parser refuses
//! ("should be dynamically generated"): DNSKEY, CDNSKEY, DS, CDS, RRSIG, NSEC, NSEC3,
//! NSEC3PARAM (RFC 4034, 5155, 7344). Pre-signed zones carry them; they are encoded
//! here to wire data and served as they are.

use base64::Engine as _;
use hickory_proto::rr::{Name, RecordType};

/// The wire data of a record of `rtype` from its tokens, or `None` when `rtype` is
/// not one of the types handled here.
pub(super) fn encode(
    rtype: RecordType,
    tokens: &[&str],
    origin: &Name,
) -> Option<Result<Vec<u8>, String>> {
    let result = match rtype {
        RecordType::DNSKEY | RecordType::CDNSKEY => dnskey(tokens),
        RecordType::DS | RecordType::CDS => ds(tokens),
        RecordType::RRSIG => rrsig(tokens, origin),
        RecordType::NSEC => nsec(tokens, origin),
        RecordType::NSEC3 => nsec3(tokens),
        RecordType::NSEC3PARAM => nsec3param(tokens),
        _ => return None,
    };
    Some(result.map_err(|e| format!("bad {rtype} data: {e}")))
}

fn number<T: std::str::FromStr>(token: Option<&&str>, what: &str) -> Result<T, String> {
    let text = token.ok_or_else(|| format!("the {what} is missing"))?;
    text.parse()
        .map_err(|_| format!("{text:?} is not a valid {what}"))
}

fn base64(tokens: &[&str], what: &str) -> Result<Vec<u8>, String> {
    let text: String = tokens.concat();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| format!("the {what} is not base64"))
}

fn hex(text: &str, what: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("the {what} is not hex"));
    }
    Ok((0..text.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect())
}

/// flags protocol algorithm key...
fn dnskey(tokens: &[&str]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    out.extend_from_slice(&number::<u16>(tokens.first(), "flags")?.to_be_bytes());
    out.push(number(tokens.get(1), "protocol")?);
    out.push(number(tokens.get(2), "algorithm")?);
    out.extend(base64(tokens.get(3..).unwrap_or_default(), "public key")?);
    Ok(out)
}

/// key-tag algorithm digest-type digest...
fn ds(tokens: &[&str]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    out.extend_from_slice(&number::<u16>(tokens.first(), "key tag")?.to_be_bytes());
    out.push(number(tokens.get(1), "algorithm")?);
    out.push(number(tokens.get(2), "digest type")?);
    out.extend(hex(
        &tokens.get(3..).unwrap_or_default().concat(),
        "digest",
    )?);
    Ok(out)
}

/// A name inside DNSSEC data, in the case it was written: an NSEC next name is
/// signed in its own case (RFC 6840 §5.1), so lowering it (as reading it as a
/// UTF-8 name would) breaks its signature.
fn name_wire(text: &str, origin: &Name) -> Result<Vec<u8>, String> {
    Ok(super::name_wire(&super::parse_name(
        text,
        origin,
        super::names::Case::AsWritten,
    )?))
}

fn rtype(text: &str) -> Result<u16, String> {
    let upper = text.to_ascii_uppercase();
    if let Some(code) = upper.strip_prefix("TYPE").and_then(|n| n.parse().ok()) {
        return Ok(code);
    }
    upper
        .parse::<RecordType>()
        .map(u16::from)
        .map_err(|_| format!("{text:?} is not a record type"))
}

/// RRSIG times: YYYYMMDDHHmmSS (UTC) or seconds since 1970 (RFC 4034 §3.2).
fn time(text: &str) -> Result<u32, String> {
    if text.len() == 14 && text.bytes().all(|b| b.is_ascii_digit()) {
        let part = |range: std::ops::Range<usize>| text[range].parse::<i64>().unwrap_or(0);
        let (year, month, day) = (part(0..4), part(4..6), part(6..8));
        let (hour, minute, second) = (part(8..10), part(10..12), part(12..14));
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return Err(format!("{text:?} is not a valid time"));
        }
        let seconds =
            days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
        // Serial number arithmetic (RFC 1982): times wrap modulo 2^32.
        return Ok(seconds.rem_euclid(1 << 32) as u32);
    }
    text.parse()
        .map_err(|_| format!("{text:?} is not a time (YYYYMMDDHHmmSS)"))
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// type-covered algorithm labels original-ttl expiration inception key-tag signer signature...
fn rrsig(tokens: &[&str], origin: &Name) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    out.extend_from_slice(
        &rtype(tokens.first().ok_or("the type covered is missing")?)?.to_be_bytes(),
    );
    out.push(number(tokens.get(1), "algorithm")?);
    out.push(number(tokens.get(2), "label count")?);
    out.extend_from_slice(&number::<u32>(tokens.get(3), "original TTL")?.to_be_bytes());
    out.extend_from_slice(&time(tokens.get(4).ok_or("the expiration is missing")?)?.to_be_bytes());
    out.extend_from_slice(&time(tokens.get(5).ok_or("the inception is missing")?)?.to_be_bytes());
    out.extend_from_slice(&number::<u16>(tokens.get(6), "key tag")?.to_be_bytes());
    out.extend(name_wire(
        tokens.get(7).ok_or("the signer name is missing")?,
        origin,
    )?);
    out.extend(base64(tokens.get(8..).unwrap_or_default(), "signature")?);
    Ok(out)
}

/// RFC 4034 §4.1.2: windows of up to 256 types, each a bitmap of up to 32 bytes.
fn type_bitmap(types: &[&str]) -> Result<Vec<u8>, String> {
    let mut codes: Vec<u16> = types.iter().map(|t| rtype(t)).collect::<Result<_, _>>()?;
    codes.sort_unstable();
    codes.dedup();
    let mut out = Vec::new();
    let mut index = 0;
    while index < codes.len() {
        let window = codes[index] >> 8;
        let mut bitmap = [0u8; 32];
        let mut used = 0;
        while index < codes.len() && codes[index] >> 8 == window {
            let low = usize::from(codes[index] & 0xff);
            bitmap[low / 8] |= 0x80 >> (low % 8);
            used = used.max(low / 8 + 1);
            index += 1;
        }
        out.push(window as u8);
        out.push(used as u8);
        out.extend_from_slice(&bitmap[..used]);
    }
    Ok(out)
}

/// next-name types...
fn nsec(tokens: &[&str], origin: &Name) -> Result<Vec<u8>, String> {
    let mut out = name_wire(tokens.first().ok_or("the next name is missing")?, origin)?;
    out.extend(type_bitmap(tokens.get(1..).unwrap_or_default())?);
    Ok(out)
}

fn salt(text: &str) -> Result<Vec<u8>, String> {
    if text == "-" {
        return Ok(Vec::new());
    }
    hex(text, "salt")
}

/// RFC 4648 base32hex without padding, as NSEC3 writes the next hashed owner.
fn base32hex(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for byte in text.bytes() {
        let value = match byte.to_ascii_uppercase() {
            b @ b'0'..=b'9' => b - b'0',
            b @ b'A'..=b'V' => b - b'A' + 10,
            _ => return Err(format!("{text:?} is not base32hex")),
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// algorithm flags iterations salt
fn nsec3param(tokens: &[&str]) -> Result<Vec<u8>, String> {
    let mut out = vec![
        number(tokens.first(), "hash algorithm")?,
        number(tokens.get(1), "flags")?,
    ];
    out.extend_from_slice(&number::<u16>(tokens.get(2), "iterations")?.to_be_bytes());
    let salt = salt(tokens.get(3).ok_or("the salt is missing")?)?;
    out.push(u8::try_from(salt.len()).map_err(|_| "the salt is too long")?);
    out.extend(salt);
    Ok(out)
}

/// algorithm flags iterations salt next-hashed-owner types...
fn nsec3(tokens: &[&str]) -> Result<Vec<u8>, String> {
    let mut out = nsec3param(tokens.get(..4).unwrap_or(tokens))?;
    let next = base32hex(tokens.get(4).ok_or("the next hashed owner is missing")?)?;
    out.push(u8::try_from(next.len()).map_err(|_| "the next hashed owner is too long")?);
    out.extend(next);
    out.extend(type_bitmap(tokens.get(5..).unwrap_or_default())?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn origin() -> Name {
        Name::from_ascii("example.").unwrap()
    }

    #[test]
    fn an_nsec_next_name_keeps_its_case() {
        let nsec = encode(RecordType::NSEC, &["Upper", "A", "NSEC"], &origin())
            .unwrap()
            .unwrap();
        assert_eq!(&nsec[..15], b"\x05Upper\x07example\x00");
        let nsec = encode(RecordType::NSEC, &["MiXed.Example.", "A"], &origin())
            .unwrap()
            .unwrap();
        assert_eq!(&nsec[..15], b"\x05MiXed\x07Example\x00");
        let at = encode(RecordType::NSEC, &["@", "A"], &origin())
            .unwrap()
            .unwrap();
        assert_eq!(&at[..9], b"\x07example\x00");
    }

    #[test]
    fn rfc_4034_examples_encode() {
        // RFC 4034 §4.3: NSEC "host.example.com. A MX RRSIG NSEC TYPE1234".
        let nsec = encode(
            RecordType::NSEC,
            &["host.example.com.", "A", "MX", "RRSIG", "NSEC", "TYPE1234"],
            &origin(),
        )
        .unwrap()
        .unwrap();
        let bitmap = &nsec[nsec.len() - 37..];
        assert_eq!(
            &bitmap[..8],
            &[0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03]
        );
        assert_eq!(&bitmap[8..10], &[0x04, 0x1b]);
        assert_eq!(bitmap[10 + 26], 0x20);

        // RFC 4034 §2.3 key and §3.3 times.
        let key = encode(
            RecordType::DNSKEY,
            &["256", "3", "5", "AQPSKmynfz", "hl8P8="],
            &origin(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(&key[..4], &[0x01, 0x00, 3, 5]);
        assert_eq!(time("20030322173103").unwrap(), 1_048_354_263);
        assert_eq!(time("1048354263").unwrap(), 1_048_354_263);
    }

    #[test]
    fn nsec3_and_params_encode_and_errors_say_what_is_wrong() {
        let param = encode(
            RecordType::NSEC3PARAM,
            &["1", "0", "12", "aabbccdd"],
            &origin(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(param, vec![1, 0, 0, 12, 4, 0xaa, 0xbb, 0xcc, 0xdd]);
        let nsec3 = encode(
            RecordType::NSEC3,
            &[
                "1",
                "1",
                "12",
                "-",
                "2vptu5timamqttgl4luu9kg21e0aor3s",
                "A",
                "RRSIG",
            ],
            &origin(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(&nsec3[..5], &[1, 1, 0, 12, 0]);
        assert_eq!(nsec3[5], 20, "a SHA-1 hash is 20 bytes");
        let error = encode(RecordType::RRSIG, &["A", "8"], &origin())
            .unwrap()
            .unwrap_err();
        assert!(error.contains("label count is missing"), "{error}");
        assert!(encode(RecordType::A, &["192.0.2.1"], &origin()).is_none());
    }
}
