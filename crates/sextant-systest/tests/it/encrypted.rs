//! DNS over TLS (RFC 7858) and over HTTPS (RFC 8484) with the real clients: kdig
//! and dig, each over DoT and DoH (GET and POST); padded queries get padded
//! answers; garbage before the ClientHello and a handshake that never comes are
//! closed without harm; SIGHUP swaps the certificate for new connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sextant_systest::{Lab, Suite};

use crate::EXAMPLE_ZONE;

/// A self-signed certificate for localhost and 127.0.0.1 (its own CA).
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{made:?}");
    (cert, key)
}

fn start(lab: &Lab, extra: &str) -> (Suite, SocketAddr, SocketAddr, PathBuf) {
    let (cert, key) = certificate(lab.path(), "server");
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            &format!(
                "{extra}\n[listener.tls]\ndot = [\"127.0.0.1:0\"]\ndoh = [\"127.0.0.1:0\"]\ncertificate = \"{}\"\nkey = \"{}\"\nhandshake_timeout = \"1s\"\n",
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let address = |transport: &str| -> SocketAddr {
        suite
            .listener
            .ready()
            .get(transport)
            .and_then(|v| v.get(0))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .parse()
            .unwrap()
    };
    let (dot, doh) = (address("dot"), address("doh"));
    (suite, dot, doh, cert)
}

/// A client's output, which must show the zone's address of www.
fn run(program: &str, args: &[String]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{program} {args:?}: {output:?}");
    text
}

fn kdig(server: SocketAddr, ca: &Path, transport: &[&str]) -> String {
    let mut args = vec![
        format!("@{}", server.ip()),
        "-p".into(),
        server.port().to_string(),
        format!("+tls-ca={}", ca.display()),
        "+tls-hostname=localhost".into(),
        "+timeout=3".into(),
        "+retry=0".into(),
    ];
    args.extend(transport.iter().map(|s| s.to_string()));
    args.extend(["www.example.com.".into(), "A".into()]);
    run("kdig", &args)
}

fn dig(server: SocketAddr, transport: &str) -> String {
    let args = vec![
        format!("@{}", server.ip()),
        "-p".into(),
        server.port().to_string(),
        transport.into(),
        "+tries=1".into(),
        "+time=3".into(),
        "www.example.com.".into(),
        "A".into(),
    ];
    run("dig", &args)
}

fn answers_www(output: &str) {
    assert!(
        output.contains("192.0.2.80") && output.contains("NOERROR"),
        "{output}"
    );
}

#[test]
fn kdig_and_dig_get_answers_over_tls_and_https_and_padded_queries_get_padded_answers() {
    let lab = Lab::new().unwrap();
    let (suite, dot, doh, ca) = start(&lab, "packet_cache_bytes = 0");
    answers_www(&kdig(dot, &ca, &["+tls"]));
    answers_www(&kdig(doh, &ca, &["+https"]));
    answers_www(&kdig(doh, &ca, &["+https", "+https-get"]));
    answers_www(&dig(dot, "+tls"));
    answers_www(&dig(doh, "+https"));
    answers_www(&dig(doh, "+https-get"));

    // RFC 8467: a padded query's answer is padded to a block of 468 bytes.
    let padded = kdig(dot, &ca, &["+tls", "+padding"]);
    answers_www(&padded);
    assert!(padded.contains("PADDING"), "{padded}");
    let size = padded
        .lines()
        .find_map(|l| l.split("Received ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_default();
    assert_eq!(size % 468, 0, "{padded}");
    drop(suite);
}

#[test]
fn garbage_and_silent_handshakes_are_closed_and_serving_goes_on() {
    let lab = Lab::new().unwrap();
    let (suite, dot, doh, ca) = start(&lab, "");
    for port in [dot, doh] {
        // Bytes that are no ClientHello: the connection ends at once.
        let mut garbage = TcpStream::connect(port).unwrap();
        garbage
            .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0])
            .unwrap();
        garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        garbage
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buffer = [0u8; 512];
        let started = Instant::now();
        while matches!(garbage.read(&mut buffer), Ok(n) if n > 0) {}
        assert!(started.elapsed() < Duration::from_secs(4));
        // Nothing at all: closed after the 1 s handshake timeout.
        let mut silent = TcpStream::connect(port).unwrap();
        silent
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = Instant::now();
        let read = silent.read(&mut buffer);
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
    }
    answers_www(&kdig(dot, &ca, &["+tls"]));
    answers_www(&kdig(doh, &ca, &["+https"]));
    drop(suite);
}

/// Sends the listener SIGHUP and waits until its log shows `logged`.
fn reload(suite: &Suite, logged: &str) {
    let pid = suite.listener.pid().to_string();
    let sent = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(sent.success());
    sextant_systest::eventually(Duration::from_secs(10), logged, || {
        suite.listener.log_text().contains(logged)
    })
    .unwrap();
}

#[test]
fn sighup_serves_new_connections_with_the_new_certificate() {
    let lab = Lab::new().unwrap();
    let (suite, dot, _, served) = start(&lab, "");
    answers_www(&kdig(dot, &served, &["+tls"]));
    let old_ca = lab.path().join("old.pem");
    std::fs::copy(&served, &old_ca).unwrap();
    // A new certificate in the same files, then SIGHUP.
    let (new_cert, new_key) = certificate(lab.path(), "renewed");
    std::fs::copy(&new_cert, lab.path().join("server.pem")).unwrap();
    std::fs::copy(&new_key, lab.path().join("server.key")).unwrap();
    reload(&suite, "SIGHUP: TLS certificate reloaded");
    answers_www(&kdig(dot, &new_cert, &["+tls"]));
    // The old certificate is no longer what new connections see.
    let old = Command::new("kdig")
        .args([
            format!("@{}", dot.ip()),
            "-p".into(),
            dot.port().to_string(),
            format!("+tls-ca={}", old_ca.display()),
            "+tls-hostname=localhost".into(),
            "+timeout=2".into(),
            "+retry=0".into(),
            "www.example.com.".into(),
        ])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&old.stdout).contains("192.0.2.80"),
        "{old:?}"
    );
    // A broken key file fails the configuration's checks: nothing changes, the
    // certificate in use stays.
    std::fs::write(lab.path().join("server.key"), "not a key\n").unwrap();
    reload(&suite, "SIGHUP: the configuration does not load");
    answers_www(&kdig(dot, &new_cert, &["+tls"]));
}

#[test]
fn dnstap_names_dot_and_doh_and_logs_the_padded_answer_as_sent() {
    use crate::dnstap::{dnstap_yaml, entries};
    let lab = Lab::new().unwrap();
    let (suite, dot, doh, ca) = start(
        &lab,
        "packet_cache_bytes = 0\n\n[listener.dnstap]\nfile = \"dnstap.fstrm\"\n",
    );
    answers_www(&kdig(dot, &ca, &["+tls", "+padding"]));
    answers_www(&kdig(doh, &ca, &["+https"]));
    let Suite { listener, .. } = suite;
    assert!(listener.terminate(Duration::from_secs(10)).unwrap());

    let yaml = dnstap_yaml(&lab.path().join("dnstap.fstrm"));
    assert_eq!(entries(&yaml, "AUTH_QUERY"), 2, "{yaml}");
    assert_eq!(entries(&yaml, "AUTH_RESPONSE"), 2, "{yaml}");
    // dnstap-read (BIND 9.18) predates the DOT and DOH values and shows them as
    // UDP: the transports are read back with the schema itself.
    let file = std::fs::File::open(lab.path().join("dnstap.fstrm")).unwrap();
    let mut reader = sextant_dnstap::frames::Reader::new(file).unwrap();
    let mut responses = Vec::new();
    while let Some(frame) = reader.next_frame().unwrap() {
        let entry = <sextant_dnstap::schema::Dnstap as prost::Message>::decode(&frame[..]).unwrap();
        let message = entry.message.unwrap();
        if let Some(response) = message.response_message {
            responses.push((
                message.socket_protocol,
                message.http_protocol,
                response.len(),
            ));
        }
    }
    use sextant_dnstap::schema::{HttpProtocol, SocketProtocol};
    let dot = responses
        .iter()
        .find(|r| r.0 == Some(SocketProtocol::Dot as i32))
        .expect("a DoT response entry");
    let doh = responses
        .iter()
        .find(|r| r.0 == Some(SocketProtocol::Doh as i32))
        .expect("a DoH response entry");
    assert_eq!(doh.1, Some(HttpProtocol::Http2 as i32));
    assert_eq!(dot.1, None);
    // The DoT answer as it went out: padded to a multiple of 468 bytes.
    assert_eq!(dot.2 % 468, 0, "{responses:?}");
}
