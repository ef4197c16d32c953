//! A resource record set: the records of one owner and type, sharing one TTL.

use hickory_proto::rr::{Name, RData, Record, RecordType};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RRset {
    pub rtype: RecordType,
    /// Seconds; one value for the whole set (RFC 2181 §5.2).
    pub ttl: u32,
    pub rdatas: Vec<RData>,
}

impl RRset {
    /// The set as records owned by `owner` (the query's spelling of the name, so that
    /// the answer compresses against the question and echoes its case).
    pub fn records(&self, owner: &Name) -> impl Iterator<Item = Record> + '_ {
        let owner = owner.clone();
        self.rdatas
            .iter()
            .map(move |rdata| Record::from_rdata(owner.clone(), self.ttl, rdata.clone()))
    }
}
