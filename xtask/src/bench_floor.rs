//! The bench's floor: the least a UDP DNS responder can do on this machine. One
//! thread reads whatever datagrams are waiting with one `recvmmsg` (blocking for the
//! first), turns each query into the same canned answer (its own header and question
//! with QR and AA set, one A record pointing back at the question) and sends them all
//! with one `sendmmsg`. No lookup, no cache, no checks: every server's figures are
//! then readable as "how far from what the kernel and dnsperf allow".

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use anyhow::Context;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};

/// Datagrams per system call, as the listener reads them.
const BATCH: usize = 32;
/// The answer record: a pointer to the question's name, A IN, TTL 3600, 192.0.2.1.
const ANSWER: [u8; 16] = [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 1];
const HEADER: usize = 12;

/// Answers on `port` of 127.0.0.1 until killed.
pub(crate) fn serve(port: u16) -> anyhow::Result<()> {
    let socket = UdpSocket::bind(("127.0.0.1", port))
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    let mut buffers = vec![[0u8; 512]; BATCH];
    let mut answers: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(BATCH);
    // One socket, one address family: the headers' address lengths stay right
    // from one read to the next.
    let mut receive_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    loop {
        answers.clear();
        let Ok(received) = receive(&socket, &mut receive_headers, &mut buffers) else {
            continue;
        };
        for ((len, from), buffer) in received.into_iter().zip(&buffers) {
            if let (Some(from), Some(answer)) = (from, answer(&buffer[..len])) {
                answers.push((answer, from));
            }
        }
        if answers.is_empty() {
            continue;
        }
        let slices: Vec<[IoSlice<'_>; 1]> = answers
            .iter()
            .map(|(answer, _)| [IoSlice::new(answer)])
            .collect();
        let addresses: Vec<Option<SockaddrStorage>> = answers
            .iter()
            .map(|&(_, to)| Some(SockaddrStorage::from(to)))
            .collect();
        // A full send buffer loses these answers, as it would any server's.
        let _ = sendmmsg(
            socket.as_raw_fd(),
            &mut send,
            &slices,
            addresses,
            [],
            MsgFlags::empty(),
        );
    }
}

/// Waits for datagrams and reads those waiting: their lengths and senders.
fn receive(
    socket: &UdpSocket,
    headers: &mut MultiHeaders<SockaddrStorage>,
    buffers: &mut [[u8; 512]],
) -> nix::Result<Vec<(usize, Option<SocketAddr>)>> {
    let mut slices: Vec<[IoSliceMut<'_>; 1]> = buffers
        .iter_mut()
        .map(|buffer| [IoSliceMut::new(buffer)])
        .collect();
    let received = recvmmsg(
        socket.as_raw_fd(),
        headers,
        slices.iter_mut(),
        MsgFlags::MSG_WAITFORONE,
        None,
    )?;
    Ok(received
        .map(|message| (message.bytes, message.address.and_then(|a| address(&a))))
        .collect())
}

/// The canned answer to `query`: header and question kept, one answer record.
fn answer(query: &[u8]) -> Option<Vec<u8>> {
    let mut at = HEADER;
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    let question_end = at + 4;
    let mut answer = Vec::with_capacity(question_end + ANSWER.len());
    answer.extend_from_slice(query.get(..question_end)?);
    answer[2] = 0x84 | (answer[2] & 0x01);
    answer[3] = 0;
    answer[4..12].copy_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
    answer.extend_from_slice(&ANSWER);
    Some(answer)
}

fn address(address: &SockaddrStorage) -> Option<SocketAddr> {
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

    #[test]
    fn the_answer_keeps_id_and_question_and_adds_one_record() {
        let query = [
            0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'n', b's', b'1', 0, 0, 1, 0, 1,
        ];
        let answer = answer(&query).unwrap();
        assert_eq!(&answer[..2], &[0xab, 0xcd]);
        assert_eq!(answer[2], 0x85, "QR, AA, RD kept");
        assert_eq!(&answer[4..12], &[0, 1, 0, 1, 0, 0, 0, 0]);
        assert_eq!(&answer[12..21], &query[12..]);
        assert_eq!(&answer[21..], &ANSWER);
        assert!(super::answer(&query[..14]).is_none(), "a cut question");
    }
}
