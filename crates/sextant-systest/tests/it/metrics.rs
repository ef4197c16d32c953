//! The Prometheus endpoints: the listener's query counters move after queries, the
//! authority reports what it serves.

use std::net::SocketAddr;

use hickory_proto::rr::RecordType;
use sextant_systest::{Lab, query_tcp, query_udp, sextantctl};

use crate::EXAMPLE_ZONE;

fn scrape(address: SocketAddr) -> String {
    sextant_systest::scrape_metrics(address).unwrap()
}

fn sample(text: &str, prefix: &str) -> f64 {
    sextant_systest::metric(text, prefix)
}

#[test]
fn counters_move_after_queries() {
    let lab = Lab::new().unwrap();
    let (listener_port, authority_port) = (
        sextant_systest::free_port().unwrap(),
        sextant_systest::free_port().unwrap(),
    );
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            &format!("metrics = \"127.0.0.1:{listener_port}\""),
        )
        .unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[authority]\n",
        &format!("[authority]\nmetrics = \"127.0.0.1:{authority_port}\"\n"),
    );
    std::fs::write(&config, text).unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let listener: SocketAddr = ([127, 0, 0, 1], listener_port).into();
    let authority: SocketAddr = ([127, 0, 0, 1], authority_port).into();

    let before = scrape(listener);
    for _ in 0..5 {
        query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    }
    query_tcp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    query_udp(suite.dns, "www.example.net.", RecordType::A).unwrap();
    let after = scrape(listener);
    let udp = r#"sextant_listener_queries_total{transport="udp"}"#;
    assert!(sample(&after, udp) >= sample(&before, udp) + 6.0, "{after}");
    assert!(
        sample(&after, r#"sextant_listener_queries_total{transport="tcp"}"#) >= 1.0,
        "{after}"
    );
    assert!(
        sample(&after, "sextant_listener_packet_cache_hits_total") >= 4.0,
        "{after}"
    );
    assert!(
        sample(
            &after,
            r#"sextant_listener_answers_total{source="listener",rcode="REFUSED"}"#
        ) >= 1.0,
        "{after}"
    );
    assert!(
        sample(&after, r#"sextant_listener_questions_total{qtype="A"}"#) >= 7.0,
        "{after}"
    );
    assert!(
        after.contains("sextant_listener_backend_seconds_bucket"),
        "{after}"
    );

    let served = scrape(authority);
    assert_eq!(sample(&served, "sextant_authority_zones"), 1.0, "{served}");
    assert_eq!(
        sample(
            &served,
            r#"sextant_authority_zone_serial{zone="example.com."}"#
        ),
        2026112101.0,
        "{served}"
    );
    assert!(
        sample(
            &served,
            r#"sextant_authority_answers_total{rcode="NOERROR"}"#
        ) >= 1.0,
        "{served}"
    );

    // sextantctl stats reads the same endpoints: a table, and JSON for scripts.
    let table = sextantctl(&config, &["stats"]).unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{text}");
    assert!(
        text.contains(&format!("sextant-listener (127.0.0.1:{listener_port})"))
            && text.contains("sextant_listener_queries_total{transport=udp}")
            && text.contains("sextant_authority_zones")
            && text.contains("µs mean"),
        "{text}"
    );
    let json = sextantctl(&config, &["stats", "--json"]).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let udp_queries = json["daemons"][0]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["name"] == "sextant_listener_queries_total" && s["labels"]["transport"] == "udp"
        })
        .map(|s| s["value"].as_f64().unwrap());
    assert!(udp_queries >= Some(6.0), "{json}");

    // A daemon that is down: exit 1, and the endpoint named.
    drop(suite);
    let down = sextantctl(&config, &["stats"]).unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stdout).contains("unreachable"));
}

#[test]
fn stats_without_any_metrics_endpoint_says_how_to_add_one() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    let output = sextantctl(&config, &["stats"]).unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("has `metrics` set; add e.g."));
}
