//! Several backends of one role (authorities serving the same zones, or resolvers):
//! each query goes to a healthy one in turn, and a query whose backend fails under it
//! (its connection broke, the daemon stopped) is sent again to another before the
//! client's deadline, so one backend's death or restart costs no answer.
//!
//! "Healthy" is what the listener can see: the backend's lanes are connected and its
//! grpc.health.v1 status, polled every [`HEALTH_EVERY`], is SERVING. A query that
//! merely times out is not retried: the backend may still be working on it (a long
//! resolution), and sending it again would double the load exactly when a backend
//! is slow.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::health::follow_health;
use crate::{Answer, Completion, Endpoint, Query, QueryClient, QueryClientOptions, RpcError};

/// How often each backend's health is asked.
pub const HEALTH_EVERY: Duration = Duration::from_millis(500);

/// A cheap-to-clone handle on the backends of one role.
#[derive(Clone, Debug)]
pub struct QueryPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Never empty.
    members: Vec<Member>,
    next: AtomicUsize,
    timeout: Duration,
}

#[derive(Debug)]
struct Member {
    client: QueryClient,
    /// Its last health answer was SERVING.
    serving: Arc<AtomicBool>,
}

/// One backend as `sextantctl status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendHealth {
    /// Its endpoint.
    pub endpoint: Endpoint,
    /// A query stream to it is up.
    pub connected: bool,
    /// Its health status is SERVING.
    pub serving: bool,
}

impl QueryPool {
    /// Starts lanes to each of `endpoints` and their health polls; they live until
    /// `shutdown` is cancelled. `None` without endpoints.
    pub fn start(
        endpoints: &[Endpoint],
        options: &QueryClientOptions,
        shutdown: CancellationToken,
    ) -> Option<Self> {
        if endpoints.is_empty() {
            return None;
        }
        let members = endpoints
            .iter()
            .map(|endpoint| {
                let serving = Arc::new(AtomicBool::new(true));
                tokio::spawn(follow_health(
                    endpoint.clone(),
                    serving.clone(),
                    HEALTH_EVERY,
                    shutdown.clone(),
                ));
                Member {
                    client: QueryClient::start(endpoint.clone(), options, shutdown.clone()),
                    serving,
                }
            })
            .collect();
        Some(Self {
            inner: Arc::new(Inner {
                members,
                next: AtomicUsize::new(0),
                timeout: options.timeout,
            }),
        })
    }

    /// The backends' endpoints, in configured order.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.inner
            .members
            .iter()
            .map(|m| m.client.endpoint().clone())
            .collect()
    }

    /// The deadline of one query, retries included.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Each backend's state now.
    pub fn health(&self) -> Vec<BackendHealth> {
        self.inner
            .members
            .iter()
            .map(|m| BackendHealth {
                endpoint: m.client.endpoint().clone(),
                connected: m.client.is_connected(),
                serving: m.serving.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// True when some backend has a live stream.
    pub fn is_connected(&self) -> bool {
        self.inner.members.iter().any(|m| m.client.is_connected())
    }

    /// Returns once some backend has a live stream: queries can be answered.
    pub async fn wait_connected(&self) {
        let each = self
            .inner
            .members
            .iter()
            .map(|m| Box::pin(m.client.wait_connected()));
        futures_util::future::select_all(each).await;
    }

    /// Sends one query and waits for its answer, retried on another backend when
    /// the first fails; at most the configured timeout in all.
    pub async fn query(&self, query: Query) -> Result<Answer, RpcError> {
        let deadline = Instant::now() + self.inner.timeout;
        let mut start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let mut left = self.inner.members.len();
        loop {
            let Some(index) = self.inner.pick(start) else {
                return Err(self.inner.unavailable());
            };
            let client = &self.inner.members[index].client;
            match client.query_until(query.clone(), deadline).await {
                Err(RpcError::Unavailable { endpoint })
                    if left > 1 && Instant::now() < deadline =>
                {
                    retried(&endpoint);
                    start = index + 1;
                    left -= 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// Sends one query without a task of its own (see [`QueryClient::submit`]);
    /// `done` runs once, with the answer of the backend that gave one.
    pub fn submit(&self, query: Query, done: Completion) {
        let deadline = Instant::now() + self.inner.timeout;
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        Inner::attempt(
            &self.inner,
            start,
            query,
            deadline,
            done,
            self.inner.members.len(),
        );
    }

    /// An outgoing zone transfer, from the first backend with a live stream.
    pub async fn transfer(
        &self,
        query: Query,
    ) -> Result<mpsc::Receiver<Result<Bytes, RpcError>>, RpcError> {
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let index = self
            .inner
            .pick(start)
            .ok_or_else(|| self.inner.unavailable())?;
        self.inner.members[index].client.transfer(query).await
    }
}

impl Inner {
    /// The first backend from `start` on that is connected and serving; failing
    /// that, the first connected one (its health may be stale).
    fn pick(&self, start: usize) -> Option<usize> {
        let count = self.members.len();
        let order = (0..count).map(|i| (start + i) % count);
        let connected = |&i: &usize| self.members[i].client.is_connected();
        order
            .clone()
            .filter(connected)
            .find(|&i| self.members[i].serving.load(Ordering::Relaxed))
            .or_else(|| order.clone().find(connected))
    }

    /// No backend could take the query: named by the first.
    fn unavailable(&self) -> RpcError {
        RpcError::Unavailable {
            endpoint: self.members[0].client.endpoint().clone(),
        }
    }

    fn attempt(
        this: &Arc<Self>,
        start: usize,
        query: Query,
        deadline: Instant,
        done: Completion,
        left: usize,
    ) {
        let Some(index) = this.pick(start) else {
            return done(Err(this.unavailable()));
        };
        let client = &this.members[index].client;
        if left <= 1 {
            return client.submit_until(query, deadline, done);
        }
        let pool = this.clone();
        let again = query.clone();
        client.submit_until(
            query,
            deadline,
            Box::new(move |outcome| match outcome {
                Err(RpcError::Unavailable { endpoint }) if Instant::now() < deadline => {
                    retried(&endpoint);
                    Inner::attempt(&pool, index + 1, again, deadline, done, left - 1);
                }
                outcome => done(outcome),
            }),
        );
    }
}

/// Counts a query sent again because `endpoint` failed under it.
fn retried(endpoint: &Endpoint) {
    tracing::debug!(%endpoint, "backend failed under a query; asking another");
    metrics::counter!("sextant_listener_backend_retries_total").increment(1);
}
