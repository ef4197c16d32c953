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
