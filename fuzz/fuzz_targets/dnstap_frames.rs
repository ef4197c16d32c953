//! The Frame Streams reader of the dnstap writer: what a reader's socket sends back
//! (ACCEPT, FINISH) and what a file holds. Whatever the bytes: an error or frames,
//! never a panic, and never an allocation past the protocol's control frame limit
//! before the bytes are there.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_dnstap::frames;

fuzz_target!(|data: &[u8]| {
    let _ = frames::read_control(&mut &data[..]);
    if let Ok(mut reader) = frames::Reader::new(data) {
        // Each frame consumes at least its 4-byte length: bounded by the input.
        while let Ok(Some(_)) = reader.next_frame() {}
    }
});
