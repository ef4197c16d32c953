//! An interrupted or wrong transfer must never be served. A scriptable primary
//! fails in every way one can (dropped connection, stall, garbage, wrong or missing
//! closing SOA, older serial); after each failure the previous
//! version is still served whole, and once the primary behaves the new version
//! appears whole. Also: expiry, kill -9 of the transfer daemon, and NSD as primary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use sextant_systest::{
    FakePrimary, Fault, IxfrMode, Lab, Peer, Suite, notify, query_udp, sextantctl,
};

use crate::EXAMPLE_ZONE;

const ZONE: &str = "example.org.";

fn rcode(dns: SocketAddr, name: &str) -> ResponseCode {
    query_udp(dns, name, RecordType::A)
        .map_or(ResponseCode::Unknown(0), |r| r.metadata.response_code)
}

fn serial(dns: SocketAddr) -> Option<u32> {
    let response = query_udp(dns, ZONE, RecordType::SOA).ok()?;
    response.answers.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
}

/// Polls `condition` every 50 ms for at most `limit`.
/// [`sextant_systest::eventually`], with the transfer daemon's log on failure.
fn eventually(limit: Duration, what: &str, suite: &Suite, condition: impl FnMut() -> bool) {
    if let Err(error) = sextant_systest::eventually(limit, what, condition) {
        let log = suite
            .transfer
            .as_ref()
            .map(|t| t.log_text())
            .unwrap_or_default();
        panic!("{error}; transfer log:\n{log}");
    }
}

/// [`eventually`] until `condition` holds for ten polls in a row: after the
/// authority restarts, each UDP worker of the listener reconnects its own lanes on
/// its own backoff (at most 2 s), and until every one has, a query that lands on
/// one still reconnecting is answered SERVFAIL.
fn eventually_steady(
    limit: Duration,
    what: &str,
    suite: &Suite,
    mut condition: impl FnMut() -> bool,
) {
    let mut streak = 0;
    eventually(limit, what, suite, || {
        streak = if condition() { streak + 1 } else { 0 };
        streak >= 10
    });
}

fn failures(suite: &Suite) -> usize {
    suite
        .transfer
        .as_ref()
        .map_or(0, |t| t.log_text().matches("refresh failed").count())
}

/// The old version, whole: its own name resolves, the new version's does not.
/// The version with `present` (a `vNonly` host) is served, not the one with `gone`.
fn assert_names(dns: SocketAddr, present: &str, gone: &str) {
    let name = |host: &str| format!("{host}.example.org.");
    assert_eq!(
        rcode(dns, &name(present)),
        ResponseCode::NoError,
        "{present}"
    );
    assert_eq!(rcode(dns, &name(gone)), ResponseCode::NXDomain, "{gone}");
}

fn assert_old_version_served(dns: SocketAddr, fault: &str) {
    assert_eq!(serial(dns), Some(1), "{fault}: the serial moved");
    assert_eq!(
        rcode(dns, "v1only.example.org."),
        ResponseCode::NoError,
        "{fault}: the old version lost a name"
    );
    assert_eq!(
        rcode(dns, "v2only.example.org."),
        ResponseCode::NXDomain,
        "{fault}: part of the new version is served"
    );
}

fn start(lab: &Lab, primary: &FakePrimary) -> Suite {
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    lab.add_transfer(&config, &[(ZONE, primary.addr)]).unwrap();
    let suite = lab.start_suite(&config).unwrap();
    eventually(
        Duration::from_secs(15),
        "the first transfer",
        &suite,
        || serial(suite.dns) == Some(1),
    );
    suite
}

/// A suite following `primary` with transfers of at most `timeout` (long enough for
/// a kill to land while the daemon waits on a stalled primary), serving serial 1.
fn start_for_kills(lab: &Lab, primary: &FakePrimary, timeout: &str) -> (PathBuf, Suite) {
    // The faults are in the AXFR stream: no IXFR, so every refresh is an AXFR.
    primary.set_ixfr_mode(IxfrMode::Refuse);
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "packet_cache_bytes = 0")
        .unwrap();
    lab.add_transfer(&config, &[(ZONE, primary.addr)]).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "transfer_timeout = \"1s\"",
        &format!("transfer_timeout = \"{timeout}\""),
    );
    std::fs::write(&config, text).unwrap();
    let suite = lab.start_suite(&config).unwrap();
    eventually(
        Duration::from_secs(15),
        "the first transfer",
        &suite,
        || serial(suite.dns) == Some(1),
    );
    (config, suite)
}

/// With the transfer daemon stopped: its store has no orphaned version and holds
/// the published version 1 whole.
fn assert_store_holds_only_version_1(lab: &Lab) {
    let (store, cleanup) = sextant_store::Store::open(&lab.path().join("transfer-state")).unwrap();
    assert!(
        cleanup.orphan_versions.is_empty(),
        "garbage left: {cleanup:?}"
    );
    let published = store.published(ZONE).unwrap().unwrap();
    assert_eq!(published.serial, 1);
    assert_eq!(
        store.records(ZONE).unwrap().unwrap().len() as u64,
        published.records
    );
}

/// Sends NOTIFY once a second until `done`, as a primary resends it until it is
/// answered (RFC 1996 §4.1): one reaching the listener while it reconnects to a
/// restarted transfer daemon is answered SERVFAIL.
fn notify_until(suite: &Suite, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let mut polls = 0;
    eventually(limit, what, suite, || {
        if polls % 20 == 0 {
            let _ = notify(suite.dns, ZONE);
        }
        polls += 1;
        done()
    });
}

#[test]
fn every_failed_transfer_keeps_the_previous_version_whole() {
    let lab = Lab::new().unwrap();
    let primary = FakePrimary::start(ZONE).unwrap();
    // These faults are in the AXFR stream: no IXFR, so every refresh is an AXFR.
    primary.set_ixfr_mode(IxfrMode::Refuse);
    let suite = start(&lab, &primary);
    assert_old_version_served(suite.dns, "initial");

    let faults = [
        ("connection closed after 3 records", Fault::CloseAfter(3)),
        ("stall after 3 records", Fault::StallAfter(3)),
        ("garbage bytes", Fault::Garbage),
        (
            "closing SOA differs from the opening one",
            Fault::ClosingSoaDiffers,
        ),
        ("no closing SOA", Fault::NoClosingSoa),
    ];
    let mut hosts = vec!["www".to_string(), "v2only".to_string()];
    // Enough names that the faulty transfers span several messages.
    hosts.extend((0..60).map(|i| format!("h{i}")));
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    for (what, fault) in faults {
        primary.set_version(2, &hosts);
        primary.set_fault(fault);
        let before = failures(&suite);
        let answer = notify(suite.dns, ZONE).unwrap();
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NoError,
            "{what}: NOTIFY not accepted"
        );
        eventually(Duration::from_secs(10), what, &suite, || {
            failures(&suite) > before
        });
        assert_old_version_served(suite.dns, what);
    }

    // A primary whose serial went backwards is not followed.
    primary.set_fault(Fault::None);
    primary.set_version(0, &hosts);
    let asked = primary.soa_queries();
    notify(suite.dns, ZONE).unwrap();
    eventually(Duration::from_secs(10), "the SOA check", &suite, || {
        primary.soa_queries() > asked
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_old_version_served(suite.dns, "serial lower than ours");

    // The primary recovers: the new version appears, whole.
    primary.set_version(2, &hosts);
    notify(suite.dns, ZONE).unwrap();
    eventually(
        Duration::from_secs(10),
        "the recovered transfer",
        &suite,
        || serial(suite.dns) == Some(2),
    );
    assert_eq!(
        rcode(suite.dns, "v2only.example.org."),
        ResponseCode::NoError
    );
    assert_eq!(rcode(suite.dns, "h59.example.org."), ResponseCode::NoError);
    assert_eq!(
        rcode(suite.dns, "v1only.example.org."),
        ResponseCode::NXDomain
    );

    // The operator's view, then a forced retransfer of an unchanged serial.
    let config = lab.path().join("sextant.toml");
    let status = sextantctl(&config, &["status", "--json"]).unwrap();
    assert!(status.status.success());
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let transfer = &json["daemons"][1];
    assert_eq!(transfer["daemon"], "sextant-transfer");
    assert_eq!(transfer["zones"][0]["serial"], 2);
    assert_eq!(transfer["zones"][0]["last_failure"], "");
    assert_eq!(transfer["zones"][0]["expired"], false);
    let before = primary.transfers();
    let retransfer = sextantctl(&config, &["zone", "retransfer", ZONE]).unwrap();
    assert!(
        retransfer.status.success(),
        "{}",
        String::from_utf8_lossy(&retransfer.stderr)
    );
    eventually(
        Duration::from_secs(10),
        "the forced transfer",
        &suite,
        || primary.transfers() > before,
    );
}

#[test]
fn ixfr_applies_differences_and_falls_back_to_axfr() {
    let lab = Lab::new().unwrap();
    let primary = FakePrimary::start(ZONE).unwrap();
    let suite = start(&lab, &primary);
    assert_eq!(
        (primary.transfers(), primary.ixfrs()),
        (1, 0),
        "the first version comes by AXFR"
    );

    // Differences: only what changed travels, the rest of the zone is kept.
    primary.set_version(2, &["www", "v2only"]);
    notify(suite.dns, ZONE).unwrap();
    eventually(Duration::from_secs(10), "the IXFR", &suite, || {
        serial(suite.dns) == Some(2)
    });
    assert_eq!(
        (primary.transfers(), primary.ixfrs()),
        (1, 1),
        "served by IXFR, no AXFR"
    );
    assert_eq!(
        rcode(suite.dns, "v2only.example.org."),
        ResponseCode::NoError
    );
    assert_eq!(rcode(suite.dns, "www.example.org."), ResponseCode::NoError);
    assert_eq!(
        rcode(suite.dns, "v1only.example.org."),
        ResponseCode::NXDomain
    );
    assert!(
        suite
            .transfer
            .as_ref()
            .unwrap()
            .log_text()
            .contains("zone updated by IXFR")
    );
    // The authority applied the step to the version it served: no whole rebuild.
    let applied = |suite: &Suite| {
        suite
            .authority
            .as_ref()
            .unwrap()
            .log_text()
            .matches("secondary zone step applied and served")
            .count()
    };
    assert_eq!(applied(&suite), 1);

    // A second step on top of the first: the store composes them, the authority
    // applies it to the changed version.
    primary.set_version(3, &["www", "v3only"]);
    notify(suite.dns, ZONE).unwrap();
    eventually(Duration::from_secs(10), "the second IXFR", &suite, || {
        serial(suite.dns) == Some(3)
    });
    assert_eq!((primary.transfers(), primary.ixfrs()), (1, 2));
    assert_eq!(applied(&suite), 2);
    assert_names(suite.dns, "v3only", "v2only");

    // Each way IXFR cannot be used ends in a whole AXFR of the new version.
    for (serial_now, mode) in [
        (4, IxfrMode::AxfrStyle),
        (5, IxfrMode::Inconsistent),
        (6, IxfrMode::Refuse),
    ] {
        let name = format!("v{serial_now}only");
        primary.set_ixfr_mode(mode);
        primary.set_version(serial_now, &["www", &name]);
        let axfrs = primary.transfers();
        notify(suite.dns, ZONE).unwrap();
        eventually(
            Duration::from_secs(10),
            &format!("{mode:?} then AXFR"),
            &suite,
            || serial(suite.dns) == Some(serial_now),
        );
        assert_eq!(
            primary.transfers(),
            axfrs + 1,
            "{mode:?}: one AXFR after the IXFR"
        );
        assert_eq!(
            rcode(suite.dns, &format!("{name}.example.org.")),
            ResponseCode::NoError,
            "{mode:?}"
        );
        let previous = format!("v{}only.example.org.", serial_now - 1);
        assert_eq!(
            rcode(suite.dns, &previous),
            ResponseCode::NXDomain,
            "{mode:?}: an old name survived"
        );
    }
}

#[test]
fn a_failed_refresh_is_visible_in_status() {
    let lab = Lab::new().unwrap();
    let primary = FakePrimary::start(ZONE).unwrap();
    // These faults are in the AXFR stream: no IXFR, so every refresh is an AXFR.
    primary.set_ixfr_mode(IxfrMode::Refuse);
    let suite = start(&lab, &primary);
    primary.set_version(2, &["www", "v2only"]);
    primary.set_fault(Fault::CloseAfter(2));
    let before = failures(&suite);
    notify(suite.dns, ZONE).unwrap();
    eventually(
        Duration::from_secs(10),
        "the failed transfer",
        &suite,
        || failures(&suite) > before,
    );
    let status = sextantctl(&lab.path().join("sextant.toml"), &["status"]).unwrap();
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(table.contains("SECONDARY ZONE"), "{table}");
    assert!(
        table.contains("closed the connection before the closing SOA"),
        "{table}"
    );
}

#[test]
fn notify_from_a_stranger_or_for_another_zone_is_refused() {
    let lab = Lab::new().unwrap();
    let primary = FakePrimary::start(ZONE).unwrap();
    let suite = start(&lab, &primary);
    let other = notify(suite.dns, "example.net.").unwrap();
    assert_eq!(other.metadata.response_code, ResponseCode::NotAuth);
    // The sender here is 127.0.0.1, the primary's address: accepted. A different
    // loopback address is not on the allow list.
    let socket = std::net::UdpSocket::bind("127.0.0.2:0");
    if let Ok(socket) = socket {
        let mut message = hickory_proto::op::Message::new(
            9,
            hickory_proto::op::MessageType::Query,
            hickory_proto::op::OpCode::Notify,
        );
        message.add_query(hickory_proto::op::Query::query(
            hickory_proto::rr::Name::from_ascii(ZONE).unwrap(),
            RecordType::SOA,
        ));
        socket
            .send_to(&message.to_vec().unwrap(), suite.dns)
            .unwrap();
        let answer = sextant_systest::recv_within(&socket, Duration::from_secs(5))
            .unwrap()
            .unwrap();
        let response = hickory_proto::op::Message::from_vec(&answer).unwrap();
        assert_eq!(response.metadata.response_code, ResponseCode::Refused);
    }
}

#[test]
fn an_unreachable_primary_expires_the_zone_then_it_comes_back() {
    let lab = Lab::new().unwrap();
    let primary = FakePrimary::start(ZONE).unwrap();
    primary.set_timers(1, 1, 3);
    let suite = start(&lab, &primary);
    primary.set_down(true);
    eventually(Duration::from_secs(20), "expiry", &suite, || {
        rcode(suite.dns, "www.example.org.") == ResponseCode::ServFail
    });
    // It says why: no reachable authority (RFC 8914, code 22).
    let expired = query_udp(suite.dns, "www.example.org.", RecordType::A).unwrap();
    assert_eq!(
        sextant_systest::extended_error(&expired).map(|e| e.0),
        Some(22)
    );
    primary.set_down(false);
    eventually(Duration::from_secs(20), "recovery", &suite, || {
        rcode(suite.dns, "www.example.org.") == ResponseCode::NoError
    });
}

#[test]
fn kill_9_of_the_transfer_daemon_keeps_the_published_version() {
    let lab = Lab::new().unwrap();
    let primary = FakePrimary::start(ZONE).unwrap();
    let (config, mut suite) = start_for_kills(&lab, &primary, "30s");

    // A version the daemon is stuck receiving when it is killed, with thousands of
    // records already staged and flushed to disk (sled flushes every 500 ms).
    let hosts: Vec<String> = (0..3000).map(|i| format!("big{i}")).collect();
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    primary.set_version(2, &hosts);
    primary.set_fault(Fault::StallAfter(2500));
    let transfers = primary.transfers();
    notify(suite.dns, ZONE).unwrap();
    eventually(
        Duration::from_secs(10),
        "the transfer to start",
        &suite,
        || primary.transfers() > transfers,
    );
    std::thread::sleep(Duration::from_millis(1500));
    suite.transfer.take().unwrap().kill();

    primary.set_fault(Fault::None);
    primary.set_version(1, &["www", "v1only"]);
    let restarted = lab.start_transfer(&config).unwrap();
    // Whether the partial version had reached the disk depends on sled's background
    // flush (every 500 ms); when it had, start-up must have deleted it. Either way the
    // checks below must hold.
    let collected = restarted
        .log_text()
        .contains("deleted a zone version left unpublished by a crash");
    eprintln!("partial version found and deleted at restart: {collected}");
    assert_old_version_served(suite.dns, "after kill -9");

    // Stopped cleanly, the store holds exactly the published version, whole.
    assert!(restarted.terminate(Duration::from_secs(5)).unwrap());
    assert_store_holds_only_version_1(&lab);
}

/// The TSIG key the interop primaries require for transfers.
const KEY: (&str, &str) = (
    "sextant-test-key",
    "c2V4dGFudC10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGVm",
);

/// A real primary serves the zone, allows transfers only with TSIG key `KEY`, and
/// NOTIFYs our listener; we transfer it with the key, then a change on the primary
/// (SIGHUP) reaches us by NOTIFY and a new transfer.
fn primary_interop(
    peer: &str,
    serves_ixfr: bool,
    start_primary: impl Fn(&std::path::Path, &std::path::Path, SocketAddr) -> anyhow::Result<Peer>,
) {
    let lab = Lab::new().unwrap();
    let zone_file = lab
        .write(
            &format!("{peer}/example.org.zone"),
            "$ORIGIN example.org.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.1\nv1only A 192.0.2.11\n",
        )
        .unwrap();
    // The primary must know where to send NOTIFY before it starts: reserve the
    // listener's port now.
    let port = sextant_systest::free_port().unwrap();
    let listener: SocketAddr = ([127, 0, 0, 1], port).into();
    let primary = start_primary(&lab.path().join(peer), &zone_file, listener).unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("127.0.0.1:0", &listener.to_string());
    std::fs::write(&config, text).unwrap();
    lab.add_transfer_with_key(&config, &[(ZONE, primary.addr)], Some(KEY))
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    eventually(
        Duration::from_secs(15),
        &format!("the TSIG-signed AXFR from {peer}"),
        &suite,
        || serial(suite.dns) == Some(1),
    );
    assert_eq!(
        rcode(suite.dns, "v1only.example.org."),
        ResponseCode::NoError
    );

    std::fs::write(
        &zone_file,
        "$ORIGIN example.org.\n$TTL 300\n@ SOA ns1 hostmaster 2 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.1\nv2only A 192.0.2.12\n",
    )
    .unwrap();
    primary.reload().unwrap();
    // Refresh is an hour: only the primary's NOTIFY can bring serial 2 this fast.
    eventually(
        Duration::from_secs(20),
        &format!("{peer}'s NOTIFY and the new transfer"),
        &suite,
        || serial(suite.dns) == Some(2),
    );
    assert_names(suite.dns, "v2only", "v1only");
    let log = suite
        .transfer
        .as_ref()
        .map(|t| t.log_text())
        .unwrap_or_default();
    assert_eq!(
        log.contains("zone updated by IXFR"),
        serves_ixfr,
        "{peer}: IXFR used?\n{log}"
    );
}

#[test]
fn nsd_primary_axfr_and_notify() {
    // NSD 4.6 keeps no IXFR history here: it answers IXFR with the whole zone.
    primary_interop("nsd", false, |dir, file, notify_to| {
        Peer::nsd_keyed(
            dir,
            &[("example.org", file)],
            &format!(
                "  provide-xfr: 127.0.0.1 {}\n  notify: {}@{} NOKEY\n",
                KEY.0,
                notify_to.ip(),
                notify_to.port()
            ),
            KEY,
        )
    });
}

#[test]
fn knot_primary_ixfr_and_notify() {
    primary_interop("knot", true, |dir, file, notify_to| {
        Peer::knot_primary(dir, "example.org.", file, notify_to, Some(KEY))
    });
}

#[test]
fn bind_primary_ixfr_and_notify() {
    primary_interop("bind", true, |dir, file, notify_to| {
        Peer::bind_primary(dir, "example.org.", file, notify_to, Some(KEY))
    });
}

#[test]
fn unsigned_or_badly_signed_answers_are_rejected_when_a_key_is_configured() {
    // KEY's secret, decoded.
    let key = sextant_tsig::Key::new(
        &hickory_proto::rr::Name::from_ascii(KEY.0).unwrap(),
        "hmac-sha256",
        b"sextant-test-key-0123456789abcdef".to_vec(),
    )
    .unwrap();
    let primary = FakePrimary::start(ZONE).unwrap();
    primary.set_tsig(Some(key.clone()));
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    lab.add_transfer_with_key(&config, &[(ZONE, primary.addr)], Some(KEY))
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    eventually(Duration::from_secs(10), "the signed AXFR", &suite, || {
        serial(suite.dns) == Some(1)
    });

    primary.set_version(2, &["www", "v2only"]);
    for (what, signer, fault) in [
        (
            "signed with the wrong secret",
            Some(key.clone()),
            Fault::BadTsig,
        ),
        ("not signed", None, Fault::None),
    ] {
        primary.set_tsig(signer);
        primary.set_fault(fault);
        let before = failures(&suite);
        sextant_systest::notify(suite.dns, ZONE).unwrap();
        eventually(Duration::from_secs(10), what, &suite, || {
            failures(&suite) > before
        });
        assert_old_version_served(suite.dns, what);
    }
    let status = sextant_systest::sextantctl(&config, &["status"]).unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("TSIG"), "the failure names TSIG:\n{text}");

    primary.set_tsig(Some(key));
    primary.set_fault(Fault::None);
    sextant_systest::notify(suite.dns, ZONE).unwrap();
    eventually(
        Duration::from_secs(10),
        "the signed transfer after recovery",
        &suite,
        || serial(suite.dns) == Some(2),
    );
}

#[test]
fn expiry_counts_from_the_last_success_across_a_restart() {
    let lab = Lab::new().unwrap();
    let primary = FakePrimary::start(ZONE).unwrap();
    primary.set_timers(3600, 3600, 3);
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    lab.add_transfer(&config, &[(ZONE, primary.addr)]).unwrap();
    let suite = lab.start_suite(&config).unwrap();
    eventually(
        Duration::from_secs(15),
        "the first transfer",
        &suite,
        || serial(suite.dns) == Some(1),
    );
    // Down for longer than EXPIRE, daemons included; then everything restarts.
    primary.set_down(true);
    drop(suite);
    std::thread::sleep(Duration::from_millis(3500));
    let suite = lab.start_suite(&config).unwrap();
    assert_eq!(
        rcode(suite.dns, "www.example.org."),
        ResponseCode::ServFail,
        "a zone past EXPIRE before the restart is not served after it"
    );
    primary.set_down(false);
    sextant_systest::notify(suite.dns, ZONE).unwrap();
    eventually(Duration::from_secs(15), "recovery", &suite, || {
        rcode(suite.dns, "www.example.org.") == ResponseCode::NoError
    });
}

#[test]
fn a_dead_first_primary_is_passed_over_for_the_next() {
    let lab = Lab::new().unwrap();
    let dead = FakePrimary::start(ZONE).unwrap();
    dead.set_down(true);
    let alive = FakePrimary::start(ZONE).unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    lab.add_transfer(&config, &[(ZONE, dead.addr)]).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("primaries = [\"{}\"]", dead.addr),
        &format!("primaries = [\"{}\", \"{}\"]", dead.addr, alive.addr),
    );
    std::fs::write(&config, text).unwrap();
    let suite = lab.start_suite(&config).unwrap();
    eventually(
        Duration::from_secs(15),
        "the transfer from the second primary",
        &suite,
        || serial(suite.dns) == Some(1),
    );
    assert!(alive.transfers() >= 1);
    assert_eq!(dead.transfers(), 0);
}

/// A restarted authority tells the transfer daemon which versions it holds
/// snapshots of and serves them once confirmed, without receiving their records; a
/// version replaced while it was down is received whole; a restarted transfer
/// daemon does not send the authority's unchanged zones again.
#[test]
fn a_restarted_authority_serves_secondary_zones_from_their_snapshots() {
    let lab = Lab::new().unwrap();
    let primary = FakePrimary::start(ZONE).unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "packet_cache_bytes = 0")
        .unwrap();
    lab.add_transfer(&config, &[(ZONE, primary.addr)]).unwrap();
    let state = lab.path().join("authority-state");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[authority]\n",
        &format!("[authority]\nstate_dir = \"{}\"\n", state.display()),
    );
    std::fs::write(&config, text).unwrap();
    let mut suite = lab.start_suite(&config).unwrap();
    eventually(
        Duration::from_secs(15),
        "the first transfer",
        &suite,
        || serial(suite.dns) == Some(1),
    );
    let authority_log = |suite: &Suite| suite.authority.as_ref().unwrap().log_text();
    eventually(Duration::from_secs(10), "the snapshot", &suite, || {
        authority_log(&suite).contains("secondary zone snapshot written")
    });
    let restart_authority = |suite: &mut Suite| {
        let old = suite.authority.take().unwrap();
        assert!(old.terminate(Duration::from_secs(10)).unwrap());
        suite.authority = Some(lab.start_authority(&config).unwrap());
    };

    restart_authority(&mut suite);
    let log = authority_log(&suite);
    assert_eq!(
        log.matches("secondary zone served from its snapshot")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("secondary zone version served").count(),
        1,
        "{log}"
    );
    eventually_steady(Duration::from_secs(10), "serving it", &suite, || {
        serial(suite.dns) == Some(1)
    });
    assert_old_version_served(suite.dns, "from the snapshot");

    // The transfer daemon restarts: the authority's zone is not sent again.
    let transfer = suite.transfer.take().unwrap();
    assert!(transfer.terminate(Duration::from_secs(10)).unwrap());
    suite.transfer = Some(lab.start_transfer(&config).unwrap());
    std::thread::sleep(Duration::from_secs(2));
    let log = authority_log(&suite);
    assert_eq!(
        log.matches("secondary zone version served").count(),
        1,
        "{log}"
    );
    assert_old_version_served(suite.dns, "after the transfer daemon restarted");

    // A new version while the authority is down: received whole at its start.
    let authority = suite.authority.take().unwrap();
    assert!(authority.terminate(Duration::from_secs(10)).unwrap());
    primary.set_version(2, &["www", "v2only"]);
    notify_until(
        &suite,
        Duration::from_secs(15),
        "the new version published",
        || {
            suite.transfer.as_ref().is_some_and(|t| {
                t.log_text()
                    .contains("published zone=example.org. serial=2")
            })
        },
    );
    suite.authority = Some(lab.start_authority(&config).unwrap());
    eventually_steady(Duration::from_secs(15), "the new version", &suite, || {
        serial(suite.dns) == Some(2)
    });
    assert_names(suite.dns, "v2only", "v1only");
    let log = authority_log(&suite);
    assert_eq!(
        log.matches("secondary zone served from its snapshot")
            .count(),
        1,
        "{log}"
    );
    // Version 2 came by IXFR: the restarted authority applied its step to the
    // snapshot it had read.
    assert_eq!(
        log.matches("secondary zone step applied and served")
            .count(),
        1,
        "{log}"
    );

    // Both restart; the store holds a version made by a step, the transfer
    // daemon's index is rebuilt from it, and the next IXFR goes on from there.
    for daemon in [suite.transfer.take(), suite.authority.take()] {
        assert!(daemon.unwrap().terminate(Duration::from_secs(10)).unwrap());
    }
    suite.transfer = Some(lab.start_transfer(&config).unwrap());
    suite.authority = Some(lab.start_authority(&config).unwrap());
    eventually_steady(Duration::from_secs(15), "version 2 again", &suite, || {
        serial(suite.dns) == Some(2)
    });
    primary.set_version(3, &["www", "v3only"]);
    notify_until(&suite, Duration::from_secs(15), "the third version", || {
        serial(suite.dns) == Some(3)
    });
    assert_names(suite.dns, "v3only", "v2only");
    let log = authority_log(&suite);
    assert!(
        log.contains("secondary zone served from its snapshot"),
        "{log}"
    );
    assert!(
        log.contains("secondary zone step applied and served"),
        "{log}"
    );
    assert!(!log.contains("asking for the zone whole"), "{log}");
    assert!(
        suite
            .transfer
            .as_ref()
            .unwrap()
            .log_text()
            .contains("zone updated by IXFR and published zone=example.org. serial=3")
    );
}

/// A million-record AXFR killed (`kill -9` of the transfer daemon) at points drawn
/// at random, each once the primary has sent every record before it: the previous
/// version is served whole after each restart, and the store holds only it.
#[test]
fn a_million_record_axfr_killed_anywhere_leaves_the_previous_version_whole() {
    const RECORDS: usize = 1_000_000;
    let lab = Lab::new().unwrap();
    let primary = FakePrimary::start(ZONE).unwrap();
    let (config, mut suite) = start_for_kills(&lab, &primary, "60s");
    let hosts: Vec<String> = (0..RECORDS).map(|i| format!("big{i}")).collect();
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    // xorshift64 from the clock; the seed is printed to replay a failure.
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("kill points seed: {state}");
    for round in 0..3 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let point = 1 + (state % (RECORDS as u64 - 1)) as usize;
        eprintln!("round {round}: the primary stalls after {point} records");
        primary.set_version(2, &hosts);
        primary.set_fault(Fault::StallAfter(point));
        let stalls = primary.stalls();
        notify_until(&suite, Duration::from_secs(120), "the kill point", || {
            primary.stalls() > stalls
        });
        suite.transfer.take().unwrap().kill();

        primary.set_fault(Fault::None);
        primary.set_version(1, &["www", "v1only"]);
        let restarted = lab.start_transfer(&config).unwrap();
        assert_old_version_served(suite.dns, &format!("after kill -9 at record {point}"));
        assert!(restarted.terminate(Duration::from_secs(10)).unwrap());
        assert_store_holds_only_version_1(&lab);
        suite.transfer = Some(lab.start_transfer(&config).unwrap());
        eventually(Duration::from_secs(15), "serving again", &suite, || {
            serial(suite.dns) == Some(1)
        });
    }
}
