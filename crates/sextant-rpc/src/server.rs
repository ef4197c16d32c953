//! Binding and serving a daemon's gRPC services on a Unix socket or TCP address.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
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
    /// With the socket file's inode: at the end the file is removed only if it is
    /// still ours (a successor may have made its own at the same path).
    Unix(UnixListener, u64),
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
                let inode = std::fs::metadata(path)
                    .map_err(|e| bind_error(e, "check the socket directory's ownership"))?
                    .ino();
                Ok(Self {
                    incoming: Incoming::Unix(listener, inode),
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
        let signal = shutdown.clone().cancelled_owned();
        let mut ours = None;
        let result = match self.incoming {
            Incoming::Unix(listener, inode) => {
                ours = Some(inode);
                router
                    .serve_with_incoming_shutdown(UnixListenerStream::new(listener), signal)
                    .await
            }
            Incoming::Tcp(listener) => match crate::tls::current() {
                None => {
                    router
                        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal)
                        .await
                }
                Some(_) => {
                    let incoming = tls_incoming(listener, shutdown.clone());
                    router.serve_with_incoming_shutdown(incoming, signal).await
                }
            },
        };
        if let (Endpoint::Unix(path), Some(inode)) = (&endpoint, ours)
            && std::fs::metadata(path).is_ok_and(|m| m.ino() == inode)
        {
            let _ = std::fs::remove_file(path);
        }
        result.map_err(|source| RpcError::Serve {
            endpoint,
            cause: source,
        })
    }
}

/// A client has this long to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The connections of `listener` that complete a mutual TLS handshake with the
/// settings of their moment (each handshake on a task of its own, so a slow one
/// holds up no other); the others are logged and closed.
fn tls_incoming(
    listener: TcpListener,
    shutdown: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsConnection, std::io::Error>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of descriptors, most likely: pause rather than spin.
                        tracing::warn!(%error, "accepting a gRPC connection failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Some(tls) = crate::tls::current() else {
                continue;
            };
            let sender = sender.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = sender.send(Ok(TlsConnection(stream))).await;
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%peer, %error, "gRPC connection refused: its TLS handshake failed (a certificate not from our CA?)");
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "gRPC connection closed: no TLS handshake within 10 s");
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// A gRPC connection inside mutual TLS.
struct TlsConnection(tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl tokio::io::AsyncRead for TlsConnection {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}
