//! Sextant across hosts: network namespaces made by the test (198.18.0.0/24, no
//! route out), gRPC between them in mutual TLS, a listener host sending to two
//! authority hosts — a primary and a secondary that transferred the zone from it —
//! and to a resolver host (recursing from a root its own authority serves, not one
//! the front sees); one authority host's daemon killed under load: no query lost.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sextant_systest::{Daemon, Host, HostNetwork, TestCa, binary, eventually, netns_unavailable};

use crate::EXAMPLE_ZONE;

/// A host's directory in the lab, with `[grpc]` for its own certificate.
struct Node {
    host: Host,
    dir: PathBuf,
    grpc: String,
}

impl Node {
    fn new(lab: &Path, host: &Host, ca: &TestCa) -> Node {
        let dir = lab.join(&host.name);
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = ca.host_at(&host.name, host.address.into()).unwrap();
        let grpc = format!(
            "\n[grpc]\nca = \"{}\"\ncertificate = \"{}\"\nkey = \"{}\"\n",
            ca.certificate().display(),
            cert.display(),
            key.display()
        );
        Node {
            host: host.clone(),
            dir,
            grpc,
        }
    }

    /// Writes this host's config (`text` and its `[grpc]`).
    fn config(&self, text: &str) -> PathBuf {
        let path = self.dir.join("sextant.toml");
        std::fs::write(
            &path,
            format!("[log]\nlevel = \"info\"\n{text}{}", self.grpc),
        )
        .unwrap();
        path
    }

    fn start(&self, daemon: &str, ready: &str) -> Daemon {
        Daemon::start_in_netns(
            &self.host.netns,
            daemon,
            &self.dir.join("sextant.toml"),
            &self.dir.join(ready),
            &self.dir,
        )
        .unwrap()
    }

    /// `sextantctl status --json` run on this host with `config`.
    fn status(&self, config: &Path) -> (Option<i32>, serde_json::Value) {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.host.netns])
            .arg(binary("sextantctl").unwrap())
            .arg("--config")
            .arg(config)
            .args(["status", "--json"])
            .output()
            .unwrap();
        let json = serde_json::from_slice(&output.stdout).unwrap_or_default();
        (output.status.code(), json)
    }
}

#[test]
fn an_authority_host_dies_under_load_and_no_query_is_lost() {
    if let Some(reason) = netns_unavailable() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let lab = sextant_systest::Lab::new().unwrap();
    let address = |last: u8| Ipv4Addr::new(198, 18, 0, last);
    let network = HostNetwork::create(&[
        ("front", address(1)),
        ("primary", address(2)),
        ("secondary", address(3)),
        ("resolver", address(4)),
    ])
    .unwrap();
    let ca = TestCa::new(lab.path(), "cluster").unwrap();
    let node = |name: &str| Node::new(lab.path(), network.host(name).unwrap(), &ca);
    let (front, primary, secondary, resolver) = (
        node("front"),
        node("primary"),
        node("secondary"),
        node("resolver"),
    );

    // The primary: the zone from its file, transfers out through its own listener.
    std::fs::write(primary.dir.join("example.com.zone"), EXAMPLE_ZONE).unwrap();
    let d = primary.dir.display();
    primary.config(&format!(
        "[listener]\nlisten = [\"198.18.0.2:53\"]\nready_file = \"{d}/listener.ready.json\"\n\
         [authority]\ngrpc = \"tcp:198.18.0.2:7001\"\nready_file = \"{d}/authority.ready.json\"\n\
         allow_transfer = [\"198.18.0.0/24\"]\ncatalog = \"catalog.invalid\"\n\
         [[authority.zone]]\nname = \"example.com\"\nfile = \"{d}/example.com.zone\"\n"
    ));
    let primary_authority = primary.start("sextant-authority", "authority.ready.json");
    let _primary_listener = primary.start("sextant-listener", "listener.ready.json");

    // The secondary: the zone by AXFR from the primary host, served by its authority,
    // found in the primary's catalog zone.
    let d = secondary.dir.display();
    let secondary_config = secondary.config(&format!(
        "[authority]\ngrpc = \"tcp:198.18.0.3:7001\"\nready_file = \"{d}/authority.ready.json\"\n\
         [transfer]\ngrpc = \"unix:{d}/transfer.sock\"\nstate_dir = \"{d}/state\"\n\
         ready_file = \"{d}/transfer.ready.json\"\nmin_refresh = \"1s\"\n\
         [[transfer.zone]]\nname = \"catalog.invalid\"\nprimaries = [\"198.18.0.2:53\"]\ncatalog = true\n"
    ));
    let _transfer = secondary.start("sextant-transfer", "transfer.ready.json");
    let _secondary_authority = secondary.start("sextant-authority", "authority.ready.json");
    eventually(
        Duration::from_secs(20),
        "the secondary serves the zone",
        || {
            let (_, json) = secondary.status(&secondary_config);
            json["daemons"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["daemon"] == "sextant-authority")
                .flat_map(|d| d["zones"].as_array().cloned().unwrap_or_default())
                .any(|z| z["name"] == "example.com." && z["serial"] == 2026112101)
        },
    )
    .unwrap();

    // The resolver host: recursion from a root served on its own address (unsigned,
    // so no validation); its gRPC endpoint is the one other hosts see.
    let d = resolver.dir.display();
    std::fs::write(resolver.dir.join("root.zone"), ROOT_ZONE).unwrap();
    std::fs::write(resolver.dir.join("test.zone"), TEST_ZONE).unwrap();
    std::fs::write(
        resolver.dir.join("root.hints"),
        ".  3600000 NS ns.\nns. 3600000 A 198.18.0.4\n",
    )
    .unwrap();
    resolver.config(&format!(
        "[listener]\nlisten = [\"198.18.0.4:53\"]\nready_file = \"{d}/listener.ready.json\"\n\
         authority = \"unix:{d}/authority.sock\"\n\
         [authority]\ngrpc = \"unix:{d}/authority.sock\"\nready_file = \"{d}/authority.ready.json\"\n\
         [[authority.zone]]\nname = \".\"\nfile = \"{d}/root.zone\"\n\
         [[authority.zone]]\nname = \"test\"\nfile = \"{d}/test.zone\"\n\
         [resolver]\ngrpc = \"tcp:198.18.0.4:7001\"\nready_file = \"{d}/resolver.ready.json\"\n\
         root_hints = \"{d}/root.hints\"\nvalidation = false\nstate_dir = \"{d}/state\"\n"
    ));
    let _root_authority = resolver.start("sextant-authority", "authority.ready.json");
    let _root_listener = resolver.start("sextant-listener", "listener.ready.json");
    let _resolver = resolver.start("sextant-resolver", "resolver.ready.json");

    // The front: one listener, both authorities and the resolver over mutual TLS, no
    // packet cache.
    let d = front.dir.display();
    let front_config = front.config(&format!(
        "[listener]\nlisten = [\"198.18.0.1:53\"]\nready_file = \"{d}/listener.ready.json\"\n\
         authority = [\"tcp:198.18.0.2:7001\", \"tcp:198.18.0.3:7001\"]\n\
         resolver = [\"tcp:198.18.0.4:7001\"]\nallow_recursion = [\"198.18.0.0/24\"]\n\
         packet_cache_bytes = 0\ncontrol = \"unix:{d}/listener.sock\"\n"
    ));
    let _front_listener = front.start("sextant-listener", "listener.ready.json");
    eventually(
        Duration::from_secs(20),
        "both authorities and the resolver connected and serving",
        || {
            let (_, json) = front.status(&front_config);
            let backends: Vec<_> = json["daemons"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|d| d["backends"].as_array().cloned().unwrap_or_default())
                .collect();
            backends.len() == 3
                && backends
                    .iter()
                    .all(|b| b["connected"] == true && b["serving"] == true)
        },
    )
    .unwrap();

    // Recursion crosses three hosts: front listener, resolver host, primary host.
    eventually(Duration::from_secs(20), "www.test resolved", || {
        let output = Command::new("ip")
            .args(["netns", "exec", &front.host.netns, "dig"])
            .args([
                "+short",
                "+time=2",
                "+tries=1",
                "@198.18.0.1",
                "www.test",
                "A",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim() == "192.0.2.99"
    })
    .unwrap();

    // A host without our CA's certificate is refused by the authorities.
    let stranger = front.dir.join("stranger.toml");
    std::fs::write(
        &stranger,
        "[listener]\nlisten = [\"198.18.0.1:53\"]\nauthority = \"tcp:198.18.0.2:7001\"\n[grpc]\nallow_plaintext = true\n",
    )
    .unwrap();
    assert_eq!(front.status(&stranger).0, Some(1));

    // Load from the front host; the primary's authority is killed a second in.
    let queries = front.dir.join("queries.txt");
    std::fs::write(
        &queries,
        "www.example.com A\nftp.example.com A\nexample.com SOA\nwww.example.com AAAA\nwww.test A\n",
    )
    .unwrap();
    let mut dnsperf = Command::new("ip")
        .args(["netns", "exec", &front.host.netns, "dnsperf"])
        .args([
            "-s",
            "198.18.0.1",
            "-p",
            "53",
            "-l",
            "4",
            "-Q",
            "2000",
            "-t",
            "2",
            "-d",
        ])
        .arg(&queries)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dnsperf (package dnsperf) runs");
    std::thread::sleep(Duration::from_secs(1));
    primary_authority.kill();
    let started = Instant::now();
    while dnsperf.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = dnsperf.kill();
            panic!("dnsperf did not end");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = dnsperf.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    eprintln!("dnsperf on the front host, the primary's authority killed 1 s in:\n{report}");
    let field = |name: &str| -> String {
        report
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{report}"))
            .to_string()
    };
    let sent: u64 = field("Queries sent:")
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(sent >= 4000, "{report}");
    assert!(field("Queries lost:").contains(" 0 (0.00%)"), "{report}");
    let codes = field("Response codes:");
    assert!(
        codes.contains("NOERROR") && codes.contains("(100.00%)"),
        "{report}"
    );
}

/// The resolver host's root, served on that host.
const ROOT_ZONE: &str = "\
$TTL 3600
@     IN SOA ns. hostmaster.ns. 1 7200 3600 1209600 300
      IN NS  ns.
ns.   IN A   198.18.0.4
test. IN NS  ns.test.
ns.test. IN A 198.18.0.4
";

const TEST_ZONE: &str = "\
$TTL 3600
@   IN SOA ns hostmaster 1 7200 3600 1209600 300
    IN NS  ns
ns  IN A   198.18.0.4
www IN A   192.0.2.99
";

#[test]
fn the_cluster_samples_pass_check_with_their_files_in_place() {
    let lab = sextant_systest::Lab::new().unwrap();
    let ca = TestCa::new(lab.path(), "sample").unwrap();
    let (cert, key) = ca.host("host").unwrap();
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples");
    let zone = samples.join("zones/example.com.zone");
    let mut checked = 0;
    for file in [
        "front.toml",
        "primary.toml",
        "secondary.toml",
        "resolver.toml",
    ] {
        let text = std::fs::read_to_string(samples.join("cluster").join(file))
            .unwrap()
            .replace(
                "/etc/sextant/tls/cluster-ca.pem",
                &ca.certificate().display().to_string(),
            )
            .replace("/etc/sextant/tls/host.pem", &cert.display().to_string())
            .replace("/etc/sextant/tls/host.key", &key.display().to_string())
            .replace(
                "/etc/sextant/zones/example.com.zone",
                &zone.display().to_string(),
            )
            .replace(
                "/var/lib/sextant",
                &lab.path().join("state").display().to_string(),
            )
            .replace(
                "/run/sextant",
                &lab.path().join("run").display().to_string(),
            );
        let config = lab.write(file, &text).unwrap();
        for (section, daemon) in [
            ("[listener]", "sextant-listener"),
            ("[authority]", "sextant-authority"),
            ("[transfer]", "sextant-transfer"),
            ("[resolver]", "sextant-resolver"),
        ] {
            if text.contains(section) {
                let output = Command::new(binary(daemon).unwrap())
                    .arg("--config")
                    .arg(&config)
                    .arg("--check")
                    .output()
                    .unwrap();
                assert!(
                    output.status.success(),
                    "{daemon} --check {file}: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 7);
}
