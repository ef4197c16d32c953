//! Catalog zones (RFC 9432) with Knot as the producer: Sextant's transfer daemon
//! follows the catalog Knot generates, serves each member it lists, drops one that
//! leaves and picks up one that joins (Knot's NOTIFY of the catalog is all it takes),
//! and after a restart knows its members before any transfer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use sextant_systest::{Lab, Peer, eventually, query_udp};

use crate::EXAMPLE_ZONE;

const CATALOG: &str = "catalog.example.";

fn member_zone(lab: &Lab, apex: &str, address: &str) -> PathBuf {
    lab.write(
        &format!("knot/{apex}zone"),
        &format!(
            "$ORIGIN {apex}\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.1\nwww A {address}\n"
        ),
    )
    .unwrap()
}

/// The address `www.APEX` has at the listener, if it answers one.
fn www(dns: SocketAddr, apex: &str) -> Option<String> {
    let response = query_udp(dns, &format!("www.{apex}"), RecordType::A).ok()?;
    response.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some(a.0.to_string()),
        _ => None,
    })
}

fn refused(dns: SocketAddr, apex: &str) -> bool {
    query_udp(dns, &format!("www.{apex}"), RecordType::A)
        .is_ok_and(|r| r.metadata.response_code == ResponseCode::Refused)
}

fn transfer_zones(config: &Path) -> Vec<String> {
    let output = sextant_systest::sextantctl(config, &["status", "--json"]).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    json["daemons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["daemon"] == "sextant-transfer")
        .flat_map(|d| d["zones"].as_array().cloned().unwrap_or_default())
        .filter_map(|z| z["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn knot_as_catalog_producer_members_come_and_go() {
    let lab = Lab::new().unwrap();
    let one = member_zone(&lab, "one.example.", "192.0.2.11");
    let two = member_zone(&lab, "two.example.", "192.0.2.12");
    let three = member_zone(&lab, "three.example.", "192.0.2.13");
    // Knot must know where to send NOTIFY before it starts.
    let listener: SocketAddr = ([127, 0, 0, 1], sextant_systest::free_port().unwrap()).into();
    let knot_dir = lab.path().join("knot");
    let knot = Peer::knot_catalog(
        &knot_dir,
        CATALOG,
        &[
            ("one.example.", &one, None),
            ("two.example.", &two, Some("signed")),
        ],
        listener,
    )
    .unwrap_or_else(|e| {
        let log = std::fs::read_to_string(knot_dir.join("knotd.log")).unwrap_or_default();
        panic!("{e}\n{log}")
    });
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("127.0.0.1:0", &listener.to_string());
    std::fs::write(&config, text).unwrap();
    lab.add_transfer(&config, &[(CATALOG, knot.addr)]).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("catalog = true\n");
    std::fs::write(&config, text).unwrap();
    let mut suite = lab.start_suite(&config).unwrap();
    let log = |suite: &sextant_systest::Suite| {
        suite
            .transfer
            .as_ref()
            .map(|t| t.log_text())
            .unwrap_or_default()
    };

    eventually(Duration::from_secs(20), "both members served", || {
        www(suite.dns, "one.example.").as_deref() == Some("192.0.2.11")
            && www(suite.dns, "two.example.").as_deref() == Some("192.0.2.12")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", log(&suite)));
    assert!(
        log(&suite).contains("groups=[\"signed\"]"),
        "{}",
        log(&suite)
    );
    let status = sextant_systest::sextantctl(&config, &["status"]).unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("member of catalog catalog.example. (group signed)"),
        "{status}"
    );

    // two leaves the catalog, three joins it.
    knot.knot_catalog_members(
        &knot_dir,
        CATALOG,
        &[
            ("one.example.", &one, None),
            ("three.example.", &three, None),
        ],
        listener,
    )
    .unwrap();
    eventually(Duration::from_secs(20), "two dropped, three served", || {
        refused(suite.dns, "two.example.")
            && www(suite.dns, "three.example.").as_deref() == Some("192.0.2.13")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", log(&suite)));
    assert_eq!(
        www(suite.dns, "one.example.").as_deref(),
        Some("192.0.2.11")
    );

    // A restart: the members come from the catalog kept in the store, at once.
    let transfer = suite.transfer.take().unwrap();
    assert!(transfer.terminate(Duration::from_secs(10)).unwrap());
    drop(knot);
    suite.transfer = Some(lab.start_transfer(&config).unwrap());
    let mut zones = transfer_zones(&config);
    zones.sort();
    assert_eq!(
        zones,
        ["catalog.example.", "one.example.", "three.example."],
        "{}",
        log(&suite)
    );
    assert_eq!(
        www(suite.dns, "three.example.").as_deref(),
        Some("192.0.2.13")
    );
}

/// Sextant's authority produces the catalog of its primary zones; Knot and BIND,
/// as consumers, serve every zone it lists without a line of configuration each.
#[test]
fn knot_and_bind_provision_themselves_from_the_authority_s_catalog() {
    let lab = Lab::new().unwrap();
    let port = sextant_systest::free_port().unwrap();
    let listener: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = lab
        .suite_config(
            &[
                ("example.com", EXAMPLE_ZONE),
                (
                    "example.net",
                    "$TTL 300\n@ SOA ns1 hostmaster 7 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.1\nwww A 192.0.2.77\n",
                ),
            ],
            "",
        )
        .unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("127.0.0.1:0", &listener.to_string())
        .replace(
            "[authority]\n",
            "[authority]\ncatalog = \"catalog.invalid\"\nallow_transfer = [\"127.0.0.0/8\"]\n",
        );
    std::fs::write(&config, text).unwrap();
    let suite = lab.start_suite(&config).unwrap();
    assert_eq!(
        www(suite.dns, "example.net.").as_deref(),
        Some("192.0.2.77")
    );
    let knot_dir = lab.path().join("knot");
    let bind_dir = lab.path().join("bind");
    let knot = Peer::knot_catalog_consumer(&knot_dir, "catalog.invalid.", listener).unwrap();
    let bind = Peer::bind_catalog_consumer(&bind_dir, "catalog.invalid", listener).unwrap();
    for (peer, dir, log) in [
        (&knot, &knot_dir, "knotd.log"),
        (&bind, &bind_dir, "named.log"),
    ] {
        eventually(
            Duration::from_secs(30),
            "the members served by the consumer",
            || {
                www(peer.addr, "example.com.").as_deref() == Some("192.0.2.80")
                    && www(peer.addr, "example.net.").as_deref() == Some("192.0.2.77")
            },
        )
        .unwrap_or_else(|e| {
            let log = std::fs::read_to_string(dir.join(log)).unwrap_or_default();
            panic!("{e}\n{log}")
        });
    }
}

/// A catalog zone file of catalog `apex` at `serial` listing `members` (unique id,
/// member, extra records under the id such as a coo property).
fn catalog_file(apex: &str, serial: u32, members: &[(&str, &str, &str)]) -> String {
    let mut text = format!(
        "$ORIGIN {apex}\n$TTL 0\n@ SOA invalid. invalid. {serial} 3600 600 86400 0\n@ NS invalid.\nversion TXT \"2\"\n"
    );
    for (id, member, extra) in members {
        text.push_str(&format!("{id}.zones PTR {member}\n{extra}"));
    }
    text
}

/// Waits until BIND answers `zone`'s SOA with `serial` (it has read the new file).
fn bind_serves(bind: &Peer, zone: &str, serial: u32) {
    eventually(Duration::from_secs(10), "BIND reloaded", || {
        query_udp(bind.addr, zone, RecordType::SOA).is_ok_and(|r| {
            r.answers
                .iter()
                .any(|a| matches!(&a.data, RData::SOA(soa) if soa.serial == serial))
        })
    })
    .unwrap();
}

/// Waits until the transfer daemon's log has said `what` `count` times in all.
fn logged(suite: &sextant_systest::Suite, what: &str, count: usize) {
    let log = || {
        suite
            .transfer
            .as_ref()
            .map(|t| t.log_text())
            .unwrap_or_default()
    };
    eventually(Duration::from_secs(20), what, || {
        log().matches(what).count() >= count
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));
}

/// BIND serving two hand-written catalogs: a member handed from one to the other
/// with the `coo` property keeps its data; a new unique id resets it (RFC 9432's
/// migration and state-reset rules); a catalog whose schema version is not 2 changes
/// nothing.
#[test]
fn bind_serves_catalogs_and_ownership_moves_by_coo() {
    let lab = Lab::new().unwrap();
    let bind_addr: SocketAddr = ([127, 0, 0, 1], sextant_systest::free_port().unwrap()).into();
    let one = member_zone(&lab, "one.example.", "192.0.2.11");
    let two = member_zone(&lab, "two.example.", "192.0.2.12");
    let write = |file: &str, text: String| lab.write(&format!("bind/{file}"), &text).unwrap();
    let cat_a = write(
        "cat-a.zone",
        catalog_file(
            "cat-a.example.",
            1,
            &[
                ("m1", "one.example.", ""),
                ("m2", "two.example.", "group.m2.zones TXT \"blue\"\n"),
            ],
        ),
    );
    let cat_b = write("cat-b.zone", catalog_file("cat-b.example.", 1, &[]));
    let bind = Peer::bind_on(
        &lab.path().join("bind"),
        bind_addr,
        &[
            ("one.example.", &one),
            ("two.example.", &two),
            ("cat-a.example.", &cat_a),
            ("cat-b.example.", &cat_b),
        ],
    )
    .unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    lab.add_transfer(
        &config,
        &[("cat-a.example.", bind.addr), ("cat-b.example.", bind.addr)],
    )
    .unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("primaries = [\"{}\"]\n", bind.addr),
        &format!("primaries = [\"{}\"]\ncatalog = true\n", bind.addr),
    );
    std::fs::write(&config, text).unwrap();
    let suite = lab.start_suite(&config).unwrap();
    eventually(Duration::from_secs(20), "both members served", || {
        www(suite.dns, "one.example.").as_deref() == Some("192.0.2.11")
            && www(suite.dns, "two.example.").as_deref() == Some("192.0.2.12")
    })
    .unwrap();
    let retransfer = |zone: &str| {
        let output = sextant_systest::sextantctl(&config, &["zone", "retransfer", zone]).unwrap();
        assert!(output.status.success(), "{output:?}");
    };

    // A hands two over (coo), then B lists it under the same id: it changes owner
    // and keeps its data (no second transfer of it).
    std::fs::write(
        &cat_a,
        catalog_file(
            "cat-a.example.",
            2,
            &[
                ("m1", "one.example.", ""),
                ("m2", "two.example.", "coo.m2.zones PTR cat-b.example.\n"),
            ],
        ),
    )
    .unwrap();
    std::fs::write(
        &cat_b,
        catalog_file("cat-b.example.", 2, &[("m2", "two.example.", "")]),
    )
    .unwrap();
    bind.reload().unwrap();
    bind_serves(&bind, "cat-b.example.", 2);
    retransfer("cat-a.example.");
    logged(&suite, "zone=cat-a.example. serial=2", 1);
    retransfer("cat-b.example.");
    logged(&suite, "catalog member changes owner", 1);
    let transfers_of_two = |suite: &sextant_systest::Suite| {
        suite
            .transfer
            .as_ref()
            .map(|t| t.log_text())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("zone=two.example.") && l.contains("transferred and published"))
            .count()
    };
    assert_eq!(transfers_of_two(&suite), 1);

    // A drops it: B owns it now, so it stays served.
    std::fs::write(
        &cat_a,
        catalog_file("cat-a.example.", 3, &[("m1", "one.example.", "")]),
    )
    .unwrap();
    // B gives it a new unique id: its state is reset (transferred again).
    std::fs::write(
        &cat_b,
        catalog_file("cat-b.example.", 3, &[("m2new", "two.example.", "")]),
    )
    .unwrap();
    bind.reload().unwrap();
    bind_serves(&bind, "cat-b.example.", 3);
    retransfer("cat-a.example.");
    logged(&suite, "zone=cat-a.example. serial=3", 1);
    assert_eq!(
        www(suite.dns, "two.example.").as_deref(),
        Some("192.0.2.12")
    );
    retransfer("cat-b.example.");
    logged(&suite, "catalog member reset", 1);
    eventually(Duration::from_secs(20), "two transferred again", || {
        transfers_of_two(&suite) == 2
            && www(suite.dns, "two.example.").as_deref() == Some("192.0.2.12")
    })
    .unwrap();

    // A schema version other than 2: the catalog is left as it was.
    std::fs::write(
        &cat_a,
        catalog_file("cat-a.example.", 4, &[]).replace("TXT \"2\"", "TXT \"1\""),
    )
    .unwrap();
    bind.reload().unwrap();
    bind_serves(&bind, "cat-a.example.", 4);
    retransfer("cat-a.example.");
    logged(&suite, "only \"2\" is followed", 1);
    assert_eq!(
        www(suite.dns, "one.example.").as_deref(),
        Some("192.0.2.11")
    );
}
