//! Garbage on TCP 53 once drove a DNS server to 100% CPU and a crash. Here
//! the running suite is attacked in bounded phases (telnet typists, slowloris, absurd
//! lengths, random datagrams, compression loops) while a prober sends real queries;
//! the prober must be answered, the listener must live, and its CPU and memory must
//! come back to idle afterwards.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use sextant_systest::procstat::{cpu_seconds, cpu_share, rss_mib};
use sextant_systest::{Lab, query_udp};

use crate::EXAMPLE_ZONE;

/// Real queries sent every few milliseconds during the attack; counts the answered.
struct Prober {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Prober {
    fn start(dns: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let answered = Arc::new(AtomicU64::new(0));
        let (s, a, flag) = (sent.clone(), answered.clone(), stop.clone());
        let handle = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                s.fetch_add(1, Ordering::Relaxed);
                if let Ok(r) = query_udp(dns, "www.example.com.", RecordType::A)
                    && r.metadata.response_code == ResponseCode::NoError
                {
                    a.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(10));
            }
        });
        Self {
            stop,
            sent,
            answered,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        (
            self.sent.load(Ordering::Relaxed),
            self.answered.load(Ordering::Relaxed),
        )
    }
}

/// Deterministic bytes (xorshift), so a failure replays the same garbage.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Waits until the server closes `stream` (read returns 0 or an error), at most
/// `limit`; returns whether it did.
fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> bool {
    let _ = stream.set_read_timeout(Some(limit));
    let mut buffer = [0u8; 512];
    let started = Instant::now();
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
        if started.elapsed() > limit {
            return false;
        }
    }
}

struct Phase {
    name: &'static str,
    cpu_seconds: f64,
    seconds: f64,
    rss_after: f64,
}

#[test]
fn garbage_slow_clients_and_floods_do_not_knock_the_listener_over() {
    let lab = Lab::new().unwrap();
    let limits = "tcp_idle_timeout = \"2s\"\ntcp_read_timeout = \"1s\"\ntcp_max_connections = 512\ntcp_max_connections_per_client = 512";
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], limits)
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let (dns, pid) = (suite.dns, suite.listener.pid());
    // Warm up, then take the baseline.
    for _ in 0..50 {
        let _ = query_udp(dns, "www.example.com.", RecordType::A);
    }
    let baseline_rss = rss_mib(pid);
    let prober = Prober::start(dns);
    let mut phases = Vec::new();
    let mut run = |name: &'static str, attack: &dyn Fn()| {
        let cpu = cpu_seconds(pid);
        let started = Instant::now();
        attack();
        phases.push(Phase {
            name,
            cpu_seconds: cpu_seconds(pid) - cpu,
            seconds: started.elapsed().as_secs_f64(),
            rss_after: rss_mib(pid),
        });
    };

    run("200 telnet typists", &|| {
        let typists: Vec<_> = (0..200)
            .map(|i| {
                thread::spawn(move || {
                    let Ok(mut stream) = TcpStream::connect(dns) else {
                        return false;
                    };
                    for byte in format!("hello {i}, is this DNS?\r\n").bytes().take(6) {
                        if stream.write_all(&[byte]).is_err() {
                            return true; // closed on us: fine
                        }
                        thread::sleep(Duration::from_millis(100));
                    }
                    closed_by_server(&mut stream, Duration::from_secs(5))
                })
            })
            .collect();
        let closed = typists
            .into_iter()
            .filter_map(|t| t.join().ok())
            .filter(|c| *c)
            .count();
        assert_eq!(
            closed, 200,
            "every typist's connection must be closed by the server"
        );
    });

    run("100 slowloris (1 byte, then silence) + 100 idle", &|| {
        let mut streams: Vec<TcpStream> = (0..200)
            .filter_map(|_| TcpStream::connect(dns).ok())
            .collect();
        for stream in streams.iter_mut().take(100) {
            let _ = stream.write_all(&[0]);
        }
        let closed = streams
            .iter_mut()
            .map(|s| closed_by_server(s, Duration::from_secs(5)))
            .filter(|c| *c)
            .count();
        assert_eq!(
            closed, 200,
            "slow and idle connections must be closed by the timeouts"
        );
    });

    run("oversized lengths and random bytes on TCP", &|| {
        let mut streams = Vec::new();
        for i in 0..100u64 {
            let Ok(mut stream) = TcpStream::connect(dns) else {
                continue;
            };
            let payload = if i % 2 == 0 {
                let mut p = vec![0xff, 0xff];
                p.extend_from_slice(&garbage(i, 10));
                p
            } else {
                garbage(i, 300)
            };
            let _ = stream.write_all(&payload);
            streams.push(stream);
        }
        let closed = streams
            .iter_mut()
            .map(|s| closed_by_server(s, Duration::from_secs(5)))
            .filter(|c| *c)
            .count();
        assert_eq!(closed, streams.len(), "garbage connections must be closed");
    });

    run("5000 random UDP datagrams", &|| {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..5000u64 {
            let len = 1 + (i as usize * 7919) % 700;
            let _ = socket.send_to(&garbage(i + 1000, len), dns);
            if i % 500 == 0 {
                thread::sleep(Duration::from_millis(5));
            }
        }
    });

    run("compression loops and truncated messages", &|| {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut valid = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        valid.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        // An additional record whose owner points at itself.
        let mut looped = valid.clone();
        let at = looped.len() as u16;
        looped.extend_from_slice(&(0xc000 | at).to_be_bytes());
        looped.extend_from_slice(&[0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
        // A question name made of a pointer to itself.
        let mut question_loop = valid[..12].to_vec();
        question_loop.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        for _ in 0..200 {
            let _ = socket.send_to(&looped, dns);
            let _ = socket.send_to(&question_loop, dns);
            for cut in (0..valid.len()).step_by(3) {
                let _ = socket.send_to(&valid[..cut], dns);
            }
        }
    });

    let (sent, answered) = prober.finish();
    thread::sleep(Duration::from_millis(500));
    let idle_share = cpu_share(pid, Duration::from_secs(2));
    let final_rss = rss_mib(pid);
    for phase in &phases {
        eprintln!(
            "phase {:<48} {:>5.1}s, listener CPU {:>5.2}s ({:>4.0}% of a core), RSS after {:>5.1} MiB",
            phase.name,
            phase.seconds,
            phase.cpu_seconds,
            100.0 * phase.cpu_seconds / phase.seconds,
            phase.rss_after
        );
    }
    eprintln!(
        "prober: {answered}/{sent} answered; afterwards: CPU {:.1}% of a core, RSS {final_rss:.1} MiB (baseline {baseline_rss:.1} MiB)",
        100.0 * idle_share
    );

    assert!(suite.listener.log_text().contains("listener serving"));
    assert!(
        answered * 100 >= sent * 99,
        "only {answered} of {sent} probes were answered"
    );
    assert!(
        idle_share < 0.05,
        "the listener did not return to idle: {:.1}% of a core",
        100.0 * idle_share
    );
    assert!(
        final_rss < baseline_rss + 32.0,
        "memory did not come back: {final_rss:.1} MiB after, {baseline_rss:.1} MiB before"
    );
    // Still serving, over both transports.
    let udp = query_udp(dns, "www.example.com.", RecordType::A).unwrap();
    assert_eq!(udp.metadata.response_code, ResponseCode::NoError);
    let tcp = sextant_systest::query_tcp(dns, "www.example.com.", RecordType::A).unwrap();
    assert_eq!(tcp.metadata.response_code, ResponseCode::NoError);
}
