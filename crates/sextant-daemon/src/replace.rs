//! SIGUSR2: a daemon that can be replaced while it serves (the listener) starts its
//! successor — the same program path, arguments and environment, so an upgraded
//! binary on disk is the one that runs — waits until the successor says it serves,
//! hands systemd the new main PID, and then stops the usual graceful way. Under
//! systemd this is `systemctl kill --signal=SIGUSR2 --kill-whom=main
//! sextant-listener`: the unit stays active throughout.
//!
//! The successor reports readiness on an abstract Unix datagram socket the
//! predecessor made (named in [`SUCCESSOR_OF`]), not on systemd's notify socket, which
//! only listens to the main process. It is started through a shell that exits at once,
//! so that it is the service manager's child (reparented to it) by the time it becomes
//! the main PID: systemd waits for a main process of its own at stop, but sends a
//! main PID that is another's child SIGKILL straight after SIGTERM.

use std::os::linux::net::SocketAddrExt as _;
use std::time::Duration;

use anyhow::{Context, bail};

/// The environment variable naming the predecessor's readiness socket.
pub const SUCCESSOR_OF: &str = "SEXTANT_SUCCESSOR_OF";
/// A successor has this long to start serving; past it, it is stopped and the
/// running daemon goes on.
const SUCCESSOR_START: Duration = Duration::from_secs(60);
/// How often start-up checks that the successor still runs.
const ALIVE_CHECK: Duration = Duration::from_millis(100);
/// What a successor sends once it serves.
const READY: &[u8] = b"READY=1";

/// Starts the successor and waits for it to serve; returns its PID. On any failure the
/// successor is gone and the caller keeps serving.
pub(crate) async fn start_successor() -> anyhow::Result<u32> {
    let name = format!(
        "sextant-successor-of-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .context("naming the successor's readiness socket")?;
    let socket = std::os::unix::net::UnixDatagram::bind_addr(&address)
        .context("binding the successor's readiness socket")?;
    socket.set_nonblocking(true)?;
    let socket = tokio::net::UnixDatagram::from_std(socket)?;

    let mut arguments = std::env::args_os();
    // The path it was started by (an upgrade replaces that file); `current_exe`
    // would name the old, deleted one.
    let program = match arguments.next() {
        Some(path) if path.as_encoded_bytes().contains(&b'/') => std::path::PathBuf::from(path),
        _ => std::env::current_exe().context("finding this program's path")?,
    };
    // Its log goes where ours does (stderr); it has no use for stdout, which carries
    // its PID back from the shell.
    let mut started = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("\"$0\" \"$@\" 1>&2 </dev/null & echo $!")
        .arg(&program)
        .args(arguments)
        .env(SUCCESSOR_OF, &name)
        // Its watchdog pings are its own (systemd takes them once it is the main PID).
        .env_remove("WATCHDOG_PID")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {} through /bin/sh", program.display()))?;
    // Not `output()`, which would capture stderr too, and so the successor's log.
    let mut said = String::new();
    if let Some(mut stdout) = started.stdout.take() {
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut said).await?;
    }
    started.wait().await?;
    let pid: u32 = said
        .trim()
        .parse()
        .with_context(|| format!("starting {}: the shell gave no PID", program.display()))?;
    tracing::info!(pid, program = %program.display(), "SIGUSR2: successor started");

    let mut buffer = [0u8; 64];
    let outcome = tokio::time::timeout(SUCCESSOR_START, async {
        let mut alive = tokio::time::interval(ALIVE_CHECK);
        loop {
            tokio::select! {
                received = socket.recv(&mut buffer) => return match received {
                    Ok(len) if buffer[..len] == *READY => Ok(()),
                    Ok(_) => Err(anyhow::anyhow!("the successor sent an unexpected message")),
                    Err(error) => Err(anyhow::Error::new(error).context("reading the successor's readiness")),
                },
                _ = alive.tick() => if !running(pid) {
                    bail!("the successor (PID {pid}) exited during start-up; its log says why");
                },
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "the successor did not serve within {SUCCESSOR_START:?}"
        ))
    });
    if let Err(error) = outcome {
        if running(pid) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        return Err(error);
    }
    if let Err(error) = sd_notify::notify(&[sd_notify::NotifyState::MainPid(pid)]) {
        tracing::warn!(%error, "cannot tell systemd the successor's PID");
    }
    Ok(pid)
}

/// Whether process `pid` runs (a zombie, exited but not yet reaped, does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .is_some_and(|state| state.trim_start().starts_with('Z'))
    })
}

/// In a successor: tells the predecessor it serves. `true` when this process is one.
pub(crate) fn tell_predecessor() -> bool {
    let Some(name) = std::env::var_os(SUCCESSOR_OF) else {
        return false;
    };
    let sent = std::os::unix::net::SocketAddr::from_abstract_name(name.as_encoded_bytes())
        .and_then(|address| {
            let socket = std::os::unix::net::UnixDatagram::unbound()?;
            socket.send_to_addr(READY, &address)
        });
    if let Err(error) = sent {
        tracing::warn!(%error, "cannot tell the predecessor this process serves");
    }
    true
}
