//! A DNS hierarchy on loopback for resolver tests: authoritative servers on port 53
//! of their own 127.x.y.z addresses (root, TLDs, leaf zones), each serving real zone
//! files through the authority's own answer code, and each scriptable to misbehave
//! the ways real servers do (silence, REFUSED, forced truncation, EDNS intolerance,
//! spoofed datagrams, records outside their bailiwick).
//!
//! Binding port 53 needs root (CI runs as root). Each lab takes its own /24 inside
//! 127.0.0.0/8, so tests in parallel never share a server.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{Name, Record};
use parking_lot::Mutex;
use sextant_rpc::{Query, Transport};
use sextant_zone::{Catalog, Zone};

/// How a lab server misbehaves; `Behaviour::default()` is a correct server.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Never answers (the datagrams are read and dropped).
    pub silent: bool,
    /// Answers REFUSED to everything, as a lame server does.
    pub refuse: bool,
    /// Over UDP, answers with TC=1 and no records: only TCP gets the answer.
    pub truncate_udp: bool,
    /// Answers FORMERR without OPT to queries carrying EDNS, as old servers do.
    pub formerr_on_edns: bool,
    /// Before each real answer, sends a poisoned one with the wrong ID and another
    /// with the wrong question.
    pub spoof_first: Option<Record>,
    /// Records added to the additional section of every answer.
    pub inject_additional: Vec<Record>,
    /// Waits this long before each answer (a slow server; the server answers one
    /// query at a time meanwhile).
    pub delay: Option<Duration>,
    /// Answers DNS Cookies (RFC 7873): the client cookie back, with a server cookie.
    pub answer_cookies: bool,
    /// Before each real answer over UDP, sends a poisoned one with the right ID and
    /// question but no cookie: what an attacker who guessed the ID would send.
    pub spoof_without_cookie: Option<Record>,
    /// Drops NSEC and NSEC3 records (and their signatures) from every answer: a
    /// signed zone's denials of existence come without proof.
    pub strip_denial: bool,
}

#[derive(Debug)]
struct Shared {
    catalog: Catalog,
    behaviour: Mutex<Behaviour>,
    stop: AtomicBool,
    udp_queries: AtomicUsize,
    tcp_queries: AtomicUsize,
}

/// One authoritative server of the lab.
#[derive(Debug)]
pub struct LabServer {
    /// Where it answers (port 53 of its own loopback address).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl LabServer {
    /// Changes how it misbehaves, from the next query on.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock() = behaviour;
    }

    /// Queries received over UDP and TCP together.
    pub fn queries(&self) -> usize {
        self.shared.udp_queries.load(Ordering::SeqCst) + self.tcp_queries()
    }

    /// TCP queries it has answered.
    pub fn tcp_queries(&self) -> usize {
        self.shared.tcp_queries.load(Ordering::SeqCst)
    }
}

impl Drop for LabServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Labs handed out by this process; with the process ID it picks the /24.
static NEXT_LAB: AtomicU8 = AtomicU8::new(0);

/// A set of lab servers in one 127.B.C.0/24.
#[derive(Debug)]
pub struct DnsLab {
    prefix: [u8; 3],
}

impl DnsLab {
    /// A server that behaves.
    pub fn new() -> Self {
        let lab = NEXT_LAB.fetch_add(1, Ordering::SeqCst);
        let b = 100 + (std::process::id() % 100) as u8;
        Self {
            prefix: [127, b, lab],
        }
    }

    /// The address of host `n` of this lab.
    pub fn ip(&self, n: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.prefix[0], self.prefix[1], self.prefix[2], n)
    }

    /// Starts a server on host `n`, port 53, serving `zones` (origin, master text).
    pub fn serve(&self, n: u8, zones: &[(&str, &str)]) -> anyhow::Result<LabServer> {
        let mut built = Vec::new();
        for (origin, text) in zones {
            let origin = Name::from_ascii(origin)?;
            let none =
                |_: &Path| -> std::io::Result<String> { Err(std::io::ErrorKind::NotFound.into()) };
            let (zone, _) = Zone::from_master_text(
                &origin,
                Path::new(origin_file(&origin).as_str()),
                text,
                &none,
            )
            .map_err(|e| anyhow::anyhow!("lab zone {origin}: {e}"))?;
            built.push(Arc::new(zone));
        }
        let addr = SocketAddr::from((self.ip(n), 53));
        let udp = UdpSocket::bind(addr)
            .with_context(|| format!("binding lab server {addr} (tests need root)"))?;
        let tcp = TcpListener::bind(addr)
            .with_context(|| format!("binding lab server {addr} over TCP"))?;
        udp.set_read_timeout(Some(Duration::from_millis(50)))?;
        tcp.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            catalog: Catalog::new(built),
            behaviour: Mutex::default(),
            stop: AtomicBool::new(false),
            udp_queries: AtomicUsize::new(0),
            tcp_queries: AtomicUsize::new(0),
        });
        let udp_shared = shared.clone();
        let tcp_shared = shared.clone();
        let threads = vec![
            thread::spawn(move || serve_udp(&udp, &udp_shared)),
            thread::spawn(move || serve_tcp(&tcp, &tcp_shared)),
        ];
        Ok(LabServer {
            addr,
            shared,
            threads,
        })
    }

    /// A root hints file naming `servers` (name, host number).
    pub fn hints(&self, servers: &[(&str, u8)]) -> String {
        let mut text = String::new();
        for (name, _) in servers {
            text.push_str(&format!(".  3600000  NS  {name}\n"));
        }
        for (name, n) in servers {
            text.push_str(&format!("{name}  3600000  A  {}\n", self.ip(*n)));
        }
        text
    }
}

impl Default for DnsLab {
    fn default() -> Self {
        Self::new()
    }
}

fn origin_file(origin: &Name) -> String {
    format!("lab/{origin}zone")
}

fn answer(shared: &Shared, wire: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let behaviour = shared.behaviour.lock().clone();
    if behaviour.silent {
        return None;
    }
    if let Some(delay) = behaviour.delay {
        thread::sleep(delay);
    }
    let query = Message::from_vec(wire).ok()?;
    if behaviour.refuse || (behaviour.formerr_on_edns && query.edns.is_some()) {
        let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
        reply.queries = query.queries.clone();
        reply.metadata.response_code = if behaviour.refuse {
            ResponseCode::Refused
        } else {
            ResponseCode::FormErr
        };
        return reply.to_vec().ok();
    }
    if behaviour.truncate_udp && transport == Transport::Udp {
        let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
        reply.queries = query.queries.clone();
        reply.metadata.truncation = true;
        return reply.to_vec().ok();
    }
    let request = Query {
        wire: Bytes::copy_from_slice(wire),
        client: SocketAddr::from(([127, 0, 0, 1], 0)),
        transport,
        max_response_size: if transport == Transport::Tcp {
            u16::MAX
        } else {
            1232
        },
        traceparent: None,
    };
    let mut reply = sextant_authority::respond(&shared.catalog, &request, 1232, None)
        .wire()?
        .to_vec();
    if behaviour.answer_cookies {
        add_cookie(wire, &mut reply);
    }
    if behaviour.strip_denial {
        let mut message = Message::from_vec(&reply).ok()?;
        message.authorities.retain(|r| !is_denial(r));
        reply = message.to_vec().ok()?;
    }
    if !behaviour.inject_additional.is_empty() {
        let mut message = Message::from_vec(&reply).ok()?;
        message
            .additionals
            .extend(behaviour.inject_additional.iter().cloned());
        reply = message.to_vec().ok()?;
    }
    Some(reply)
}

/// An NSEC or NSEC3 record, or a signature over one.
fn is_denial(record: &Record) -> bool {
    use hickory_proto::dnssec::rdata::DNSSECRData;
    use hickory_proto::rr::{RData, RecordType};
    let denial = |rtype: RecordType| matches!(rtype, RecordType::NSEC | RecordType::NSEC3);
    match &record.data {
        RData::DNSSEC(DNSSECRData::RRSIG(sig)) => denial(sig.input().type_covered),
        _ => denial(record.record_type()),
    }
}

/// The poisoned datagrams a spoofer sends before the real answer.
fn spoofs(wire: &[u8], poison: &Record) -> Vec<Vec<u8>> {
    let Ok(query) = Message::from_vec(wire) else {
        return Vec::new();
    };
    let mut wrong_id = Message::response(query.metadata.id.wrapping_add(1), query.metadata.op_code);
    wrong_id.metadata.message_type = MessageType::Response;
    wrong_id.metadata.authoritative = true;
    wrong_id.queries = query.queries.clone();
    wrong_id.answers = vec![poison.clone()];
    let mut wrong_question = wrong_id.clone();
    wrong_question.metadata.id = query.metadata.id;
    if let Some(question) = wrong_question.queries.first_mut() {
        let other = Name::from_ascii("spoofed.invalid.").unwrap_or_default();
        question.set_name(other);
    }
    [wrong_id, wrong_question]
        .iter()
        .filter_map(|m| m.to_vec().ok())
        .collect()
}

/// The server cookie every lab server gives (its value does not matter to clients).
const LAB_SERVER_COOKIE: [u8; 16] = [1, 0, 0, 0, 0x6b, 0x0d, 0x19, 0x43, 7, 7, 7, 7, 7, 7, 7, 7];

/// Adds the query's client cookie and the lab's server cookie to `reply`.
fn add_cookie(query: &[u8], reply: &mut Vec<u8>) {
    let Ok(view) = sextant_wire::parse_query(query) else {
        return;
    };
    let Some(edns) = view.edns else {
        return;
    };
    let Some(cookie) = sextant_wire::find_option(edns.options(query), sextant_wire::OPTION_COOKIE)
    else {
        return;
    };
    let mut data = cookie.get(..8).unwrap_or_default().to_vec();
    data.extend_from_slice(&LAB_SERVER_COOKIE);
    sextant_wire::add_option(reply, sextant_wire::OPTION_COOKIE, &data);
}

/// A poisoned answer with the query's ID and question, and no cookie.
fn spoof_without_cookie(wire: &[u8], poison: &Record) -> Option<Vec<u8>> {
    let query = Message::from_vec(wire).ok()?;
    let mut spoof = Message::response(query.metadata.id, query.metadata.op_code);
    spoof.metadata.authoritative = true;
    spoof.queries = query.queries.clone();
    let mut record = poison.clone();
    if let Some(question) = query.queries.first() {
        record.name = question.name().clone();
    }
    spoof.answers = vec![record];
    spoof.to_vec().ok()
}

fn serve_udp(socket: &UdpSocket, shared: &Shared) {
    let mut buffer = [0u8; 4096];
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok((len, from)) = socket.recv_from(&mut buffer) else {
            continue;
        };
        shared.udp_queries.fetch_add(1, Ordering::SeqCst);
        let wire = &buffer[..len];
        let (poison, blind) = {
            let behaviour = shared.behaviour.lock();
            (
                behaviour.spoof_first.clone(),
                behaviour.spoof_without_cookie.clone(),
            )
        };
        if let Some(poison) = poison {
            for spoof in spoofs(wire, &poison) {
                let _ = socket.send_to(&spoof, from);
            }
        }
        if let Some(spoof) = blind.and_then(|poison| spoof_without_cookie(wire, &poison)) {
            let _ = socket.send_to(&spoof, from);
        }
        if let Some(reply) = answer(shared, wire, Transport::Udp) {
            let _ = socket.send_to(&reply, from);
        }
    }
}

fn serve_tcp(listener: &TcpListener, shared: &Shared) {
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok((mut stream, _)) = listener.accept() else {
            thread::sleep(Duration::from_millis(20));
            continue;
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut length = [0u8; 2];
        while stream.read_exact(&mut length).is_ok() {
            let mut wire = vec![0u8; usize::from(u16::from_be_bytes(length))];
            if stream.read_exact(&mut wire).is_err() {
                break;
            }
            shared.tcp_queries.fetch_add(1, Ordering::SeqCst);
            let Some(reply) = answer(shared, &wire, Transport::Tcp) else {
                break;
            };
            let Ok(len) = u16::try_from(reply.len()) else {
                break;
            };
            let mut framed = len.to_be_bytes().to_vec();
            framed.extend_from_slice(&reply);
            if stream.write_all(&framed).is_err() {
                break;
            }
        }
    }
}
