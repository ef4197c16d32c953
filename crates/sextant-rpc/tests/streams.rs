//! The gRPC contract in-process: multiplexed queries answered out of order, deadlines,
//! fail-fast while disconnected, reconnection, the zone watch and health.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sextant_rpc::{
    Answer, Endpoint, GrpcServer, HealthState, Query, QueryClient, QueryClientOptions,
    QueryHandler, Services, Transport, UnaryQueryClient, ZoneSetPublisher, ZoneWatcher,
    check_health,
};
use tokio_util::sync::CancellationToken;

/// Answers after a delay given by the first byte (in 10 ms units), echoing the bytes.
struct Echo;

impl QueryHandler for Echo {
    async fn handle(&self, query: Query) -> Answer {
        let delay = u64::from(query.wire.first().copied().unwrap_or(0)) * 10;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        Answer::Reply {
            wire: query.wire,
            cache_ttl: u32::from(query.max_response_size),
        }
    }

    fn transfer(&self, _query: Query) -> tokio::sync::mpsc::Receiver<Bytes> {
        tokio::sync::mpsc::channel(1).1
    }
}

/// The echoed bytes and the cache TTL of an answer.
fn parts(answer: Answer) -> (Bytes, u32) {
    match answer {
        Answer::Reply { wire, cache_ttl } => (wire, cache_ttl),
        Answer::Silent => (Bytes::new(), 0),
    }
}

fn query(first: u8) -> Query {
    Query {
        wire: Bytes::from(vec![first, 1, 2, 3]),
        client: "127.0.0.1:5353".parse().unwrap(),
        transport: Transport::Udp,
        max_response_size: 1232,
        traceparent: None,
    }
}

async fn serve(
    endpoint: &Endpoint,
    publisher: &ZoneSetPublisher,
    shutdown: &CancellationToken,
) -> Endpoint {
    let server = GrpcServer::bind(endpoint).await.unwrap();
    let bound = server.local_endpoint().clone();
    let services = Services::new()
        .with_query(Arc::new(Echo))
        .with_zones(publisher);
    tokio::spawn(server.serve(services, shutdown.clone()));
    bound
}

/// The echo backend on a Unix socket in `dir`, with an empty zone set.
async fn serve_on_unix_socket(dir: &std::path::Path, shutdown: &CancellationToken) -> Endpoint {
    serve(
        &Endpoint::Unix(dir.join("b.sock")),
        &ZoneSetPublisher::new(),
        shutdown,
    )
    .await
}

async fn connected(client: &QueryClient) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.is_connected() {
        assert!(Instant::now() < deadline, "client never connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn queries_are_multiplexed_and_answered_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let endpoint = serve_on_unix_socket(dir.path(), &shutdown).await;
    let options = QueryClientOptions {
        lanes: 1,
        timeout: Duration::from_secs(5),
    };
    let client = QueryClient::start(endpoint, &options, shutdown.clone());
    connected(&client).await;

    // A slow query does not hold up a fast one on the same stream.
    let slow = tokio::spawn({
        let client = client.clone();
        async move { (client.query(query(30)).await.unwrap(), Instant::now()) }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let fast = client.query(query(0)).await.unwrap();
    let fast_done = Instant::now();
    let (slow, slow_done) = slow.await.unwrap();
    let (fast, slow) = (parts(fast), parts(slow));
    assert_eq!(fast.0[0], 0);
    assert_eq!(slow.0[0], 30);
    assert_eq!(slow.1, 1232);
    assert!(fast_done < slow_done);
    shutdown.cancel();
}

#[tokio::test]
async fn a_slow_backend_hits_the_deadline_and_a_dead_one_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let server_down = CancellationToken::new();
    let endpoint = serve_on_unix_socket(dir.path(), &server_down).await;
    let client_shutdown = CancellationToken::new();
    let options = QueryClientOptions {
        lanes: 2,
        timeout: Duration::from_millis(100),
    };
    let client = QueryClient::start(endpoint.clone(), &options, client_shutdown.clone());
    connected(&client).await;
    let err = client.query(query(50)).await.unwrap_err().to_string();
    assert!(err.contains("did not answer within 100ms"), "{err}");

    server_down.cancel();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.is_connected() {
        assert!(
            Instant::now() < deadline,
            "client never noticed the server went away"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let err = client.query(query(0)).await.unwrap_err().to_string();
    assert!(err.contains("is not connected"), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "a dead backend must fail at once"
    );

    // The server comes back on the same socket: the client reconnects by itself.
    let back = CancellationToken::new();
    serve(&endpoint, &ZoneSetPublisher::new(), &back).await;
    connected(&client).await;
    assert_eq!(parts(client.query(query(0)).await.unwrap()).0[0], 0);
    back.cancel();
    client_shutdown.cancel();
}

#[tokio::test]
async fn zone_sets_and_health_reach_clients_over_tcp() {
    let shutdown = CancellationToken::new();
    let publisher = ZoneSetPublisher::new();
    publisher.publish(vec!["example.com.".into()]);
    let endpoint = serve(&"tcp:127.0.0.1:0".parse().unwrap(), &publisher, &shutdown).await;
    assert_eq!(
        check_health(&endpoint, "").await.unwrap(),
        HealthState::Serving
    );

    let mut sets = ZoneWatcher::start(vec![endpoint], shutdown.clone());
    let first = tokio::time::timeout(Duration::from_secs(10), sets.wait_for(Option::is_some))
        .await
        .unwrap()
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(first.zones, ["example.com."]);
    let generation = publisher.publish(vec!["example.com.".into(), "example.org.".into()]);
    let second = tokio::time::timeout(
        Duration::from_secs(10),
        sets.wait_for(|s| s.as_ref().is_some_and(|s| s.generation == generation)),
    )
    .await
    .unwrap()
    .unwrap()
    .clone()
    .unwrap();
    assert_eq!(second.zones.len(), 2);
    shutdown.cancel();
}

/// `submit` runs its completion exactly once: with the answer, at the deadline (by the
/// lane's sweep), or at once when no lane is connected. Many submitted together are
/// answered (they travel in batches).
#[tokio::test]
async fn submitted_queries_complete_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let server_down = CancellationToken::new();
    let endpoint = serve_on_unix_socket(dir.path(), &server_down).await;
    let shutdown = CancellationToken::new();
    let options = QueryClientOptions {
        lanes: 1,
        timeout: Duration::from_millis(200),
    };
    let client = QueryClient::start(endpoint, &options, shutdown.clone());
    connected(&client).await;

    let (sender, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
    let submit = |first: u8| {
        let sender = sender.clone();
        client.submit(
            query(first),
            Box::new(move |outcome| {
                let _ = sender.send((
                    first,
                    outcome.map(|a| parts(a).0[0]).map_err(|e| e.to_string()),
                ));
            }),
        );
    };
    for _ in 0..500 {
        submit(0);
    }
    submit(100); // one second: past the 200 ms deadline
    let mut answered = 0;
    let mut timed_out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while answered + timed_out.len() < 501 {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let (first, outcome) = tokio::time::timeout(remaining, outcomes.recv())
            .await
            .expect("every completion runs")
            .unwrap();
        match outcome {
            Ok(byte) => {
                assert_eq!(byte, first);
                answered += 1;
            }
            Err(error) => timed_out.push((first, error)),
        }
    }
    assert_eq!(answered, 500);
    assert_eq!(timed_out.len(), 1);
    assert_eq!(timed_out[0].0, 100);
    assert!(
        timed_out[0].1.contains("did not answer within 200ms"),
        "{timed_out:?}"
    );
    // Nothing more: the late answer to the timed-out query finds no one waiting.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(outcomes.try_recv().is_err(), "a completion ran twice");

    server_down.cancel();
    let wait = Instant::now() + Duration::from_secs(10);
    while client.is_connected() {
        assert!(
            Instant::now() < wait,
            "client never noticed the server went away"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    submit(0);
    let (_, outcome) = tokio::time::timeout(Duration::from_millis(50), outcomes.recv())
        .await
        .expect("a dead backend fails at once")
        .unwrap();
    assert!(outcome.unwrap_err().contains("is not connected"));
    shutdown.cancel();
}

#[tokio::test]
async fn a_unary_call_gets_the_answer_a_lane_gets() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let endpoint = serve_on_unix_socket(dir.path(), &shutdown).await;
    let unary = UnaryQueryClient::connect(endpoint.clone()).await.unwrap();
    let lanes = QueryClient::start(endpoint, &QueryClientOptions::default(), shutdown.clone());
    connected(&lanes).await;
    let by_call = unary.ask(query(0)).await.unwrap();
    let by_lane = lanes.query(query(0)).await.unwrap();
    assert_eq!(by_call, by_lane);
    let by_call = parts(by_call);
    assert_eq!(by_call.0.as_ref(), &[0, 1, 2, 3]);
    assert_eq!(by_call.1, 1232);
    // Concurrent calls share the one connection, each on a stream of its own.
    let calls: Vec<_> = (0..20u8)
        .map(|i| {
            let unary = unary.clone();
            tokio::spawn(async move { unary.ask(query(i % 3)).await.unwrap() })
        })
        .collect();
    for (i, call) in (0..20u8).zip(calls) {
        assert_eq!(parts(call.await.unwrap()).0[0], i % 3);
    }
    shutdown.cancel();
}

/// Echo that counts the queries it answers.
struct Counted(Arc<std::sync::atomic::AtomicUsize>);

impl QueryHandler for Counted {
    async fn handle(&self, query: Query) -> Answer {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Echo.handle(query).await
    }

    fn transfer(&self, query: Query) -> tokio::sync::mpsc::Receiver<Bytes> {
        Echo.transfer(query)
    }
}

/// A counting echo backend on `path`; stops at `shutdown`.
async fn serve_counted(
    path: std::path::PathBuf,
    shutdown: &CancellationToken,
) -> (Endpoint, Arc<std::sync::atomic::AtomicUsize>) {
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = GrpcServer::bind(&Endpoint::Unix(path)).await.unwrap();
    let bound = server.local_endpoint().clone();
    let services = Services::new().with_query(Arc::new(Counted(hits.clone())));
    tokio::spawn(server.serve(services, shutdown.clone()));
    (bound, hits)
}

#[tokio::test]
async fn a_pool_spreads_queries_and_a_backend_stopping_under_them_costs_no_answer() {
    use sextant_rpc::QueryPool;
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let (a_down, b_down) = (CancellationToken::new(), CancellationToken::new());
    let (a, a_hits) = serve_counted(dir.path().join("a.sock"), &a_down).await;
    let (b, b_hits) = serve_counted(dir.path().join("b.sock"), &b_down).await;
    let shutdown = CancellationToken::new();
    let options = QueryClientOptions {
        lanes: 2,
        timeout: Duration::from_secs(5),
    };
    let pool = QueryPool::start(&[a.clone(), b.clone()], &options, shutdown.clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pool.health().iter().all(|h| h.connected) {
        assert!(Instant::now() < deadline, "the pool never connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Spread: both backends answer some of 40 quick queries.
    for n in 0..40u8 {
        assert_eq!(parts(pool.query(query(0)).await.unwrap()).0[0], 0, "{n}");
    }
    assert!(a_hits.load(Ordering::Relaxed) >= 10, "{a_hits:?}");
    assert!(b_hits.load(Ordering::Relaxed) >= 10, "{b_hits:?}");

    // 200 queries in flight (each takes 50 ms at the backend), half of them with A;
    // A stops under them. Every one still gets its answer, from B.
    let a_before = a_hits.load(Ordering::Relaxed);
    let (results, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for n in 0..200usize {
        let results = results.clone();
        if n % 2 == 0 {
            pool.submit(
                query(5),
                Box::new(move |outcome| {
                    let _ = results.send(outcome.map(parts).map(|p| p.0[0]));
                }),
            );
        } else {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                let _ = results.send(pool.query(query(5)).await.map(parts).map(|p| p.0[0]));
            }));
        }
    }
    drop(results);
    // Stopped once A has most of its share in hand (each takes 50 ms to answer).
    let deadline = Instant::now() + Duration::from_secs(5);
    while a_hits.load(Ordering::Relaxed) < a_before + 50 {
        assert!(Instant::now() < deadline, "A never got its share");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    a_down.cancel();
    let mut answered = 0;
    while let Some(outcome) = answers.recv().await {
        assert_eq!(outcome.unwrap(), 5);
        answered += 1;
    }
    assert_eq!(answered, 200);
    // A is seen as gone; new queries go to B at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.health()[0].connected {
        assert!(Instant::now() < deadline, "A never seen as gone");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = b_hits.load(Ordering::Relaxed);
    assert_eq!(parts(pool.query(query(0)).await.unwrap()).0[0], 0);
    assert_eq!(b_hits.load(Ordering::Relaxed), before + 1);
    b_down.cancel();
    shutdown.cancel();
}
