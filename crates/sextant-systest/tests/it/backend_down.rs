//! When the authority dies the listener answers SERVFAIL within a bound for what it
//! has not cached (fresh packet-cache entries of the published zone version keep being
//! served), and it reconnects by itself when the authority comes back.

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use sextant_systest::{Lab, eventually, query_udp};

use crate::EXAMPLE_ZONE;

#[test]
fn servfail_while_the_authority_is_down_then_answers_again() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "backend_timeout = \"1s\"")
        .unwrap();
    let mut suite = lab.start_suite(&config).unwrap();
    let ok = query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    assert_eq!(ok.metadata.response_code, ResponseCode::NoError);

    suite.authority.take().unwrap().kill();
    let started = Instant::now();
    let down = query_udp(suite.dns, "www.example.com.", RecordType::AAAA).unwrap();
    assert_eq!(down.metadata.response_code, ResponseCode::ServFail);
    // The bound is the configured backend timeout plus scheduling slack.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "SERVFAIL took {:?}",
        started.elapsed()
    );
    let cached = query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    assert_eq!(
        cached.metadata.response_code,
        ResponseCode::NoError,
        "a fresh cached answer of the published version is still served"
    );

    let _authority = lab.start_authority(&config).unwrap();
    let back = eventually(Duration::from_secs(15), "the listener reconnecting", || {
        query_udp(suite.dns, "www.example.com.", RecordType::AAAA)
            .is_ok_and(|r| r.metadata.response_code == ResponseCode::NoError)
    });
    assert!(back.is_ok(), "{back:?}:\n{}", suite.listener.log_text());
    let response = query_udp(suite.dns, "www.example.com.", RecordType::AAAA).unwrap();
    assert_eq!(response.answers[0].data.to_string(), "2001:db8::80");
}

#[test]
fn the_authority_stops_promptly_while_the_listener_holds_its_streams() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    let mut suite = lab.start_suite(&config).unwrap();
    let ok = query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    assert_eq!(ok.metadata.response_code, ResponseCode::NoError);
    let authority = suite.authority.take().unwrap();
    assert!(
        authority.terminate(Duration::from_secs(5)).unwrap(),
        "the authority did not exit cleanly within 5 s of SIGTERM"
    );
    assert!(
        !lab.path().join("authority.sock").exists(),
        "the socket file is removed"
    );
    assert!(
        !lab.path().join("authority.ready.json").exists(),
        "the ready file is removed"
    );
}
