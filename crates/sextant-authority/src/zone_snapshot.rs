//! Compiled snapshots of primary zones in `authority.state_dir/snapshots`, so that a
//! restart (or a reload of an unchanged file) serves a large zone without parsing
//! its text.
//!
//! A snapshot names every file its zone was read from (the zone file and each
//! `$INCLUDE`) with its size, modification time and SHA-256, and ends with the
//! SHA-256 of everything before it. It is used only when all of that still holds;
//! otherwise the zone file is parsed, as without a snapshot. Written to a temporary
//! file and renamed over the old one: a crash leaves the old snapshot or the new
//! one, and a torn file fails its digest.
//!
//! Secondary zones (served as transferred, without a policy) have snapshots too,
//! named by the version's serial and the digest of its records: at start the
//! authority tells the transfer daemon which versions it holds, and serves a
//! snapshot only once the transfer daemon says that version is still the published
//! one (instead of sending its records).
//!
//! Layout: magic (16 bytes), header length (u32 LE), header, the zone
//! ([`Zone::write_snapshot`]), digest (32 bytes). Header: kind (u8: 0 read from
//! files, 1 transferred); for files, sources (u16), each a path (u16 length,
//! bytes), size (u64), modification time (u64 seconds, u32 nanoseconds since 1970)
//! and SHA-256; for a transferred version, its serial (u32) and the digest of its
//! records (32 bytes); then warnings (u32), each a file (u16 length, bytes), line
//! (u32) and message (u32 length, UTF-8).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use hickory_proto::rr::Name;
use ring::digest::{Context, SHA256};
use sextant_zone::{Location, SnapshotReader, Zone, ZoneWarning};

/// Changes with the layout above (the zone's own encoding has its own format).
const MAGIC: &[u8; 16] = b"sextant-zsnap-02";
const DIGEST_LEN: usize = 32;

/// One file a zone was read from, as it was when read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Source {
    pub path: PathBuf,
    pub size: u64,
    pub modified: (u64, u32),
    pub digest: [u8; DIGEST_LEN],
}

/// Reads `path` as UTF-8 text and notes what it was. The file's size and time are
/// taken before it is read: a change while reading makes the snapshot stale, never
/// a snapshot of text that was not loaded.
pub(crate) fn read_source(path: &Path) -> std::io::Result<(String, Source)> {
    let metadata = std::fs::metadata(path)?;
    let text = std::fs::read_to_string(path)?;
    let source = Source {
        path: path.to_path_buf(),
        size: metadata.len(),
        modified: modified(&metadata),
        digest: sha256(text.as_bytes()),
    };
    Ok((text, source))
}

fn modified(metadata: &std::fs::Metadata) -> (u64, u32) {
    metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or((0, 0), |since| (since.as_secs(), since.subsec_nanos()))
}

fn sha256(bytes: &[u8]) -> [u8; DIGEST_LEN] {
    let mut digest = [0u8; DIGEST_LEN];
    digest.copy_from_slice(ring::digest::digest(&SHA256, bytes).as_ref());
    digest
}

/// Whether `source` still describes the file at its path: size and time first
/// (cheap), then the content's digest.
fn unchanged(source: &Source) -> Result<(), String> {
    let metadata = std::fs::metadata(&source.path)
        .map_err(|e| format!("{} cannot be read ({e})", source.path.display()))?;
    if metadata.len() != source.size || modified(&metadata) != source.modified {
        return Err(format!("{} changed since", source.path.display()));
    }
    let bytes = std::fs::read(&source.path)
        .map_err(|e| format!("{} cannot be read ({e})", source.path.display()))?;
    if sha256(&bytes) != source.digest {
        return Err(format!("{} changed since", source.path.display()));
    }
    Ok(())
}

/// Where the snapshot of `zone` lives.
pub(crate) fn path(state_dir: &Path, zone: &Name) -> PathBuf {
    let text = zone.to_lowercase().to_string();
    let text = text.trim_end_matches('.');
    let text = if text.is_empty() { "root" } else { text };
    state_dir.join("snapshots").join(format!("{text}.zsnap"))
}

/// A writer that hashes what passes through it.
struct Hashing<W: Write> {
    inner: W,
    context: Context,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.context.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Where a zone came from.
pub(crate) enum Origin<'a> {
    /// Read from these files.
    Files(&'a [Source]),
    /// A version from the transfer daemon.
    Transfer {
        serial: u32,
        digest: [u8; DIGEST_LEN],
    },
}

/// Writes the snapshot of `zone`, which came from `origin` with `warnings`.
pub(crate) fn save(
    state_dir: &Path,
    zone: &Zone,
    origin: &Origin<'_>,
    warnings: &[ZoneWarning],
) -> std::io::Result<()> {
    let target = path(state_dir, zone.origin());
    let dir = target.parent().unwrap_or(state_dir);
    std::fs::create_dir_all(dir)?;
    // A name of its own per write: two writes at once (a reload during the first
    // write) must not share one file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let temporary = target.with_extension(format!(
        "zsnap.{}.{}.tmp",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let file = File::create(&temporary)?;
        let mut out = Hashing {
            inner: BufWriter::with_capacity(1 << 20, file),
            context: Context::new(&SHA256),
        };
        out.write_all(MAGIC)?;
        let header = header(origin, warnings)?;
        out.write_all(&(header.len() as u32).to_le_bytes())?;
        out.write_all(&header)?;
        zone.write_snapshot(&mut out)?;
        let Hashing { inner, context } = out;
        let digest = context.finish();
        let mut file = inner
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        file.write_all(digest.as_ref())?;
        file.sync_all()?;
        std::fs::rename(&temporary, &target)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    remove_leftovers(&target);
    written
}

/// Deletes the temporary files of `target` that an earlier process left when it
/// stopped mid-write (those of this process may be another write in progress).
fn remove_leftovers(target: &Path) {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return;
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let ours = format!("{prefix}{}.", std::process::id());
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(&prefix) && file.ends_with(".tmp") && !file.starts_with(&ours) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn header(origin: &Origin<'_>, warnings: &[ZoneWarning]) -> std::io::Result<Vec<u8>> {
    let too_long = || std::io::Error::other("a path or message too long for a snapshot");
    let mut header = Vec::new();
    let sources = match origin {
        Origin::Files(sources) => {
            header.push(0);
            *sources
        }
        Origin::Transfer { serial, digest } => {
            header.push(1);
            header.extend_from_slice(&serial.to_le_bytes());
            header.extend_from_slice(digest);
            &[]
        }
    };
    if matches!(origin, Origin::Files(_)) {
        let count = u16::try_from(sources.len()).map_err(|_| too_long())?;
        header.extend_from_slice(&count.to_le_bytes());
    }
    for source in sources {
        let path = source.path.as_os_str().as_bytes();
        let len = u16::try_from(path.len()).map_err(|_| too_long())?;
        header.extend_from_slice(&len.to_le_bytes());
        header.extend_from_slice(path);
        header.extend_from_slice(&source.size.to_le_bytes());
        header.extend_from_slice(&source.modified.0.to_le_bytes());
        header.extend_from_slice(&source.modified.1.to_le_bytes());
        header.extend_from_slice(&source.digest);
    }
    let count = u32::try_from(warnings.len()).map_err(|_| too_long())?;
    header.extend_from_slice(&count.to_le_bytes());
    for warning in warnings {
        let file = warning.location.file.as_os_str().as_bytes();
        let len = u16::try_from(file.len()).map_err(|_| too_long())?;
        header.extend_from_slice(&len.to_le_bytes());
        header.extend_from_slice(file);
        let line = u32::try_from(warning.location.line).unwrap_or(u32::MAX);
        header.extend_from_slice(&line.to_le_bytes());
        let message = warning.message.as_bytes();
        let len = u32::try_from(message.len()).map_err(|_| too_long())?;
        header.extend_from_slice(&len.to_le_bytes());
        header.extend_from_slice(message);
    }
    Ok(header)
}

/// What became of a zone's snapshot.
pub(crate) enum Snapshot {
    /// The zone as it was, with the warnings its text gave.
    Served(Box<Zone>, Vec<ZoneWarning>),
    /// There is none.
    Absent,
    /// It was made from files that have changed since (which, for a reload, is
    /// the point): the reason, for one log line.
    Stale(String),
    /// It cannot be used: damaged, of another format or version, unreadable.
    Unusable(String),
}

/// The zone `zone` read from `file`, from its snapshot if that is still good.
pub(crate) fn load(state_dir: &Path, zone: &Name, file: &Path) -> Snapshot {
    let bytes = match std::fs::read(path(state_dir, zone)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Snapshot::Absent,
        Err(e) => return Snapshot::Unusable(format!("it cannot be read ({e})")),
    };
    match check(&bytes, zone, file) {
        Ok((zone, warnings)) => Snapshot::Served(Box::new(zone), warnings),
        Err(outcome) => outcome,
    }
}

fn check(bytes: &[u8], zone: &Name, file: &Path) -> Result<(Zone, Vec<ZoneWarning>), Snapshot> {
    let (header, zone_bytes, warnings) = read_header(bytes).map_err(Snapshot::Unusable)?;
    let Header::Files(sources) = header else {
        return Err(Snapshot::Stale(
            "it is of a transferred version, and the zone is now read from a file".into(),
        ));
    };
    if sources.first().map(|s| s.path.as_path()) != Some(file) {
        return Err(Snapshot::Stale(format!(
            "it was made from another file than {}",
            file.display()
        )));
    }
    for source in &sources {
        unchanged(source).map_err(Snapshot::Stale)?;
    }
    let built = Zone::read_snapshot(zone, file, zone_bytes).map_err(Snapshot::Unusable)?;
    Ok((built, warnings))
}

/// The snapshot of a transferred version of `zone`, with that version's serial and
/// digest; `Ok(None)` when there is none, an error (for one log line) when it
/// cannot be used.
pub(crate) fn load_transferred(
    state_dir: &Path,
    zone: &Name,
) -> Result<Option<(Zone, u32, [u8; DIGEST_LEN])>, String> {
    let bytes = match std::fs::read(path(state_dir, zone)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("it cannot be read ({e})")),
    };
    let (header, zone_bytes, _) = read_header(&bytes)?;
    let Header::Transfer { serial, digest } = header else {
        // The zone was a primary zone before: nothing to offer the transfer daemon.
        return Ok(None);
    };
    let source = PathBuf::from(format!("snapshot of {zone} serial {serial}"));
    let built = Zone::read_snapshot(zone, &source, zone_bytes)?;
    Ok(Some((built, serial, digest)))
}

/// What a snapshot was made from.
enum Header {
    Files(Vec<Source>),
    Transfer {
        serial: u32,
        digest: [u8; DIGEST_LEN],
    },
}

/// The digest checked and the header read: where the zone came from, the zone's
/// bytes and the warnings.
fn read_header(bytes: &[u8]) -> Result<(Header, &[u8], Vec<ZoneWarning>), String> {
    let body_len = bytes
        .len()
        .checked_sub(DIGEST_LEN)
        .filter(|len| *len >= MAGIC.len() + 4)
        .ok_or("it is too short")?;
    let (body, digest) = bytes.split_at(body_len);
    if !body.starts_with(MAGIC) {
        return Err("it is of another format".into());
    }
    if sha256(body) != digest {
        return Err("it is damaged (its digest does not match)".into());
    }
    let mut input = SnapshotReader::new(&body[MAGIC.len()..]);
    let header_len = input.u32()? as usize;
    let mut header = SnapshotReader::new(input.take(header_len)?);
    let zone_bytes = input.rest();
    let kind = header.take(1)?[0];
    let mut sources = Vec::new();
    let origin_count = match kind {
        0 => header.u16()?,
        1 => 0,
        other => return Err(format!("it is of an unknown kind {other}")),
    };
    let transfer = if kind == 1 {
        let serial = header.u32()?;
        let mut digest = [0u8; DIGEST_LEN];
        digest.copy_from_slice(header.take(DIGEST_LEN)?);
        Some((serial, digest))
    } else {
        None
    };
    for _ in 0..origin_count {
        let len = usize::from(header.u16()?);
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(header.take(len)?));
        let size = header.u64()?;
        let modified = (header.u64()?, header.u32()?);
        let mut digest = [0u8; DIGEST_LEN];
        digest.copy_from_slice(header.take(DIGEST_LEN)?);
        sources.push(Source {
            path,
            size,
            modified,
            digest,
        });
    }
    let mut warnings = Vec::new();
    let mut files: Vec<Arc<PathBuf>> = Vec::new();
    for _ in 0..header.u32()? {
        let len = usize::from(header.u16()?);
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(header.take(len)?));
        let file = match files.iter().find(|f| ***f == path) {
            Some(file) => file.clone(),
            None => {
                let file = Arc::new(path);
                files.push(file.clone());
                file
            }
        };
        let line = header.u32()? as usize;
        let len = header.u32()? as usize;
        let message =
            String::from_utf8(header.take(len)?.to_vec()).map_err(|_| "a warning is not UTF-8")?;
        warnings.push(ZoneWarning {
            location: Location { file, line },
            message,
        });
    }
    let origin = match transfer {
        Some((serial, digest)) => Header::Transfer { serial, digest },
        None => Header::Files(sources),
    };
    Ok((origin, zone_bytes, warnings))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const ZONE: &str = "$TTL 300\n@ SOA ns hostmaster 7 2 3 4 60\n  NS ns\nns A 192.0.2.1\nns A 192.0.2.1\n$INCLUDE hosts.inc\n";

    struct Setup {
        dir: tempfile::TempDir,
        name: Name,
        file: PathBuf,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("example.zone"), ZONE).unwrap();
        std::fs::write(dir.path().join("hosts.inc"), "www A 192.0.2.80\n").unwrap();
        Setup {
            file: dir.path().join("example.zone"),
            name: Name::from_ascii("example.com.").unwrap(),
            dir,
        }
    }

    /// Loads the zone from text as the authority does and saves its snapshot.
    fn load_and_save(setup: &Setup) -> Zone {
        let (text, source) = read_source(&setup.file).unwrap();
        let sources = std::cell::RefCell::new(vec![source]);
        let read_include = |path: &Path| {
            let (text, source) = read_source(path)?;
            sources.borrow_mut().push(source);
            Ok(text)
        };
        let (zone, warnings) =
            Zone::from_master_text(&setup.name, &setup.file, &text, &read_include).unwrap();
        assert_eq!(warnings.len(), 1, "the duplicate A record");
        save(
            setup.dir.path(),
            &zone,
            &Origin::Files(&sources.into_inner()),
            &warnings,
        )
        .unwrap();
        zone
    }

    fn load_again(setup: &Setup) -> Snapshot {
        load(setup.dir.path(), &setup.name, &setup.file)
    }

    #[test]
    fn an_unchanged_zone_comes_back_with_its_warnings() {
        let setup = setup();
        assert!(matches!(load_again(&setup), Snapshot::Absent));
        let zone = load_and_save(&setup);
        let Snapshot::Served(back, warnings) = load_again(&setup) else {
            panic!("not served from the snapshot");
        };
        assert_eq!(back.serial(), zone.serial());
        assert_eq!(back.record_count(), zone.record_count());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].message.contains("duplicate"), "{}", warnings[0]);
        assert_eq!(warnings[0].location.line, 5);
        // No temporary file is left behind, nor one an earlier process left.
        let leftover = setup.dir.path().join("snapshots/example.com.zsnap.1.0.tmp");
        std::fs::write(&leftover, b"half").unwrap();
        load_and_save(&setup);
        assert!(!leftover.exists());
        let names: Vec<_> = std::fs::read_dir(setup.dir.path().join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["example.com.zsnap"]);
    }

    #[test]
    fn a_changed_include_or_zone_file_makes_it_stale() {
        let setup = setup();
        load_and_save(&setup);
        // Same size, other content: the digest tells.
        std::fs::write(setup.dir.path().join("hosts.inc"), "www A 192.0.2.81\n").unwrap();
        let Snapshot::Stale(reason) = load_again(&setup) else {
            panic!("a changed include was not noticed");
        };
        assert!(reason.contains("hosts.inc changed"), "{reason}");

        load_and_save(&setup);
        std::fs::write(&setup.file, format!("{ZONE}mail A 192.0.2.25\n")).unwrap();
        assert!(matches!(load_again(&setup), Snapshot::Stale(_)));

        load_and_save(&setup);
        let moved = setup.dir.path().join("moved.zone");
        std::fs::copy(&setup.file, &moved).unwrap();
        let Snapshot::Stale(reason) = load(setup.dir.path(), &setup.name, &moved) else {
            panic!("a snapshot of another file was used");
        };
        assert!(reason.contains("another file"), "{reason}");
    }

    #[test]
    fn damage_or_another_format_is_never_served() {
        let setup = setup();
        load_and_save(&setup);
        let snapshot = path(setup.dir.path(), &setup.name);
        let good = std::fs::read(&snapshot).unwrap();
        for at in [0, 20, good.len() / 2, good.len() - 1] {
            let mut damaged = good.clone();
            damaged[at] ^= 0x01;
            std::fs::write(&snapshot, &damaged).unwrap();
            let Snapshot::Unusable(reason) = load_again(&setup) else {
                panic!("damage at {at} not noticed");
            };
            assert!(
                reason.contains("damaged") || reason.contains("another format"),
                "{reason}"
            );
        }
        std::fs::write(&snapshot, &good[..good.len() / 2]).unwrap();
        assert!(matches!(load_again(&setup), Snapshot::Unusable(_)));
        std::fs::write(&snapshot, b"").unwrap();
        assert!(matches!(load_again(&setup), Snapshot::Unusable(_)));
    }
}
