//! Bytes as the zone crate reads them outside master files: standalone wire records
//! (the transfer daemon's versions) and compiled snapshots. An error or a zone,
//! never a panic; a zone that builds comes back whole from its own snapshot.
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
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let _ = builder.add_record(&tail[..len], &location);
        rest = &tail[len..];
    }
    if let Ok((zone, _)) = builder.build() {
        let mut snapshot = Vec::new();
        zone.write_snapshot(&mut snapshot).expect("writing to memory");
        let back = Zone::read_snapshot(&origin, Path::new("fuzz.zsnap"), &snapshot)
            .expect("a built zone reads back from its snapshot");
        assert_eq!(back.record_count(), zone.record_count());
        assert_eq!(back.axfr_records().count(), zone.axfr_records().count());
    }
});
