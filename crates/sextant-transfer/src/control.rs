//! Operator control of the transfer daemon: per-zone status (serial, last success,
//! last failure and why, next refresh, expired) and forced retransfer.

use std::time::Instant;

use sextant_rpc::{ControlHandler, DaemonStatus, ZoneStatus};

use crate::zones::{Role, ZoneEntry, Zones};

/// Where a zone comes from, for `sextantctl status`: its primaries, and what it is
/// to a catalog zone.
fn source(entry: &ZoneEntry) -> String {
    let primaries = entry
        .primaries
        .iter()
        .map(|p| format!("primary {p}"))
        .collect::<Vec<_>>()
        .join(", ");
    match &*entry.role.lock() {
        Role::Configured => primaries,
        Role::Catalog => format!("{primaries}; catalog zone"),
        Role::Member(member) if member.groups.is_empty() => {
            format!("{primaries}; member of catalog {}", member.catalog)
        }
        Role::Member(member) => format!(
            "{primaries}; member of catalog {} (group {})",
            member.catalog,
            member.groups.join(", ")
        ),
    }
}

impl Zones {
    fn zone_statuses(&self) -> Vec<ZoneStatus> {
        let now = Instant::now();
        let mut statuses: Vec<ZoneStatus> = self
            .all()
            .iter()
            .map(|entry| {
                let published = self.store.published(&entry.key).ok().flatten();
                let state = entry.state.lock();
                ZoneStatus {
                    name: entry.key.clone(),
                    serial: published.map_or(0, |p| p.serial),
                    records: published.map_or(0, |p| p.records),
                    source: source(entry),
                    last_success_seconds_ago: state
                        .last_success
                        .map(|t| t.elapsed().unwrap_or_default().as_secs()),
                    last_failure: state.last_failure.clone().unwrap_or_default(),
                    next_refresh_seconds: state
                        .next_refresh
                        .map(|t| t.saturating_duration_since(now).as_secs()),
                    expired: state.expired,
                    signing: None,
                }
            })
            .collect();
        statuses.sort_by(|a, b| a.name.cmp(&b.name));
        statuses
    }
}

impl ControlHandler for Zones {
    fn status(&self) -> DaemonStatus {
        DaemonStatus {
            daemon: "sextant-transfer".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs(),
            zones: self.zone_statuses(),
            cache: None,
            backends: Vec::new(),
        }
    }

    /// Forces a transfer of `zone` (or of every zone) now.
    async fn reload(&self, zone: Option<String>) -> Result<Vec<ZoneStatus>, String> {
        let wanted = zone.map(|z| z.trim_end_matches('.').to_ascii_lowercase() + ".");
        let mut matched = 0;
        for entry in self
            .all()
            .iter()
            .filter(|e| wanted.as_ref().is_none_or(|w| &e.key == w))
        {
            entry.state.lock().force = true;
            let _ = entry.trigger.try_send(());
            matched += 1;
        }
        if matched == 0 {
            return Err(format!(
                "zone {} is not a secondary zone here",
                wanted.unwrap_or_default()
            ));
        }
        Ok(self.zone_statuses())
    }
}
