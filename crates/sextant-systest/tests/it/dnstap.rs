//! dnstap read back by the field's own tools: the listener's file read by
//! `dnstap-read` (bind9-utils), its socket output taken by `fstrm_capture`
//! (fstrm-bin), reconnected when the reader comes late. The resolver's upstream
//! entries are in `resolver.rs`, beside the lab hierarchy they need.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use sextant_systest::{
    Lab, dig, eventually, free_port, metric, query_tcp, query_udp, scrape_metrics,
};

use crate::EXAMPLE_ZONE;

/// `dnstap-read -y FILE`: every entry in YAML, the DNS messages decoded.
pub(crate) fn dnstap_yaml(file: &Path) -> String {
    let output = Command::new("dnstap-read")
        .arg("-y")
        .arg(file)
        .output()
        .expect("dnstap-read runs (bind9-utils)");
    assert!(
        output.status.success(),
        "dnstap-read failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// How many entries of `kind` (e.g. `AUTH_QUERY`) the YAML holds.
pub(crate) fn entries(yaml: &str, kind: &str) -> usize {
    yaml.lines()
        .filter(|line| line.trim() == format!("type: {kind}"))
        .count()
}

#[test]
fn the_listener_logs_each_exchange_to_a_file_that_dnstap_read_reads() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            "\n[listener.dnstap]\nfile = \"dnstap.fstrm\"\nidentity = \"ns1.lab\"\n",
        )
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let udp = query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    assert_eq!(udp.metadata.response_code, ResponseCode::NoError);
    let tcp = query_tcp(suite.dns, "ftp.example.com.", RecordType::A).unwrap();
    assert_eq!(tcp.metadata.response_code, ResponseCode::NoError);
    // Outside our zones and no resolver: REFUSED by the listener, logged too.
    let refused = dig(suite.dns, &["elsewhere.org", "A", "+norecurse"]).unwrap();
    assert!(refused.contains("REFUSED"), "{refused}");
    // The stream ends (STOP) when the listener stops.
    assert!(suite.listener.terminate(Duration::from_secs(10)).unwrap());

    let yaml = dnstap_yaml(&lab.path().join("dnstap.fstrm"));
    assert_eq!(entries(&yaml, "AUTH_QUERY"), 3, "{yaml}");
    assert_eq!(entries(&yaml, "AUTH_RESPONSE"), 3, "{yaml}");
    assert_eq!(entries(&yaml, "CLIENT_QUERY"), 0, "{yaml}");
    assert!(yaml.contains("identity: ns1.lab"), "{yaml}");
    assert!(yaml.contains("version: sextant "), "{yaml}");
    assert!(yaml.contains("socket_protocol: UDP"), "{yaml}");
    assert!(yaml.contains("socket_protocol: TCP"), "{yaml}");
    assert!(yaml.contains("query_address: \"127.0.0.1\""), "{yaml}");
    // The messages themselves, as dnstap-read decodes them.
    assert!(
        yaml.contains("- 'www.example.com. 3600 IN A 192.0.2.80'"),
        "{yaml}"
    );
    assert!(yaml.contains("status: REFUSED"), "{yaml}");

    // The one-line form: time, AQ/AR, addresses, transport, question.
    let lines = Command::new("dnstap-read")
        .arg(lab.path().join("dnstap.fstrm"))
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&lines.stdout);
    assert_eq!(lines.lines().count(), 6, "{lines}");
    assert!(lines.contains(" AQ ") && lines.contains(" AR "), "{lines}");
    assert!(lines.contains("www.example.com/IN/A"), "{lines}");
}

/// `fstrm_capture` reading dnstap on `socket` into `file`; stopped (SIGTERM, which
/// makes it close the file properly) when dropped.
struct Capture(Child);

impl Capture {
    fn start(socket: &Path, file: &Path) -> Self {
        let child = Command::new("fstrm_capture")
            .args(["-t", "protobuf:dnstap.Dnstap", "-u"])
            .arg(socket)
            .arg("-w")
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fstrm_capture runs (fstrm-bin)");
        Capture(child)
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = eventually(Duration::from_secs(10), "fstrm_capture exits", || {
            matches!(self.0.try_wait(), Ok(Some(_)))
        });
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_socket_output_reaches_fstrm_capture_even_when_it_starts_late() {
    let lab = Lab::new().unwrap();
    let socket = lab.path().join("dnstap.sock");
    let captured = lab.path().join("captured.fstrm");
    let metrics_address = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            &format!(
                "metrics = \"{metrics_address}\"\n\n[listener.dnstap]\nsocket = \"{}\"\nmessages = [\"auth_response\"]\n",
                socket.display()
            ),
        )
        .unwrap();
    // The listener starts with nobody reading: it serves all the same.
    let suite = lab.start_suite(&config).unwrap();
    let early = query_udp(suite.dns, "www.example.com.", RecordType::AAAA).unwrap();
    assert_eq!(early.metadata.response_code, ResponseCode::NoError);
    let capture = Capture::start(&socket, &captured);
    eventually(
        Duration::from_secs(15),
        "the listener connects to fstrm_capture",
        || {
            scrape_metrics(metrics_address)
                .is_ok_and(|text| metric(&text, "sextant_dnstap_connected") == 1.0)
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", suite.listener.log_text()));
    for _ in 0..5 {
        query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    }
    let text = scrape_metrics(metrics_address).unwrap();
    assert!(
        metric(
            &text,
            "sextant_dnstap_dropped_total{reason=\"unavailable\"}"
        ) >= 1.0,
        "{text}"
    );
    assert!(suite.listener.terminate(Duration::from_secs(10)).unwrap());
    capture.stop();

    let yaml = dnstap_yaml(&captured);
    // Only what was selected, only what was sent while connected.
    assert_eq!(entries(&yaml, "AUTH_RESPONSE"), 5, "{yaml}");
    assert_eq!(entries(&yaml, "AUTH_QUERY"), 0, "{yaml}");
}
