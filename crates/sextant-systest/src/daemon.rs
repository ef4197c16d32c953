//! One daemon process started for a test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::READY_TIMEOUT;

/// The path of a workspace binary, next to the test executable's `deps/` folder.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test executable has no target directory")?;
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing; build the daemons first with `cargo build --workspace --bins` (`cargo xtask test` does)",
            path.display()
        );
    }
    Ok(path)
}

/// A child process, killed by PID when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    ready: serde_json::Value,
    log: PathBuf,
}

impl Daemon {
    /// Starts `name --config CONFIG` and waits until it writes `ready_file`.
    pub fn start(
        name: &str,
        config: &Path,
        ready_file: &Path,
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        Self::start_with_env(name, config, ready_file, log_dir, &[])
    }

    /// [`Daemon::start`] with extra environment variables.
    pub fn start_with_env(
        name: &str,
        config: &Path,
        ready_file: &Path,
        log_dir: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::spawn(
            Command::new(binary(name)?),
            name,
            config,
            ready_file,
            log_dir,
            env,
        )
    }

    /// [`Daemon::start`] inside network namespace `netns` (`ip netns exec`, which
    /// execs the daemon: the PID is the daemon's).
    pub fn start_in_netns(
        netns: &str,
        name: &str,
        config: &Path,
        ready_file: &Path,
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", netns]).arg(binary(name)?);
        Self::spawn(command, name, config, ready_file, log_dir, &[])
    }

    fn spawn(
        mut command: Command,
        name: &str,
        config: &Path,
        ready_file: &Path,
        log_dir: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let _ = std::fs::remove_file(ready_file);
        let log = log_dir.join(format!("{name}.log"));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = command
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let mut daemon = Self {
            child,
            ready: serde_json::Value::Null,
            log,
        };
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(ready_file)
                && let Ok(value) = serde_json::from_str(&text)
            {
                daemon.ready = value;
                return Ok(daemon);
            }
            if let Some(status) = daemon.child.try_wait()? {
                bail!(
                    "{name} exited with {status} before it was ready:\n{}",
                    daemon.log_text()
                );
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "{name} not ready after {READY_TIMEOUT:?}:\n{}",
                    daemon.log_text()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The daemon's ready file, as written.
    pub fn ready(&self) -> &serde_json::Value {
        &self.ready
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asks the process to stop (SIGTERM) and waits at most `limit`; returns whether
    /// it exited by itself and successfully in that time.
    pub fn terminate(mut self, limit: std::time::Duration) -> anyhow::Result<bool> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(false)
    }

    /// Sends it `signal` (a name `kill` knows: `HUP`, `USR2`).
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        send_signal(self.child.id(), signal)
    }

    /// Waits at most `limit` for it to exit by itself; its status if it did.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn send_signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid} failed");
    Ok(())
}

/// A daemon a test caused to be started without starting it itself (a listener's
/// successor, started by its predecessor): stopped by its PID when dropped (SIGTERM,
/// then SIGKILL after 10 s), so it never outlives the test.
#[derive(Debug)]
pub struct Adopted {
    pid: u32,
}

impl Adopted {
    /// Takes charge of process `pid`.
    pub fn new(pid: u32) -> Self {
        Self { pid }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends it `signal` (a name `kill` knows).
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        send_signal(self.pid, signal)
    }

    /// Whether it still runs (a zombie counts as ended).
    pub fn running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
    }
}

impl Drop for Adopted {
    fn drop(&mut self) {
        if !self.running() {
            return;
        }
        let _ = send_signal(self.pid, "TERM");
        let started = Instant::now();
        while self.running() && started.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if self.running() {
            let _ = send_signal(self.pid, "KILL");
        }
    }
}
