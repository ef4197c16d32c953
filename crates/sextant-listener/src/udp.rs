//! The UDP front end: one receive loop per socket. It reads the datagrams waiting in
//! batches; answers that need no backend (cache hits, errors) leave together in one
//! send once the batch is decided; forwarded queries are handed to the backend lane
//! with the answer's sending attached (no task per query), bounded in number.

use std::sync::Arc;

use bytes::Bytes;
use sextant_dnstap::Protocol;
use sextant_rpc::Transport;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::frontend::{Decision, Frontend};
use crate::handover::{self, Member};
use crate::udp_batch::{RecvBatch, SendBatch};

/// Starts a receive loop on a thread of its own, with a single-threaded runtime: a
/// socket's datagrams are decided and answered on the thread that read them. (On the
/// shared work-stealing pool, wakeups crossed threads: at 20k q/s a forwarded query
/// cost 33-35 µs of listener CPU instead of 26-31.) `frontend` runs on that runtime, so
/// the backend lanes it starts are the worker's own. The runtime outlives the loop
/// until `keep_until` is cancelled, so answers still coming back from a backend
/// after the loop has stopped are sent on its socket. The loop reads nothing before
/// `serving` is cancelled (the backends reached), and at `shutdown` hands the
/// socket's traffic over (see `handover`) and reads what is left in it.
pub(crate) fn spawn_worker(
    socket: std::net::UdpSocket,
    frontend: impl FnOnce() -> Arc<Frontend>,
    in_flight: Arc<Semaphore>,
    serving: CancellationToken,
    shutdown: CancellationToken,
    keep_until: CancellationToken,
) -> std::io::Result<Worker> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    let (socket, frontend) = {
        let _context = runtime.enter();
        (UdpSocket::from_std(socket)?, frontend())
    };
    let worker_frontend = frontend.clone();
    let thread = std::thread::Builder::new()
        .name("udp-worker".into())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    _ = serving.cancelled() => {}
                    _ = shutdown.cancelled() => {}
                }
                serve(socket, frontend, in_flight, shutdown).await;
                keep_until.cancelled().await;
            });
        })?;
    Ok(Worker {
        thread,
        handle,
        frontend: worker_frontend,
    })
}

/// A UDP worker thread: its runtime also serves stream connections handed to it
/// (`tcp::Placement`), with the same lanes to the backends.
#[derive(Debug)]
pub(crate) struct Worker {
    pub thread: std::thread::JoinHandle<()>,
    pub handle: tokio::runtime::Handle,
    pub frontend: Arc<Frontend>,
}

async fn serve(
    socket: UdpSocket,
    frontend: Arc<Frontend>,
    in_flight: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let socket = Arc::new(socket);
    // The address dnstap entries name as ours (the wildcard for a wildcard bind).
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut received = RecvBatch::new();
    let mut replies = SendBatch::new();
    let mut drain_until = None;
    loop {
        let ready = match drain_until {
            None => tokio::select! {
                _ = shutdown.cancelled() => {
                    if let Err(error) = handover::steer(&*socket, Member::Second) {
                        tracing::warn!(%error, "cannot hand the UDP socket's traffic over");
                    }
                    drain_until = Some(tokio::time::Instant::now() + handover::DRAIN_LIMIT);
                    continue;
                }
                ready = socket.readable() => ready,
            },
            // Stopping: what is already queued is answered; quiet means drained.
            Some(limit) => {
                if tokio::time::Instant::now() >= limit {
                    return;
                }
                let quiet = tokio::time::Instant::now() + handover::QUIET;
                match tokio::time::timeout_at(quiet.min(limit), socket.readable()).await {
                    Ok(ready) => ready,
                    Err(_) => return,
                }
            }
        };
        if let Err(error) = ready {
            tracing::warn!(%error, "UDP socket failed");
            return;
        }
        // One batch per readiness: the wait above yields to the other tasks of this
        // thread (the backend lanes) between batches, however fast packets arrive.
        match received.recv(&socket) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            // ICMP errors from earlier sends surface here on some systems: not fatal.
            Err(error) => {
                tracing::debug!(%error, "UDP receive error");
                continue;
            }
        }
        // One clock read for the whole batch: the datagrams were read together.
        let read_at = frontend
            .dnstap
            .as_ref()
            .map(|_| std::time::SystemTime::now());
        for (packet, client) in received.datagrams() {
            handle(
                read_at,
                &frontend,
                &socket,
                &in_flight,
                &mut replies,
                packet,
                client,
                local,
            );
        }
        if !replies.is_empty() {
            let flushed = replies.flush(&socket);
            for _ in 0..flushed.buffer_full {
                crate::stats::dropped("send_buffer_full");
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn handle(
    read_at: Option<std::time::SystemTime>,
    frontend: &Arc<Frontend>,
    socket: &Arc<UdpSocket>,
    in_flight: &Arc<Semaphore>,
    replies: &mut SendBatch,
    packet: &[u8],
    client: std::net::SocketAddr,
    local: std::net::SocketAddr,
) {
    let tapped = read_at.and_then(|at| frontend.tapped_at(Protocol::Udp, local, at));
    // Answered within the batch: sent at its end, timed as read.
    let log = |sent: Option<&[u8]>, from| {
        if let Some(tapped) = tapped {
            let sent = sent.map(|sent| (tapped.received(), sent));
            frontend.log_exchange(tapped, client, packet, sent, from);
        }
    };
    match frontend.decide(packet, client, Transport::Udp) {
        Decision::Drop => log(None, None),
        Decision::Reply {
            wire,
            question,
            from,
        } => match frontend.rate_limited(&wire, client, question) {
            Some(std::borrow::Cow::Borrowed(_)) => {
                log(Some(&wire), from);
                replies.push(wire, client);
            }
            Some(std::borrow::Cow::Owned(slip)) => {
                log(Some(&slip), from);
                replies.push(slip, client);
            }
            None => log(None, from),
        },
        Decision::Forward(forward) => {
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                // Over the in-flight bound the query is dropped: the client retries,
                // and memory stays bounded however fast packets arrive.
                crate::stats::dropped("overload");
                log(None, Some(forward.backend));
                return;
            };
            let packet = Bytes::copy_from_slice(packet);
            frontend.forward_udp(socket, packet, client, forward, permit, tapped);
        }
    }
}
