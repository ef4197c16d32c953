//! Several authorities behind one listener (`listener.authority` as a list): queries
//! are spread over them, and one stopping (SIGTERM) or dying (SIGKILL) under a steady
//! stream of queries costs no answer: each query in flight with it is asked again of
//! the other.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use sextant_systest::{Daemon, Lab, eventually};

use crate::EXAMPLE_ZONE;

/// Clients asking in a loop until stopped; every answer that is not the expected
/// address (or no answer at all) is kept as a failure.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<Vec<String>>>,
}

impl Load {
    /// `clients` threads asking `name` (type A) over UDP, expecting `address`.
    pub(crate) fn start(
        dns: std::net::SocketAddr,
        clients: usize,
        name: &'static str,
        address: &'static str,
    ) -> Load {
        Self::start_over(dns, clients, name, address, false)
    }

    /// [`Load::start`] over TCP (`tcp`, a connection per query) or UDP.
    pub(crate) fn start_over(
        dns: std::net::SocketAddr,
        clients: usize,
        name: &'static str,
        address: &'static str,
        tcp: bool,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let threads = (0..clients)
            .map(|_| {
                let (stop, answered) = (stop.clone(), answered.clone());
                std::thread::spawn(move || {
                    let mut failures = Vec::new();
                    // Bounded: a stuck test ends by itself.
                    for _ in 0..200_000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        // RD=1: a name outside the listener's zones goes to a resolver.
                        let mut query = hickory_proto::op::Message::query();
                        query.metadata.recursion_desired = true;
                        query.add_query(hickory_proto::op::Query::query(
                            hickory_proto::rr::Name::from_ascii(name).unwrap(),
                            RecordType::A,
                        ));
                        match sextant_systest::exchange(dns, &query, tcp) {
                            Ok(answer)
                                if answer.metadata.response_code == ResponseCode::NoError
                                    && answer.answers.iter().any(|r| {
                                        matches!(&r.data, RData::A(a) if a.0.to_string() == address)
                                    }) => {}
                            Ok(answer) => failures.push(format!(
                                "{:?}: {:?}",
                                answer.metadata.response_code, answer.answers
                            )),
                            Err(error) => failures.push(error.to_string()),
                        }
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    failures
                })
            })
            .collect();
        Load {
            stop,
            answered,
            threads,
        }
    }

    /// Waits until `more` queries beyond now have been answered.
    pub(crate) fn wait_for(&self, more: usize) {
        let target = self.answered.load(Ordering::Relaxed) + more;
        eventually(Duration::from_secs(30), "the load goes on", || {
            self.answered.load(Ordering::Relaxed) >= target
        })
        .unwrap();
    }

    /// Stops the clients and checks that every query got its answer; returns how
    /// many were asked.
    pub(crate) fn finish_without_failures(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let failures: Vec<String> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let asked = self.answered.load(Ordering::Relaxed);
        assert!(
            failures.is_empty(),
            "{} of {asked} failed: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        asked
    }
}

/// The second authority's config: the first one's, with its own socket and ready file.
fn second_authority(lab: &Lab, config: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(config).unwrap().replace(
        "grpc = \"unix:authority.sock\"\nready_file = \"authority.ready.json\"",
        "grpc = \"unix:authority2.sock\"\nready_file = \"authority2.ready.json\"",
    );
    lab.write("sextant2.toml", &text).unwrap()
}

fn start_second(lab: &Lab, config: &std::path::Path) -> Daemon {
    Daemon::start(
        "sextant-authority",
        config,
        &lab.path().join("authority2.ready.json"),
        lab.path(),
    )
    .unwrap()
}

/// `sextantctl status --json`'s listener backends: (endpoint, connected, serving).
pub(crate) fn backends(config: &std::path::Path) -> Vec<(String, bool, bool)> {
    let output = sextant_systest::sextantctl(config, &["status", "--json"]).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let daemons = json["daemons"].as_array().cloned().unwrap_or_default();
    daemons
        .iter()
        .filter(|d| d["daemon"] == "sextant-listener")
        .flat_map(|d| d["backends"].as_array().cloned().unwrap_or_default())
        .map(|b| {
            (
                b["endpoint"].as_str().unwrap_or_default().to_string(),
                b["connected"] == true,
                b["serving"] == true,
            )
        })
        .collect()
}

pub(crate) fn all_up(config: &std::path::Path) -> bool {
    let backends = backends(config);
    backends.len() == 2
        && backends
            .iter()
            .all(|(_, connected, serving)| *connected && *serving)
}

#[test]
fn an_authority_stopping_or_dying_under_load_costs_no_answer() {
    let lab = Lab::new().unwrap();
    // Every query reaches an authority: no packet cache to hide a failure.
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            "authority = [\"unix:authority.sock\", \"unix:authority2.sock\"]\npacket_cache_bytes = 0\ncontrol = \"unix:listener.sock\"",
        )
        .unwrap();
    let config2 = second_authority(&lab, &config);
    let first = lab.start_authority(&config).unwrap();
    let second = start_second(&lab, &config2);
    let (listener, dns) = lab.start_listener(&config).unwrap();
    eventually(Duration::from_secs(10), "both authorities up", || {
        all_up(&config)
    })
    .unwrap();

    let load = Load::start(dns, 4, "www.example.com.", "192.0.2.80");
    load.wait_for(500);
    // A planned stop: SIGTERM, the authority says NOT_SERVING and ends its streams.
    assert!(first.terminate(Duration::from_secs(10)).unwrap());
    load.wait_for(500);
    let status = backends(&config);
    assert!(
        status
            .iter()
            .any(|(e, connected, _)| e.ends_with("/authority.sock") && !connected),
        "{status:?}"
    );
    // Back, and seen again by the listener before the other goes.
    let first = lab.start_authority(&config).unwrap();
    eventually(
        Duration::from_secs(10),
        "the first authority is back",
        || all_up(&config),
    )
    .unwrap();
    load.wait_for(500);
    // A crash: SIGKILL, nothing said; the streams break under the queries.
    second.kill();
    load.wait_for(500);
    let asked = load.finish_without_failures();
    assert!(asked >= 2000, "{asked}");
    drop((first, listener));
}
