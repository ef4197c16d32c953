//! Signing a change to a zone served signed (an IXFR step into a secondary zone,
//! a primary zone's reload) without signing the zone again: the signer makes the
//! signed change (`sextant_signer::resign`), the served version takes it through
//! `Zone::apply` (sharing every other name), and the change is appended to the
//! signed version on disk before the new version is served. Anything that moves
//! the whole zone (a rollover step or signatures falling due, new keys, a larger
//! TTL, other denial parameters) is left to whole signing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use sextant_signer::{Resign, ResignRequest};
use sextant_zone::Zone;

use super::{Signing, SigningError, keys_in_use, now};
use crate::{key_store, signed_steps, signed_version};

/// Steps past this share of the whole version's size are folded into it.
const COMPACT_SHARE: u64 = 4;
/// Steps smaller than this are never worth a rewrite.
const COMPACT_FLOOR: u64 = 1024 * 1024;

impl Signing {
    /// `zone` (served, signed here by `policy_name`) with the unsigned change
    /// `removed`/`added` signed and applied, stored before it is returned; `None`
    /// when the change must be signed with the whole zone instead.
    pub(crate) fn sign_change(
        &self,
        zone: &Zone,
        policy_name: &str,
        removed: Vec<Record>,
        added: Vec<Record>,
    ) -> Result<Option<Zone>, SigningError> {
        let started = Instant::now();
        let name = zone.origin().clone();
        let zone_text = name.to_string();
        let policy = self.policy(&name, policy_name)?;
        let now = now();
        let due = self.zones.lock().get(&name).map(|z| z.due);
        match due {
            Some(due) if due > now => {}
            Some(_) => return Ok(whole(&name, "a signature or a rollover step is due")),
            None => return Ok(whole(&name, "the zone has not been signed since the start")),
        }
        let store = key_store::KeyStore::open(&self.state_dir, &name)?;
        store.check_policy(policy)?;
        if added.iter().any(|r| r.ttl > store.max_ttl) {
            return Ok(whole(
                &name,
                "the change brings a TTL longer than any the zone had",
            ));
        }
        let timing = policy.timing(Duration::from_secs(u64::from(store.max_ttl)));
        let managed: Vec<sextant_signer::ManagedKey> =
            store.entries.iter().filter_map(|e| e.managed()).collect();
        let plan = sextant_signer::plan(
            &managed,
            policy.split,
            u8::from(policy.algorithm),
            &timing,
            now,
        );
        if !plan.actions.is_empty() {
            return Ok(whole(&name, "a rollover step is due"));
        }
        let keys = keys_in_use(&store, &timing, now)?;
        let resigned = sextant_signer::resign(ResignRequest {
            zone,
            removed,
            added,
            keys: &keys,
            policy,
            now,
        })
        .map_err(|cause| SigningError::Sign {
            zone: zone_text.clone(),
            cause,
        })?;
        let change = match resigned {
            Resign::Change(change) => change,
            Resign::Whole(why) => return Ok(whole(&name, &why)),
        };
        let encode = |records: &[Record]| -> Vec<Vec<u8>> {
            records.iter().filter_map(|r| r.to_bytes().ok()).collect()
        };
        let source = PathBuf::from(format!("signed change of {zone_text}"));
        let (next, _) = zone
            .apply(&encode(&change.removed), &encode(&change.added), &source)
            .map_err(|e| SigningError::Apply {
                zone: zone_text.clone(),
                cause: e.to_string(),
            })?;
        let store_error = |cause| SigningError::Store {
            zone: zone_text.clone(),
            path: signed_steps::path(&store.dir).display().to_string(),
            cause,
        };
        let base = signed_version::digest(&store.dir).ok_or_else(|| {
            store_error(std::io::Error::other(
                "no whole signed version to change; the zone is signed whole next",
            ))
        })?;
        signed_steps::append(&store.dir, &base, &change.removed, &change.added)
            .map_err(store_error)?;
        if let Some(signed) = self.zones.lock().get_mut(&name) {
            signed.due = signed.due.min(change.refresh_at);
        }
        tracing::info!(
            zone = %name,
            serial = change.serial,
            made = change.made,
            kept = change.kept,
            removed = change.removed.len(),
            added = change.added.len(),
            ms = format!("{:.2}", started.elapsed().as_secs_f64() * 1000.0),
            "zone change signed"
        );
        Ok(Some(next))
    }

    /// `unsigned`, a new version of the data of `current` (served, signed here by
    /// `policy_name`), signed as the change between them (see `sign_change`);
    /// `None` when it must be signed whole.
    pub(crate) fn sign_version(
        &self,
        current: &Zone,
        unsigned: &Zone,
        policy_name: &str,
    ) -> Result<Option<Zone>, SigningError> {
        let differences =
            current.differences_where(unsigned, &|t| !sextant_signer::is_signer_type(t));
        let decode = |list: Vec<Vec<u8>>| -> Vec<Record> {
            list.iter()
                .filter_map(|bytes| Record::from_bytes(bytes).ok())
                .collect()
        };
        let mut removed = vec![current.soa().clone()];
        removed.extend(decode(differences.removed));
        let mut added = vec![unsigned.soa().clone()];
        added.extend(decode(differences.added));
        self.sign_change(current, policy_name, removed, added)
    }

    /// Folds the signed changes of `zone` (the version served) into a whole
    /// signed version once they have grown past a quarter of it; off the path to
    /// serving.
    pub(crate) fn compact_changes(&self, zone: &Zone) {
        let dir = key_store::zone_dir(&self.state_dir, zone.origin());
        let steps = std::fs::metadata(signed_steps::path(&dir)).map_or(0, |m| m.len());
        let whole = std::fs::metadata(signed_version::path(&dir)).map_or(0, |m| m.len());
        if steps <= COMPACT_FLOOR.max(whole / COMPACT_SHARE) {
            return;
        }
        let started = Instant::now();
        let written = signed_version::Writer::create(&dir).and_then(|mut writer| {
            // The SOA comes first and last in AXFR order: once here.
            let records = zone.axfr_records();
            let count = zone.record_count();
            for record in records.take(count) {
                writer.push(&record);
            }
            writer.commit()
        });
        match written {
            Ok(()) => tracing::info!(
                zone = %zone.origin(),
                seconds = format!("{:.3}", started.elapsed().as_secs_f64()),
                "signed changes folded into the whole signed version"
            ),
            Err(error) => {
                tracing::warn!(zone = %zone.origin(), %error, "signed changes not folded; they stay as they are")
            }
        }
    }
}

fn whole(zone: &hickory_proto::rr::Name, why: &str) -> Option<Zone> {
    tracing::info!(%zone, why, "zone change signed with the whole zone");
    None
}
