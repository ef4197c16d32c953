//! The listener's side of the query path: a few long-lived bidirectional streams
//! ("lanes") to one backend, each multiplexing many queries by request id.
//!
//! A unary call per query costs an HTTP/2 stream setup per packet; a lane costs one
//! message each way. Lanes reconnect by themselves with backoff, and while a lane is
//! down a query fails at once rather than waiting for its deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::endpoint::Dial;
use crate::{Answer, Endpoint, Query, RpcError, Transport, pb};

/// How a [`QueryClient`] talks to its backend.
#[derive(Clone, Debug)]
pub struct QueryClientOptions {
    /// Streams opened to the backend; queries are spread over them round-robin.
    pub lanes: usize,
    /// Deadline for one query, from hand-off to answer.
    pub timeout: Duration,
}

impl Default for QueryClientOptions {
    fn default() -> Self {
        Self {
            lanes: 2,
            timeout: Duration::from_secs(2),
        }
    }
}

/// Requests queued per lane before senders wait; bounds memory when a backend is slow.
const LANE_QUEUE: usize = 4096;
/// Most queries sent in one gRPC message: the ones already queued when the lane's
/// writer runs, so batching adds no waiting.
pub(crate) const MAX_BATCH: usize = 64;
/// First and longest pause between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// A cheap-to-clone handle on the lanes to one backend.
#[derive(Clone, Debug)]
pub struct QueryClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    endpoint: Endpoint,
    timeout: Duration,
    lanes: Vec<Arc<Lane>>,
    next_lane: AtomicUsize,
    /// Woken whenever a lane connects.
    connects: Arc<tokio::sync::Notify>,
}

#[derive(Debug, Default)]
struct Lane {
    connected: AtomicBool,
    /// `None` while the lane is disconnected.
    outgoing: Mutex<Option<mpsc::Sender<pb::QueryRequest>>>,
    pending: Mutex<HashMap<u64, Waiter>>,
    next_id: AtomicU64,
}

/// What runs when a query submitted with [`QueryClient::submit`] is over: with the
/// answer, or with the reason there is none. Called exactly once.
pub type Completion = Box<dyn FnOnce(Result<Answer, RpcError>) + Send>;

/// Who waits for an answer: a task (`query`), or a completion run by the lane itself
/// (`submit`), whose deadline the lane's sweep enforces.
enum Waiter {
    Task(oneshot::Sender<Answer>),
    Callback {
        done: Completion,
        deadline: tokio::time::Instant,
    },
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Waiter::Task(_) => "Waiter::Task",
            Waiter::Callback { .. } => "Waiter::Callback",
        })
    }
}

impl Waiter {
    fn answer(self, answer: Answer) {
        match self {
            // The task may have timed out meanwhile; nothing to do then.
            Waiter::Task(sender) => {
                let _ = sender.send(answer);
            }
            Waiter::Callback { done, .. } => done(Ok(answer)),
        }
    }

    /// Ends the wait without an answer. A task learns it from its dropped sender.
    fn fail(self, error: impl FnOnce() -> RpcError) {
        if let Waiter::Callback { done, .. } = self {
            done(Err(error()));
        }
    }
}

/// How often a lane looks for submitted queries past their deadline.
const SWEEP_EVERY: Duration = Duration::from_millis(50);

impl QueryClient {
    /// Starts the lanes' connection tasks; they live until `shutdown` is cancelled.
    pub fn start(
        endpoint: Endpoint,
        options: &QueryClientOptions,
        shutdown: CancellationToken,
    ) -> Self {
        let lanes: Vec<Arc<Lane>> = (0..options.lanes.max(1))
            .map(|_| Arc::new(Lane::default()))
            .collect();
        let connects = Arc::new(tokio::sync::Notify::new());
        for lane in &lanes {
            tokio::spawn(run_lane(
                lane.clone(),
                endpoint.clone(),
                options.timeout,
                connects.clone(),
                shutdown.clone(),
            ));
        }
        Self {
            inner: Arc::new(Inner {
                endpoint,
                timeout: options.timeout,
                lanes,
                next_lane: AtomicUsize::new(0),
                connects,
            }),
        }
    }

    /// The backend's endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The deadline of one query.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// True when at least one lane has a live stream.
    pub fn is_connected(&self) -> bool {
        self.inner
            .lanes
            .iter()
            .any(|lane| lane.connected.load(Ordering::Relaxed))
    }

    /// Returns once at least one lane has a live stream.
    pub async fn wait_connected(&self) {
        loop {
            let notified = self.inner.connects.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a connection in between is not missed.
            notified.as_mut().enable();
            if self.is_connected() {
                return;
            }
            notified.await;
        }
    }

    /// Sends one query and waits for its answer, at most the configured timeout.
    pub async fn query(&self, query: Query) -> Result<Answer, RpcError> {
        let deadline = tokio::time::Instant::now() + self.inner.timeout;
        self.query_until(query, deadline).await
    }

    /// [`QueryClient::query`] with a deadline of the caller's (a retry's is what is
    /// left of the first attempt's).
    pub async fn query_until(
        &self,
        query: Query,
        deadline: tokio::time::Instant,
    ) -> Result<Answer, RpcError> {
        let inner = &self.inner;
        let unavailable = || RpcError::Unavailable {
            endpoint: inner.endpoint.clone(),
        };
        let lane = self.pick_lane().ok_or_else(unavailable)?;
        let sender = lane.outgoing.lock().clone().ok_or_else(unavailable)?;

        let request_id = lane.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer_tx, answer_rx) = oneshot::channel();
        lane.pending
            .lock()
            .insert(request_id, Waiter::Task(answer_tx));
        // Removes the pending entry however this function ends (answer, timeout, or
        // the caller giving up), so the map cannot grow without bound.
        let _pending = PendingGuard {
            lane: &lane,
            request_id,
        };

        let request = request(query, request_id);
        let exchange = async {
            sender.send(request).await.map_err(|_| unavailable())?;
            answer_rx.await.map_err(|_| unavailable())
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(result) => result,
            Err(_) => Err(RpcError::Timeout {
                endpoint: inner.endpoint.clone(),
                timeout: inner.timeout,
            }),
        }
    }

    /// Sends one query without a task of its own: `done` runs on the lane's task when
    /// the answer arrives, or with an error when the deadline passes, the lane breaks
    /// or its queue is full. For the UDP path, where a task per query was the largest
    /// cost after the system calls.
    pub fn submit(&self, query: Query, done: Completion) {
        let deadline = tokio::time::Instant::now() + self.inner.timeout;
        self.submit_until(query, deadline, done);
    }

    /// [`QueryClient::submit`] with a deadline of the caller's.
    pub fn submit_until(&self, query: Query, deadline: tokio::time::Instant, done: Completion) {
        let inner = &self.inner;
        let unavailable = || RpcError::Unavailable {
            endpoint: inner.endpoint.clone(),
        };
        let Some(lane) = self.pick_lane() else {
            return done(Err(unavailable()));
        };
        let Some(sender) = lane.outgoing.lock().clone() else {
            return done(Err(unavailable()));
        };
        let request_id = lane.next_id.fetch_add(1, Ordering::Relaxed);
        lane.pending
            .lock()
            .insert(request_id, Waiter::Callback { done, deadline });
        if sender.try_send(request(query, request_id)).is_err() {
            // A full queue (the backend is far behind) or a lane that just broke.
            let waiter = lane.pending.lock().remove(&request_id);
            if let Some(waiter) = waiter {
                waiter.fail(unavailable);
            }
        }
    }

    /// An outgoing zone transfer: the backend's messages in order, over a connection
    /// of its own (transfers are rare and long; they must not hold up a lane).
    pub async fn transfer(
        &self,
        query: Query,
    ) -> Result<mpsc::Receiver<Result<Bytes, RpcError>>, RpcError> {
        let endpoint = self.inner.endpoint.clone();
        let channel = endpoint.connect().await?;
        let call_error = move |status: tonic::Status| RpcError::Call {
            endpoint: endpoint.clone(),
            status: Box::new(status),
        };
        let mut client = pb::query_client::QueryClient::new(channel)
            .max_decoding_message_size(128 * 1024)
            .max_encoding_message_size(128 * 1024);
        let request = request(query, 0);
        let mut stream = client
            .transfer(request)
            .await
            .map_err(call_error.clone())?
            .into_inner();
        let (sender, receiver) = mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let next = match stream.message().await {
                    Ok(Some(message)) => Ok(message.wire),
                    Ok(None) => return,
                    Err(status) => Err(call_error(status)),
                };
                let failed = next.is_err();
                if sender.send(next).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(receiver)
    }

    /// Round-robin over the connected lanes.
    fn pick_lane(&self) -> Option<Arc<Lane>> {
        let lanes = &self.inner.lanes;
        let start = self.inner.next_lane.fetch_add(1, Ordering::Relaxed);
        (0..lanes.len())
            .map(|i| &lanes[(start + i) % lanes.len()])
            .find(|lane| lane.connected.load(Ordering::Relaxed))
            .cloned()
    }
}

pub(crate) fn request(query: Query, request_id: u64) -> pb::QueryRequest {
    pb::QueryRequest {
        request_id,
        wire: query.wire,
        client: query.client.to_string(),
        transport: match query.transport {
            Transport::Udp => pb::Transport::Udp,
            Transport::Tcp => pb::Transport::Tcp,
        } as i32,
        max_response_size: u32::from(query.max_response_size),
        traceparent: query.traceparent.unwrap_or_default(),
    }
}

struct PendingGuard<'a> {
    lane: &'a Lane,
    request_id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.lane.pending.lock().remove(&self.request_id);
    }
}

/// Keeps one lane connected: connect, stream, and on any failure fail the queries in
/// flight, back off and start again.
async fn run_lane(
    lane: Arc<Lane>,
    endpoint: Endpoint,
    timeout: Duration,
    connects: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let mut backoff = BACKOFF_MIN;
    let mut logged_down = false;
    loop {
        let connected = tokio::select! {
            _ = shutdown.cancelled() => return,
            result = open_stream(&endpoint) => result,
        };
        match connected {
            Ok((sender, mut inbound)) => {
                tracing::debug!(%endpoint, "query lane connected");
                if logged_down {
                    tracing::info!(%endpoint, "backend reachable again");
                    logged_down = false;
                }
                *lane.outgoing.lock() = Some(sender);
                lane.connected.store(true, Ordering::Relaxed);
                connects.notify_waiters();
                backoff = BACKOFF_MIN;
                let mut sweep = tokio::time::interval(SWEEP_EVERY);
                sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut answered = Vec::with_capacity(MAX_BATCH);
                loop {
                    let message = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = sweep.tick() => {
                            sweep_expired(&lane, &endpoint, timeout);
                            continue;
                        }
                        message = inbound.message() => message,
                    };
                    match message {
                        Ok(Some(batch)) => {
                            // Completions run outside the lock: they send datagrams.
                            {
                                let mut pending = lane.pending.lock();
                                for response in batch.answers {
                                    if let Some(waiter) = pending.remove(&response.request_id) {
                                        answered.push((waiter, response));
                                    }
                                }
                            }
                            for (waiter, response) in answered.drain(..) {
                                waiter
                                    .answer(Answer::from_parts(response.wire, response.cache_ttl));
                            }
                        }
                        Ok(None) => break,
                        Err(status) => {
                            tracing::debug!(%endpoint, %status, "query lane broke");
                            break;
                        }
                    }
                }
                lane.connected.store(false, Ordering::Relaxed);
                *lane.outgoing.lock() = None;
                // Every waiter learns at once: tasks from their dropped senders,
                // completions from the error.
                let waiters: Vec<Waiter> = lane.pending.lock().drain().map(|(_, w)| w).collect();
                for waiter in waiters {
                    waiter.fail(|| RpcError::Unavailable {
                        endpoint: endpoint.clone(),
                    });
                }
                if shutdown.is_cancelled() {
                    return;
                }
            }
            Err(error) => {
                if !logged_down {
                    tracing::warn!(%endpoint, %error, "backend unreachable; retrying with backoff");
                    logged_down = true;
                }
            }
        }
        // A query submitted as the lane broke may have slipped in after the drain.
        sweep_expired(&lane, &endpoint, timeout);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        sweep_expired(&lane, &endpoint, timeout);
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Fails the submitted queries whose deadline has passed (tasks keep their own timers).
fn sweep_expired(lane: &Lane, endpoint: &Endpoint, timeout: Duration) {
    let now = tokio::time::Instant::now();
    let expired: Vec<Waiter> = {
        let mut pending = lane.pending.lock();
        let ids: Vec<u64> = pending
            .iter()
            .filter(|(_, waiter)| matches!(waiter, Waiter::Callback { deadline, .. } if *deadline <= now))
            .map(|(id, _)| *id)
            .collect();
        ids.iter().filter_map(|id| pending.remove(id)).collect()
    };
    for waiter in expired {
        waiter.fail(|| RpcError::Timeout {
            endpoint: endpoint.clone(),
            timeout,
        });
    }
}

async fn open_stream(
    endpoint: &Endpoint,
) -> Result<
    (
        mpsc::Sender<pb::QueryRequest>,
        tonic::Streaming<pb::AnswerBatch>,
    ),
    RpcError,
> {
    let channel = endpoint.connect().await?;
    let mut client = pb::query_client::QueryClient::new(channel)
        .max_decoding_message_size(128 * 1024)
        .max_encoding_message_size(128 * 1024);
    let (sender, receiver) = mpsc::channel(LANE_QUEUE);
    let batches = ReceiverStream::new(receiver)
        .ready_chunks(MAX_BATCH)
        .map(|queries| pb::QueryBatch { queries });
    let response = client
        .resolve(batches)
        .await
        .map_err(|status| RpcError::Call {
            endpoint: endpoint.clone(),
            status: Box::new(status),
        })?;
    Ok((sender, response.into_inner()))
}
