//! The dnstap query log (<https://dnstap.info>): the listener and the resolver hand
//! each sampled exchange to a [`Tap`] as an [`Event`] (raw messages and times, no
//! encoding); a thread of the tap's own encodes the entries and writes them as
//! Frame Streams to a Unix socket or a file. The query path never waits: the queue
//! is bounded and an event that does not fit is dropped and counted.
//!
//! Frame Streams is written here rather than taken from a crate: the Rust ones are
//! unmaintained, and the protocol is five control frames (`frames`).

pub mod frames;

mod entry;
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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sextant_config::{DnstapConfig, DnstapMessage};

pub use entry::{Event, Exchange, Protocol};

use entry::{Encoder, Selection};
use writer::{DROP_REASONS, Drop, Item, Sink};

/// The `version` field when enabled.
const SOFTWARE: &str = concat!("sextant ", env!("CARGO_PKG_VERSION"));

/// A daemon's dnstap output. Cheap to clone; every clone feeds the same queue.
#[derive(Clone, Debug)]
pub struct Tap {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    queue: SyncSender<Item>,
    selection: Selection,
    /// One exchange in `sample` is logged.
    sample: u32,
    counters: Arc<Counters>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What has become of the entries so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Entries written (or sent to the reader).
    pub written: u64,
    /// Entries lost because the queue was full.
    pub queue_full: u64,
    /// Entries lost while no reader was connected (or the file had failed).
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
        let counters = Arc::new(Counters::new(matches!(sink, Sink::Socket { .. })));
        let (queue, receiver) = mpsc::sync_channel(config.queue.max(1));
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name("dnstap".into())
            .spawn(move || writer::run(sink, receiver, encoder, &thread_counters))?;
        Ok(Tap {
            inner: Arc::new(Inner {
                queue,
                selection,
                sample: config.sample.max(1),
                counters,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Whether this exchange is one of the sampled ones (always, when every one is
    /// logged). Asked before anything is copied for the log.
    pub fn sampled(&self) -> bool {
        self.inner.sample == 1 || rand::random_ratio(1, self.inner.sample)
    }

    /// Whether `exchange` has any entry selected.
    pub fn wants(&self, exchange: Exchange) -> bool {
        self.inner.selection.any_of(exchange)
    }

    /// Queues an event for the writer; never waits. Dropped (and counted) when the
    /// queue is full.
    pub fn log(&self, event: Event) {
        if !self.wants(event.exchange) {
            return;
        }
        match self.inner.queue.try_send(Item::Entry(event)) {
            Ok(()) => {}
            Err(TrySendError::Full(Item::Entry(event)))
            | Err(TrySendError::Disconnected(Item::Entry(event))) => {
                let entries = if event.response.is_some() { 2 } else { 1 };
                self.inner.counters.dropped(Drop::QueueFull, entries);
            }
            Err(_) => {}
        }
    }

    /// Writes what is queued and ends the stream (STOP; a socket's reader answers
    /// FINISH), within `timeout`. Events logged afterwards are dropped.
    pub fn close(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (ack, acked) = mpsc::sync_channel(1);
        let mut item = Item::Stop(ack);
        loop {
            match self.inner.queue.try_send(item) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    item = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return,
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if acked.recv_timeout(left).is_ok()
            && let Ok(mut thread) = self.inner.thread.lock()
            && let Some(thread) = thread.take()
        {
            let _ = thread.join();
        }
    }

    /// The counts so far (also exported as `sextant_dnstap_*` metrics).
    pub fn stats(&self) -> Stats {
        self.inner.counters.stats()
    }
}

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
mod tests;
