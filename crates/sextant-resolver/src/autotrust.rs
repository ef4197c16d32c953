//! Automated updates of DNSSEC trust anchors (RFC 5011): the DNSKEY RRset of each
//! anchored zone is fetched at the RFC's interval and, once its signature checks out
//! with the keys trusted now, new key-signing keys are trusted after a hold-down
//! time, keys revoked by their own signature stop being trusted, and the state is
//! kept in `resolver.state_dir` so that a restart keeps what was learned (a root KSK
//! rollover survives a resolver that was shipped before it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use hickory_proto::dnssec::Verifier;
use hickory_proto::dnssec::rdata::DNSKEY;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, BinEncodable, Restrict};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::dnssec::{self, Clock, ZoneKey};

/// The state file in `resolver.state_dir`.
pub(crate) const STATE_FILE: &str = "trust-anchors.json";
/// DNSKEY flags (RFC 4034 §2.1.1, RFC 5011 §3).
const FLAG_SEP: u16 = 0x0001;
const FLAG_REVOKE: u16 = 0x0080;

/// Where a key stands (RFC 5011 §4.1; "Start" and "Removed" are the absence of an
/// entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// Seen, not yet trusted: waiting out the add hold-down.
    AddPend,
    /// Trusted.
    Valid,
    /// Trusted, but gone from the zone's DNSKEY RRset for now.
    Missing,
    /// Revoked by its own signature: never trusted again.
    Revoked,
}

/// One key-signing key of an anchored zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    /// The DNSKEY data (base64 of the wire form) with the REVOKE flag cleared: a
    /// key keeps its identity when it is revoked.
    key: String,
    /// Its key tag, for people reading the file.
    tag: u16,
    phase: Phase,
    /// When it entered its phase, seconds since 1970.
    since: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    /// Zone name (lower case, with the final dot) to its keys.
    zones: BTreeMap<String, Vec<Entry>>,
}

/// The RFC 5011 state of every anchored zone, and where it is kept.
#[derive(Debug)]
pub(crate) struct AutoTrust {
    path: PathBuf,
    hold_down: Duration,
    state: Mutex<State>,
}

impl AutoTrust {
    /// Opens (or starts) the state in `dir`; the error is one sentence with the
    /// file and the fix.
    pub(crate) fn open(dir: &Path, hold_down: Duration) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "{}: cannot create the resolver's state directory ({e}); fix resolver.state_dir",
                dir.display()
            )
        })?;
        let path = dir.join(STATE_FILE);
        let state = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{}: the trust anchor state is damaged ({e}); remove the file to start again from the configured anchors",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => {
                return Err(format!(
                    "{}: cannot read the trust anchor state ({e}); fix its permissions or resolver.state_dir",
                    path.display()
                ));
            }
        };
        Ok(Self {
            path,
            hold_down,
            state: Mutex::new(state),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The keys trusted for `zone` by the state (Valid and Missing), if it has any:
    /// they replace the configured anchor, which may be older.
    pub(crate) fn trusted(&self, zone: &Name) -> Vec<DNSKEY> {
        self.entries(zone)
            .iter()
            .filter(|e| matches!(e.phase, Phase::Valid | Phase::Missing))
            .filter_map(|e| decode(&e.key))
            .collect()
    }

    /// The phases of `zone`'s keys, by key tag (for logs and tests).
    pub(crate) fn phases(&self, zone: &Name) -> Vec<(u16, Phase)> {
        self.entries(zone)
            .iter()
            .map(|e| (e.tag, e.phase))
            .collect()
    }

    fn entries(&self, zone: &Name) -> Vec<Entry> {
        self.state
            .lock()
            .zones
            .get(&key_of(zone))
            .cloned()
            .unwrap_or_default()
    }

    /// Applies one validated sighting of `zone`'s DNSKEY RRset (`rrset`, with its
    /// RRSIGs among `sigs`) at `now` (seconds since 1970): `trusted_now` are the keys
    /// it was validated with, which start out Valid the first time. Saves the state
    /// and returns the keys trusted from now on.
    pub(crate) fn observe(
        &self,
        zone: &Name,
        rrset: &[Record],
        sigs: &[Record],
        trusted_now: &[ZoneKey],
        now: u64,
    ) -> Result<Vec<DNSKEY>, String> {
        let hold_down = self.hold_down.as_secs();
        let mut state = self.state.lock();
        let first_sighting = !state.zones.contains_key(&key_of(zone));
        let entries = state.zones.entry(key_of(zone)).or_default();
        let mut seen = Vec::new();
        for key in rrset.iter().filter_map(dnssec::dnskey) {
            if key.flags() & FLAG_SEP == 0 || !key.zone_key() {
                continue;
            }
            let Some(id) = identity(key) else { continue };
            let position = entries.iter().position(|e| e.key == id);
            if key.revoke() {
                // Only the key itself may revoke itself (RFC 5011 §2.1); a REVOKE
                // flag without that signature is ignored, as if the key were absent.
                if revoked_by_itself(zone, key, rrset, sigs) {
                    seen.push(id.clone());
                    let tag = tag_of(&id).unwrap_or(0);
                    let entry = Entry {
                        key: id,
                        tag,
                        phase: Phase::Revoked,
                        since: now,
                    };
                    match position {
                        Some(i) if entries[i].phase != Phase::Revoked => entries[i] = entry,
                        Some(_) => {}
                        None => entries.push(entry),
                    }
                }
                continue;
            }
            seen.push(id.clone());
            match position {
                None => {
                    let trusted = first_sighting && trusted_now.iter().any(|k| k.key == *key);
                    entries.push(Entry {
                        tag: tag_of(&id).unwrap_or(0),
                        key: id,
                        phase: if trusted {
                            Phase::Valid
                        } else {
                            Phase::AddPend
                        },
                        since: now,
                    });
                }
                Some(i) => {
                    let entry = &mut entries[i];
                    let waited = now.saturating_sub(entry.since);
                    let phase = match entry.phase {
                        Phase::AddPend if waited >= hold_down => Phase::Valid,
                        Phase::Missing => Phase::Valid,
                        other => other,
                    };
                    if phase != entry.phase {
                        entry.phase = phase;
                        entry.since = now;
                    }
                }
            }
        }
        // Keys gone from the RRset.
        entries.retain_mut(|entry| {
            if seen.contains(&entry.key) {
                return true;
            }
            match entry.phase {
                // A key that disappears while pending starts over if it comes back.
                Phase::AddPend => false,
                Phase::Valid => {
                    entry.phase = Phase::Missing;
                    entry.since = now;
                    true
                }
                Phase::Missing => true,
                // Forgotten once the remove hold-down has passed.
                Phase::Revoked => now.saturating_sub(entry.since) < hold_down,
            }
        });
        let trusted = entries
            .iter()
            .filter(|e| matches!(e.phase, Phase::Valid | Phase::Missing))
            .filter_map(|e| decode(&e.key))
            .collect();
        save(&self.path, &state)?;
        Ok(trusted)
    }
}

/// When to look again (RFC 5011 §2.3): half the DNSKEY RRset's TTL or half the
/// time its signatures have left, within an hour and fifteen days.
pub(crate) fn refresh_interval(rrset: &[Record], sigs: &[Record], clock: Clock) -> Duration {
    let ttl = rrset.iter().map(|r| r.ttl).min().unwrap_or(0);
    let expiry = sigs
        .iter()
        .filter_map(dnssec::rrsig)
        .filter(|s| s.input().type_covered == RecordType::DNSKEY)
        .map(|s| s.input().sig_expiration.get().wrapping_sub(clock.now) as i32)
        .filter(|left| *left > 0)
        .min()
        .map_or(u32::MAX, |left| left.unsigned_abs());
    let half = u64::from(ttl.min(expiry) / 2);
    Duration::from_secs(half.clamp(3_600, 15 * 86_400))
}

fn key_of(zone: &Name) -> String {
    zone.to_lowercase().to_ascii()
}

/// The key's wire data with the REVOKE flag cleared, as base64.
fn identity(key: &DNSKEY) -> Option<String> {
    let mut bytes = key.to_bytes().ok()?;
    let flags = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]) & !FLAG_REVOKE;
    bytes[..2].copy_from_slice(&flags.to_be_bytes());
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn decode(id: &str) -> Option<DNSKEY> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(id).ok()?;
    let length = u16::try_from(bytes.len()).ok()?;
    let data = RData::read(
        &mut BinDecoder::new(&bytes),
        RecordType::DNSKEY,
        Restrict::new(length),
    )
    .ok()?;
    match data {
        RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::DNSKEY(key)) => Some(key),
        _ => None,
    }
}

fn tag_of(id: &str) -> Option<u16> {
    decode(id)?.calculate_key_tag().ok()
}

/// Whether a signature over the DNSKEY RRset made by `key` itself (REVOKE set, so
/// with the tag it has now) checks out: the proof that its owner revoked it.
fn revoked_by_itself(zone: &Name, key: &DNSKEY, rrset: &[Record], sigs: &[Record]) -> bool {
    let Ok(tag) = key.calculate_key_tag() else {
        return false;
    };
    let dnskeys: Vec<&Record> = rrset
        .iter()
        .filter(|r| r.record_type() == RecordType::DNSKEY)
        .collect();
    dnssec::signatures_for(sigs, zone, RecordType::DNSKEY)
        .filter(|sig| sig.input().key_tag == tag)
        .any(|sig| {
            key.verify_rrsig(
                zone,
                hickory_proto::rr::DNSClass::IN,
                sig,
                dnskeys.iter().copied(),
            )
            .is_ok()
        })
}

/// Writes the state whole or not at all: a crash mid-write must not lose the
/// anchors.
fn save(path: &Path, state: &State) -> Result<(), String> {
    let text = serde_json::to_string_pretty(state)
        .map_err(|e| format!("cannot encode the trust anchor state: {e}"))?;
    let temporary = path.with_extension("json.new");
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| {
            format!(
                "{}: cannot save the trust anchor state ({e}); fix resolver.state_dir",
                path.display()
            )
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::str::FromStr;

    use hickory_proto::dnssec::rdata::DNSSECRData;

    use super::*;

    const DAY: u64 = 86_400;

    /// A key-signing key (flags 257) of a fixture zone's public key.
    fn ksk(file: &str) -> DNSKEY {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/dnssec/testdata")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let none = |_: &Path| -> std::io::Result<String> { Err(std::io::Error::other("no")) };
        let origin = Name::from_str("example.test.").unwrap();
        let records = sextant_zone::parse(&text, &path, &origin, &none).unwrap();
        let key = records
            .into_iter()
            .map(|l| crate::dnssec::anchors_decoded(l.record))
            .find_map(|r| dnssec::dnskey(&r).cloned())
            .unwrap();
        DNSKEY::with_flags(257, key.public_key().clone())
    }

    fn rrset(keys: &[&DNSKEY]) -> Vec<Record> {
        keys.iter()
            .map(|k| {
                Record::from_rdata(
                    Name::root(),
                    3600,
                    RData::DNSSEC(DNSSECRData::DNSKEY((*k).clone())),
                )
            })
            .collect()
    }

    fn phases(trust: &AutoTrust) -> Vec<Phase> {
        trust
            .phases(&Name::root())
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    #[test]
    fn keys_move_through_the_rfc_5011_phases_and_the_state_survives() {
        let dir = tempfile::tempdir().unwrap();
        let (k, l) = (ksk("ecdsap256.db"), ksk("ed25519.db"));
        let trust = AutoTrust::open(dir.path(), Duration::from_secs(30 * DAY)).unwrap();
        let trusted_now = [ZoneKey {
            key: k.clone(),
            tag: k.calculate_key_tag().unwrap(),
        }];
        let root = Name::root();
        // First sighting: the key that validated the RRset is trusted at once.
        let t0 = 1_900_000_000;
        let keys = trust
            .observe(&root, &rrset(&[&k]), &[], &trusted_now, t0)
            .unwrap();
        assert_eq!(keys, vec![k.clone()]);
        // A new key waits out the hold-down.
        trust
            .observe(&root, &rrset(&[&k, &l]), &[], &[], t0 + DAY)
            .unwrap();
        assert_eq!(phases(&trust), [Phase::Valid, Phase::AddPend]);
        trust
            .observe(&root, &rrset(&[&k, &l]), &[], &[], t0 + 20 * DAY)
            .unwrap();
        assert_eq!(phases(&trust), [Phase::Valid, Phase::AddPend]);
        let keys = trust
            .observe(&root, &rrset(&[&k, &l]), &[], &[], t0 + 31 * DAY)
            .unwrap();
        assert_eq!(phases(&trust), [Phase::Valid, Phase::Valid]);
        assert_eq!(keys.len(), 2);
        // A trusted key that goes away is still trusted (Missing), and comes back Valid.
        let keys = trust
            .observe(&root, &rrset(&[&l]), &[], &[], t0 + 32 * DAY)
            .unwrap();
        assert_eq!(phases(&trust), [Phase::Missing, Phase::Valid]);
        assert_eq!(keys.len(), 2);
        trust
            .observe(&root, &rrset(&[&k, &l]), &[], &[], t0 + 33 * DAY)
            .unwrap();
        assert_eq!(phases(&trust), [Phase::Valid, Phase::Valid]);
        // A restart reads the same state back.
        let again = AutoTrust::open(dir.path(), Duration::from_secs(30 * DAY)).unwrap();
        assert_eq!(again.trusted(&root).len(), 2);
    }

    #[test]
    fn a_pending_key_that_goes_away_starts_over_and_a_revocation_needs_its_own_signature() {
        let dir = tempfile::tempdir().unwrap();
        let (k, l) = (ksk("ecdsap256.db"), ksk("ed25519.db"));
        let trust = AutoTrust::open(dir.path(), Duration::from_secs(30 * DAY)).unwrap();
        let root = Name::root();
        let trusted_now = [ZoneKey {
            key: k.clone(),
            tag: k.calculate_key_tag().unwrap(),
        }];
        let t0 = 1_900_000_000;
        trust
            .observe(&root, &rrset(&[&k]), &[], &trusted_now, t0)
            .unwrap();
        trust
            .observe(&root, &rrset(&[&k, &l]), &[], &[], t0 + DAY)
            .unwrap();
        trust
            .observe(&root, &rrset(&[&k]), &[], &[], t0 + 2 * DAY)
            .unwrap();
        assert_eq!(phases(&trust), [Phase::Valid]);
        // K with the REVOKE bit but no signature of its own: not revoked.
        let revoked = DNSKEY::with_flags(257 | FLAG_REVOKE, k.public_key().clone());
        trust
            .observe(&root, &rrset(&[&revoked]), &[], &[], t0 + 3 * DAY)
            .unwrap();
        assert_eq!(phases(&trust), [Phase::Missing]);
    }

    #[test]
    fn a_damaged_state_file_is_one_sentence() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), "{ not json").unwrap();
        let error = AutoTrust::open(dir.path(), Duration::from_secs(1)).unwrap_err();
        assert!(
            error.contains("trust-anchors.json: the trust anchor state is damaged"),
            "{error}"
        );
        assert!(error.contains("remove the file"), "{error}");
    }

    #[test]
    fn the_refresh_interval_is_half_the_ttl_within_an_hour_and_fifteen_days() {
        let clock = Clock { now: 0, skew: 0 };
        let key = ksk("ecdsap256.db");
        let mut set = rrset(&[&key]);
        set[0].ttl = 172_800;
        assert_eq!(
            refresh_interval(&set, &[], clock),
            Duration::from_secs(86_400)
        );
        set[0].ttl = 60;
        assert_eq!(
            refresh_interval(&set, &[], clock),
            Duration::from_secs(3_600)
        );
        set[0].ttl = 100 * 86_400;
        assert_eq!(
            refresh_interval(&set, &[], clock),
            Duration::from_secs(15 * 86_400)
        );
    }
}
