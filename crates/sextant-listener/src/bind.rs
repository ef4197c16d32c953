//! Binding the DNS sockets: one UDP socket per address, shared by the workers, and one
//! TCP listener per address, on the same port; all with SO_REUSEPORT so that a
//! successor can join them (see `handover`). Every failure is one sentence naming the
//! address, the cause and the fix.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

use crate::handover::{self, Member};
use crate::holder::Holder;

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({proto}): {cause}; {fix}")]
pub(crate) struct BindError {
    pub addr: SocketAddr,
    pub proto: &'static str,
    pub cause: io::Error,
    pub fix: &'static str,
}

fn bind_error(addr: SocketAddr, proto: &'static str, cause: io::Error) -> BindError {
    let fix = match cause.kind() {
        io::ErrorKind::AddrInUse => {
            "another program already uses this port; stop it, or change `listener.listen`"
        }
        io::ErrorKind::AddrNotAvailable => {
            "the address is not configured on this host; use one of its addresses in `listener.listen`"
        }
        io::ErrorKind::PermissionDenied => {
            "ports below 1024 need root or CAP_NET_BIND_SERVICE; start the listener through its systemd unit, or use a port of 1024 or more"
        }
        _ => "check `listener.listen`",
    };
    BindError {
        addr,
        proto,
        cause,
        fix,
    }
}

/// The sockets for one configured address.
#[derive(Debug)]
pub(crate) struct BoundAddress {
    /// One socket, a handle per worker; not yet registered with a runtime: each UDP
    /// worker takes one to its own.
    pub udp: Vec<std::net::UdpSocket>,
    pub tcp: TcpListener,
    pub local: SocketAddr,
    /// A running listener already held this address: we are taking over from it.
    pub predecessor: bool,
}

/// Backlog of not-yet-accepted TCP connections: large enough for bursts, small enough
/// that a SYN flood cannot queue unbounded work.
const TCP_BACKLOG: i32 = 1024;
/// Tries to find a port free for both UDP and TCP when port 0 is configured.
const PORT_ZERO_ATTEMPTS: usize = 20;

/// Binds `addr` for UDP (one handle per worker) and TCP on the same port. With port 0
/// the kernel picks a UDP port and TCP takes the same one.
pub(crate) fn bind_address(
    addr: SocketAddr,
    udp_workers: usize,
) -> Result<BoundAddress, BindError> {
    let attempts = if addr.port() == 0 {
        PORT_ZERO_ATTEMPTS
    } else {
        1
    };
    let predecessor =
        addr.port() != 0 && joins_predecessor(addr).map_err(|e| bind_error(addr, "TCP", e))?;
    let mut last_error = None;
    for _ in 0..attempts {
        let first = udp_socket(addr).map_err(|e| bind_error(addr, "UDP", e))?;
        let local = first.local_addr().map_err(|e| bind_error(addr, "UDP", e))?;
        let tcp = match tcp_listener(local) {
            Ok(tcp) => tcp,
            Err(e) if addr.port() == 0 && e.kind() == io::ErrorKind::AddrInUse => {
                last_error = Some(bind_error(local, "TCP", e));
                continue;
            }
            Err(e) => return Err(bind_error(local, "TCP", e)),
        };
        let mut udp = Vec::new();
        for _ in 1..udp_workers.max(1) {
            udp.push(first.try_clone().map_err(|e| bind_error(local, "UDP", e))?);
        }
        udp.push(first);
        return Ok(BoundAddress {
            udp,
            tcp,
            local,
            predecessor,
        });
    }
    Err(last_error.unwrap_or_else(|| bind_error(addr, "TCP", io::ErrorKind::AddrInUse.into())))
}

/// Whether a running Sextant listener holds `addr` (we are its successor); an error
/// when another program does, which SO_REUSEPORT would otherwise let us share the
/// traffic with unknowingly.
pub(crate) fn joins_predecessor(addr: SocketAddr) -> io::Result<bool> {
    match crate::holder::holder(addr) {
        Holder::Free => Ok(false),
        Holder::Listener => Ok(true),
        Holder::Other(who) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("already in use by {who}"),
        )),
    }
}

fn udp_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    // Room for bursts while workers are busy; the kernel caps it at rmem_max.
    let _ = socket.set_recv_buffer_size(4 * 1024 * 1024);
    let _ = socket.set_send_buffer_size(4 * 1024 * 1024);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    // A predecessor keeps the traffic until we are ready and it stops.
    handover::steer(&socket, Member::First)?;
    Ok(socket.into())
}

/// A TCP socket listening on `addr` (also DoT's and DoH's).
pub(crate) fn tcp_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(TCP_BACKLOG)?;
    // A listening socket joins its group at listen(), not at bind().
    handover::steer(&socket, Member::First)?;
    TcpListener::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn port_zero_gets_one_port_for_udp_and_tcp() {
        let bound = bind_address("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        assert_ne!(bound.local.port(), 0);
        assert_eq!(bound.tcp.local_addr().unwrap(), bound.local);
        assert_eq!(bound.udp[1].local_addr().unwrap(), bound.local);
    }

    #[tokio::test]
    async fn a_port_shared_by_another_program_is_refused_naming_it() {
        // This test process is not a Sextant listener: sharing its sockets would
        // split the traffic with a stranger. (Joining a real predecessor is the
        // system test `listener_handover`.)
        let first = bind_address("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        assert!(!first.predecessor);
        let err = bind_address(first.local, 2).unwrap_err().to_string();
        assert!(
            err.contains(&format!("(PID {})", std::process::id())),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_port_in_use_is_one_clear_sentence() {
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = holder.local_addr().unwrap();
        let err = bind_address(addr, 1).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("cannot listen on {addr} (TCP)")),
            "{err}"
        );
        assert!(err.contains("change `listener.listen`"), "{err}");
    }

    #[tokio::test]
    async fn an_address_not_on_this_host_says_so() {
        let err = bind_address("192.0.2.1:5353".parse().unwrap(), 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not configured on this host"), "{err}");
    }
}
