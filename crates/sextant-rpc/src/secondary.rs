//! Published secondary zone versions, from the transfer daemon (which owns the store)
//! to the authority (which serves them). A watcher first receives every published
//! zone, then each zone again whenever its version or state changes.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::endpoint::Dial;
use crate::{Endpoint, RpcError, pb};

/// A published zone version as the transfer daemon knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionState {
    /// Apex, lower case, trailing dot.
    pub zone: String,
    /// The serial of the version.
    pub serial: u32,
    /// What names the version (see `ZoneVersionChunk.digest` in the contract).
    pub digest: [u8; 32],
    /// Past its SOA expire.
    pub expired: bool,
}

/// The step (IXFR) that made a published version from its parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionStep {
    /// The parent version's digest.
    pub parent: [u8; 32],
    /// Records removed, the old SOA first.
    pub removed: Vec<Vec<u8>>,
    /// Records added, the new SOA first.
    pub added: Vec<Vec<u8>>,
}

/// One zone version as the authority receives it: its state at once, its records
/// as they arrive, so that it can be built while it is still streaming.
#[derive(Debug)]
pub struct ZoneVersion {
    /// Apex, lower case, trailing dot.
    pub zone: String,
    /// The serial published.
    pub serial: u32,
    /// Past its SOA expire.
    pub expired: bool,
    /// The watcher's [`KnownVersion`] of this zone is the published one: no
    /// records come, the watcher keeps what it has.
    pub unchanged: bool,
    /// What names the version; the watcher gives it back in [`KnownVersion`].
    pub digest: [u8; 32],
    /// The records carry a step from the version of this digest (which the
    /// watcher held when it was sent): [`RecordChunk::Removed`] and
    /// [`RecordChunk::Records`] are what it removed and added.
    pub base: Option<[u8; 32]>,
    /// The records in wire form, the SOA first, in chunks; the version is whole
    /// only once [`RecordChunk::End`] has come (the channel closing before it means
    /// the stream broke).
    pub records: mpsc::Receiver<RecordChunk>,
}

/// A piece of a version's records.
#[derive(Debug)]
pub enum RecordChunk {
    /// Some records, in order (of a step: records it added).
    Records(Vec<bytes::Bytes>),
    /// Records a step removed.
    Removed(Vec<bytes::Bytes>),
    /// Every record has come.
    End,
}

/// Chunks of a version waiting for the authority to build them: bounded, so a
/// slow build slows the stream instead of holding the whole version twice.
const CHUNKS_IN_FLIGHT: usize = 16;

/// A version the watcher holds already, so that a reconnect or a restart does not
/// send it again while it is still the published one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownVersion {
    /// Apex, lower case, trailing dot.
    pub zone: String,
    /// Its serial.
    pub serial: u32,
    /// The digest the transfer daemon sent with it.
    pub digest: [u8; 32],
}

/// What the watcher says it knows: the versions it need not be sent.
pub type KnownVersions = Arc<dyn Fn() -> Vec<KnownVersion> + Send + Sync>;

/// What the transfer daemon provides to the service: the state of every zone, and
/// the records of a zone's published version (read from the store when sent).
pub trait VersionSource: Send + Sync + 'static {
    /// Every secondary zone's published state.
    fn states(&self) -> Vec<VersionState>;
    /// The records of `zone`'s published version, in wire form and in order,
    /// handed to `each` a chunk at a time (never the whole version at once);
    /// `each` returns false to stop.
    fn records(&self, zone: &str, each: &mut dyn FnMut(Vec<Vec<u8>>) -> bool)
    -> Result<(), String>;
    /// The step that made `zone`'s published version, if an IXFR made it.
    fn step(&self, zone: &str) -> Option<VersionStep>;
}

/// Records per chunk: keeps each gRPC message far below the 4 MiB default limit.
const CHUNK_RECORDS: usize = 1000;

#[derive(Debug)]
pub(crate) struct SecondaryService<S> {
    source: Arc<S>,
    changes: watch::Receiver<u64>,
    shutdown: CancellationToken,
}

impl<S> SecondaryService<S> {
    pub(crate) fn new(
        source: Arc<S>,
        changes: watch::Receiver<u64>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            source,
            changes,
            shutdown,
        }
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::ZoneVersionChunk, Status>> + Send>>;

#[tonic::async_trait]
impl<S: VersionSource> pb::secondary_zones_server::SecondaryZones for SecondaryService<S> {
    type WatchStream = ChunkStream;

    async fn watch(
        &self,
        request: Request<pb::WatchVersionsRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let request = request.into_inner();
        let known: HashMap<String, Vec<u8>> = request
            .known
            .into_iter()
            .map(|k| (k.zone, k.digest.to_vec()))
            .collect();
        let whole: HashSet<String> = request.whole.into_iter().collect();
        let (sender, receiver) = mpsc::channel(8);
        tokio::spawn(stream_versions(
            self.source.clone(),
            self.changes.clone(),
            sender,
            known,
            whole,
            self.shutdown.clone(),
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

async fn stream_versions<S: VersionSource>(
    source: Arc<S>,
    mut changes: watch::Receiver<u64>,
    sender: mpsc::Sender<Result<pb::ZoneVersionChunk, Status>>,
    // The digest of the version the watcher holds, per zone: what it said at
    // connection, then what it was sent.
    mut holds: HashMap<String, Vec<u8>>,
    whole: HashSet<String>,
    shutdown: CancellationToken,
) {
    let mut sent: HashMap<String, VersionState> = HashMap::new();
    let mut snapshot_done = false;
    loop {
        changes.borrow_and_update();
        let states = source.states();
        // Held by the watcher (said at connection, or sent since) but no longer
        // published: it stops serving them.
        let gone: Vec<String> = holds
            .keys()
            .filter(|zone| !states.iter().any(|s| &s.zone == *zone))
            .cloned()
            .collect();
        for zone in gone {
            let chunk = pb::ZoneVersionChunk {
                zone: zone.clone(),
                first: true,
                last: true,
                gone: true,
                ..Default::default()
            };
            if sender.send(Ok(chunk)).await.is_err() {
                return;
            }
            holds.remove(&zone);
            sent.remove(&zone);
        }
        for state in states {
            if sent.get(&state.zone) == Some(&state) {
                continue;
            }
            let held = holds.get(&state.zone);
            let step = match held {
                Some(digest) if digest.as_slice() == state.digest.as_slice() => None,
                Some(digest) if !whole.contains(&state.zone) => source
                    .step(&state.zone)
                    .filter(|step| step.parent.as_slice() == digest.as_slice()),
                _ => None,
            };
            let sent_ok = if held.is_some_and(|d| d.as_slice() == state.digest.as_slice()) {
                send_unchanged(&sender, &state).await
            } else if let Some(step) = step {
                send_step(&sender, &state, step).await
            } else {
                match send_version(&sender, &state, source.clone()).await {
                    Sent::Whole => true,
                    Sent::ReceiverGone => false,
                    Sent::Unreadable(error) => {
                        // The watcher holds part of a version it must not use: the
                        // stream ends, and its next connection starts afresh.
                        tracing::warn!(zone = %state.zone, %error, "cannot read a published version; ending the stream");
                        return;
                    }
                }
            };
            if !sent_ok {
                return;
            }
            holds.insert(state.zone.clone(), state.digest.to_vec());
            sent.insert(state.zone.clone(), state);
        }
        if !snapshot_done {
            snapshot_done = true;
            let marker = pb::ZoneVersionChunk {
                last: true,
                ..Default::default()
            };
            if sender.send(Ok(marker)).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}

/// Sends `step` in chunks: the removed records, then the added ones.
async fn send_step(
    sender: &mpsc::Sender<Result<pb::ZoneVersionChunk, Status>>,
    state: &VersionState,
    step: VersionStep,
) -> bool {
    let removed = step.removed.chunks(CHUNK_RECORDS).map(|c| (c, true));
    let added = step.added.chunks(CHUNK_RECORDS).map(|c| (c, false));
    let pieces: Vec<(&[Vec<u8>], bool)> = removed.chain(added).collect();
    let count = pieces.len().max(1);
    for index in 0..count {
        let (records, is_removed) = pieces.get(index).copied().unwrap_or((&[], false));
        let list = || records.iter().map(|r| r.clone().into()).collect();
        let first = index == 0;
        let message = pb::ZoneVersionChunk {
            zone: state.zone.clone(),
            serial: state.serial,
            expired: state.expired,
            first,
            last: index + 1 == count,
            unchanged: false,
            digest: if first {
                state.digest.to_vec().into()
            } else {
                Default::default()
            },
            base: if first {
                step.parent.to_vec().into()
            } else {
                Default::default()
            },
            removed: if is_removed { list() } else { Vec::new() },
            records: if is_removed { Vec::new() } else { list() },
            gone: false,
        };
        if sender.send(Ok(message)).await.is_err() {
            return false;
        }
    }
    true
}

async fn send_unchanged(
    sender: &mpsc::Sender<Result<pb::ZoneVersionChunk, Status>>,
    state: &VersionState,
) -> bool {
    let message = pb::ZoneVersionChunk {
        zone: state.zone.clone(),
        serial: state.serial,
        expired: state.expired,
        first: true,
        last: true,
        unchanged: true,
        digest: state.digest.to_vec().into(),
        ..Default::default()
    };
    sender.send(Ok(message)).await.is_ok()
}

/// How sending a version went.
enum Sent {
    Whole,
    ReceiverGone,
    /// The store could not give the whole version (after part of it was sent).
    Unreadable(String),
}

/// Streams the version read from `source` chunk by chunk, the last message marked
/// only once every record was read.
async fn send_version<S: VersionSource>(
    sender: &mpsc::Sender<Result<pb::ZoneVersionChunk, Status>>,
    state: &VersionState,
    source: Arc<S>,
) -> Sent {
    let chunk = |first, last, records: Vec<Vec<u8>>| pb::ZoneVersionChunk {
        zone: state.zone.clone(),
        serial: state.serial,
        expired: state.expired,
        first,
        last,
        digest: if first {
            state.digest.to_vec().into()
        } else {
            Default::default()
        },
        records: records.into_iter().map(Into::into).collect(),
        ..Default::default()
    };
    let (pieces, mut received) = mpsc::channel::<Vec<Vec<u8>>>(4);
    let zone = state.zone.clone();
    let reading = tokio::task::spawn_blocking(move || {
        let mut piece = Vec::with_capacity(CHUNK_RECORDS);
        source.records(&zone, &mut |records| {
            for record in records {
                piece.push(record);
                if piece.len() == CHUNK_RECORDS {
                    let full = std::mem::replace(&mut piece, Vec::with_capacity(CHUNK_RECORDS));
                    if pieces.blocking_send(full).is_err() {
                        return false;
                    }
                }
            }
            true
        })?;
        if !piece.is_empty() {
            let _ = pieces.blocking_send(piece);
        }
        Ok::<(), String>(())
    });
    let mut first = true;
    while let Some(piece) = received.recv().await {
        if sender.send(Ok(chunk(first, false, piece))).await.is_err() {
            return Sent::ReceiverGone;
        }
        first = false;
    }
    match reading.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Sent::Unreadable(error),
        Err(error) => return Sent::Unreadable(error.to_string()),
    }
    if sender
        .send(Ok(chunk(first, true, Vec::new())))
        .await
        .is_err()
    {
        return Sent::ReceiverGone;
    }
    Sent::Whole
}

/// The transfer daemon's handle: tell watchers that some zone changed.
#[derive(Clone, Debug)]
pub struct VersionNotifier {
    sender: Arc<watch::Sender<u64>>,
}

impl Default for VersionNotifier {
    fn default() -> Self {
        Self::new()
    }
}

impl VersionNotifier {
    /// A notifier nobody listens to yet.
    pub fn new() -> Self {
        Self {
            sender: Arc::new(watch::channel(0).0),
        }
    }

    /// Tells every watcher that the published versions changed.
    pub fn notify(&self) {
        self.sender.send_modify(|n| *n += 1);
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.sender.subscribe()
    }
}

/// What the authority receives.
#[derive(Debug)]
pub enum VersionEvent {
    /// A zone's newly published version (or its expiry).
    Zone(ZoneVersion),
    /// Every zone published at connection time has been sent.
    SnapshotDone,
    /// A zone no longer published: stop serving it.
    Gone(String),
}

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Follows the transfer daemon's versions, reconnecting by itself; after a reconnect
/// every zone is sent again, those in `known()` (asked at each connection) only as
/// `unchanged` while they are still the published ones.
/// `whole` names the zones the watcher wants whole at every version, never as a
/// step (it signs them itself from the whole zone). `resync` ends the current
/// connection: the next one asks with `known()` again (a watcher that could not
/// apply a step thus gets the version whole).
pub fn follow_versions(
    endpoint: Endpoint,
    known: KnownVersions,
    whole: Vec<String>,
    resync: Arc<Notify>,
    shutdown: CancellationToken,
) -> mpsc::Receiver<VersionEvent> {
    let (sender, receiver) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut backoff = RETRY_MIN;
        loop {
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                outcome = follow_once(&endpoint, &sender, &known, &whole, &mut backoff) => outcome,
                _ = resync.notified() => Ok(()),
            };
            if sender.is_closed() {
                return;
            }
            if let Err(error) = outcome {
                tracing::debug!(%endpoint, %error, "secondary zone watch interrupted");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    });
    receiver
}

async fn follow_once(
    endpoint: &Endpoint,
    sender: &mpsc::Sender<VersionEvent>,
    known: &KnownVersions,
    whole: &[String],
    backoff: &mut Duration,
) -> Result<(), RpcError> {
    let call_error = |status| RpcError::Call {
        endpoint: endpoint.clone(),
        status: Box::new(status),
    };
    let channel = endpoint.connect().await?;
    let mut stream = pb::secondary_zones_client::SecondaryZonesClient::new(channel)
        .watch(pb::WatchVersionsRequest {
            known: known()
                .into_iter()
                .map(|k| pb::KnownVersion {
                    zone: k.zone,
                    serial: k.serial,
                    digest: k.digest.to_vec().into(),
                })
                .collect(),
            whole: whole.to_vec(),
        })
        .await
        .map_err(call_error)?
        .into_inner();
    *backoff = RETRY_MIN;
    // The zone whose records are streaming, and where they go.
    let mut streaming: Option<(String, mpsc::Sender<RecordChunk>)> = None;
    while let Some(chunk) = stream.message().await.map_err(call_error)? {
        if chunk.zone.is_empty() {
            if chunk.last && sender.send(VersionEvent::SnapshotDone).await.is_err() {
                return Ok(());
            }
            continue;
        }
        if chunk.gone {
            streaming = None;
            if sender.send(VersionEvent::Gone(chunk.zone)).await.is_err() {
                return Ok(());
            }
            continue;
        }
        if chunk.first {
            let (records, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
            let digest = |bytes: &[u8]| <[u8; 32]>::try_from(bytes).ok();
            let version = ZoneVersion {
                zone: chunk.zone.clone(),
                serial: chunk.serial,
                expired: chunk.expired,
                unchanged: chunk.unchanged,
                digest: digest(&chunk.digest).unwrap_or_default(),
                base: digest(&chunk.base),
                records: receiver,
            };
            if sender.send(VersionEvent::Zone(version)).await.is_err() {
                return Ok(());
            }
            // A version cut short by the previous one's replacement is never ended:
            // its builder sees the channel close without `End`.
            streaming = Some((chunk.zone.clone(), records));
        }
        let Some((_, records)) = streaming.as_ref().filter(|(zone, _)| *zone == chunk.zone) else {
            return Err(call_error(Status::data_loss(
                "a zone chunk arrived without its first chunk",
            )));
        };
        // A builder that gave up (a bad record) no longer listens: the rest of its
        // version is read and dropped.
        if !chunk.removed.is_empty() {
            let _ = records.send(RecordChunk::Removed(chunk.removed)).await;
        }
        if !chunk.records.is_empty() {
            let _ = records.send(RecordChunk::Records(chunk.records)).await;
        }
        if chunk.last
            && let Some((_, records)) = streaming.take()
        {
            let _ = records.send(RecordChunk::End).await;
        }
    }
    Ok(())
}
