//! Handing the DNS sockets from a running listener to its successor without losing a
//! query (a restart or an upgrade).
//!
//! Every listener socket (UDP, TCP, DoT, DoH) is bound with SO_REUSEPORT, so a new
//! listener started beside a running one joins the kernel's group for each address
//! instead of failing. Which member gets a packet (UDP) or a connection (TCP) is
//! decided by a classic BPF program attached to the group, which returns the index of
//! a member; members are indexed in the order they joined, and an index past the end
//! falls back to the kernel's hash. The program is one instruction:
//!
//! - a listener that binds sets "the first member": its predecessor, if any, keeps
//!   everything while the newcomer connects to its backends (the newcomer reads
//!   nothing before it is ready, so a packet that slipped in waits in its buffer);
//! - a listener asked to stop sets "the second member": its successor, if one
//!   joined, gets everything from that instant; without one the index is past the
//!   end and the stopping listener keeps its traffic until it has gone;
//! - the stopping listener then reads what is already in its own queues until they
//!   have been quiet for [`QUIET`] (at most [`DRAIN_LIMIT`]), answers it, and closes.
//!
//! The indices are right when restarts are done one at a time: a group holds the
//! running listener and at most one successor. Each UDP address has one socket per
//! listener, shared by its workers, so that a listener is exactly one member.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use nix::libc;
use nix::sys::socket::{setsockopt, sockopt};

/// A stopping listener's queues count as drained once nothing has arrived for this
/// long: after the switch packets stop arriving at once, and loopback or a LAN
/// delivers what was already on its way in far less.
pub(crate) const QUIET: Duration = Duration::from_millis(50);
/// The drain's bound when no successor takes the traffic (a plain stop under load).
pub(crate) const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// The group member that gets new packets and connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Member {
    /// The one that joined first: the running listener while a successor starts.
    First,
    /// The one that joined after it: the successor, once the first stops.
    Second,
}

/// Points the SO_REUSEPORT group `socket` belongs to at `member`.
pub(crate) fn steer(socket: &impl AsFd, member: Member) -> io::Result<()> {
    let index = match member {
        Member::First => 0,
        Member::Second => 1,
    };
    // BPF_RET | BPF_K: return the constant index.
    let mut program = [libc::sock_filter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: index,
    }];
    let filter = libc::sock_fprog {
        len: 1,
        filter: program.as_mut_ptr(),
    };
    setsockopt(socket, sockopt::AttachReusePortCbpf, &filter).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::UdpSocket;

    fn member(addr: Option<std::net::SocketAddr>) -> UdpSocket {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .unwrap();
        socket.set_reuse_port(true).unwrap();
        let addr = addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
        socket.bind(&addr.into()).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        socket.into()
    }

    /// How many of `count` datagrams, each from a new source port (so the hash
    /// would spread them), reach `socket`.
    fn received(socket: &UdpSocket, count: usize) -> usize {
        let addr = socket.local_addr().unwrap();
        for _ in 0..count {
            UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .send_to(b"q", addr)
                .unwrap();
        }
        let mut buffer = [0u8; 8];
        let mut got = 0;
        while socket.recv(&mut buffer).is_ok() {
            got += 1;
        }
        got
    }

    #[test]
    fn the_steering_sends_everything_to_the_chosen_member() {
        let first = member(None);
        let second = member(Some(first.local_addr().unwrap()));
        steer(&second, Member::First).unwrap();
        assert_eq!(received(&first, 32), 32);
        steer(&first, Member::Second).unwrap();
        assert_eq!(received(&second, 32), 32);
        // The first gone, "the second" is past the end: the one left gets it all.
        drop(first);
        assert_eq!(received(&second, 32), 32);
    }
}
