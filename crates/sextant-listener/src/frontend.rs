//! The transport-independent query path: read the question once, decide, and either
//! answer at once (errors, refusals, cache hits) or forward the raw message to a
//! backend (`forward`).

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use sextant_rpc::{QueryPool, Transport};
use sextant_wire::consts::*;
use sextant_wire::{
    BadQuery, ExtendedError, Header, QueryView, Rcode, opcode, write_error_response,
};

use crate::backend::Backend;
use crate::cookie::{self, QueryCookie};
use crate::packet_cache::{CacheKey, PacketCache};
use crate::policy::Policy;
use crate::route::{Route, Router};
use crate::rrl::QuestionKey;
use crate::stats;

/// What to do with one incoming message.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Send these bytes back now.
    Reply {
        /// The response.
        wire: Vec<u8>,
        /// Its question, for rate limiting (`None` when it could not be read).
        question: Option<QuestionKey>,
        /// The backend whose answer it is (a packet cache hit); `None` when the
        /// listener wrote it.
        from: Option<Backend>,
    },
    /// Send nothing (not a query, unreadable from a stranger, or blackholed).
    Drop,
    /// Ask a backend.
    Forward(Forward),
}

/// A query on its way to a backend, with what the answer's handling needs.
#[derive(Clone, Debug)]
pub(crate) struct Forward {
    /// Where it goes.
    pub backend: Backend,
    /// What the client can take, bytes.
    pub max_response_size: u16,
    /// Where to keep the answer (key and zone-set generation), if anywhere.
    pub cache: Option<(CacheKey, u64)>,
    /// The question, for rate limiting the answer; `None` when the query proved
    /// its source address with a server cookie (exempt).
    pub question: Option<QuestionKey>,
    /// The client cookie the answer must carry back, with a server cookie.
    pub cookie: Option<[u8; 8]>,
    /// Set when the query is traced (`[trace]`, or marked by `sextantctl trace`).
    pub trace: Option<Box<crate::trace::Traced>>,
}

/// Cheap to clone: a UDP worker holds a clone with lanes of its own to the backends;
/// the packet cache and the policy are shared by all.
#[derive(Clone, Debug)]
pub(crate) struct Frontend {
    /// The zone set: which questions are the authority's.
    pub router: Arc<Router>,
    /// `None` in a resolver-only setup.
    pub authority: Option<QueryPool>,
    /// `None` when no resolver is configured: recursive queries are REFUSED.
    pub resolver: Option<QueryPool>,
    /// Follows the resolver's cache generation (bumped by flushes), so that its
    /// answers leave the packet cache when its own cache is flushed.
    pub resolver_generation: Option<Arc<crate::route::Generation>>,
    /// The transfer daemon, when one is configured (NOTIFY).
    pub transfer: Option<QueryPool>,
    /// Largest UDP response we send, bytes.
    pub udp_payload_size: u16,
    /// `None` when disabled in the configuration.
    pub packet_cache: Option<Arc<PacketCache>>,
    /// ACLs, CH TXT answers, rate limiting: swapped whole by SIGHUP.
    pub policy: Arc<ArcSwap<Policy>>,
    /// The dnstap log, when configured.
    pub dnstap: Option<sextant_dnstap::Tap>,
}

impl Frontend {
    /// Decides from the client, the header, question and OPT alone.
    pub(crate) fn decide(
        &self,
        packet: &[u8],
        client: SocketAddr,
        transport: Transport,
    ) -> Decision {
        self.decide_parsed(packet, sextant_wire::parse_query(packet), client, transport)
    }

    /// [`Frontend::decide`] for a message already read with `parse_query`.
    pub(crate) fn decide_parsed(
        &self,
        packet: &[u8],
        parsed: Result<QueryView, BadQuery>,
        client: SocketAddr,
        transport: Transport,
    ) -> Decision {
        let policy = self.policy.load();
        let cookie = match (&policy.cookies, &parsed) {
            (Some(cookies), Ok(view)) => cookies.read(view, packet, client.ip(), cookie::now()),
            _ => QueryCookie::None,
        };
        let mut decision = if let (QueryCookie::Malformed, Ok(view)) = (cookie, &parsed) {
            // RFC 7873 §5.2.2.
            stats::cookie("malformed");
            self.reply(packet, &view.header, Some(view), Rcode::FORMERR, None)
        } else {
            self.decide_for(packet, parsed, client, transport, &policy, cookie)
        };
        let Some(client_cookie) = cookie.client() else {
            return decision;
        };
        stats::cookie(if cookie.verified() { "valid" } else { "client" });
        match &mut decision {
            Decision::Reply { wire, question, .. } => {
                if let Some(cookies) = &policy.cookies {
                    let data = cookies.answer(&client_cookie, client.ip(), cookie::now());
                    sextant_wire::add_option(wire, sextant_wire::OPTION_COOKIE, &data);
                }
                if cookie.verified() {
                    *question = None;
                }
            }
            Decision::Forward(forward) => {
                forward.cookie = Some(client_cookie);
                if cookie.verified() {
                    forward.question = None;
                }
            }
            Decision::Drop => {}
        }
        decision
    }

    fn decide_for(
        &self,
        packet: &[u8],
        parsed: Result<QueryView, BadQuery>,
        client: SocketAddr,
        transport: Transport,
        policy: &Policy,
        cookie: QueryCookie,
    ) -> Decision {
        if policy.acl.is_blackholed(client.ip()) {
            stats::dropped("blackhole");
            return Decision::Drop;
        }
        stats::query(transport);
        let view = match parsed {
            Ok(view) => view,
            Err(BadQuery::Silent) => {
                stats::dropped("not_a_query");
                return Decision::Drop;
            }
            Err(BadQuery::Malformed(malformed)) => {
                if !policy.acl.may_query(client.ip()) {
                    stats::dropped("malformed_from_stranger");
                    return Decision::Drop;
                }
                return self.reply(packet, &malformed.header, None, Rcode::FORMERR, None);
            }
        };
        stats::question(view.question.qtype);
        if !policy.acl.may_query(client.ip()) {
            let ede = ExtendedError::prohibited("client not allowed to query");
            return self.reply(packet, &view.header, Some(&view), Rcode::REFUSED, Some(ede));
        }
        // RFC 7873 §5.2.3: under `require`, a cookie-aware UDP client must first
        // bring back a server cookie (the BADCOOKIE answer carries one).
        if transport == Transport::Udp
            && policy.cookies.as_ref().is_some_and(|c| c.require)
            && matches!(cookie, QueryCookie::Client(_))
        {
            return self.reply(packet, &view.header, Some(&view), Rcode::BADCOOKIE, None);
        }
        // Room for the cookie the answer will carry.
        let cookie_room = if cookie.client().is_some() {
            cookie::OPTION_LEN
        } else {
            0
        };
        let max_response_size = self
            .max_response_size(&view, transport)
            .saturating_sub(cookie_room)
            .max(sextant_wire::consts::CLASSIC_UDP_SIZE);
        let forward = |backend| {
            Decision::Forward(Forward {
                backend,
                max_response_size,
                cache: None,
                question: Some(QuestionKey::of(&view)),
                cookie: None,
                trace: policy.trace.choose(packet, &view, client.ip()),
            })
        };
        if view.header.opcode() == opcode::NOTIFY && self.transfer.is_some() {
            return forward(Backend::Transfer);
        }
        if view.header.opcode() != opcode::QUERY {
            return self.reply(packet, &view.header, Some(&view), Rcode::NOTIMP, None);
        }
        if view.edns.is_some_and(|edns| edns.version > 0) {
            return self.reply(packet, &view.header, Some(&view), Rcode::BADVERS, None);
        }
        if view.question.qclass == CLASS_CH {
            return self.chaos(packet, &view, policy);
        }
        let zone_transfer = matches!(view.question.qtype, TYPE_AXFR | TYPE_IXFR);
        if zone_transfer && transport == Transport::Udp {
            // Transfers are streams of messages: TCP only (RFC 5936 §4.2).
            let ede = ExtendedError::prohibited("zone transfers over TCP only");
            return self.reply(packet, &view.header, Some(&view), Rcode::REFUSED, Some(ede));
        }
        let backend = match self.router.route(&view.question) {
            Route::Authority => Backend::Authority,
            Route::Refuse if self.recursion_for(&view, client, policy) => Backend::Resolver,
            Route::Refuse => {
                let ede = if self.resolver.is_some() && view.header.recursion_desired() {
                    ExtendedError::prohibited("recursion not allowed for this client")
                } else {
                    ExtendedError::not_authoritative("not authoritative, no recursion")
                };
                return self.reply(packet, &view.header, Some(&view), Rcode::REFUSED, Some(ede));
            }
            Route::Unknown => {
                let ede = ExtendedError::not_ready("zones not known yet");
                return self.reply(
                    packet,
                    &view.header,
                    Some(&view),
                    Rcode::SERVFAIL,
                    Some(ede),
                );
            }
        };
        let Decision::Forward(mut forward) = forward(backend) else {
            return Decision::Drop;
        };
        // A query traced on demand shows the whole way, not a cached answer.
        if forward.trace.as_ref().is_some_and(|traced| traced.echo) {
            return Decision::Forward(forward);
        }
        if let (Some(cache), Some(generation)) = (&self.packet_cache, self.cache_generation()) {
            if let Some(hit) = cache.answer(packet, &view, generation, forward.max_response_size) {
                stats::answered(stats::Source::Cache, &hit);
                return Decision::Reply {
                    wire: hit,
                    question: forward.question,
                    from: Some(backend),
                };
            }
            // A signed query must reach the backend every time.
            if !view.is_signed() {
                forward.cache = Some((CacheKey::of(&view), generation));
            }
        }
        Decision::Forward(forward)
    }

    /// Whether a query outside our zones goes to the resolver: one is configured,
    /// the client asked for recursion and may have it.
    fn recursion_for(&self, view: &QueryView, client: SocketAddr, policy: &Policy) -> bool {
        self.resolver.is_some()
            && view.header.recursion_desired()
            && policy.acl.may_recurse(client.ip())
    }

    /// The packet cache's generation: changes when the authority's zone set changes
    /// or the resolver's cache is flushed, so either drops every cached answer.
    fn cache_generation(&self) -> Option<u64> {
        let zones = self.router.generation()?;
        let resolver = match &self.resolver_generation {
            Some(generation) => generation.get()?,
            None => 0,
        };
        Some((zones << 32) ^ (resolver & 0xffff_ffff))
    }

    /// An answer carrying `rcode` alone (and why, `ede`), written here.
    pub(crate) fn reply(
        &self,
        packet: &[u8],
        header: &Header,
        view: Option<&QueryView>,
        rcode: Rcode,
        ede: Option<ExtendedError>,
    ) -> Decision {
        let mut out = Vec::with_capacity(64);
        write_error_response(
            &mut out,
            packet,
            header,
            view,
            rcode,
            ede,
            self.udp_payload_size,
        );
        stats::answered(stats::Source::Listener, &out);
        Decision::Reply {
            wire: out,
            question: view.map(QuestionKey::of),
            from: None,
        }
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
