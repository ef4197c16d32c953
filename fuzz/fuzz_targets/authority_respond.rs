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

/// A signed zone (NSEC; the signatures are placeholders, the server never checks
/// them) so that DO=1 queries reach the proofs.
const SIGNED: &str = "$TTL 300\n@ SOA ns h 1 2 3 4 5\n@ RRSIG SOA 13 1 300 20300101000000 20200101000000 1 signed. AAAA\n\
@ NS ns\n@ NSEC x.ent NS SOA RRSIG NSEC\nx.ent A 192.0.2.2\nx.ent NSEC ns A RRSIG NSEC\nns A 192.0.2.1\n\
ns NSEC sub A RRSIG NSEC\nsub NS ns.sub\nsub NSEC *.w NS RRSIG NSEC\n*.w TXT w\n*.w NSEC signed. TXT RRSIG NSEC\n";

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let none = |_: &Path| -> std::io::Result<String> { Err(std::io::ErrorKind::NotFound.into()) };
        let zone = |origin: &str, text: &str| {
            let origin = Name::from_ascii(origin).expect("static name");
            let (zone, _) = Zone::from_master_text(&origin, Path::new("z"), text, &none).expect("static zone");
            Arc::new(zone)
        };
        Catalog::new([zone("example.com.", ZONE), zone("signed.", SIGNED)])
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
