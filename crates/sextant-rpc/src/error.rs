//! Errors of the gRPC layer, each naming the endpoint involved.

use std::time::Duration;

use crate::Endpoint;

/// Display carries the whole sentence, cause included; no `#[source]`, so `{:#}`
/// does not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No stream to the backend is up.
    #[error("backend {endpoint} is not connected")]
    Unavailable {
        /// The backend.
        endpoint: Endpoint,
    },
    /// The backend did not answer in time.
    #[error("backend {endpoint} did not answer within {}ms", timeout.as_millis())]
    Timeout {
        /// The backend.
        endpoint: Endpoint,
        /// The deadline missed.
        timeout: Duration,
    },
    /// The connection could not be made.
    #[error("cannot connect to {endpoint}: {cause}")]
    Connect {
        /// Where.
        endpoint: Endpoint,
        /// Why.
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A call failed with a gRPC status.
    #[error("gRPC call to {endpoint} failed: {status}")]
    Call {
        /// The backend.
        endpoint: Endpoint,
        /// The status.
        status: Box<tonic::Status>,
    },
    /// The gRPC socket could not be bound.
    #[error("cannot listen for gRPC on {endpoint}: {cause}; {fix}")]
    Bind {
        /// Where.
        endpoint: Endpoint,
        /// Why.
        cause: std::io::Error,
        /// What to do about it.
        fix: &'static str,
    },
    /// The gRPC server stopped with an error.
    #[error("gRPC server on {endpoint} failed: {cause}")]
    Serve {
        /// Where it served.
        endpoint: Endpoint,
        /// Why.
        cause: tonic::transport::Error,
    },
}

impl RpcError {
    /// Whether binding failed because another process serves on the endpoint.
    pub fn is_in_use(&self) -> bool {
        matches!(self, Self::Bind { cause, .. } if cause.kind() == std::io::ErrorKind::AddrInUse)
    }
}
