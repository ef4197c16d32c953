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

/// The whole suite under a real systemd: `cargo xtask install --destdir` stages the
/// tree, `scripts/boot-under-systemd.sh` boots systemd as PID 1 of its own namespaces
/// on a throw-away overlay of the host's root (the host's files are never written)
/// and asks for sextant.target. Then dig, sextantctl and systemctl against it.
///
/// Needs root, systemd, unshare, nsenter and overlayfs; without them the test says
/// why and checks nothing more (the verify test above still runs).
#[test]
fn sextant_target_starts_the_suite_under_systemd() {
    let Some(xtask) = boot_prerequisites() else {
        return;
    };
    let lab = Lab::new().unwrap();
    let stage = lab.path().join("stage");
    let scratch = lab.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let installed = Command::new(&xtask)
        .args([
            "install",
            "--debug",
            "--no-build",
            "--prefix",
            "/usr",
            "--destdir",
        ])
        .arg(&stage)
        .output()
        .unwrap();
    assert!(
        installed.status.success(),
        "xtask install failed: {}",
        String::from_utf8_lossy(&installed.stderr)
    );
    for file in [
        "usr/bin/sextant-listener",
        "usr/bin/sextantctl",
        "usr/lib/systemd/system/sextant.target",
        "usr/lib/systemd/system/sextant-resolver.service",
        "usr/lib/sysusers.d/sextant.conf",
        "usr/share/doc/sextant/operations.md",
        "etc/sextant/sextant.toml",
        "etc/sextant/zones/example.com.zone",
    ] {
        assert!(stage.join(file).is_file(), "xtask install left out {file}");
    }

    let boot = Boot::start(&scratch, &stage);
    let state = boot.wait_until_booted();
    if state != "running" {
        panic!(
            "the boot ended {state:?}, not \"running\":\n{}\n{}",
            boot.run(&["systemctl", "--no-pager", "--failed"]).1,
            boot.run(&["journalctl", "--no-pager", "-n", "60", "-u", "sextant-*"])
                .1
        );
    }
    let (ok, units) = boot.run(&IS_ACTIVE);
    assert!(ok, "not every daemon is active:\n{units}");

    // Answers on port 53 over UDP and TCP, v4 and v6, from the installed sample zone.
    for args in [
        &["@127.0.0.1", "www.example.com", "A"][..],
        &["@127.0.0.1", "www.example.com", "A", "+tcp"][..],
        &["@::1", "www.example.com", "A"][..],
    ] {
        let answer = boot.dig(args);
        assert_eq!(answer.trim(), "192.0.2.80", "dig {args:?}");
    }

    let (ok, status) = boot.run(&["/usr/bin/sextantctl", "status"]);
    assert!(ok, "sextantctl status failed:\n{status}");
    for expected in [
        "sextant-authority",
        "sextant-transfer",
        "sextant-resolver",
        "example.com.",
    ] {
        assert!(status.contains(expected), "{expected} missing:\n{status}");
    }

    // Privileges as the units grant them: every daemon as `sextant`, and only the
    // listener holding CAP_NET_BIND_SERVICE (bit 10).
    for (daemon, capabilities) in [
        ("sextant-listener", "0000000000000400"),
        ("sextant-authority", "0000000000000000"),
        ("sextant-resolver", "0000000000000000"),
        ("sextant-transfer", "0000000000000000"),
    ] {
        let (_, pid) = boot.run(&["systemctl", "show", "-P", "MainPID", daemon]);
        let (_, proc_status) = boot.run(&["cat", &format!("/proc/{}/status", pid.trim())]);
        let field = |name: &str| {
            proc_status
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let (_, sextant_uid) = boot.run(&["id", "-u", "sextant"]);
        assert_eq!(
            field("Uid:").get(1).copied(),
            Some(sextant_uid.trim()),
            "{daemon} does not run as the sextant user"
        );
        assert_eq!(
            field("CapEff:").get(1).copied(),
            Some(capabilities),
            "{daemon}'s effective capabilities"
        );
    }

    let (ok, reload) = boot.run(&[
        "systemctl",
        "reload",
        "sextant-authority",
        "sextant-listener",
    ]);
    assert!(ok, "systemctl reload failed:\n{reload}");
    assert_eq!(
        boot.dig(&["@127.0.0.1", "www.example.com", "A"]).trim(),
        "192.0.2.80"
    );

    // The listener replaced in place (SIGUSR2 to the main PID) under a stream of
    // queries: a new main PID, the unit active throughout, every query answered.
    let main_pid = || {
        boot.run(&["systemctl", "show", "-P", "MainPID", "sextant-listener"])
            .1
            .trim()
            .to_string()
    };
    let before = main_pid();
    let batch = lab.path().join("queries.batch");
    std::fs::write(&batch, "@127.0.0.1 www.example.com A\n".repeat(20_000)).unwrap();
    let init = boot.init.to_string();
    let asking = std::thread::spawn(move || {
        Command::new("timeout")
            .args(["60", "nsenter", "-t", &init, "-n", "dig"])
            .args(["+short", "+time=1", "+tries=1", "-f"])
            .arg(&batch)
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .unwrap_or_default()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (ok, killed) = boot.run(&[
        "systemctl",
        "kill",
        "--signal=SIGUSR2",
        "--kill-whom=main",
        "sextant-listener",
    ]);
    assert!(ok, "systemctl kill failed:\n{killed}");
    let replacing = std::time::Instant::now();
    let mut after = main_pid();
    while after == before && replacing.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        after = main_pid();
    }
    let replaced_while_asking = !asking.is_finished();
    let answers = asking.join().unwrap();
    assert_ne!(
        after,
        before,
        "no new main PID after SIGUSR2:\n{}",
        boot.run(&[
            "journalctl",
            "--no-pager",
            "-n",
            "30",
            "-u",
            "sextant-listener"
        ])
        .1
    );
    assert!(
        replaced_while_asking,
        "the queries ended before the listener was replaced: make the batch longer"
    );
    let answered = answers.lines().filter(|l| *l == "192.0.2.80").count();
    assert_eq!(
        answered,
        20_000,
        "{} other lines",
        answers.lines().count() - answered
    );
    let (_, state) = boot.run(&["systemctl", "is-active", "sextant-listener"]);
    assert_eq!(state.trim(), "active");
    eprintln!("listener replaced under dig: PID {before} -> {after}, 20000 of 20000 answered");

    let (ok, stop) = boot.run(&["systemctl", "stop", "sextant.target"]);
    assert!(ok, "systemctl stop failed:\n{stop}");
    // The daemons PartOf the target get their stop jobs in the same transaction, but
    // systemctl returns once the target's own job is done: poll for the rest.
    let stopping = std::time::Instant::now();
    loop {
        let (_, states) = boot.run(&IS_ACTIVE);
        let states: Vec<_> = states.split_whitespace().map(str::to_owned).collect();
        if states.iter().all(|s| s == "inactive") {
            break;
        }
        assert!(
            stopping.elapsed() < std::time::Duration::from_secs(20)
                && !states.iter().any(|s| s == "failed"),
            "stopping sextant.target left {states:?}:\n{}",
            boot.run(&[
                "sh",
                "-c",
                "journalctl --no-pager -n 400 | grep -v '\"level\"' | grep -i listener"
            ])
            .1
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    eprintln!(
        "every daemon stopped {:?} after the target",
        stopping.elapsed()
    );
}

/// Prints one state per daemon, in this order.
const IS_ACTIVE: [&str; 6] = [
    "systemctl",
    "is-active",
    "sextant-transfer",
    "sextant-authority",
    "sextant-resolver",
    "sextant-listener",
];

/// The xtask binary when a boot can be tried here; `None` (with the reason printed)
/// when it cannot.
fn boot_prerequisites() -> Option<PathBuf> {
    let skip = |why: &str| {
        eprintln!("SKIPPED sextant_target_starts_the_suite_under_systemd: {why}");
        None
    };
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        });
    if uid.as_deref() != Some("0") {
        return skip("namespaces and mounts need root");
    }
    for tool in [
        "/lib/systemd/systemd",
        "/usr/bin/unshare",
        "/usr/bin/nsenter",
    ] {
        if !Path::new(tool).exists() {
            return skip(&format!("{tool} is not installed"));
        }
    }
    let have = |program: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    for program in ["ip", "chroot", "timeout"] {
        if !have(program) {
            return skip(&format!("{program} is not installed"));
        }
    }
    let Ok(listener) = binary("sextant-listener") else {
        return skip("the binaries are not built");
    };
    let xtask = listener.with_file_name("xtask");
    if !xtask.is_file() {
        return skip("target/debug/xtask is not built; run the tests with `cargo xtask test`");
    }
    Some(xtask)
}

/// systemd booted in its own namespaces; killing its PID 1 on drop ends them all.
struct Boot {
    unshare: std::process::Child,
    init: u32,
}

const BOOT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(90);

impl Boot {
    fn start(scratch: &Path, stage: &Path) -> Boot {
        use std::os::unix::process::CommandExt as _;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/boot-under-systemd.sh");
        let log = std::fs::File::create(scratch.with_file_name("boot.log")).unwrap();
        // `timeout` bounds the whole boot even if this test process dies.
        let mut unshare = Command::new("timeout")
            .args([
                "-s", "KILL", "300", "unshare", "--pid", "--fork", "--mount", "--net",
            ])
            .args(["--uts", "--ipc", "--propagation", "private", "bash"])
            .arg(script)
            .arg(scratch)
            .arg(stage)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        // timeout → unshare → (fork) bash, which execs chroot, which execs systemd.
        let started = std::time::Instant::now();
        loop {
            if let Some(init) = grandchild(unshare.id()) {
                return Boot { unshare, init };
            }
            if let Ok(Some(status)) = unshare.try_wait() {
                let log =
                    std::fs::read_to_string(scratch.with_file_name("boot.log")).unwrap_or_default();
                panic!("the boot script ended ({status}) before systemd started:\n{log}");
            }
            assert!(
                started.elapsed() < BOOT_DEADLINE,
                "systemd did not start in {BOOT_DEADLINE:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// `systemctl is-system-running --wait`: "running" once every unit asked for has
    /// started, "degraded" when one failed.
    fn wait_until_booted(&self) -> String {
        let started = std::time::Instant::now();
        loop {
            let (_, state) = self.run(&["systemctl", "is-system-running", "--wait"]);
            let state = state.trim().to_owned();
            if state == "running" || state == "degraded" {
                return state;
            }
            assert!(
                started.elapsed() < BOOT_DEADLINE,
                "systemd did not finish booting in {BOOT_DEADLINE:?}: {state}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Runs a command inside the booted system (its namespaces and root).
    fn run(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new("timeout")
            .args([
                "30",
                "nsenter",
                "-t",
                &self.init.to_string(),
                "-a",
                "-r",
                "-w",
            ])
            .args(args)
            .output()
            .unwrap();
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    }

    /// The host's dig, in the booted system's network namespace.
    fn dig(&self, args: &[&str]) -> String {
        let output = Command::new("timeout")
            .args(["30", "nsenter", "-t", &self.init.to_string(), "-n", "dig"])
            .args(["+short", "+time=2", "+tries=2"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// The PID of the child of the child of `pid`, if it exists yet.
fn grandchild(pid: u32) -> Option<u32> {
    let child = first_child(pid)?;
    first_child(child)
}

fn first_child(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Drop for Boot {
    fn drop(&mut self) {
        // SIGKILL to a PID namespace's init kills every process in it; the mounts go
        // with the mount namespace.
        let _ = Command::new("kill")
            .args(["-KILL", &self.init.to_string()])
            .status();
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}
