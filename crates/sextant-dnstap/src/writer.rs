//! The writer thread: takes events off the queue in batches, encodes them and writes
//! each batch with one write, to a file or a Frame Streams reader's socket (connected
//! again, with backoff, whenever it goes away). Blocking I/O is fine here: the query
//! path only ever tries to enqueue.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use crate::Counters;
use crate::entry::{Encoder, Event};
use crate::frames::{self, ControlKind};

/// What the queue carries.
#[derive(Debug)]
pub(crate) enum Item {
    /// Held in the queue's slots themselves: no allocation per entry.
    Entry(Event),
    /// Write what is queued, end the stream, acknowledge.
    Stop(SyncSender<()>),
}

/// Events encoded and written at once, at most.
const MAX_BATCH: usize = 1024;
/// How long a reader may take to accept the stream, or to take a batch.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the writer sleeps between polls of the queue: after a batch, and at
/// most while idle.
const POLL_BUSY: Duration = Duration::from_millis(1);
const POLL_IDLE: Duration = Duration::from_millis(10);
/// Reconnection backoff: first wait, and the longest.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Where the frames go.
#[derive(Debug)]
pub(crate) enum Sink {
    File {
        path: PathBuf,
        file: Option<File>,
    },
    Socket {
        path: PathBuf,
        stream: Option<UnixStream>,
        retry_at: Instant,
        backoff: Duration,
    },
}

impl Sink {
    /// A file, created afresh with its START frame: fails now, at the daemon's start.
    pub(crate) fn file(path: PathBuf) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = File::create(&path)?;
        frames::write_control(&mut file, ControlKind::Start, true)?;
        Ok(Sink::File {
            path,
            file: Some(file),
        })
    }

    /// A socket, connected by the writer thread when it starts.
    pub(crate) fn socket(path: PathBuf) -> Self {
        Sink::Socket {
            path,
            stream: None,
            retry_at: Instant::now(),
            backoff: RETRY_FIRST,
        }
    }

    /// Whether frames can be written now (connecting when it is time to try).
    fn ready(&mut self, counters: &Counters) -> bool {
        match self {
            Sink::File { file, .. } => file.is_some(),
            Sink::Socket {
                path,
                stream,
                retry_at,
                backoff,
            } => {
                if stream.is_some() {
                    return true;
                }
                if Instant::now() < *retry_at {
                    return false;
                }
                match connect(path) {
                    Ok(connected) => {
                        tracing::info!(socket = %path.display(), "dnstap reader connected");
                        *stream = Some(connected);
                        *backoff = RETRY_FIRST;
                        counters.connected(true);
                        true
                    }
                    Err(error) => {
                        // Said once per outage, at the first failure.
                        if *backoff == RETRY_FIRST {
                            tracing::warn!(socket = %path.display(), %error, "dnstap reader not reachable; entries are dropped until it is");
                        }
                        *retry_at = Instant::now() + *backoff;
                        *backoff = (*backoff * 2).min(RETRY_MAX);
                        false
                    }
                }
            }
        }
    }

    /// Writes one batch of `frames` data frames; on failure they are counted lost
    /// and the output is dropped (a socket is connected again later).
    fn write(&mut self, batch: &[u8], frames: u64, counters: &Counters) {
        let result = match self {
            Sink::File {
                file: Some(file), ..
            } => file.write_all(batch),
            Sink::Socket {
                stream: Some(stream),
                ..
            } => stream.write_all(batch),
            _ => {
                counters.dropped(Drop::Unavailable, frames);
                return;
            }
        };
        match result {
            Ok(()) => counters.written(frames),
            Err(error) => {
                counters.dropped(Drop::WriteError, frames);
                match self {
                    Sink::File { path, file } => {
                        // A partial frame leaves the file unreadable past it: stop.
                        tracing::error!(file = %path.display(), %error, "dnstap file write failed; no more entries are written to it");
                        *file = None;
                    }
                    Sink::Socket {
                        path,
                        stream,
                        retry_at,
                        backoff,
                    } => {
                        tracing::warn!(socket = %path.display(), %error, "dnstap reader went away; connecting again");
                        *stream = None;
                        *retry_at = Instant::now() + RETRY_FIRST;
                        *backoff = RETRY_FIRST;
                        counters.connected(false);
                    }
                }
            }
        }
    }

    /// Ends the stream: STOP, and for a socket the reader's FINISH (not waited for
    /// past the timeout).
    fn stop(&mut self) {
        match self {
            Sink::File {
                file: Some(file), ..
            } => {
                let _ = frames::write_control(file, ControlKind::Stop, false);
                let _ = file.flush();
            }
            Sink::Socket {
                stream: Some(stream),
                ..
            } => {
                let stopped = frames::write_control(stream, ControlKind::Stop, false);
                if stopped.is_ok() {
                    let _ = frames::read_control(stream);
                }
            }
            _ => {}
        }
    }
}

/// Connects and agrees on dnstap with the reader: READY, its ACCEPT, START.
fn connect(path: &PathBuf) -> io::Result<UnixStream> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
    stream.set_write_timeout(Some(SOCKET_TIMEOUT))?;
    frames::write_control(&mut stream, ControlKind::Ready, true)?;
    let accept = frames::read_control(&mut stream)?;
    if accept.kind != ControlKind::Accept
        || !accept
            .content_types
            .iter()
            .any(|t| t == frames::CONTENT_TYPE)
    {
        return Err(io::Error::other(
            "the reader does not accept protobuf:dnstap.Dnstap",
        ));
    }
    frames::write_control(&mut stream, ControlKind::Start, true)?;
    Ok(stream)
}

/// Why entries were lost: the `reason` label.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Drop {
    /// The queue was full (the writer or the reader is behind).
    QueueFull = 0,
    /// No reader connected, or the file failed earlier.
    Unavailable = 1,
    /// The write of their batch failed.
    WriteError = 2,
}

pub(crate) const DROP_REASONS: [&str; 3] = ["queue_full", "unavailable", "write_error"];

/// The thread's loop: until STOP, or until every sender is gone.
///
/// The queue is polled, not waited on: a writer asleep in `recv` must be woken by
/// every event sent after it emptied the queue, a futex wake and a context switch
/// per entry that cost the UDP workers more than the entry itself (measured: 30%
/// of their throughput). Polled, a sender only ever enqueues; the writer sleeps
/// 1 ms after a batch, longer (up to 10 ms) while nothing comes.
pub(crate) fn run(
    mut sink: Sink,
    queue: Receiver<Item>,
    mut encoder: Encoder,
    counters: &Counters,
) {
    let mut batch = Vec::with_capacity(64 * 1024);
    let mut wait = POLL_BUSY;
    // Connected before the first entry, and again while idle: a reader that comes
    // late gets the entries from then on.
    sink.ready(counters);
    loop {
        let first = match queue.try_recv() {
            Ok(item) => item,
            Err(TryRecvError::Empty) => {
                sink.ready(counters);
                std::thread::sleep(wait);
                wait = (wait * 2).min(POLL_IDLE);
                continue;
            }
            Err(TryRecvError::Disconnected) => {
                sink.stop();
                return;
            }
        };
        let ready = sink.ready(counters);
        let mut frames = 0;
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(item) = next {
            match item {
                Item::Entry(event) if ready => frames += encoder.frames(&event, &mut batch),
                Item::Entry(event) => {
                    // Not encoded: counted as the entries it would have made.
                    counters.dropped(Drop::Unavailable, encoder.count(&event));
                }
                Item::Stop(ack) => {
                    sink.write(&batch, frames, counters);
                    sink.stop();
                    let _ = ack.try_send(());
                    return;
                }
            }
            taken += 1;
            next = if taken < MAX_BATCH {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        if frames > 0 {
            sink.write(&batch, frames, counters);
        }
        batch.clear();
        // After a full batch more is waiting: go on at once.
        if taken < MAX_BATCH {
            std::thread::sleep(POLL_BUSY);
        }
        wait = POLL_BUSY;
    }
}
