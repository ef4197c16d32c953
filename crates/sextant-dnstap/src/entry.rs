//! What the query path hands over (an [`Event`]: one exchange, raw bytes and times),
//! and the dnstap entries the writer thread makes of it.

use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message as _;
use sextant_config::DnstapMessage;

use crate::schema;
use crate::schema::message::Type as EntryType;

/// One exchange: a query, and its response when there was one. The writer makes
/// up to two entries of it (the query's and the response's), as selected.
#[derive(Clone, Debug)]
pub struct Event {
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
    pub query: Bytes,
    /// For the resolver: the zone the server was asked about, in wire format.
    pub zone: Option<Bytes>,
    /// The response and when it was sent or received; `None` when there was none
    /// (dropped, timed out).
    pub response: Option<(SystemTime, Bytes)>,
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

/// Turns events into data frames; runs on the writer thread.
#[derive(Debug)]
pub(crate) struct Encoder {
    pub(crate) identity: Option<Bytes>,
    pub(crate) version: Option<Bytes>,
    pub(crate) selection: Selection,
}

impl Encoder {
    /// Appends the event's selected entries to `out` as data frames; how many.
    /// The messages are moved into the entries, not copied.
    pub(crate) fn frames(&self, mut event: Event, out: &mut Vec<u8>) -> u64 {
        let (query_type, response_type) = event.exchange.entry_types();
        let response = event.response.take();
        let query = std::mem::take(&mut event.query);
        let mut written = 0;
        if self.selection.has(query_type) {
            let mut message = self.message(&event, query_type);
            message.query_message = Some(query);
            self.push(message, out);
            written += 1;
        }
        if let Some((time, response)) = response
            && self.selection.has(response_type)
        {
            let mut message = self.message(&event, response_type);
            let (sec, nsec) = since_epoch(time);
            message.response_time_sec = Some(sec);
            message.response_time_nsec = Some(nsec);
            message.response_message = Some(response);
            self.push(message, out);
            written += 1;
        }
        written
    }

    /// How many entries `frames` would make of `event`.
    pub(crate) fn count(&self, event: &Event) -> u64 {
        let (query_type, response_type) = event.exchange.entry_types();
        u64::from(self.selection.has(query_type))
            + u64::from(event.response.is_some() && self.selection.has(response_type))
    }

    /// What the query and response entries share.
    fn message(&self, event: &Event, entry: EntryType) -> schema::Message {
        let (sec, nsec) = since_epoch(event.query_time);
        let family = match event.initiator.ip() {
            IpAddr::V4(_) => schema::SocketFamily::Inet,
            IpAddr::V6(_) => schema::SocketFamily::Inet6,
        };
        // Both addresses are read in the family above: a responder of the other
        // family is left out.
        let responder = event
            .responder
            .filter(|r| r.is_ipv4() == event.initiator.is_ipv4());
        schema::Message {
            r#type: entry as i32,
            socket_family: Some(family as i32),
            socket_protocol: Some(event.protocol.to_schema() as i32),
            query_address: Some(address(event.initiator.ip())),
            query_port: Some(u32::from(event.initiator.port())),
            response_address: responder.map(|r| address(r.ip())),
            response_port: responder.map(|r| u32::from(r.port())),
            query_time_sec: Some(sec),
            query_time_nsec: Some(nsec),
            query_zone: event.zone.clone(),
            http_protocol: (event.protocol == Protocol::Doh)
                .then_some(schema::HttpProtocol::Http2 as i32),
            ..Default::default()
        }
    }

    fn push(&self, message: schema::Message, out: &mut Vec<u8>) {
        let entry = schema::Dnstap {
            identity: self.identity.clone(),
            version: self.version.clone(),
            extra: None,
            r#type: schema::dnstap::Type::Message as i32,
            message: Some(message),
        };
        let len = entry.encoded_len();
        out.reserve(4 + len);
        out.extend_from_slice(&(len as u32).to_be_bytes());
        // A Vec grows as needed: encoding into it cannot fail.
        let _ = entry.encode(out);
    }
}

fn address(ip: IpAddr) -> Bytes {
    match ip {
        IpAddr::V4(v4) => Bytes::copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => Bytes::copy_from_slice(&v6.octets()),
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

    use super::*;

    fn event() -> Event {
        Event {
            exchange: Exchange::Client,
            protocol: Protocol::Doh,
            initiator: "192.0.2.7:5300".parse().unwrap(),
            responder: Some("192.0.2.1:443".parse().unwrap()),
            query_time: UNIX_EPOCH + Duration::new(1_700_000_000, 5),
            query: Bytes::from_static(b"query"),
            zone: None,
            response: Some((
                UNIX_EPOCH + Duration::new(1_700_000_001, 7),
                Bytes::from_static(b"response"),
            )),
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
        let encoder = Encoder {
            identity: Some(Bytes::from_static(b"ns1")),
            version: None,
            selection: Selection::of(&DnstapMessage::LISTENER),
        };
        let mut out = Vec::new();
        assert_eq!(encoder.frames(event(), &mut out), 2);
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
        let encoder = Encoder {
            identity: None,
            version: None,
            selection: Selection::of(&[DnstapMessage::ClientResponse]),
        };
        let mut out = Vec::new();
        assert_eq!(encoder.frames(event(), &mut out), 1);
        let mut unanswered = event();
        unanswered.response = None;
        assert_eq!(encoder.frames(unanswered, &mut out), 0);
        let mut auth = event();
        auth.exchange = Exchange::Auth;
        assert_eq!(encoder.frames(auth, &mut out), 0);
        assert!(encoder.selection.any_of(Exchange::Client));
        assert!(!encoder.selection.any_of(Exchange::Resolver));
    }

    #[test]
    fn a_responder_of_another_family_is_left_out() {
        let encoder = Encoder {
            identity: None,
            version: None,
            selection: Selection::of(&DnstapMessage::LISTENER),
        };
        let mut mixed = event();
        mixed.responder = Some("[2001:db8::1]:53".parse().unwrap());
        let mut out = Vec::new();
        encoder.frames(mixed, &mut out);
        let message = decode(&out)[0].message.clone().unwrap();
        assert_eq!(
            message.socket_family,
            Some(schema::SocketFamily::Inet as i32)
        );
        assert_eq!(message.response_address, None);
        assert_eq!(message.response_port, None);
    }
}
