//! What an upstream server sends the resolver: any bytes, classified as an answer to
//! their own question from every zone above it. Must never panic, and nothing
//! outside the zone asked may come out as an answer, a referral or glue.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sextant_resolver::fuzzing::assert_bailiwick_rules(data);
});
