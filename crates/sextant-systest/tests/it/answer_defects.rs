//! Answers a new user found wrong, each checked against what NSD, Knot and BIND do:
//! a DS query at the apex of a zone whose parent is not served is answered by the
//! zone itself (RFC 4035 §3.1.4.1) instead of REFUSED; character-strings written with
//! escapes are served byte for byte (RFC 1035 §5.1), also through AXFR; and an NS
//! answer carries the addresses of name servers that live in the zone, not those of
//! another zone served by the same process.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use sextant_systest::{Lab, Peer, dig, query_udp};

const CHILD: &str = r#"$ORIGIN child.test.
$TTL 3600
@        SOA   ns1.provider.test. hostmaster 7 7200 3600 1209600 300
@        NS    ns1.provider.test.
@        NS    ns2
ns2      A     192.0.2.2
bytes    TXT   "\010\255" "caf\195\169" "a\"b\\c"
info     HINFO "PC\233" "OS"
caa      CAA   0 issue "ca.example\059 x"
"#;

const PROVIDER: &str = r#"$ORIGIN provider.test.
$TTL 3600
@        SOA   ns1 hostmaster 1 7200 3600 1209600 300
@        NS    ns1
ns1      A     192.0.2.1
"#;

#[test]
fn ds_at_an_apex_without_its_parent_is_answered_by_the_zone() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("child.test", CHILD), ("provider.test", PROVIDER)], "")
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let nsd = Peer::nsd(
        &lab.path().join("nsd"),
        &[
            ("child.test", &lab.path().join("zones/child.test.zone")),
            (
                "provider.test",
                &lab.path().join("zones/provider.test.zone"),
            ),
        ],
    )
    .unwrap();
    for server in [suite.dns, nsd.addr] {
        let response = query_udp(server, "child.test.", RecordType::DS).unwrap();
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert!(response.metadata.authoritative);
        assert!(response.answers.is_empty());
        assert_eq!(response.authorities.len(), 1);
        assert_eq!(response.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(response.authorities[0].name.to_string(), "child.test.");
    }
}

#[test]
fn character_strings_are_served_and_transferred_byte_for_byte() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("child.test", CHILD), ("provider.test", PROVIDER)], "")
        .unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[authority]\n",
        "[authority]\nallow_transfer = [\"127.0.0.1/32\"]\n",
    );
    std::fs::write(&config, text).unwrap();
    let suite = lab.start_suite(&config).unwrap();

    let response = query_udp(suite.dns, "bytes.child.test.", RecordType::TXT).unwrap();
    let RData::TXT(txt) = &response.answers[0].data else {
        panic!("not a TXT record: {response:?}");
    };
    let strings: Vec<&[u8]> = txt.txt_data.iter().map(|s| &s[..]).collect();
    assert_eq!(
        strings,
        [&b"\x0a\xff"[..], "café".as_bytes(), b"a\"b\\c"],
        "each \\DDD escape is one byte"
    );
    let hinfo = dig(suite.dns, &["+short", "HINFO", "info.child.test"]).unwrap();
    assert_eq!(hinfo.trim(), "\"PC\\233\" \"OS\"");
    let caa = dig(suite.dns, &["+short", "CAA", "caa.child.test"]).unwrap();
    assert_eq!(caa.trim(), "0 issue \"ca.example; x\"");

    // dig prints a byte it cannot show as \DDD: the AXFR carries the same bytes.
    let axfr = dig(suite.dns, &["AXFR", "child.test"]).unwrap();
    let line = axfr
        .lines()
        .find(|l| l.starts_with("bytes.child.test."))
        .unwrap_or_else(|| panic!("no TXT in the AXFR:\n{axfr}"));
    assert!(
        line.ends_with("\"\\010\\255\" \"caf\\195\\169\" \"a\\\"b\\\\c\""),
        "{line}"
    );
}

#[test]
fn ns_answers_leave_out_addresses_from_other_zones() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("child.test", CHILD), ("provider.test", PROVIDER)], "")
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let response = query_udp(suite.dns, "child.test.", RecordType::NS).unwrap();
    assert_eq!(response.answers.len(), 2);
    let additional: Vec<String> = response
        .additionals
        .iter()
        .filter(|r| r.record_type() != RecordType::OPT)
        .map(|r| r.name.to_string())
        .collect();
    assert_eq!(
        additional,
        ["ns2.child.test."],
        "ns1.provider.test. lives in another zone: NSD, Knot and BIND leave it out"
    );
}
