//! Bytes as the zone crate reads them outside master files: standalone wire records
//! (the transfer daemon's versions and IXFR steps) and compiled snapshots. An error
//! or a zone, never a panic; a zone that builds comes back whole from its own
//! snapshot, builds the same when its records are taken as coming in order, and
//! takes its own records as a step.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;
use sextant_zone::{Location, Zone, ZoneBuilder};

fuzz_target!(|data: &[u8]| {
    let origin = Name::from_ascii("example.com.").expect("static name");
    let _ = Zone::read_snapshot(&origin, Path::new("fuzz.zsnap"), data);

    // Records, each after a 2-byte length.
    let location = Location { file: Arc::new("fuzz".into()), line: 1 };
    let mut builder = ZoneBuilder::new(&origin, Path::new("fuzz"));
    let mut ordered = ZoneBuilder::new(&origin, Path::new("fuzz")).in_order();
    let mut records = Vec::new();
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let _ = builder.add_record(&tail[..len], &location);
        let _ = ordered.add_record(&tail[..len], &location);
        records.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    let built = builder.build();
    let in_order = ordered.build();
    assert_eq!(built.is_ok(), in_order.is_ok());
    if let (Ok((zone, _)), Ok((again, _))) = (&built, &in_order) {
        let text = |zone: &Zone| zone.axfr_records().map(|r| format!("{r:?}")).collect::<Vec<_>>();
        assert_eq!(text(zone), text(again));
        let half = records.len() / 2;
        let _ = zone.apply(&records[..half], &records[half..], Path::new("step"));
    }
    if let Ok((zone, _)) = built {
        let mut snapshot = Vec::new();
        zone.write_snapshot(&mut snapshot).expect("writing to memory");
        let back = Zone::read_snapshot(&origin, Path::new("fuzz.zsnap"), &snapshot)
            .expect("a built zone reads back from its snapshot");
        assert_eq!(back.record_count(), zone.record_count());
        assert_eq!(back.axfr_records().count(), zone.axfr_records().count());
    }
});
