//! The listener's control endpoint (`listener.control`): its status with each
//! backend's health, and the spans of traced queries it keeps, for `sextantctl`. It
//! serves no zones and no cache, so the other actions answer with where to go instead.

use std::time::Instant;

use sextant_rpc::{BackendStatus, ControlHandler, DaemonStatus, QueryPool, ZoneStatus};

#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) started: Instant,
    /// The backends by role (the main runtime's pools: the UDP workers' own lanes
    /// go to the same endpoints).
    pub(crate) pools: Vec<(&'static str, QueryPool)>,
}

impl ControlHandler for Control {
    fn status(&self) -> DaemonStatus {
        DaemonStatus {
            daemon: "sextant-listener".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs(),
            zones: Vec::new(),
            cache: None,
            backends: self
                .pools
                .iter()
                .flat_map(|(role, pool)| {
                    pool.health().into_iter().map(|health| BackendStatus {
                        role: (*role).to_string(),
                        endpoint: health.endpoint.to_string(),
                        connected: health.connected,
                        serving: health.serving,
                    })
                })
                .collect(),
        }
    }

    async fn reload(&self, _zone: Option<String>) -> Result<Vec<ZoneStatus>, String> {
        Err("the listener serves no zones; reload them at the authority, and send SIGHUP to the listener to re-read its own settings".into())
    }
}

/// The control endpoint, bound at start, or taken when the listener being replaced
/// lets go of it.
#[derive(Debug)]
pub(crate) enum Binding {
    Bound(sextant_rpc::GrpcServer),
    WhenFree(sextant_rpc::Endpoint),
}

/// How often a successor tries the endpoint its predecessor still holds.
const RETRY: std::time::Duration = std::time::Duration::from_millis(100);

impl Binding {
    pub(crate) fn endpoint(&self) -> &sextant_rpc::Endpoint {
        match self {
            Self::Bound(server) => server.local_endpoint(),
            Self::WhenFree(endpoint) => endpoint,
        }
    }

    /// Serves until `shutdown`, first waiting for the endpoint to be free if need be.
    pub(crate) async fn serve(
        self,
        handler: std::sync::Arc<Control>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let server = match self {
            Self::Bound(server) => server,
            Self::WhenFree(endpoint) => loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(RETRY) => {}
                }
                match sextant_rpc::GrpcServer::bind(&endpoint).await {
                    Ok(server) => {
                        tracing::info!(%endpoint, "control endpoint taken over");
                        break server;
                    }
                    Err(error) if error.is_in_use() => {}
                    Err(error) => {
                        tracing::error!(%error, "the control endpoint cannot be served");
                        return;
                    }
                }
            },
        };
        let services = sextant_rpc::Services::new().with_control(handler);
        if let Err(error) = server.serve(services, shutdown).await {
            tracing::error!(%error, "the control endpoint stopped");
        }
    }
}
