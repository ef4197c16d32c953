//! Binding and serving a daemon's gRPC services on a Unix socket or TCP address.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::service::{Routes, RoutesBuilder};

use crate::query_server::{QueryHandler, QueryService};
use crate::{Endpoint, RpcError, ZoneSetPublisher, pb};

/// The set of gRPC services one daemon offers; the health service is always there.
pub struct Services {
    routes: RoutesBuilder,
    health: tonic_health::server::HealthReporter,
    /// Ends long-lived streams when the server shuts down.
    streams: CancellationToken,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}

impl Default for Services {
    fn default() -> Self {
        Self::new()
    }
}

impl Services {
    /// No services yet.
    pub fn new() -> Self {
        let (health, health_service) = tonic_health::server::health_reporter();
        let mut routes = Routes::builder();
        routes.add_service(health_service);
        Self {
            routes,
            health,
            streams: CancellationToken::new(),
        }
    }

    /// Serves the DNS query stream with `handler`.
    pub fn with_query<H: QueryHandler>(mut self, handler: Arc<H>) -> Self {
        self.routes.add_service(
            pb::query_server::QueryServer::new(QueryService::new(handler, self.streams.clone()))
                .max_decoding_message_size(128 * 1024)
                .max_encoding_message_size(128 * 1024),
        );
        self
    }

    /// Serves operator control (status, reload) with `handler`.
    pub fn with_control<H: crate::ControlHandler>(mut self, handler: Arc<H>) -> Self {
        self.routes
            .add_service(pb::control_server::ControlServer::new(
                crate::control::ControlService::new(handler),
            ));
        self
    }

    /// Serves published secondary zone versions from `source`, announced by `notifier`.
    pub fn with_secondary_versions<S: crate::VersionSource>(
        mut self,
        source: Arc<S>,
        notifier: &crate::VersionNotifier,
    ) -> Self {
        self.routes
            .add_service(pb::secondary_zones_server::SecondaryZonesServer::new(
                crate::secondary::SecondaryService::new(
                    source,
                    notifier.subscribe(),
                    self.streams.clone(),
                ),
            ));
        self
    }

    /// Serves the zone-set watch from `publisher`.
    pub fn with_zones(mut self, publisher: &ZoneSetPublisher) -> Self {
        self.routes
            .add_service(publisher.service(self.streams.clone()));
        self
    }

    /// Serves the cache-generation watch of `generations`.
    pub fn with_cache_generations(mut self, generations: &crate::CacheGenerations) -> Self {
        self.routes
            .add_service(generations.service(self.streams.clone()));
        self
    }
}

enum Incoming {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// A bound but not yet serving gRPC socket; binding first lets the daemon report the
/// real address (port 0) in its ready file and fail start-up on a bind error.
pub struct GrpcServer {
    incoming: Incoming,
    endpoint: Endpoint,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl GrpcServer {
    /// Binds `endpoint` (for a Unix socket: removes a stale one, sets mode 0660).
    pub async fn bind(endpoint: &Endpoint) -> Result<Self, RpcError> {
        let bind_error = |source: std::io::Error, fix| RpcError::Bind {
            endpoint: endpoint.clone(),
            cause: source,
            fix,
        };
        match endpoint {
            Endpoint::Unix(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        bind_error(e, "create the socket's directory or choose another path")
                    })?;
                }
                // A socket file left by a previous run would make bind fail; a live
                // daemon on it would be found by connecting first.
                if path.exists() {
                    if std::os::unix::net::UnixStream::connect(path).is_ok() {
                        return Err(bind_error(
                            std::io::Error::from(std::io::ErrorKind::AddrInUse),
                            "another daemon is serving on this socket; stop it or choose another path",
                        ));
                    }
                    std::fs::remove_file(path)
                        .map_err(|e| bind_error(e, "remove the stale socket file"))?;
                }
                let listener = UnixListener::bind(path)
                    .map_err(|e| bind_error(e, "check the directory exists and is writable"))?;
                // Owner and group only: the socket's permissions are the access control.
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
                    .map_err(|e| bind_error(e, "check the socket directory's ownership"))?;
                Ok(Self {
                    incoming: Incoming::Unix(listener),
                    endpoint: endpoint.clone(),
                })
            }
            Endpoint::Tcp(addr) => {
                let listener = TcpListener::bind(addr).await.map_err(|e| {
                    bind_error(
                        e,
                        "choose a free port, or an address configured on this host",
                    )
                })?;
                let local = listener
                    .local_addr()
                    .map_err(|e| bind_error(e, "check the address"))?;
                Ok(Self {
                    incoming: Incoming::Tcp(listener),
                    endpoint: Endpoint::Tcp(local),
                })
            }
        }
    }

    /// The endpoint really bound (port 0 resolved).
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Serves until `shutdown` is cancelled; marks the daemon healthy while it does.
    pub async fn serve(
        self,
        services: Services,
        shutdown: CancellationToken,
    ) -> Result<(), RpcError> {
        let Services {
            routes,
            health,
            streams,
        } = services;
        // Graceful shutdown waits for open streams; end ours when shutdown begins,
        // saying NOT_SERVING first so that listeners send new queries elsewhere.
        let stop_streams = shutdown.clone();
        let stopping = health.clone();
        tokio::spawn(async move {
            stop_streams.cancelled().await;
            stopping
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            streams.cancel();
        });
        health
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        let mut builder = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .initial_stream_window_size(4 * 1024 * 1024)
            .initial_connection_window_size(16 * 1024 * 1024);
        let router = builder.add_routes(routes.routes());
        let endpoint = self.endpoint.clone();
        let signal = shutdown.cancelled_owned();
        let result = match self.incoming {
            Incoming::Unix(listener) => {
                router
                    .serve_with_incoming_shutdown(UnixListenerStream::new(listener), signal)
                    .await
            }
            Incoming::Tcp(listener) => {
                router
                    .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal)
                    .await
            }
        };
        if let Endpoint::Unix(path) = &endpoint {
            let _ = std::fs::remove_file(path);
        }
        result.map_err(|source| RpcError::Serve {
            endpoint,
            cause: source,
        })
    }
}
