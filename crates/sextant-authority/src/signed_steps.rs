//! The changes signed since the last whole signed version (`signed.bin`), kept
//! beside it as `signed.steps`: each signed change is appended and fsynced before
//! it is served, so that a restart starts from exactly what was served without
//! rewriting the whole version for every change. The file names the version it
//! changes (the digest `signed.bin` ends with): steps of another version are
//! ignored, and a step cut short by a crash (never served) is cut off.
//!
//! A step appended and then not served (a reload that failed at a later zone) is
//! followed by one made from the version served before it: each step moves the
//! SOA serial, so a step whose old serial is not the last step's new one says
//! which steps were passed over, and those are left out when reading.
//!
//! Format: a 16-byte magic and the 32-byte base digest, then frames of a 4-byte
//! length, the step (4-byte counts of removed and added records, then each record
//! as a 4-byte length and its wire form) and the SHA-256 of the step.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{RData, Record};
use hickory_proto::serialize::binary::BinDecodable;

const MAGIC: &[u8; 16] = b"sextant-steps\x00\x00\x01";
const HEADER_LEN: usize = MAGIC.len() + 32;

pub(crate) fn path(zone_dir: &Path) -> PathBuf {
    zone_dir.join("signed.steps")
}

/// Appends the signed change (`removed`, `added`) to the steps of the version
/// whose digest is `base`, durably. Returns the file's length.
pub(crate) fn append(
    zone_dir: &Path,
    base: &[u8; 32],
    removed: &[Record],
    added: &[Record],
) -> std::io::Result<u64> {
    let mut step = Vec::new();
    step.extend(
        u32::try_from(removed.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    step.extend(u32::try_from(added.len()).unwrap_or(u32::MAX).to_be_bytes());
    for record in removed.iter().chain(added) {
        let wire = crate::signed_version::step_wire(record)
            .ok_or_else(|| std::io::Error::other(format!("{record} does not encode")))?;
        step.extend(u32::try_from(wire.len()).unwrap_or(u32::MAX).to_be_bytes());
        step.extend(wire);
    }
    let length = u32::try_from(step.len())
        .map_err(|_| std::io::Error::other("the signed change is too large for one step"))?;
    let mut frame = Vec::with_capacity(step.len() + 36);
    frame.extend(length.to_be_bytes());
    frame.extend(ring::digest::digest(&ring::digest::SHA256, &step).as_ref());
    frame.extend(step);
    let path = path(zone_dir);
    if header_matches(&path, base) {
        let mut file = OpenOptions::new().append(true).open(&path)?;
        file.write_all(&frame)?;
        file.sync_data()?;
        return Ok(file.metadata()?.len());
    }
    // A first step (or steps of an older version left by a crash): a new file.
    let temporary = path.with_extension("steps.tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(MAGIC)?;
    file.write_all(base)?;
    file.write_all(&frame)?;
    file.sync_all()?;
    let length = file.metadata()?.len();
    std::fs::rename(&temporary, &path)?;
    File::open(zone_dir)?.sync_all()?;
    Ok(length)
}

fn header_matches(path: &Path, base: &[u8; 32]) -> bool {
    let mut header = [0u8; HEADER_LEN];
    File::open(path)
        .and_then(|mut file| file.read_exact(&mut header))
        .is_ok_and(|()| header[..MAGIC.len()] == *MAGIC && header[MAGIC.len()..] == *base)
}

/// What the steps of the version `base` do, as a count per record (wire form):
/// negative for a record of the base taken out, positive for one put in. `None`
/// without steps for that version. `base_serial` gives the base's SOA serial (asked
/// only when there are steps). A step cut short, or one that follows none of the
/// steps before it nor the base, is cut off the file with those after it.
pub(crate) fn read(
    zone_dir: &Path,
    base: &[u8; 32],
    base_serial: impl FnOnce() -> Option<u32>,
) -> Option<HashMap<Vec<u8>, i64>> {
    let path = path(zone_dir);
    let bytes = std::fs::read(&path).ok()?;
    if bytes.len() < HEADER_LEN
        || bytes[..MAGIC.len()] != *MAGIC
        || bytes[MAGIC.len()..HEADER_LEN] != *base
    {
        return None;
    }
    let base_serial = base_serial();
    let mut at = HEADER_LEN;
    let mut served: Vec<Step<'_>> = Vec::new();
    let mut frames = 0usize;
    while let Some(bytes) = frame(&bytes, at) {
        let step = Step::of(bytes);
        if let Some((before, _)) = step.serials {
            let after_of = |s: &Step<'_>| s.serials.map(|(_, after)| after);
            // The serial the steps start from: the base's, or when it cannot be
            // read, the first step's.
            let start =
                base_serial.or_else(|| served.first().and_then(|s| s.serials).map(|(b, _)| b));
            if let Some(last) = served.iter().rposition(|s| after_of(s) == Some(before)) {
                // Made from the version that step made: those after it were not
                // served.
                served.truncate(last + 1);
            } else if start.is_none_or(|start| start == before) {
                // Made from the base: every step before it was not served.
                served.clear();
            } else {
                tracing::warn!(path = %path.display(), frames, "a signed change follows neither the ones before it nor the signed version they change; it and those after it are cut off");
                break;
            }
        }
        at += 36 + bytes.len();
        frames += 1;
        served.push(step);
    }
    let steps = served.len();
    let mut counts: HashMap<Vec<u8>, i64> = HashMap::new();
    for step in served {
        for (removed, wire) in records(step.bytes) {
            *counts.entry(wire.to_vec()).or_default() += if removed { -1 } else { 1 };
        }
    }
    if at < bytes.len() {
        tracing::warn!(path = %path.display(), good = at, length = bytes.len(), "cutting off the signed changes past the last good one (cut short by a crash, never served, or following none)");
        let cut = OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_len(at as u64).and_then(|()| file.sync_all()));
        if let Err(error) = cut {
            // The steps read stand; steps appended behind the cut-short one would
            // not be read back after a restart (the zone would then be signed
            // again from its data): the operator is told.
            tracing::error!(path = %path.display(), %error, "cannot cut the signed changes short; check the disk: changes signed from now on are not read back after a restart");
        }
    }
    tracing::debug!(path = %path.display(), steps, "signed changes read");
    Some(counts)
}

/// The step of the frame at `at`, if it is whole and its digest holds.
fn frame(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let length = u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize;
    let digest = bytes.get(at + 4..at + 36)?;
    let step = bytes.get(at + 36..at + 36 + length)?;
    (ring::digest::digest(&ring::digest::SHA256, step).as_ref() == digest).then_some(step)
}

/// A step read, with the SOA serial of the version it changes and of the one it
/// makes (`None` when it does not move the SOA: then it is taken as following).
struct Step<'a> {
    bytes: &'a [u8],
    serials: Option<(u32, u32)>,
}

impl<'a> Step<'a> {
    fn of(bytes: &'a [u8]) -> Self {
        let serial = |wanted: bool| {
            records(bytes)
                .filter(|(removed, _)| *removed == wanted)
                .find_map(|(_, wire)| match Record::from_bytes(wire).ok()?.data {
                    RData::SOA(soa) => Some(soa.serial),
                    _ => None,
                })
        };
        Step {
            bytes,
            serials: serial(true).zip(serial(false)),
        }
    }
}

/// The records of a step: whether each is taken out (else put in), and its wire
/// form. A step that does not parse ends early (its digest held, so it is one
/// we wrote: this does not happen).
fn records(step: &[u8]) -> impl Iterator<Item = (bool, &[u8])> {
    let number = |at: usize| {
        step.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
    };
    let (removed, added) = number(0).zip(number(4)).unwrap_or((0, 0));
    let mut at = 8;
    (0..u64::from(removed) + u64::from(added)).map_while(move |index| {
        let length = number(at)? as usize;
        let wire = step.get(at + 4..at + 4 + length)?;
        at += 4 + length;
        Some((index < u64::from(removed), wire))
    })
}

/// Deletes the steps (a new whole version was written).
pub(crate) fn remove(zone_dir: &Path) {
    let _ = std::fs::remove_file(path(zone_dir));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use hickory_proto::rr::{Name, RData};

    use super::*;
    use crate::signed_version;

    fn a(i: u8) -> Record {
        Record::from_rdata(
            Name::from_ascii(format!("n{i}.example.")).unwrap(),
            300,
            RData::A(std::net::Ipv4Addr::new(192, 0, 2, i).into()),
        )
    }

    fn sorted(records: impl Iterator<Item = Record>) -> Vec<String> {
        let mut text: Vec<String> = records.map(|r| r.to_string()).collect();
        text.sort();
        text
    }

    fn base(dir: &Path) -> [u8; 32] {
        base_of(dir, 0..5)
    }

    fn base_of(dir: &Path, names: std::ops::Range<u8>) -> [u8; 32] {
        version_of(dir, &names.map(a).collect::<Vec<_>>())
    }

    /// A whole signed version of `records`: its digest.
    fn version_of(dir: &Path, records: &[Record]) -> [u8; 32] {
        let mut writer = signed_version::Writer::create(dir).unwrap();
        for record in records {
            writer.push(record);
        }
        writer.commit().unwrap();
        signed_version::digest(dir).unwrap()
    }

    #[test]
    fn steps_apply_in_order_over_their_version_only() {
        let dir = tempfile::tempdir().unwrap();
        let digest = base(dir.path());
        append(dir.path(), &digest, &[a(1)], &[a(10), a(11)]).unwrap();
        // Added by one step, removed by the next: gone.
        append(dir.path(), &digest, &[a(10)], &[a(12)]).unwrap();
        let read = sorted(signed_version::read(dir.path()).unwrap());
        let expected = sorted([a(0), a(2), a(3), a(4), a(11), a(12)].into_iter());
        assert_eq!(read, expected);
        // A new whole version: the steps are of the old one and are dropped.
        let new_digest = base_of(dir.path(), 0..6);
        assert_ne!(new_digest, digest);
        assert!(!path(dir.path()).exists());
        assert_eq!(sorted(signed_version::read(dir.path()).unwrap()).len(), 6);
        // Steps naming another version are ignored.
        append(dir.path(), &digest, &[a(0)], &[]).unwrap();
        assert_eq!(sorted(signed_version::read(dir.path()).unwrap()).len(), 6);
    }

    fn soa(serial: u32) -> Record {
        let name = Name::from_ascii("example.").unwrap();
        Record::from_rdata(
            name.clone(),
            300,
            RData::SOA(hickory_proto::rr::rdata::SOA::new(
                name.clone(),
                name,
                serial,
                3600,
                900,
                604_800,
                60,
            )),
        )
    }

    #[test]
    fn steps_appended_but_never_served_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let digest = version_of(dir.path(), &[soa(1), a(0)]);
        // Served: 1 -> 2.
        append(dir.path(), &digest, &[soa(1)], &[soa(2), a(10)]).unwrap();
        // 2 -> 3, then a reload failing at another zone: never served.
        append(dir.path(), &digest, &[soa(2)], &[soa(3), a(11)]).unwrap();
        // The next change, made from the version served (2).
        append(dir.path(), &digest, &[soa(2), a(0)], &[soa(3), a(12)]).unwrap();
        let read = sorted(signed_version::read(dir.path()).unwrap());
        assert_eq!(read, sorted([soa(3), a(10), a(12)].into_iter()));
        // Never served twice from the base itself: only the last step stands.
        append(dir.path(), &digest, &[soa(1)], &[soa(2), a(13)]).unwrap();
        let read = sorted(signed_version::read(dir.path()).unwrap());
        assert_eq!(read, sorted([soa(2), a(0), a(13)].into_iter()));
        // A step that follows none of them (not one we would write) is cut off:
        // what came before it stands, and the next step is read after it.
        append(dir.path(), &digest, &[soa(7)], &[soa(8)]).unwrap();
        let read = sorted(signed_version::read(dir.path()).unwrap());
        assert_eq!(read, sorted([soa(2), a(0), a(13)].into_iter()));
        append(dir.path(), &digest, &[soa(2)], &[soa(3), a(14)]).unwrap();
        let read = sorted(signed_version::read(dir.path()).unwrap());
        assert_eq!(read, sorted([soa(3), a(0), a(13), a(14)].into_iter()));
    }

    #[test]
    fn a_first_step_not_made_from_the_signed_version_is_cut_off() {
        // A whole signing wrote version 6 during a reload that then failed at
        // another zone: 5 stayed served, and the next change was made from it.
        let dir = tempfile::tempdir().unwrap();
        let digest = version_of(dir.path(), &[a(0), soa(6)]);
        append(dir.path(), &digest, &[soa(5)], &[soa(6), a(10)]).unwrap();
        let read = sorted(signed_version::read(dir.path()).unwrap());
        assert_eq!(read, sorted([soa(6), a(0)].into_iter()));
        assert!(
            !path(dir.path()).exists()
                || std::fs::metadata(path(dir.path())).unwrap().len() == HEADER_LEN as u64
        );
    }

    #[test]
    fn a_step_cut_short_is_cut_off_and_the_next_one_follows_the_good_ones() {
        let dir = tempfile::tempdir().unwrap();
        let digest = base(dir.path());
        append(dir.path(), &digest, &[a(0)], &[a(20)]).unwrap();
        let good = std::fs::metadata(path(dir.path())).unwrap().len();
        append(dir.path(), &digest, &[a(1)], &[a(21)]).unwrap();
        // A crash in the middle of the second step's write.
        let file = OpenOptions::new()
            .write(true)
            .open(path(dir.path()))
            .unwrap();
        file.set_len(good + 10).unwrap();
        drop(file);
        let read = sorted(signed_version::read(dir.path()).unwrap());
        assert_eq!(read, sorted([a(1), a(2), a(3), a(4), a(20)].into_iter()));
        assert_eq!(std::fs::metadata(path(dir.path())).unwrap().len(), good);
        append(dir.path(), &digest, &[a(2)], &[]).unwrap();
        let read = sorted(signed_version::read(dir.path()).unwrap());
        assert_eq!(read, sorted([a(1), a(3), a(4), a(20)].into_iter()));
    }
}
