//! Every byte string the listener can receive: reading the query, and writing the
//! error response it would send, must never panic and must stay in bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_wire::consts::{RCODE_BADVERS, RCODE_FORMERR, RCODE_REFUSED};
use sextant_wire::{parse_query, write_error_response};

fuzz_target!(|packet: &[u8]| {
    let mut out = Vec::new();
    match parse_query(packet) {
        Ok(view) => {
            assert!(view.question_end <= packet.len());
            assert!(view.question.suffixes().count() >= 1);
            for rcode in [u16::from(RCODE_REFUSED), RCODE_BADVERS] {
                write_error_response(&mut out, packet, &view.header, Some(&view), rcode, 1232);
                assert!(out.len() >= 12);
            }
        }
        Err(Some(malformed)) => {
            write_error_response(&mut out, packet, &malformed.header, None, u16::from(RCODE_FORMERR), 1232);
            assert_eq!(out.len(), 12);
        }
        Err(None) => {}
    }
});
