//! Connecting to a daemon's gRPC [`Endpoint`]: an HTTP/2 channel over a Unix socket
//! or TCP, tuned for many small messages on few long-lived streams.

use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Uri};

use crate::{Endpoint, RpcError};

/// How long to wait for a backend to accept a connection before calling it down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Dialling an endpoint.
pub(crate) trait Dial {
    /// Opens an HTTP/2 channel to the endpoint and waits until it is connected.
    async fn connect(&self) -> Result<Channel, RpcError>;
}

impl Dial for Endpoint {
    async fn connect(&self) -> Result<Channel, RpcError> {
        let connect_error = |source: tonic::transport::Error| RpcError::Connect {
            endpoint: self.clone(),
            cause: Box::new(source),
        };
        match self {
            Endpoint::Tcp(addr) => {
                let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(connect_error)?;
                let Some(tls) = crate::tls::current() else {
                    return tune(endpoint).connect().await.map_err(connect_error);
                };
                // HTTP/2 inside TLS made here: the server's certificate must chain to
                // our CA and name the address dialled; ours goes the other way.
                let addr = *addr;
                tune(endpoint)
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let client = tls.client.clone();
                        async move {
                            let tcp = tokio::net::TcpStream::connect(addr).await?;
                            tcp.set_nodelay(true)?;
                            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                            let stream = tokio_rustls::TlsConnector::from(client)
                                .connect(name, tcp)
                                .await?;
                            Ok::<_, std::io::Error>(TokioIo::new(stream))
                        }
                    }))
                    .await
                    .map_err(connect_error)
            }
            Endpoint::Unix(path) => {
                // The URI is required by the HTTP layer but never resolved: the
                // connector below ignores it and dials the socket path.
                let endpoint = tonic::transport::Endpoint::from_static("http://localhost");
                let path = path.clone();
                tune(endpoint)
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            let stream = tokio::net::UnixStream::connect(path).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(stream))
                        }
                    }))
                    .await
                    .map_err(connect_error)
            }
        }
    }
}

fn tune(endpoint: tonic::transport::Endpoint) -> tonic::transport::Endpoint {
    endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        // Many small messages on few streams: larger windows avoid flow-control stalls.
        .initial_stream_window_size(4 * 1024 * 1024)
        .initial_connection_window_size(16 * 1024 * 1024)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
}
