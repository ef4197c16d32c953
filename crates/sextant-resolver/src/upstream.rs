//! One question to one upstream server, and the checks on what comes back. Each
//! query leaves from a fresh socket on a kernel-chosen random port with a random ID
//! (a fixed source port is easy to spoof, and can clash with a listen address);
//! the socket is
//! connected, so only datagrams from the address and port we asked reach us, and an
//! answer counts only if its ID and question match ours exactly. Truncated answers
//! are asked again over TCP; servers that reject EDNS are asked without it.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::serialize::binary::BinEncodable;
use opentelemetry::KeyValue;
use sextant_dnstap::{Event, Exchange, Protocol};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::mpsc;

use crate::cookies::{ClientCookies, Verdict};
use crate::servers::Servers;

/// EDNS payload we advertise upstream (RFC 9715: no fragmentation).
pub(crate) const EDNS_PAYLOAD: u16 = 1232;

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the answer does not parse")]
    Malformed,
}

/// Where upstream queries leave from.
#[derive(Debug)]
pub struct Upstream {
    v4: Source,
    v6: Source,
    pub servers: Servers,
    /// DNS Cookies sent with every query over EDNS; `None` when turned off.
    cookies: Option<ClientCookies>,
    /// Ask for signatures (DO=1): the resolver validates.
    pub dnssec_ok: bool,
    /// The dnstap log of upstream exchanges, when configured.
    pub tap: Option<sextant_dnstap::Tap>,
}

#[derive(Debug)]
enum Source {
    /// A fresh socket per query on this address, random port.
    Ephemeral(IpAddr),
    /// One socket on a configured port, answers dispatched by server and ID.
    Fixed(Arc<FixedSocket>),
}

/// Queries waiting on a fixed-port socket, by server and ID.
type Waiting = Mutex<HashMap<(SocketAddr, u16), mpsc::Sender<Vec<u8>>>>;

#[derive(Debug)]
struct FixedSocket {
    socket: UdpSocket,
    waiting: Waiting,
}

/// Why a configured query source cannot be used, in one sentence.
pub(crate) fn source_error(key: &str, addr: SocketAddr, error: &io::Error) -> String {
    let fix = match error.kind() {
        io::ErrorKind::AddrInUse => format!(
            "port {} is already in use on {}; set {key} to port 0 (a random port per query, the safe default) or a free port",
            addr.port(),
            addr.ip()
        ),
        io::ErrorKind::AddrNotAvailable => format!(
            "{} is not an address of this host; set {key} to one of its addresses or to 0.0.0.0:0",
            addr.ip()
        ),
        io::ErrorKind::PermissionDenied => format!(
            "binding port {} needs privileges this process lacks; use port 0 (random, the default) or grant CAP_NET_BIND_SERVICE",
            addr.port()
        ),
        _ => format!("fix {key} ({error})"),
    };
    format!("cannot send queries from {key} = {addr}: {fix}")
}

impl Upstream {
    /// Checks the sources by binding them once; a fixed port stays bound for good.
    pub async fn new(
        v4: SocketAddr,
        v6: SocketAddr,
        send_cookies: bool,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<Self, String> {
        Self::with_server_entries(
            v4,
            v6,
            send_cookies,
            crate::servers::DEFAULT_CAPACITY,
            shutdown,
        )
        .await
    }

    /// As `new`, remembering at most `server_entries` servers' measurements.
    pub async fn with_server_entries(
        v4: SocketAddr,
        v6: SocketAddr,
        send_cookies: bool,
        server_entries: usize,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<Self, String> {
        let v4 = Source::open("resolver.query_source", v4, shutdown.clone()).await?;
        let v6 = match Source::open("resolver.query_source_v6", v6, shutdown).await {
            Ok(source) => source,
            // A host without IPv6 still resolves over IPv4; only a configured fixed
            // IPv6 source must work.
            Err(_) if v6.port() == 0 => Source::Ephemeral(v6.ip()),
            Err(e) => return Err(e),
        };
        Ok(Self {
            v4,
            v6,
            servers: Servers::with_capacity(server_entries),
            cookies: send_cookies.then(ClientCookies::default),
            dnssec_ok: false,
            tap: None,
        })
    }

    /// Asks `server`, one of `zone`'s (or a forwarder for it), for `name`/`rtype`
    /// and returns its checked answer.
    pub async fn exchange(
        &self,
        server: SocketAddr,
        zone: &Name,
        name: &Name,
        rtype: RecordType,
        recursion_desired: bool,
        timeout: Duration,
    ) -> Result<Message, ExchangeError> {
        let ip = server.ip();
        let use_edns = !self.servers.no_edns(ip);
        let started = Instant::now();
        // A child span of a traced query's resolution; nothing for the others.
        let current = opentelemetry::Context::current();
        let traced = sextant_trace::is_traced(&current).then(|| {
            sextant_trace::span(
                "upstream",
                opentelemetry::trace::SpanKind::Client,
                &current,
                vec![
                    KeyValue::new("server.address", server.ip().to_string()),
                    KeyValue::new("server.port", i64::from(server.port())),
                    KeyValue::new("dns.zone", zone.to_string()),
                    KeyValue::new("dns.question.name", name.to_string()),
                    KeyValue::new("dns.question.type", rtype.to_string()),
                ],
            )
        });
        let ask = Ask {
            server,
            zone,
            name,
            rtype,
            recursion_desired,
            timeout,
        };
        let result = self.udp_then_tcp(&ask, use_edns).await;
        let result = match result {
            // RFC 7873 §5.3: BADCOOKIE brought a fresh server cookie (learned by
            // `udp_then_tcp`); ask once more with it.
            Ok(answer) if answer.metadata.response_code == ResponseCode::BADCOOKIE => {
                metrics::counter!("sextant_resolver_badcookie_retries_total").increment(1);
                self.udp_then_tcp(&ask, use_edns).await
            }
            Ok(answer) if use_edns && rejects_edns(&answer) => {
                // RFC 6891 §7: a server that does not know EDNS answers FORMERR (or
                // NOTIMP) without an OPT; ask again the old way and remember it.
                self.servers.set_no_edns(ip);
                metrics::counter!("sextant_resolver_edns_fallbacks_total").increment(1);
                self.udp_then_tcp(&ask, false).await
            }
            other => other,
        };
        match &result {
            Ok(_) => self.servers.answered(ip, started.elapsed()),
            Err(ExchangeError::Timeout(waited)) => {
                metrics::counter!("sextant_resolver_upstream_timeouts_total").increment(1);
                self.servers.timed_out(ip, *waited);
            }
            Err(_) => self.servers.timed_out(ip, started.elapsed()),
        }
        metrics::counter!("sextant_resolver_upstream_queries_total").increment(1);
        if let Some(cx) = traced {
            use opentelemetry::trace::TraceContextExt;
            let outcome = match &result {
                Ok(answer) => {
                    let rcode = sextant_wire::Rcode::new(u16::from(answer.metadata.response_code));
                    KeyValue::new("dns.rcode", rcode.name())
                }
                Err(error) => KeyValue::new("error.type", error.to_string()),
            };
            cx.span().set_attribute(outcome);
        }
        result
    }

    async fn udp_then_tcp(&self, ask: &Ask<'_>, edns: bool) -> Result<Message, ExchangeError> {
        let Ask {
            server,
            name,
            rtype,
            recursion_desired,
            timeout,
            ..
        } = *ask;
        let cookies = self.cookies.as_ref().filter(|_| edns);
        let cookie = cookies.map(|c| c.option(server.ip()));
        let query = build_query(name, rtype, recursion_desired, edns, cookie, self.dnssec_ok);
        let wire = query.to_vec().map_err(|_| ExchangeError::Malformed)?;
        let tapped = self.tap.as_ref().filter(|tap| tap.sampled());
        let logged = Logged { ask, query: &wire };
        let expect = Expect {
            query: &query,
            server: server.ip(),
            cookies,
            keep_wire: tapped.is_some(),
        };
        let source = match server {
            SocketAddr::V4(_) => &self.v4,
            SocketAddr::V6(_) => &self.v6,
        };
        let sent = SystemTime::now();
        let answer = match source {
            Source::Ephemeral(ip) => udp_ephemeral(*ip, server, &wire, &expect, timeout).await,
            Source::Fixed(fixed) => fixed.exchange(server, &wire, &expect, timeout).await,
        };
        if let Some(tap) = tapped {
            logged.log(tap, Protocol::Udp, sent, answer.as_ref().ok());
        }
        let answer = answer?;
        let answer = if answer.message.metadata.truncation {
            metrics::counter!("sextant_resolver_tcp_retries_total").increment(1);
            let source_ip = match source {
                Source::Ephemeral(ip) => *ip,
                Source::Fixed(fixed) => fixed.socket.local_addr()?.ip(),
            };
            let sent = SystemTime::now();
            let answer = tcp_exchange(source_ip, server, &wire, &expect, timeout).await;
            if let Some(tap) = tapped {
                logged.log(tap, Protocol::Tcp, sent, answer.as_ref().ok());
            }
            answer?.message
        } else {
            answer.message
        };
        if let Some(cookies) = cookies
            && cookies.learn(server.ip(), &answer)
        {
            metrics::counter!("sextant_resolver_server_cookies_total").increment(1);
        }
        Ok(answer)
    }
}

/// One question to one server, as `exchange` was asked it.
#[derive(Clone, Copy)]
struct Ask<'a> {
    server: SocketAddr,
    /// The zone the server is asked as a server of (or a forwarder for).
    zone: &'a Name,
    name: &'a Name,
    rtype: RecordType,
    recursion_desired: bool,
    timeout: Duration,
}

/// An upstream exchange as the dnstap log names it.
struct Logged<'a> {
    ask: &'a Ask<'a>,
    query: &'a [u8],
}

impl Logged<'_> {
    /// Logs the query sent at `sent` over `protocol`, and the answer if one came.
    fn log(
        &self,
        tap: &sextant_dnstap::Tap,
        protocol: Protocol,
        sent: SystemTime,
        answer: Option<&Received>,
    ) {
        // A query with RD set goes to a forwarder, which recurses for us.
        let exchange = if self.ask.recursion_desired {
            Exchange::Forwarder
        } else {
            Exchange::Resolver
        };
        let unspecified = match self.ask.server {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
            SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
        };
        let zone = self.ask.zone.to_bytes().ok();
        tap.log(Event {
            exchange,
            protocol,
            initiator: answer.and_then(|a| a.local).unwrap_or(unspecified),
            responder: Some(self.ask.server),
            query_time: sent,
            query: self.query,
            zone: zone.as_deref(),
            response: answer.and_then(|a| Some((a.at, a.wire.as_deref()?))),
        });
    }
}

/// An answer accepted, with what the log needs of it.
struct Received {
    message: Message,
    /// The answer as received, kept only when it is logged.
    wire: Option<Vec<u8>>,
    /// Our end of the exchange (when logged).
    local: Option<SocketAddr>,
    at: SystemTime,
}

impl Source {
    async fn open(
        key: &str,
        addr: SocketAddr,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<Self, String> {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|e| source_error(key, addr, &e))?;
        if addr.port() == 0 {
            return Ok(Source::Ephemeral(addr.ip()));
        }
        let fixed = Arc::new(FixedSocket {
            socket,
            waiting: Mutex::default(),
        });
        tokio::spawn(fixed.clone().dispatch(shutdown));
        Ok(Source::Fixed(fixed))
    }
}

impl FixedSocket {
    /// Hands each datagram to the query waiting for its server and ID; drops the rest.
    async fn dispatch(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut buffer = vec![0u8; 65_535];
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                received = self.socket.recv_from(&mut buffer) => received,
            };
            let Ok((len, from)) = received else { continue };
            let Some(id) = buffer.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
                continue;
            };
            let waiter = self.waiting.lock().get(&(from, id)).cloned();
            match waiter {
                Some(waiter) => {
                    let _ = waiter.try_send(buffer[..len].to_vec());
                }
                None => metrics::counter!("sextant_resolver_unexpected_answers_total").increment(1),
            }
        }
    }

    async fn exchange(
        &self,
        server: SocketAddr,
        wire: &[u8],
        expect: &Expect<'_>,
        timeout: Duration,
    ) -> Result<Received, ExchangeError> {
        let (sender, mut answers) = mpsc::channel(4);
        let key = (server, expect.query.metadata.id);
        if self.waiting.lock().insert(key, sender).is_some() {
            // Another query to this server holds the same ID: a fresh ID next time.
            return Err(ExchangeError::Io(io::Error::other("query ID in use")));
        }
        let _unregister = Unregister(&self.waiting, key);
        self.socket.send_to(wire, server).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let bytes = tokio::time::timeout_at(deadline, answers.recv())
                .await
                .map_err(|_| ExchangeError::Timeout(timeout))?
                .ok_or(ExchangeError::Timeout(timeout))?;
            if let Some(message) = accept(&bytes, expect) {
                let local = expect
                    .keep_wire
                    .then(|| self.socket.local_addr().ok())
                    .flatten();
                return Ok(expect.received(message, &bytes, local));
            }
        }
    }
}

struct Unregister<'a>(&'a Waiting, (SocketAddr, u16));

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

fn build_query(
    name: &Name,
    rtype: RecordType,
    recursion_desired: bool,
    edns: bool,
    cookie: Option<Vec<u8>>,
    dnssec_ok: bool,
) -> Message {
    let mut message = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = recursion_desired;
    // A forwarder must hand over the data as it is: we validate it ourselves.
    message.metadata.checking_disabled = recursion_desired && dnssec_ok;
    message.add_query(Query::query(name.clone(), rtype));
    if edns {
        let mut opt = Edns::new();
        opt.set_max_payload(EDNS_PAYLOAD);
        opt.set_dnssec_ok(dnssec_ok);
        if let Some(cookie) = cookie {
            opt.options_mut()
                .insert(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(
                    crate::cookies::OPTION_COOKIE,
                    cookie,
                ));
        }
        message.set_edns(opt);
    }
    message
}

/// What an answer must match: the query, and our cookie when we sent one.
struct Expect<'a> {
    query: &'a Message,
    server: IpAddr,
    cookies: Option<&'a ClientCookies>,
    /// Keep the answer's bytes (for the log).
    keep_wire: bool,
}

impl Expect<'_> {
    fn received(&self, message: Message, bytes: &[u8], local: Option<SocketAddr>) -> Received {
        Received {
            message,
            wire: self.keep_wire.then(|| bytes.to_vec()),
            local,
            at: SystemTime::now(),
        }
    }
}

fn rejects_edns(answer: &Message) -> bool {
    matches!(
        answer.metadata.response_code,
        ResponseCode::FormErr | ResponseCode::NotImp
    ) && answer.edns.is_none()
}

/// The answer, if `bytes` answers the query: a response with our ID, exactly our
/// question (name bytes, type and class) and, when we sent a cookie, ours back.
/// Anything else is ignored, not fatal: a spoofed or stale datagram must not cost us
/// the real answer.
fn accept(bytes: &[u8], expect: &Expect<'_>) -> Option<Message> {
    let query = expect.query;
    let answer = Message::from_vec(bytes).ok()?;
    let ok = answer.metadata.message_type == MessageType::Response
        && answer.metadata.id == query.metadata.id
        && answer.queries.len() == 1
        && query.queries.first().is_some_and(|asked| {
            let got = &answer.queries[0];
            got.query_type() == asked.query_type()
                && got.query_class() == asked.query_class()
                && got.name().eq_case(asked.name())
        });
    if !ok {
        metrics::counter!("sextant_resolver_mismatched_answers_total").increment(1);
        return None;
    }
    if let Some(cookies) = expect.cookies
        && cookies.check(expect.server, &answer) == Verdict::Spoofed
    {
        metrics::counter!("sextant_resolver_cookie_mismatches_total").increment(1);
        return None;
    }
    Some(answer)
}

async fn udp_ephemeral(
    source: IpAddr,
    server: SocketAddr,
    wire: &[u8],
    expect: &Expect<'_>,
    timeout: Duration,
) -> Result<Received, ExchangeError> {
    let socket = UdpSocket::bind(SocketAddr::new(source, 0)).await?;
    socket.connect(server).await?;
    socket.send(wire).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buffer = vec![0u8; usize::from(EDNS_PAYLOAD).max(4096)];
    loop {
        let len = match tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await {
            Err(_) => return Err(ExchangeError::Timeout(timeout)),
            // ICMP port unreachable shows up here: the server is not there.
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(ExchangeError::Io(e));
            }
            Ok(Err(e)) => return Err(ExchangeError::Io(e)),
            Ok(Ok(len)) => len,
        };
        if let Some(message) = accept(&buffer[..len], expect) {
            let local = expect.keep_wire.then(|| socket.local_addr().ok()).flatten();
            return Ok(expect.received(message, &buffer[..len], local));
        }
    }
}

async fn tcp_exchange(
    source: IpAddr,
    server: SocketAddr,
    wire: &[u8],
    expect: &Expect<'_>,
    timeout: Duration,
) -> Result<Received, ExchangeError> {
    let work = async {
        let socket = match server {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(source, 0))?;
        let mut stream = socket.connect(server).await?;
        let len = u16::try_from(wire.len()).map_err(|_| io::Error::other("query too long"))?;
        let mut framed = Vec::with_capacity(wire.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(wire);
        stream.write_all(&framed).await?;
        let len = stream.read_u16().await?;
        let mut bytes = vec![0u8; usize::from(len)];
        stream.read_exact(&mut bytes).await?;
        let message = accept(&bytes, expect).ok_or(ExchangeError::Malformed)?;
        let local = expect.keep_wire.then(|| stream.local_addr().ok()).flatten();
        Ok(expect.received(message, &bytes, local))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ExchangeError::Timeout(timeout))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::str::FromStr;

    use super::*;

    fn question() -> Message {
        build_query(
            &Name::from_ascii("www.Example.test.").unwrap(),
            RecordType::A,
            false,
            true,
            None,
            false,
        )
    }

    fn expect(query: &Message) -> Expect<'_> {
        Expect {
            query,
            server: "192.0.2.1".parse().unwrap(),
            cookies: None,
            keep_wire: false,
        }
    }

    fn reply_to(query: &Message) -> Message {
        let mut answer = query.clone();
        answer.metadata.message_type = MessageType::Response;
        answer
    }

    #[test]
    fn only_an_exact_echo_of_our_question_is_accepted() {
        let query = question();
        let good = reply_to(&query);
        assert!(accept(&good.to_vec().unwrap(), &expect(&query)).is_some());

        let mut wrong_id = good.clone();
        wrong_id.metadata.id = query.metadata.id.wrapping_add(1);
        assert!(accept(&wrong_id.to_vec().unwrap(), &expect(&query)).is_none());

        let mut wrong_case = good.clone();
        wrong_case.queries[0] =
            Query::query(Name::from_str("www.example.test.").unwrap(), RecordType::A);
        assert!(accept(&wrong_case.to_vec().unwrap(), &expect(&query)).is_none());

        let mut wrong_type = good.clone();
        wrong_type.queries[0] = Query::query(
            Name::from_ascii("www.Example.test.").unwrap(),
            RecordType::AAAA,
        );
        assert!(accept(&wrong_type.to_vec().unwrap(), &expect(&query)).is_none());

        assert!(
            accept(&query.to_vec().unwrap(), &expect(&query)).is_none(),
            "a query is no answer"
        );
        assert!(accept(b"\x01\x02garbage", &expect(&query)).is_none());
    }

    #[tokio::test]
    async fn a_fixed_source_port_in_use_is_one_clear_sentence() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let error = Upstream::new(
            addr,
            "[::]:0".parse().unwrap(),
            true,
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(error.contains("resolver.query_source"), "{error}");
        assert!(error.contains("already in use"), "{error}");

        let error = Upstream::new(
            "192.0.2.77:5300".parse().unwrap(),
            "[::]:0".parse().unwrap(),
            true,
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(error.contains("not an address of this host"), "{error}");
    }

    #[tokio::test]
    async fn answers_from_a_fixed_port_are_matched_by_server_and_id() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let fixed_addr = probe.local_addr().unwrap();
        drop(probe);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let upstream = Upstream::new(
            fixed_addr,
            "[::]:0".parse().unwrap(),
            true,
            shutdown.clone(),
        )
        .await
        .unwrap();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            let (len, from) = server.recv_from(&mut buffer).await.unwrap();
            let query = Message::from_vec(&buffer[..len]).unwrap();
            // A stray answer with another ID first, then the real one.
            let mut stray = reply_to(&query);
            stray.metadata.id = query.metadata.id.wrapping_add(7);
            server
                .send_to(&stray.to_vec().unwrap(), from)
                .await
                .unwrap();
            server
                .send_to(&reply_to(&query).to_vec().unwrap(), from)
                .await
                .unwrap();
        });
        let name = Name::from_ascii("www.Example.test.").unwrap();
        let answer = upstream
            .exchange(
                server_addr,
                &Name::root(),
                &name,
                RecordType::A,
                false,
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(answer.queries[0].name(), &name);
        shutdown.cancel();
    }
}
