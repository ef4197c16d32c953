//! The zone-set watch: a backend publishes the zones it answers for; the listener
//! follows them to route queries and to invalidate its packet cache.

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

/// The zones a backend serves, as apex names in lower-case presentation form with the
/// trailing dot. `generation` grows with every change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneSet {
    /// Grows with every change.
    pub generation: u64,
    /// Apex names, lower case, trailing dot.
    pub zones: Vec<String>,
}

/// The backend's handle for announcing its zone set to every watcher.
#[derive(Clone, Debug)]
pub struct ZoneSetPublisher {
    sender: Arc<watch::Sender<ZoneSet>>,
}

impl Default for ZoneSetPublisher {
    fn default() -> Self {
        Self::new()
    }
}

impl ZoneSetPublisher {
    /// Publishes an empty set at generation 0.
    pub fn new() -> Self {
        Self {
            sender: Arc::new(watch::channel(ZoneSet::default()).0),
        }
    }

    /// Replaces the published set; watchers receive it with a new generation even if
    /// the names are unchanged (a reloaded zone still invalidates cached answers).
    pub fn publish(&self, zones: Vec<String>) -> u64 {
        let mut generation = 0;
        self.sender.send_modify(|set| {
            set.generation += 1;
            set.zones = zones;
            generation = set.generation;
        });
        generation
    }

    /// The set published now.
    pub fn current(&self) -> ZoneSet {
        self.sender.borrow().clone()
    }

    pub(crate) fn service(
        &self,
        shutdown: CancellationToken,
    ) -> pb::zones_server::ZonesServer<ZonesService> {
        pb::zones_server::ZonesServer::new(ZonesService {
            receiver: self.sender.subscribe(),
            shutdown,
        })
    }
}

#[derive(Debug)]
pub(crate) struct ZonesService {
    receiver: watch::Receiver<ZoneSet>,
    /// Ends every watch when the server shuts down (a watch never ends by itself).
    shutdown: CancellationToken,
}

type ZoneSetStream = Pin<Box<dyn Stream<Item = Result<pb::ZoneSet, Status>> + Send>>;

#[tonic::async_trait]
impl pb::zones_server::Zones for ZonesService {
    type WatchStream = ZoneSetStream;

    async fn watch(
        &self,
        _request: Request<pb::WatchZonesRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let stream = WatchStream::new(self.receiver.clone())
            .map(|set| {
                Ok(pb::ZoneSet {
                    generation: set.generation,
                    zones: set.zones,
                })
            })
            .take_until(self.shutdown.clone().cancelled_owned());
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Follows a backend's zone set, reconnecting by itself. The value is `None` until
/// the first set arrives; after a disconnection the last set is kept, so queries for
/// those zones get SERVFAIL (backend down) rather than REFUSED (not ours).
#[derive(Debug)]
pub struct ZoneWatcher;

impl ZoneWatcher {
    /// Starts following the zone set of the first of `endpoints` (authorities
    /// serving the same zones) until `shutdown`, the next one while it is away.
    pub fn start(
        endpoints: Vec<Endpoint>,
        shutdown: CancellationToken,
    ) -> watch::Receiver<Option<ZoneSet>> {
        crate::watch::keep_following(endpoints, shutdown, "zone set", open_watch, |set| ZoneSet {
            generation: set.generation,
            zones: set.zones,
        })
    }
}

async fn open_watch(endpoint: Endpoint) -> Result<tonic::Streaming<pb::ZoneSet>, RpcError> {
    let channel = endpoint.connect().await?;
    let mut client = pb::zones_client::ZonesClient::new(channel);
    client
        .watch(pb::WatchZonesRequest {})
        .await
        .map(Response::into_inner)
        .map_err(|status| RpcError::Call {
            endpoint: endpoint.clone(),
            status: Box::new(status),
        })
}
