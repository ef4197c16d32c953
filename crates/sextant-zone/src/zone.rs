//! One zone in memory and the checks it must pass before it is served.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::canonical;
use crate::master::LocatedRecord;
use crate::nodes::{Node, Nodes};
use crate::nsec3;
use crate::signed::Denial;
use crate::{Location, RRset, ZoneError, ZoneWarning};

/// The names of one zone, each with its RRsets. Immutable once built: a reload builds
/// a new `Zone` and swaps it in whole.
#[derive(Debug)]
pub struct Zone {
    /// Lower case, fully qualified.
    origin: Name,
    /// The origin in wire form, lower case.
    origin_wire: Box<[u8]>,
    /// Labels of the origin (the root has none).
    apex_labels: usize,
    soa: Record,
    /// Keyed by `canonical::key`: byte order is the canonical DNS order (RFC 4034
    /// §6.1), so a name's descendants follow it directly.
    nodes: Nodes,
    /// Whether any name has DNAME, or NS below the apex (a zone cut): only then must
    /// the walk from the apex to a query name look at the names above it.
    has_cuts: bool,
    record_count: usize,
    /// Its SOA has an RRSIG: DO=1 answers carry signatures and denial proofs.
    signed: bool,
    /// NSEC or NSEC3, and the NSEC3 chain (kept apart from the names).
    denial: Denial,
    /// NSEC3 records of another parameter set than the chain's: transferred only.
    unused_nsec3: Vec<nsec3::Entry>,
}

/// A name in uncompressed wire form, lower-cased.
pub(crate) fn wire_name(name: &Name) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    wire.push(0);
    wire
}

impl Zone {
    /// The apex, lower case.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The origin in wire form, lower case.
    pub fn origin_wire(&self) -> &[u8] {
        &self.origin_wire
    }

    pub(crate) fn apex_labels(&self) -> usize {
        self.apex_labels
    }

    /// The apex node (it always exists: it holds the SOA).
    pub(crate) fn apex(&self) -> Option<&Node> {
        let mut buffer = [0u8; canonical::MAX_KEY];
        let len = canonical::write_key_wire(&self.origin_wire, &mut buffer);
        self.nodes.get(&buffer[..len])
    }

    /// The SOA record.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        match &self.soa.data {
            RData::SOA(soa) => soa.serial,
            _ => 0,
        }
    }

    /// Records in the zone.
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// TTL of negative answers: the smaller of the SOA's TTL and its MINIMUM (RFC 2308 §5).
    pub(crate) fn negative_ttl(&self) -> u32 {
        match &self.soa.data {
            RData::SOA(soa) => self.soa.ttl.min(soa.minimum),
            _ => self.soa.ttl,
        }
    }

    /// Every record in AXFR order (RFC 5936 §2.2): the SOA, every other record in
    /// canonical name order, the SOA again.
    pub fn axfr_records(&self) -> impl Iterator<Item = Record> + '_ {
        let chain: &[nsec3::Entry] = match &self.denial {
            Denial::Nsec3(chain) => &chain.entries,
            _ => &[],
        };
        let nsec3 = chain
            .iter()
            .chain(&self.unused_nsec3)
            .map(|entry| (canonical::key_of_wire(&entry.owner), &entry.node));
        let names = self.nodes.iter().map(|(key, node)| (Box::from(key), node));
        let body = names.chain(nsec3).flat_map(|(key, node)| {
            let owner = canonical::name(&key);
            node.rrsets
                .iter()
                .filter(|set| set.rtype != RecordType::SOA)
                .flat_map(move |set| set.records(&owner).collect::<Vec<_>>())
        });
        std::iter::once(self.soa.clone())
            .chain(body)
            .chain(std::iter::once(self.soa.clone()))
    }

    /// The node at a canonical key (see [`canonical`]).
    pub(crate) fn node_at(&self, key: &[u8]) -> Option<&Node> {
        self.nodes.get(key)
    }

    /// Whether some name has DNAME, or NS below the apex.
    pub(crate) fn has_cuts(&self) -> bool {
        self.has_cuts
    }

    /// Whether the zone is signed.
    pub fn is_signed(&self) -> bool {
        self.signed
    }

    pub(crate) fn denial(&self) -> &Denial {
        &self.denial
    }

    pub(crate) fn nodes(&self) -> &Nodes {
        &self.nodes
    }

    #[cfg(test)]
    pub(crate) fn node(&self, name: &Name) -> Option<&Node> {
        let mut buffer = [0u8; canonical::MAX_KEY];
        let len = canonical::write_key(name, &mut buffer);
        self.nodes.get(&buffer[..len])
    }

    /// True when some name below the one with canonical key `key` exists: then that
    /// name exists too, as an empty non-terminal if it has no node of its own.
    pub(crate) fn has_descendants_key(&self, key: &[u8]) -> bool {
        self.nodes
            .next_key_after(key)
            .is_some_and(|next| next.starts_with(key))
    }
}

/// The type an RRSIG covers: the first two bytes of its data.
fn covered_type(data: &RData) -> Option<u16> {
    if data.record_type() != RecordType::RRSIG {
        return None;
    }
    let bytes = hickory_proto::serialize::binary::BinEncodable::to_bytes(data).ok()?;
    covered_type_wire(&bytes)
}

fn covered_type_wire(wire: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*wire.first()?, *wire.get(1)?]))
}

/// Collects records and builds a checked [`Zone`], as `named-checkzone` would judge it.
#[derive(Debug)]
pub struct ZoneBuilder {
    origin: Name,
    file: Arc<std::path::PathBuf>,
    /// A tree while records arrive in file order: a million-record zone loaded about
    /// 1.5 s faster this way than by sorting its scattered keys at the end.
    nodes: BTreeMap<Box<[u8]>, Node>,
    /// Where each SOA, CNAME, DNAME, NSEC and NSEC3 set was first written, for errors
    /// about it.
    first_seen: HashMap<(Box<[u8]>, RecordType), Location>,
    warnings: Vec<ZoneWarning>,
    record_count: usize,
}

impl ZoneBuilder {
    /// A builder for zone `origin` read from `file` (named in errors).
    pub fn new(origin: &Name, file: &Path) -> Self {
        let mut origin = origin.to_lowercase();
        origin.set_fqdn(true);
        Self {
            origin,
            file: Arc::new(file.to_path_buf()),
            nodes: BTreeMap::new(),
            first_seen: HashMap::new(),
            warnings: Vec::new(),
            record_count: 0,
        }
    }

    /// Adds a record; records outside the zone and duplicates become warnings.
    pub fn add(&mut self, located: LocatedRecord) {
        let LocatedRecord { record, location } = located;
        if !self.origin.zone_of(&record.name) {
            self.warnings.push(ZoneWarning {
                location,
                message: format!(
                    "{} is outside zone {}; the record is ignored",
                    record.name, self.origin
                ),
            });
            return;
        }
        let owner = canonical::key(&record.name);
        let rtype = record.record_type();
        // Most names hold one set: room for exactly one, so that `build` has little
        // to shrink (a million freed spare slots would be the load's largest waste).
        let node = self.nodes.entry(owner.clone()).or_insert_with(|| Node {
            rrsets: Vec::with_capacity(1),
        });
        // RRSIGs covering different types are different sets (RFC 4034 §3: each
        // carries the TTL of the RRset it covers).
        let covers = covered_type(&record.data);
        let position = node.rrsets.iter().position(|set| {
            set.rtype == rtype
                && (rtype != RecordType::RRSIG
                    || set.wire_rdatas().next().and_then(covered_type_wire) == covers)
        });
        let Some(position) = position else {
            let mut set = RRset::new(rtype, record.ttl);
            if set.push(&record.data) {
                node.rrsets.push(set);
                // Only these types' places are ever cited (the checks in `build`);
                // remembering every set's would hold a key per RRset for the load.
                if matches!(
                    rtype,
                    RecordType::SOA
                        | RecordType::CNAME
                        | RecordType::DNAME
                        | RecordType::NSEC
                        | RecordType::NSEC3
                ) {
                    self.first_seen.insert((owner, rtype), location);
                }
                self.record_count += 1;
            } else {
                self.warnings.push(ZoneWarning {
                    location,
                    message: format!(
                        "{rtype} record for {} cannot be encoded; ignored",
                        record.name
                    ),
                });
            }
            return;
        };
        let set = &mut node.rrsets[position];
        if !set.push(&record.data) {
            self.warnings.push(ZoneWarning {
                location,
                message: format!("duplicate {rtype} record for {} ignored", record.name),
            });
            return;
        }
        if record.ttl != set.ttl {
            let smallest = record.ttl.min(set.ttl);
            self.warnings.push(ZoneWarning {
                location,
                message: format!(
                    "TTL {} differs from the {rtype} RRset's TTL {} for {}; the RRset uses the smallest, {smallest} (RFC 2181 §5.2)",
                    record.ttl, set.ttl, record.name
                ),
            });
            set.ttl = smallest;
        }
        self.record_count += 1;
    }

    /// Checks the zone as a whole and returns it with the warnings found on the way.
    pub fn build(mut self) -> Result<(Zone, Vec<ZoneWarning>), ZoneError> {
        let whole_file = Location {
            file: self.file.clone(),
            line: 1,
        };
        let error = |location: &Location, message: String| ZoneError {
            location: location.clone(),
            message,
        };
        let at = |name: &Name, rtype| {
            self.first_seen
                .get(&(canonical::key(name), rtype))
                .unwrap_or(&whole_file)
        };

        for node in self.nodes.values_mut() {
            node.rrsets.shrink_to_fit();
        }
        let origin_key = canonical::key(&self.origin);
        let origin_wire = wire_name(&self.origin).into_boxed_slice();
        let mut unused_nsec3 = Vec::new();
        let locate = |key: &[u8], rtype: RecordType| {
            self.first_seen
                .get(&(Box::<[u8]>::from(key), rtype))
                .cloned()
                .unwrap_or_else(|| whole_file.clone())
        };
        let (signed, denial) = crate::signed::denial(
            &mut self.nodes,
            &origin_key,
            &origin_wire,
            &mut unused_nsec3,
            &locate,
        )?;
        let nodes = Nodes::from_sorted(std::mem::take(&mut self.nodes));
        for (key, node) in nodes.iter() {
            // Names are rebuilt only for messages: most nodes need none.
            let name = &canonical::name(key);
            if node.get(RecordType::SOA).is_some() && key != &*origin_key {
                return Err(error(
                    at(name, RecordType::SOA),
                    format!(
                        "SOA record at {name}, but the zone's apex is {}; move it to the apex (@)",
                        self.origin
                    ),
                ));
            }
            if let Some(cname) = node.get(RecordType::CNAME) {
                if cname.len() > 1 {
                    return Err(error(
                        at(name, RecordType::CNAME),
                        format!("{name} has more than one CNAME; keep one"),
                    ));
                }
                let others: Vec<String> = node
                    .rrsets
                    .iter()
                    .filter(|s| {
                        !matches!(
                            s.rtype,
                            RecordType::CNAME | RecordType::RRSIG | RecordType::NSEC
                        )
                    })
                    .map(|s| s.rtype.to_string())
                    .collect();
                if !others.is_empty() {
                    return Err(error(
                        at(name, RecordType::CNAME),
                        format!(
                            "{name} has a CNAME and other data ({}); a CNAME must be alone at its name (RFC 1034 §3.6.2): remove one",
                            others.join(", ")
                        ),
                    ));
                }
            }
            if let Some(dname) = node.get(RecordType::DNAME)
                && dname.len() > 1
            {
                return Err(error(
                    at(name, RecordType::DNAME),
                    format!("{name} has more than one DNAME; keep one"),
                ));
            }
        }
        let apex = nodes.get(&origin_key);
        let Some(soa_set) = apex.and_then(|n| n.get(RecordType::SOA)) else {
            return Err(error(
                &whole_file,
                format!(
                    "zone {} has no SOA record; add one at the apex, e.g. `@ IN SOA ns1 hostmaster 1 7200 3600 1209600 3600`",
                    self.origin
                ),
            ));
        };
        if soa_set.len() > 1 {
            return Err(error(
                at(&self.origin, RecordType::SOA),
                format!(
                    "zone {} has more than one SOA record; keep exactly one",
                    self.origin
                ),
            ));
        }
        if apex.and_then(|n| n.get(RecordType::NS)).is_none() {
            return Err(error(
                &whole_file,
                format!(
                    "zone {} has no NS records at its apex; add at least one, e.g. `@ IN NS ns1`",
                    self.origin
                ),
            ));
        }
        let soa = soa_set
            .records(&self.origin)
            .next()
            .ok_or_else(|| error(&whole_file, "empty SOA RRset".into()))?;
        let has_cuts = nodes.iter().any(|(key, node)| {
            (key != &*origin_key && node.get(RecordType::NS).is_some())
                || node.get(RecordType::DNAME).is_some()
        });
        Ok((
            Zone {
                apex_labels: sextant_wire::label_count(&origin_wire),
                origin_wire,
                origin: self.origin,
                soa,
                nodes,
                has_cuts,
                record_count: self.record_count,
                signed,
                denial,
                unused_nsec3,
            },
            self.warnings,
        ))
    }
}

impl Zone {
    /// Parses master-file text into a checked zone; `read_include` reads `$INCLUDE` files.
    pub fn from_master_text(
        origin: &Name,
        file: &Path,
        text: &str,
        read_include: crate::master::ReadInclude<'_>,
    ) -> Result<(Zone, Vec<ZoneWarning>), ZoneError> {
        Self::from_master_text_with_progress(origin, file, text, read_include, &|_| {})
    }

    /// [`Zone::from_master_text`], telling `progress` the line reached while parsing.
    pub fn from_master_text_with_progress(
        origin: &Name,
        file: &Path,
        text: &str,
        read_include: crate::master::ReadInclude<'_>,
        progress: crate::master::Progress<'_>,
    ) -> Result<(Zone, Vec<ZoneWarning>), ZoneError> {
        let mut builder = ZoneBuilder::new(origin, file);
        crate::master::parse_each(text, file, origin, read_include, progress, &mut |record| {
            builder.add(record)
        })?;
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn load(text: &str) -> Result<(Zone, Vec<ZoneWarning>), ZoneError> {
        let no_include =
            |_: &Path| -> std::io::Result<String> { Err(std::io::ErrorKind::NotFound.into()) };
        Zone::from_master_text(
            &Name::from_ascii("example.com.").unwrap(),
            Path::new("z"),
            text,
            &no_include,
        )
    }

    const HEAD: &str = "$TTL 300\n@ SOA ns hostmaster 7 2 3 4 60\n  NS ns\nns A 192.0.2.1\n";

    #[test]
    fn axfr_order_is_soa_records_soa() {
        let zone = load("$TTL 60\n@ SOA ns h 7 1 1 1 1\n@ NS ns\nns A 192.0.2.1\nb A 192.0.2.2\n")
            .unwrap()
            .0;
        let records: Vec<Record> = zone.axfr_records().collect();
        assert_eq!(records.len(), zone.record_count() + 1);
        assert_eq!(records[0].record_type(), RecordType::SOA);
        assert_eq!(records[records.len() - 1].record_type(), RecordType::SOA);
        assert!(
            records[1..records.len() - 1]
                .iter()
                .all(|r| r.record_type() != RecordType::SOA)
        );
    }

    #[test]
    fn builds_and_counts() {
        let (zone, warnings) = load(HEAD).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(zone.serial(), 7);
        assert_eq!(zone.record_count(), 3);
        assert_eq!(zone.negative_ttl(), 60);
    }

    #[test]
    fn checks_like_named_checkzone() {
        let err = load("$TTL 1\n@ NS ns\n").unwrap_err();
        assert!(err.message.contains("no SOA"), "{err}");
        let err = load("$TTL 1\n@ SOA ns h 1 2 3 4 5\n").unwrap_err();
        assert!(err.message.contains("no NS records"), "{err}");
        let err = load(&format!("{HEAD}www CNAME ns\nwww A 192.0.2.2\n")).unwrap_err();
        assert_eq!(err.location.line, 5);
        assert!(err.message.contains("CNAME and other data (A)"), "{err}");
        let err = load(&format!("{HEAD}sub SOA ns h 1 2 3 4 5\n")).unwrap_err();
        assert!(err.message.contains("move it to the apex"), "{err}");
        let err = load(&format!("{HEAD}@ SOA ns h 2 2 3 4 5\n")).unwrap_err();
        assert!(err.message.contains("more than one SOA"), "{err}");
    }

    #[test]
    fn warns_and_fixes_what_it_can() {
        let (zone, warnings) = load(&format!(
            "{HEAD}www 60 A 192.0.2.2\nwww 30 A 192.0.2.3\nwww A 192.0.2.3\nother.org. A 192.0.2.9\n"
        ))
        .unwrap();
        let messages: Vec<_> = warnings.iter().map(|w| w.message.as_str()).collect();
        assert!(
            messages[0].contains("uses the smallest, 30"),
            "{messages:?}"
        );
        assert!(messages[1].contains("duplicate A record"), "{messages:?}");
        assert!(messages[2].contains("outside zone"), "{messages:?}");
        let www = zone
            .node(&Name::from_ascii("www.example.com.").unwrap())
            .unwrap();
        assert_eq!(www.get(RecordType::A).unwrap().ttl, 30);
        assert_eq!(www.get(RecordType::A).unwrap().len(), 2);
    }

    /// Replays fuzz/corpus/zone_file, where crash reproducers are committed: an
    /// error or a zone, never a panic.
    #[test]
    fn fuzz_corpus_replays() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/zone_file");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            if let Ok(text) = std::str::from_utf8(&data) {
                let _ = load(text);
            }
            count += 1;
        }
        assert!(count > 0);
    }
}
