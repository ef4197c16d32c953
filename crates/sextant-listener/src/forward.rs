//! Forwarding to the backends: a query's raw bytes to the daemon the decision named,
//! its answer back to the client (kept in the packet cache when it may be), SERVFAIL
//! when the backend is down or late, and zone transfers streamed in order.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use sextant_rpc::{Answer, Query, QueryPool, RpcError, Transport};
use sextant_wire::{ExtendedError, Rcode, rcode_answer};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::backend::Backend;
use crate::frontend::{Decision, Forward, Frontend};
use crate::policy::Limited;
use crate::rrl::QuestionKey;
use crate::stats;
use crate::tap::Tapped;
use crate::trace::QuerySpans;

/// What a query on a stream (TCP, DoT, DoH) is answered with.
#[derive(Debug)]
pub(crate) struct Answered {
    /// The answer; `None` when the query gets none.
    pub wire: Option<Bytes>,
    /// The backend whose answer it is; `None` when the listener wrote it.
    pub from: Option<Backend>,
}

impl Frontend {
    /// Decides, and forwards when needed (the TCP path: one task per query).
    pub(crate) async fn answer(
        &self,
        packet: Bytes,
        decision: Decision,
        client: SocketAddr,
        transport: Transport,
    ) -> Answered {
        match decision {
            Decision::Reply { wire, from, .. } => Answered {
                wire: Some(Bytes::from(wire)),
                from,
            },
            Decision::Drop => Answered {
                wire: None,
                from: None,
            },
            Decision::Forward(forward) => Answered {
                from: Some(forward.backend),
                wire: self.forward(packet, forward, client, transport).await,
            },
        }
    }

    /// A query's way through its backend: the answer, or SERVFAIL when it failed.
    async fn forward(
        &self,
        packet: Bytes,
        forward: Forward,
        client: SocketAddr,
        transport: Transport,
    ) -> Option<Bytes> {
        let Some(backend_client) = self.backend_client(forward.backend) else {
            stats::backend_failed(forward.backend);
            return self.servfail(&packet, UNREACHABLE).map(Bytes::from);
        };
        let spans = forward
            .trace
            .as_ref()
            .map(|traced| QuerySpans::start(traced, client, transport, forward.backend));
        let query = Query {
            wire: packet.clone(),
            client,
            transport,
            max_response_size: forward.max_response_size,
            traceparent: spans.as_ref().and_then(QuerySpans::traceparent),
        };
        let started = std::time::Instant::now();
        let outcome = backend_client.query(query).await;
        let mut answer = self.finish(&forward, &packet, client, started, outcome);
        if let Some(spans) = &spans {
            answer = spans.finish(answer);
        }
        Some(self.with_cookie(answer?, forward.cookie, client))
    }

    /// Forwards a UDP query without a task of its own: the backend lane sends the
    /// answer from its task when it arrives (or SERVFAIL at the deadline). `permit`
    /// is the query's place in the in-flight bound, released once it is answered.
    pub(crate) fn forward_udp(
        self: &Arc<Self>,
        socket: &Arc<UdpSocket>,
        packet: Bytes,
        client: SocketAddr,
        forward: Forward,
        permit: tokio::sync::OwnedSemaphorePermit,
        tapped: Option<Tapped>,
    ) {
        let Some(backend_client) = self.backend_client(forward.backend) else {
            stats::backend_failed(forward.backend);
            let sent = self.servfail(&packet, UNREACHABLE).and_then(|servfail| {
                let servfail = self.with_cookie(Bytes::from(servfail), forward.cookie, client);
                self.send_udp(socket, servfail, client, forward.question)
            });
            if let Some(tapped) = tapped {
                self.log_answered(
                    tapped,
                    client,
                    &packet,
                    sent.as_deref(),
                    Some(forward.backend),
                );
            }
            return;
        };
        let spans = forward
            .trace
            .as_ref()
            .map(|traced| QuerySpans::start(traced, client, Transport::Udp, forward.backend));
        let query = Query {
            wire: packet.clone(),
            client,
            transport: Transport::Udp,
            max_response_size: forward.max_response_size,
            traceparent: spans.as_ref().and_then(QuerySpans::traceparent),
        };
        let started = std::time::Instant::now();
        let frontend = self.clone();
        let socket = socket.clone();
        backend_client.submit(
            query,
            Box::new(move |outcome| {
                let mut answer = frontend.finish(&forward, &packet, client, started, outcome);
                if let Some(spans) = &spans {
                    answer = spans.finish(answer);
                }
                let sent = answer.and_then(|bytes| {
                    let bytes = frontend.with_cookie(bytes, forward.cookie, client);
                    frontend.send_udp(&socket, bytes, client, forward.question)
                });
                if let Some(tapped) = tapped {
                    let backend = Some(forward.backend);
                    frontend.log_answered(tapped, client, &packet, sent.as_deref(), backend);
                }
                drop(permit);
            }),
        );
    }

    /// What rate limiting makes of a UDP response: itself, a slip answer, or nothing.
    pub(crate) fn rate_limited<'r>(
        &self,
        response: &'r [u8],
        client: SocketAddr,
        question: Option<QuestionKey>,
    ) -> Option<std::borrow::Cow<'r, [u8]>> {
        let Some(question) = question else {
            return Some(response.into());
        };
        match self.policy.load().rate_limit(response, client, question) {
            Limited::Send => Some(response.into()),
            Limited::Slip(slip) => Some(slip.into()),
            Limited::Drop => None,
        }
    }

    /// Sends a UDP answer unless rate limiting replaces it (slip) or drops it, and
    /// returns what went out. Never waits: with the socket's send buffer full the
    /// answer is lost like any datagram.
    pub(crate) fn send_udp(
        &self,
        socket: &UdpSocket,
        bytes: Bytes,
        client: SocketAddr,
        question: Option<QuestionKey>,
    ) -> Option<Bytes> {
        let sent = match self.rate_limited(&bytes, client, question)? {
            std::borrow::Cow::Borrowed(_) => bytes.clone(),
            std::borrow::Cow::Owned(slip) => Bytes::from(slip),
        };
        match socket.try_send_to(&sent, client) {
            Ok(_) => Some(sent),
            Err(error) => {
                if error.kind() == std::io::ErrorKind::WouldBlock {
                    stats::dropped("send_buffer_full");
                } else {
                    tracing::debug!(%error, %client, "UDP send failed");
                }
                None
            }
        }
    }

    /// The answer with the client's cookie and a fresh server cookie (RFC 7873 §5.2),
    /// when the query brought a client cookie. (The backend was asked for an answer
    /// smaller by the option's size, so it still fits.)
    fn with_cookie(&self, answer: Bytes, cookie: Option<[u8; 8]>, client: SocketAddr) -> Bytes {
        let Some(cookie) = cookie else {
            return answer;
        };
        let policy = self.policy.load();
        let Some(cookies) = &policy.cookies else {
            return answer;
        };
        let data = cookies.answer(&cookie, client.ip(), crate::cookie::now());
        let mut with = Vec::with_capacity(answer.len() + usize::from(crate::cookie::OPTION_LEN));
        with.extend_from_slice(&answer);
        sextant_wire::add_option(&mut with, sextant_wire::OPTION_COOKIE, &data);
        let answer = with;
        Bytes::from(answer)
    }

    fn backend_client(&self, backend: Backend) -> Option<&QueryPool> {
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
        forward: &Forward,
        packet: &[u8],
        client: SocketAddr,
        started: std::time::Instant,
        outcome: Result<Answer, RpcError>,
    ) -> Option<Bytes> {
        match outcome {
            Ok(Answer::Silent) => None,
            Ok(Answer::Reply { wire, cache_ttl }) => {
                stats::backend_answered(forward.backend, started.elapsed());
                stats::answered(stats::Source::Backend, &wire);
                if let (Some(store), Some((key, generation))) = (&self.packet_cache, &forward.cache)
                {
                    // Recursive answers age in the cache like in the resolver's own;
                    // authoritative ones keep the zone's TTLs.
                    let ages = forward.backend == Backend::Resolver;
                    store.store(key.clone(), wire.clone(), *generation, cache_ttl, ages);
                }
                Some(wire)
            }
            Err(error) => {
                stats::backend_failed(forward.backend);
                tracing::debug!(%error, %client, "backend failed; answering SERVFAIL");
                self.servfail(packet, why(&error)).map(Bytes::from)
            }
        }
    }

    /// A zone transfer asked over TCP: the backend's messages in order, or the one
    /// answer decided here (REFUSED and the like).
    pub(crate) async fn transfer(
        &self,
        packet: Bytes,
        decision: Decision,
        client: SocketAddr,
    ) -> mpsc::Receiver<Bytes> {
        let (sender, receiver) = mpsc::channel(4);
        let single = |bytes: Option<Bytes>| {
            if let Some(bytes) = bytes {
                let _ = sender.try_send(bytes);
            }
        };
        match decision {
            Decision::Reply { wire, .. } => single(Some(Bytes::from(wire))),
            Decision::Drop => {}
            Decision::Forward(forward) => {
                let Some(backend_client) = self.backend_client(forward.backend) else {
                    single(self.servfail(&packet, UNREACHABLE).map(Bytes::from));
                    return receiver;
                };
                let query = Query {
                    wire: packet.clone(),
                    client,
                    transport: Transport::Tcp,
                    max_response_size: u16::MAX,
                    traceparent: None,
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
                        stats::backend_failed(forward.backend);
                        tracing::debug!(%error, %client, "zone transfer failed at the backend");
                        single(self.servfail(&packet, UNREACHABLE).map(Bytes::from));
                    }
                }
            }
        }
        receiver
    }

    fn servfail(&self, packet: &[u8], ede: ExtendedError) -> Option<Vec<u8>> {
        let out = rcode_answer(packet, Rcode::SERVFAIL, Some(ede), self.udp_payload_size)?;
        stats::answered(stats::Source::Listener, &out);
        Some(out)
    }
}

/// The backend cannot be asked: not configured, not connected, the call failed.
const UNREACHABLE: ExtendedError = ExtendedError::network_error("backend unreachable");

/// Why a backend gave no answer, for the client.
fn why(error: &RpcError) -> ExtendedError {
    match error {
        RpcError::Timeout { .. } => {
            ExtendedError::no_reachable_authority("backend did not answer in time")
        }
        _ => UNREACHABLE,
    }
}
