//! Where a daemon's gRPC service lives: a Unix socket path (the default: file
//! permissions are the access control) or a TCP address.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Uri};

use crate::RpcError;

/// A gRPC endpoint as written in the config: `unix:/run/sextant/authority.sock` or
/// `tcp:127.0.0.1:7001` (a bare `127.0.0.1:7001` is read as TCP too).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(
                    "\"unix:\" needs a socket path, e.g. unix:/run/sextant/authority.sock".into(),
                );
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let addr = s.strip_prefix("tcp:").unwrap_or(s);
        addr.parse().map(Endpoint::Tcp).map_err(|_| {
            format!(
                "{s:?} is not a gRPC endpoint; write unix:/path/to.sock or tcp:ADDRESS:PORT (e.g. tcp:127.0.0.1:7001)"
            )
        })
    }
}

impl TryFrom<String> for Endpoint {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

/// How long to wait for a backend to accept a connection before calling it down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl Endpoint {
    /// Opens an HTTP/2 channel to the endpoint and waits until it is connected.
    pub(crate) async fn connect(&self) -> Result<Channel, RpcError> {
        let connect_error = |source: tonic::transport::Error| RpcError::Connect {
            endpoint: self.clone(),
            cause: Box::new(source),
        };
        match self {
            Endpoint::Tcp(addr) => {
                let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(connect_error)?;
                tune(endpoint).connect().await.map_err(connect_error)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_and_tcp_forms() {
        assert_eq!(
            "unix:/run/x.sock".parse::<Endpoint>(),
            Ok(Endpoint::Unix("/run/x.sock".into()))
        );
        let tcp = Endpoint::Tcp("127.0.0.1:7001".parse().unwrap_or_else(|_| unreachable!()));
        assert_eq!("tcp:127.0.0.1:7001".parse::<Endpoint>(), Ok(tcp.clone()));
        assert_eq!("127.0.0.1:7001".parse::<Endpoint>(), Ok(tcp));
    }

    #[test]
    fn rejects_garbage_with_the_fix() {
        let err = "localhost".parse::<Endpoint>().err().unwrap_or_default();
        assert!(err.contains("unix:/path/to.sock"), "{err}");
        assert!("unix:".parse::<Endpoint>().is_err());
    }
}
