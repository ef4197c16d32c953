//! Every byte string the listener can receive: reading the query, and writing the
//! error response it would send, must never panic and must stay in bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_wire::{BadQuery, Rcode, parse_query, write_error_response};

fuzz_target!(|packet: &[u8]| {
    let mut out = Vec::new();
    match parse_query(packet) {
        Ok(view) => {
            assert!(view.question_end <= packet.len());
            assert!(view.question.suffixes().count() >= 1);
            for rcode in [Rcode::REFUSED, Rcode::BADVERS] {
                write_error_response(&mut out, packet, &view.header, Some(&view), rcode, None, 1232);
                assert!(out.len() >= 12);
            }
        }
        Err(BadQuery::Malformed(malformed)) => {
            write_error_response(&mut out, packet, &malformed.header, None, Rcode::FORMERR, None, 1232);
            assert_eq!(out.len(), 12);
        }
        Err(BadQuery::Silent) => {}
    }
});
