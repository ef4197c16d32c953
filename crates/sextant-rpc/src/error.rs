//! Errors of the gRPC layer, each naming the endpoint involved.

use std::time::Duration;

use crate::Endpoint;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("backend {endpoint} is not connected")]
    Unavailable { endpoint: Endpoint },
    #[error("backend {endpoint} did not answer within {}ms", timeout.as_millis())]
    Timeout { endpoint: Endpoint, timeout: Duration },
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        endpoint: Endpoint,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("gRPC call to {endpoint} failed: {status}")]
    Call {
        endpoint: Endpoint,
        status: Box<tonic::Status>,
    },
    #[error("cannot listen for gRPC on {endpoint}: {source}; {fix}")]
    Bind {
        endpoint: Endpoint,
        #[source]
        source: std::io::Error,
        fix: &'static str,
    },
    #[error("gRPC server on {endpoint} failed: {source}")]
    Serve {
        endpoint: Endpoint,
        #[source]
        source: tonic::transport::Error,
    },
}
