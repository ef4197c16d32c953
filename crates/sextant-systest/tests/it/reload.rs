//! SIGHUP reloads zones atomically; the listener's packet cache never serves an answer
//! from the zone version that was replaced; a broken file keeps the old version.

use std::process::Command;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use sextant_systest::{Lab, eventually, query_udp};

use crate::EXAMPLE_ZONE;

fn address_of_www(dns: std::net::SocketAddr) -> String {
    let response = query_udp(dns, "www.example.com.", RecordType::A).unwrap();
    response
        .answers
        .first()
        .map(|r| r.data.to_string())
        .unwrap_or_default()
}

#[test]
fn a_reload_replaces_cached_answers_and_a_broken_file_keeps_the_old_zone() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let authority_pid = suite.authority.as_ref().unwrap().pid().to_string();
    // Twice: the second answer comes from the packet cache.
    assert_eq!(address_of_www(suite.dns), "192.0.2.80");
    assert_eq!(address_of_www(suite.dns), "192.0.2.80");

    let zone = lab.path().join("zones/example.com.zone");
    let changed = EXAMPLE_ZONE
        .replace("2026112101", "2026112102")
        .replace("192.0.2.80", "192.0.2.81");
    std::fs::write(&zone, changed).unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &authority_pid])
            .status()
            .unwrap()
            .success()
    );
    eventually(Duration::from_secs(10), "serving the reloaded zone", || {
        address_of_www(suite.dns) == "192.0.2.81"
    })
    .unwrap();

    // A broken file: the previous version stays served, whole.
    std::fs::write(&zone, "this is not a zone file\n").unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &authority_pid])
            .status()
            .unwrap()
            .success()
    );
    let authority = suite.authority.as_ref().unwrap();
    eventually(
        Duration::from_secs(10),
        "reporting the failed reload",
        || authority.log_text().contains("reload failed"),
    )
    .unwrap();
    assert_eq!(address_of_www(suite.dns), "192.0.2.81");
}
