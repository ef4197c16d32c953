//! IXFR (RFC 1995): the receiver of an incremental transfer and the application of its
//! differences to the current version. Differences are small and held in memory; a
//! primary that answers with a whole zone ("AXFR-style") or with differences that do
//! not fit our version sends us back to AXFR.

use std::net::SocketAddr;

use hickory_proto::op::Message;
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};

use crate::XfrError;
use crate::axfr::{Limits, check_message, serial_of};
use crate::serial::is_newer;

/// One difference sequence: from serial `from` to the SOA `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Diff {
    pub from: u32,
    pub to: Record,
    pub deleted: Vec<Record>,
    pub added: Vec<Record>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IxfrOutcome {
    /// The primary has nothing newer than our serial.
    UpToDate { serial: u32 },
    /// The primary sent the whole zone: transfer it by AXFR instead.
    AxfrStyle,
    /// Differences from our serial to `soa`'s.
    Incremental { soa: Box<Record>, diffs: Vec<Diff> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    First,
    Second,
    Deleting,
    Adding,
}

#[derive(Debug)]
pub(crate) struct IxfrReceiver {
    primary: SocketAddr,
    zone: Name,
    query_id: u16,
    ours: u32,
    limits: Limits,
    state: State,
    newest: Option<Record>,
    current: Option<Diff>,
    diffs: Vec<Diff>,
    records: u64,
}

impl IxfrReceiver {
    pub(crate) fn new(
        primary: SocketAddr,
        zone: &Name,
        query_id: u16,
        ours: u32,
        limits: Limits,
    ) -> Self {
        Self {
            primary,
            zone: zone.to_lowercase(),
            query_id,
            ours,
            limits,
            state: State::First,
            newest: None,
            current: None,
            diffs: Vec::new(),
            records: 0,
        }
    }

    fn malformed(&self, reason: impl Into<String>) -> XfrError {
        XfrError::Malformed {
            primary: self.primary,
            reason: reason.into(),
        }
    }

    /// Checks one message; `Some` once the response is complete.
    pub(crate) fn accept(&mut self, message: &Message) -> Result<Option<IxfrOutcome>, XfrError> {
        check_message(
            self.primary,
            &self.zone,
            self.query_id,
            RecordType::IXFR,
            message,
        )?;
        let last = message.answers.len();
        for (index, record) in message.answers.iter().enumerate() {
            self.records += 1;
            if self.records > self.limits.max_records {
                return Err(XfrError::TooLarge {
                    primary: self.primary,
                    limit: self.limits.max_records,
                    what: "records",
                });
            }
            if record.dns_class != DNSClass::IN || !self.zone.zone_of(&record.name) {
                return Err(self.malformed(format!(
                    "{} is outside zone {} or not class IN",
                    record.name, self.zone
                )));
            }
            let is_soa = record.record_type() == RecordType::SOA;
            if is_soa && record.name.to_lowercase() != self.zone {
                return Err(
                    self.malformed(format!("SOA record at {}, below the apex", record.name))
                );
            }
            match self.state {
                State::First => {
                    if !is_soa {
                        return Err(
                            self.malformed("the response does not begin with the zone's SOA")
                        );
                    }
                    let serial = serial_of(record);
                    if !is_newer(serial, self.ours) {
                        return Ok(Some(IxfrOutcome::UpToDate { serial }));
                    }
                    self.newest = Some(record.clone());
                    self.state = State::Second;
                }
                State::Second => {
                    if !is_soa {
                        return Ok(Some(IxfrOutcome::AxfrStyle));
                    }
                    if serial_of(record) != self.ours {
                        return Err(self.malformed(format!(
                            "the differences start at serial {}, but we have {}",
                            serial_of(record),
                            self.ours
                        )));
                    }
                    self.start_diff(record);
                }
                State::Deleting => match &mut self.current {
                    Some(diff) if is_soa => {
                        diff.to = record.clone();
                        self.state = State::Adding;
                    }
                    Some(diff) => diff.deleted.push(record.clone()),
                    None => return Err(self.malformed("records outside a difference sequence")),
                },
                State::Adding => {
                    if !is_soa {
                        match &mut self.current {
                            Some(diff) => diff.added.push(record.clone()),
                            None => {
                                return Err(self.malformed("records outside a difference sequence"));
                            }
                        }
                        continue;
                    }
                    let Some(diff) = self.current.take() else {
                        return Err(self.malformed("records outside a difference sequence"));
                    };
                    let reached = serial_of(&diff.to);
                    self.diffs.push(diff);
                    let newest = self
                        .newest
                        .clone()
                        .ok_or_else(|| self.malformed("no opening SOA"))?;
                    if reached == serial_of(&newest) {
                        // The closing SOA: it must be the newest SOA and the last record.
                        if record.data != newest.data || index + 1 != last {
                            return Err(
                                self.malformed("the closing SOA differs or records follow it")
                            );
                        }
                        return Ok(Some(IxfrOutcome::Incremental {
                            soa: Box::new(newest),
                            diffs: std::mem::take(&mut self.diffs),
                        }));
                    }
                    if serial_of(record) != reached {
                        return Err(self.malformed(format!(
                            "a difference starts at serial {} after one that reached {reached}",
                            serial_of(record)
                        )));
                    }
                    self.start_diff(record);
                }
            }
        }
        Ok(None)
    }

    fn start_diff(&mut self, old_soa: &Record) {
        self.current = Some(Diff {
            from: serial_of(old_soa),
            to: old_soa.clone(),
            deleted: Vec::new(),
            added: Vec::new(),
        });
        self.state = State::Deleting;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::test_records::{a, name, ns, soa};

    fn message(records: Vec<Record>) -> Message {
        crate::test_records::message(3, RecordType::IXFR, records)
    }
    fn index_of(records: &[Record]) -> crate::index::RecordIndex {
        let mut index = crate::index::RecordIndex::new(&name("example.com."), [0; 32]);
        for record in records {
            index.add(&crate::index::stored(record).unwrap()).unwrap();
        }
        index.seal();
        index
    }

    fn receive(ours: u32, records: Vec<Record>) -> Result<Option<IxfrOutcome>, XfrError> {
        IxfrReceiver::new(
            "127.0.0.1:53".parse().unwrap(),
            &name("example.com."),
            3,
            ours,
            Limits::default(),
        )
        .accept(&message(records))
    }

    #[test]
    fn single_soa_means_up_to_date() {
        assert_eq!(
            receive(5, vec![soa(5)]).unwrap(),
            Some(IxfrOutcome::UpToDate { serial: 5 })
        );
    }

    #[test]
    fn a_whole_zone_is_axfr_style() {
        assert_eq!(
            receive(5, vec![soa(6), ns(), a("www.example.com.", 1), soa(6)]).unwrap(),
            Some(IxfrOutcome::AxfrStyle)
        );
    }

    #[test]
    fn differences_apply_in_order() {
        let outcome = receive(
            5,
            vec![
                soa(7),
                soa(5),
                a("old.example.com.", 1),
                soa(6),
                a("mid.example.com.", 2),
                soa(6),
                a("mid.example.com.", 2),
                soa(7),
                a("new.example.com.", 3),
                soa(7),
            ],
        )
        .unwrap()
        .unwrap();
        let IxfrOutcome::Incremental { soa: newest, diffs } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(diffs.len(), 2);
        let index = index_of(&[ns(), a("old.example.com.", 1), a("www.example.com.", 9)]);
        let ours = crate::index::stored(&soa(5)).unwrap();
        let change = index.check(ours.clone(), &diffs, &newest).unwrap();
        assert_eq!(
            change.removed,
            [
                ours,
                crate::index::stored(&a("old.example.com.", 1)).unwrap()
            ]
        );
        assert_eq!(
            change.added,
            [
                crate::index::stored(&soa(7)).unwrap(),
                crate::index::stored(&a("new.example.com.", 3)).unwrap()
            ]
        );
    }

    #[test]
    fn a_difference_that_does_not_fit_is_refused() {
        let Some(IxfrOutcome::Incremental { soa: newest, diffs }) = receive(
            5,
            vec![soa(6), soa(5), a("ghost.example.com.", 1), soa(6), soa(6)],
        )
        .unwrap() else {
            panic!("not incremental")
        };
        let ours = crate::index::stored(&soa(5)).unwrap();
        let err = index_of(&[ns()]).check(ours, &diffs, &newest).unwrap_err();
        assert!(err.contains("which we do not have"), "{err}");
        let err = receive(4, vec![soa(6), soa(5), soa(6), soa(6)]).unwrap_err();
        assert!(
            err.to_string().contains("start at serial 5, but we have 4"),
            "{err}"
        );
    }
}
