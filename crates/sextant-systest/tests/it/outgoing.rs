//! The primary role: zone transfers out of the authority through the listener, to
//! `allow_transfer` clients over TCP only, TSIG-signed when a key is required; `dig
//! AXFR` and Knot as a secondary of Sextant.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use sextant_systest::{Lab, Suite, dig, eventually, query_udp};

use crate::EXAMPLE_ZONE;

const KEY: (&str, &str) = (
    "outgoing-key",
    "c2V4dGFudC10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGVm",
);

/// A suite serving example.com with `authority_extra` in the `[authority]` section
/// and `extra` at the end of the file.
fn start(lab: &Lab, authority_extra: &str, extra: &str) -> (Suite, std::path::PathBuf) {
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[authority]\n",
        &format!("[authority]\n{authority_extra}\n"),
    ) + extra;
    std::fs::write(&config, text).unwrap();
    (lab.start_suite(&config).unwrap(), config)
}

fn axfr_records(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .collect()
}

#[test]
fn dig_axfr_is_allowed_only_to_allow_transfer_over_tcp() {
    let lab = Lab::new().unwrap();
    let (suite, _) = start(&lab, "allow_transfer = [\"127.0.0.1/32\"]", "");
    let output = dig(suite.dns, &["AXFR", "example.com"]).unwrap();
    let records = axfr_records(&output);
    // SOA, NS, ns1 A, www A + AAAA, ftp CNAME, sub NS, ns.sub A, SOA.
    assert_eq!(records.len(), 9, "{output}");
    assert!(
        records[0].contains("SOA") && records[8].contains("SOA"),
        "{output}"
    );

    let udp = query_udp(suite.dns, "example.com.", RecordType::AXFR).unwrap();
    assert_eq!(udp.metadata.response_code, ResponseCode::Refused);

    let lab = Lab::new().unwrap();
    let (closed, _) = start(&lab, "", "");
    let refused = dig(closed.dns, &["AXFR", "example.com"]).unwrap();
    assert!(refused.contains("Transfer failed"), "{refused}");
}

#[test]
fn with_a_transfer_key_only_signed_requests_get_the_zone() {
    let lab = Lab::new().unwrap();
    let key = format!("\n[[key]]\nname = \"{}\"\nsecret = \"{}\"\n", KEY.0, KEY.1);
    let (suite, _) = start(
        &lab,
        &format!(
            "allow_transfer = [\"127.0.0.0/8\"]\ntransfer_key = \"{}\"",
            KEY.0
        ),
        &key,
    );
    let signed = dig(
        suite.dns,
        &[
            "-y",
            &format!("hmac-sha256:{}:{}", KEY.0, KEY.1),
            "AXFR",
            "example.com",
        ],
    )
    .unwrap();
    assert_eq!(
        axfr_records(&signed).len(),
        9 + 1,
        "the records and dig's TSIG line: {signed}"
    );
    let unsigned = dig(suite.dns, &["AXFR", "example.com"]).unwrap();
    assert!(unsigned.contains("Transfer failed"), "{unsigned}");
    let wrong = dig(
        suite.dns,
        &[
            "-y",
            &format!(
                "hmac-sha256:{}:{}",
                KEY.0, "d3JvbmcgZWNyZXQgb2YgdGhpcnR5LXR3byBieXRlcw=="
            ),
            "AXFR",
            "example.com",
        ],
    )
    .unwrap();
    assert!(
        !wrong.contains("192.0.2.80"),
        "a wrong secret got the zone: {wrong}"
    );
}

#[test]
fn knot_transfers_the_zone_from_sextant_with_tsig_and_follows_our_notify() {
    let lab = Lab::new().unwrap();
    let key = format!("\n[[key]]\nname = \"{}\"\nsecret = \"{}\"\n", KEY.0, KEY.1);
    // Knot's port first: the authority must know where to send NOTIFY.
    let knot_port = sextant_systest::free_port().unwrap();
    let (suite, config) = start(
        &lab,
        &format!(
            "allow_transfer = [\"127.0.0.0/8\"]\ntransfer_key = \"{}\"\nnotify = [\"127.0.0.1:{knot_port}\"]\nstate_dir = \"authority-state\"",
            KEY.0
        ),
        &key,
    );
    let knot = knot_secondary(&lab.path().join("knot"), suite.dns, knot_port).unwrap();
    let answers = |name: &str, address: &str| {
        query_udp(knot.0, name, RecordType::A)
            .is_ok_and(|r| r.answers.iter().any(|a| a.data.to_string() == address))
    };
    eventually(Duration::from_secs(20), "Knot's AXFR from Sextant", || {
        answers("www.example.com.", "192.0.2.80")
    })
    .unwrap();

    // A new serial: the reload NOTIFYs Knot, which transfers again at once (its
    // REFRESH is two hours).
    let zone_file = lab.path().join("zones/example.com.zone");
    let text = std::fs::read_to_string(&zone_file)
        .unwrap()
        .replace("2026112101", "2026112102")
        + "new     IN A   192.0.2.99\n";
    std::fs::write(&zone_file, text).unwrap();
    let reload = sextant_systest::sextantctl(&config, &["zone", "reload", "example.com"]).unwrap();
    assert!(reload.status.success(), "{reload:?}");
    eventually(
        Duration::from_secs(20),
        "NOTIFY and Knot's new transfer",
        || answers("new.example.com.", "192.0.2.99"),
    )
    .unwrap();
    let log = suite.authority.as_ref().unwrap().log_text();
    assert!(
        log.contains("NOTIFY acknowledged"),
        "the NOTIFY was answered"
    );
    assert!(
        log.contains("kind=\"incremental\""),
        "Knot's IXFR got the journaled difference:\n{log}"
    );
}

/// Knot as a secondary of `primary` for example.com with the TSIG key, on `port`,
/// accepting NOTIFY from loopback; returns its address and the process (killed on
/// drop).
fn knot_secondary(
    dir: &Path,
    primary: SocketAddr,
    port: u16,
) -> anyhow::Result<(SocketAddr, KillOnDrop)> {
    std::fs::create_dir_all(dir)?;
    let d = dir.display();
    let config = format!(
        "server:\n    listen: 127.0.0.1@{port}\n    rundir: \"{d}\"\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
         database:\n    storage: \"{d}\"\nlog:\n  - target: stderr\n    any: info\n\
         key:\n  - id: {name}\n    algorithm: hmac-sha256\n    secret: {secret}\n\
         remote:\n  - id: primary\n    address: {}@{}\n    key: {name}\n\
         acl:\n  - id: notify\n    address: 127.0.0.0/8\n    action: notify\n\
         zone:\n  - domain: example.com.\n    master: primary\n    acl: notify\n    storage: \"{d}\"\n    zonefile-sync: -1\n    journal-content: none\n",
        primary.ip(),
        primary.port(),
        name = KEY.0,
        secret = KEY.1,
    );
    let path = dir.join("knot.conf");
    std::fs::write(&path, config)?;
    let log = std::fs::File::create(dir.join("knotd.log"))?;
    let child = std::process::Command::new("knotd")
        .arg("-c")
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()?;
    Ok((([127, 0, 0, 1], port).into(), KillOnDrop(child)))
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn ixfr_sends_only_the_journaled_difference_even_after_a_restart() {
    let lab = Lab::new().unwrap();
    let (suite, config) = start(
        &lab,
        "allow_transfer = [\"127.0.0.1/32\"]\nstate_dir = \"authority-state\"",
        "",
    );
    let zone_file = lab.path().join("zones/example.com.zone");
    let text = std::fs::read_to_string(&zone_file)
        .unwrap()
        .replace("2026112101", "2026112102")
        .replace("ftp     IN CNAME www\n", "")
        + "new     IN A   192.0.2.99\n";
    std::fs::write(&zone_file, text).unwrap();
    let reload = sextant_systest::sextantctl(&config, &["zone", "reload"]).unwrap();
    assert!(reload.status.success(), "{reload:?}");
    let authority = suite.authority.as_ref().unwrap();
    eventually(Duration::from_secs(10), "the change in the journal", || {
        authority.log_text().contains("zone change journaled")
    })
    .unwrap();

    let check = |dns: SocketAddr| {
        let output = dig(dns, &["IXFR=2026112101", "example.com"]).unwrap();
        let records = axfr_records(&output);
        // New SOA, old SOA, the removed CNAME, new SOA, the added A, new SOA.
        assert_eq!(records.len(), 6, "{output}");
        assert!(records[2].contains("CNAME"), "{output}");
        assert!(records[4].contains("192.0.2.99"), "{output}");
        // A serial the journal does not know gets the whole zone.
        let whole = dig(dns, &["IXFR=7", "example.com"]).unwrap();
        assert!(axfr_records(&whole).len() >= 9, "{whole}");
    };
    check(suite.dns);
    drop(suite);
    let restarted = lab.start_suite(&config).unwrap();
    check(restarted.dns);
}

#[test]
fn a_sextant_secondary_transfers_from_a_sextant_primary_with_tsig() {
    let key = format!("\n[[key]]\nname = \"{}\"\nsecret = \"{}\"\n", KEY.0, KEY.1);
    let primary_lab = Lab::new().unwrap();
    let (primary, _) = start(
        &primary_lab,
        &format!(
            "allow_transfer = [\"127.0.0.0/8\"]\ntransfer_key = \"{}\"",
            KEY.0
        ),
        &key,
    );
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("example.net", EXAMPLE_ZONE)], "")
        .unwrap();
    lab.add_transfer_with_key(&config, &[("example.com.", primary.dns)], Some(KEY))
        .unwrap();
    let secondary = lab.start_suite(&config).unwrap();
    eventually(
        Duration::from_secs(15),
        "the signed SOA check and AXFR between two Sextants",
        || {
            query_udp(secondary.dns, "www.example.com.", RecordType::A)
                .is_ok_and(|r| r.answers.iter().any(|a| a.data.to_string() == "192.0.2.80"))
        },
    )
    .unwrap();
}
