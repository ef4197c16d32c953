//! The previous signed version, indexed so that the signer can keep what did not
//! change: each RRset's content with its signatures, the serial, the NSEC3 salt.

use std::collections::HashMap;

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use crate::sign::serial_of;

/// An RRset as compared between versions: its TTL and its records' data.
pub(crate) type Content = (u32, Vec<Vec<u8>>);

pub(crate) fn content(set: &[Record]) -> Content {
    let mut data: Vec<Vec<u8>> = set
        .iter()
        .map(|r| r.data.to_bytes().unwrap_or_default())
        .collect();
    data.sort();
    (set.first().map_or(0, |r| r.ttl), data)
}

/// The previous signed version, indexed for reuse.
pub(crate) struct Previous {
    /// Each RRset's content and the signatures over it, by owner and type.
    pub(crate) sets: HashMap<(Name, RecordType), (Content, Vec<Record>)>,
    pub(crate) soa: Option<Record>,
    pub(crate) serial: u32,
    nsec3param: Option<(u16, Vec<u8>)>,
}

impl Previous {
    pub(crate) fn of(records: &[Record], origin: &Name) -> Self {
        let mut grouped: HashMap<(Name, RecordType), Vec<Record>> = HashMap::new();
        let mut sigs: HashMap<(Name, RecordType), Vec<Record>> = HashMap::new();
        let mut soa = None;
        let mut nsec3param = None;
        for record in records {
            let owner = record.name.to_lowercase();
            match &record.data {
                RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) => {
                    sigs.entry((owner, rrsig.input().type_covered))
                        .or_default()
                        .push(record.clone());
                    continue;
                }
                RData::SOA(_) if owner == *origin => soa = Some(record.clone()),
                RData::DNSSEC(DNSSECRData::NSEC3PARAM(param)) if owner == *origin => {
                    nsec3param = Some((param.iterations(), param.salt().to_vec()));
                }
                _ => {}
            }
            grouped
                .entry((owner, record.record_type()))
                .or_default()
                .push(record.clone());
        }
        let serial = soa.as_ref().map_or(0, serial_of);
        let sets = grouped
            .into_iter()
            .map(|(key, set)| {
                let signatures = sigs.remove(&key).unwrap_or_default();
                (key, (content(&set), signatures))
            })
            .collect();
        Self {
            sets,
            soa,
            serial,
            nsec3param,
        }
    }

    /// The previous chain's salt when the policy's parameters still fit it.
    pub(crate) fn nsec3_salt(&self, iterations: u16, salt_length: u8) -> Option<Vec<u8>> {
        let (old_iterations, salt) = self.nsec3param.as_ref()?;
        (*old_iterations == iterations && salt.len() == usize::from(salt_length))
            .then(|| salt.clone())
    }

    /// Whether `signed` (everything but the SOA RRset and its signatures) is the
    /// previous version's content, signatures included.
    pub(crate) fn same_except_soa(&self, signed: &[Record], origin: &Name) -> bool {
        let mut grouped: HashMap<(Name, RecordType), Vec<&Record>> = HashMap::new();
        let mut sigs: HashMap<(Name, RecordType), Vec<Vec<u8>>> = HashMap::new();
        for record in signed {
            if let RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) = &record.data {
                sigs.entry((record.name.clone(), rrsig.input().type_covered))
                    .or_default()
                    .push(record.data.to_bytes().unwrap_or_default());
            } else {
                grouped
                    .entry((record.name.clone(), record.record_type()))
                    .or_default()
                    .push(record);
            }
        }
        let previous_count = self
            .sets
            .keys()
            .filter(|(owner, rtype)| !(*rtype == RecordType::SOA && owner == origin))
            .count();
        if grouped.len() != previous_count {
            return false;
        }
        grouped.iter().all(|(key, set)| {
            let Some((old_content, old_sigs)) = self.sets.get(key) else {
                return false;
            };
            let set: Vec<Record> = set.iter().map(|r| (*r).clone()).collect();
            if content(&set) != *old_content {
                return false;
            }
            let mut new_sigs = sigs.get(key).cloned().unwrap_or_default();
            let mut old: Vec<Vec<u8>> = old_sigs
                .iter()
                .map(|r| r.data.to_bytes().unwrap_or_default())
                .collect();
            new_sigs.sort();
            old.sort();
            new_sigs == old
        })
    }
}
