//! Datagrams in batches: `recvmmsg` reads every query waiting on a socket (up to
//! [`BATCH`]) in one system call, and `sendmmsg` sends the answers decided from them
//! in one more. Under load one call and one readiness round trip through the reactor
//! serve many datagrams (cached answers: listener CPU 6.1 -> 5.0 µs per query); a
//! lone query costs a call each way, as `recvfrom` + `sendto` did.

use std::cell::RefCell;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams moved per system call. Enough to drain a loaded socket in a few calls;
/// small enough that one batch's answers leave before the next is read.
pub(crate) const BATCH: usize = 32;

/// Largest datagram we read; a DNS query is far smaller, the rest is dropped unread.
pub(crate) const RECV_BUFFER: usize = 4096;

thread_local! {
    // The header array holds raw pointers, so it cannot travel with a task between
    // threads: each worker thread keeps one for sending, where every call sets each
    // header's fields anew. Reads get fresh headers every time: nix leaves the
    // address length of a reused header at what the previous read stored, which
    // would cut an IPv6 sender read after an IPv4 one.
    static SEND_HEADERS: RefCell<MultiHeaders<SockaddrStorage>> =
        RefCell::new(MultiHeaders::preallocate(BATCH, None));
}

/// Reusable buffers for one socket's reads: no allocation per datagram.
pub(crate) struct RecvBatch {
    buffers: Vec<Box<[u8]>>,
    received: Vec<(usize, Option<SocketAddr>)>,
}

impl RecvBatch {
    pub(crate) fn new() -> Self {
        RecvBatch {
            buffers: (0..BATCH)
                .map(|_| vec![0u8; RECV_BUFFER].into_boxed_slice())
                .collect(),
            received: Vec::with_capacity(BATCH),
        }
    }

    /// Reads what is waiting, without waiting: `WouldBlock` when nothing is.
    pub(crate) fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let buffers = &mut self.buffers;
        let received = &mut self.received;
        received.clear();
        socket.try_io(Interest::READABLE, || {
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(buffers.len(), None);
            let mut slices: Vec<[IoSliceMut<'_>; 1]> = buffers
                .iter_mut()
                .map(|buffer| [IoSliceMut::new(buffer)])
                .collect();
            let messages = recvmmsg(
                socket.as_raw_fd(),
                &mut headers,
                slices.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )?;
            for message in messages {
                let len = message.bytes.min(RECV_BUFFER);
                received.push((len, message.address.as_ref().and_then(socket_addr)));
            }
            Ok(received.len())
        })
    }

    /// The datagrams of the last read, with their senders. One whose sender could
    /// not be read (never on UDP/IP) is skipped: there is nobody to answer.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.received
            .iter()
            .zip(&self.buffers)
            .filter_map(|(&(len, from), buffer)| Some((&buffer[..len], from?)))
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::new()
    }
}

/// Answers waiting to leave together.
pub(crate) struct SendBatch {
    answers: Vec<(Vec<u8>, SocketAddr)>,
}

/// How a flush went: datagrams handed to the kernel, and those lost because the
/// send buffer was full (like any datagram, they are not retried).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Flushed {
    pub sent: usize,
    pub buffer_full: usize,
    pub failed: usize,
}

impl SendBatch {
    pub(crate) fn new() -> Self {
        SendBatch {
            answers: Vec::with_capacity(BATCH),
        }
    }

    pub(crate) fn push(&mut self, answer: Vec<u8>, client: SocketAddr) {
        self.answers.push((answer, client));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// Sends everything queued, never waiting. A datagram the kernel refuses (an
    /// unreachable address, say) is skipped and the rest still go.
    pub(crate) fn flush(&mut self, socket: &UdpSocket) -> Flushed {
        let mut flushed = Flushed::default();
        let mut start = 0;
        while start < self.answers.len() {
            let end = self.answers.len().min(start + BATCH);
            match self.send(socket, start, end) {
                Ok(0) => {
                    flushed.failed += 1;
                    start += 1;
                }
                Ok(sent) => {
                    flushed.sent += sent;
                    start += sent;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    flushed.buffer_full += self.answers.len() - start;
                    break;
                }
                Err(error) => {
                    // sendmmsg reports an error only for the first datagram it
                    // could not send; the ones after it are tried again.
                    tracing::debug!(%error, client = %self.answers[start].1, "UDP send failed");
                    flushed.failed += 1;
                    start += 1;
                }
            }
        }
        self.answers.clear();
        flushed
    }

    /// Straight to the socket, not through the reactor's readiness: the loop never
    /// waits to send, and a full buffer (EAGAIN) means the answers are lost.
    fn send(&mut self, socket: &UdpSocket, start: usize, end: usize) -> io::Result<usize> {
        let answers = &self.answers[start..end];
        SEND_HEADERS.with_borrow_mut(|headers| {
            let slices: Vec<[IoSlice<'_>; 1]> = answers
                .iter()
                .map(|(bytes, _)| [IoSlice::new(bytes)])
                .collect();
            let addresses: Vec<Option<SockaddrStorage>> = answers
                .iter()
                .map(|&(_, client)| Some(SockaddrStorage::from(client)))
                .collect();
            let sent = sendmmsg(
                socket.as_raw_fd(),
                headers,
                &slices,
                addresses,
                [],
                MsgFlags::MSG_DONTWAIT,
            )?;
            Ok(sent.count())
        })
    }
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch::new()
    }
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn pair(addr: &str) -> (UdpSocket, UdpSocket) {
        let server = UdpSocket::bind(addr).await.unwrap();
        let client = UdpSocket::bind(addr).await.unwrap();
        (server, client)
    }

    #[tokio::test]
    async fn one_read_takes_every_waiting_datagram_with_its_sender() {
        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let (server, client) = pair(addr).await;
            let to = server.local_addr().unwrap();
            for i in 0..5u8 {
                client.send_to(&[i; 3], to).await.unwrap();
            }
            // Loopback delivery is synchronous, but wait for readiness all the same.
            server.readable().await.unwrap();
            let mut batch = RecvBatch::new();
            let count = batch.recv(&server).unwrap();
            assert_eq!(count, 5);
            let got: Vec<_> = batch.datagrams().collect();
            for (i, (bytes, from)) in got.iter().enumerate() {
                assert_eq!(*bytes, &[i as u8; 3]);
                assert_eq!(*from, client.local_addr().unwrap());
            }
            let nothing = batch.recv(&server).unwrap_err();
            assert_eq!(nothing.kind(), io::ErrorKind::WouldBlock);
        }
    }

    #[tokio::test]
    async fn more_than_a_batch_is_read_in_several() {
        let (server, client) = pair("127.0.0.1:0").await;
        let to = server.local_addr().unwrap();
        for _ in 0..BATCH + 3 {
            client.send_to(b"q", to).await.unwrap();
        }
        server.readable().await.unwrap();
        let mut batch = RecvBatch::new();
        assert_eq!(batch.recv(&server).unwrap(), BATCH);
        assert_eq!(batch.recv(&server).unwrap(), 3);
    }

    #[tokio::test]
    async fn an_oversized_datagram_is_cut_to_the_buffer() {
        let (server, client) = pair("127.0.0.1:0").await;
        client
            .send_to(&vec![7u8; RECV_BUFFER + 100], server.local_addr().unwrap())
            .await
            .unwrap();
        server.readable().await.unwrap();
        let mut batch = RecvBatch::new();
        assert_eq!(batch.recv(&server).unwrap(), 1);
        assert_eq!(batch.datagrams().next().unwrap().0.len(), RECV_BUFFER);
    }

    #[tokio::test]
    async fn a_flush_sends_every_answer_to_its_own_client() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut clients = Vec::new();
        for _ in 0..(BATCH + 5) {
            clients.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        }
        let mut batch = SendBatch::new();
        for (i, client) in clients.iter().enumerate() {
            batch.push(vec![i as u8; 10], client.local_addr().unwrap());
        }
        let flushed = batch.flush(&server);
        assert_eq!(
            flushed,
            Flushed {
                sent: BATCH + 5,
                ..Flushed::default()
            }
        );
        assert!(batch.is_empty());
        for (i, client) in clients.iter().enumerate() {
            let mut buffer = [0u8; 64];
            let (len, from) = client.recv_from(&mut buffer).await.unwrap();
            assert_eq!(&buffer[..len], &[i as u8; 10]);
            assert_eq!(from, server.local_addr().unwrap());
        }
    }

    #[tokio::test]
    async fn an_unsendable_answer_does_not_stop_the_others() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut batch = SendBatch::new();
        // An IPv6 destination on an IPv4 socket: the kernel refuses that one.
        batch.push(b"lost".to_vec(), "[::1]:53".parse().unwrap());
        batch.push(b"kept".to_vec(), client.local_addr().unwrap());
        let flushed = batch.flush(&server);
        assert_eq!(flushed.sent, 1);
        assert_eq!(flushed.failed, 1);
        let mut buffer = [0u8; 16];
        let (len, _) = client.recv_from(&mut buffer).await.unwrap();
        assert_eq!(&buffer[..len], b"kept");
    }
}
