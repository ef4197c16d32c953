//! The UDP front end: one receive loop per socket. Answers that need no backend are
//! sent from the loop itself; forwarded queries are handed to the backend lane with
//! the answer's sending attached (no task per query), bounded in number.

use std::sync::Arc;

use bytes::Bytes;
use sextant_rpc::Transport;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::frontend::{Decision, Frontend, UdpForward};

/// Largest datagram we read; a DNS query is far smaller, the rest is dropped unread.
const RECV_BUFFER: usize = 4096;

pub async fn serve(
    socket: UdpSocket,
    frontend: Arc<Frontend>,
    in_flight: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let socket = Arc::new(socket);
    let mut buffer = vec![0u8; RECV_BUFFER];
    loop {
        let (len, client) = tokio::select! {
            _ = shutdown.cancelled() => return,
            received = socket.recv_from(&mut buffer) => match received {
                Ok(received) => received,
                // ICMP errors from earlier sends surface here on some systems: not fatal.
                Err(error) => {
                    tracing::debug!(%error, "UDP receive error");
                    continue;
                }
            },
        };
        let packet = &buffer[..len];
        match frontend.decide(packet, client, Transport::Udp) {
            Decision::Drop => {}
            Decision::Reply(bytes) => frontend.send_udp(&socket, &bytes, client),
            Decision::Forward {
                backend,
                max_response_size,
                cache,
            } => {
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    // Over the in-flight bound the query is dropped: the client retries,
                    // and memory stays bounded however fast packets arrive.
                    crate::stats::dropped("overload");
                    continue;
                };
                let forward = UdpForward {
                    backend,
                    packet: Bytes::copy_from_slice(packet),
                    client,
                    max_response_size,
                    cache,
                };
                frontend.forward_udp(&socket, forward, permit);
            }
        }
    }
}
