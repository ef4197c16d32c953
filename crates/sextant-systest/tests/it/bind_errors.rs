//! A port already in use stops the listener with one clear sentence.

use std::process::Command;

use sextant_systest::{Lab, binary};

use crate::EXAMPLE_ZONE;

#[test]
fn a_port_in_use_is_reported_with_address_cause_and_fix() {
    let lab = Lab::new().unwrap();
    let holder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("127.0.0.1:0", &addr.to_string());
    std::fs::write(&config, text).unwrap();
    let output = Command::new(binary("sextant-listener").unwrap())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr} (UDP)"))
            && stderr.contains("another program already uses this port"),
        "{stderr}"
    );
}
