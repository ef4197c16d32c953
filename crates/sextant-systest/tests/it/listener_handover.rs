//! The listener's own restart without a lost query: a second listener with the same
//! configuration starts beside the running one (SO_REUSEPORT), and once it is ready
//! the first is stopped; under a steady stream of UDP and TCP queries every one gets
//! its answer. The successor then takes the control and metrics endpoints, and the
//! ready file stays the successor's.

use std::time::Duration;

use sextant_systest::{Adopted, Daemon, Lab, eventually, metric, scrape_metrics};

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

/// Waits for `MAINPID=` on the notify socket; the PID it names.
fn main_pid(notify: &std::os::unix::net::UnixDatagram) -> Option<u32> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut buffer = [0u8; 512];
    while std::time::Instant::now() < deadline {
        if let Ok(len) = notify.recv(&mut buffer) {
            let message = String::from_utf8_lossy(&buffer[..len]);
            if let Some(pid) = message
                .lines()
                .find_map(|line| line.strip_prefix("MAINPID="))
            {
                return pid.trim().parse().ok();
            }
        }
    }
    None
}

/// SIGUSR2, as systemd's `systemctl kill --signal=SIGUSR2` sends it: the listener
/// starts its successor itself, tells systemd (here a socket of the test) the new main
/// PID once the successor serves, and stops; twice in a row, under load.
#[test]
fn sigusr2_hands_the_listener_to_a_successor_it_starts_and_no_query_is_lost() {
    let lab = Lab::new().unwrap();
    let port = sextant_systest::free_port().unwrap();
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            "packet_cache_bytes = 0\ncontrol = \"unix:listener.sock\"",
        )
        .unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&config, text).unwrap();
    let notify_path = lab.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let _authority = lab.start_authority(&config).unwrap();
    let ready = lab.path().join("listener.ready.json");
    let mut first = Daemon::start_with_env(
        "sextant-listener",
        &config,
        &ready,
        lab.path(),
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())],
    )
    .unwrap();
    let dns: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    let udp = Load::start_over(dns, 3, "www.example.com.", "192.0.2.80", false);
    let tcp = Load::start_over(dns, 2, "www.example.com.", "192.0.2.80", true);
    udp.wait_for(300);
    first.signal("USR2").unwrap();
    let second = Adopted::new(main_pid(&notify).expect("no MAINPID= after SIGUSR2"));
    assert_ne!(second.pid(), first.pid());
    let status = first.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "the first listener did not stop by itself: {status:?}\n{}",
        first.log_text()
    );
    udp.wait_for(300);
    tcp.wait_for(100);
    // The successor replaced in turn (its socket groups now hold a stale steering).
    second.signal("USR2").unwrap();
    let third = Adopted::new(main_pid(&notify).expect("no second MAINPID="));
    eventually(Duration::from_secs(10), "the second listener stops", || {
        !second.running()
    })
    .unwrap();
    udp.wait_for(300);
    tcp.wait_for(100);
    let asked = udp.finish_without_failures() + tcp.finish_without_failures();
    assert!(asked >= 1000, "{asked}");

    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready).unwrap()).unwrap();
    assert_eq!(file["pid"], third.pid(), "{file}");
    eventually(
        Duration::from_secs(10),
        "the third serves the control endpoint",
        || backends(&config).len() == 1,
    )
    .unwrap();
    drop((second, third));
}
