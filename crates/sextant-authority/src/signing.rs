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
use sextant_signer::{Policy, SignRequest};

use crate::key_store;
use crate::signed_version;

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
}

/// The policies, where keys live, and what each signed zone has now.
#[derive(Debug)]
pub(crate) struct Signing {
    state_dir: PathBuf,
    policies: HashMap<String, Policy>,
    zones: Mutex<BTreeMap<Name, SignedZone>>,
}

/// What `sextantctl dnssec status` and the refresh timer need of a signed zone.
#[derive(Clone, Debug)]
struct SignedZone {
    policy: String,
    keys: Vec<SigningKey>,
    /// Seconds since the epoch at which the first signature falls due.
    due: u64,
}

/// Longest sleep of the refresh timer: it also catches a clock that jumped.
const MAX_REFRESH_SLEEP: Duration = Duration::from_secs(3_600);

impl Signing {
    /// The signing context, when any zone has a policy.
    pub(crate) fn new(config: &Config, section: &AuthorityConfig) -> anyhow::Result<Option<Self>> {
        if section.zones.iter().all(|z| z.dnssec_policy.is_none()) {
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
            zones: Mutex::default(),
        }))
    }

    /// `records` of `zone` signed by its policy.
    pub(crate) fn sign(
        &self,
        zone: &ZoneConfig,
        policy_name: &str,
        records: Vec<Record>,
    ) -> Result<Vec<Record>, SigningError> {
        let zone_text = zone.name.to_string();
        let policy = self
            .policies
            .get(policy_name)
            .ok_or_else(|| SigningError::UnknownPolicy {
                zone: zone_text.clone(),
                policy: policy_name.to_string(),
            })?;
        let now = now();
        let keys = key_store::open_or_create(&self.state_dir, &zone.name, policy, now)?;
        let previous = signed_version::read(&keys.dir);
        let salt_length = match policy.denial {
            sextant_signer::DenialPolicy::Nsec3 { salt_length, .. } => salt_length,
            sextant_signer::DenialPolicy::Nsec => 0,
        };
        let signed = sextant_signer::sign_zone(SignRequest {
            origin: &zone.name,
            records,
            keys: &keys.keys,
            policy,
            now,
            previous: previous.as_deref(),
            fresh_salt: random_salt(salt_length),
        })
        .map_err(|cause| SigningError::Sign {
            zone: zone_text.clone(),
            cause,
        })?;
        if signed.changed || previous.is_none() {
            signed_version::write(&keys.dir, &signed.records).map_err(|cause| {
                SigningError::Store {
                    zone: zone_text.clone(),
                    path: signed_version::path(&keys.dir).display().to_string(),
                    cause,
                }
            })?;
        }
        let entries = key_store::read_entries(&self.state_dir, &zone.name).unwrap_or_default();
        let keys = keys
            .keys
            .iter()
            .map(|key| {
                let created = entries
                    .iter()
                    .find(|e| e.tag == key.tag())
                    .map_or(0, |e| e.created);
                let ds = if key.role().signs_keys() {
                    key.ds(&zone.name)
                        .map_or_else(|_| String::new(), |ds| ds.to_string())
                } else {
                    String::new()
                };
                SigningKey {
                    role: key.role().as_str().to_string(),
                    algorithm: u8::from(key.algorithm()),
                    tag: key.tag(),
                    created,
                    ds,
                }
            })
            .collect();
        self.zones.lock().insert(
            zone.name.clone(),
            SignedZone {
                policy: policy_name.to_string(),
                keys,
                due: signed.refresh_at,
            },
        );
        tracing::info!(
            zone = %zone.name,
            serial = signed.serial,
            made = signed.made,
            kept = signed.kept,
            replaced = signed.replaced,
            refresh_in = %humantime::format_duration(sextant_signer::refresh_in(&signed, now)),
            "zone signed"
        );
        Ok(signed.records)
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
        })
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

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_salt(length: u8) -> Vec<u8> {
    use ring::rand::SecureRandom as _;
    let mut salt = vec![0u8; usize::from(length)];
    // A salt only needs to differ from the last; should the system's random source
    // fail, a zero salt is still a valid one.
    let _ = ring::rand::SystemRandom::new().fill(&mut salt);
    salt
}
