//! The IXFR journal of a primary (RFC 1995): for each zone, the differences between
//! successive versions, oldest first, so that a secondary holding any recent serial
//! can be sent only what changed. Bounded per zone; a serial not in it gets the
//! whole zone instead.
//!
//! Tree `journal/<zone>`: key = sequence number (u64 BE), value = from serial (u32
//! BE), to serial (u32 BE), then the removed and the added records, each list as a
//! count (u32 BE) of length-prefixed (u32 BE) records. The first removed record is
//! the old SOA and the first added one the new SOA, as IXFR sends them.

use crate::{Store, StoreError, sled_error};

const JOURNAL_PREFIX: &str = "journal/";
/// Differences kept per zone.
const MAX_DIFFS: usize = 64;

/// One version-to-version difference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diff {
    /// The serial the difference starts from.
    pub from: u32,
    /// The serial it leads to.
    pub to: u32,
    /// The old SOA first, then the records removed.
    pub removed: Vec<Vec<u8>>,
    /// The new SOA first, then the records added.
    pub added: Vec<Vec<u8>>,
}

impl Diff {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.from.to_be_bytes());
        out.extend_from_slice(&self.to.to_be_bytes());
        for list in [&self.removed, &self.added] {
            out.extend_from_slice(&(list.len() as u32).to_be_bytes());
            for record in list {
                out.extend_from_slice(&(record.len() as u32).to_be_bytes());
                out.extend_from_slice(record);
            }
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut at = 0;
        let u32_at = |at: &mut usize| -> Option<u32> {
            let value = bytes.get(*at..*at + 4)?;
            *at += 4;
            Some(u32::from_be_bytes([value[0], value[1], value[2], value[3]]))
        };
        let from = u32_at(&mut at)?;
        let to = u32_at(&mut at)?;
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            let count = u32_at(&mut at)?;
            for _ in 0..count {
                let len = u32_at(&mut at)? as usize;
                list.push(bytes.get(at..at + len)?.to_vec());
                at += len;
            }
        }
        let [removed, added] = lists;
        (at == bytes.len()).then_some(Self {
            from,
            to,
            removed,
            added,
        })
    }
}

impl Store {
    fn journal(&self, zone: &str) -> Result<sled::Tree, StoreError> {
        let name = format!("{JOURNAL_PREFIX}{zone}");
        self.db
            .open_tree(&name)
            .map_err(sled_error(format!("open {name}")))
    }

    /// Appends a difference to `zone`'s journal, durably, dropping the oldest past
    /// the bound.
    pub async fn append_diff(&self, zone: &str, diff: &Diff) -> Result<(), StoreError> {
        let tree = self.journal(zone)?;
        let next = match tree.last().map_err(sled_error("read the journal"))? {
            Some((key, _)) => key.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0) + 1,
            None => 0,
        };
        tree.insert(next.to_be_bytes(), diff.encode())
            .map_err(sled_error("append to the journal"))?;
        while tree.len() > MAX_DIFFS {
            tree.pop_min().map_err(sled_error("trim the journal"))?;
        }
        tree.flush_async()
            .await
            .map_err(sled_error("flush the journal"))?;
        Ok(())
    }

    /// The differences from `serial` to the newest version, in order, if the journal
    /// holds an unbroken chain from it.
    pub fn diffs_since(&self, zone: &str, serial: u32) -> Result<Option<Vec<Diff>>, StoreError> {
        let tree = self.journal(zone)?;
        let mut chain: Vec<Diff> = Vec::new();
        for entry in tree.iter() {
            let (_, value) = entry.map_err(sled_error("read the journal"))?;
            let diff = Diff::decode(&value).ok_or_else(|| StoreError::Corrupt {
                key: format!("{JOURNAL_PREFIX}{zone}"),
                what: "a journal entry does not decode",
            })?;
            match chain.last() {
                None if diff.from == serial => chain.push(diff),
                None => {}
                Some(last) if last.to == diff.from => chain.push(diff),
                // A break in the chain (a version loaded without a diff): start again.
                Some(_) if diff.from == serial => chain = vec![diff],
                Some(_) => chain.clear(),
            }
        }
        Ok((!chain.is_empty()).then_some(chain))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn diff(from: u32, to: u32) -> Diff {
        Diff {
            from,
            to,
            removed: vec![format!("soa {from}").into_bytes(), b"old".to_vec()],
            added: vec![
                format!("soa {to}").into_bytes(),
                b"new".to_vec(),
                Vec::new(),
            ],
        }
    }

    #[tokio::test]
    async fn chains_are_found_from_any_recent_serial_and_the_journal_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        assert_eq!(store.diffs_since("z.", 1).unwrap(), None);
        for serial in 1..=3 {
            store
                .append_diff("z.", &diff(serial, serial + 1))
                .await
                .unwrap();
        }
        let chain = store.diffs_since("z.", 2).unwrap().unwrap();
        assert_eq!(chain, vec![diff(2, 3), diff(3, 4)]);
        assert_eq!(store.diffs_since("z.", 9).unwrap(), None);
        for serial in 4..200 {
            store
                .append_diff("z.", &diff(serial, serial + 1))
                .await
                .unwrap();
        }
        assert_eq!(store.diffs_since("z.", 1).unwrap(), None, "trimmed");
        assert_eq!(store.diffs_since("z.", 190).unwrap().unwrap().len(), 10);
    }

    #[test]
    fn entries_round_trip_and_garbage_does_not_decode() {
        let d = diff(7, 8);
        assert_eq!(Diff::decode(&d.encode()), Some(d.clone()));
        let bytes = d.encode();
        assert_eq!(Diff::decode(&bytes[..bytes.len() - 1]), None);
    }
}
