//! DNS over HTTPS (RFC 8484) on an HTTP/2 connection inside TLS: `GET
//! /dns-query?dns=<base64url>` and `POST /dns-query` with an
//! `application/dns-message` body, answered as `application/dns-message` with a
//! freshness lifetime of the answer's smallest TTL (§5.1). Each query goes through
//! the same decisions, ACLs, RRL, packet cache and backends as over TCP; zone
//! transfers are not carried (one message per request). HTTP problems get an HTTP
//! status; everything DNS gets a DNS answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sextant_rpc::Transport;
use sextant_wire::consts::{TYPE_AXFR, TYPE_IXFR};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::frontend::Frontend;
use crate::tcp::TcpLimits;
use crate::tls::Encrypted;

const PATH: &str = "/dns-query";
const DNS_MESSAGE: &str = "application/dns-message";
/// A DNS message is at most this long.
const MAX_MESSAGE: usize = 65_535;

/// How many requests are in flight, and when the last one ended (milliseconds
/// since the connection began): atomics, as every request touches them.
struct Activity {
    began: Instant,
    in_flight: AtomicUsize,
    idle_since_ms: AtomicU64,
}

/// A request in flight; when it ends, or is dropped because the client reset its
/// stream, the connection counts it out.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = u64::try_from(self.0.began.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.idle_since_ms.store(now, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.began.elapsed().saturating_sub(since))
    }
}

/// Serves one HTTP/2 connection until the client closes it, it idles past the idle
/// timeout, or the listener stops (then it finishes the requests in flight).
pub(crate) async fn connection<S>(
    stream: S,
    (client, local): (SocketAddr, SocketAddr),
    frontend: Arc<Frontend>,
    limits: TcpLimits,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        began: Instant::now(),
        in_flight: AtomicUsize::new(0),
        idle_since_ms: AtomicU64::new(0),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request| {
            let frontend = frontend.clone();
            let activity = activity.clone();
            async move {
                let _in_flight = InFlight::new(activity);
                Ok::<_, Infallible>(answer(request, (client, local), &frontend).await)
            }
        })
    };
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(u32::try_from(limits.max_in_flight).unwrap_or(u32::MAX))
        .max_header_list_size(16 * 1024);
    let serving = builder.serve_connection(TokioIo::new(stream), service);
    let mut serving = std::pin::pin!(serving);
    let mut closing = false;
    loop {
        let idle_check = activity.idle_for().map_or(limits.idle_timeout, |idle| {
            limits.idle_timeout.saturating_sub(idle)
        });
        tokio::select! {
            _ = serving.as_mut() => return,
            _ = shutdown.cancelled(), if !closing => {
                closing = true;
                serving.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(idle_check), if !closing => {
                if activity.idle_for().is_some_and(|idle| idle >= limits.idle_timeout) {
                    closing = true;
                    serving.as_mut().graceful_shutdown();
                }
            }
            // A client that does not let a graceful close end is cut off.
            _ = tokio::time::sleep(limits.read_timeout), if closing => return,
        }
    }
}

/// One request: its DNS message, then the answer.
async fn answer(
    request: Request<Incoming>,
    (client, local): (SocketAddr, SocketAddr),
    frontend: &Frontend,
) -> Response<Full<Bytes>> {
    let message = match read_message(request).await {
        Ok(message) => message,
        Err(response) => return response,
    };
    let tapped = frontend.tapped(sextant_dnstap::Protocol::Doh, local);
    crate::stats::encrypted_query(Encrypted::Doh);
    let parsed = sextant_wire::parse_query(&message);
    let view = parsed.as_ref().ok().copied();
    if view.is_some_and(|v| matches!(v.question.qtype, TYPE_AXFR | TYPE_IXFR)) {
        // A transfer is many messages: RFC 8484 carries one.
        let refused = sextant_wire::rcode_answer(
            &message,
            sextant_wire::Rcode::REFUSED,
            Some(sextant_wire::ExtendedError::other(
                "zone transfers are not carried over DoH",
            )),
            frontend.udp_payload_size,
        );
        let refused = refused.map(Bytes::from);
        if let Some(tapped) = tapped {
            frontend.log_answered(tapped, client, &message, refused.as_deref(), None);
        }
        return match refused {
            Some(refused) => dns_response(refused),
            None => status(StatusCode::BAD_REQUEST, "not a DNS query"),
        };
    }
    let padded = view.and_then(|v| v.edns).is_some_and(|edns| edns.padding);
    let decision = frontend.decide_parsed(&message, parsed, client, Transport::Tcp);
    let query = tapped.map(|_| message.clone());
    let answered = frontend
        .answer(message, decision, client, Transport::Tcp)
        .await;
    let answer = answered
        .wire
        .map(|answer| if padded { pad(answer) } else { answer });
    if let (Some(tapped), Some(query)) = (tapped, query) {
        frontend.log_answered(tapped, client, &query, answer.as_deref(), answered.from);
    }
    match answer {
        Some(answer) => dns_response(answer),
        None => status(StatusCode::BAD_REQUEST, "not a DNS query"),
    }
}

/// The DNS message of a request, or the HTTP response that refuses it.
async fn read_message<B>(request: Request<B>) -> Result<Bytes, Response<Full<Bytes>>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if request.uri().path() != PATH {
        return Err(status(
            StatusCode::NOT_FOUND,
            "DNS queries go to /dns-query",
        ));
    }
    let message = match *request.method() {
        Method::GET => {
            let encoded = request
                .uri()
                .query()
                .unwrap_or_default()
                .split('&')
                .find_map(|pair| pair.strip_prefix("dns="))
                .ok_or_else(|| status(StatusCode::BAD_REQUEST, "no dns= parameter"))?;
            // base64url without padding (§4.1); padding sent anyway is forgiven.
            let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded.trim_end_matches('='))
                .map_err(|_| status(StatusCode::BAD_REQUEST, "dns= is not base64url"))?;
            Bytes::from(decoded)
        }
        Method::POST => {
            let content_type = request
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            if !content_type.eq_ignore_ascii_case(DNS_MESSAGE) {
                return Err(status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "the body must be application/dns-message",
                ));
            }
            Limited::new(request.into_body(), MAX_MESSAGE)
                .collect()
                .await
                .map_err(|_| {
                    status(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "a DNS message is at most 65535 bytes",
                    )
                })?
                .to_bytes()
        }
        _ => {
            let mut response = status(StatusCode::METHOD_NOT_ALLOWED, "GET or POST");
            response
                .headers_mut()
                .insert(ALLOW, hyper::header::HeaderValue::from_static("GET, POST"));
            return Err(response);
        }
    };
    if message.len() < sextant_wire::HEADER_LEN || message.len() > MAX_MESSAGE {
        return Err(status(StatusCode::BAD_REQUEST, "not a DNS message"));
    }
    Ok(message)
}

/// 200 with the DNS answer, padded when the query was (RFC 8467), fresh for its
/// smallest TTL.
/// The answer padded to a multiple of the block RFC 8467 advises for responses.
fn pad(answer: Bytes) -> Bytes {
    let mut answer = answer.to_vec();
    sextant_wire::add_padding(&mut answer, sextant_wire::RESPONSE_PADDING_BLOCK);
    Bytes::from(answer)
}

fn dns_response(answer: Bytes) -> Response<Full<Bytes>> {
    let max_age = sextant_wire::min_ttl(&answer).unwrap_or(0);
    let mut response = Response::new(Full::new(answer));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(DNS_MESSAGE),
    );
    if let Ok(value) = hyper::header::HeaderValue::from_str(&format!("max-age={max_age}")) {
        headers.insert(CACHE_CONTROL, value);
    }
    response
}

fn status(code: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = code;
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A query for `a.` A, as a client would send it.
    const QUERY: [u8; 19] = [0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1];

    fn request(
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Request<Full<Bytes>> {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(content_type) = content_type {
            builder = builder.header(CONTENT_TYPE, content_type);
        }
        builder
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap()
    }

    async fn status_of(request: Request<Full<Bytes>>) -> StatusCode {
        match read_message(request).await {
            Ok(_) => StatusCode::OK,
            Err(response) => response.status(),
        }
    }

    #[tokio::test]
    async fn get_and_post_carry_the_message_and_anything_else_gets_its_http_status() {
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(QUERY);
        let get = request(Method::GET, &format!("/dns-query?dns={encoded}"), None, b"");
        assert_eq!(read_message(get).await.unwrap(), Bytes::from_static(&QUERY));
        // Padding sent anyway is forgiven, other parameters are ignored.
        let padded = format!("/dns-query?ct=x&dns={encoded}==");
        assert_eq!(
            status_of(request(Method::GET, &padded, None, b"")).await,
            StatusCode::OK
        );
        let post = request(Method::POST, "/dns-query", Some(DNS_MESSAGE), &QUERY);
        assert_eq!(
            read_message(post).await.unwrap(),
            Bytes::from_static(&QUERY)
        );
        for (request, expected) in [
            (
                request(Method::GET, "/other", None, b""),
                StatusCode::NOT_FOUND,
            ),
            (
                request(Method::GET, "/dns-query", None, b""),
                StatusCode::BAD_REQUEST,
            ),
            (
                request(Method::GET, "/dns-query?dns=***", None, b""),
                StatusCode::BAD_REQUEST,
            ),
            (
                request(Method::GET, "/dns-query?dns=AAAA", None, b""),
                StatusCode::BAD_REQUEST,
            ),
            (
                request(Method::POST, "/dns-query", Some("text/plain"), &QUERY),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                request(
                    Method::POST,
                    "/dns-query",
                    Some(DNS_MESSAGE),
                    &vec![0; 70_000],
                ),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                request(Method::PUT, "/dns-query", Some(DNS_MESSAGE), &QUERY),
                StatusCode::METHOD_NOT_ALLOWED,
            ),
        ] {
            assert_eq!(status_of(request).await, expected);
        }
    }

    #[test]
    fn answers_are_fresh_for_their_smallest_ttl_and_padded_when_asked() {
        // a. A 192.0.2.1 with TTL 300, and an OPT record.
        let mut answer = QUERY.to_vec();
        answer[2] = 0x81;
        answer[7] = 1;
        answer[11] = 1;
        answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1]);
        answer.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
        let response = dns_response(Bytes::from(answer.clone()));
        assert_eq!(response.headers()[CACHE_CONTROL], "max-age=300");
        assert_eq!(response.headers()[CONTENT_TYPE], DNS_MESSAGE);
        let padded = dns_response(pad(Bytes::from(answer)));
        let body = padded.into_body();
        let size = hyper::body::Body::size_hint(&body).exact().unwrap();
        assert_eq!(size % sextant_wire::RESPONSE_PADDING_BLOCK as u64, 0);
    }
}
