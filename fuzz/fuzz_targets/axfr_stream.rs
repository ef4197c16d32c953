//! The transfer client's stream state machines on whatever a primary sends: the bytes
//! are cut into length-prefixed messages as on TCP; every message that parses is fed
//! to the AXFR receiver and to the IXFR receiver. They must end in an error or an
//! outcome, never panic, and AXFR never reports complete without the closing SOA.
#![no_main]

use hickory_proto::op::Message;
use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;
use sextant_transfer::axfr::{AxfrReceiver, Limits, Progress};
use sextant_transfer::ixfr::{IxfrReceiver, apply};

fuzz_target!(|data: &[u8]| {
    let zone = Name::from_ascii("example.com.").expect("static name");
    let primary = "127.0.0.1:53".parse().expect("static address");
    let id = data.first().map_or(0, |b| u16::from(*b));
    let mut receiver = AxfrReceiver::new(primary, &zone, id, Limits { max_records: 10_000, max_bytes: 1 << 20 });
    let limits = Limits { max_records: 10_000, max_bytes: 1 << 20 };
    let mut ixfr = IxfrReceiver::new(primary, &zone, id, 3, limits);
    let mut ixfr_done = false;
    let mut rest = data.get(1..).unwrap_or_default();
    let mut records = 0u64;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let Some(wire) = rest.get(2..2 + len) else { break };
        rest = &rest[2 + len..];
        let Ok(message) = Message::from_vec(wire) else { break };
        if !ixfr_done {
            match ixfr.accept(&message) {
                Ok(None) => {}
                Ok(Some(sextant_transfer::ixfr::IxfrOutcome::Incremental { soa, diffs })) => {
                    let _ = apply(Vec::new(), &diffs, &soa);
                    ixfr_done = true;
                }
                Ok(Some(_)) | Err(_) => ixfr_done = true,
            }
        }
        match receiver.accept(&message, len, &mut |_| {
            records += 1;
            Ok(())
        }) {
            Ok(Progress::More) => {}
            Ok(Progress::Complete { .. }) => {
                assert!(records >= 2, "complete without SOA and NS");
                break;
            }
            Err(_) => break,
        }
    }
});
