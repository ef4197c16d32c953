//! Secondary zones: the authority follows the versions the transfer daemon publishes
//! and swaps each one in whole. A version that does not build keeps the previous one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{Name, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use parking_lot::Mutex;
use sextant_rpc::{
    Endpoint, KnownVersion, KnownVersions, RecordChunk, VersionEvent, ZoneSetPublisher,
    ZoneVersion, follow_versions,
};
use sextant_zone::LocatedRecord;
use sextant_zone::{Location, Zone, ZoneBuilder};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::Authority;
use crate::signing::Signing;
use crate::zone_snapshot;

/// How long start-up waits for the transfer daemon's snapshot before serving without
/// the secondary zones (they are added as soon as they arrive).
const SNAPSHOT_WAIT: Duration = Duration::from_secs(10);

/// What the authority holds of the secondary zones: the versions it serves, and at
/// start the snapshots read from `authority.state_dir`, waiting for the transfer
/// daemon to confirm that they are still the published versions. Both are what it
/// tells the transfer daemon it knows, so that a restart of either daemon does not
/// send (and build) an unchanged zone again.
#[derive(Default)]
struct Held {
    served: HashMap<String, KnownVersion>,
    waiting: HashMap<String, (Arc<Zone>, KnownVersion)>,
}

/// What applying a version needs.
struct Follower {
    authority: Arc<Authority>,
    publisher: ZoneSetPublisher,
    signing: Option<Arc<Signing>>,
    /// `authority.state_dir`, where snapshots are kept.
    snapshots: Option<PathBuf>,
    held: Arc<Mutex<Held>>,
    /// Per zone, the latest version whose snapshot is due.
    snapshot_latest: Arc<Mutex<HashMap<String, u64>>>,
    /// Held while a snapshot is written: one at a time.
    snapshot_writing: Arc<Mutex<()>>,
    /// Ends the watch; its next connection names what is held now.
    resync: Arc<Notify>,
}

/// Follows `endpoint`; returns once the initial snapshot is in (or the wait ran out),
/// leaving a task that applies every later version. `primaries` are the zones read
/// from files (their snapshots are not secondary versions).
pub(crate) async fn follow(
    endpoint: Endpoint,
    authority: Arc<Authority>,
    publisher: ZoneSetPublisher,
    signing: Option<Arc<Signing>>,
    snapshots: Option<PathBuf>,
    primaries: Vec<Name>,
    shutdown: CancellationToken,
) {
    let held = Arc::new(Mutex::new(Held::default()));
    if let Some(dir) = snapshots.clone() {
        let signing = signing.clone();
        let waiting = tokio::task::spawn_blocking(move || {
            read_snapshots(&dir, &primaries, signing.as_deref())
        })
        .await
        .unwrap_or_default();
        held.lock().waiting = waiting;
    }
    let known: KnownVersions = {
        let held = held.clone();
        Arc::new(move || {
            let held = held.lock();
            held.served
                .values()
                .chain(held.waiting.values().map(|(_, known)| known))
                .cloned()
                .collect()
        })
    };
    let follower = Arc::new(Follower {
        authority,
        publisher,
        signing,
        snapshots,
        held,
        snapshot_latest: Arc::default(),
        snapshot_writing: Arc::default(),
        resync: Arc::new(Notify::new()),
    });
    // Every zone comes as steps when it can, those signed here too: their steps
    // are signed as changes (see `Signing::sign_change`).
    let whole = Vec::new();
    let mut events = follow_versions(
        endpoint.clone(),
        known,
        whole,
        follower.resync.clone(),
        shutdown.clone(),
    );
    let snapshot = tokio::time::timeout(SNAPSHOT_WAIT, async {
        while let Some(event) = events.recv().await {
            match event {
                VersionEvent::Zone(version) => follower.apply(version).await,
                VersionEvent::Gone(zone) => follower.gone(&zone),
                VersionEvent::SnapshotDone => return,
            }
        }
    })
    .await;
    if snapshot.is_err() {
        tracing::warn!(%endpoint, "no snapshot of secondary zones from the transfer daemon yet; serving without them until it arrives");
    } else {
        follower.forget_unconfirmed();
    }
    tokio::spawn(apply_all(events, follower));
}

/// The snapshots of transferred versions in `dir`, except those of `primaries` and
/// of zones signed here (those are signed again from their records).
fn read_snapshots(
    dir: &Path,
    primaries: &[Name],
    signing: Option<&Signing>,
) -> HashMap<String, (Arc<Zone>, KnownVersion)> {
    let mut waiting = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir.join("snapshots")) else {
        return waiting;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(stem) = file.to_str().and_then(|f| f.strip_suffix(".zsnap")) else {
            continue;
        };
        let text = if stem == "root" {
            ".".to_string()
        } else {
            format!("{stem}.")
        };
        let Ok(zone) = Name::from_ascii(&text) else {
            continue;
        };
        if primaries.iter().any(|p| p.to_lowercase() == zone)
            || signing.is_some_and(|s| s.secondary_policy(&zone).is_some())
        {
            continue;
        }
        match zone_snapshot::load_transferred(dir, &zone) {
            Ok(Some((built, serial, digest))) => {
                let known = KnownVersion {
                    zone: text.clone(),
                    serial,
                    digest,
                };
                waiting.insert(text, (Arc::new(built), known));
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(%zone, "secondary zone snapshot not used: {reason}; the transfer daemon sends the zone");
            }
        }
    }
    waiting
}

async fn apply_all(mut events: mpsc::Receiver<VersionEvent>, follower: Arc<Follower>) {
    while let Some(event) = events.recv().await {
        match event {
            VersionEvent::Zone(version) => follower.apply(version).await,
            VersionEvent::Gone(zone) => follower.gone(&zone),
            VersionEvent::SnapshotDone => {}
        }
    }
}

impl Follower {
    /// Builds the version off the async threads (a large zone takes seconds),
    /// signed when the zone has a policy, then swaps it in; an unchanged version
    /// keeps (or, at start, serves) the one held.
    async fn apply(&self, version: ZoneVersion) {
        let ZoneVersion {
            zone,
            serial,
            expired,
            unchanged,
            digest,
            base,
            records,
        } = version;
        if unchanged {
            self.keep(&zone, serial, expired);
            return;
        }
        if let Some(base) = base {
            self.apply_step(zone, serial, expired, digest, base, records)
                .await;
            return;
        }
        let signing = self.signing.clone();
        let signed = signing
            .as_deref()
            .zip(Name::from_ascii(&zone).ok())
            .is_some_and(|(s, name)| s.secondary_policy(&name).is_some());
        let name = zone.clone();
        let signing_for_lock = self.signing.clone().filter(|_| signed);
        let _serving = match &signing_for_lock {
            Some(signing) => Some(signing.exclusive().await),
            None => None,
        };
        // A zone signed here is signed as the change from the version served.
        let served = signed
            .then(|| Name::from_ascii(&zone).ok())
            .flatten()
            .and_then(|origin| {
                self.authority
                    .catalog()
                    .zones()
                    .find(|z| *z.origin() == origin)
                    .cloned()
            });
        let built = tokio::task::spawn_blocking(move || {
            build(&name, serial, records, signing.as_deref(), served)
        })
        .await
        .unwrap_or_else(|e| Err(format!("zone build task failed: {e}")));
        match built {
            Ok(built) => {
                self.served(
                    zone.clone(),
                    serial,
                    expired,
                    digest,
                    Arc::new(built),
                    signed,
                );
                tracing::info!(%zone, serial, expired, "secondary zone version served");
            }
            Err(error) => tracing::error!(
                %zone,
                serial,
                %error,
                "secondary zone version rejected; the previous version stays served"
            ),
        }
    }

    /// Serves `built`, the version of `zone` named `digest`, remembers it as held
    /// and writes its snapshot (off the path to serving).
    fn served(
        &self,
        zone: String,
        serial: u32,
        expired: bool,
        digest: [u8; 32],
        built: Arc<Zone>,
        signed: bool,
    ) {
        self.serve(built.clone(), expired);
        let known = KnownVersion {
            zone: zone.clone(),
            serial,
            digest,
        };
        {
            let mut held = self.held.lock();
            held.waiting.remove(&zone);
            held.served.insert(zone.clone(), known);
        }
        if let (Some(dir), false) = (self.snapshots.clone(), signed) {
            // A burst of IXFRs writes the last version's snapshot, not each.
            let generation = {
                let mut latest = self.snapshot_latest.lock();
                let generation = latest.get(&zone).map_or(1, |g| g + 1);
                latest.insert(zone.clone(), generation);
                generation
            };
            let (latest, writing) = (self.snapshot_latest.clone(), self.snapshot_writing.clone());
            tokio::task::spawn_blocking(move || {
                let _one_at_a_time = writing.lock();
                if latest.lock().get(&zone) != Some(&generation) {
                    return;
                }
                let origin = zone_snapshot::Origin::Transfer { serial, digest };
                match zone_snapshot::save(&dir, &built, &origin, &[]) {
                    Ok(()) => {
                        tracing::info!(zone = %built.origin(), serial, "secondary zone snapshot written")
                    }
                    Err(error) => {
                        tracing::warn!(zone = %built.origin(), %error, "secondary zone snapshot not written; the next start receives the zone again")
                    }
                }
            });
        }
    }

    /// A step (IXFR) applied to the version served, which must be its base: only
    /// the names it touches are built (see `Zone::apply`). Its base no longer
    /// served (a version refused meanwhile) ends the watch, whose next connection
    /// sends the version whole.
    async fn apply_step(
        &self,
        zone: String,
        serial: u32,
        expired: bool,
        digest: [u8; 32],
        base: [u8; 32],
        mut records: mpsc::Receiver<RecordChunk>,
    ) {
        // A zone signed here: no other signing path may change the version
        // served between reading it here and serving the next.
        let signing = self.signing.clone().filter(|s| {
            Name::from_ascii(&zone).is_ok_and(|name| s.secondary_policy(&name).is_some())
        });
        let signing_for_lock = signing.clone();
        let _serving = match &signing_for_lock {
            Some(signing) => Some(signing.exclusive().await),
            None => None,
        };
        // The base: the version served, or at start the snapshot read.
        let (held, current) = {
            let held = self.held.lock();
            match (held.served.get(&zone), held.waiting.get(&zone)) {
                (Some(known), _) => (
                    Some(known.digest),
                    Name::from_ascii(&zone).ok().and_then(|name| {
                        self.authority
                            .catalog()
                            .zones()
                            .find(|z| *z.origin() == name)
                            .cloned()
                    }),
                ),
                (None, Some((snapshot, known))) => (Some(known.digest), Some(snapshot.clone())),
                (None, None) => (None, None),
            }
        };
        let (mut removed, mut added) = (Vec::new(), Vec::new());
        let mut whole = false;
        while let Some(chunk) = records.recv().await {
            match chunk {
                RecordChunk::Removed(list) => removed.extend(list.into_iter().map(Vec::from)),
                RecordChunk::Records(list) => added.extend(list.into_iter().map(Vec::from)),
                RecordChunk::End => {
                    whole = true;
                    break;
                }
            }
        }
        let (Some(current), true, true) = (current, held == Some(base), whole) else {
            tracing::warn!(%zone, serial, "a step arrived for a version not served here (or broke off); asking for the zone whole");
            let mut held = self.held.lock();
            held.served.remove(&zone);
            held.waiting.remove(&zone);
            drop(held);
            self.resync.notify_one();
            return;
        };
        let source = PathBuf::from(format!("IXFR of {zone} to serial {serial}"));
        let started = std::time::Instant::now();
        let signed = signing.is_some();
        let applied = tokio::task::spawn_blocking(move || match signing {
            Some(signing) => sign_step(&signing, &current, &removed, &added, &source),
            None => current
                .apply(&removed, &added, &source)
                .map_err(|e| e.to_string()),
        })
        .await
        .unwrap_or_else(|e| Err(format!("zone build task failed: {e}")));
        match applied {
            Ok((built, warnings)) => {
                for warning in warnings {
                    tracing::warn!(%warning, "secondary zone fix-up");
                }
                let seconds = format!("{:.4}", started.elapsed().as_secs_f64());
                let built = Arc::new(built);
                self.served(zone.clone(), serial, expired, digest, built.clone(), signed);
                tracing::info!(%zone, serial, expired, seconds, "secondary zone step applied and served");
                if let (Some(signing), true) = (self.signing.clone(), signed) {
                    let version = built.clone();
                    let _ = tokio::task::spawn_blocking(move || signing.compact_changes(&version))
                        .await;
                }
                if built.compaction_due() {
                    self.compact(built).await;
                }
            }
            Err(error) => tracing::error!(
                %zone,
                serial,
                %error,
                "secondary zone version rejected; the previous version stays served"
            ),
        }
    }

    /// Gives `served`, a version made of many steps, names of its own (off the
    /// async threads, after it is served), and serves that copy in its place if
    /// it is still the version served.
    async fn compact(&self, served: Arc<Zone>) {
        let started = std::time::Instant::now();
        let copy = served.clone();
        let Ok(compacted) = tokio::task::spawn_blocking(move || copy.compacted()).await else {
            return;
        };
        let origin = served.origin().clone();
        let catalog = self.authority.catalog();
        let still_served = catalog.zones().any(|zone| Arc::ptr_eq(zone, &served));
        if !still_served {
            return;
        }
        let expired = catalog.is_expired(&origin);
        self.serve(Arc::new(compacted), expired);
        tracing::info!(zone = %origin, seconds = format!("{:.3}", started.elapsed().as_secs_f64()), "secondary zone compacted after its steps");
    }

    fn serve(&self, zone: Arc<Zone>, expired: bool) {
        let origin = zone.origin().clone();
        let catalog = self
            .authority
            .catalog()
            .updated([zone], &[(origin, expired)]);
        self.authority.replace(catalog);
        self.publisher.publish(self.authority.zone_names());
    }

    /// The transfer daemon confirms the version held: served from its snapshot at
    /// start, kept after a reconnect (its expiry may have changed).
    fn keep(&self, zone: &str, serial: u32, expired: bool) {
        let waiting = {
            let mut held = self.held.lock();
            let waiting = held.waiting.remove(zone);
            if let Some((_, known)) = &waiting {
                held.served.insert(zone.to_string(), known.clone());
            }
            waiting
        };
        match (waiting, Name::from_ascii(zone)) {
            (Some((built, _)), _) => {
                self.serve(built, expired);
                tracing::info!(%zone, serial, expired, "secondary zone served from its snapshot");
            }
            (None, Ok(origin)) => {
                let catalog = self.authority.catalog().updated([], &[(origin, expired)]);
                self.authority.replace(catalog);
                self.publisher.publish(self.authority.zone_names());
                tracing::debug!(%zone, serial, expired, "secondary zone unchanged");
            }
            (None, Err(_)) => {}
        }
    }

    /// The transfer daemon no longer publishes `zone` (a catalog zone's member
    /// removed): it stops being served here, and its snapshot is deleted.
    fn gone(&self, zone: &str) {
        let held = {
            let mut held = self.held.lock();
            let waiting = held.waiting.remove(zone).is_some();
            held.served.remove(zone).is_some() || waiting
        };
        let Ok(origin) = Name::from_ascii(zone) else {
            return;
        };
        if !held {
            return;
        }
        let catalog = self.authority.catalog().without(&origin);
        self.authority.replace(catalog);
        self.publisher.publish(self.authority.zone_names());
        if let Some(dir) = &self.snapshots {
            let _ = std::fs::remove_file(zone_snapshot::path(dir, &origin));
        }
        tracing::info!(%zone, "secondary zone no longer served: the transfer daemon dropped it");
    }

    /// After the transfer daemon's first snapshot: a snapshot it did not confirm is
    /// of a zone no longer served here or of a replaced version.
    fn forget_unconfirmed(&self) {
        let unconfirmed: Vec<Arc<Zone>> = self
            .held
            .lock()
            .waiting
            .drain()
            .map(|(_, (zone, _))| zone)
            .collect();
        if let Some(dir) = &self.snapshots {
            for zone in unconfirmed {
                tracing::info!(zone = %zone.origin(), "secondary zone snapshot dropped: the transfer daemon does not publish that version");
                let _ = std::fs::remove_file(zone_snapshot::path(dir, zone.origin()));
            }
        }
    }
}

/// A step to a zone signed here: signed as a change when it can be, else the
/// zone with the step applied is signed whole.
fn sign_step(
    signing: &Signing,
    current: &Zone,
    removed: &[Vec<u8>],
    added: &[Vec<u8>],
    source: &std::path::Path,
) -> Result<(Zone, Vec<sextant_zone::ZoneWarning>), String> {
    let decode = |list: &[Vec<u8>]| -> Result<Vec<Record>, String> {
        list.iter()
            .map(|bytes| {
                Record::from_bytes(bytes)
                    .map_err(|e| format!("a record of the step does not decode: {e}"))
            })
            .collect()
    };
    let (removed, added) = (decode(removed)?, decode(added)?);
    let origin = current.origin().clone();
    let policy = signing
        .secondary_policy(&origin)
        .ok_or_else(|| format!("zone {origin} is not signed here"))?
        .to_string();
    if let Some(zone) = signing
        .sign_change(current, &policy, removed.clone(), added.clone())
        .map_err(|e| e.to_string())?
    {
        return Ok((zone, Vec::new()));
    }
    let records = unsigned_after(current, &removed, &added);
    let mut builder = Builder::new(&origin, source);
    signing
        .sign_zone(&origin, &policy, records, &mut |record| builder.add(record))
        .map_err(|e| e.to_string())?;
    Ok((builder.build()?, Vec::new()))
}

/// The unsigned records of `current` (a version signed here) with a step's
/// records taken out and put in; its old SOA stands for the one held, whose
/// serial is the signer's.
fn unsigned_after(current: &Zone, removed: &[Record], added: &[Record]) -> Vec<Record> {
    let key = |record: &Record| {
        (
            record.name.to_lowercase(),
            record.record_type(),
            record.data.to_bytes().unwrap_or_default(),
        )
    };
    let gone: std::collections::HashSet<_> = removed.iter().map(key).collect();
    let soa_replaced = removed
        .iter()
        .any(|r| r.record_type() == hickory_proto::rr::RecordType::SOA);
    let mut records: Vec<Record> = current
        .axfr_records()
        .take(current.record_count())
        .filter(|r| !sextant_signer::is_signer_type(r.record_type()))
        .filter(|r| !(soa_replaced && r.record_type() == hickory_proto::rr::RecordType::SOA))
        .filter(|r| !gone.contains(&key(r)))
        .collect();
    records.extend(added.iter().cloned());
    records
}

/// Takes one record and its place in the version.
type AddRecord<'a> = dyn FnMut(&[u8], usize) -> Result<(), String> + 'a;

/// Builds the version of `zone` as its records arrive, signed when the zone has
/// a policy.
fn build(
    zone: &str,
    serial: u32,
    mut chunks: mpsc::Receiver<RecordChunk>,
    signing: Option<&Signing>,
    served: Option<Arc<Zone>>,
) -> Result<Zone, String> {
    let origin = Name::from_ascii(zone).map_err(|e| format!("bad zone name: {e}"))?;
    let source = PathBuf::from(format!("transfer of {zone} serial {serial}"));
    let mut count = 0usize;
    // Each record as it arrives; an error ends the version.
    let mut each = |add: &mut AddRecord<'_>| loop {
        match chunks.blocking_recv() {
            Some(RecordChunk::Records(records)) => {
                for bytes in &records {
                    count += 1;
                    add(bytes, count)
                        .map_err(|e| format!("record {count} does not decode: {e}"))?;
                }
            }
            Some(RecordChunk::End) => return Ok::<(), String>(()),
            Some(RecordChunk::Removed(_)) => {
                return Err("removed records in a version sent whole".to_string());
            }
            None => return Err("the version's stream broke off before its end".to_string()),
        }
    };
    let policy = signing.and_then(|s| Some((s, s.secondary_policy(&origin)?)));
    let Some((signing, policy)) = policy else {
        // Served as transferred: the records go to the builder as the bytes they
        // are, while the rest of the version is still streaming.
        // A primary sends its zone in canonical order: names are built as their
        // records arrive.
        let mut builder = ZoneBuilder::new(&origin, &source).in_order();
        let mut location = Location {
            file: Arc::new(source),
            line: 0,
        };
        each(&mut |bytes, line| {
            location.line = line;
            builder.add_record(bytes, &location)
        })?;
        return finish(builder);
    };
    let mut records = Vec::new();
    each(&mut |bytes, _| {
        records.push(Record::from_bytes(bytes).map_err(|e| e.to_string())?);
        Ok(())
    })?;
    // Checked as transferred first, so that a broken version is refused for
    // what it is before anything is signed or stored.
    let unsigned: Vec<Record> = records
        .iter()
        .filter(|r| !sextant_signer::is_signer_type(r.record_type()))
        .cloned()
        .collect();
    let unsigned = build_records(&origin, &source, unsigned)?;
    if let Some(current) = served.filter(|zone| zone.is_signed())
        && let Some(zone) = signing
            .sign_version(&current, &unsigned, policy)
            .map_err(|e| e.to_string())?
    {
        return Ok(zone);
    }
    drop(unsigned);
    let mut builder = Builder::new(&origin, &source);
    signing
        .sign_zone(&origin, policy, records, &mut |record| builder.add(record))
        .map_err(|e| e.to_string())?;
    builder.build()
}

/// A zone built from records as they come, each located by its place.
pub(crate) struct Builder {
    builder: ZoneBuilder,
    file: Arc<PathBuf>,
    count: usize,
}

impl Builder {
    pub(crate) fn new(origin: &Name, source: &std::path::Path) -> Self {
        Self {
            builder: ZoneBuilder::new(origin, source),
            file: Arc::new(source.to_path_buf()),
            count: 0,
        }
    }

    pub(crate) fn add(&mut self, record: Record) {
        self.count += 1;
        self.builder.add(LocatedRecord {
            record,
            location: Location {
                file: self.file.clone(),
                line: self.count,
            },
        });
    }

    pub(crate) fn build(self) -> Result<Zone, String> {
        finish(self.builder)
    }
}

fn finish(builder: ZoneBuilder) -> Result<Zone, String> {
    let (zone, warnings) = builder.build().map_err(|e| e.to_string())?;
    for warning in warnings {
        tracing::warn!(%warning, "secondary zone fix-up");
    }
    Ok(zone)
}

/// A zone of `records`, each located by its place in the version.
pub(crate) fn build_records(
    origin: &Name,
    source: &std::path::Path,
    records: Vec<Record>,
) -> Result<Zone, String> {
    let mut builder = Builder::new(origin, source);
    for record in records {
        builder.add(record);
    }
    builder.build()
}
