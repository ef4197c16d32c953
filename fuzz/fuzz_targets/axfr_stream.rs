//! The transfer client's stream state machines on whatever a primary sends: the bytes
//! are cut into length-prefixed messages as on TCP; every message that parses is fed
//! to the AXFR receiver and to the IXFR receiver. They must end in an error or an
//! outcome, never panic, and AXFR never reports complete without the closing SOA.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sextant_transfer::fuzzing::axfr_stream(data);
});
