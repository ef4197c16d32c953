//! A signed zone's keys on disk, under `authority.state_dir/dnssec/<zone>/`: one
//! PKCS#8 file per private key (mode 0600) and `keys.json` naming them with their
//! role, algorithm, tag and creation time. A new key is written and fsynced, file
//! and directory, before `keys.json` names it, and `keys.json` is replaced
//! atomically: after a crash the zone has either the old key set or the new one,
//! and no signature is ever served with a key that is not on disk.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hickory_proto::dnssec::Algorithm;
use hickory_proto::rr::Name;
use serde::{Deserialize, Serialize};
use sextant_signer::{KeyRole, KeySplit, Policy, PrivateKey, ZoneKey};

/// The version of `keys.json` this code reads and writes.
const FORMAT: u32 = 1;

/// Why the keys could not be read or made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyStoreError {
    #[error(
        "zone {zone}: {path}: {cause}; check that authority.state_dir is writable by the authority"
    )]
    Io {
        zone: String,
        path: String,
        cause: std::io::Error,
    },
    #[error(
        "zone {zone}: {path} is not a key list this version reads ({cause}); restore it from a backup"
    )]
    Corrupt {
        zone: String,
        path: String,
        cause: String,
    },
    #[error("zone {zone}: {cause}")]
    Key {
        zone: String,
        cause: sextant_signer::KeyError,
    },
    #[error(
        "zone {zone}: its keys are {have} but dnssec_policy {policy:?} asks for {want}; changing the algorithm or the key split of a signed zone needs a rollover, which is not automatic yet: keep the old policy, or move {dir} aside to start over with new keys (and a new DS at the parent)"
    )]
    PolicyChanged {
        zone: String,
        have: String,
        want: String,
        policy: String,
        dir: String,
    },
}

/// One key as `keys.json` lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct KeyEntry {
    /// `csk`, `ksk` or `zsk`.
    pub role: String,
    /// The DNSSEC algorithm number.
    pub algorithm: u8,
    /// The key tag.
    pub tag: u16,
    /// When it was made, seconds since the epoch.
    pub created: u64,
    /// The PKCS#8 file, relative to the zone's directory.
    pub file: String,
    /// When its DNSKEY entered the zone.
    pub published: u64,
    /// When it started signing; none while it is being rolled in.
    #[serde(default)]
    pub active: Option<u64>,
    /// When it stopped signing zone data (being rolled out).
    #[serde(default)]
    pub retired: Option<u64>,
    /// When the operator confirmed the parent has its DS.
    #[serde(default)]
    pub submitted: Option<u64>,
    /// Signing before its DNSKEY is published (an algorithm rollover's start).
    #[serde(default)]
    pub hidden: bool,
    /// When its DNSKEY left the zone while it still signs (an algorithm
    /// rollover's end).
    #[serde(default)]
    pub unpublished: Option<u64>,
}

impl KeyEntry {
    /// The key as the rollover planner sees it.
    pub(crate) fn managed(&self) -> Option<sextant_signer::ManagedKey> {
        Some(sextant_signer::ManagedKey {
            role: KeyRole::from_name(&self.role)?,
            tag: self.tag,
            published: self.published,
            active: self.active,
            retired: self.retired,
            submitted: self.submitted,
            algorithm: self.algorithm,
            hidden: self.hidden,
            unpublished: self.unpublished,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct KeyList {
    format: u32,
    zone: String,
    keys: Vec<KeyEntry>,
    /// The zone's largest TTL as of the last signing, kept while a key waits to
    /// leave (see [`KeyStore::max_ttl`]).
    #[serde(default)]
    max_ttl: u32,
}

/// One zone's keys: the list as on disk, changed by the rollover steps and saved
/// before anything signed with a new key is served.
#[derive(Debug)]
pub(crate) struct KeyStore {
    pub dir: PathBuf,
    zone: Name,
    pub entries: Vec<KeyEntry>,
    /// The largest TTL the zone had while a key that leaves still signed: the
    /// signatures it made may be cached that long, even if the zone's TTLs were
    /// lowered since.
    pub max_ttl: u32,
}

/// The directory of `zone`'s DNSSEC state under `state_dir`.
pub(crate) fn zone_dir(state_dir: &Path, zone: &Name) -> PathBuf {
    let text = zone.to_lowercase().to_string();
    let text = text.trim_end_matches('.');
    let text = if text.is_empty() { "root" } else { text };
    state_dir.join("dnssec").join(text)
}

impl KeyStore {
    /// The keys of `zone` (none yet for a zone signed for the first time).
    pub(crate) fn open(state_dir: &Path, zone: &Name) -> Result<Self, KeyStoreError> {
        let dir = zone_dir(state_dir, zone);
        let zone_text = zone.to_string();
        create_private_dir(&dir).map_err(|cause| KeyStoreError::Io {
            zone: zone_text.clone(),
            path: dir.display().to_string(),
            cause,
        })?;
        let list_path = dir.join("keys.json");
        let (entries, max_ttl) = match std::fs::read(&list_path) {
            Ok(bytes) => {
                let list: KeyList =
                    serde_json::from_slice(&bytes).map_err(|e| KeyStoreError::Corrupt {
                        zone: zone_text.clone(),
                        path: list_path.display().to_string(),
                        cause: e.to_string(),
                    })?;
                if list.format != FORMAT {
                    return Err(KeyStoreError::Corrupt {
                        zone: zone_text,
                        path: list_path.display().to_string(),
                        cause: format!("format {}, this version reads {FORMAT}", list.format),
                    });
                }
                (list.keys, list.max_ttl)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), 0),
            Err(cause) => {
                return Err(KeyStoreError::Io {
                    zone: zone_text,
                    path: list_path.display().to_string(),
                    cause,
                });
            }
        };
        Ok(Self {
            dir,
            zone: zone.clone(),
            entries,
            max_ttl,
        })
    }

    /// The zone.
    pub(crate) fn zone(&self) -> &Name {
        &self.zone
    }

    /// Refuses keys made for another algorithm or key split than `policy`'s.
    pub(crate) fn check_policy(&self, policy: &Policy) -> Result<(), KeyStoreError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        check_policy(&self.dir, &self.zone, policy, &self.entries)
    }

    /// Makes a key of `role`, published at `now` (and signing from `now` when
    /// `active`); its file is on disk and fsynced when this returns, the list is
    /// saved by [`KeyStore::save`]. Returns its tag.
    pub(crate) fn make(
        &mut self,
        role: KeyRole,
        algorithm: Algorithm,
        now: u64,
        active: bool,
        hidden: bool,
    ) -> Result<u16, KeyStoreError> {
        let mut entry = make_key(&self.dir, &self.zone, role, algorithm, now, &self.entries)?;
        entry.active = active.then_some(now);
        entry.hidden = hidden;
        let tag = entry.tag;
        self.entries.push(entry);
        Ok(tag)
    }

    /// Whether a key has stopped signing or left the DNSKEY RRset and waits for
    /// caches to forget it.
    pub(crate) fn removal_pending(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.retired.is_some() || e.unpublished.is_some())
    }

    /// Takes over `private` (a key the zone is already signed with elsewhere, whose
    /// DS the parent has) as signing in `role` from `now`.
    pub(crate) fn import(
        &mut self,
        role: KeyRole,
        private: &PrivateKey,
        tag: u16,
        now: u64,
    ) -> Result<(), KeyStoreError> {
        let mut entry = store_key(&self.dir, &self.zone, role, private, tag, now)?;
        entry.active = Some(now);
        entry.submitted = role.signs_keys().then_some(now);
        self.entries.push(entry);
        Ok(())
    }

    /// Changes the entry of `tag`; false when there is none.
    pub(crate) fn update(&mut self, tag: u16, change: impl FnOnce(&mut KeyEntry)) -> bool {
        match self.entries.iter_mut().find(|e| e.tag == tag) {
            Some(entry) => {
                change(entry);
                true
            }
            None => false,
        }
    }

    /// Drops the key `tag` from the list; its file goes after the next save.
    pub(crate) fn remove(&mut self, tag: u16) -> Option<KeyEntry> {
        let position = self.entries.iter().position(|e| e.tag == tag)?;
        Some(self.entries.remove(position))
    }

    /// Writes the list atomically.
    pub(crate) fn save(&self) -> Result<(), KeyStoreError> {
        let path = self.dir.join("keys.json");
        write_list(&self.dir, &self.zone, &self.entries, self.max_ttl).map_err(|cause| {
            KeyStoreError::Io {
                zone: self.zone.to_string(),
                path: path.display().to_string(),
                cause,
            }
        })
    }

    /// Deletes the file of a key the saved list no longer names.
    pub(crate) fn delete_file(&self, entry: &KeyEntry) {
        if let Err(error) = std::fs::remove_file(self.dir.join(&entry.file)) {
            tracing::warn!(zone = %self.zone, file = %entry.file, %error, "cannot delete a removed key's file");
        }
    }

    /// Every listed key, loaded.
    pub(crate) fn load(&self) -> Result<Vec<(KeyEntry, ZoneKey)>, KeyStoreError> {
        self.entries
            .iter()
            .map(|entry| Ok((entry.clone(), load_key(&self.dir, &self.zone, entry)?)))
            .collect()
    }
}

/// The keys as they are on disk, without making any (for `--check` and status).
pub(crate) fn read_entries(state_dir: &Path, zone: &Name) -> Option<Vec<KeyEntry>> {
    let bytes = std::fs::read(zone_dir(state_dir, zone).join("keys.json")).ok()?;
    serde_json::from_slice::<KeyList>(&bytes)
        .ok()
        .map(|list| list.keys)
}

fn check_policy(
    dir: &Path,
    zone: &Name,
    policy: &Policy,
    entries: &[KeyEntry],
) -> Result<(), KeyStoreError> {
    // Another algorithm is an algorithm rollover, which the planner runs; another
    // key split is not.
    let want_roles: &[&str] = match policy.split {
        KeySplit::Csk => &["csk"],
        KeySplit::KskZsk => &["ksk", "zsk"],
    };
    let mut have_roles: Vec<&str> = entries.iter().map(|e| e.role.as_str()).collect();
    have_roles.sort_unstable();
    have_roles.dedup();
    if have_roles == want_roles {
        return Ok(());
    }
    Err(KeyStoreError::PolicyChanged {
        zone: zone.to_string(),
        have: have_roles.join("+"),
        want: want_roles.join("+"),
        policy: policy.name.clone(),
        dir: dir.display().to_string(),
    })
}

fn make_key(
    dir: &Path,
    zone: &Name,
    role: KeyRole,
    algorithm: Algorithm,
    now: u64,
    existing: &[KeyEntry],
) -> Result<KeyEntry, KeyStoreError> {
    let key_error = |cause| KeyStoreError::Key {
        zone: zone.to_string(),
        cause,
    };
    // Two keys of a zone with one tag make validators try both for every
    // signature (and count against their collision limit): make another.
    let (private, tag) = loop {
        let private = PrivateKey::generate(algorithm).map_err(key_error)?;
        let tag = ZoneKey::new(role, &private).map_err(key_error)?.tag();
        if !existing.iter().any(|e| e.tag == tag) {
            break (private, tag);
        }
    };
    store_key(dir, zone, role, &private, tag, now)
}

/// Writes `private` (of `role`, tag `tag`) as a new key file and returns its entry.
fn store_key(
    dir: &Path,
    zone: &Name,
    role: KeyRole,
    private: &PrivateKey,
    tag: u16,
    now: u64,
) -> Result<KeyEntry, KeyStoreError> {
    let number = u8::from(private.algorithm());
    let file = format!("{}-{number:03}-{tag:05}-{now}.pkcs8", role.as_str());
    let path = dir.join(&file);
    write_private(&path, private.pkcs8()).map_err(|cause| KeyStoreError::Io {
        zone: zone.to_string(),
        path: path.display().to_string(),
        cause,
    })?;
    Ok(KeyEntry {
        role: role.as_str().to_string(),
        algorithm: number,
        tag,
        created: now,
        file,
        published: now,
        active: None,
        retired: None,
        submitted: None,
        hidden: false,
        unpublished: None,
    })
}

fn load_key(dir: &Path, zone: &Name, entry: &KeyEntry) -> Result<ZoneKey, KeyStoreError> {
    let path = dir.join(&entry.file);
    let corrupt = |cause: String| KeyStoreError::Corrupt {
        zone: zone.to_string(),
        path: path.display().to_string(),
        cause,
    };
    let role = KeyRole::from_name(&entry.role)
        .ok_or_else(|| corrupt(format!("unknown role {:?}", entry.role)))?;
    let bytes = std::fs::read(&path).map_err(|cause| KeyStoreError::Io {
        zone: zone.to_string(),
        path: path.display().to_string(),
        cause,
    })?;
    let private = PrivateKey::from_pkcs8(Algorithm::from_u8(entry.algorithm), bytes)
        .map_err(|e| corrupt(e.to_string()))?;
    let key = ZoneKey::new(role, &private).map_err(|e| corrupt(e.to_string()))?;
    if key.tag() != entry.tag {
        return Err(corrupt(format!(
            "the key's tag is {}, the list says {}",
            key.tag(),
            entry.tag
        )));
    }
    Ok(key)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes a private key: a new file (never over another), mode 0600 from its
/// creation, fsynced with its directory.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    sync_parent(path)
}

fn write_list(dir: &Path, zone: &Name, entries: &[KeyEntry], max_ttl: u32) -> std::io::Result<()> {
    let list = KeyList {
        format: FORMAT,
        zone: zone.to_string(),
        keys: entries.to_vec(),
        max_ttl,
    };
    let bytes = serde_json::to_vec_pretty(&list).map_err(std::io::Error::other)?;
    write_atomically(&dir.join("keys.json"), &bytes)
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new content.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) => std::fs::File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt as _;
    use std::time::Duration;

    use sextant_signer::DenialPolicy;

    use super::*;

    fn policy(split: KeySplit, algorithm: Algorithm) -> Policy {
        Policy {
            name: "p".into(),
            algorithm,
            split,
            denial: DenialPolicy::Nsec,
            validity: Duration::from_secs(86_400 * 14),
            refresh: Duration::from_secs(86_400 * 5),
            dnskey_ttl: 3600,
            zsk_lifetime: Duration::ZERO,
            ksk_lifetime: Duration::ZERO,
            propagation_delay: Duration::from_secs(3600),
            parent_ds_ttl: Duration::from_secs(86_400),
        }
    }

    /// A zone's store with the initial keys of `policy` made and saved.
    fn made(dir: &Path, zone: &Name, policy: &Policy) -> KeyStore {
        let mut store = KeyStore::open(dir, zone).unwrap();
        let roles: &[KeyRole] = match policy.split {
            KeySplit::Csk => &[KeyRole::Csk],
            KeySplit::KskZsk => &[KeyRole::Ksk, KeyRole::Zsk],
        };
        for role in roles {
            store
                .make(*role, policy.algorithm, 1_000, true, false)
                .unwrap();
        }
        store.save().unwrap();
        store
    }

    #[test]
    fn keys_are_made_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let zone = Name::from_ascii("example.").unwrap();
        let policy = policy(KeySplit::KskZsk, Algorithm::ECDSAP256SHA256);
        let first = made(dir.path(), &zone, &policy);
        for entry in &first.entries {
            let mode = std::fs::metadata(first.dir.join(&entry.file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{}", entry.file);
        }
        let again = KeyStore::open(dir.path(), &zone).unwrap();
        assert_eq!(again.entries, first.entries);
        let tags = |store: &KeyStore| {
            store
                .load()
                .unwrap()
                .iter()
                .map(|(_, k)| k.tag())
                .collect::<Vec<_>>()
        };
        assert_eq!(tags(&first), tags(&again));
        assert_eq!(read_entries(dir.path(), &zone).unwrap(), first.entries);
        // A removed key's file goes once the list without it is saved.
        let mut store = again;
        let gone = store.remove(store.entries[1].tag).unwrap();
        store.save().unwrap();
        store.delete_file(&gone);
        assert!(!store.dir.join(&gone.file).exists());
        assert_eq!(KeyStore::open(dir.path(), &zone).unwrap().entries.len(), 1);
    }

    #[test]
    fn a_changed_key_split_is_refused_with_the_way_out_and_an_algorithm_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let zone = Name::from_ascii("example.").unwrap();
        let store = made(
            dir.path(),
            &zone,
            &policy(KeySplit::Csk, Algorithm::ECDSAP256SHA256),
        );
        assert!(
            store
                .check_policy(&policy(KeySplit::Csk, Algorithm::ED25519))
                .is_ok()
        );
        let error = store
            .check_policy(&policy(KeySplit::KskZsk, Algorithm::ECDSAP256SHA256))
            .unwrap_err()
            .to_string();
        assert!(error.contains("move"), "{error}");
    }

    #[test]
    fn the_largest_ttl_and_a_pending_removal_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let zone = Name::from_ascii("example.").unwrap();
        let mut store = made(
            dir.path(),
            &zone,
            &policy(KeySplit::KskZsk, Algorithm::ED25519),
        );
        assert!(!store.removal_pending());
        let zsk = store.entries[1].tag;
        store.update(zsk, |e| e.retired = Some(2_000));
        store.max_ttl = 86_400;
        store.save().unwrap();
        let again = KeyStore::open(dir.path(), &zone).unwrap();
        assert!(again.removal_pending());
        assert_eq!(again.max_ttl, 86_400);
    }

    #[test]
    fn a_damaged_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let zone = Name::from_ascii("example.").unwrap();
        let store = made(
            dir.path(),
            &zone,
            &policy(KeySplit::Csk, Algorithm::ED25519),
        );
        let file = store.dir.join(&store.entries[0].file);
        std::fs::write(&file, b"garbage").unwrap();
        let error = store.load().unwrap_err().to_string();
        assert!(error.contains(&store.entries[0].file), "{error}");
    }
}
