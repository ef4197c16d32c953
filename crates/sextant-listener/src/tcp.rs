//! The TCP front end (RFC 7766): length-prefixed messages with hard bounds, idle and
//! read timeouts, pipelined queries answered as they complete, and limits on the
//! connections held: at the total limit the oldest idle connection is closed to make
//! room, and only when none is idle is the new one refused. edns-tcp-keepalive
//! (RFC 7828) is answered with our idle timeout. A connection that sends garbage is
//! closed; nothing it sends can make the listener spin.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sextant_rpc::Transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::frontend::Frontend;
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
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

impl PerClient {
    fn counts(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<std::net::IpAddr, usize>> {
        // A panic elsewhere while holding the lock leaves plain counters: keep going.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a slot for `ip`, or `false` when it already has `limit` connections.
    fn enter(&self, ip: std::net::IpAddr, limit: usize) -> bool {
        let mut counts = self.counts();
        let count = counts.entry(ip).or_insert(0);
        if *count >= limit {
            return false;
        }
        *count += 1;
        true
    }

    fn leave(&self, ip: std::net::IpAddr) {
        let mut counts = self.counts();
        if let Some(count) = counts.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&ip);
            }
        }
    }
}

/// Connections waiting for a query, oldest first, each with the token that closes it.
#[derive(Debug, Default)]
struct IdleConnections {
    waiting: parking_lot::Mutex<
        std::collections::BTreeMap<(std::time::Instant, u64), CancellationToken>,
    >,
    next_id: std::sync::atomic::AtomicU64,
}

impl IdleConnections {
    /// Registers a connection as idle until the returned guard is dropped.
    fn enter(self: &Arc<Self>, close: CancellationToken) -> IdleGuard {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = (std::time::Instant::now(), id);
        self.waiting.lock().insert(key, close);
        IdleGuard {
            registry: self.clone(),
            key,
        }
    }

    /// Closes the connection idle the longest; false when none is idle.
    fn evict_oldest(&self) -> bool {
        let oldest = self.waiting.lock().pop_first();
        match oldest {
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

pub(crate) async fn serve(
    listener: TcpListener,
    frontend: Arc<Frontend>,
    connections: Arc<Semaphore>,
    limits: TcpLimits,
    shutdown: CancellationToken,
) {
    let per_client = Arc::new(PerClient::default());
    let idle = Arc::new(IdleConnections::default());
    loop {
        let (stream, client) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(%error, "TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if frontend.policy.load().acl.is_blackholed(client.ip()) {
            drop(stream);
            continue;
        }
        if !per_client.enter(client.ip(), limits.max_per_client) {
            crate::stats::dropped("tcp_client_limit");
            drop(stream);
            continue;
        }
        let permit = connections.clone().try_acquire_owned().ok();
        if permit.is_none() && !idle.evict_oldest() {
            per_client.leave(client.ip());
            // Over the connection limit with nobody idle: close at once, which
            // costs us nothing.
            crate::stats::dropped("tcp_limit");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let frontend = frontend.clone();
        let shutdown = shutdown.clone();
        let per_client = per_client.clone();
        let idle = idle.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
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
                crate::stats::tcp_connections(1.0);
                let (reader, writer) = stream.into_split();
                connection(reader, writer, client, frontend, limits, &idle, shutdown).await;
                crate::stats::tcp_connections(-1.0);
                drop(permit);
            }
            per_client.leave(client.ip());
        });
    }
}

async fn connection(
    mut reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    client: SocketAddr,
    frontend: Arc<Frontend>,
    limits: TcpLimits,
    idle: &Arc<IdleConnections>,
    shutdown: CancellationToken,
) {
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
            .then(|| idle.enter(close.clone()));
        let message = tokio::select! {
            _ = close.cancelled() => break,
            message = read_message(&mut reader, limits) => message,
        };
        drop(idle_guard);
        let Some(message) = message else { break };
        let frontend = frontend.clone();
        let responses = responses.clone();
        let parsed = sextant_wire::parse_query(&message);
        let view = parsed.as_ref().ok().copied();
        let decision = frontend.decide_parsed(&message, parsed, client, Transport::Tcp);
        if view.is_some_and(|v| matches!(v.question.qtype, TYPE_AXFR | TYPE_IXFR)) {
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
            let wants_keepalive = view
                .and_then(|view| view.edns)
                .is_some_and(|edns| edns.tcp_keepalive);
            let answer = frontend
                .answer(message, decision, client, Transport::Tcp)
                .await;
            if let Some(answer) = answer {
                let answer = if wants_keepalive {
                    let mut answer = answer.to_vec();
                    sextant_wire::add_tcp_keepalive(&mut answer, keepalive);
                    Bytes::from(answer)
                } else {
                    answer
                };
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
async fn read_message(reader: &mut OwnedReadHalf, limits: TcpLimits) -> Option<Bytes> {
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

async fn write_responses(mut writer: OwnedWriteHalf, mut queue: mpsc::Receiver<Bytes>) {
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
