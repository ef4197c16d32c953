//! dig and a hickory-proto client query the listener over UDP and TCP, and the
//! authority answers through the gRPC stream.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use sextant_systest::{Lab, dig, query_tcp, query_udp, query_udp_raw};

use crate::EXAMPLE_ZONE;

#[test]
fn answers_over_udp_and_tcp_with_the_aa_flag() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();

    for response in [
        query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap(),
        query_tcp(suite.dns, "www.example.com.", RecordType::A).unwrap(),
    ] {
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert!(response.metadata.authoritative);
        assert_eq!(response.answers.len(), 1);
        assert_eq!(response.answers[0].data.to_string(), "192.0.2.80");
    }

    let cname = query_udp(suite.dns, "FTP.example.com.", RecordType::A).unwrap();
    assert_eq!(
        cname.queries[0].name().to_string(),
        "FTP.example.com.",
        "question case is echoed"
    );
    assert_eq!(cname.answers.len(), 2);

    let nxdomain = query_udp(suite.dns, "nope.example.com.", RecordType::A).unwrap();
    assert_eq!(nxdomain.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(nxdomain.authorities[0].record_type(), RecordType::SOA);

    let nodata = query_tcp(suite.dns, "www.example.com.", RecordType::MX).unwrap();
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());

    let referral = query_udp(suite.dns, "host.sub.example.com.", RecordType::A).unwrap();
    assert!(!referral.metadata.authoritative);
    assert_eq!(referral.authorities[0].record_type(), RecordType::NS);
    assert_eq!(referral.additionals[0].data.to_string(), "192.0.2.53");

    let refused = query_udp(suite.dns, "www.example.net.", RecordType::A).unwrap();
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn dig_sees_the_answer_with_aa_over_udp_and_tcp() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    for transport in ["+notcp", "+tcp"] {
        let output = dig(suite.dns, &["www.example.com", "A", transport]).unwrap();
        assert!(output.contains("status: NOERROR"), "{output}");
        assert!(output.contains("flags: qr aa"), "{output}");
        assert!(
            output.contains("www.example.com.\t3600\tIN\tA\t192.0.2.80"),
            "{output}"
        );
    }
}

#[test]
fn malformed_messages_get_formerr_or_silence() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    // Shorter than a header: nothing can be answered.
    assert_eq!(query_udp_raw(suite.dns, &[1, 2, 3]).unwrap(), None);
    // A readable header with QDCOUNT=2 and no question: FORMERR with our ID.
    let answer = query_udp_raw(suite.dns, &[0xab, 0xcd, 0x01, 0x00, 0, 2, 0, 0, 0, 0, 0, 0])
        .unwrap()
        .unwrap();
    assert_eq!(&answer[..4], &[0xab, 0xcd, 0x81, 0x01]);
    // A response (QR=1) is never answered: no reflection loops.
    assert_eq!(
        query_udp_raw(suite.dns, &[0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
        None
    );
    // The listener is still serving.
    let ok = query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    assert_eq!(ok.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn version_and_identity_are_off_unless_configured() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let off = dig(suite.dns, &["version.bind", "CH", "TXT"]).unwrap();
    assert!(off.contains("status: REFUSED"), "{off}");

    let lab = Lab::new().unwrap();
    let extra = "version = \"Sextant test\"\nidentity = \"ns-test-1\"";
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], extra)
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let version = dig(suite.dns, &["version.bind", "CH", "TXT", "+short"]).unwrap();
    assert_eq!(version.trim(), "\"Sextant test\"");
    let identity = dig(suite.dns, &["id.server", "CH", "TXT", "+short"]).unwrap();
    assert_eq!(identity.trim(), "\"ns-test-1\"");
    let tcp = dig(suite.dns, &["VERSION.BIND", "CH", "TXT", "+tcp"]).unwrap();
    assert!(
        tcp.contains("flags: qr aa") && tcp.contains("VERSION.BIND."),
        "{tcp}"
    );
}
