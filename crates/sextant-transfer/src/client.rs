//! Talking to a primary: the SOA serial over UDP (TCP when truncated), and the AXFR
//! stream over TCP, each step bounded in time.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::XfrError;
use crate::axfr::{AxfrReceiver, Limits, Progress};
use sextant_tsig::{Key, ResponseVerifier};

/// Timeouts of one exchange with a primary.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    /// Longest silence while a message is expected (a stalled primary fails here).
    pub message: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            message: Duration::from_secs(10),
        }
    }
}

/// What a completed AXFR brought.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AxfrOutcome {
    pub serial: u32,
    pub records: u64,
    pub bytes: u64,
    pub messages: u64,
}

fn timeout(primary: SocketAddr, timeouts: &Timeouts, during: &'static str) -> XfrError {
    XfrError::Timeout {
        primary,
        seconds: timeouts.message.as_secs(),
        during,
    }
}

fn local_any(primary: SocketAddr) -> SocketAddr {
    if primary.is_ipv6() {
        "[::]:0".parse().unwrap_or(primary)
    } else {
        "0.0.0.0:0".parse().unwrap_or(primary)
    }
}

/// Asks `primary` for the SOA serial of `zone`. The query leaves from a fresh random
/// port with a random ID; an answer from elsewhere or with another ID is ignored.
pub(crate) async fn soa_serial(
    primary: SocketAddr,
    zone: &Name,
    timeouts: &Timeouts,
    tsig: Option<&Key>,
) -> Result<u32, XfrError> {
    let mut query = Message::query();
    query.add_query(Query::query(zone.clone(), RecordType::SOA));
    let mut verifier = sign(&mut query, tsig, primary)?;
    let wire = query.to_vec().map_err(|e| XfrError::Malformed {
        primary,
        reason: e.to_string(),
    })?;
    let connect_error = |cause| XfrError::Connect { primary, cause };
    let socket = UdpSocket::bind(local_any(primary))
        .await
        .map_err(connect_error)?;
    socket
        .send_to(&wire, primary)
        .await
        .map_err(connect_error)?;
    let mut buffer = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + timeouts.message;
    let response = loop {
        let (len, from) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buffer))
            .await
            .map_err(|_| timeout(primary, timeouts, "answering the SOA query"))?
            .map_err(connect_error)?;
        if from != primary {
            continue;
        }
        let Ok(response) = Message::from_vec(&buffer[..len]) else {
            continue;
        };
        if response.metadata.id == query.metadata.id
            && response.metadata.message_type == MessageType::Response
        {
            break (response, buffer[..len].to_vec());
        }
    };
    // Truncated, or refused over UDP (Knot answers the catalog zones it generates
    // over TCP only): asked again over TCP, as BIND's try-tcp-refresh does.
    let (response, response_wire) = if response.0.metadata.truncation
        || response.0.metadata.response_code != hickory_proto::op::ResponseCode::NoError
    {
        // A fresh verifier: the TCP answer chains to the same query MAC.
        verifier = sign(&mut query, tsig, primary)?;
        tcp_exchange(primary, &query, timeouts).await?
    } else {
        response
    };
    if let Some(verifier) = &mut verifier {
        verifier
            .check(&response_wire, &response)
            .and_then(|()| verifier.finish())
            .map_err(|reason| XfrError::Tsig { primary, reason })?;
    }
    response
        .answers
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) if r.name.to_lowercase() == zone.to_lowercase() => Some(soa.serial),
            _ => None,
        })
        .ok_or_else(|| XfrError::Refused {
            primary,
            rcode: format!("{} without the zone's SOA", response.metadata.response_code),
        })
}

async fn tcp_exchange(
    primary: SocketAddr,
    query: &Message,
    timeouts: &Timeouts,
) -> Result<(Message, Vec<u8>), XfrError> {
    let mut stream = connect(primary, timeouts).await?;
    send_framed(&mut stream, primary, query).await?;
    let (message, wire) = read_framed(&mut stream, primary, timeouts, 0)
        .await?
        .ok_or(XfrError::Closed {
            primary,
            records: 0,
        })?;
    Ok((message, wire))
}

/// Signs `query` with `tsig`, if any, and returns the verifier for its answers.
fn sign(
    query: &mut Message,
    tsig: Option<&Key>,
    primary: SocketAddr,
) -> Result<Option<ResponseVerifier>, XfrError> {
    let Some(key) = tsig else { return Ok(None) };
    let mac = key
        .sign_query(query)
        .map_err(|reason| XfrError::Tsig { primary, reason })?;
    Ok(Some(ResponseVerifier::new(key.clone(), mac)))
}

/// Checks one message of an answer stream against its TSIG, if the zone has a key.
fn verify(
    verifier: &mut Option<ResponseVerifier>,
    wire: &[u8],
    message: &Message,
    primary: SocketAddr,
) -> Result<(), XfrError> {
    match verifier {
        Some(verifier) => verifier
            .check(wire, message)
            .map_err(|reason| XfrError::Tsig { primary, reason }),
        None => Ok(()),
    }
}

/// At the end of a stream: the last message must have been signed.
fn verify_end(verifier: &Option<ResponseVerifier>, primary: SocketAddr) -> Result<(), XfrError> {
    match verifier {
        Some(verifier) => verifier
            .finish()
            .map_err(|reason| XfrError::Tsig { primary, reason }),
        None => Ok(()),
    }
}

async fn connect(primary: SocketAddr, timeouts: &Timeouts) -> Result<TcpStream, XfrError> {
    let stream = tokio::time::timeout(timeouts.connect, TcpStream::connect(primary))
        .await
        .map_err(|_| XfrError::Timeout {
            primary,
            seconds: timeouts.connect.as_secs(),
            during: "connecting",
        })?
        .map_err(|cause| XfrError::Connect { primary, cause })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

async fn send_framed(
    stream: &mut TcpStream,
    primary: SocketAddr,
    message: &Message,
) -> Result<(), XfrError> {
    let wire = message.to_vec().map_err(|e| XfrError::Malformed {
        primary,
        reason: e.to_string(),
    })?;
    let len = u16::try_from(wire.len()).map_err(|_| XfrError::Malformed {
        primary,
        reason: "query too long".into(),
    })?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(&wire);
    stream
        .write_all(&framed)
        .await
        .map_err(|cause| XfrError::Connect { primary, cause })
}

/// One length-prefixed message; `None` at a clean end of stream.
async fn read_framed(
    stream: &mut TcpStream,
    primary: SocketAddr,
    timeouts: &Timeouts,
    records: u64,
) -> Result<Option<(Message, Vec<u8>)>, XfrError> {
    let mut len = [0u8; 2];
    match tokio::time::timeout(timeouts.message, stream.read_exact(&mut len)).await {
        Err(_) => return Err(timeout(primary, timeouts, "during the transfer")),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(_)) => return Err(XfrError::Closed { primary, records }),
        Ok(Ok(_)) => {}
    }
    let mut wire = vec![0u8; usize::from(u16::from_be_bytes(len))];
    match tokio::time::timeout(timeouts.message, stream.read_exact(&mut wire)).await {
        Err(_) => return Err(timeout(primary, timeouts, "during the transfer")),
        Ok(Err(_)) => return Err(XfrError::Closed { primary, records }),
        Ok(Ok(_)) => {}
    }
    let message = Message::from_vec(&wire).map_err(|e| XfrError::Malformed {
        primary,
        reason: format!("a message does not parse ({e})"),
    })?;
    Ok(Some((message, wire)))
}

/// Transfers `zone` from `primary` by AXFR, handing each record to `sink`. Returns
/// only once the closing SOA has arrived and matched the opening one.
pub(crate) async fn axfr(
    primary: SocketAddr,
    zone: &Name,
    timeouts: &Timeouts,
    limits: Limits,
    tsig: Option<&Key>,
    sink: &mut (dyn FnMut(&Record) -> Result<(), XfrError> + Send),
) -> Result<AxfrOutcome, XfrError> {
    let mut stream = connect(primary, timeouts).await?;
    let mut query = Message::query();
    query.add_query(Query::query(zone.clone(), RecordType::AXFR));
    let mut verifier = sign(&mut query, tsig, primary)?;
    send_framed(&mut stream, primary, &query).await?;
    let mut receiver = AxfrReceiver::new(primary, zone, query.metadata.id, limits);
    let mut messages = 0;
    loop {
        let Some((message, wire)) =
            read_framed(&mut stream, primary, timeouts, receiver.records()).await?
        else {
            return Err(XfrError::Closed {
                primary,
                records: receiver.records(),
            });
        };
        messages += 1;
        // Authenticate before a single record reaches the store.
        verify(&mut verifier, &wire, &message, primary)?;
        if let Progress::Complete { serial } = receiver.accept(&message, wire.len(), sink)? {
            verify_end(&verifier, primary)?;
            return Ok(AxfrOutcome {
                serial,
                records: receiver.records(),
                bytes: receiver.bytes(),
                messages,
            });
        }
    }
}

/// Asks `primary` for the differences from our SOA `ours` (RFC 1995, over TCP).
pub(crate) async fn ixfr(
    primary: SocketAddr,
    zone: &Name,
    ours: &Record,
    timeouts: &Timeouts,
    limits: Limits,
    tsig: Option<&Key>,
) -> Result<crate::ixfr::IxfrOutcome, XfrError> {
    let mut stream = connect(primary, timeouts).await?;
    let mut query = Message::query();
    query.add_query(Query::query(zone.clone(), RecordType::IXFR));
    query.authorities.push(ours.clone());
    let mut verifier = sign(&mut query, tsig, primary)?;
    send_framed(&mut stream, primary, &query).await?;
    let serial = crate::axfr::serial_of(ours);
    let mut receiver =
        crate::ixfr::IxfrReceiver::new(primary, zone, query.metadata.id, serial, limits);
    let mut records = 0;
    loop {
        let Some((message, wire)) = read_framed(&mut stream, primary, timeouts, records).await?
        else {
            return Err(XfrError::Closed { primary, records });
        };
        records += message.answers.len() as u64;
        verify(&mut verifier, &wire, &message, primary)?;
        if let Some(outcome) = receiver.accept(&message)? {
            verify_end(&verifier, primary)?;
            return Ok(outcome);
        }
    }
}
