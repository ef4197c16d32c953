//! What a signed upstream answer holds: any bytes, their RRsets checked against
//! their signatures with the message's own keys, and their NSEC/NSEC3 records asked
//! to prove the question's non-existence from every zone above it. Must never panic
//! and never work past the per-query budget (signature checks, NSEC3 hashes).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sextant_resolver::fuzzing::exercise_validator(data);
});
