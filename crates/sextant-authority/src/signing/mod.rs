//! Zones the authority signs itself (`dnssec_policy` on `[[authority.zone]]`): each
//! load or reload signs the zone's records with its keys, starting from the last
//! signed version so that only what changed or falls due is signed again, stores
//! the new version before it is served, and remembers when the first signature
//! falls due so that a timer signs the zone again before any expires.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use hickory_proto::rr::{Name, Record};
use parking_lot::Mutex;
use sextant_config::{AuthorityConfig, Config, ZoneConfig};
use sextant_rpc::{SigningKey, ZoneSigning};
use sextant_signer::{Action, KeyUse, Plan, Policy, SignRequest};

use crate::key_store;
use crate::signed_version;

mod change;

/// Why a zone could not be signed; the zone is then not (re)loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SigningError {
    #[error(
        "zone {zone}: dnssec_policy {policy:?} is not defined; add a [[dnssec_policy]] section with that name"
    )]
    UnknownPolicy { zone: String, policy: String },
    #[error(transparent)]
    Keys(#[from] key_store::KeyStoreError),
    #[error("zone {zone}: {cause}")]
    Sign {
        zone: String,
        cause: sextant_signer::SignError,
    },
    #[error(
        "zone {zone}: storing the signed version in {path}: {cause}; check that authority.state_dir is writable"
    )]
    Store {
        zone: String,
        path: String,
        cause: std::io::Error,
    },
    #[error("zone {zone}: the signed change does not apply to the version served: {cause}")]
    Apply { zone: String, cause: String },
}

/// The policies, where keys live, and what each signed zone has now.
#[derive(Debug)]
pub(crate) struct Signing {
    state_dir: PathBuf,
    policies: HashMap<String, Policy>,
    /// Secondary zones signed as each version arrives, with their policy.
    secondaries: HashMap<Name, String>,
    zones: Mutex<BTreeMap<Name, SignedZone>>,
    /// Held from the signing of a version to its serving, by every path that
    /// signs (a change, a version from the transfer daemon, a reload, the
    /// refresh timer): a version signed earlier is never served after, nor
    /// stored over, one signed later.
    serving: tokio::sync::Mutex<()>,
}

/// What `sextantctl dnssec status` and the refresh timer need of a signed zone.
#[derive(Clone, Debug)]
struct SignedZone {
    policy: String,
    keys: Vec<SigningKey>,
    /// Seconds since the epoch at which the first signature or rollover step
    /// falls due.
    due: u64,
    /// A rollover waits for the parent to have this key's DS.
    waiting_for_ds: Option<u16>,
}

/// Longest sleep of the refresh timer: it also catches a clock that jumped.
const MAX_REFRESH_SLEEP: Duration = Duration::from_secs(3_600);

impl Signing {
    /// The signing context, when any zone has a policy.
    pub(crate) fn new(config: &Config, section: &AuthorityConfig) -> anyhow::Result<Option<Self>> {
        let secondaries: HashMap<Name, String> = config
            .transfer
            .iter()
            .flat_map(|t| &t.zones)
            .filter_map(|z| Some((z.name.to_lowercase(), z.dnssec_policy.clone()?)))
            .collect();
        if section.zones.iter().all(|z| z.dnssec_policy.is_none()) && secondaries.is_empty() {
            return Ok(None);
        }
        let Some(state_dir) = section.state_dir.clone() else {
            anyhow::bail!(
                "signed zones need authority.state_dir for their keys; set it, e.g. \"/var/lib/sextant/authority\""
            );
        };
        let mut policies = HashMap::new();
        for policy in &config.dnssec_policies {
            policies.insert(
                policy.name.clone(),
                Policy::from_config(policy).map_err(anyhow::Error::msg)?,
            );
        }
        Ok(Some(Self {
            state_dir,
            policies,
            secondaries,
            zones: Mutex::default(),
            serving: tokio::sync::Mutex::new(()),
        }))
    }

    /// Waits for the other signing paths (see `serving`); hold the guard until
    /// the version signed is served.
    pub(crate) async fn exclusive(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.serving.lock().await
    }

    /// The policy named `policy_name`, which zone `zone` names.
    fn policy(&self, zone: &Name, policy_name: &str) -> Result<&Policy, SigningError> {
        self.policies
            .get(policy_name)
            .ok_or_else(|| SigningError::UnknownPolicy {
                zone: zone.to_string(),
                policy: policy_name.to_string(),
            })
    }

    /// The policy of secondary zone `zone`, when it is signed here.
    pub(crate) fn secondary_policy(&self, zone: &Name) -> Option<&str> {
        self.secondaries
            .get(&zone.to_lowercase())
            .map(String::as_str)
    }

    /// `records` of `zone` signed by its policy, each signed record given to `emit`.
    pub(crate) fn sign(
        &self,
        zone: &ZoneConfig,
        policy_name: &str,
        records: Vec<Record>,
        emit: &mut dyn FnMut(Record),
    ) -> Result<(), SigningError> {
        self.sign_zone(&zone.name, policy_name, records, emit)
    }

    /// `records` of the zone `name` signed by the policy `policy_name`, each signed
    /// record given to `emit` (and to the stored version) as it is made.
    pub(crate) fn sign_zone(
        &self,
        name: &Name,
        policy_name: &str,
        records: Vec<Record>,
        emit: &mut dyn FnMut(Record),
    ) -> Result<(), SigningError> {
        let zone_text = name.to_string();
        let policy = self.policy(name, policy_name)?;
        let now = now();
        let mut store = key_store::KeyStore::open(&self.state_dir, name)?;
        store.check_policy(policy)?;
        let previous = signed_version::read(&store.dir);
        let had_previous = previous.is_some();
        // How long old signatures may be cached: the zone's largest TTL now, or the
        // largest it had while a key that is leaving still signed (TTLs lowered
        // since do not shorten the wait).
        let current_ttl = records.iter().map(|r| r.ttl).max().unwrap_or(0);
        let max_ttl = current_ttl.max(store.max_ttl);
        let timing = policy.timing(Duration::from_secs(u64::from(max_ttl)));
        let plan = self.roll(&mut store, policy, &timing, now)?;
        let kept_ttl = if store.removal_pending() {
            max_ttl
        } else {
            current_ttl
        };
        if kept_ttl != store.max_ttl {
            store.max_ttl = kept_ttl;
            store.save()?;
        }
        let keys = keys_in_use(&store, &timing, now)?;
        let salt_length = match policy.denial {
            sextant_signer::DenialPolicy::Nsec3 { salt_length, .. } => salt_length,
            sextant_signer::DenialPolicy::Nsec => 0,
        };
        let store_error = |cause| SigningError::Store {
            zone: zone_text.clone(),
            path: signed_version::path(&store.dir).display().to_string(),
            cause,
        };
        let mut writer = signed_version::Writer::create(&store.dir).map_err(store_error)?;
        let signed = sextant_signer::sign_zone(
            SignRequest {
                origin: name,
                records,
                keys: &keys,
                policy,
                now,
                previous: previous.map(|p| Box::new(p) as Box<dyn Iterator<Item = Record>>),
                fresh_salt: random_salt(salt_length),
            },
            &mut |record| {
                writer.push(&record);
                emit(record);
            },
        )
        .map_err(|cause| SigningError::Sign {
            zone: zone_text.clone(),
            cause,
        })?;
        if signed.changed || !had_previous {
            writer.commit().map_err(store_error)?;
        } else {
            writer.discard();
        }
        if let Some(tag) = plan.waiting_for_ds {
            tracing::warn!(zone = %name, tag, "key rollover waiting for the parent: publish the DS of key {tag} (sextantctl dnssec status shows it; the zone's CDS names it), then run `sextantctl dnssec ksk-submitted {}`", name);
        }
        let due = plan
            .next_event
            .map_or(signed.refresh_at, |at| at.min(signed.refresh_at));
        let keys = keys
            .iter()
            .map(|key| {
                let created = store
                    .entries
                    .iter()
                    .find(|e| e.tag == key.tag())
                    .map_or(0, |e| e.created);
                let ds = if key.usage().sign_keyset {
                    key.ds(name)
                        .map_or_else(|_| String::new(), |ds| ds.to_string())
                } else {
                    String::new()
                };
                SigningKey {
                    state: state_of(key.usage(), &plan, key.tag()),
                    role: key.role().as_str().to_string(),
                    algorithm: u8::from(key.algorithm()),
                    tag: key.tag(),
                    created,
                    ds,
                }
            })
            .collect();
        self.zones.lock().insert(
            name.clone(),
            SignedZone {
                policy: policy_name.to_string(),
                keys,
                due,
                waiting_for_ds: plan.waiting_for_ds,
            },
        );
        tracing::info!(
            zone = %name,
            serial = signed.serial,
            made = signed.made,
            kept = signed.kept,
            replaced = signed.replaced,
            refresh_in = %humantime::format_duration(sextant_signer::refresh_in(&signed, now)),
            "zone signed"
        );
        Ok(())
    }

    /// The zone whose signatures fall due first, and how long until then.
    pub(crate) fn next_due(&self) -> Option<(Name, Duration)> {
        let zones = self.zones.lock();
        let (zone, signed) = zones.iter().min_by_key(|(_, z)| z.due)?;
        Some((
            zone.clone(),
            Duration::from_secs(signed.due.saturating_sub(now())),
        ))
    }

    /// How `zone` is signed, if it is.
    pub(crate) fn status(&self, zone: &Name) -> Option<ZoneSigning> {
        let zones = self.zones.lock();
        let signed = zones.get(zone)?;
        Some(ZoneSigning {
            policy: signed.policy.clone(),
            keys: signed.keys.clone(),
            next_signing_seconds: signed.due.saturating_sub(now()),
            waiting_for_ds: signed.waiting_for_ds,
        })
    }

    /// Applies the rollover steps due now (a few rounds: one step can make the
    /// next due at once), saving the key list before anything is signed with it.
    fn roll(
        &self,
        store: &mut key_store::KeyStore,
        policy: &Policy,
        timing: &sextant_signer::Timing,
        now: u64,
    ) -> Result<sextant_signer::Plan, SigningError> {
        let zone = store.zone().clone();
        for _ in 0..4 {
            let managed: Vec<sextant_signer::ManagedKey> =
                store.entries.iter().filter_map(|e| e.managed()).collect();
            let plan = sextant_signer::plan(
                &managed,
                policy.split,
                u8::from(policy.algorithm),
                timing,
                now,
            );
            if plan.actions.is_empty() {
                return Ok(plan);
            }
            let mut removed = Vec::new();
            for action in &plan.actions {
                match action {
                    Action::MakeHidden(role) => {
                        let tag = store.make(*role, policy.algorithm, now, true, true)?;
                        tracing::info!(%zone, role = role.as_str(), tag, algorithm = %policy.algorithm, "algorithm rollover: new key made; it signs before it is published");
                    }
                    Action::Publish(tag) => {
                        store.update(*tag, |e| {
                            e.hidden = false;
                            e.published = now;
                        });
                        tracing::info!(%zone, tag, "algorithm rollover: new key published");
                    }
                    Action::Unpublish(tag) => {
                        store.update(*tag, |e| e.unpublished = Some(now));
                        tracing::info!(%zone, tag, "algorithm rollover: old key unpublished; it signs until caches forget it");
                    }
                    Action::Make { role, active } => {
                        let tag = store.make(*role, policy.algorithm, now, *active, false)?;
                        tracing::info!(%zone, role = role.as_str(), tag, active, "DNSSEC key made and published");
                    }
                    Action::Activate(tag) => {
                        store.update(*tag, |e| e.active = Some(now));
                        tracing::info!(%zone, tag, "DNSSEC key now signs");
                    }
                    Action::Retire(tag) => {
                        store.update(*tag, |e| e.retired = Some(now));
                        tracing::info!(%zone, tag, "DNSSEC key no longer signs the zone's data");
                    }
                    Action::Remove(tag) => {
                        removed.extend(store.remove(*tag));
                        tracing::info!(%zone, tag, "DNSSEC key removed from the zone");
                    }
                }
            }
            store.save()?;
            for entry in &removed {
                store.delete_file(entry);
            }
        }
        let managed: Vec<sextant_signer::ManagedKey> =
            store.entries.iter().filter_map(|e| e.managed()).collect();
        Ok(sextant_signer::plan(
            &managed,
            policy.split,
            u8::from(policy.algorithm),
            timing,
            now,
        ))
    }

    /// Records that the parent has the DS of `zone`'s newest key-signing key (or
    /// key `tag`), so that its rollover can go on. Returns the key's tag.
    pub(crate) fn ksk_submitted(&self, zone: &Name, tag: Option<u16>) -> Result<u16, String> {
        let mut store =
            key_store::KeyStore::open(&self.state_dir, zone).map_err(|e| e.to_string())?;
        let candidates: Vec<&key_store::KeyEntry> = store
            .entries
            .iter()
            .filter(|e| e.role == "ksk" || e.role == "csk")
            .filter(|e| tag.is_none_or(|t| t == e.tag))
            .collect();
        let Some(entry) = candidates.iter().max_by_key(|e| (e.published, e.tag)) else {
            return Err(match tag {
                Some(tag) => format!("zone {zone} has no key-signing key with tag {tag}"),
                None => format!("zone {zone} has no key-signing key; is it signed here?"),
            });
        };
        let tag = entry.tag;
        let now = now();
        store.update(tag, |e| e.submitted = Some(now));
        store.save().map_err(|e| e.to_string())?;
        tracing::info!(%zone, tag, "DS submission confirmed by the operator");
        Ok(tag)
    }

    /// Sleeps until the next zone falls due (an hour at most, so a changed clock
    /// is noticed) and returns it, or `None` when none is due yet.
    pub(crate) async fn wait_for_due(&self) -> Option<Name> {
        match self.next_due() {
            Some((zone, wait)) if wait <= MAX_REFRESH_SLEEP => {
                tokio::time::sleep(wait).await;
                Some(zone)
            }
            _ => {
                tokio::time::sleep(MAX_REFRESH_SLEEP).await;
                None
            }
        }
    }
}

/// The zone's keys with the use the rollover gives each at `now`.
fn keys_in_use(
    store: &key_store::KeyStore,
    timing: &sextant_signer::Timing,
    now: u64,
) -> Result<Vec<sextant_signer::ZoneKey>, SigningError> {
    let loaded = store.load()?;
    let managed: Vec<sextant_signer::ManagedKey> =
        store.entries.iter().filter_map(|e| e.managed()).collect();
    Ok(loaded
        .into_iter()
        .filter_map(|(entry, key)| {
            let managed_key = entry.managed()?;
            Some(key.with_use(sextant_signer::usage(&managed, &managed_key, timing, now)))
        })
        .collect())
}

/// A key's state in words, for `sextantctl dnssec status`.
fn state_of(usage: KeyUse, plan: &Plan, tag: u16) -> String {
    let state = match (usage.sign_zone, usage.sign_keyset) {
        (true, true) => "signing",
        (true, false) => "signing the zone",
        (false, true) => "signing the keys",
        (false, false) if usage.publish => "published",
        (false, false) => "unused",
    };
    if plan.waiting_for_ds == Some(tag) {
        format!("{state}; waiting for its DS at the parent")
    } else {
        state.to_string()
    }
}

/// The signer's clock: the system's, moved by `SEXTANT_SIGNER_CLOCK_OFFSET`
/// seconds when that is set (labs and tests run rollovers by moving the clock
/// instead of waiting for days; never set it in production).
fn now() -> u64 {
    let system = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    system.saturating_add_signed(*CLOCK_OFFSET)
}

static CLOCK_OFFSET: std::sync::LazyLock<i64> = std::sync::LazyLock::new(|| {
    std::env::var("SEXTANT_SIGNER_CLOCK_OFFSET")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .inspect(|offset| tracing::warn!(offset, "the signer's clock is moved by SEXTANT_SIGNER_CLOCK_OFFSET seconds (labs and tests only)"))
        .unwrap_or(0)
});

fn random_salt(length: u8) -> Vec<u8> {
    use ring::rand::SecureRandom as _;
    let mut salt = vec![0u8; usize::from(length)];
    // A salt only needs to differ from the last; should the system's random source
    // fail, a zero salt is still a valid one.
    let _ = ring::rand::SystemRandom::new().fill(&mut salt);
    salt
}
