//! The transport-independent query path: read the question, decide, and either
//! answer at once (errors, refusals) or forward the raw message to a backend.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use sextant_rpc::{Query, QueryClient, Transport};
use sextant_wire::consts::*;
use sextant_wire::{Header, QueryView, parse_query, write_chaos_txt, write_error_response};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::packet_cache::{CacheKey, PacketCache};
use crate::route::{Route, Router};
use crate::rrl::{Rrl, Verdict, slip_response};
use crate::stats;

/// What to do with one incoming message.
/// A UDP query on its way to a backend (see [`Frontend::forward_udp`]).
#[derive(Debug)]
pub struct UdpForward {
    pub backend: Backend,
    pub packet: Bytes,
    pub client: SocketAddr,
    pub max_response_size: u16,
    pub cache: Option<(CacheKey, u64)>,
}

#[derive(Debug)]
pub enum Decision {
    /// Send these bytes back now.
    Reply(Vec<u8>),
    /// Send nothing (not a query, or unreadable).
    Drop,
    /// Ask the backend; `max_response_size` is what the client can take; `cache` says
    /// where to keep the answer (key and zone-set generation), if anywhere.
    Forward {
        backend: Backend,
        max_response_size: u16,
        cache: Option<(CacheKey, u64)>,
    },
}

/// The daemon a forwarded message goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Authority,
    /// Recursive queries outside our zones, from clients allowed to recurse.
    Resolver,
    /// NOTIFY messages, for the secondary zones.
    Transfer,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Authority => "authority",
            Backend::Resolver => "resolver",
            Backend::Transfer => "transfer",
        }
    }
}

/// Address-based access control (checked before anything else is read).
#[derive(Debug, Default)]
pub struct Acl {
    pub allow_query: Vec<ipnet::IpNet>,
    pub allow_recursion: Vec<ipnet::IpNet>,
    pub blackhole: Vec<ipnet::IpNet>,
}

impl Acl {
    pub fn is_blackholed(&self, ip: std::net::IpAddr) -> bool {
        self.blackhole
            .iter()
            .any(|net| net.contains(&canonical(ip)))
    }

    pub fn may_query(&self, ip: std::net::IpAddr) -> bool {
        self.allow_query
            .iter()
            .any(|net| net.contains(&canonical(ip)))
    }

    pub fn may_recurse(&self, ip: std::net::IpAddr) -> bool {
        self.allow_recursion
            .iter()
            .any(|net| net.contains(&canonical(ip)))
    }
}

/// IPv4 clients on a dual-stack socket appear as ::ffff:a.b.c.d; match them as IPv4.
fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

/// What SIGHUP may change without a restart: swapped whole, so a packet sees one
/// policy from start to end.
#[derive(Debug, Default)]
pub struct Policy {
    /// Who may query (others: REFUSED), recurse, or is ignored entirely.
    pub acl: Acl,
    /// CH TXT answers for `version.bind` and `id.server`; `None` = REFUSED.
    pub version: Option<String>,
    pub identity: Option<String>,
    /// Response rate limiting of UDP answers; `None` = off.
    pub rrl: Option<Rrl>,
}

/// Cheap to clone: a UDP worker holds a clone with lanes of its own to the backends;
/// the packet cache and the policy are shared by all.
#[derive(Clone, Debug)]
pub struct Frontend {
    pub router: Arc<Router>,
    /// `None` in a resolver-only setup.
    pub authority: Option<QueryClient>,
    /// `None` when no resolver is configured: recursive queries are REFUSED.
    pub resolver: Option<QueryClient>,
    /// Follows the resolver's cache generation (bumped by flushes), so that its
    /// answers leave the packet cache when its own cache is flushed.
    pub resolver_generation: Option<Arc<Router>>,
    /// The transfer daemon, when one is configured (NOTIFY).
    pub transfer: Option<QueryClient>,
    /// Largest UDP response we send, bytes.
    pub udp_payload_size: u16,
    /// `None` when disabled in the configuration.
    pub packet_cache: Option<Arc<PacketCache>>,
    pub policy: Arc<ArcSwap<Policy>>,
}

/// `version.bind`, `version.server` (RFC 4892 §2), lower-cased wire form.
const VERSION_NAMES: [&[u8]; 2] = [b"\x07version\x04bind\x00", b"\x07version\x06server\x00"];
/// `id.server` (RFC 4892), `hostname.bind`.
const IDENTITY_NAMES: [&[u8]; 2] = [b"\x02id\x06server\x00", b"\x08hostname\x04bind\x00"];

impl Frontend {
    /// Decides from the client, the header, question and OPT alone.
    pub fn decide(&self, packet: &[u8], client: SocketAddr, transport: Transport) -> Decision {
        let policy = self.policy.load();
        if policy.acl.is_blackholed(client.ip()) {
            stats::dropped("blackhole");
            return Decision::Drop;
        }
        stats::query(transport);
        let view = match parse_query(packet) {
            Ok(view) => view,
            Err(None) => {
                stats::dropped("not_a_query");
                return Decision::Drop;
            }
            Err(Some(malformed)) => {
                if !policy.acl.may_query(client.ip()) {
                    stats::dropped("malformed_from_stranger");
                    return Decision::Drop;
                }
                return self.reply(packet, &malformed.header, None, u16::from(RCODE_FORMERR));
            }
        };
        stats::question(view.question.qtype);
        if !policy.acl.may_query(client.ip()) {
            return self.reply(packet, &view.header, Some(&view), u16::from(RCODE_REFUSED));
        }
        if view.header.opcode() == OPCODE_NOTIFY && self.transfer.is_some() {
            return Decision::Forward {
                backend: Backend::Transfer,
                max_response_size: self.max_response_size(&view, transport),
                cache: None,
            };
        }
        if view.header.opcode() != OPCODE_QUERY {
            return self.reply(packet, &view.header, Some(&view), u16::from(RCODE_NOTIMP));
        }
        if view.edns.is_some_and(|edns| edns.version > 0) {
            return self.reply(packet, &view.header, Some(&view), RCODE_BADVERS);
        }
        if view.question.qclass == CLASS_CH {
            return self.chaos(packet, &view, &policy);
        }
        let zone_transfer = matches!(view.question.qtype, TYPE_AXFR | TYPE_IXFR);
        if zone_transfer && transport == Transport::Udp {
            // Transfers are streams of messages: TCP only (RFC 5936 §4.2).
            return self.reply(packet, &view.header, Some(&view), u16::from(RCODE_REFUSED));
        }
        let backend = match self.router.route(&view.question) {
            Route::Authority => Backend::Authority,
            Route::Refuse if self.recursion_for(&view, client, &policy) => Backend::Resolver,
            Route::Refuse => {
                return self.reply(packet, &view.header, Some(&view), u16::from(RCODE_REFUSED));
            }
            Route::Unknown => {
                return self.reply(packet, &view.header, Some(&view), u16::from(RCODE_SERVFAIL));
            }
        };
        let max_response_size = self.max_response_size(&view, transport);
        let cache = match (&self.packet_cache, self.cache_generation()) {
            (Some(cache), Some(generation)) => {
                if let Some(hit) = cache.answer(packet, &view, generation, max_response_size) {
                    stats::answered(stats::Source::Cache, &hit);
                    return Decision::Reply(hit);
                }
                // A signed query must reach the backend every time.
                (!view.signed).then(|| (CacheKey::of(&view), generation))
            }
            _ => None,
        };
        Decision::Forward {
            backend,
            max_response_size,
            cache,
        }
    }

    /// Whether a query outside our zones goes to the resolver: one is configured,
    /// the client asked for recursion and may have it.
    fn recursion_for(&self, view: &QueryView, client: SocketAddr, policy: &Policy) -> bool {
        self.resolver.is_some()
            && view.header.recursion_desired()
            && policy.acl.may_recurse(client.ip())
    }

    /// Response rate limiting of a UDP response: `None` sends it as it is; `Some`
    /// sends the bytes given instead (the truncated slip answer), or nothing if empty.
    /// Answers to clients that may recurse and asked for recursion are exempt: they
    /// are our own networks, not forged victims.
    pub fn rate_limit(&self, response: &[u8], client: SocketAddr) -> Option<Vec<u8>> {
        let policy = self.policy.load();
        let Some(rrl) = &policy.rrl else {
            return None;
        };
        let recursive = response.get(2).is_some_and(|flags| flags & 0x01 != 0);
        if recursive && policy.acl.may_recurse(client.ip()) {
            return None;
        }
        let question_end = sextant_wire::question_end(response)?;
        let name = response.get(HEADER_LEN..question_end - 4)?;
        let qtype = u16::from_be_bytes([response[question_end - 4], response[question_end - 3]]);
        let rcode = response[3] & 0x0f;
        let answers = u16::from_be_bytes([response[6], response[7]]);
        let kind = match (rcode, answers) {
            (0, 0) => 1, // NODATA or referral
            (0, _) => 0,
            (3, _) => 2,
            _ => 3,
        };
        match rrl.check(client.ip(), name, qtype, kind) {
            Verdict::Send => None,
            Verdict::Slip => {
                stats::dropped("rrl_slip");
                Some(slip_response(response, question_end).unwrap_or_default())
            }
            Verdict::Drop => {
                stats::dropped("rrl");
                Some(Vec::new())
            }
        }
    }

    /// The packet cache's generation: changes when the authority's zone set changes
    /// or the resolver's cache is flushed, so either drops every cached answer.
    fn cache_generation(&self) -> Option<u64> {
        let zones = self.router.generation()?;
        let resolver = match &self.resolver_generation {
            Some(router) => router.generation()?,
            None => 0,
        };
        Some((zones << 32) ^ (resolver & 0xffff_ffff))
    }

    /// Forwards to a backend; SERVFAIL when it is down or too slow.
    pub async fn forward(
        &self,
        backend: Backend,
        packet: Bytes,
        client: SocketAddr,
        transport: Transport,
        max_response_size: u16,
        cache: Option<(CacheKey, u64)>,
    ) -> Option<Bytes> {
        let Some(backend_client) = self.backend_client(backend) else {
            stats::backend_failed(backend);
            return self.servfail(&packet).map(Bytes::from);
        };
        let query = Query {
            wire: packet.clone(),
            client,
            transport,
            max_response_size,
        };
        let started = std::time::Instant::now();
        let outcome = backend_client.query(query).await;
        self.finish(backend, &packet, client, cache, started, outcome)
    }

    /// Forwards a UDP query without a task of its own: the backend lane sends the
    /// answer from its task when it arrives (or SERVFAIL at the deadline). `permit`
    /// is the query's place in the in-flight bound, released once it is answered.
    pub fn forward_udp(
        self: &Arc<Self>,
        socket: &Arc<UdpSocket>,
        forward: UdpForward,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let UdpForward {
            backend,
            packet,
            client,
            max_response_size,
            cache,
        } = forward;
        let Some(backend_client) = self.backend_client(backend) else {
            stats::backend_failed(backend);
            if let Some(servfail) = self.servfail(&packet) {
                self.send_udp(socket, &servfail, client);
            }
            return;
        };
        let query = Query {
            wire: packet.clone(),
            client,
            transport: Transport::Udp,
            max_response_size,
        };
        let started = std::time::Instant::now();
        let frontend = self.clone();
        let socket = socket.clone();
        backend_client.submit(
            query,
            Box::new(move |outcome| {
                if let Some(bytes) =
                    frontend.finish(backend, &packet, client, cache, started, outcome)
                {
                    frontend.send_udp(&socket, &bytes, client);
                }
                drop(permit);
            }),
        );
    }

    /// Sends a UDP answer unless rate limiting replaces it (slip) or drops it. Never
    /// waits: with the socket's send buffer full the answer is lost like any datagram.
    pub fn send_udp(&self, socket: &UdpSocket, bytes: &[u8], client: SocketAddr) {
        let limited = self.rate_limit(bytes, client);
        let bytes = match &limited {
            None => bytes,
            Some(instead) if instead.is_empty() => return,
            Some(instead) => instead,
        };
        if let Err(error) = socket.try_send_to(bytes, client) {
            if error.kind() == std::io::ErrorKind::WouldBlock {
                stats::dropped("send_buffer_full");
            } else {
                tracing::debug!(%error, %client, "UDP send failed");
            }
        }
    }

    fn backend_client(&self, backend: Backend) -> Option<&QueryClient> {
        match backend {
            Backend::Authority => self.authority.as_ref(),
            Backend::Resolver => self.resolver.as_ref(),
            Backend::Transfer => self.transfer.as_ref(),
        }
    }

    /// What a backend's outcome becomes: its answer (kept in the packet cache when
    /// it may be), nothing when it chose silence, SERVFAIL when it failed.
    fn finish(
        &self,
        backend: Backend,
        packet: &[u8],
        client: SocketAddr,
        cache: Option<(CacheKey, u64)>,
        started: std::time::Instant,
        outcome: Result<sextant_rpc::Answer, sextant_rpc::RpcError>,
    ) -> Option<Bytes> {
        match outcome {
            Ok(answer) if answer.wire.is_empty() => None,
            Ok(answer) => {
                stats::backend_answered(backend, started.elapsed());
                stats::answered(stats::Source::Backend, &answer.wire);
                if let (Some(store), Some((key, generation))) = (&self.packet_cache, cache) {
                    // Recursive answers age in the cache like in the resolver's own;
                    // authoritative ones keep the zone's TTLs.
                    let ages = backend == Backend::Resolver;
                    store.store(key, answer.wire.clone(), generation, answer.cache_ttl, ages);
                }
                Some(answer.wire)
            }
            Err(error) => {
                stats::backend_failed(backend);
                tracing::debug!(%error, %client, "backend failed; answering SERVFAIL");
                self.servfail(packet).map(Bytes::from)
            }
        }
    }

    /// A zone transfer asked over TCP: the backend's messages in order, or the one
    /// answer decided here (REFUSED and the like).
    pub async fn transfer(&self, packet: Bytes, client: SocketAddr) -> mpsc::Receiver<Bytes> {
        let (sender, receiver) = mpsc::channel(4);
        let decision = self.decide(&packet, client, Transport::Tcp);
        let single = |bytes: Option<Bytes>| {
            if let Some(bytes) = bytes {
                let _ = sender.try_send(bytes);
            }
        };
        match decision {
            Decision::Reply(bytes) => single(Some(Bytes::from(bytes))),
            Decision::Drop => {}
            Decision::Forward { backend, .. } => {
                let Some(backend_client) = self.backend_client(backend) else {
                    single(self.servfail(&packet).map(Bytes::from));
                    return receiver;
                };
                let query = Query {
                    wire: packet.clone(),
                    client,
                    transport: Transport::Tcp,
                    max_response_size: u16::MAX,
                };
                match backend_client.transfer(query).await {
                    Ok(mut messages) => {
                        tokio::spawn(async move {
                            while let Some(Ok(message)) = messages.recv().await {
                                if sender.send(message).await.is_err() {
                                    return;
                                }
                            }
                        });
                    }
                    Err(error) => {
                        stats::backend_failed(backend);
                        tracing::debug!(%error, %client, "zone transfer failed at the backend");
                        single(self.servfail(&packet).map(Bytes::from));
                    }
                }
            }
        }
        receiver
    }

    /// Decides, and forwards when needed.
    pub async fn answer(
        &self,
        packet: Bytes,
        client: SocketAddr,
        transport: Transport,
    ) -> Option<Bytes> {
        match self.decide(&packet, client, transport) {
            Decision::Reply(bytes) => Some(Bytes::from(bytes)),
            Decision::Drop => None,
            Decision::Forward {
                backend,
                max_response_size,
                cache,
            } => {
                self.forward(backend, packet, client, transport, max_response_size, cache)
                    .await
            }
        }
    }

    fn servfail(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let view = parse_query(packet).ok()?;
        let mut out = Vec::with_capacity(64);
        write_error_response(
            &mut out,
            packet,
            &view.header,
            Some(&view),
            u16::from(RCODE_SERVFAIL),
            self.udp_payload_size,
        );
        stats::answered(stats::Source::Listener, &out);
        Some(out)
    }

    /// CH class: the server's version or identity when configured, REFUSED otherwise.
    fn chaos(&self, packet: &[u8], view: &QueryView, policy: &Policy) -> Decision {
        let name = view.question.name_wire();
        let text = if view.question.qtype != TYPE_TXT {
            None
        } else if VERSION_NAMES.contains(&name) {
            policy.version.as_deref()
        } else if IDENTITY_NAMES.contains(&name) {
            policy.identity.as_deref()
        } else {
            None
        };
        match text {
            Some(text) => {
                let mut out = Vec::with_capacity(64 + text.len());
                write_chaos_txt(&mut out, packet, view, text, self.udp_payload_size);
                stats::answered(stats::Source::Listener, &out);
                Decision::Reply(out)
            }
            None => self.reply(packet, &view.header, Some(view), u16::from(RCODE_REFUSED)),
        }
    }

    fn reply(
        &self,
        packet: &[u8],
        header: &Header,
        view: Option<&QueryView>,
        rcode: u16,
    ) -> Decision {
        let mut out = Vec::with_capacity(64);
        write_error_response(&mut out, packet, header, view, rcode, self.udp_payload_size);
        stats::answered(stats::Source::Listener, &out);
        Decision::Reply(out)
    }

    /// The client's limit: 65535 over TCP; over UDP its EDNS size (at least 512)
    /// capped by ours, or 512 without EDNS.
    fn max_response_size(&self, view: &QueryView, transport: Transport) -> u16 {
        match (transport, view.edns) {
            (Transport::Tcp, _) => u16::MAX,
            (Transport::Udp, None) => CLASSIC_UDP_SIZE,
            (Transport::Udp, Some(edns)) => edns.payload_size.clamp(
                CLASSIC_UDP_SIZE,
                self.udp_payload_size.max(CLASSIC_UDP_SIZE),
            ),
        }
    }
}
