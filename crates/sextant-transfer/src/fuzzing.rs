//! Entry points for the fuzz targets in fuzz/ (feature `fuzzing`) and for the replay
//! of their corpora in the unit tests: the receivers' state machines stay private.

use hickory_proto::op::Message;
use hickory_proto::rr::Name;

use crate::axfr::{AxfrReceiver, Limits, Progress};
use crate::index::RecordIndex;
use crate::ixfr::{IxfrOutcome, IxfrReceiver};

/// Feeds whatever a primary might send — `data` is an ID byte, then length-prefixed
/// messages as on TCP — to the AXFR receiver and to the IXFR receiver. Each must end
/// in an error or an outcome; AXFR never reports complete without the closing SOA
/// (panics otherwise). Returns whether the AXFR completed.
pub fn axfr_stream(data: &[u8]) -> bool {
    let Ok(zone) = Name::from_ascii("example.com.") else {
        return false;
    };
    let primary = std::net::SocketAddr::from(([127, 0, 0, 1], 53));
    let id = data.first().map_or(0, |b| u16::from(*b));
    let limits = Limits {
        max_records: 10_000,
        max_bytes: 1 << 20,
    };
    let mut receiver = AxfrReceiver::new(primary, &zone, id, limits);
    let mut ixfr = IxfrReceiver::new(primary, &zone, id, 3, limits);
    let mut ixfr_done = false;
    let mut rest = data.get(1..).unwrap_or_default();
    let mut records = 0u64;
    while let [high, low, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*high, *low]));
        let Some(wire) = tail.get(..len) else {
            break;
        };
        rest = &tail[len..];
        let Ok(message) = Message::from_vec(wire) else {
            break;
        };
        if !ixfr_done {
            match ixfr.accept(&message) {
                Ok(None) => {}
                Ok(Some(IxfrOutcome::Incremental { soa, diffs })) => {
                    let _ = RecordIndex::new(&zone, [0; 32]).check(Vec::new(), &diffs, &soa);
                    ixfr_done = true;
                }
                Ok(Some(_)) | Err(_) => ixfr_done = true,
            }
        }
        let mut count = |_: &hickory_proto::rr::Record| {
            records += 1;
            Ok(())
        };
        match receiver.accept(&message, len, &mut count) {
            Ok(Progress::More) => {}
            Ok(Progress::Complete { .. }) => {
                assert!(records >= 2, "complete without SOA and NS");
                return true;
            }
            Err(_) => break,
        }
    }
    false
}
