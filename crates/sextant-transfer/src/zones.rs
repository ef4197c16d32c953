//! The secondary zones' shared state: configuration, store, timers, outcome of the
//! last refresh, and the version source the authority watches.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::rr::{Name, Record};
use hickory_proto::serialize::binary::BinDecodable;
use parking_lot::Mutex;
use sextant_config::TransferConfig;
use sextant_rpc::{VersionNotifier, VersionSource, VersionState};
use sextant_store::Store;
use tokio::sync::mpsc;

use crate::axfr::Limits;
use crate::client::Timeouts;
use crate::state::{SoaTimers, ZoneState};

#[derive(Debug)]
pub(crate) struct ZoneEntry {
    pub name: Name,
    pub key: String,
    pub primaries: Vec<SocketAddr>,
    pub allow_notify: Vec<IpAddr>,
    /// Signs every exchange with the primaries when set.
    pub tsig: Option<sextant_tsig::Key>,
    pub state: Mutex<ZoneState>,
    /// Wakes the refresh task (NOTIFY); capacity 1, so a burst is one check.
    pub trigger: mpsc::Sender<()>,
    pub(crate) triggered: Mutex<Option<mpsc::Receiver<()>>>,
}

#[derive(Debug)]
pub(crate) struct Zones {
    pub(crate) store: Arc<Store>,
    pub(crate) zones: HashMap<String, ZoneEntry>,
    notifier: VersionNotifier,
    pub(crate) min_refresh: Duration,
    pub(crate) max_refresh: Duration,
    pub(crate) timeouts: Timeouts,
    pub(crate) limits: Limits,
    pub(crate) started: Instant,
    /// The same moment on the wall clock, for expiry.
    pub(crate) started_wall: SystemTime,
}

impl Zones {
    pub(crate) fn new(
        store: Arc<Store>,
        config: &TransferConfig,
        keys: &[sextant_config::KeyConfig],
    ) -> anyhow::Result<Self> {
        let mut zones = HashMap::new();
        for zone in &config.zones {
            let tsig = match &zone.key {
                None => None,
                Some(name) => {
                    let key = keys.iter().find(|k| &k.name == name).ok_or_else(|| {
                        anyhow::anyhow!("zone {} uses key {name}, which is not defined", zone.name)
                    })?;
                    let secret = sextant_config::key_secret(&key.secret)
                        .ok_or_else(|| anyhow::anyhow!("the secret of key {name} is not base64"))?;
                    Some(
                        sextant_tsig::Key::new(&key.name, &key.algorithm, secret)
                            .map_err(anyhow::Error::msg)?,
                    )
                }
            };
            let key = zone.name.to_string();
            let timers = store
                .first_record(&key)?
                .and_then(|bytes| Record::from_bytes(&bytes).ok())
                .and_then(|soa| SoaTimers::of(&soa))
                .unwrap_or(SoaTimers::DEFAULT);
            let allow_notify = if zone.allow_notify.is_empty() {
                zone.primaries.iter().map(SocketAddr::ip).collect()
            } else {
                zone.allow_notify.clone()
            };
            let state = initial_state(&store, &key, timers)?;
            let (trigger, triggered) = mpsc::channel(1);
            zones.insert(
                key.clone(),
                ZoneEntry {
                    name: zone.name.clone(),
                    key,
                    primaries: zone.primaries.clone(),
                    allow_notify,
                    tsig,
                    state: Mutex::new(state),
                    trigger,
                    triggered: Mutex::new(Some(triggered)),
                },
            );
        }
        Ok(Self {
            store,
            zones,
            notifier: VersionNotifier::new(),
            min_refresh: config.min_refresh,
            max_refresh: config.max_refresh,
            timeouts: Timeouts {
                connect: config.transfer_timeout,
                message: config.transfer_timeout,
            },
            limits: Limits {
                max_records: config.max_zone_records,
                ..Limits::default()
            },
            started: Instant::now(),
            started_wall: SystemTime::now(),
        })
    }

    pub(crate) fn notifier(&self) -> &VersionNotifier {
        &self.notifier
    }

    pub(crate) fn published_count(&self) -> usize {
        self.store.zones().map(|z| z.len()).unwrap_or(0)
    }

    /// Clamps an SOA interval (seconds) to the configured bounds.
    pub(crate) fn clamp(&self, seconds: u32) -> Duration {
        Duration::from_secs(u64::from(seconds)).clamp(self.min_refresh, self.max_refresh)
    }
}

impl VersionSource for Zones {
    fn states(&self) -> Vec<VersionState> {
        let published = self.store.zones().unwrap_or_default();
        published
            .into_iter()
            .filter_map(|(zone, p)| {
                let entry = self.zones.get(&zone)?;
                Some(VersionState {
                    expired: entry.state.lock().expired,
                    zone,
                    serial: p.serial,
                    version: p.version,
                })
            })
            .collect()
    }

    fn records(
        &self,
        zone: &str,
        each: &mut dyn FnMut(Vec<Vec<u8>>) -> bool,
    ) -> Result<(), String> {
        match self.store.for_each_records(zone, each) {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!("zone {zone} has no published version")),
            Err(error) => Err(error.to_string()),
        }
    }
}

/// A zone's state at start: its last successful refresh comes from the store (wall
/// clock, which survives restarts and reboots), so a zone not refreshed for longer
/// than EXPIRE before a restart is expired at once instead of being served for
/// another EXPIRE.
fn initial_state(store: &Store, key: &str, timers: SoaTimers) -> anyhow::Result<ZoneState> {
    let last_success = store
        .last_refresh(key)?
        .map(|unix| SystemTime::UNIX_EPOCH + Duration::from_secs(unix));
    let mut state = ZoneState {
        timers,
        last_success,
        last_failure: None,
        expired: false,
        next_refresh: None,
        force: false,
    };
    let now = SystemTime::now();
    state.expired = last_success.is_some() && crate::expire::is_expired(&state, now, now);
    Ok(state)
}
