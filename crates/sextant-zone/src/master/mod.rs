//! RFC 1035 master files: directives, owner/TTL/class inheritance and record data.
//!
//! The lexer here tracks lines so that every error names one; record data of the
//! types hickory-proto knows is parsed by hickory-proto, except: DNAME (RFC 6672) and
//! the RFC 3597 generic form (`TYPE65534 \# 3 abcdef`), which its text parser does not
//! read, the DNSSEC types (`dnssec`), and the types holding character-strings
//! (`strings`), whose escapes it reads as characters instead of bytes.

mod dnssec;
mod fast;
mod lexer;
mod names;
mod strings;

use names::Case;

pub(crate) use lexer::{Head, Lexer, Token};

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, Restrict};
use hickory_proto::serialize::txt::{Parser, parse_ttl};

use crate::{Location, ZoneError};

/// A record and where it was written.
#[derive(Clone, Debug)]
pub struct LocatedRecord {
    /// The record.
    pub record: Record,
    /// Where it was written.
    pub location: Location,
}

/// Reads an `$INCLUDE`d file; the caller decides what may be read.
pub type ReadInclude<'f> = &'f dyn Fn(&Path) -> std::io::Result<String>;

/// `$INCLUDE` files nested deeper than this are refused (a loop otherwise recurses
/// until memory runs out).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Told the line reached in the top-level file, every [`PROGRESS_EVERY`] entries.
pub type Progress<'p> = &'p dyn Fn(usize);

/// Entries between two progress reports: often enough for a bar, rare enough to cost
/// nothing.
pub(crate) const PROGRESS_EVERY: usize = 4096;

/// One record as read: owner and data already in wire form (names uncompressed).
pub(crate) struct WireRecord<'r> {
    /// The owner, as written (relative names completed with the origin).
    pub owner: &'r [u8],
    pub rtype: RecordType,
    pub ttl: u32,
    /// The record's data.
    pub rdata: &'r [u8],
    /// The data was read by a typed parser (hickory-proto decodes it back to the
    /// same `RData`); otherwise it is opaque bytes (DNSSEC types, character-strings,
    /// RFC 3597 data, DNAME), given back as `RData::Unknown`.
    pub typed: bool,
    pub location: &'r Location,
}

/// Takes each record as it is read.
pub(crate) type WireSink<'s> = &'s mut dyn FnMut(WireRecord<'_>);

/// Parses master-file `text` read from `file`, with `origin` as the initial `$ORIGIN`.
pub fn parse(
    text: &str,
    file: &Path,
    origin: &Name,
    read_include: ReadInclude<'_>,
) -> Result<Vec<LocatedRecord>, ZoneError> {
    let mut records = Vec::new();
    let mut failed = None;
    parse_wire(text, file, origin, read_include, &|_| {}, &mut |record| {
        if failed.is_some() {
            return;
        }
        match located(&record) {
            Ok(located) => records.push(located),
            Err(error) => failed = Some(error),
        }
    })?;
    match failed {
        Some(error) => Err(error),
        None => Ok(records),
    }
}

/// A wire record as a hickory-proto `Record`, with the `RData` the text parsers
/// made of it.
fn located(record: &WireRecord<'_>) -> Result<LocatedRecord, ZoneError> {
    let owner = Name::from_bytes(record.owner).map_err(|e| ZoneError {
        location: record.location.clone(),
        message: format!("the owner name cannot be read back ({e})"),
    })?;
    let rdata = if record.typed {
        crate::rrset::decode(record.rtype, record.rdata)
    } else {
        unknown(record.rtype, record.rdata.to_vec())
    };
    let mut built = Record::from_rdata(owner, record.ttl, rdata);
    built.dns_class = DNSClass::IN;
    Ok(LocatedRecord {
        record: built,
        location: record.location.clone(),
    })
}

/// Hands each record to `sink` as soon as it is read: a large zone is never held
/// twice (once as parsed records, once as the zone built from them).
pub(crate) fn parse_wire(
    text: &str,
    file: &Path,
    origin: &Name,
    read_include: ReadInclude<'_>,
    progress: Progress<'_>,
    sink: WireSink<'_>,
) -> Result<(), ZoneError> {
    let mut state = State::new(origin.clone(), None, None).map_err(|message| ZoneError {
        location: Location {
            file: Arc::new(file.to_path_buf()),
            line: 1,
        },
        message,
    })?;
    parse_into(
        text,
        Arc::new(file.to_path_buf()),
        &mut state,
        read_include,
        0,
        sink,
        progress,
    )
}

struct State {
    origin: Name,
    /// The origin in wire form, as given (completes relative names).
    origin_wire: Vec<u8>,
    /// From `$TTL` (RFC 2308).
    default_ttl: Option<u32>,
    /// The last TTL written on a record (RFC 1035's default when there is no `$TTL`).
    last_ttl: Option<u32>,
    /// The last owner, in wire form; empty before the first record.
    last_owner: Vec<u8>,
    /// The record data being written (one buffer for the whole file).
    data: Vec<u8>,
}

impl State {
    fn new(origin: Name, default_ttl: Option<u32>, last_ttl: Option<u32>) -> Result<Self, String> {
        let mut state = Self {
            origin: Name::root(),
            origin_wire: Vec::new(),
            default_ttl,
            last_ttl,
            last_owner: Vec::new(),
            data: Vec::with_capacity(512),
        };
        state.set_origin(origin)?;
        Ok(state)
    }

    fn set_origin(&mut self, origin: Name) -> Result<(), String> {
        self.origin_wire = name_wire(&origin);
        self.origin = origin;
        Ok(())
    }
}

/// A name from its uncompressed wire form.
fn name_from_wire(wire: &[u8]) -> Result<Name, String> {
    Name::from_bytes(wire).map_err(|e| format!("a name cannot be read back ({e})"))
}

/// A name in uncompressed wire form, in the case it has.
fn name_wire(name: &Name) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label);
    }
    wire.push(0);
    wire
}

fn parse_into(
    text: &str,
    file: Arc<PathBuf>,
    state: &mut State,
    read_include: ReadInclude<'_>,
    depth: usize,
    out: WireSink<'_>,
    progress: Progress<'_>,
) -> Result<(), ZoneError> {
    let mut lexer = Lexer::new(text);
    let mut tokens = Vec::with_capacity(16);
    let mut location = Location { file, line: 0 };
    let mut index = 0usize;
    loop {
        let head = lexer.next_into(&mut tokens).map_err(|e| ZoneError {
            location: Location {
                file: location.file.clone(),
                line: e.line,
            },
            message: e.message,
        })?;
        let Some(head) = head else {
            return Ok(());
        };
        if index.is_multiple_of(PROGRESS_EVERY) {
            progress(head.line);
        }
        index += 1;
        location.line = head.line;
        let fail = |message: String| ZoneError {
            location: location.clone(),
            message,
        };
        let first = tokens.first().map(|t| t.text).unwrap_or_default();
        if !head.owner_omitted && first.starts_with('$') {
            directive(&tokens, state, &location.file, read_include, depth, out).map_err(fail)?;
            continue;
        }
        let (rtype, ttl, typed) = record(head, &tokens, state).map_err(fail)?;
        out(WireRecord {
            owner: &state.last_owner,
            rtype,
            ttl,
            rdata: &state.data,
            typed,
            location: &location,
        });
    }
}

fn directive(
    tokens: &[Token<'_>],
    state: &mut State,
    file: &Path,
    read_include: ReadInclude<'_>,
    depth: usize,
    out: WireSink<'_>,
) -> Result<(), String> {
    let args = &tokens[1..];
    match tokens[0].text.to_ascii_uppercase().as_str() {
        "$ORIGIN" => {
            let [name] = args else {
                return Err(
                    "$ORIGIN takes exactly one domain name, e.g. $ORIGIN example.com.".into(),
                );
            };
            let origin = parse_name(name.text, &state.origin, Case::Lower)?;
            state.set_origin(origin)?;
        }
        "$TTL" => {
            let [ttl] = args else {
                return Err("$TTL takes exactly one TTL, e.g. $TTL 3600 or $TTL 1h".into());
            };
            state.default_ttl = Some(parse_ttl_token(ttl.text)?);
        }
        "$INCLUDE" => {
            let (path, origin) = match args {
                [path] => (path, state.origin.clone()),
                [path, origin] => (path, parse_name(origin.text, &state.origin, Case::Lower)?),
                _ => return Err("$INCLUDE takes a file name and optionally an origin".into()),
            };
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(format!(
                    "$INCLUDE nested more than {MAX_INCLUDE_DEPTH} deep (a loop?); flatten the includes"
                ));
            }
            let name = path.text.trim_matches('"');
            let included = match Path::new(name) {
                p if p.is_absolute() => p.to_path_buf(),
                p => file.parent().unwrap_or(Path::new(".")).join(p),
            };
            let text = read_include(&included).map_err(|e| {
                format!(
                    "cannot read $INCLUDE file {}: {e}; fix the path",
                    included.display()
                )
            })?;
            // The included file starts with its own origin; the parent's is restored after.
            let mut inner = State::new(origin, state.default_ttl, state.last_ttl)?;
            parse_into(
                &text,
                Arc::new(included),
                &mut inner,
                read_include,
                depth + 1,
                out,
                // Lines of an included file are not lines of the file the bar measures.
                &|_| {},
            )
            .map_err(|e| e.to_string())?;
        }
        "$GENERATE" => {
            return Err(
                "$GENERATE (a BIND extension) is not supported; write the records out".into(),
            );
        }
        other => {
            return Err(format!(
                "unknown directive {other}; the directives are $ORIGIN, $TTL and $INCLUDE"
            ));
        }
    }
    Ok(())
}

/// Reads one record: its owner into `state.last_owner`, its data into `state.data`;
/// returns its type, TTL and whether the data was typed.
fn record(
    head: Head,
    tokens: &[Token<'_>],
    state: &mut State,
) -> Result<(RecordType, u32, bool), String> {
    let mut tokens = tokens.iter();
    if head.owner_omitted {
        if state.last_owner.is_empty() {
            return Err("this record starts with white space but no owner name came before it; write the owner name first".into());
        }
    } else {
        let token = tokens.next().ok_or("empty entry")?;
        state.last_owner.clear();
        if !names::push_wire(
            token.text,
            &state.origin_wire,
            Case::Lower,
            &mut state.last_owner,
        )? {
            state.last_owner = name_wire(&parse_name(token.text, &state.origin, Case::Lower)?);
        }
    }

    let mut ttl = None;
    let mut class_seen = false;
    let rtype = loop {
        let token = tokens
            .next()
            .ok_or("the record has no type; write e.g. `www 3600 IN A 192.0.2.1`")?;
        if token.text.starts_with(|c: char| c.is_ascii_digit()) && ttl.is_none() {
            ttl = Some(parse_ttl_token(token.text)?);
        } else if !class_seen && token.text.eq_ignore_ascii_case("IN") {
            class_seen = true;
        } else {
            let upper = token.text.to_ascii_uppercase();
            if !class_seen && is_class(&upper) {
                return Err(format!(
                    "class {upper} is not served; only class IN zones are supported"
                ));
            }
            break parse_type(&upper)?;
        }
    };
    let ttl = match ttl {
        Some(ttl) => {
            state.last_ttl = Some(ttl);
            ttl
        }
        None => state.default_ttl.or(state.last_ttl).ok_or(
            "the record has no TTL and no $TTL came before it; add `$TTL 3600` at the top of the file",
        )?,
    };
    let rdata_tokens: Vec<&Token<'_>> = tokens.collect();
    if rdata_tokens.is_empty() {
        return Err(format!("the {rtype} record has no data after its type"));
    }
    state.data.clear();
    let generic = rdata_tokens.first().is_some_and(|t| t.text == "\\#");
    if !generic
        && let Some(result) =
            fast::push_rdata(rtype, &rdata_tokens, &state.origin_wire, &mut state.data)
    {
        result?;
        return Ok((rtype, ttl, true));
    }
    let (wire, typed) = parse_rdata(rtype, &rdata_tokens, &state.origin)?;
    state.data = wire;
    Ok((rtype, ttl, typed))
}

fn is_class(upper: &str) -> bool {
    matches!(upper, "IN" | "CH" | "HS" | "CS" | "NONE" | "ANY")
        || upper
            .strip_prefix("CLASS")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn parse_type(upper: &str) -> Result<RecordType, String> {
    if let Some(number) = upper.strip_prefix("TYPE")
        && let Ok(code) = number.parse::<u16>()
    {
        return Ok(RecordType::from(code));
    }
    if upper == "SPF" {
        // RFC 7208 §14.1 retired it, but zones still hold it: a TXT-like type.
        return Ok(RecordType::Unknown(99));
    }
    match RecordType::from_str(upper) {
        Ok(
            RecordType::ANY
            | RecordType::AXFR
            | RecordType::IXFR
            | RecordType::OPT
            | RecordType::TSIG,
        ) => Err(format!(
            "{upper} is a query type, not a record type that can be in a zone"
        )),
        Ok(rtype) => Ok(rtype),
        Err(_) => Err(format!(
            "{upper:?} is not a record type, TTL or class; check the spelling, or write an unknown type as TYPEnnn with RFC 3597 data (\\# LENGTH HEX)"
        )),
    }
}

fn parse_ttl_token(text: &str) -> Result<u32, String> {
    parse_ttl(text).map_err(|_| {
        format!("{text:?} is not a TTL; write seconds (3600) or units (1h30m, 1d, 1w)")
    })
}

/// A name as [`names`] reads it; text in other scripts than ASCII is turned into
/// its IDNA (punycode) form by hickory-proto.
fn parse_name(text: &str, origin: &Name, case: Case) -> Result<Name, String> {
    let mut wire = Vec::with_capacity(text.len() + 2);
    if names::push_wire(text, &name_wire(origin), case, &mut wire)? {
        return name_from_wire(&wire);
    }
    let mut name = Name::parse(text, Some(origin))
        .map_err(|e| format!("{text:?} is not a valid domain name ({e})"))?;
    name.set_fqdn(true);
    Ok(name)
}

/// The data of a record in wire form, and whether it was read by a typed parser.
fn parse_rdata(
    rtype: RecordType,
    tokens: &[&Token<'_>],
    origin: &Name,
) -> Result<(Vec<u8>, bool), String> {
    if tokens.first().is_some_and(|t| t.text == "\\#") {
        return parse_generic(rtype, &tokens[1..]);
    }
    if let Some(encoded) = strings::encode(rtype, tokens, origin) {
        return encoded.map(|wire| (wire, false));
    }
    let texts: Vec<&str> = tokens.iter().map(|t| t.text).collect();
    if let Some(encoded) = dnssec::encode(rtype, &texts, origin) {
        return encoded.map(|wire| (wire, false));
    }
    match rtype {
        RecordType::DNAME => {
            let [target] = tokens else {
                return Err("DNAME takes exactly one target name".into());
            };
            let target = parse_name(target.text, origin, Case::Lower)?;
            let wire = target
                .to_bytes()
                .map_err(|e| format!("cannot encode DNAME target: {e}"))?;
            Ok((wire, false))
        }
        RecordType::Unknown(code) => Err(format!(
            "type {code} has no text form here; write its data in RFC 3597 form: \\# LENGTH HEX"
        )),
        _ => {
            let data: Vec<&str> = tokens.iter().map(|t| t.text).collect();
            let text = format!("$ORIGIN {origin}\n@ 0 IN {rtype} {}\n", data.join(" "));
            let (_, sets) = Parser::new(text, None, Some(origin.clone()))
                .parse()
                .map_err(|e| format!("bad {rtype} data: {e}"))?;
            let rdata = sets
                .into_values()
                .next()
                .and_then(|set| set.records_without_rrsigs().next().map(|r| r.data.clone()))
                .ok_or_else(|| format!("bad {rtype} data"))?;
            let wire = crate::rrset::encode(&rdata)
                .ok_or_else(|| format!("the {rtype} data cannot be encoded; check it"))?;
            Ok((wire, true))
        }
    }
}

/// RFC 3597 §5: `\# LENGTH HEX...`.
fn parse_generic(rtype: RecordType, tokens: &[&Token<'_>]) -> Result<(Vec<u8>, bool), String> {
    let (length, hex) = tokens
        .split_first()
        .ok_or("generic data needs a length after \\#")?;
    let length: usize = length
        .text
        .parse()
        .map_err(|_| format!("{:?} is not a length; write \\# LENGTH HEX", length.text))?;
    let hex: String = hex.iter().map(|t| t.text).collect();
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the generic data is not an even number of hex digits".into());
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect();
    if bytes.len() != length || length > usize::from(u16::MAX) {
        return Err(format!(
            "the generic data has {} bytes but its length says {length}; make them agree",
            bytes.len()
        ));
    }
    match rtype {
        RecordType::Unknown(_) | RecordType::DNAME | RecordType::NULL => Ok((bytes, false)),
        known => {
            let mut decoder = BinDecoder::new(&bytes);
            let rdata = RData::read(&mut decoder, known, Restrict::new(length as u16))
                .map_err(|e| format!("the generic data is not valid {known} data: {e}"))?;
            if !decoder.is_empty() {
                return Err(format!("the generic data is longer than its {known} data"));
            }
            // Served as hickory-proto encodes what it read (names uncompressed).
            let wire = crate::rrset::encode(&rdata)
                .ok_or_else(|| format!("the generic data is not valid {known} data"))?;
            Ok((wire, true))
        }
    }
}

fn unknown(code: RecordType, bytes: Vec<u8>) -> RData {
    let mut rdata = NULL::new();
    rdata.anything = bytes;
    RData::Unknown { code, rdata }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn no_include(path: &Path) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            path.display().to_string(),
        ))
    }

    fn parse_text(text: &str) -> Result<Vec<LocatedRecord>, ZoneError> {
        parse(
            text,
            Path::new("t.zone"),
            &Name::from_ascii("example.com.").unwrap(),
            &no_include,
        )
    }

    #[test]
    fn inherits_owner_ttl_and_resolves_relative_names() {
        let records = parse_text(
            "$TTL 300\n@ SOA ns hostmaster 1 2 3 4 5\n  NS ns\nns 60 A 192.0.2.1\n   AAAA 2001:db8::1\nmail MX 10 ns\n",
        )
        .unwrap();
        let summary: Vec<String> = records
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {}",
                    r.record.name,
                    r.record.ttl,
                    r.record.record_type(),
                    r.record.data
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                "example.com. 300 SOA ns.example.com. hostmaster.example.com. 1 2 3 4 5",
                "example.com. 300 NS ns.example.com.",
                "ns.example.com. 60 A 192.0.2.1",
                "ns.example.com. 300 AAAA 2001:db8::1",
                "mail.example.com. 300 MX 10 ns.example.com.",
            ]
        );
        assert_eq!(records[4].location.line, 6);
    }

    #[test]
    fn generic_and_dname_forms() {
        let records = parse_text(
            "$TTL 1\nu TYPE65534 \\# 3 abcdef\na TYPE1 \\# 4 c0000201\nd DNAME target\n",
        )
        .unwrap();
        assert_eq!(records[0].record.record_type(), RecordType::Unknown(65534));
        assert_eq!(records[1].record.data.to_string(), "192.0.2.1");
        assert_eq!(records[2].record.record_type(), RecordType::DNAME);
    }

    #[test]
    fn errors_name_file_line_and_fix() {
        let err = parse_text("$TTL 1\n@ SOA ns h 1 2 3 4 5\nwww A 192.0.2.300\n").unwrap_err();
        assert_eq!(err.location.line, 3);
        assert!(err.to_string().starts_with("t.zone:3: bad A data"), "{err}");
        let err = parse_text("www IN A 192.0.2.1\n").unwrap_err();
        assert!(err.message.contains("add `$TTL 3600`"), "{err}");
        let err = parse_text("$TTL 1\nwww IN BOGUS x\n").unwrap_err();
        assert!(err.message.contains("not a record type"), "{err}");
        let err = parse_text("$TTL 1\nwww CH TXT x\n").unwrap_err();
        assert!(err.message.contains("only class IN"), "{err}");
    }

    #[test]
    fn include_reads_through_the_callback_with_its_origin() {
        let read = |path: &Path| -> std::io::Result<String> {
            assert!(path.ends_with("sub.inc"));
            Ok("host A 192.0.2.7\n".into())
        };
        let records = parse(
            "$TTL 5\n$INCLUDE sub.inc sub\nafter A 192.0.2.8\n",
            Path::new("/zones/t.zone"),
            &Name::from_ascii("example.com.").unwrap(),
            &read,
        )
        .unwrap();
        assert_eq!(records[0].record.name.to_string(), "host.sub.example.com.");
        assert_eq!(
            records[0].location.file.as_path(),
            Path::new("/zones/sub.inc")
        );
        assert_eq!(records[1].record.name.to_string(), "after.example.com.");
    }
}
