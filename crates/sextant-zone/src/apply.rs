//! A zone's next version from the records a transfer removed and added (IXFR,
//! RFC 1995). Only the names those records touch are built again and checked; the
//! others are shared with the version before (see `Nodes`), so a change of a
//! thousand records to a million-record zone costs a thousand names, not a million.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use hickory_proto::rr::RecordType;

use crate::nodes::Node;
use crate::signed::Denial;
use crate::zone::{Standalone, ZoneBuilder, check_apex, check_name, wire_name};
use crate::{Location, Zone, ZoneError, ZoneWarning};
use crate::{canonical, chain_check, nsec3};

/// A record of a touched name: type, TTL, data (names written out whole).
type Held = (RecordType, u32, Vec<u8>);

/// A touched name: its owner in wire form and the records it holds now.
type Touched = BTreeMap<Box<[u8]>, (Vec<u8>, Vec<Held>)>;

/// Whether a record belongs to an NSEC3 chain: the NSEC3 itself or its signature.
fn is_chain_record(rtype: RecordType, data: &[u8]) -> bool {
    rtype == RecordType::NSEC3
        || (rtype == RecordType::RRSIG
            && data.get(..2) == Some(&u16::from(RecordType::NSEC3).to_be_bytes()[..]))
}

/// Types that make an unsigned zone's change a signed one.
fn is_dnssec(rtype: RecordType) -> bool {
    matches!(
        rtype,
        RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3 | RecordType::NSEC3PARAM
    )
}

impl Zone {
    /// This version with `removed` taken out and `added` put in: standalone wire
    /// records as the transfer daemon stores them, the SOAs included (the old one
    /// removed, the new one added). Checked as a whole zone would be: a removed
    /// record the zone does not hold, or a result that breaks a rule, is an error
    /// located by the record's place in its list (`source` names the change).
    ///
    /// An unsigned zone shares every untouched name with this version. A signed
    /// zone, or a change to DNSSEC records, is built whole: its denial chain is
    /// checked from end to end.
    pub fn apply(
        &self,
        removed: &[Vec<u8>],
        added: &[Vec<u8>],
        source: &Path,
    ) -> Result<(Zone, Vec<ZoneWarning>), ZoneError> {
        let file = Arc::new(source.to_path_buf());
        let located = |line: usize, message: String| ZoneError {
            location: Location {
                file: file.clone(),
                line,
            },
            message,
        };
        let mut touched = Touched::new();
        for (index, record) in removed.iter().enumerate() {
            let record = Standalone::read(record)
                .map_err(|e| located(index + 1, format!("removed record: {e}")))?;
            let (key, held) = self.touch(&mut touched, record.owner());
            let at = held
                .iter()
                .position(|(rtype, _, data)| *rtype == record.rtype && **data == *record.data);
            let Some(at) = at else {
                return Err(located(
                    index + 1,
                    format!(
                        "the change removes a {} record of {} that the zone does not hold; the version is refused",
                        record.rtype,
                        canonical::name(&key)
                    ),
                ));
            };
            held.swap_remove(at);
        }
        for (index, record) in added.iter().enumerate() {
            let record = Standalone::read(record)
                .map_err(|e| located(removed.len() + index + 1, format!("added record: {e}")))?;
            let (_, held) = self.touch(&mut touched, record.owner());
            held.push((record.rtype, record.ttl, record.data.into_owned()));
        }
        if self.needs_rebuild(&touched) {
            self.rebuild(&touched, source)
        } else {
            self.share(touched, source)
        }
    }

    /// Whether the change must be applied by building the zone whole: an unsigned
    /// zone given DNSSEC records, a change of NSEC3 parameters or of the kind of
    /// denial, NSEC3 records of other parameters kept for transfer, or an NSEC3
    /// owner holding other data. Every other change to a signed zone shares the
    /// untouched names and NSEC3 records and checks the chain where it changed.
    fn needs_rebuild(&self, touched: &Touched) -> bool {
        let types_now = || {
            touched
                .values()
                .flat_map(|(_, held)| held.iter().map(|(rtype, _, _)| *rtype))
        };
        let types_before = || {
            touched.iter().flat_map(|(key, (owner, _))| {
                self.node_at(key)
                    .or_else(|| self.nsec3_node(owner))
                    .into_iter()
                    .flat_map(|node| node.rrsets().iter().map(|set| set.rtype))
            })
        };
        let unsigned = !self.is_signed()
            && matches!(self.denial(), Denial::None)
            && self.nsec3_entries().next().is_none();
        if unsigned {
            return types_now().chain(types_before()).any(is_dnssec);
        }
        if !self.is_signed() || !self.unused_nsec3_is_empty() {
            return true;
        }
        let touches = |wanted: RecordType| {
            types_now()
                .chain(types_before())
                .any(|rtype| rtype == wanted)
        };
        let param_changes = touched.iter().any(|(key, (_, held))| {
            let mut now: Vec<&[u8]> = held
                .iter()
                .filter(|(rtype, _, _)| *rtype == RecordType::NSEC3PARAM)
                .map(|(_, _, data)| &data[..])
                .collect();
            let mut before: Vec<&[u8]> = self
                .node_at(key)
                .and_then(|node| node.get(RecordType::NSEC3PARAM))
                .map(|set| set.wire_rdatas().collect())
                .unwrap_or_default();
            now.sort_unstable();
            before.sort_unstable();
            now != before
        });
        match self.denial() {
            Denial::None => true,
            Denial::Nsec => touches(RecordType::NSEC3) || param_changes,
            Denial::Nsec3(chain) => {
                touches(RecordType::NSEC)
                    || param_changes
                    || touched.values().any(|(_, held)| {
                        held.iter().any(|(rtype, _, data)| {
                            *rtype == RecordType::NSEC3
                                && nsec3::Params::read(data).map(|(p, _)| p).as_ref()
                                    != Some(&chain.params)
                        })
                    })
                    || touched.iter().any(|(key, (owner, held))| {
                        let hashed_now = held.iter().any(|(t, _, _)| *t == RecordType::NSEC3);
                        let hashed_before = self.nsec3_node(owner).is_some();
                        let other_data = held
                            .iter()
                            .any(|(rtype, _, data)| !is_chain_record(*rtype, data))
                            || self.node_at(key).is_some();
                        (hashed_now || hashed_before) && other_data
                    })
            }
        }
    }

    /// The entry of the name `owner` in `touched`, holding at first the records of
    /// this version there.
    fn touch<'t>(&self, touched: &'t mut Touched, owner: &[u8]) -> (Box<[u8]>, &'t mut Vec<Held>) {
        let key = canonical::key_of_wire(owner);
        let entry = touched.entry(key.clone()).or_insert_with(|| {
            let held = self
                .node_at(&key)
                .or_else(|| self.nsec3_node(owner))
                .map(|node| {
                    node.rrsets()
                        .iter()
                        .flat_map(|set| {
                            set.wire_rdatas()
                                .map(move |data| (set.rtype, set.ttl, data.to_vec()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            (owner.to_vec(), held)
        });
        (key, &mut entry.1)
    }

    /// The next version built whole: every untouched name as it is, the touched
    /// ones as they are now.
    fn rebuild(
        &self,
        touched: &Touched,
        source: &Path,
    ) -> Result<(Zone, Vec<ZoneWarning>), ZoneError> {
        let mut builder = ZoneBuilder::new(self.origin(), source);
        let mut location = Location {
            file: Arc::new(source.to_path_buf()),
            line: 0,
        };
        let nsec3 = self
            .nsec3_entries()
            .map(|entry| (canonical::key_of_wire(&entry.owner), &entry.node));
        let names = self
            .nodes()
            .iter()
            .map(|(key, node)| (Box::from(key), node));
        for (key, node) in names.chain(nsec3) {
            if touched.contains_key(&key) {
                continue;
            }
            let owner = wire_name(&canonical::name(&key));
            for set in node.rrsets() {
                for data in set.wire_rdatas() {
                    location.line += 1;
                    builder.add_wire(&owner, set.rtype, set.ttl, data, &location);
                }
            }
        }
        for (owner, held) in touched.values() {
            for (rtype, ttl, data) in held {
                location.line += 1;
                builder.add_wire(owner, *rtype, *ttl, data, &location);
            }
        }
        builder.build()
    }

    /// The next version sharing every untouched name (and NSEC3 record) with
    /// this one; a signed zone's chain is checked around each change.
    fn share(
        &self,
        mut touched: Touched,
        source: &Path,
    ) -> Result<(Zone, Vec<ZoneWarning>), ZoneError> {
        let file = Arc::new(source.to_path_buf());
        let whole_file = Location {
            file: file.clone(),
            line: 1,
        };
        // NSEC3 owners are not names of the zone: their records go to the chain.
        let hashed_keys: Vec<Box<[u8]>> = match self.denial() {
            Denial::Nsec3(_) => touched
                .iter()
                .filter(|(_, (owner, held))| {
                    self.nsec3_node(owner).is_some()
                        || held.iter().any(|(rtype, _, _)| *rtype == RecordType::NSEC3)
                })
                .map(|(key, _)| key.clone())
                .collect(),
            _ => Vec::new(),
        };
        let hashed: Touched = hashed_keys
            .into_iter()
            .filter_map(|key| touched.remove_entry(&key))
            .collect();
        // Touched names come in key order.
        let mut builder = ZoneBuilder::new(self.origin(), source).in_order();
        let mut location = Location {
            file: file.clone(),
            line: 0,
        };
        let mut old_records = 0;
        for (key, (owner, held)) in &touched {
            old_records += self
                .node_at(key)
                .map_or(0, |node| node.rrsets().iter().map(|set| set.len()).sum());
            for (rtype, ttl, data) in held {
                location.line += 1;
                builder.add_wire(owner, *rtype, *ttl, data, &location);
            }
        }
        let (names, first_seen, mut new_records) = builder.group();
        let mut warnings = builder.take_warnings();
        // Both in key order: a touched name the builder has no records for is gone.
        let mut names = names.into_iter().peekable();
        let changed: Vec<(Box<[u8]>, Option<Node>)> = touched
            .into_keys()
            .map(|key| {
                let node = names.next_if(|(k, _)| *k == key).map(|(_, node)| node);
                (key, node)
            })
            .collect();
        let at = |name: &hickory_proto::rr::Name, rtype| {
            first_seen
                .get(&(canonical::key(name), rtype))
                .unwrap_or(&whole_file)
        };
        let origin_key = canonical::key(self.origin());
        let mut has_cuts = self.has_cuts();
        for (key, node) in &changed {
            let Some(node) = node else { continue };
            check_name(self.origin(), &origin_key, key, node, &at)?;
            has_cuts |= (**key != *origin_key && node.get(RecordType::NS).is_some())
                || node.get(RecordType::DNAME).is_some();
        }
        let changed_keys: Vec<Box<[u8]>> = changed.iter().map(|(key, _)| key.clone()).collect();
        let nodes = self.nodes().with_changes(changed);
        let soa = check_apex(self.origin(), &origin_key, &nodes, &at, &whole_file)?;
        let denial = match self.denial() {
            Denial::None => Denial::None,
            Denial::Nsec => {
                chain_check::nsec_around(&nodes, &origin_key, &changed_keys, &whole_file)?;
                Denial::Nsec
            }
            Denial::Nsec3(chain) => {
                let mut entries = Vec::with_capacity(hashed.len());
                let mut builder = ZoneBuilder::new(self.origin(), source).in_order();
                for (key, (owner, held)) in &hashed {
                    old_records += self
                        .nsec3_node(owner)
                        .map_or(0, |node| node.rrsets().iter().map(|set| set.len()).sum());
                    for (rtype, ttl, data) in held {
                        location.line += 1;
                        builder.add_wire(owner, *rtype, *ttl, data, &location);
                    }
                    let hash = nsec3::owner_hash(owner, chain.params.algorithm)
                        .filter(|_| is_hashed_owner(owner, self.origin_wire()))
                        .ok_or_else(|| ZoneError {
                            location: whole_file.clone(),
                            message: format!(
                                "{} holds an NSEC3 record but is not a base32hex hash directly below the apex; sign the zone again",
                                canonical::name(key)
                            ),
                        })?;
                    entries.push((key.clone(), owner.clone(), hash));
                }
                let (grouped, _, hashed_records) = builder.group();
                new_records += hashed_records;
                warnings.extend(builder.take_warnings());
                let mut grouped = grouped.into_iter().peekable();
                let mut changes: Vec<(Box<[u8]>, Option<nsec3::Entry>)> = entries
                    .into_iter()
                    .map(|(key, owner, hash)| {
                        let node = grouped.next_if(|(k, _)| *k == key).map(|(_, node)| node);
                        let entry = node.map(|node| nsec3::Entry {
                            hash: hash.clone(),
                            owner: owner.into_boxed_slice(),
                            node,
                        });
                        (hash, entry)
                    })
                    .collect();
                changes.sort_by(|a, b| a.0.cmp(&b.0));
                let changed_hashes: Vec<Box<[u8]>> =
                    changes.iter().map(|(hash, _)| hash.clone()).collect();
                let chain = nsec3::Chain {
                    params: chain.params.clone(),
                    entries: chain.entries.with_changes(changes),
                };
                chain_check::nsec3_around(&chain, &changed_hashes, &whole_file)?;
                Denial::Nsec3(chain)
            }
        };
        let signed = nodes
            .get(&origin_key)
            .is_some_and(|apex| apex.signatures(RecordType::SOA).is_some());
        let record_count = self.record_count() - old_records + new_records;
        Ok((
            self.next_version(soa, nodes, has_cuts, record_count, signed, denial),
            warnings,
        ))
    }
}

/// Whether `owner` is one label directly below the apex `origin` (an NSEC3 owner).
fn is_hashed_owner(owner: &[u8], origin: &[u8]) -> bool {
    let owner = owner.to_ascii_lowercase();
    owner.len() > origin.len()
        && owner.ends_with(origin)
        && sextant_wire::label_count(&owner) == sextant_wire::label_count(origin) + 1
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeSet;

    use hickory_proto::rr::Record;
    use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};

    use super::*;
    use crate::zone::test_zone as load;

    fn records(zone: &Zone) -> BTreeSet<String> {
        zone.axfr_records().map(|r| r.to_string()).collect()
    }

    fn wire(zone: &Zone, text: &str) -> Vec<Vec<u8>> {
        let origin = zone.origin().to_string();
        let head = "$TTL 60\n@ SOA ns h 9 1 1 1 1\n@ NS ns\n";
        let (parsed, _) = Zone::from_master_text(
            zone.origin(),
            Path::new("t"),
            &format!("{head}{text}"),
            &|_: &Path| Err(std::io::ErrorKind::NotFound.into()),
        )
        .unwrap();
        parsed
            .axfr_records()
            .skip(1)
            .filter(|r| r.record_type() != RecordType::SOA)
            .filter(|r| !(r.record_type() == RecordType::NS && r.name.to_string() == origin))
            .map(|r| r.to_bytes().unwrap())
            .collect()
    }

    fn soa(serial: u32) -> Vec<u8> {
        let zone = load(
            "example.com.",
            &format!("@ 60 SOA ns h {serial} 1 1 1 1\n@ 60 NS ns\n"),
        );
        zone.soa().to_bytes().unwrap()
    }

    const BEFORE: &str = "$TTL 60\n@ SOA ns h 1 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n\
        a A 192.0.2.9\nb A 192.0.2.9\nb A 192.0.2.10\nc.d MX 10 ns\nw TXT \"x\"\n";

    /// Applying the difference between two texts gives the zone the second text
    /// gives, whatever the mix of names added, removed and changed.
    #[test]
    fn a_change_gives_the_zone_the_new_text_gives() {
        let before = load("example.com.", BEFORE);
        let after_text = BEFORE
            .replace(" 1 1 1 1 1", " 2 1 1 1 1")
            .replace("a A 192.0.2.9\n", "")
            .replace("b A 192.0.2.10\n", "b A 192.0.2.11\n")
            .replace("c.d MX", "e.c.d MX")
            + "new AAAA 2001:db8::1\n";
        let after = load("example.com.", &after_text);
        let differences = before.differences(&after);
        let mut removed = vec![soa(1)];
        removed.extend(differences.removed);
        let mut added = vec![soa(2)];
        added.extend(differences.added);
        let (applied, warnings) = before.apply(&removed, &added, Path::new("ixfr")).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(records(&applied), records(&after));
        assert_eq!(applied.serial(), 2);
        assert_eq!(applied.record_count(), after.record_count());
        // Lookups see the new version: the emptied non-terminal d is still there
        // (e.c.d is below it), c.d is gone, a is gone.
        let names: Vec<Box<[u8]>> = applied.nodes().iter().map(|(k, _)| Box::from(k)).collect();
        let expected: Vec<Box<[u8]>> = after.nodes().iter().map(|(k, _)| Box::from(k)).collect();
        assert_eq!(names, expected);
        // The version before is untouched.
        assert_eq!(records(&before), records(&load("example.com.", BEFORE)));
        // And a change on top of a changed version.
        let (again, _) = applied
            .apply(&[soa(2)], &[soa(3)], Path::new("ixfr"))
            .unwrap();
        assert_eq!(again.serial(), 3);
        assert_eq!(again.record_count(), after.record_count());
    }

    #[test]
    fn a_removed_record_the_zone_lacks_refuses_the_version() {
        let before = load("example.com.", BEFORE);
        let missing = wire(&before, "a A 192.0.2.99\n");
        let error = before.apply(&missing, &[], Path::new("ixfr")).unwrap_err();
        assert!(error.message.contains("does not hold"), "{error}");
        assert_eq!(error.location.line, 1);
    }

    #[test]
    fn a_change_that_breaks_a_rule_refuses_the_version() {
        let before = load("example.com.", BEFORE);
        // A CNAME beside a's A record.
        let cname = wire(&before, "a CNAME ns\n");
        let error = before.apply(&[], &cname, Path::new("ixfr")).unwrap_err();
        assert!(error.message.contains("CNAME and other data"), "{error}");
        // The apex's NS records all removed.
        let ns = load("example.com.", BEFORE)
            .axfr_records()
            .filter(|r| r.record_type() == RecordType::NS)
            .map(|r| r.to_bytes().unwrap())
            .collect::<Vec<_>>();
        let error = before.apply(&ns, &[], Path::new("ixfr")).unwrap_err();
        assert!(error.message.contains("no NS records"), "{error}");
        // Two SOAs.
        let error = before.apply(&[], &[soa(5)], Path::new("ixfr")).unwrap_err();
        assert!(error.message.contains("more than one SOA"), "{error}");
    }

    #[test]
    fn duplicates_and_ttl_differences_are_fixed_as_a_load_fixes_them() {
        let before = load("example.com.", BEFORE);
        let (applied, warnings) = before
            .apply(&[], &wire(&before, "b 30 A 192.0.2.9\n"), Path::new("ixfr"))
            .unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(applied.record_count(), before.record_count());
    }

    /// Many changes in a row, each checked against a set of the records; compacted
    /// whenever compaction is due.
    #[test]
    fn a_long_run_of_changes_stays_exact() {
        let mut text = String::from("$TTL 60\n@ SOA ns h 1 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n");
        for i in 0..200 {
            text.push_str(&format!("h{i} A 10.0.0.{}\n", i % 250));
        }
        let mut zone = load("example.com.", &text);
        let mut expected: BTreeSet<String> = records(&zone);
        for round in 0..30u32 {
            let serial = round + 1;
            let mut removed = vec![soa(serial)];
            let mut added = vec![soa(serial + 1)];
            for i in (round as usize * 7..round as usize * 7 + 7).map(|i| i % 200) {
                let current: Vec<Record> = zone
                    .axfr_records()
                    .filter(|r| r.name.to_string() == format!("h{i}.example.com."))
                    .collect();
                for record in current {
                    removed.push(record.to_bytes().unwrap());
                }
                added.extend(wire(&zone, &format!("h{i} A 10.1.{round}.{}\n", i % 250)));
                added.extend(wire(&zone, &format!("x{round}-{i} TXT \"{round}\"\n")));
            }
            let (next, _) = zone.apply(&removed, &added, Path::new("ixfr")).unwrap();
            for r in &removed {
                expected.remove(&Record::from_bytes(r).unwrap().to_string());
            }
            for a in &added {
                expected.insert(Record::from_bytes(a).unwrap().to_string());
            }
            // The SOA is listed twice in AXFR order: once in the set.
            assert_eq!(records(&next), expected, "round {round}");
            assert_eq!(next.record_count(), expected.len());
            // Compacted when due, as the authority does after serving a step.
            zone = if next.compaction_due() {
                let compacted = next.compacted();
                assert_eq!(records(&compacted), expected, "round {round}, compacted");
                assert!(!compacted.compaction_due());
                compacted
            } else {
                next
            };
        }
    }

    #[test]
    fn a_signed_zone_shares_its_names_and_chain_and_keeps_its_chain_checked() {
        let text = include_str!("../../sextant-resolver/src/dnssec/testdata/nsec3.db");
        let zone = load("example.test.", text);
        let soa_wire = zone.soa().to_bytes().unwrap();
        let mut soa_next = zone.soa().clone();
        if let hickory_proto::rr::RData::SOA(soa) = &mut soa_next.data {
            soa.serial += 1;
        }
        let (next, _) = zone
            .apply(
                &[soa_wire],
                &[soa_next.to_bytes().unwrap()],
                Path::new("ixfr"),
            )
            .unwrap();
        assert!(next.is_signed());
        assert_eq!(next.record_count(), zone.record_count());
        assert_eq!(records(&next).len(), records(&zone).len());
        assert!(zone.nodes().shares_base_with(next.nodes()));
        let (Denial::Nsec3(before), Denial::Nsec3(after)) = (zone.denial(), next.denial()) else {
            panic!("the NSEC3 chain is lost");
        };
        assert!(before.entries.shares_base_with(&after.entries));
        // Removing an NSEC3 record breaks the chain: refused.
        let nsec3: Vec<u8> = zone
            .axfr_records()
            .find(|r| r.record_type() == RecordType::NSEC3)
            .unwrap()
            .to_bytes()
            .unwrap();
        let error = zone.apply(&[nsec3], &[], Path::new("ixfr")).unwrap_err();
        assert!(error.message.contains("NSEC3 chain is broken"), "{error}");
    }

    #[test]
    fn a_broken_nsec_link_in_a_change_is_refused() {
        let text = "$ORIGIN example.\n$TTL 300\n@ SOA ns h 1 2 3 4 300\n@ RRSIG SOA 13 1 300 20300101000000 20200101000000 1 example. AAAA\n\
            @ NS ns\n@ NSEC a A NS SOA RRSIG NSEC\na A 192.0.2.1\na NSEC ns A RRSIG NSEC\nns A 192.0.2.2\nns NSEC example. A RRSIG NSEC\n";
        let zone = load("example.", text);
        // A name added without the links around it changing.
        let added = wire_in(&zone, "b A 192.0.2.3\nb NSEC ns A RRSIG NSEC\n");
        let error = zone.apply(&[], &added, Path::new("ixfr")).unwrap_err();
        assert!(
            error.message.contains("NSEC chain is broken at a.example."),
            "{error}"
        );
        // With a's link moved to it, the change is accepted and shares the names.
        let old_link = wire_in(&zone, "a NSEC ns A RRSIG NSEC\n");
        let mut added = added;
        added.extend(wire_in(&zone, "a NSEC b A RRSIG NSEC\n"));
        let (next, _) = zone.apply(&old_link, &added, Path::new("ixfr")).unwrap();
        assert!(next.is_signed());
        assert!(zone.nodes().shares_base_with(next.nodes()));
        assert_eq!(next.record_count(), zone.record_count() + 2);
    }

    /// `text`'s records in wire form.
    fn wire_in(zone: &Zone, text: &str) -> Vec<Vec<u8>> {
        let no_include =
            |_: &Path| -> std::io::Result<String> { Err(std::io::ErrorKind::NotFound.into()) };
        crate::parse(
            &format!("$TTL 300\n{text}"),
            Path::new("t"),
            zone.origin(),
            &no_include,
        )
        .unwrap()
        .into_iter()
        .map(|located| located.record.to_bytes().unwrap())
        .collect()
    }
}
