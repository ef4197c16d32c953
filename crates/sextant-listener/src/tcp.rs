//! The TCP front end (RFC 7766): length-prefixed messages with hard bounds, idle and
//! read timeouts, pipelined queries answered as they complete, and limits on the
//! connections held, in total and per client address: at either limit the oldest
//! idle connection (of that client, at its own limit) is closed to make room, and
//! only when none is idle is the new one refused — clients behind one NAT address
//! are not locked out by another's stalled connections. edns-tcp-keepalive
//! (RFC 7828) is answered with our idle timeout. A connection that sends garbage is
//! closed; nothing it sends can make the listener spin.
//!
//! DNS over TLS (RFC 7858) is the same protocol inside TLS: the same limits (a
//! connection holds its slots from its first byte, and its handshake must end
//! within `handshake_timeout`), and padded answers to padded queries (RFC 8467).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sextant_rpc::Transport;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::frontend::Frontend;
use crate::handover::{self, Member};
use crate::tls::{Certificates, Encrypted};
use sextant_dnstap::Protocol;
use sextant_wire::consts::{TYPE_AXFR, TYPE_IXFR};

#[derive(Clone, Copy, Debug)]
pub(crate) struct TcpLimits {
    pub idle_timeout: Duration,
    pub read_timeout: Duration,
    pub max_in_flight: usize,
    pub max_per_client: usize,
}

/// Open connections per client address, so that one client cannot take every slot.
#[derive(Debug, Default)]
struct PerClient {
    open: parking_lot::Mutex<std::collections::HashMap<IpAddr, usize>>,
    /// Woken whenever a connection closes (a slot may be free).
    left: tokio::sync::Notify,
}

impl PerClient {
    /// Takes a slot for `ip`, or `false` when it already has `limit` connections.
    fn enter(&self, ip: IpAddr, limit: usize) -> bool {
        let mut counts = self.open.lock();
        let count = counts.entry(ip).or_insert(0);
        if *count >= limit {
            return false;
        }
        *count += 1;
        true
    }

    /// Takes a slot for `ip` as soon as one is free, waiting at most `wait`.
    async fn enter_within(&self, ip: IpAddr, limit: usize, wait: Duration) -> bool {
        let waiting = async {
            loop {
                let left = self.left.notified();
                let mut left = std::pin::pin!(left);
                // Registered before the check, so a close in between is not missed.
                left.as_mut().enable();
                if self.enter(ip, limit) {
                    return;
                }
                left.await;
            }
        };
        tokio::time::timeout(wait, waiting).await.is_ok()
    }

    fn leave(&self, ip: IpAddr) {
        let mut counts = self.open.lock();
        if let Some(count) = counts.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&ip);
            }
        }
        drop(counts);
        self.left.notify_waiters();
    }
}

/// Connections with no query in flight — waiting for one, or for the rest of one
/// that is not arriving — oldest first, each with its client and the token that
/// closes it. Closing one loses nothing: that is how a limit makes room.
#[derive(Debug, Default)]
struct IdleConnections {
    waiting: parking_lot::Mutex<
        std::collections::BTreeMap<(std::time::Instant, u64), (IpAddr, CancellationToken)>,
    >,
    next_id: std::sync::atomic::AtomicU64,
}

impl IdleConnections {
    /// Registers a connection of `client` as idle until the returned guard is dropped.
    fn enter(self: &Arc<Self>, client: IpAddr, close: CancellationToken) -> IdleGuard {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = (std::time::Instant::now(), id);
        self.waiting.lock().insert(key, (client, close));
        IdleGuard {
            registry: self.clone(),
            key,
        }
    }

    /// Closes the connection idle the longest; false when none is idle.
    fn evict_oldest(&self) -> bool {
        let oldest = self.waiting.lock().pop_first();
        match oldest {
            Some((_, (_, close))) => {
                close.cancel();
                true
            }
            None => false,
        }
    }

    /// Closes the connection of `client` idle the longest; false when none of its
    /// connections is idle (all are busy with real queries).
    fn evict_oldest_of(&self, client: IpAddr) -> bool {
        let mut waiting = self.waiting.lock();
        let oldest = waiting
            .iter()
            .find(|(_, (ip, _))| *ip == client)
            .map(|(key, _)| *key);
        match oldest.and_then(|key| waiting.remove(&key)) {
            Some((_, close)) => {
                close.cancel();
                true
            }
            None => false,
        }
    }
}

struct IdleGuard {
    registry: Arc<IdleConnections>,
    key: (std::time::Instant, u64),
}

impl Drop for IdleGuard {
    fn drop(&mut self) {
        self.registry.waiting.lock().remove(&self.key);
    }
}

/// How long a new connection waits for the slot of an evicted idle one.
const EVICTION_WAIT: Duration = Duration::from_millis(500);

/// A response not written within this is abandoned with its connection: a client
/// that does not read cannot hold our memory.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Smallest message worth reading: a DNS header.
const MIN_MESSAGE: usize = sextant_wire::HEADER_LEN;

/// What a connection of a listening socket carries.
#[derive(Clone, Debug)]
pub(crate) enum Wrapping {
    /// DNS over TCP.
    Plain,
    /// Inside TLS: DNS over TLS, or HTTP/2 for DNS over HTTPS.
    Tls {
        transport: Encrypted,
        certificates: Arc<Certificates>,
        handshake_timeout: Duration,
    },
}

/// Where accepted connections are served: on the UDP workers' threads in turn, each
/// with its own lanes to the backends, so a query, its backend round trip and its
/// answer stay on one thread (on the shared pool, wakeups crossed threads: DoH
/// measured 0.86-1.00x dnsdist that way).
#[derive(Clone, Debug)]
pub(crate) struct Placement {
    workers: Arc<[(tokio::runtime::Handle, Arc<Frontend>)]>,
    next: Arc<std::sync::atomic::AtomicUsize>,
    /// For a listener without UDP workers (none in practice): the current runtime.
    fallback: Arc<Frontend>,
}

impl Placement {
    pub(crate) fn new(
        workers: Vec<(tokio::runtime::Handle, Arc<Frontend>)>,
        fallback: Arc<Frontend>,
    ) -> Self {
        Self {
            workers: workers.into(),
            next: Arc::default(),
            fallback,
        }
    }

    fn next(&self) -> (tokio::runtime::Handle, Arc<Frontend>) {
        if self.workers.is_empty() {
            return (tokio::runtime::Handle::current(), self.fallback.clone());
        }
        let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.workers[turn % self.workers.len()].clone()
    }
}

/// Accepts connections on `listener` within the limits, and serves each (see the
/// module documentation).
pub(crate) async fn serve(
    listener: TcpListener,
    wrapping: Wrapping,
    placement: Placement,
    connections: Arc<Semaphore>,
    limits: TcpLimits,
    shutdown: CancellationToken,
) {
    let per_client = Arc::new(PerClient::default());
    let idle = Arc::new(IdleConnections::default());
    // The connections end after the handover's drain, not when it starts: those
    // accepted while draining are served too.
    let connections_end = CancellationToken::new();
    let _end_connections = connections_end.clone().drop_guard();
    let mut drain_until = None;
    loop {
        let accepted = match drain_until {
            None => tokio::select! {
                _ = shutdown.cancelled() => {
                    if let Err(error) = handover::steer(&listener, Member::Second) {
                        tracing::warn!(%error, "cannot hand the TCP listener's connections over");
                    }
                    drain_until = Some(tokio::time::Instant::now() + handover::DRAIN_LIMIT);
                    continue;
                }
                accepted = listener.accept() => accepted,
            },
            // Stopping: the connections already queued are taken; quiet means drained.
            Some(limit) => {
                if tokio::time::Instant::now() >= limit {
                    return;
                }
                let quiet = (tokio::time::Instant::now() + handover::QUIET).min(limit);
                match tokio::time::timeout_at(quiet, listener.accept()).await {
                    Ok(accepted) => accepted,
                    Err(_) => return,
                }
            }
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(%error, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if placement
            .fallback
            .policy
            .load()
            .acl
            .is_blackholed(client.ip())
        {
            drop(stream);
            continue;
        }
        // At the client's own limit, its connection idle the longest makes room (a
        // client behind the same NAT address must not be locked out by another's
        // stalled connections); only when all of its connections carry real
        // queries is the new one refused.
        let client_slot = per_client.enter(client.ip(), limits.max_per_client);
        if !client_slot && !idle.evict_oldest_of(client.ip()) {
            crate::stats::dropped("tcp_client_limit");
            drop(stream);
            continue;
        }
        let permit = connections.clone().try_acquire_owned().ok();
        if permit.is_none() && !idle.evict_oldest() {
            if client_slot {
                per_client.leave(client.ip());
            }
            // Over the connection limit with nobody idle: close at once, which
            // costs us nothing.
            crate::stats::dropped("tcp_limit");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        // Moved to the chosen worker's runtime whole: registered with its reactor,
        // so readiness wakes that thread, not this one.
        let (runtime, frontend) = placement.next();
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, %client, "TCP connection lost before it was served");
                if client_slot {
                    per_client.leave(client.ip());
                }
                continue;
            }
        };
        let shutdown = connections_end.clone();
        let per_client = per_client.clone();
        let idle = idle.clone();
        let connections = connections.clone();
        let wrapping = wrapping.clone();
        runtime.spawn(async move {
            let stream = match TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%error, %client, "TCP connection lost before it was served");
                    if client_slot {
                        per_client.leave(client.ip());
                    }
                    return;
                }
            };
            if !client_slot {
                crate::stats::dropped("tcp_client_idle_evicted");
                let ip = client.ip();
                if !per_client
                    .enter_within(ip, limits.max_per_client, EVICTION_WAIT)
                    .await
                {
                    return;
                }
            }
            let permit = match permit {
                Some(permit) => Some(permit),
                // An idle connection was told to close: take its slot when it does.
                None => {
                    crate::stats::dropped("tcp_idle_evicted");
                    tokio::time::timeout(EVICTION_WAIT, connections.acquire_owned())
                        .await
                        .ok()
                        .and_then(Result::ok)
                }
            };
            if let Some(permit) = permit {
                // What dnstap entries name as our end of the connection.
                let local = stream
                    .local_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                let held = Held {
                    client,
                    local,
                    frontend,
                    limits,
                    idle: &idle,
                    shutdown,
                };
                match wrapping {
                    Wrapping::Plain => {
                        crate::stats::tcp_connections(1.0);
                        let (reader, writer) = stream.into_split();
                        connection(reader, writer, None, held).await;
                        crate::stats::tcp_connections(-1.0);
                    }
                    Wrapping::Tls {
                        transport,
                        certificates,
                        handshake_timeout,
                    } => encrypted(stream, transport, &certificates, handshake_timeout, held).await,
                }
                drop(permit);
            }
            per_client.leave(client.ip());
        });
    }
}

/// What serving one admitted connection needs.
struct Held<'a> {
    client: SocketAddr,
    local: SocketAddr,
    frontend: Arc<Frontend>,
    limits: TcpLimits,
    idle: &'a Arc<IdleConnections>,
    shutdown: CancellationToken,
}

/// The TLS handshake, bounded in time (garbage before the ClientHello ends it at
/// once), then the connection as DoT or DoH.
async fn encrypted(
    stream: TcpStream,
    transport: Encrypted,
    certificates: &Certificates,
    handshake_timeout: Duration,
    held: Held<'_>,
) {
    let accepted = tokio::time::timeout(
        handshake_timeout,
        certificates.acceptor(transport).accept(stream),
    )
    .await;
    let stream = match accepted {
        Ok(Ok(stream)) => stream,
        Ok(Err(_)) => {
            crate::stats::tls_handshake(transport, "failed");
            return;
        }
        Err(_) => {
            crate::stats::tls_handshake(transport, "timeout");
            return;
        }
    };
    crate::stats::tls_handshake(transport, "ok");
    crate::stats::encrypted_connections(transport, 1.0);
    match transport {
        Encrypted::Dot => {
            let (reader, writer) = tokio::io::split(stream);
            connection(reader, writer, Some(transport), held).await;
        }
        Encrypted::Doh => {
            crate::doh::connection(
                stream,
                (held.client, held.local),
                held.frontend,
                held.limits,
                held.shutdown,
            )
            .await
        }
    }
    crate::stats::encrypted_connections(transport, -1.0);
}

/// Serves DNS messages on one connection; `encrypted` pads answers to padded
/// queries and counts them by transport.
async fn connection<R, W>(mut reader: R, writer: W, encrypted: Option<Encrypted>, held: Held<'_>)
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Held {
        client,
        local,
        frontend,
        limits,
        idle,
        shutdown,
    } = held;
    // Cancelled at shutdown, or when the connection is evicted while idle.
    let close = shutdown.child_token();
    let keepalive = keepalive_units(limits.idle_timeout);
    let (responses, queue) = mpsc::channel::<Bytes>(limits.max_in_flight);
    let writing = tokio::spawn(write_responses(writer, queue));
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    loop {
        // Pipelining bound: no more reading while max_in_flight queries are pending.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        // Idle: no query of ours pending, so closing it loses nothing.
        let idle_guard = (in_flight.available_permits() + 1 == limits.max_in_flight)
            .then(|| idle.enter(client.ip(), close.clone()));
        let message = tokio::select! {
            _ = close.cancelled() => break,
            message = read_message(&mut reader, limits) => message,
        };
        drop(idle_guard);
        let Some(message) = message else { break };
        if let Some(transport) = encrypted {
            crate::stats::encrypted_query(transport);
        }
        let protocol = match encrypted {
            Some(_) => Protocol::Dot,
            None => Protocol::Tcp,
        };
        let tapped = frontend.tapped(protocol, local);
        let frontend = frontend.clone();
        let responses = responses.clone();
        let parsed = sextant_wire::parse_query(&message);
        let view = parsed.as_ref().ok().copied();
        let decision = frontend.decide_parsed(&message, parsed, client, Transport::Tcp);
        if view.is_some_and(|v| matches!(v.question.qtype, TYPE_AXFR | TYPE_IXFR)) {
            // The log names the transfer's query; its messages are the zone.
            if let Some(tapped) = tapped {
                frontend.log_answered(tapped, client, &message, None, None);
            }
            // A zone transfer is answered in order before the next message is read,
            // so its messages are not interleaved with other answers.
            let mut messages = frontend.transfer(message, decision, client).await;
            while let Some(bytes) = messages.recv().await {
                if responses.send(bytes).await.is_err() {
                    break;
                }
            }
            drop(permit);
            continue;
        }
        tokio::spawn(async move {
            let edns = view.and_then(|view| view.edns);
            let wants_keepalive = edns.is_some_and(|edns| edns.tcp_keepalive);
            let wants_padding = encrypted.is_some() && edns.is_some_and(|edns| edns.padding);
            let query = tapped.map(|_| message.clone());
            let answered = frontend
                .answer(message, decision, client, Transport::Tcp)
                .await;
            let answer = answered.wire.map(|answer| {
                if wants_keepalive || wants_padding {
                    let mut answer = answer.to_vec();
                    if wants_keepalive {
                        sextant_wire::add_tcp_keepalive(&mut answer, keepalive);
                    }
                    if wants_padding {
                        sextant_wire::add_padding(
                            &mut answer,
                            sextant_wire::RESPONSE_PADDING_BLOCK,
                        );
                    }
                    Bytes::from(answer)
                } else {
                    answer
                }
            });
            if let (Some(tapped), Some(query)) = (tapped, query) {
                frontend.log_answered(tapped, client, &query, answer.as_deref(), answered.from);
            }
            if let Some(answer) = answer {
                let _ = responses.send(answer).await;
            }
            drop(permit);
        });
    }
    // Let queries in flight finish, then the writer drains and closes.
    drop(responses);
    let _ = writing.await;
}

/// The idle timeout in the 100 ms units of edns-tcp-keepalive.
fn keepalive_units(idle_timeout: Duration) -> u16 {
    u16::try_from(idle_timeout.as_millis() / 100).unwrap_or(u16::MAX)
}

/// Reads one length-prefixed message. `None` ends the connection: EOF, idle or read
/// timeout, or a length that cannot be a DNS message.
async fn read_message<R: AsyncRead + Unpin>(reader: &mut R, limits: TcpLimits) -> Option<Bytes> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(limits.idle_timeout, reader.read(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return None,
    }
    // From the first byte on, the whole message must arrive within the read timeout.
    let rest = async {
        let second = reader.read_u8().await.ok()?;
        let len = usize::from(u16::from_be_bytes([first[0], second]));
        if len < MIN_MESSAGE {
            return None;
        }
        let mut message = vec![0u8; len];
        reader.read_exact(&mut message).await.ok()?;
        Some(Bytes::from(message))
    };
    tokio::time::timeout(limits.read_timeout, rest)
        .await
        .ok()
        .flatten()
}

async fn write_responses<W: AsyncWrite + Unpin>(mut writer: W, mut queue: mpsc::Receiver<Bytes>) {
    while let Some(answer) = queue.recv().await {
        let Ok(len) = u16::try_from(answer.len()) else {
            continue;
        };
        let mut framed = Vec::with_capacity(answer.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&answer);
        match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&framed)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
    let _ = writer.shutdown().await;
}
