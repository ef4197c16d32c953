//! Where entries wait for the writer thread: buffers of encoded data frames, one
//! per query thread (a thread takes a shard at its first entry), each behind a
//! lock that only the writer's swap, every few milliseconds, ever contends.
//!
//! The query path encodes its entries straight into its shard: no allocation, no
//! copy of the messages into an event of their own, no queue slot, no wakeup per
//! entry. (Handing events to the writer through a channel cost the UDP workers a
//! fifth of their throughput at one-core saturation; encoding in place costs less
//! than the channel did, and the writer is left with nothing but the writes.)

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::entry::{Encoder, Event, Selection};

/// Shards per tap: more than the query threads a listener or resolver runs on the
/// machines it is meant for (a UDP worker per core and listen address, the runtime's
/// threads); past that, threads share shards and their locks, which they then
/// may wait on. A shard no thread took costs a lock and an empty buffer.
pub(crate) const SHARDS: usize = 32;

/// A buffer's capacity kept after its frames were written; a burst of large
/// (TCP) messages does not hold its memory for good.
const KEPT_CAPACITY: usize = 1 << 20;
/// Bytes a shard may hold whatever the entry bound: entries of 64 KB answers
/// would otherwise let `limit` of them take a gigabyte. At a swap every few
/// milliseconds this is a gigabyte a second of entries per thread.
const MAX_SHARD_BYTES: usize = 4 << 20;

/// What waits to be written, with its bound.
#[derive(Debug)]
pub(crate) struct Pending {
    shards: Vec<Mutex<Shard>>,
    selection: Selection,
    /// Entries in every shard: at most `limit`.
    waiting: AtomicUsize,
    limit: usize,
}

#[derive(Debug)]
struct Shard {
    encoder: Encoder,
    /// Whole data frames, ready to be written as they are.
    frames: Vec<u8>,
    entries: u64,
    /// The stream has ended (STOP written): nothing more is taken.
    closed: bool,
}

/// Why `add` did not take an event's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `limit` entries are already waiting.
    Full,
    /// The stream has ended.
    Closed,
}

impl Pending {
    pub(crate) fn new(encoder: &Encoder, limit: usize) -> Self {
        Pending {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        encoder: encoder.clone(),
                        frames: Vec::new(),
                        entries: 0,
                        closed: false,
                    })
                })
                .collect(),
            selection: encoder.selection,
            waiting: AtomicUsize::new(0),
            limit: limit.max(1),
        }
    }

    /// Encodes the selected entries of `event` into this thread's shard: how many,
    /// or why none were taken and how many were lost.
    pub(crate) fn add(&self, event: &Event<'_>) -> Result<u64, (Refused, u64)> {
        let entries = self.selection.count(event);
        if entries == 0 {
            return Ok(0);
        }
        let count = entries as usize;
        // Reserved before encoding, given back when refused: the bound holds
        // however many threads add at once.
        if self.waiting.fetch_add(count, Ordering::Relaxed) + count > self.limit {
            self.waiting.fetch_sub(count, Ordering::Relaxed);
            return Err((Refused::Full, entries));
        }
        let mut shard = lock(&self.shards[this_threads_shard()]);
        let refused = if shard.closed {
            Some(Refused::Closed)
        } else if shard.frames.len() >= MAX_SHARD_BYTES {
            Some(Refused::Full)
        } else {
            None
        };
        if let Some(refused) = refused {
            drop(shard);
            self.waiting.fetch_sub(count, Ordering::Relaxed);
            return Err((refused, entries));
        }
        let Shard {
            encoder, frames, ..
        } = &mut *shard;
        // The same selection counted and encodes: `entries` frames are appended.
        encoder.frames(event, frames);
        shard.entries += entries;
        Ok(entries)
    }

    /// Moves shard `index`'s frames into `into` (emptied first): how many entries.
    /// With `close`, the shard takes nothing more afterwards.
    pub(crate) fn take(&self, index: usize, into: &mut Vec<u8>, close: bool) -> u64 {
        into.clear();
        if into.capacity() > KEPT_CAPACITY {
            *into = Vec::new();
        }
        let entries = {
            let mut shard = lock(&self.shards[index]);
            shard.closed |= close;
            std::mem::swap(&mut shard.frames, into);
            std::mem::take(&mut shard.entries)
        };
        self.waiting.fetch_sub(entries as usize, Ordering::Relaxed);
        entries
    }
}

/// The lock of a shard: a panic elsewhere while it was held leaves whole frames
/// behind (a frame is appended by one call), so the data is still good.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The shard of the calling thread: given out in turn at a thread's first entry.
fn this_threads_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
    }
    SHARD.with(|shard| match shard.get() {
        Some(index) => index,
        None => {
            let index = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            shard.set(Some(index));
            index
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::SystemTime;

    use sextant_config::DnstapMessage;

    use super::*;
    use crate::entry::{Exchange, Protocol, Selection};

    /// An exchange of one entry, or of two when answered.
    fn event(query: &[u8], answered: bool) -> Event<'_> {
        Event {
            exchange: Exchange::Auth,
            protocol: Protocol::Udp,
            initiator: "127.0.0.1:40000".parse().unwrap(),
            responder: None,
            query_time: SystemTime::now(),
            query,
            zone: None,
            response: answered.then(|| (SystemTime::now(), &b"answer"[..])),
        }
    }

    fn pending(limit: usize) -> Pending {
        let encoder = Encoder::new(None, None, Selection::of(&DnstapMessage::LISTENER));
        Pending::new(&encoder, limit)
    }

    fn take_all(pending: &Pending, close: bool) -> (u64, Vec<u8>) {
        let mut all = Vec::new();
        let mut entries = 0;
        let mut into = Vec::new();
        for index in 0..SHARDS {
            entries += pending.take(index, &mut into, close);
            all.extend_from_slice(&into);
        }
        (entries, all)
    }

    #[test]
    fn the_bound_counts_entries_waiting_and_frees_them_when_taken() {
        let pending = pending(3);
        assert_eq!(pending.add(&event(b"a", false)), Ok(1));
        assert_eq!(pending.add(&event(b"b", false)), Ok(1));
        assert_eq!(pending.add(&event(b"c", true)), Err((Refused::Full, 2)));
        assert_eq!(pending.add(&event(b"c", false)), Ok(1));
        assert_eq!(pending.add(&event(b"d", false)), Err((Refused::Full, 1)));
        let (entries, frames) = take_all(&pending, false);
        assert_eq!(entries, 3);
        assert!(!frames.is_empty());
        assert_eq!(pending.add(&event(b"e", true)), Ok(2));
        assert_eq!(take_all(&pending, false).0, 2);
    }

    #[test]
    fn a_shard_holds_a_bounded_number_of_bytes_whatever_the_entry_bound() {
        let pending = pending(usize::MAX);
        let large = vec![0u8; 65_535];
        let mut taken = 0;
        while pending.add(&event(&large, false)).is_ok() {
            taken += 1;
            assert!(taken <= MAX_SHARD_BYTES / large.len() + 1);
        }
        assert_eq!(pending.add(&event(&large, false)), Err((Refused::Full, 1)));
        assert_eq!(take_all(&pending, false).0, taken as u64);
        assert_eq!(pending.add(&event(&large, false)), Ok(1));
    }

    #[test]
    fn threads_share_nothing_but_the_bound_and_a_closed_shard_takes_nothing() {
        let pending = pending(1000);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        pending.add(&event(b"query", true)).unwrap();
                    }
                });
            }
        });
        let (entries, frames) = take_all(&pending, true);
        assert_eq!(entries, 800);
        // Every frame whole: a length, then that many bytes, to the end.
        let mut rest = frames.as_slice();
        let mut count = 0;
        while let Some((len, tail)) = rest.split_first_chunk::<4>() {
            rest = &tail[u32::from_be_bytes(*len) as usize..];
            count += 1;
        }
        assert_eq!(count, 800);
        assert_eq!(
            pending.add(&event(b"late", true)),
            Err((Refused::Closed, 2))
        );
        assert_eq!(pending.waiting.load(Ordering::Relaxed), 0);
    }
}
