//! A scriptable primary for transfer tests: answers SOA queries over UDP and AXFR
//! over TCP from a zone it is told, and misbehaves on request in the ways real
//! primaries have (dying mid-transfer, stalling, sending garbage, changing the SOA).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::{A, NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use sextant_tsig::Key;

/// How the next transfers go wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answers correctly.
    None,
    /// Close the connection after this many records.
    CloseAfter(usize),
    /// Send this many records, then go silent with the connection open.
    StallAfter(usize),
    /// Send the opening message, then bytes that are not DNS.
    Garbage,
    /// End with an SOA whose serial differs from the opening one.
    ClosingSoaDiffers,
    /// Send every record but no closing SOA, then close.
    NoClosingSoa,
    /// Sign answers with a key of the same name but another secret.
    BadTsig,
}

/// How the primary answers IXFR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IxfrMode {
    /// The differences from the client's version (when it knows that version).
    Differences,
    /// The whole zone, as AXFR would send it (RFC 1995 §4 allows it).
    AxfrStyle,
    /// Differences that delete a record the client does not have.
    Inconsistent,
    /// NOTIMP, as a primary without IXFR answers.
    Refuse,
}

#[derive(Debug)]
struct Zone {
    serial: u32,
    hosts: Vec<String>,
    /// Earlier versions: serial and hosts.
    history: Vec<(u32, Vec<String>)>,
    ixfr: IxfrMode,
    /// refresh, retry, expire in seconds.
    timers: (i32, i32, i32),
    fault: Fault,
}

#[derive(Debug)]
struct Shared {
    origin: Name,
    zone: poison_tolerant::Mutex<Zone>,
    /// Signs every answer when set (TSIG).
    tsig: poison_tolerant::Mutex<Option<Key>>,
    down: AtomicBool,
    stop: AtomicBool,
    soa_queries: AtomicUsize,
    transfers: AtomicUsize,
    ixfrs: AtomicUsize,
    /// Transfers that reached a `StallAfter` point (everything before it sent).
    stalls: AtomicUsize,
}

/// std's Mutex, poison-tolerant: a panicking test thread must not wedge the primary.
mod poison_tolerant {
    #[derive(Debug, Default)]
    pub(super) struct Mutex<T>(std::sync::Mutex<T>);
    impl<T> Mutex<T> {
        pub(super) fn new(value: T) -> Self {
            Self(std::sync::Mutex::new(value))
        }
        pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }
}

/// Records per AXFR message: small, so that transfers span several messages.
const RECORDS_PER_MESSAGE: usize = 20;

/// A primary that serves one zone and fails as it is told.
#[derive(Debug)]
pub struct FakePrimary {
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<thread::JoinHandle<()>>,
}

/// A UDP socket and a TCP listener on the same free loopback port. The port UDP
/// got may be taken for TCP (by another test's connection): try another.
fn bind_pair() -> anyhow::Result<(UdpSocket, TcpListener, SocketAddr)> {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let addr = udp.local_addr()?;
        if let Ok(tcp) = TcpListener::bind(addr) {
            return Ok((udp, tcp, addr));
        }
    }
    anyhow::bail!("no loopback port free for both UDP and TCP")
}

impl FakePrimary {
    /// Serves `origin` with serial 1 and hosts `www` and `v1only`.
    pub fn start(origin: &str) -> anyhow::Result<Self> {
        let (udp, tcp, addr) = bind_pair()?;
        udp.set_read_timeout(Some(Duration::from_millis(100)))?;
        tcp.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            origin: Name::from_ascii(origin)?,
            zone: poison_tolerant::Mutex::new(Zone {
                serial: 1,
                hosts: vec!["www".into(), "v1only".into()],
                history: Vec::new(),
                ixfr: IxfrMode::Differences,
                timers: (3600, 3600, 1_209_600),
                fault: Fault::None,
            }),
            tsig: poison_tolerant::Mutex::new(None),
            down: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            soa_queries: AtomicUsize::new(0),
            transfers: AtomicUsize::new(0),
            ixfrs: AtomicUsize::new(0),
            stalls: AtomicUsize::new(0),
        });
        let udp_shared = shared.clone();
        let tcp_shared = shared.clone();
        let threads = vec![
            thread::spawn(move || serve_udp(&udp, &udp_shared)),
            thread::spawn(move || serve_tcp(&tcp, &tcp_shared)),
        ];
        Ok(Self {
            addr,
            shared,
            threads,
        })
    }

    /// The next version: `serial` with these host names (each gets an A record).
    pub fn set_version(&self, serial: u32, hosts: &[&str]) {
        let mut zone = self.shared.zone.lock();
        let previous = (zone.serial, zone.hosts.clone());
        zone.history.push(previous);
        zone.serial = serial;
        zone.hosts = hosts.iter().map(|h| h.to_string()).collect();
    }

    /// SOA REFRESH, RETRY and EXPIRE, seconds.
    pub fn set_timers(&self, refresh: i32, retry: i32, expire: i32) {
        self.shared.zone.lock().timers = (refresh, retry, expire);
    }

    /// Signs every answer with `key` (TSIG), or none when `None`.
    pub fn set_tsig(&self, key: Option<Key>) {
        *self.shared.tsig.lock() = key;
    }

    /// How the next transfers fail.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.zone.lock().fault = fault;
    }

    /// While down, nothing is answered and connections are closed at once.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// SOA queries received so far.
    pub fn soa_queries(&self) -> usize {
        self.shared.soa_queries.load(Ordering::SeqCst)
    }

    /// AXFR requests received.
    pub fn transfers(&self) -> usize {
        self.shared.transfers.load(Ordering::SeqCst)
    }

    /// Transfers that reached their `Fault::StallAfter` point: every record
    /// before it is written to the socket.
    pub fn stalls(&self) -> usize {
        self.shared.stalls.load(Ordering::SeqCst)
    }

    /// IXFR requests received.
    pub fn ixfrs(&self) -> usize {
        self.shared.ixfrs.load(Ordering::SeqCst)
    }

    /// How IXFR requests are answered.
    pub fn set_ixfr_mode(&self, mode: IxfrMode) {
        self.shared.zone.lock().ixfr = mode;
    }
}

impl Drop for FakePrimary {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn soa(shared: &Shared, zone: &Zone, serial: u32) -> Record {
    let (refresh, retry, expire) = zone.timers;
    let ns = Name::from_ascii("ns1")
        .ok()
        .and_then(|n| n.append_domain(&shared.origin).ok())
        .unwrap_or_default();
    let mail = Name::from_ascii("hostmaster")
        .ok()
        .and_then(|n| n.append_domain(&shared.origin).ok())
        .unwrap_or_default();
    Record::from_rdata(
        shared.origin.clone(),
        60,
        RData::SOA(SOA::new(ns, mail, serial, refresh, retry, expire, 60)),
    )
}

/// The zone's records, SOA first, without the closing SOA.
fn records(shared: &Shared, zone: &Zone) -> Vec<Record> {
    let ns = Name::from_ascii("ns1")
        .ok()
        .and_then(|n| n.append_domain(&shared.origin).ok())
        .unwrap_or_default();
    let mut records = vec![
        soa(shared, zone, zone.serial),
        Record::from_rdata(shared.origin.clone(), 60, RData::NS(NS(ns.clone()))),
        Record::from_rdata(ns, 60, RData::A(A::new(192, 0, 2, 1))),
    ];
    records.extend(
        zone.hosts
            .iter()
            .filter_map(|host| host_record(shared, host)),
    );
    records
}

/// A host's A record; the address depends on the name only, so versions differ only
/// by the names they hold.
fn host_record(shared: &Shared, host: &str) -> Option<Record> {
    let name = Name::from_ascii(host)
        .and_then(|h| h.append_domain(&shared.origin))
        .ok()?;
    let last = 10 + (host.bytes().map(u32::from).sum::<u32>() % 200) as u8;
    Some(Record::from_rdata(
        name,
        60,
        RData::A(A::new(192, 0, 2, last)),
    ))
}

/// The IXFR answer records for a client at `theirs`, or `None` to send the whole zone.
fn ixfr_records(shared: &Shared, zone: &Zone, theirs: u32) -> Option<Vec<Record>> {
    let old = zone
        .history
        .iter()
        .rev()
        .find(|(serial, _)| *serial == theirs)?;
    let mut deleted: Vec<Record> = old
        .1
        .iter()
        .filter(|h| !zone.hosts.contains(h))
        .filter_map(|h| host_record(shared, h))
        .collect();
    if zone.ixfr == IxfrMode::Inconsistent {
        deleted.extend(host_record(shared, "ghost"));
    }
    let added = zone
        .hosts
        .iter()
        .filter(|h| !old.1.contains(h))
        .filter_map(|h| host_record(shared, h));
    let newest = soa(shared, zone, zone.serial);
    let mut records = vec![newest.clone(), soa(shared, zone, theirs)];
    records.extend(deleted);
    records.push(newest.clone());
    records.extend(added);
    records.push(newest);
    Some(records)
}

fn response_to(query: &Message, answers: Vec<Record>) -> Message {
    let mut response = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.authoritative = true;
    response.queries = query.queries.clone();
    response.answers = answers;
    response
}

fn serve_udp(socket: &UdpSocket, shared: &Shared) {
    let mut buffer = [0u8; 4096];
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok((len, from)) = socket.recv_from(&mut buffer) else {
            continue;
        };
        if shared.down.load(Ordering::SeqCst) {
            continue;
        }
        let Ok(query) = Message::from_vec(&buffer[..len]) else {
            continue;
        };
        if query.queries.first().map(|q| q.query_type()) == Some(RecordType::SOA) {
            shared.soa_queries.fetch_add(1, Ordering::SeqCst);
            let answer = {
                let zone = shared.zone.lock();
                soa(shared, &zone, zone.serial)
            };
            let mut response = response_to(&query, vec![answer]);
            StreamSigner::new(shared, &query).sign(&mut response);
            if let Ok(wire) = response.to_vec() {
                let _ = socket.send_to(&wire, from);
            }
        }
    }
}

fn serve_tcp(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut connections = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                if shared.down.load(Ordering::SeqCst) {
                    continue;
                }
                let shared = shared.clone();
                connections.push(thread::spawn(move || {
                    let _ = serve_connection(stream, &shared);
                }));
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

/// Signs the messages of one answer stream, chained to the query's MAC.
struct StreamSigner {
    key: Option<Key>,
    previous: Vec<u8>,
    first: bool,
}

impl StreamSigner {
    fn new(shared: &Shared, query: &Message) -> Self {
        let mut key = shared.tsig.lock().clone();
        if shared.zone.lock().fault == Fault::BadTsig {
            key = key
                .and_then(|k| Key::new(k.name(), "hmac-sha256", b"not the secret".to_vec()).ok());
        }
        Self {
            key,
            previous: query
                .signature()
                .map(|s| s.data.mac.clone())
                .unwrap_or_default(),
            first: true,
        }
    }

    fn sign(&mut self, message: &mut Message) {
        if let Some(key) = &self.key
            && let Ok(mac) = key.sign_response(message, &self.previous, &[], self.first)
        {
            self.previous = mac;
            self.first = false;
        }
    }
}

fn write_message(
    stream: &mut TcpStream,
    signer: &mut StreamSigner,
    mut message: Message,
) -> std::io::Result<()> {
    signer.sign(&mut message);
    let wire = message.to_vec().map_err(std::io::Error::other)?;
    stream.write_all(&(wire.len() as u16).to_be_bytes())?;
    stream.write_all(&wire)
}

fn serve_connection(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut wire = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut wire)?;
    let query = Message::from_vec(&wire).map_err(std::io::Error::other)?;
    let signer = &mut StreamSigner::new(shared, &query);
    match query.queries.first().map(|q| q.query_type()) {
        Some(RecordType::SOA) => {
            shared.soa_queries.fetch_add(1, Ordering::SeqCst);
            let answer = {
                let zone = shared.zone.lock();
                soa(shared, &zone, zone.serial)
            };
            write_message(&mut stream, signer, response_to(&query, vec![answer]))
        }
        Some(RecordType::IXFR) => {
            shared.ixfrs.fetch_add(1, Ordering::SeqCst);
            let theirs = query.authorities.first().and_then(|r| match &r.data {
                RData::SOA(soa) => Some(soa.serial),
                _ => None,
            });
            let (answer, mode) = {
                let zone = shared.zone.lock();
                let answer = if theirs == Some(zone.serial) {
                    Some(vec![soa(shared, &zone, zone.serial)])
                } else if matches!(zone.ixfr, IxfrMode::Differences | IxfrMode::Inconsistent) {
                    theirs.and_then(|t| ixfr_records(shared, &zone, t))
                } else {
                    None
                };
                (answer, zone.ixfr)
            };
            if mode == IxfrMode::Refuse {
                let mut refused = response_to(&query, Vec::new());
                refused.metadata.response_code = hickory_proto::op::ResponseCode::NotImp;
                return write_message(&mut stream, signer, refused);
            }
            match answer {
                Some(records) => write_message(&mut stream, signer, response_to(&query, records)),
                None => send_zone(&mut stream, signer, &query, shared),
            }
        }
        Some(RecordType::AXFR) => {
            shared.transfers.fetch_add(1, Ordering::SeqCst);
            send_zone(&mut stream, signer, &query, shared)
        }
        _ => Ok(()),
    }
}

/// The whole zone as an AXFR stream (also the AXFR-style answer to IXFR), with the
/// configured fault.
fn send_zone(
    stream: &mut TcpStream,
    signer: &mut StreamSigner,
    query: &Message,
    shared: &Shared,
) -> std::io::Result<()> {
    let (records, closing, fault) = {
        let zone = shared.zone.lock();
        let closing_serial = if zone.fault == Fault::ClosingSoaDiffers {
            zone.serial + 1
        } else {
            zone.serial
        };
        (
            records(shared, &zone),
            soa(shared, &zone, closing_serial),
            zone.fault,
        )
    };
    let mut sent = 0;
    for chunk in records.chunks(RECORDS_PER_MESSAGE) {
        for _ in chunk {
            if matches!(fault, Fault::CloseAfter(k) if sent == k) {
                return Ok(()); // dropping the stream closes it mid-transfer
            }
            if matches!(fault, Fault::StallAfter(k) if sent == k) {
                shared.stalls.fetch_add(1, Ordering::SeqCst);
                while !shared.stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(50));
                }
                return Ok(());
            }
            sent += 1;
        }
        write_message(stream, signer, response_to(query, chunk.to_vec()))?;
        if fault == Fault::Garbage {
            stream.write_all(&[0, 40])?;
            stream.write_all(b"this is not a DNS message, not at all!!!")?;
            return Ok(());
        }
    }
    if fault == Fault::NoClosingSoa {
        return Ok(());
    }
    write_message(stream, signer, response_to(query, vec![closing]))
}
