//! Any byte string reaching the authority from the listener: an answer (possibly
//! empty), never a panic.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;
use sextant_rpc::{Query, Transport};
use sextant_zone::{Catalog, Zone};

const ZONE: &str = "$TTL 300\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\nwww A 192.0.2.2\n\
alias CNAME www\n*.wild TXT w\nsub NS ns.sub\nns.sub A 192.0.2.3\ndn DNAME other.\nmx MX 10 www\n";

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let origin = Name::from_ascii("example.com.").expect("static name");
        let none = |_: &Path| -> std::io::Result<String> { Err(std::io::ErrorKind::NotFound.into()) };
        let (zone, _) = Zone::from_master_text(&origin, Path::new("z"), ZONE, &none).expect("static zone");
        Catalog::new([Arc::new(zone)])
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&size, packet)) = data.split_first() else { return };
    let query = Query {
        wire: Bytes::copy_from_slice(packet),
        client: "127.0.0.1:5353".parse().expect("static address"),
        transport: if size & 1 == 0 { Transport::Udp } else { Transport::Tcp },
        max_response_size: 512 + u16::from(size) * 16,
    };
    let answer = sextant_authority::respond(catalog(), &query, 1232, None);
    if let Some(wire) = answer.wire() {
        assert!(wire.len() >= 12);
        assert!(wire.len() <= usize::from(query.max_response_size.max(512)));
    }
});
