//! Readiness: a daemon says it serves only once it really does (sockets bound, zones
//! loaded), through a JSON ready file (for tests and scripts; it carries the bound
//! addresses, so port 0 works) and through systemd's notify socket.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

/// A ready file written on start and removed on drop (clean shutdown).
#[derive(Debug)]
pub struct ReadyFile {
    path: Option<PathBuf>,
}

impl ReadyFile {
    /// Writes `contents` as JSON atomically (temporary file, then rename), so a reader
    /// never sees a half-written file.
    pub fn write<T: Serialize>(path: Option<&Path>, contents: &T) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self { path: None });
        };
        let json = serde_json::to_vec_pretty(contents).context("encoding the ready file")?;
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().with_context(|| format!("cannot write the ready file {}", path.display()))?;
        Ok(Self {
            path: Some(path.to_path_buf()),
        })
    }
}

impl Drop for ReadyFile {
    fn drop(&mut self) {
        // A successor that took over (the listener's restart) has written its own
        // file at the same path by now: that one stays.
        if let Some(path) = &self.path
            && written_by_us(path)
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether the ready file at `path` names this process (or names none).
fn written_by_us(path: &Path) -> bool {
    let Ok(text) = std::fs::read(path) else {
        return false;
    };
    match serde_json::from_slice::<serde_json::Value>(&text) {
        Ok(value) => value
            .get("pid")
            .and_then(serde_json::Value::as_u64)
            .is_none_or(|pid| pid == u64::from(std::process::id())),
        Err(_) => true,
    }
}

/// Tells systemd we serve (no-op outside systemd).
pub fn notify_ready() {
    if let Err(error) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(%error, "cannot notify systemd of readiness");
    }
}

/// Pings systemd's watchdog (`WatchdogSec=` in the unit) at half its interval, from
/// the daemon's own runtime: a runtime that stops making progress stops the pings,
/// and systemd restarts the daemon. Nothing to do outside systemd.
pub(crate) async fn watchdog(shutdown: tokio_util::sync::CancellationToken) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut ticks = tokio::time::interval(interval / 2);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {
                if let Err(error) = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]) {
                    tracing::warn!(%error, "cannot ping the systemd watchdog");
                }
            }
        }
    }
}

/// Tells systemd we are shutting down (no-op outside systemd).
pub fn notify_stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ready_file_is_written_whole_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/ready.json");
        let ready = ReadyFile::write(
            Some(&path),
            &serde_json::json!({"listen": ["127.0.0.1:53"]}),
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("127.0.0.1:53"));
        drop(ready);
        assert!(!path.exists());
    }

    #[test]
    fn a_successors_ready_file_is_left_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        let ours =
            ReadyFile::write(Some(&path), &serde_json::json!({"pid": std::process::id()})).unwrap();
        // The successor writes its own over ours before we stop.
        std::fs::write(&path, r#"{"pid": 1}"#).unwrap();
        drop(ours);
        assert!(path.exists());
    }
}
