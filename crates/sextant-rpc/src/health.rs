//! The standard gRPC health service (grpc.health.v1), used by the control tool and
//! by load balancers to see whether a daemon serves.

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

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

/// Asks `endpoint` for its health every `every` until `shutdown`, over one channel
/// (reconnected when it fails), and keeps whether it answered SERVING in `serving`.
/// A check that fails counts as not serving.
pub(crate) async fn follow_health(
    endpoint: Endpoint,
    serving: Arc<AtomicBool>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut client = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if client.is_none() {
            client = endpoint.connect().await.ok().map(HealthClient::new);
        }
        let Some(health) = client.as_mut() else {
            serving.store(false, Ordering::Relaxed);
            continue;
        };
        let request = HealthCheckRequest {
            service: String::new(),
        };
        let answer = tokio::time::timeout(every, health.check(request)).await;
        let status = match answer {
            Ok(Ok(response)) => Some(response.into_inner().status()),
            _ => None,
        };
        serving.store(status == Some(ServingStatus::Serving), Ordering::Relaxed);
        if status.is_none() {
            client = None;
        }
    }
}
