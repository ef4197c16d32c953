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

/// A restart serves the zone from its snapshot; a snapshot of files that changed
/// since, or a damaged one, is never served: the zone file is read instead.
#[test]
fn a_restart_serves_the_snapshot_and_never_a_stale_or_damaged_one() {
    let lab = Lab::new().unwrap();
    let zone = "$TTL 3600\n@ IN SOA ns1 hostmaster 2026113001 7200 3600 1209600 300\n  IN NS ns1\nns1 IN A 192.0.2.1\n$INCLUDE hosts.inc\n";
    let config = lab
        .suite_config(&[("example.com", zone)], "packet_cache_bytes = 0")
        .unwrap();
    lab.write("zones/hosts.inc", "www IN A 192.0.2.80\n")
        .unwrap();
    let state = lab.path().join("state");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[authority]\n",
        &format!("[authority]\nstate_dir = \"{}\"\n", state.display()),
    );
    std::fs::write(&config, text).unwrap();
    let mut suite = lab.start_suite(&config).unwrap();
    assert_eq!(address_of_www(suite.dns), "192.0.2.80");
    let log_count = |suite: &sextant_systest::Suite, text: &str| {
        suite
            .authority
            .as_ref()
            .unwrap()
            .log_text()
            .matches(text)
            .count()
    };
    let written = |suite: &sextant_systest::Suite, times: usize| {
        eventually(Duration::from_secs(10), "writing the snapshot", || {
            log_count(suite, "zone snapshot written") == times
        })
        .unwrap();
    };
    let restart = |suite: &mut sextant_systest::Suite| {
        let old = suite.authority.take().unwrap();
        assert!(old.terminate(Duration::from_secs(10)).unwrap());
        suite.authority = Some(lab.start_authority(&config).unwrap());
    };
    written(&suite, 1);

    restart(&mut suite);
    assert_eq!(log_count(&suite, "zone served from its snapshot"), 1);
    eventually(
        Duration::from_secs(10),
        "answering after the restart",
        || address_of_www(suite.dns) == "192.0.2.80",
    )
    .unwrap();

    // An included file changed while the authority was down.
    lab.write("zones/hosts.inc", "www IN A 192.0.2.81\n")
        .unwrap();
    restart(&mut suite);
    let log = suite.authority.as_ref().unwrap().log_text();
    assert!(log.contains("hosts.inc changed since"), "{log}");
    assert_eq!(log_count(&suite, "zone served from its snapshot"), 1);
    eventually(Duration::from_secs(10), "serving the changed file", || {
        address_of_www(suite.dns) == "192.0.2.81"
    })
    .unwrap();
    written(&suite, 2);

    // Damage: one byte in the middle.
    let snapshot = state.join("snapshots/example.com.zsnap");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&snapshot, bytes).unwrap();
    restart(&mut suite);
    let log = suite.authority.as_ref().unwrap().log_text();
    assert!(log.contains("it is damaged"), "{log}");
    eventually(Duration::from_secs(10), "serving the zone file", || {
        address_of_www(suite.dns) == "192.0.2.81"
    })
    .unwrap();
    written(&suite, 3);

    // Written again whole: the next start uses it.
    restart(&mut suite);
    assert_eq!(log_count(&suite, "zone served from its snapshot"), 2);
    eventually(
        Duration::from_secs(10),
        "answering from the snapshot",
        || address_of_www(suite.dns) == "192.0.2.81",
    )
    .unwrap();
}
