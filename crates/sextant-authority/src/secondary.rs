//! Secondary zones: the authority follows the versions the transfer daemon publishes
//! and swaps each one in whole. A version that does not build keeps the previous one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{Name, Record};
use hickory_proto::serialize::binary::BinDecodable;
use sextant_rpc::{Endpoint, VersionEvent, ZoneSetPublisher, ZoneVersion, follow_versions};
use sextant_zone::LocatedRecord;
use sextant_zone::{Location, Zone, ZoneBuilder};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Authority;
use crate::signing::Signing;

/// How long start-up waits for the transfer daemon's snapshot before serving without
/// the secondary zones (they are added as soon as they arrive).
const SNAPSHOT_WAIT: Duration = Duration::from_secs(10);

/// Follows `endpoint`; returns once the initial snapshot is in (or the wait ran out),
/// leaving a task that applies every later version.
pub(crate) async fn follow(
    endpoint: Endpoint,
    authority: Arc<Authority>,
    publisher: ZoneSetPublisher,
    signing: Option<Arc<Signing>>,
    shutdown: CancellationToken,
) {
    let mut events = follow_versions(endpoint.clone(), shutdown.clone());
    let snapshot = tokio::time::timeout(SNAPSHOT_WAIT, async {
        while let Some(event) = events.recv().await {
            match event {
                VersionEvent::Zone(version) => {
                    apply(&authority, &publisher, signing.clone(), version).await;
                }
                VersionEvent::SnapshotDone => return,
            }
        }
    })
    .await;
    if snapshot.is_err() {
        tracing::warn!(%endpoint, "no snapshot of secondary zones from the transfer daemon yet; serving without them until it arrives");
    }
    tokio::spawn(apply_all(events, authority, publisher, signing));
}

async fn apply_all(
    mut events: mpsc::Receiver<VersionEvent>,
    authority: Arc<Authority>,
    publisher: ZoneSetPublisher,
    signing: Option<Arc<Signing>>,
) {
    while let Some(event) = events.recv().await {
        if let VersionEvent::Zone(version) = event {
            apply(&authority, &publisher, signing.clone(), version).await;
        }
    }
}

/// Builds the version off the async threads (a large zone takes seconds), signed
/// when the zone has a policy, then swaps it in.
async fn apply(
    authority: &Authority,
    publisher: &ZoneSetPublisher,
    signing: Option<Arc<Signing>>,
    version: ZoneVersion,
) {
    let (zone, serial, expired) = (version.zone.clone(), version.serial, version.expired);
    let built = tokio::task::spawn_blocking(move || build(version, signing.as_deref()))
        .await
        .unwrap_or_else(|e| Err(format!("zone build task failed: {e}")));
    match built {
        Ok(built) => {
            let origin = built.origin().clone();
            let catalog = authority
                .catalog()
                .updated([Arc::new(built)], &[(origin, expired)]);
            authority.replace(catalog);
            let generation = publisher.publish(authority.zone_names());
            tracing::info!(%zone, serial, expired, generation, "secondary zone version served");
        }
        Err(error) => tracing::error!(
            %zone,
            serial,
            %error,
            "secondary zone version rejected; the previous version stays served"
        ),
    }
}

fn build(version: ZoneVersion, signing: Option<&Signing>) -> Result<Zone, String> {
    let origin = Name::from_ascii(&version.zone).map_err(|e| format!("bad zone name: {e}"))?;
    let source = PathBuf::from(format!(
        "transfer of {} serial {}",
        version.zone, version.serial
    ));
    let policy = signing.and_then(|s| Some((s, s.secondary_policy(&origin)?)));
    let Some((signing, policy)) = policy else {
        // Served as transferred: the records go to the builder as the bytes they
        // are, never through a decoded form.
        let mut builder = ZoneBuilder::new(&origin, &source);
        builder.reserve(version.records.len());
        let mut location = Location {
            file: Arc::new(source),
            line: 0,
        };
        for (index, bytes) in version.records.iter().enumerate() {
            location.line = index + 1;
            builder
                .add_record(bytes, &location)
                .map_err(|e| format!("record {} does not decode: {e}", index + 1))?;
        }
        return finish(builder);
    };
    let mut records = Vec::with_capacity(version.records.len());
    for (index, bytes) in version.records.iter().enumerate() {
        records.push(
            Record::from_bytes(bytes)
                .map_err(|e| format!("record {} does not decode: {e}", index + 1))?,
        );
    }
    // Checked as transferred first, so that a broken version is refused for
    // what it is before anything is signed or stored.
    let unsigned: Vec<Record> = records
        .iter()
        .filter(|r| !sextant_signer::is_signer_type(r.record_type()))
        .cloned()
        .collect();
    build_records(&origin, &source, unsigned)?;
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
