//! gRPC between hosts in mutual TLS (`[grpc]`): the listener reaches an authority on
//! a TCP endpoint through TLS 1.3 with certificates from the operator's CA, and a
//! client without one, or with one from another CA, is refused. A new certificate is
//! read on SIGHUP without a dropped query.

use std::path::Path;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use sextant_systest::{Lab, TestCa, eventually, free_port, query_udp, sextantctl};

use crate::EXAMPLE_ZONE;

fn grpc_section(ca: &Path, certificate: &Path, key: &Path) -> String {
    format!(
        "\n[grpc]\nca = \"{}\"\ncertificate = \"{}\"\nkey = \"{}\"\n",
        ca.display(),
        certificate.display(),
        key.display()
    )
}

/// The suite's config with the authority on `tcp:127.0.0.1:PORT`, without `[grpc]`.
fn tcp_config(lab: &Lab, port: u16) -> String {
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            "control = \"unix:listener.sock\"",
        )
        .unwrap();
    std::fs::read_to_string(config)
        .unwrap()
        .replace("unix:authority.sock", &format!("tcp:127.0.0.1:{port}"))
}

/// `sextantctl status` with `config` reaches every daemon.
fn status_succeeds(config: &Path) {
    let status = sextantctl(config, &["status"]).unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
}

fn answers(dns: std::net::SocketAddr) -> bool {
    query_udp(dns, "www.example.com.", RecordType::A)
        .is_ok_and(|a| a.metadata.response_code == ResponseCode::NoError && !a.answers.is_empty())
}

#[test]
fn daemons_talk_over_mutual_tls_and_refuse_strangers() {
    let lab = Lab::new().unwrap();
    let ca = TestCa::new(lab.path(), "ours").unwrap();
    let (cert, key) = ca.host("host").unwrap();
    let port = free_port().unwrap();
    let text = tcp_config(&lab, port);
    let config = lab
        .write(
            "sextant.toml",
            &(text.clone() + &grpc_section(&ca.certificate(), &cert, &key)),
        )
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    assert!(answers(suite.dns));
    // sextantctl with the same [grpc] reads the authority's status over TLS.
    status_succeeds(&config);

    // Without a certificate (plaintext on loopback is allowed, but the server
    // speaks TLS only): refused.
    let plain = lab.write("plain.toml", &text).unwrap();
    let refused = sextantctl(&plain, &["status"]).unwrap();
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    // With a certificate from another CA: refused by the authority.
    let theirs = TestCa::new(lab.path(), "theirs").unwrap();
    let (their_cert, their_key) = theirs.host("intruder").unwrap();
    let stranger = lab
        .write(
            "stranger.toml",
            &(text + &grpc_section(&theirs.certificate(), &their_cert, &their_key)),
        )
        .unwrap();
    let refused = sextantctl(&stranger, &["status"]).unwrap();
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let authority = suite.authority.as_ref().unwrap();
    eventually(Duration::from_secs(5), "the refusal is logged", || {
        authority.log_text().contains("TLS handshake failed")
    })
    .unwrap();

    // A new host certificate from the same CA, read on SIGHUP: new connections use
    // it, the listener's open streams go on.
    let (new_cert, new_key) = ca.host("renewed").unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &authority.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    eventually(Duration::from_secs(5), "the reload", || {
        authority
            .log_text()
            .contains("gRPC TLS certificate, key and CA read again")
    })
    .unwrap_or_else(|e| panic!("{e}: {}", authority.log_text()));
    assert!(answers(suite.dns));
    status_succeeds(&config);
}

#[test]
fn plaintext_grpc_off_this_host_is_refused_before_start() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            "authority = [\"unix:authority.sock\", \"tcp:198.18.0.2:7001\"]",
        )
        .unwrap();
    let checked = std::process::Command::new(sextant_systest::binary("sextant-listener").unwrap())
        .args(["--config"])
        .arg(&config)
        .arg("--check")
        .output()
        .unwrap();
    assert!(!checked.status.success());
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(
        stderr.contains("listener.authority") && stderr.contains("mutual TLS"),
        "{stderr}"
    );
}
