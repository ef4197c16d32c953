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
    /// Indexes `records` as they come, holding each RRset's data as bytes and only
    /// the signatures as records (they are what is reused).
    pub(crate) fn of(records: impl Iterator<Item = Record>, origin: &Name) -> Self {
        let mut sets: HashMap<(Name, RecordType), (Content, Vec<Record>)> = HashMap::new();
        let mut soa = None;
        let mut nsec3param = None;
        for record in records {
            let owner = record.name.to_lowercase();
            if let RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) = &record.data {
                let key = (owner, rrsig.input().type_covered);
                sets.entry(key)
                    .or_insert_with(|| ((0, Vec::new()), Vec::with_capacity(1)))
                    .1
                    .push(record);
                continue;
            }
            match &record.data {
                RData::SOA(_) if owner == *origin => soa = Some(record.clone()),
                RData::DNSSEC(DNSSECRData::NSEC3PARAM(param)) if owner == *origin => {
                    nsec3param = Some((param.iterations(), param.salt().to_vec()));
                }
                _ => {}
            }
            let key = (owner, record.record_type());
            let ((ttl, data), _) = sets
                .entry(key)
                .or_insert_with(|| ((0, Vec::with_capacity(1)), Vec::new()));
            *ttl = if data.is_empty() {
                record.ttl
            } else {
                (*ttl).min(record.ttl)
            };
            data.push(record.data.to_bytes().unwrap_or_default());
        }
        for ((_, data), _) in sets.values_mut() {
            data.sort();
        }
        // Signatures over nothing (an RRset the version did not hold) are not sets.
        sets.retain(|_, ((_, data), _)| !data.is_empty());
        let serial = soa.as_ref().map_or(0, serial_of);
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

    /// RRsets of the previous version but `owner`/`rtype`.
    pub(crate) fn count_except(&self, owner: &Name, rtype: RecordType) -> usize {
        self.sets
            .keys()
            .filter(|(o, t)| !(t == &rtype && o == owner))
            .count()
    }
}
