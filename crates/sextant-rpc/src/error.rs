//! Errors of the gRPC layer, each naming the endpoint involved.

use std::time::Duration;

use crate::Endpoint;

/// Display carries the whole sentence, cause included; no `#[source]`, so `{:#}`
/// does not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("backend {endpoint} is not connected")]
    Unavailable { endpoint: Endpoint },
    #[error("backend {endpoint} did not answer within {}ms", timeout.as_millis())]
    Timeout {
        endpoint: Endpoint,
        timeout: Duration,
    },
    #[error("cannot connect to {endpoint}: {cause}")]
    Connect {
        endpoint: Endpoint,
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("gRPC call to {endpoint} failed: {status}")]
    Call {
        endpoint: Endpoint,
        status: Box<tonic::Status>,
    },
    #[error("cannot listen for gRPC on {endpoint}: {cause}; {fix}")]
    Bind {
        endpoint: Endpoint,
        cause: std::io::Error,
        fix: &'static str,
    },
    #[error("gRPC server on {endpoint} failed: {cause}")]
    Serve {
        endpoint: Endpoint,
        cause: tonic::transport::Error,
    },
}
