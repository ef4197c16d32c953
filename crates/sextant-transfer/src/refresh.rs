//! The refresh event of one secondary zone: on its timer or a NOTIFY, ask the
//! primaries for the SOA serial; when it is newer than the published one, transfer
//! the zone by AXFR into a staged version and publish it only if the whole transfer
//! checks out. Failures schedule a retry; past EXPIRE the zone is marked expired.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::XfrError;
use crate::client::{self, AxfrOutcome};
use crate::expire::is_expired;
use crate::index::RecordIndex;
use crate::serial::is_newer;
use crate::state::SoaTimers;
use crate::zones::{Role, ZoneEntry, Zones};

/// What one refresh did.
#[derive(Debug)]
enum Refreshed {
    UpToDate {
        serial: u32,
    },
    Transferred(AxfrOutcome),
    Incremental {
        serial: u32,
        diffs: usize,
        records: usize,
    },
}

/// Refreshes zone `key` until the daemon stops or the zone is removed.
pub(crate) async fn run(zones: Arc<Zones>, key: String) {
    let Some(zone) = zones.zone(&key) else {
        return;
    };
    let shutdown = zone.stop.clone();
    let zone = &*zone;
    let Some(mut triggered) = zone.triggered.lock().take() else {
        return;
    };
    // Check at once on start: the primary may have moved on while we were down.
    let mut next = tokio::time::Instant::now();
    zones.index_in_background(&key);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
            Some(()) = triggered.recv() => tracing::info!(zone = %key, "NOTIFY received; checking the primary"),
        }
        let started = Instant::now();
        // A zone removed mid-transfer abandons it: the staged version is dropped.
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = refresh_once(&zones, zone) => outcome,
        };
        let result = match &outcome {
            Ok(Refreshed::UpToDate { .. }) => "up_to_date",
            Ok(Refreshed::Transferred(_)) => "axfr",
            Ok(Refreshed::Incremental { .. }) => "ixfr",
            Err(_) => "failed",
        };
        metrics::counter!("sextant_transfer_refreshes_total", "result" => result).increment(1);
        if outcome.is_ok()
            && let Err(error) = zones.store.set_last_refresh(&key, unix_now()).await
        {
            tracing::warn!(zone = %key, %error, "cannot record the refresh time; expiry after a restart will count from the restart");
        }
        if matches!(
            outcome,
            Ok(Refreshed::Transferred(_) | Refreshed::Incremental { .. })
        ) && *zone.role.lock() == Role::Catalog
        {
            crate::catalog_zone::follow(&zones, &key).await;
        }
        let now = Instant::now();
        let mut state = zone.state.lock();
        let was_expired = state.expired;
        let wait = match outcome {
            Ok(refreshed) => {
                state.last_success = Some(SystemTime::now());
                state.last_failure = None;
                state.expired = false;
                match refreshed {
                    Refreshed::UpToDate { serial } => {
                        tracing::debug!(zone = %key, serial, "up to date")
                    }
                    Refreshed::Incremental {
                        serial,
                        diffs,
                        records,
                    } => tracing::info!(
                        zone = %key,
                        serial,
                        diffs,
                        records,
                        seconds = format!("{:.3}", started.elapsed().as_secs_f64()),
                        "zone updated by IXFR and published"
                    ),
                    Refreshed::Transferred(done) => {
                        tracing::info!(
                            zone = %key,
                            serial = done.serial,
                            records = done.records,
                            bytes = done.bytes,
                            messages = done.messages,
                            seconds = format!("{:.3}", started.elapsed().as_secs_f64()),
                            "zone transferred and published"
                        )
                    }
                }
                zones.clamp(state.timers.refresh)
            }
            Err(error) => {
                tracing::warn!(zone = %key, %error, "refresh failed; the published version stays served");
                state.last_failure = Some(error.to_string());
                state.expired = is_expired(&state, zones.started_wall, SystemTime::now());
                if state.expired && !was_expired {
                    tracing::error!(zone = %key, "zone expired: no successful refresh within the SOA expire; answering SERVFAIL");
                }
                zones.clamp(state.timers.retry)
            }
        };
        if state.expired != was_expired {
            zones.notifier().notify();
        }
        metrics::gauge!("sextant_transfer_zone_expired", "zone" => key.clone())
            .set(f64::from(u8::from(state.expired)));
        if let Ok(Some(published)) = zones.store.published(&key) {
            metrics::gauge!("sextant_transfer_zone_serial", "zone" => key.clone())
                .set(f64::from(published.serial));
        }
        let wait = jittered(wait);
        state.next_refresh = Some(now + wait);
        drop(state);
        // After a failed transfer the version's index may have gone with it.
        zones.index_in_background(&key);
        next = tokio::time::Instant::now() + wait;
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Up to 10% off each interval, so zones loaded together do not refresh together.
fn jittered(wait: std::time::Duration) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded randomly per instance: enough for spreading timers.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let tenth = wait / 10;
    let nanos = u64::try_from(tenth.as_nanos()).unwrap_or(u64::MAX);
    wait - std::time::Duration::from_nanos(if nanos == 0 { 0 } else { random % nanos })
}

async fn refresh_once(zones: &Zones, zone: &ZoneEntry) -> Result<Refreshed, XfrError> {
    let published = zones.store.published(&zone.key)?.map(|p| p.serial);
    let force = std::mem::take(&mut zone.state.lock().force);
    let mut last_error = None;
    for primary in &zone.primaries {
        let serial =
            match client::soa_serial(*primary, &zone.name, &zones.timeouts, zone.tsig.as_ref())
                .await
            {
                Ok(serial) => serial,
                Err(error) => {
                    last_error = Some(error);
                    continue;
                }
            };
        if let Some(ours) = published.filter(|_| !force)
            && !is_newer(serial, ours)
        {
            if serial != ours {
                tracing::warn!(zone = %zone.key, %primary, theirs = serial, ours, "primary's serial is older than ours; keeping ours");
            }
            return Ok(Refreshed::UpToDate { serial: ours });
        }
        // A forced retransfer accepts the same serial again, never an older one.
        let floor = published
            .filter(|_| !force)
            .or(published.map(|s| s.wrapping_sub(1)));
        if !force && published.is_some() {
            match incremental(zones, zone, *primary).await {
                Ok(Some(refreshed)) => return Ok(refreshed),
                Ok(None) => {}
                Err(error) => {
                    tracing::info!(zone = %zone.key, %primary, %error, "IXFR failed; falling back to AXFR");
                }
            }
        }
        match transfer(zones, zone, *primary, floor).await {
            Ok(done) => return Ok(Refreshed::Transferred(done)),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or(XfrError::Malformed {
        primary: ([0, 0, 0, 0], 0).into(),
        reason: "no primary configured".into(),
    }))
}

/// An IXFR from our published version: `Ok(None)` when the primary answered with the
/// whole zone (AXFR-style), so that the caller transfers it by AXFR. The differences
/// are checked against the version's index before anything is stored, and only
/// their net change is stored and published (see `sextant_store::Store::publish_step`).
async fn incremental(
    zones: &Zones,
    zone: &ZoneEntry,
    primary: std::net::SocketAddr,
) -> Result<Option<Refreshed>, XfrError> {
    use hickory_proto::rr::Record;
    use hickory_proto::serialize::binary::BinDecodable;

    let malformed = |reason: String| XfrError::Malformed { primary, reason };
    let Some(published) = zones.store.published(&zone.key)? else {
        return Ok(None);
    };
    let Some(ours_bytes) = zones.store.first_record(&zone.key)? else {
        return Ok(None);
    };
    let ours = Record::from_bytes(&ours_bytes)
        .map_err(|e| malformed(format!("our stored SOA does not decode ({e})")))?;
    let ours_serial = crate::axfr::serial_of(&ours);
    let outcome = client::ixfr(
        primary,
        &zone.name,
        &ours,
        &zones.timeouts,
        zones.limits,
        zone.tsig.as_ref(),
    )
    .await?;
    let (soa, diffs) = match outcome {
        crate::ixfr::IxfrOutcome::UpToDate { .. } => {
            return Ok(Some(Refreshed::UpToDate {
                serial: ours_serial,
            }));
        }
        crate::ixfr::IxfrOutcome::AxfrStyle => return Ok(None),
        crate::ixfr::IxfrOutcome::Incremental { soa, diffs } => (soa, diffs),
    };
    let mut index = zones.take_index(zone, &published).await?;
    let change = match index.check(ours_bytes, &diffs, &soa) {
        Ok(change) => change,
        Err(reason) => {
            zones.put_index(zone, index);
            return Err(malformed(reason));
        }
    };
    let serial = crate::axfr::serial_of(&soa);
    let stepped = zones
        .store
        .publish_step(
            &zone.key,
            serial,
            change.removed.clone(),
            change.added.clone(),
        )
        .await;
    let stepped = match stepped {
        Ok(stepped) => stepped,
        Err(error) => {
            zones.put_index(zone, index);
            return Err(error.into());
        }
    };
    let published = stepped.published;
    index.commit(&change, published.digest);
    zones.put_index(zone, index);
    if let Some(timers) = SoaTimers::of(&soa) {
        zone.state.lock().timers = timers;
    }
    zones.notifier().notify();
    if stepped.compaction_due {
        // The same version written whole, after it is served; within this zone's
        // refresh task, so that no step of the zone is published meanwhile.
        let (store, key) = (zones.store.clone(), zone.key.clone());
        let started = Instant::now();
        let compacted = tokio::task::spawn_blocking(move || store.compact(&key)).await;
        match compacted {
            Ok(Ok(Some(compacted))) => {
                tracing::info!(zone = %zone.key, serial = compacted.serial, records = compacted.records, seconds = format!("{:.3}", started.elapsed().as_secs_f64()), "stored version compacted")
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => {
                tracing::warn!(zone = %zone.key, %error, "stored version not compacted; the next step tries again")
            }
            Err(error) => {
                tracing::warn!(zone = %zone.key, %error, "compaction task failed; the next step tries again")
            }
        }
    }
    Ok(Some(Refreshed::Incremental {
        serial,
        diffs: diffs.len(),
        records: published.records as usize,
    }))
}

/// One AXFR into a staged version; published only when complete, newer and whole.
/// Any error drops the staged version (its Drop deletes it).
async fn transfer(
    zones: &Zones,
    zone: &ZoneEntry,
    primary: std::net::SocketAddr,
    published: Option<u32>,
) -> Result<AxfrOutcome, XfrError> {
    let mut staging = zones.store.begin(&zone.key)?;
    let mut timers = None;
    // The new version's index is built as it arrives; the old one goes first, so
    // that two are never held.
    let previous = zone.index.lock().take().map_or(0, |i| i.len());
    let mut index = RecordIndex::new(&zone.name, [0; 32]);
    index.reserve(previous);
    let mut sink = |record: &hickory_proto::rr::Record| -> Result<(), XfrError> {
        if timers.is_none() {
            timers = SoaTimers::of(record);
        }
        let wire = crate::index::stored(record)
            .map_err(|reason| XfrError::Malformed { primary, reason })?;
        index.add(&wire).map_err(|reason| XfrError::Malformed {
            primary,
            reason: reason.into(),
        })?;
        staging.push(&wire)?;
        Ok(())
    };
    let done = client::axfr(
        primary,
        &zone.name,
        &zones.timeouts,
        zones.limits,
        zone.tsig.as_ref(),
        &mut sink,
    )
    .await?;
    if let Some(ours) = published
        && !is_newer(done.serial, ours)
    {
        return Err(XfrError::Malformed {
            primary,
            reason: format!(
                "the transfer's serial {} is not newer than ours, {ours}",
                done.serial
            ),
        });
    }
    let published = staging.publish(done.serial).await?;
    if let Some(timers) = timers {
        zone.state.lock().timers = timers;
    }
    zones.notifier().notify();
    // Sorted once the version is out (tens of milliseconds for a million).
    index.seal();
    index.digest = published.digest;
    zones.put_index(zone, index);
    Ok(done)
}
