//! Who already listens on an address we are about to share with SO_REUSEPORT. Joining
//! a running Sextant listener is a restart without loss (see `handover`); joining
//! any other program that happens to use SO_REUSEPORT under the same user would
//! silently split the traffic with it, so that is refused. The kernel's socket tables
//! (`/proc/net/tcp`, `tcp6`) give the listening socket's inode, and `/proc/PID/fd` the
//! process holding it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What holds a TCP address.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// Nothing listens there.
    Free,
    /// A Sextant listener bound to exactly that address: our predecessor.
    Listener,
    /// Another program, or a listener bound to a covering wildcard: described.
    Other(String),
}

/// Who listens on `addr` over TCP.
pub(crate) fn holder(addr: SocketAddr) -> Holder {
    // The plain bind fails exactly when something listens there.
    let taken = matches!(
        std::net::TcpListener::bind(addr),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse
    );
    if !taken {
        return Holder::Free;
    }
    let table = if addr.is_ipv4() {
        "/proc/net/tcp"
    } else {
        "/proc/net/tcp6"
    };
    let sockets = std::fs::read_to_string(table)
        .map(|text| listening(&text, addr))
        .unwrap_or_default();
    let mut described = Vec::new();
    for (local, inode) in sockets {
        match process_of(inode) {
            Some((_, comm)) if local == addr && comm.starts_with("sextant-listen") => {}
            Some((pid, comm)) => described.push(format!("{comm} (PID {pid}) on {local}")),
            // Not ours to see: another user's, whose group the kernel will not let
            // us join anyway.
            None => described.push(format!("a process of another user on {local}")),
        }
    }
    if described.is_empty() {
        Holder::Listener
    } else {
        Holder::Other(described.join(", "))
    }
}

/// The listening sockets of `table` (a `/proc/net/tcp` text) that `addr` would share
/// its port with: the same port on the same address or on the wildcard.
fn listening(table: &str, addr: SocketAddr) -> Vec<(SocketAddr, u64)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            // 0A: TCP_LISTEN.
            if *state != "0A" {
                return None;
            }
            let local = parse_address(local)?;
            let covers = local.ip() == addr.ip() || local.ip().is_unspecified();
            (local.port() == addr.port() && covers).then_some((local, inode.parse().ok()?))
        })
        .collect()
}

/// `0100007F:0035` (an address as the kernel prints it: 32-bit words in host order,
/// then the port) as an address.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Option<Vec<[u8; 4]>> = (0..ip.len() / 8)
        .map(|i| {
            let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
            Some(word.to_ne_bytes())
        })
        .collect();
    let bytes: Vec<u8> = words?.concat();
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The process holding socket `inode`, with its command name.
fn process_of(inode: u64) -> Option<(u32, String)> {
    let wanted = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == wanted.as_str())
        });
        if holds {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            return Some((pid, comm.trim().to_string()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn kernel_addresses_are_read_in_host_order() {
        let v4 = format!("{:08X}:0035", u32::from_ne_bytes([127, 0, 0, 1]));
        assert_eq!(parse_address(&v4), Some("127.0.0.1:53".parse().unwrap()));
        let one = format!("{:08X}", u32::from_ne_bytes([0, 0, 0, 1]));
        let v6 = format!("000000000000000000000000{one}:0035");
        assert_eq!(parse_address(&v6), Some("[::1]:53".parse().unwrap()));
        assert_eq!(parse_address("zz:0035"), None);
    }

    #[test]
    fn a_program_of_our_own_that_is_not_a_listener_is_named() {
        // This test process listens (no SO_REUSEPORT needed to be seen).
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        match holder(addr) {
            Holder::Other(who) => {
                assert!(
                    who.contains(&format!("PID {}", std::process::id())),
                    "{who}"
                )
            }
            other => panic!("{other:?}"),
        }
        drop(socket);
        assert_eq!(holder(addr), Holder::Free);
    }
}
