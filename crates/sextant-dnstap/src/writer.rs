//! The writer thread: takes each shard's encoded frames in turn and writes them with
//! one write, to a file or a Frame Streams reader's socket (connected again, with
//! backoff, whenever it goes away). Blocking I/O is fine here: the query path only
//! ever appends to its shard.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::frames::{self, ControlKind};
use crate::shards::SHARDS;
use crate::{Counters, Drop, Shared};

/// How long a reader may take to accept the stream, or to take a batch.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the writer sleeps between rounds of the shards: after one that found
/// entries, and at most while idle.
const POLL_BUSY: Duration = Duration::from_millis(4);
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

/// The thread's loop: until asked to stop (by `Tap::close`, or the last `Tap`
/// dropped).
///
/// The shards are polled, not waited on: a writer asleep until an entry comes must
/// be woken by the query path, a futex wake and a context switch per entry that
/// cost the UDP workers more than the entry itself (measured: 30% of their
/// throughput). Polled, the query path only ever appends; the writer sleeps 4 ms
/// after a round that found entries (a round every millisecond, its wakeup and
/// write cost 1.2% of a saturated core, every 4 ms 0.4%), longer (up to 10 ms)
/// while nothing comes.
pub(crate) fn run(mut sink: Sink, shared: &Shared) {
    let counters = &shared.counters;
    let mut frames = Vec::with_capacity(64 * 1024);
    let mut wait = POLL_BUSY;
    // Connected before the first entry, and again while idle: a reader that comes
    // late gets the entries from then on.
    sink.ready(counters);
    loop {
        // Read before the round: a stop asked during it is seen by the next, so
        // the last round closes every shard after taking what it held.
        let stopping = shared.stop.load(Ordering::Acquire);
        let mut found = 0;
        for index in 0..SHARDS {
            let entries = shared.pending.take(index, &mut frames, stopping);
            if entries == 0 {
                continue;
            }
            found += entries;
            if sink.ready(counters) {
                sink.write(&frames, entries, counters);
            } else {
                counters.dropped(Drop::Unavailable, entries);
            }
        }
        if stopping {
            sink.stop();
            shared.stopped.store(true, Ordering::Release);
            if let Ok(mut ack) = shared.ack.lock()
                && let Some(ack) = ack.take()
            {
                let _ = ack.try_send(());
            }
            return;
        }
        if found == 0 {
            sink.ready(counters);
            wait = (wait * 2).min(POLL_IDLE);
        } else {
            wait = POLL_BUSY;
        }
        std::thread::park_timeout(wait);
    }
}
