//! The listener's defences beyond garbage: response rate limiting with slip, the
//! oldest idle TCP connection making room at the limit, edns-tcp-keepalive, and
//! SIGHUP re-reading the configuration (a broken file changes nothing).

use std::io::Read;
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use sextant_systest::{Lab, dig, eventually, query_tcp, query_udp, question_with};

use crate::EXAMPLE_ZONE;

#[test]
fn rate_limited_udp_answers_are_dropped_or_slipped_and_tcp_still_answers() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            "\n[listener.rrl]\nresponses_per_second = 5\nslip = 2\n",
        )
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let query = question_with("www.example.com.", RecordType::A, Some(1232)).unwrap();
    let wire = query.to_vec().unwrap();
    let sent = 60;
    for _ in 0..sent {
        socket.send_to(&wire, suite.dns).unwrap();
    }
    let (mut full, mut truncated) = (0, 0);
    let mut buffer = [0u8; 1500];
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let Ok(len) = socket.recv(&mut buffer) else {
            break;
        };
        let answer = Message::from_vec(&buffer[..len]).unwrap();
        if answer.metadata.truncation {
            assert!(answer.answers.is_empty());
            truncated += 1;
        } else {
            full += 1;
        }
    }
    assert!(full <= 10, "{full} full answers got through a limit of 5/s");
    assert!(
        truncated >= 10,
        "{truncated} slipped answers: real clients need them"
    );
    assert!(full + truncated < sent, "nothing was dropped");
    // TCP is not limited: a client told to retry there gets its answer.
    let tcp = query_tcp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    assert_eq!(tcp.answers.len(), 1);
}

#[test]
fn at_the_connection_limit_the_oldest_idle_connection_makes_room() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            "tcp_max_connections = 3\ntcp_idle_timeout = \"30s\"",
        )
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let mut idle: Vec<TcpStream> = (0..3)
        .map(|_| {
            let stream = TcpStream::connect(suite.dns).unwrap();
            // One at a time, so that the first is the oldest.
            std::thread::sleep(Duration::from_millis(50));
            stream
        })
        .collect();
    let answer = query_tcp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    let oldest = &mut idle[0];
    oldest
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        matches!(oldest.read(&mut byte), Ok(0)),
        "the oldest idle connection was closed"
    );
}

#[test]
fn edns_tcp_keepalive_is_answered_with_the_idle_timeout() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            "tcp_idle_timeout = \"7s\"",
        )
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let output = dig(suite.dns, &["+tcp", "+keepalive", "www.example.com", "A"]).unwrap();
    assert!(output.contains("TCP KEEPALIVE: 7.0 secs"), "{output}");
    let without = dig(suite.dns, &["+tcp", "www.example.com", "A"]).unwrap();
    assert!(!without.contains("TCP KEEPALIVE"), "{without}");
}

#[test]
fn sighup_applies_a_new_acl_and_keeps_the_old_one_when_the_file_is_broken() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let ok = query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    assert_eq!(ok.metadata.response_code, ResponseCode::NoError);

    let original = std::fs::read_to_string(&config).unwrap();
    let restricted = original.replace(
        "[listener]\n",
        "[listener]\nallow_query = [\"192.0.2.0/24\"]\n",
    );
    std::fs::write(&config, &restricted).unwrap();
    let hangup = |pid: u32| {
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
    };
    assert!(hangup(suite.listener.pid()).success());
    eventually(Duration::from_secs(5), "the new ACL applies", || {
        query_udp(suite.dns, "www.example.com.", RecordType::A)
            .is_ok_and(|r| r.metadata.response_code == ResponseCode::Refused)
    })
    .unwrap();

    std::fs::write(&config, "this is [not toml").unwrap();
    assert!(hangup(suite.listener.pid()).success());
    eventually(Duration::from_secs(5), "the error is logged", || {
        suite
            .listener
            .log_text()
            .contains("does not load; nothing changed")
    })
    .unwrap();
    let still = query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    assert_eq!(still.metadata.response_code, ResponseCode::Refused);
}

/// Clients behind one address (a NAT, a proxy): one of them opens 200 connections
/// that send garbage, nothing, or a huge length prefix, while another on the same
/// address sends a TCP query every 30 ms. At the per-client limit the attacker's
/// idle or stalled connections make room, so the well-behaved client keeps being
/// answered; the listener's CPU and memory stay bounded.
#[test]
fn clients_behind_one_address_do_not_lock_each_other_out() {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use sextant_systest::procstat::{cpu_seconds, rss_mib};

    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            "tcp_max_connections_per_client = 16",
        )
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let (dns, pid) = (suite.dns, suite.listener.pid());
    let baseline_rss = rss_mib(pid);
    let attacks: [(&str, &[u8]); 3] = [
        ("garbage", b"hello, is this DNS?\r\n"),
        ("silence", b""),
        ("a huge length prefix", b"\xff\xff\x12\x34"),
    ];
    for (name, bytes) in attacks {
        let stop = Arc::new(AtomicBool::new(false));
        // The attacker: 200 connections, each sending its bytes and then nothing,
        // opened as fast as they are closed, for the whole phase.
        let attacker = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut held = std::collections::VecDeque::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(mut stream) = TcpStream::connect(dns) {
                        let _ = stream.write_all(bytes);
                        held.push_back(stream);
                    }
                    if held.len() >= 200 {
                        held.pop_front();
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        let cpu = cpu_seconds(pid);
        let started = Instant::now();
        let (mut sent, mut answered) = (0, 0);
        while started.elapsed() < Duration::from_secs(4) {
            sent += 1;
            if query_tcp(dns, "www.example.com.", RecordType::A)
                .is_ok_and(|r| r.metadata.response_code == ResponseCode::NoError)
            {
                answered += 1;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        let share = (cpu_seconds(pid) - cpu) / started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let _ = attacker.join();
        eprintln!(
            "{name}: {answered}/{sent} queries answered, listener CPU {:.0}% of a core, RSS {:.1} MiB",
            100.0 * share,
            rss_mib(pid)
        );
        assert!(
            answered * 100 >= sent * 99,
            "{name}: only {answered} of {sent} well-behaved TCP queries answered"
        );
        assert!(
            share < 0.8,
            "{name}: the listener used {:.0}% of a core",
            100.0 * share
        );
        assert!(
            rss_mib(pid) < baseline_rss + 64.0,
            "{name}: memory grew from {baseline_rss:.1} to {:.1} MiB",
            rss_mib(pid)
        );
    }
}
