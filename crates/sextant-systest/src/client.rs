//! DNS clients for tests: hickory-proto messages over std sockets, and `dig`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};

/// Every test query gives up after this; tests never hang on a silent server.
const TIMEOUT: Duration = Duration::from_secs(5);

fn question(name: &str, rtype: RecordType) -> anyhow::Result<Message> {
    question_with(name, rtype, Some(1232))
}

/// A query for `name`/`rtype`, with EDNS and this payload size or without EDNS.
pub fn question_with(name: &str, rtype: RecordType, edns: Option<u16>) -> anyhow::Result<Message> {
    let mut message = Message::query();
    message.add_query(Query::query(Name::from_ascii(name)?, rtype));
    if let Some(size) = edns {
        let mut opt = Edns::new();
        opt.set_max_payload(size);
        message.set_edns(opt);
    }
    Ok(message)
}

/// Sends `message` over UDP or TCP and returns the response.
pub fn exchange(server: SocketAddr, message: &Message, tcp: bool) -> anyhow::Result<Message> {
    let wire = message.to_vec()?;
    let answer = if tcp {
        let mut stream = TcpStream::connect_timeout(&server, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.write_all(&u16::try_from(wire.len())?.to_be_bytes())?;
        stream.write_all(&wire)?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len)?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut answer)?;
        answer
    } else {
        query_udp_raw(server, &wire)?.context("no answer over UDP")?
    };
    let response = Message::from_vec(&answer)?;
    if response.metadata.id != message.metadata.id {
        bail!("answer has the wrong ID");
    }
    Ok(response)
}

/// Asks `name`/`rtype` over UDP (with EDNS) and reads the answer.
pub fn query_udp(server: SocketAddr, name: &str, rtype: RecordType) -> anyhow::Result<Message> {
    exchange(server, &question(name, rtype)?, false)
}

/// Sends raw bytes; `None` when nothing comes back within the timeout.
pub fn query_udp_raw(server: SocketAddr, bytes: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.send_to(bytes, server)?;
    recv_within(&socket, TIMEOUT)
}

/// Waits for one datagram for at most `limit`. A signal (EINTR: test processes get
/// SIGCHLD as daemons of other tests exit) does not end the wait early.
pub fn recv_within(socket: &UdpSocket, limit: Duration) -> anyhow::Result<Option<Vec<u8>>> {
    let deadline = std::time::Instant::now() + limit;
    let mut buffer = vec![0u8; 65535];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        socket.set_read_timeout(Some(left))?;
        match socket.recv_from(&mut buffer) {
            Ok((len, _)) => return Ok(Some(buffer[..len].to_vec())),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Asks `name`/`rtype` over TCP and reads the answer.
pub fn query_tcp(server: SocketAddr, name: &str, rtype: RecordType) -> anyhow::Result<Message> {
    exchange(server, &question(name, rtype)?, true)
}

/// Runs `dig @server -p port ARGS +time=2 +tries=1` and returns its output.
pub fn dig(server: SocketAddr, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(args)
        .args(["+time=2", "+tries=1"])
        .output()
        .context("running dig (install it with `apt-get install bind9-dnsutils`)")?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Sends a NOTIFY for `zone` (RFC 1996) over UDP and returns the response.
pub fn notify(server: SocketAddr, zone: &str) -> anyhow::Result<Message> {
    let mut message = Message::new(
        rand_id(),
        hickory_proto::op::MessageType::Query,
        hickory_proto::op::OpCode::Notify,
    );
    message.metadata.authoritative = true;
    message.add_query(Query::query(Name::from_ascii(zone)?, RecordType::SOA));
    exchange(server, &message, false)
}

fn rand_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7);
    (nanos % 65_521) as u16
}

/// The Extended DNS Error of a response (RFC 8914): its info code and text.
pub fn extended_error(response: &Message) -> Option<(u16, String)> {
    let edns = response.edns.as_ref()?;
    edns.options()
        .as_ref()
        .iter()
        .find_map(|(_, option)| match option {
            hickory_proto::rr::rdata::opt::EdnsOption::Unknown(15, data) => {
                let code = u16::from_be_bytes([*data.first()?, *data.get(1)?]);
                Some((code, String::from_utf8_lossy(data.get(2..)?).into_owned()))
            }
            _ => None,
        })
}
