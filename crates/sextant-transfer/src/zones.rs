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
use sextant_rpc::{VersionNotifier, VersionSource, VersionState, VersionStep};
use sextant_store::{Published, Store};
use tokio::sync::mpsc;

use crate::axfr::Limits;
use crate::client::Timeouts;
use crate::index::RecordIndex;
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
    /// The published version's records by fingerprint, for checking an IXFR
    /// without reading the version; built in the background after each AXFR and
    /// at start, taken by the refresh that uses it.
    pub(crate) index: Mutex<Option<RecordIndex>>,
    /// Configured, a catalog zone, or a catalog zone's member.
    pub(crate) role: Mutex<Role>,
    /// Ends the zone's refresh task (a member removed from its catalog).
    pub(crate) stop: tokio_util::sync::CancellationToken,
}

/// Where a secondary zone comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// A `[[transfer.zone]]`.
    Configured,
    /// A `[[transfer.zone]]` with `catalog = true` (RFC 9432): its members are
    /// secondary zones too.
    Catalog,
    /// A member of the catalog zone `catalog`, under unique id `id`.
    Member(crate::catalog_zone::Membership),
}

impl ZoneEntry {
    /// A zone with no refresh running yet; its state read from the store.
    pub(crate) fn new(
        store: &Store,
        name: Name,
        primaries: Vec<SocketAddr>,
        allow_notify: Vec<IpAddr>,
        tsig: Option<sextant_tsig::Key>,
        role: Role,
        stop: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Self> {
        let key = name.to_string();
        let timers = store
            .first_record(&key)?
            .and_then(|bytes| Record::from_bytes(&bytes).ok())
            .and_then(|soa| SoaTimers::of(&soa))
            .unwrap_or(SoaTimers::DEFAULT);
        let allow_notify = if allow_notify.is_empty() {
            primaries.iter().map(SocketAddr::ip).collect()
        } else {
            allow_notify
        };
        let state = initial_state(store, &key, timers)?;
        let (trigger, triggered) = mpsc::channel(1);
        Ok(Self {
            name,
            key,
            primaries,
            allow_notify,
            tsig,
            state: Mutex::new(state),
            trigger,
            triggered: Mutex::new(Some(triggered)),
            index: Mutex::new(None),
            role: Mutex::new(role),
            stop,
        })
    }
}

#[derive(Debug)]
pub(crate) struct Zones {
    pub(crate) store: Arc<Store>,
    /// By apex as text (`example.com.`); members of catalog zones come and go.
    zones: parking_lot::RwLock<HashMap<String, Arc<ZoneEntry>>>,
    /// The daemon's shutdown: the parent of every zone's `stop`.
    pub(crate) shutdown: tokio_util::sync::CancellationToken,
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
        shutdown: tokio_util::sync::CancellationToken,
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
            let role = if zone.catalog {
                Role::Catalog
            } else {
                Role::Configured
            };
            let entry = ZoneEntry::new(
                &store,
                zone.name.clone(),
                zone.primaries.clone(),
                zone.allow_notify.clone(),
                tsig,
                role,
                shutdown.child_token(),
            )?;
            zones.insert(entry.key.clone(), Arc::new(entry));
        }
        Ok(Self {
            store,
            zones: parking_lot::RwLock::new(zones),
            shutdown,
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

    /// The zone at `key` (`example.com.`), if it is one of ours.
    pub(crate) fn zone(&self, key: &str) -> Option<Arc<ZoneEntry>> {
        self.zones.read().get(key).cloned()
    }

    /// Every zone, in no order.
    pub(crate) fn all(&self) -> Vec<Arc<ZoneEntry>> {
        self.zones.read().values().cloned().collect()
    }

    /// Adds `entry` unless a zone of that name is already there; whether it was.
    pub(crate) fn insert(&self, entry: ZoneEntry) -> Option<Arc<ZoneEntry>> {
        let mut zones = self.zones.write();
        if zones.contains_key(&entry.key) {
            return None;
        }
        let entry = Arc::new(entry);
        zones.insert(entry.key.clone(), entry.clone());
        Some(entry)
    }

    /// Takes `key` out: its refresh ends and nothing of it is published any more.
    pub(crate) fn remove(&self, key: &str) -> Option<Arc<ZoneEntry>> {
        let entry = self.zones.write().remove(key)?;
        entry.stop.cancel();
        self.notifier.notify();
        Some(entry)
    }

    /// The index of `zone`'s published version `published`: the one held if it is
    /// of that version, else built now from the store.
    pub(crate) async fn take_index(
        &self,
        zone: &ZoneEntry,
        published: &Published,
    ) -> Result<RecordIndex, sextant_store::StoreError> {
        let held = zone.index.lock().take();
        if let Some(index) = held.filter(|i| i.digest == published.digest) {
            return Ok(index);
        }
        let (store, key, name, digest) = (
            self.store.clone(),
            zone.key.clone(),
            zone.name.clone(),
            published.digest,
        );
        tokio::task::spawn_blocking(move || build_index(&store, &key, &name, digest))
            .await
            .unwrap_or_else(|e| {
                Err(sextant_store::StoreError::Corrupt {
                    key: format!("index task: {e}"),
                    what: "the index build failed",
                })
            })
    }

    /// Gives the index back after a refresh.
    pub(crate) fn put_index(&self, zone: &ZoneEntry, index: RecordIndex) {
        *zone.index.lock() = Some(index);
    }

    /// Builds the index of `key`'s published version off the refresh path, unless
    /// the one held is of that version.
    pub(crate) fn index_in_background(self: &Arc<Self>, key: &str) {
        let Some(zone) = self.zone(key) else {
            return;
        };
        let Ok(Some(published)) = self.store.published(key) else {
            return;
        };
        if zone
            .index
            .lock()
            .as_ref()
            .is_some_and(|i| i.digest == published.digest)
        {
            return;
        }
        let zones = self.clone();
        let key = key.to_string();
        tokio::task::spawn_blocking(move || {
            let Some(zone) = zones.zone(&key) else {
                return;
            };
            let started = Instant::now();
            match build_index(&zones.store, &key, &zone.name, published.digest) {
                Ok(index) => {
                    let records = index.len();
                    let mut held = zone.index.lock();
                    // A refresh may have published another version meanwhile.
                    let current = zones.store.published(&key).ok().flatten();
                    if current.is_some_and(|p| p.digest == index.digest) {
                        *held = Some(index);
                        tracing::debug!(zone = %key, records, seconds = format!("{:.3}", started.elapsed().as_secs_f64()), "record index built");
                    }
                }
                Err(error) => {
                    tracing::warn!(zone = %key, %error, "cannot index the published version; the next IXFR reads it")
                }
            }
        });
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
                let entry = self.zone(&zone)?;
                Some(VersionState {
                    expired: entry.state.lock().expired,
                    zone,
                    serial: p.serial,
                    digest: p.digest,
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

    fn step(&self, zone: &str) -> Option<VersionStep> {
        match self.store.step(zone) {
            Ok(step) => step.map(|step| VersionStep {
                parent: step.parent,
                removed: step.removed,
                added: step.added,
            }),
            Err(error) => {
                tracing::warn!(%zone, %error, "cannot read the step that made the published version; it is sent whole");
                None
            }
        }
    }
}

/// The index of `key`'s published version, read from the store.
fn build_index(
    store: &Store,
    key: &str,
    name: &Name,
    digest: [u8; 32],
) -> Result<RecordIndex, sextant_store::StoreError> {
    let mut index = RecordIndex::new(name, digest);
    let mut broken = None;
    store.for_each_records(key, &mut |records| {
        for record in &records {
            if let Err(what) = index.add(record) {
                broken = Some(what);
                return false;
            }
        }
        true
    })?;
    match broken {
        Some(what) => Err(sextant_store::StoreError::Corrupt {
            key: key.to_string(),
            what,
        }),
        None => {
            index.seal();
            Ok(index)
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
