//! The standard gRPC health service (grpc.health.v1), used by the control tool and
//! by load balancers to see whether a daemon serves.

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::endpoint::Dial;
use crate::{Endpoint, RpcError};

/// A backend's answer to a health check (grpc.health.v1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthState {
    /// It serves.
    Serving,
    /// It runs but does not serve yet.
    NotServing,
    /// It answered something else, or the check failed.
    Unknown,
}

/// Asks a daemon whether it serves; `service` empty means the daemon as a whole.
pub async fn check_health(endpoint: &Endpoint, service: &str) -> Result<HealthState, RpcError> {
    let channel = endpoint.connect().await?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await
        .map_err(|status| RpcError::Call {
            endpoint: endpoint.clone(),
            status: Box::new(status),
        })?;
    Ok(match response.into_inner().status() {
        ServingStatus::Serving => HealthState::Serving,
        ServingStatus::NotServing => HealthState::NotServing,
        _ => HealthState::Unknown,
    })
}
