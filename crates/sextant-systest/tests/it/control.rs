//! sextantctl against the running suite: status (table and JSON), reload by gRPC with
//! a broken file refused whole, exit codes scripts can rely on.

use hickory_proto::rr::RecordType;
use sextant_systest::{Lab, query_udp, sextantctl};

use crate::EXAMPLE_ZONE;

#[test]
fn status_reload_and_exit_codes() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    let mut suite = lab.start_suite(&config).unwrap();

    let status = sextantctl(&config, &["status", "--json"]).unwrap();
    assert!(status.status.success());
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["daemons"][0]["reachable"], true);
    assert_eq!(json["daemons"][0]["zones"][0]["name"], "example.com.");
    assert_eq!(json["daemons"][0]["zones"][0]["serial"], 2026112101);
    let table =
        String::from_utf8_lossy(&sextantctl(&config, &["status"]).unwrap().stdout).into_owned();
    assert!(
        table.contains("example.com.") && table.contains("2026112101"),
        "{table}"
    );

    let zone = lab.path().join("zones/example.com.zone");
    std::fs::write(
        &zone,
        EXAMPLE_ZONE
            .replace("2026112101", "2026112102")
            .replace("192.0.2.80", "192.0.2.82"),
    )
    .unwrap();
    let reload = sextantctl(&config, &["zone", "reload", "example.com"]).unwrap();
    assert!(
        reload.status.success(),
        "{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    assert!(String::from_utf8_lossy(&reload.stdout).contains("example.com. serial 2026112102"));
    let answer = query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    assert_eq!(
        answer.answers[0].data.to_string(),
        "192.0.2.82",
        "the reload is served at once"
    );

    std::fs::write(
        &zone,
        EXAMPLE_ZONE.replace("ns1     IN A   192.0.2.1", "ns1     IN A   not-an-address"),
    )
    .unwrap();
    let refused = sextantctl(&config, &["zone", "reload", "example.com"]).unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("example.com.zone:4: bad A data"),
        "{stderr}"
    );
    let answer = query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    assert_eq!(
        answer.answers[0].data.to_string(),
        "192.0.2.82",
        "the previous version stays served"
    );

    suite.authority.take().unwrap().kill();
    let down = sextantctl(&config, &["status"]).unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stdout).contains("unreachable"));
}
