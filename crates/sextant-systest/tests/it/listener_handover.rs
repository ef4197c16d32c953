//! The listener's own restart without a lost query: a second listener with the same
//! configuration starts beside the running one (SO_REUSEPORT), and once it is ready
//! the first is stopped; under a steady stream of UDP and TCP queries every one gets
//! its answer. The successor then takes the control and metrics endpoints, and the
//! ready file stays the successor's.

use std::time::Duration;

use sextant_systest::{Daemon, Lab, eventually, metric, scrape_metrics};

use crate::EXAMPLE_ZONE;
use crate::backend_pool::{Load, backends};

#[test]
fn a_listener_replaced_by_its_successor_under_load_loses_no_query() {
    let lab = Lab::new().unwrap();
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // Every query reaches the authority: no packet cache to hide a lost one.
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            &format!(
                "packet_cache_bytes = 0\ncontrol = \"unix:listener.sock\"\nmetrics = \"{metrics}\""
            ),
        )
        .unwrap();
    let _authority = lab.start_authority(&config).unwrap();
    let (first, dns) = lab.start_listener(&config).unwrap();
    // The successor's configuration is the same, the port now fixed.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("127.0.0.1:0", &dns.to_string());
    std::fs::write(&config, text).unwrap();

    let udp = Load::start_over(dns, 3, "www.example.com.", "192.0.2.80", false);
    let tcp = Load::start_over(dns, 2, "www.example.com.", "192.0.2.80", true);
    udp.wait_for(300);
    tcp.wait_for(100);
    let ready = lab.path().join("listener.ready.json");
    let second = Daemon::start("sextant-listener", &config, &ready, lab.path()).unwrap();
    udp.wait_for(300);
    tcp.wait_for(100);
    assert!(first.terminate(Duration::from_secs(10)).unwrap());
    udp.wait_for(300);
    tcp.wait_for(100);
    let asked = udp.finish_without_failures() + tcp.finish_without_failures();
    assert!(asked >= 1200, "{asked}");

    // What the first held by path or port is the successor's now.
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready).unwrap()).unwrap();
    assert_eq!(file["pid"], second.pid(), "{file}");
    eventually(
        Duration::from_secs(10),
        "the successor serves the control endpoint",
        || backends(&config).len() == 1,
    )
    .unwrap();
    let scraped = scrape_metrics(metrics).unwrap();
    assert!(
        metric(&scraped, "sextant_listener_queries_total") > 0.0,
        "{scraped}"
    );
    drop(second);
}
