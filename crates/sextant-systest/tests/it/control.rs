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

/// `sextantctl zone notify`: the authority NOTIFYs its secondaries on request and the
/// tool shows each answer; a secondary that refuses makes the exit status 1.
#[test]
fn zone_notify_reports_each_secondary() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    let quiet = sextantctl(&config, &["zone", "notify", "example.com"]).unwrap();
    assert_eq!(quiet.status.code(), Some(1), "no authority running yet");

    // Two secondaries: one acknowledges, one refuses. Each counts the NOTIFYs it gets.
    let secondary = |rcode: u8| {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        let address = socket.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = seen.clone();
        let started = std::time::Instant::now();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 1500];
            while started.elapsed() < std::time::Duration::from_secs(60) {
                let Ok((len, from)) = socket.recv_from(&mut buffer) else {
                    continue;
                };
                if len < 12 || (buffer[2] >> 3) & 0x0f != 4 {
                    continue;
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                buffer[2] |= 0x80;
                buffer[3] = (buffer[3] & 0xf0) | rcode;
                let _ = socket.send_to(&buffer[..len], from);
            }
        });
        (address, seen)
    };
    let (acknowledging, acknowledged) = secondary(0);
    let (refusing, _) = secondary(5);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[authority]\n",
        &format!("[authority]\nnotify = [\"{acknowledging}\", \"{refusing}\"]\n"),
    );
    std::fs::write(&config, text).unwrap();
    let _suite = lab.start_suite(&config).unwrap();

    let before = acknowledged.load(std::sync::atomic::Ordering::SeqCst);
    let notify = sextantctl(&config, &["zone", "notify", "example.com"]).unwrap();
    let stdout = String::from_utf8_lossy(&notify.stdout);
    assert_eq!(
        notify.status.code(),
        Some(1),
        "one secondary refused:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "example.com. serial 2026112101 -> {acknowledging}: acknowledged"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("-> {refusing}: refused")),
        "{stdout}"
    );
    assert!(acknowledged.load(std::sync::atomic::Ordering::SeqCst) > before);

    let unknown = sextantctl(&config, &["zone", "notify", "example.net"]).unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("zone example.net. is not served here")
    );
}
