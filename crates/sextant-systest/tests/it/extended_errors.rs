//! Every error Sextant makes itself says why, as an Extended DNS Error (RFC 8914) in
//! the OPT record, and `dig` shows it (`; EDE: 18 (Prohibited): (...)`): each case
//! checks its code. (An expired secondary zone and a stale resolver answer are
//! checked in the transfer and resolver tests, where those situations are built.)

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use sextant_systest::{Lab, dig, exchange, extended_error, query_udp};

use crate::EXAMPLE_ZONE;

/// The RCODE and EDE code of the answer to `name`/`rtype` over UDP with EDNS.
fn ask(
    server: std::net::SocketAddr,
    name: &str,
    rtype: RecordType,
    rd: bool,
) -> (ResponseCode, Option<u16>) {
    let mut message = sextant_systest::question_with(name, rtype, Some(1232)).unwrap();
    message.metadata.recursion_desired = rd;
    let response = exchange(server, &message, false).unwrap();
    (
        response.metadata.response_code,
        extended_error(&response).map(|(code, _)| code),
    )
}

#[test]
fn refusals_and_failures_of_the_listener_say_why() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "backend_timeout = \"1s\"")
        .unwrap();
    let mut suite = lab.start_suite(&config).unwrap();
    // Outside every zone, no resolver: not authoritative (20).
    assert_eq!(
        ask(suite.dns, "www.example.net.", RecordType::A, true),
        (ResponseCode::Refused, Some(20))
    );
    // AXFR over UDP: prohibited (18).
    assert_eq!(
        ask(suite.dns, "example.com.", RecordType::AXFR, false),
        (ResponseCode::Refused, Some(18))
    );
    // The zone transfer refused by the authority over TCP: prohibited (18).
    let axfr =
        sextant_systest::question_with("example.com.", RecordType::AXFR, Some(1232)).unwrap();
    let refused = exchange(suite.dns, &axfr, true).unwrap();
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    assert_eq!(extended_error(&refused).map(|e| e.0), Some(18));
    // dig shows it.
    let shown = dig(suite.dns, &["+norec", "www.example.net"]).unwrap();
    assert!(shown.contains("; EDE: 20 (Not Authoritative)"), "{shown}");

    // The authority gone: a network error (23) for what is not cached.
    suite.authority.take().unwrap().kill();
    assert_eq!(
        ask(suite.dns, "www.example.com.", RecordType::TXT, false),
        (ResponseCode::ServFail, Some(23))
    );
}

#[test]
fn strangers_and_clients_without_recursion_are_prohibited() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            "allow_query = [\"192.0.2.0/24\"]",
        )
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    assert_eq!(
        ask(suite.dns, "www.example.com.", RecordType::A, false),
        (ResponseCode::Refused, Some(18))
    );
    let shown = dig(suite.dns, &["www.example.com"]).unwrap();
    assert!(shown.contains("; EDE: 18 (Prohibited)"), "{shown}");

    let lab = Lab::new().unwrap();
    let config = lab
        .resolver_config(". 3600 NS a.root.lab.\na.root.lab. 3600 A 127.0.0.1\n", "")
        .unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[listener]\n", "[listener]\nallow_recursion = []\n");
    std::fs::write(&config, text).unwrap();
    let suite = lab.start_resolver_suite(&config).unwrap();
    assert_eq!(
        ask(suite.dns, "www.example.net.", RecordType::A, true),
        (ResponseCode::Refused, Some(18)),
        "recursion not allowed for this client"
    );
}

#[test]
fn a_listener_without_its_zone_set_is_not_ready() {
    let lab = Lab::new().unwrap();
    let config = lab
        .write(
            "sextant.toml",
            "[listener]\nlisten = [\"127.0.0.1:0\"]\nready_file = \"listener.ready.json\"\nauthority = \"unix:nobody-here.sock\"\n",
        )
        .unwrap();
    let (_listener, dns) = lab.start_listener(&config).unwrap();
    let response = query_udp(dns, "www.example.com.", RecordType::A).unwrap();
    assert_eq!(response.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(extended_error(&response).map(|e| e.0), Some(14));
}
