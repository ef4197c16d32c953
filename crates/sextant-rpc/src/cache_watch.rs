//! The cache-generation watch: a daemon with a cache (the resolver) bumps its
//! generation on every flush; the listener follows it and drops the packet-cache
//! entries made of that daemon's answers.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_stream::Stream;
use tokio_stream::wrappers::WatchStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::endpoint::Dial;
use crate::{Endpoint, RpcError, pb};

/// The cache's side: bump the generation, every watcher hears of it.
#[derive(Clone, Debug)]
pub struct CacheGenerations {
    sender: Arc<watch::Sender<u64>>,
}

impl Default for CacheGenerations {
    fn default() -> Self {
        Self::new()
    }
}

impl CacheGenerations {
    /// Generation 1.
    pub fn new() -> Self {
        Self {
            sender: Arc::new(watch::channel(1).0),
        }
    }

    /// A new generation (after a flush); returns it.
    pub fn bump(&self) -> u64 {
        let mut generation = 0;
        self.sender.send_modify(|current| {
            *current += 1;
            generation = *current;
        });
        generation
    }

    /// The generation now.
    pub fn current(&self) -> u64 {
        *self.sender.borrow()
    }

    pub(crate) fn service(
        &self,
        shutdown: CancellationToken,
    ) -> pb::cache_server::CacheServer<CacheService> {
        pb::cache_server::CacheServer::new(CacheService {
            receiver: self.sender.subscribe(),
            shutdown,
        })
    }
}

#[derive(Debug)]
pub(crate) struct CacheService {
    receiver: watch::Receiver<u64>,
    /// Ends every watch when the server shuts down (a watch never ends by itself).
    shutdown: CancellationToken,
}

type GenerationStream = Pin<Box<dyn Stream<Item = Result<pb::CacheGeneration, Status>> + Send>>;

#[tonic::async_trait]
impl pb::cache_server::Cache for CacheService {
    type WatchGenerationStream = GenerationStream;

    async fn watch_generation(
        &self,
        _request: Request<pb::WatchCacheRequest>,
    ) -> Result<Response<Self::WatchGenerationStream>, Status> {
        let stream = WatchStream::new(self.receiver.clone())
            .map(|generation| Ok(pb::CacheGeneration { generation }))
            .take_until(self.shutdown.clone().cancelled_owned());
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Follows a daemon's cache generation, reconnecting by itself; `None` until the
/// first value arrives, then the last value seen.
#[derive(Debug)]
pub struct CacheGenerationWatcher;

impl CacheGenerationWatcher {
    /// Starts following the cache generation of each of `endpoints` until
    /// `shutdown`. With several resolvers the value changes when any of theirs does
    /// (a flush of one resolver's cache must drop the answers it gave too).
    pub fn start(
        endpoints: Vec<Endpoint>,
        shutdown: CancellationToken,
    ) -> watch::Receiver<Option<u64>> {
        let follow = |endpoint: Endpoint| {
            crate::watch::keep_following(
                vec![endpoint],
                shutdown.clone(),
                "cache generation",
                open_watch,
                |message: pb::CacheGeneration| message.generation,
            )
        };
        if endpoints.len() == 1 {
            return follow(endpoints[0].clone());
        }
        let mut each: Vec<_> = endpoints.into_iter().map(follow).collect();
        let (sender, receiver) = watch::channel(None);
        tokio::spawn(async move {
            loop {
                let values: Vec<Option<u64>> =
                    each.iter_mut().map(|r| *r.borrow_and_update()).collect();
                if values.iter().any(Option::is_some) {
                    let combined = values.iter().fold(0u64, |acc, value| {
                        acc.rotate_left(17) ^ value.unwrap_or(0).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    });
                    sender.send_replace(Some(combined));
                }
                let changes = each.iter_mut().map(|r| Box::pin(r.changed()));
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    (changed, _, _) = futures_util::future::select_all(changes) => {
                        if changed.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        receiver
    }
}

async fn open_watch(endpoint: Endpoint) -> Result<tonic::Streaming<pb::CacheGeneration>, RpcError> {
    let channel = endpoint.connect().await?;
    let mut client = pb::cache_client::CacheClient::new(channel);
    client
        .watch_generation(pb::WatchCacheRequest {})
        .await
        .map(Response::into_inner)
        .map_err(|status| RpcError::Call {
            endpoint: endpoint.clone(),
            status: Box::new(status),
        })
}
