//! What the query path hands over (an [`Event`]: one exchange, raw bytes and times),
//! and the dnstap entries the writer thread makes of it.

use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::encoding::{WireType, encode_key, encode_varint};
use sextant_config::DnstapMessage;

use crate::schema;
use crate::schema::message::Type as EntryType;

/// One exchange: a query, and its response when there was one, borrowed from the
/// query path for as long as [`crate::Tap::log`] takes to encode up to two entries
/// of it (the query's and the response's), as selected.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// Whose exchange it is.
    pub exchange: Exchange,
    /// The transport it went over.
    pub protocol: Protocol,
    /// Who sent the query: the client, or the resolver's own source address.
    pub initiator: SocketAddr,
    /// Who answered it: our listening address, or the server asked.
    pub responder: Option<SocketAddr>,
    /// When the query was received or sent.
    pub query_time: SystemTime,
    /// The query, as on the wire.
    pub query: &'a [u8],
    /// For the resolver: the zone the server was asked about, in wire format.
    pub zone: Option<&'a [u8]>,
    /// The response and when it was sent or received; `None` when there was none
    /// (dropped, timed out).
    pub response: Option<(SystemTime, &'a [u8])>,
}

/// The four exchanges Sextant logs, each with a query and a response entry type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// A query for our zones, answered by the authority (AUTH_*).
    Auth,
    /// A recursive query, answered by the resolver (CLIENT_*).
    Client,
    /// The resolver asking an authoritative server (RESOLVER_*).
    Resolver,
    /// The resolver asking a forwarder, recursion desired (FORWARDER_*).
    Forwarder,
}

impl Exchange {
    pub(crate) fn entry_types(self) -> (EntryType, EntryType) {
        match self {
            Exchange::Auth => (EntryType::AuthQuery, EntryType::AuthResponse),
            Exchange::Client => (EntryType::ClientQuery, EntryType::ClientResponse),
            Exchange::Resolver => (EntryType::ResolverQuery, EntryType::ResolverResponse),
            Exchange::Forwarder => (EntryType::ForwarderQuery, EntryType::ForwarderResponse),
        }
    }
}

/// The transport, as dnstap names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Plain UDP.
    Udp,
    /// Plain TCP.
    Tcp,
    /// DNS over TLS.
    Dot,
    /// DNS over HTTPS (HTTP/2).
    Doh,
}

impl Protocol {
    fn to_schema(self) -> schema::SocketProtocol {
        match self {
            Protocol::Udp => schema::SocketProtocol::Udp,
            Protocol::Tcp => schema::SocketProtocol::Tcp,
            Protocol::Dot => schema::SocketProtocol::Dot,
            Protocol::Doh => schema::SocketProtocol::Doh,
        }
    }
}

/// Which entry types are written: one bit per dnstap message type.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Selection(u32);

impl Selection {
    pub(crate) fn of(messages: &[DnstapMessage]) -> Self {
        Selection(
            messages
                .iter()
                .fold(0, |bits, m| bits | bit(entry_type(*m))),
        )
    }

    pub(crate) fn has(self, entry: EntryType) -> bool {
        self.0 & bit(entry) != 0
    }

    /// How many entries an encoder makes of `event`.
    pub(crate) fn count(self, event: &Event<'_>) -> u64 {
        let (query_type, response_type) = event.exchange.entry_types();
        u64::from(self.has(query_type))
            + u64::from(event.response.is_some() && self.has(response_type))
    }

    pub(crate) fn any_of(self, exchange: Exchange) -> bool {
        let (query, response) = exchange.entry_types();
        self.has(query) || self.has(response)
    }
}

fn bit(entry: EntryType) -> u32 {
    1 << (entry as u32)
}

fn entry_type(message: DnstapMessage) -> EntryType {
    match message {
        DnstapMessage::AuthQuery => EntryType::AuthQuery,
        DnstapMessage::AuthResponse => EntryType::AuthResponse,
        DnstapMessage::ResolverQuery => EntryType::ResolverQuery,
        DnstapMessage::ResolverResponse => EntryType::ResolverResponse,
        DnstapMessage::ClientQuery => EntryType::ClientQuery,
        DnstapMessage::ClientResponse => EntryType::ClientResponse,
        DnstapMessage::ForwarderQuery => EntryType::ForwarderQuery,
        DnstapMessage::ForwarderResponse => EntryType::ForwarderResponse,
    }
}

/// Turns events into data frames; runs on the query path, into its thread's shard.
///
/// Entries are written field by field with prost's wire primitives rather than by
/// building the schema's structs: no allocation per entry, the DNS messages copied
/// once (into the batch), every length known when written. The schema's structs
/// read them back in the tests, and so does every dnstap reader.
#[derive(Clone, Debug)]
pub(crate) struct Encoder {
    pub(crate) identity: Option<Bytes>,
    pub(crate) version: Option<Bytes>,
    pub(crate) selection: Selection,
    /// The inner message of the entry being written (its length comes first).
    scratch: Vec<u8>,
}

impl Encoder {
    pub(crate) fn new(
        identity: Option<Bytes>,
        version: Option<Bytes>,
        selection: Selection,
    ) -> Self {
        Self {
            identity,
            version,
            selection,
            scratch: Vec::with_capacity(1024),
        }
    }

    /// Appends the event's selected entries to `out` as data frames; how many.
    pub(crate) fn frames(&mut self, event: &Event<'_>, out: &mut Vec<u8>) -> u64 {
        let (query_type, response_type) = event.exchange.entry_types();
        let mut written = 0;
        if self.selection.has(query_type) {
            self.entry(event, query_type, Some(event.query), None, out);
            written += 1;
        }
        if let Some((time, response)) = event.response
            && self.selection.has(response_type)
        {
            self.entry(event, response_type, None, Some((time, response)), out);
            written += 1;
        }
        written
    }

    /// One data frame: its length, then a `Dnstap` holding one `Message`.
    fn entry(
        &mut self,
        event: &Event<'_>,
        entry: EntryType,
        query: Option<&[u8]>,
        response: Option<(SystemTime, &[u8])>,
        out: &mut Vec<u8>,
    ) {
        let message = &mut self.scratch;
        message.clear();
        let family = match event.initiator.ip() {
            IpAddr::V4(_) => schema::SocketFamily::Inet,
            IpAddr::V6(_) => schema::SocketFamily::Inet6,
        };
        // Both addresses are read in the family above: a responder of the other
        // family is left out.
        let responder = event
            .responder
            .filter(|r| r.is_ipv4() == event.initiator.is_ipv4());
        varint(1, entry as u64, message);
        varint(2, family as u64, message);
        varint(3, event.protocol.to_schema() as u64, message);
        address(4, event.initiator.ip(), message);
        if let Some(responder) = responder {
            address(5, responder.ip(), message);
        }
        varint(6, u64::from(event.initiator.port()), message);
        if let Some(responder) = responder {
            varint(7, u64::from(responder.port()), message);
        }
        let (sec, nsec) = since_epoch(event.query_time);
        varint(8, sec, message);
        fixed32(9, nsec, message);
        if let Some(query) = query {
            bytes(10, query, message);
        }
        if let Some(zone) = event.zone {
            bytes(11, zone, message);
        }
        if let Some((time, response)) = response {
            let (sec, nsec) = since_epoch(time);
            varint(12, sec, message);
            fixed32(13, nsec, message);
            bytes(14, response, message);
        }
        if event.protocol == Protocol::Doh {
            varint(16, schema::HttpProtocol::Http2 as u64, message);
        }

        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        if let Some(identity) = &self.identity {
            bytes(1, identity, out);
        }
        if let Some(version) = &self.version {
            bytes(2, version, out);
        }
        bytes(14, &self.scratch, out);
        varint(15, schema::dnstap::Type::Message as u64, out);
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }
}

fn varint(tag: u32, value: u64, out: &mut Vec<u8>) {
    encode_key(tag, WireType::Varint, out);
    encode_varint(value, out);
}

fn fixed32(tag: u32, value: u32, out: &mut Vec<u8>) {
    encode_key(tag, WireType::ThirtyTwoBit, out);
    out.extend_from_slice(&value.to_le_bytes());
}

fn bytes(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

fn address(tag: u32, ip: IpAddr, out: &mut Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => bytes(tag, &v4.octets(), out),
        IpAddr::V6(v6) => bytes(tag, &v6.octets(), out),
    }
}

fn since_epoch(time: SystemTime) -> (u64, u32) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    (since.as_secs(), since.subsec_nanos())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use prost::Message as _;

    use super::*;

    fn event() -> Event<'static> {
        Event {
            exchange: Exchange::Client,
            protocol: Protocol::Doh,
            initiator: "192.0.2.7:5300".parse().unwrap(),
            responder: Some("192.0.2.1:443".parse().unwrap()),
            query_time: UNIX_EPOCH + Duration::new(1_700_000_000, 5),
            query: b"query",
            zone: None,
            response: Some((UNIX_EPOCH + Duration::new(1_700_000_001, 7), b"response")),
        }
    }

    fn decode(frames: &[u8]) -> Vec<schema::Dnstap> {
        let mut rest = frames;
        let mut entries = Vec::new();
        while let Some((len, tail)) = rest.split_first_chunk::<4>() {
            let len = u32::from_be_bytes(*len) as usize;
            entries.push(schema::Dnstap::decode(&tail[..len]).unwrap());
            rest = &tail[len..];
        }
        entries
    }

    #[test]
    fn an_exchange_makes_a_query_and_a_response_entry() {
        let mut encoder = Encoder::new(
            Some(Bytes::from_static(b"ns1")),
            None,
            Selection::of(&DnstapMessage::LISTENER),
        );
        let mut out = Vec::new();
        assert_eq!(encoder.frames(&event(), &mut out), 2);
        let entries = decode(&out);
        let [query, response] = entries.as_slice() else {
            panic!("two entries expected");
        };
        assert_eq!(query.identity.as_deref(), Some(&b"ns1"[..]));
        let q = query.message.as_ref().unwrap();
        assert_eq!(q.r#type, EntryType::ClientQuery as i32);
        assert_eq!(q.socket_protocol, Some(schema::SocketProtocol::Doh as i32));
        assert_eq!(q.http_protocol, Some(schema::HttpProtocol::Http2 as i32));
        assert_eq!(q.query_address.as_deref(), Some(&[192, 0, 2, 7][..]));
        assert_eq!(q.query_port, Some(5300));
        assert_eq!(q.response_port, Some(443));
        assert_eq!(
            (q.query_time_sec, q.query_time_nsec),
            (Some(1_700_000_000), Some(5))
        );
        assert_eq!(q.query_message.as_deref(), Some(&b"query"[..]));
        assert_eq!(q.response_message, None);
        let r = response.message.as_ref().unwrap();
        assert_eq!(r.r#type, EntryType::ClientResponse as i32);
        assert_eq!(r.response_time_sec, Some(1_700_000_001));
        assert_eq!(r.response_message.as_deref(), Some(&b"response"[..]));
        assert_eq!(r.query_time_sec, Some(1_700_000_000));
    }

    #[test]
    fn only_selected_entries_are_written() {
        let mut encoder = Encoder::new(None, None, Selection::of(&[DnstapMessage::ClientResponse]));
        let mut out = Vec::new();
        assert_eq!(encoder.frames(&event(), &mut out), 1);
        let mut unanswered = event();
        unanswered.response = None;
        assert_eq!(encoder.frames(&unanswered, &mut out), 0);
        let mut auth = event();
        auth.exchange = Exchange::Auth;
        assert_eq!(encoder.frames(&auth, &mut out), 0);
        assert!(encoder.selection.any_of(Exchange::Client));
        assert!(!encoder.selection.any_of(Exchange::Resolver));
    }

    #[test]
    fn a_responder_of_another_family_is_left_out() {
        let mut encoder = Encoder::new(None, None, Selection::of(&DnstapMessage::LISTENER));
        let mut mixed = event();
        mixed.responder = Some("[2001:db8::1]:53".parse().unwrap());
        let mut out = Vec::new();
        encoder.frames(&mixed, &mut out);
        let message = decode(&out)[0].message.clone().unwrap();
        assert_eq!(
            message.socket_family,
            Some(schema::SocketFamily::Inet as i32)
        );
        assert_eq!(message.response_address, None);
        assert_eq!(message.response_port, None);
    }

    #[test]
    fn a_resolver_entry_over_ipv6_carries_the_zone_and_both_times() {
        let mut encoder = Encoder::new(
            None,
            Some(Bytes::from_static(b"sextant test")),
            Selection::of(&DnstapMessage::RESOLVER),
        );
        let upstream = Event {
            exchange: Exchange::Resolver,
            protocol: Protocol::Tcp,
            initiator: "[2001:db8::53]:40000".parse().unwrap(),
            responder: Some("[2001:db8::1]:53".parse().unwrap()),
            query_time: UNIX_EPOCH + Duration::new(1_800_000_000, 999_999_999),
            query: b"q",
            zone: Some(b"\x07example\x00"),
            response: Some((UNIX_EPOCH + Duration::new(1_800_000_001, 0), b"")),
        };
        let mut out = Vec::new();
        assert_eq!(encoder.frames(&upstream, &mut out), 2);
        let entries = decode(&out);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].version.as_deref(), Some(&b"sextant test"[..]));
        assert_eq!(entries[0].identity, None);
        for entry in &entries {
            assert_eq!(entry.r#type, schema::dnstap::Type::Message as i32);
            let m = entry.message.as_ref().unwrap();
            assert_eq!(m.socket_family, Some(schema::SocketFamily::Inet6 as i32));
            assert_eq!(m.socket_protocol, Some(schema::SocketProtocol::Tcp as i32));
            assert_eq!(m.query_address.as_ref().map(|a| a.len()), Some(16));
            assert_eq!(m.response_address.as_ref().map(|a| a.len()), Some(16));
            assert_eq!(m.response_port, Some(53));
            assert_eq!(m.query_zone.as_deref(), Some(&b"\x07example\x00"[..]));
            assert_eq!(m.query_time_nsec, Some(999_999_999));
            assert_eq!(m.http_protocol, None);
        }
        let response = entries[1].message.as_ref().unwrap();
        assert_eq!(response.r#type, EntryType::ResolverResponse as i32);
        assert_eq!(response.response_time_sec, Some(1_800_000_001));
        // An empty message is still there, empty.
        assert_eq!(response.response_message.as_deref(), Some(&b""[..]));
        assert_eq!(response.query_message, None);
    }
}
