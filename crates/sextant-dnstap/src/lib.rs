//! The dnstap query log (<https://dnstap.info>): the listener and the resolver hand
//! each sampled exchange to a [`Tap`] as an [`Event`] (the messages as borrowed
//! bytes, times, addresses); the tap encodes its entries into the calling thread's
//! buffer (`shards`) and a thread of its own writes the buffers as Frame Streams to
//! a Unix socket or a file. The query path never waits: what is waiting is
//! bounded, and an entry that does not fit is dropped and counted.
//!
//! Frame Streams is written here rather than taken from a crate: the Rust ones are
//! unmaintained, and the protocol is five control frames (`frames`).

pub mod frames;

mod entry;
mod shards;
mod writer;

/// The dnstap schema (`proto/dnstap/dnstap.proto`) as prost compiles it.
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all
)]
pub mod schema {
    include!(concat!(env!("OUT_DIR"), "/dnstap.rs"));
}

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sextant_config::{DnstapConfig, DnstapMessage};

pub use entry::{Event, Exchange, Protocol};

use entry::{Encoder, Selection};
use shards::{Pending, Refused};
use writer::Sink;

/// The `version` field when enabled.
const SOFTWARE: &str = concat!("sextant ", env!("CARGO_PKG_VERSION"));

/// A daemon's dnstap output. Cheap to clone; every clone feeds the same writer.
#[derive(Clone, Debug)]
pub struct Tap {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    selection: Selection,
    /// One exchange in `sample` is logged.
    sample: u32,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What the query path and the writer thread both hold.
#[derive(Debug)]
struct Shared {
    pending: Pending,
    counters: Counters,
    /// Asked of the writer: write what is waiting, end the stream, say so on `ack`.
    stop: AtomicBool,
    ack: Mutex<Option<SyncSender<()>>>,
    /// The writer has ended the stream and returned.
    stopped: AtomicBool,
}

/// What has become of the entries so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Entries written (or sent to the reader).
    pub written: u64,
    /// Entries lost because too many were waiting to be written.
    pub queue_full: u64,
    /// Entries lost while no reader was connected (or the file had failed), or
    /// logged after the stream ended.
    pub unavailable: u64,
    /// Entries lost in a write that failed.
    pub write_error: u64,
}

impl Tap {
    /// Starts the writer thread. `written` is what this daemon writes (the entries
    /// logged unless the config selects fewer). A file that cannot be created is
    /// an error now; a socket without a reader is tried again and again.
    pub fn start(config: &DnstapConfig, written: &[DnstapMessage]) -> std::io::Result<Tap> {
        let sink = match (&config.file, &config.socket) {
            (Some(file), _) => Sink::file(file.clone()).map_err(|error| {
                std::io::Error::new(
                    error.kind(),
                    format!("cannot create dnstap file {}: {error}", file.display()),
                )
            })?,
            (None, Some(socket)) => Sink::socket(socket.clone()),
            (None, None) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "dnstap has neither socket nor file",
                ));
            }
        };
        let selection = Selection::of(&config.selected(written));
        let encoder = Encoder::new(
            config.identity.clone().map(Bytes::from),
            config
                .version
                .then_some(Bytes::from_static(SOFTWARE.as_bytes())),
            selection,
        );
        let shared = Arc::new(Shared {
            pending: Pending::new(&encoder, config.queue),
            counters: Counters::new(matches!(sink, Sink::Socket { .. })),
            stop: AtomicBool::new(false),
            ack: Mutex::new(None),
            stopped: AtomicBool::new(false),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("dnstap".into())
            .spawn(move || writer::run(sink, &thread_shared))?;
        Ok(Tap {
            inner: Arc::new(Inner {
                shared,
                selection,
                sample: config.sample.max(1),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Whether this exchange is one of the sampled ones (always, when every one is
    /// logged). Asked before anything is kept for the log.
    pub fn sampled(&self) -> bool {
        self.inner.sample == 1 || rand::random_ratio(1, self.inner.sample)
    }

    /// Whether `exchange` has any entry selected.
    pub fn wants(&self, exchange: Exchange) -> bool {
        self.inner.selection.any_of(exchange)
    }

    /// Encodes the event's selected entries for the writer; never waits on I/O
    /// (the lock taken is this thread's shard's, contended only by the writer's
    /// swap, and by other threads only past `shards::SHARDS` of them).
    /// Dropped and counted when too many are waiting, or after [`Tap::close`].
    pub fn log(&self, event: Event<'_>) {
        let counters = &self.inner.shared.counters;
        match self.inner.shared.pending.add(&event) {
            Ok(_) => {}
            Err((Refused::Full, entries)) => counters.dropped(Drop::QueueFull, entries),
            Err((Refused::Closed, entries)) => counters.dropped(Drop::Unavailable, entries),
        }
    }

    /// Writes what is waiting and ends the stream (STOP; a socket's reader answers
    /// FINISH), within `timeout`. Entries logged afterwards are dropped.
    pub fn close(&self, timeout: Duration) {
        let shared = &self.inner.shared;
        if shared.stopped.load(Ordering::Acquire) {
            return;
        }
        let deadline = Instant::now() + timeout;
        let (ack, acked) = mpsc::sync_channel(1);
        if let Ok(mut slot) = shared.ack.lock()
            && slot.is_none()
        {
            *slot = Some(ack);
        }
        shared.stop.store(true, Ordering::Release);
        let Ok(mut thread) = self.inner.thread.lock() else {
            return;
        };
        if let Some(handle) = thread.as_ref() {
            handle.thread().unpark();
        }
        // Acknowledged on the channel, or (another close holds the slot, or the
        // writer was past it) seen in `stopped`.
        let left = deadline.saturating_duration_since(Instant::now());
        if acked.recv_timeout(left).is_err() {
            while !shared.stopped.load(Ordering::Acquire) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if shared.stopped.load(Ordering::Acquire)
            && let Some(handle) = thread.take()
        {
            let _ = handle.join();
        }
    }

    /// The counts so far (also exported as `sextant_dnstap_*` metrics).
    pub fn stats(&self) -> Stats {
        self.inner.shared.counters.stats()
    }
}

impl std::ops::Drop for Inner {
    /// The last clone gone: the writer writes what is waiting, ends the stream and
    /// returns on its own (not waited for here).
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Ok(thread) = self.thread.lock()
            && let Some(handle) = thread.as_ref()
        {
            handle.thread().unpark();
        }
    }
}

/// Why entries were lost: the `reason` label.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Drop {
    /// Too many were waiting (the writer or the reader is behind).
    QueueFull = 0,
    /// No reader connected, the file failed earlier, or the stream had ended.
    Unavailable = 1,
    /// The write of their batch failed.
    WriteError = 2,
}

const DROP_REASONS: [&str; 3] = ["queue_full", "unavailable", "write_error"];

/// Counted here for [`Tap::stats`], and exported as metrics.
#[derive(Debug)]
struct Counters {
    written: AtomicU64,
    dropped: [AtomicU64; 3],
    metric_written: metrics::Counter,
    metric_dropped: [metrics::Counter; 3],
    metric_connected: Option<metrics::Gauge>,
}

impl Counters {
    fn new(socket: bool) -> Self {
        let connected = socket.then(|| metrics::gauge!("sextant_dnstap_connected"));
        if let Some(gauge) = &connected {
            gauge.set(0.0);
        }
        Counters {
            written: AtomicU64::new(0),
            dropped: Default::default(),
            metric_written: metrics::counter!("sextant_dnstap_entries_total"),
            metric_dropped: DROP_REASONS.map(
                |reason| metrics::counter!("sextant_dnstap_dropped_total", "reason" => reason),
            ),
            metric_connected: connected,
        }
    }

    fn written(&self, entries: u64) {
        self.written.fetch_add(entries, Ordering::Relaxed);
        self.metric_written.increment(entries);
    }

    fn dropped(&self, why: Drop, entries: u64) {
        if entries == 0 {
            return;
        }
        self.dropped[why as usize].fetch_add(entries, Ordering::Relaxed);
        self.metric_dropped[why as usize].increment(entries);
    }

    fn connected(&self, up: bool) {
        if let Some(gauge) = &self.metric_connected {
            gauge.set(if up { 1.0 } else { 0.0 });
        }
    }

    fn stats(&self) -> Stats {
        let dropped = |why: Drop| self.dropped[why as usize].load(Ordering::Relaxed);
        Stats {
            written: self.written.load(Ordering::Relaxed),
            queue_full: dropped(Drop::QueueFull),
            unavailable: dropped(Drop::Unavailable),
            write_error: dropped(Drop::WriteError),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Read;
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::Path;
    use std::sync::mpsc::Receiver;
    use std::time::{Duration, SystemTime};

    use prost::Message as _;

    use super::*;
    use crate::frames::ControlKind;
    use crate::schema::message::Type as EntryType;

    fn config(file: Option<&Path>, socket: Option<&Path>) -> DnstapConfig {
        DnstapConfig {
            socket: socket.map(Path::to_path_buf),
            file: file.map(Path::to_path_buf),
            identity: Some("test".into()),
            version: true,
            messages: Vec::new(),
            sample: 1,
            queue: 64,
        }
    }

    /// An exchange whose query is twelve bytes of `id` (and its answer twenty).
    fn log(tap: &Tap, id: u8, answered: bool) {
        let query = [id; 12];
        let response = [id; 20];
        tap.log(Event {
            exchange: Exchange::Auth,
            protocol: Protocol::Udp,
            initiator: "127.0.0.1:40000".parse().unwrap(),
            responder: Some("127.0.0.1:53".parse().unwrap()),
            query_time: SystemTime::now(),
            query: &query,
            zone: None,
            response: answered.then(|| (SystemTime::now(), &response[..])),
        });
    }

    fn decode(frame: &[u8]) -> schema::Message {
        let entry = schema::Dnstap::decode(frame).unwrap();
        assert_eq!(entry.identity.as_deref(), Some(&b"test"[..]));
        assert_eq!(entry.version.as_deref(), Some(SOFTWARE.as_bytes()));
        entry.message.unwrap()
    }

    #[test]
    fn a_file_holds_every_entry_between_start_and_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dnstap.fstrm");
        let tap = Tap::start(&config(Some(&path), None), &DnstapMessage::LISTENER).unwrap();
        log(&tap, 1, true);
        log(&tap, 2, false);
        log(&tap, 3, true);
        tap.close(Duration::from_secs(5));
        // Logged after the end: dropped, not written past STOP.
        log(&tap, 4, true);
        assert_eq!(tap.stats().written, 5);

        let mut reader = frames::Reader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let mut types = Vec::new();
        while let Some(frame) = reader.next_frame().unwrap() {
            let message = decode(&frame);
            types.push((message.r#type, message.query_message.map(|q| q[0])));
        }
        let query = EntryType::AuthQuery as i32;
        let response = EntryType::AuthResponse as i32;
        assert_eq!(
            types,
            vec![
                (query, Some(1)),
                (response, None),
                (query, Some(2)),
                (query, Some(3)),
                (response, None),
            ]
        );
    }

    #[test]
    fn a_file_that_cannot_be_created_fails_at_start_and_its_directory_is_made() {
        // Its directory would have to be made inside a plain file.
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        let path = plain.join("x.fstrm");
        let error = Tap::start(&config(Some(&path), None), &DnstapMessage::LISTENER).unwrap_err();
        assert!(error.to_string().contains("plain/x.fstrm"), "{error}");

        // A missing directory is made, as for ready files.
        let nested = dir.path().join("logs/dnstap.fstrm");
        let tap = Tap::start(&config(Some(&nested), None), &DnstapMessage::LISTENER).unwrap();
        tap.close(Duration::from_secs(5));
        assert!(nested.exists());
    }

    /// A Frame Streams reader as fstrm_capture is: the handshake, then frames until
    /// STOP (answered FINISH) or, when `hang_up_after` is set, until that many frames.
    fn serve(stream: &mut UnixStream, hang_up_after: Option<usize>) -> Vec<Vec<u8>> {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let ready = frames::read_control(stream).unwrap();
        assert_eq!(ready.kind, ControlKind::Ready);
        assert_eq!(ready.content_types, vec![frames::CONTENT_TYPE.to_vec()]);
        frames::write_control(stream, ControlKind::Accept, true).unwrap();
        assert_eq!(
            frames::read_control(stream).unwrap().kind,
            ControlKind::Start
        );
        let mut received = Vec::new();
        loop {
            if hang_up_after == Some(received.len()) {
                return received;
            }
            let mut len = [0u8; 4];
            stream.read_exact(&mut len).unwrap();
            let len = u32::from_be_bytes(len) as usize;
            if len == 0 {
                // The escape: the rest of a control frame, which must be STOP.
                let mut rest = [0u8; 8];
                stream.read_exact(&mut rest).unwrap();
                assert_eq!(u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]), 3);
                frames::write_control(stream, ControlKind::Finish, false).unwrap();
                return received;
            }
            let mut frame = vec![0u8; len];
            stream.read_exact(&mut frame).unwrap();
            received.push(frame);
        }
    }

    fn reader(listener: UnixListener, connections: Vec<Option<usize>>) -> Receiver<Vec<Vec<u8>>> {
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for hang_up_after in connections {
                let (mut stream, _) = listener.accept().unwrap();
                let _ = sender.send(serve(&mut stream, hang_up_after));
            }
        });
        receiver
    }

    #[test]
    fn a_socket_reader_gets_the_handshake_the_entries_and_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dnstap.sock");
        let received = reader(UnixListener::bind(&path).unwrap(), vec![None]);
        let tap = Tap::start(&config(None, Some(&path)), &DnstapMessage::LISTENER).unwrap();
        for id in 0..10 {
            log(&tap, id, true);
        }
        tap.close(Duration::from_secs(10));
        let frames = received.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(frames.len(), 20);
        assert_eq!(decode(&frames[19]).r#type, EntryType::AuthResponse as i32);
        assert_eq!(tap.stats().written, 20);
    }

    #[test]
    fn a_reader_that_goes_away_is_connected_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dnstap.sock");
        // The first connection hangs up after one entry; the second stays.
        let received = reader(UnixListener::bind(&path).unwrap(), vec![Some(1), None]);
        let tap = Tap::start(&config(None, Some(&path)), &DnstapMessage::LISTENER).unwrap();
        log(&tap, 0, false);
        let first = received.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(first.len(), 1);
        // Entries keep coming; those sent into the dead connection are lost, the
        // writer notices and connects again. Bounded: 500 rounds of 10 ms.
        for id in 1..=200u8 {
            log(&tap, id, false);
            std::thread::sleep(Duration::from_millis(10));
            let stats = tap.stats();
            if stats.written >= 2 + 10 && stats.write_error + stats.unavailable > 0 {
                break;
            }
        }
        tap.close(Duration::from_secs(10));
        let second = received.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(!second.is_empty(), "nothing arrived after reconnecting");
        let stats = tap.stats();
        assert!(stats.write_error + stats.unavailable > 0, "{stats:?}");
    }

    #[test]
    fn every_entry_is_written_or_counted_and_logging_never_waits() {
        let dir = tempfile::tempdir().unwrap();
        // Nobody listens: the writer drops what it takes, the queue (4) overflows.
        let path = dir.path().join("nobody.sock");
        let mut config = config(None, Some(&path));
        config.queue = 4;
        let tap = Tap::start(&config, &DnstapMessage::LISTENER).unwrap();
        for id in 0..250 {
            log(&tap, id, true);
        }
        tap.close(Duration::from_secs(10));
        let stats = tap.stats();
        assert_eq!(stats.written, 0);
        assert_eq!(stats.queue_full + stats.unavailable, 500, "{stats:?}");
    }

    #[test]
    fn sampling_and_selection_decide_before_anything_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(Some(&dir.path().join("f")), None);
        config.messages = vec![DnstapMessage::ClientQuery];
        config.sample = 1_000_000;
        let tap = Tap::start(&config, &DnstapMessage::LISTENER).unwrap();
        assert!(tap.wants(Exchange::Client));
        assert!(!tap.wants(Exchange::Auth));
        let sampled = (0..1000).filter(|_| tap.sampled()).count();
        assert!(sampled < 1000);
        tap.close(Duration::from_secs(5));
    }
}
