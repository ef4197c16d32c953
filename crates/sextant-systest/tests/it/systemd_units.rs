//! The units in deploy/ pass `systemd-analyze verify`, checked in a temporary root that
//! holds the binaries where the units expect them (/usr/bin) and the system's own units
//! (sysinit.target and friends). A deliberately broken copy must fail, so the check
//! cannot pass by checking nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use sextant_systest::{Lab, binary};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_symlink() {
            let _ = std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn verify(root: &Path, units: &[PathBuf]) -> (bool, String) {
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args(units)
        .output()
        .expect("running systemd-analyze (install it with `apt-get install systemd`)");
    (
        output.status.success() && output.stderr.is_empty(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn every_unit_passes_systemd_analyze_verify() {
    let lab = Lab::new().unwrap();
    let root = lab.path().join("root");
    let units_dir = root.join("etc/systemd/system");
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    for daemon in [
        "sextant-listener",
        "sextant-authority",
        "sextant-transfer",
        "sextant-resolver",
    ] {
        std::fs::copy(binary(daemon).unwrap(), root.join("usr/bin").join(daemon)).unwrap();
    }
    std::fs::copy("/usr/bin/kill", root.join("bin/kill")).unwrap();
    copy_dir(
        Path::new("/usr/lib/systemd/system"),
        &root.join("usr/lib/systemd/system"),
    );
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let mut units = Vec::new();
    for entry in std::fs::read_dir(&deploy).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".service") || name.ends_with(".target") {
            std::fs::create_dir_all(&units_dir).unwrap();
            std::fs::copy(entry.path(), units_dir.join(&name)).unwrap();
            units.push(units_dir.join(&name));
        }
    }
    assert_eq!(units.len(), 5, "four services and the target");
    let (ok, stderr) = verify(&root, &units);
    assert!(ok, "systemd-analyze verify failed:\n{stderr}");

    let broken = units_dir.join("sextant-broken.service");
    let text = std::fs::read_to_string(units_dir.join("sextant-listener.service"))
        .unwrap()
        .replace("Type=notify", "Type=notify-please");
    std::fs::write(&broken, text).unwrap();
    let (ok, stderr) = verify(&root, &[broken]);
    assert!(!ok, "a broken unit passed verification");
    assert!(stderr.contains("notify-please"), "{stderr}");
}

/// The sd_notify protocol as systemd speaks it: READY=1 once serving, then
/// WATCHDOG=1 at half of `WATCHDOG_USEC`, on the datagram socket in NOTIFY_SOCKET.
#[test]
fn daemons_tell_systemd_they_are_ready_and_ping_the_watchdog() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("example.com", crate::EXAMPLE_ZONE)], "")
        .unwrap();
    let socket_path = lab.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let mut child = std::process::Command::new(binary("sextant-authority").unwrap())
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut ready, mut pings) = (false, 0);
    let mut buffer = [0u8; 512];
    while std::time::Instant::now() < deadline && !(ready && pings >= 3) {
        if let Ok(len) = socket.recv(&mut buffer) {
            let message = String::from_utf8_lossy(&buffer[..len]);
            ready |= message.contains("READY=1");
            pings += usize::from(message.contains("WATCHDOG=1"));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "no READY=1");
    assert!(
        pings >= 3,
        "{pings} watchdog pings in 10 s at a 200 ms watchdog"
    );
}
