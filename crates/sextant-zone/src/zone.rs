//! One zone in memory and the checks it must pass before it is served.

use std::collections::HashMap;
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
        let nsec3 = self
            .nsec3_entries()
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

    /// Every NSEC3 record set: the chain's and those of other parameters.
    pub(crate) fn nsec3_entries(&self) -> impl Iterator<Item = &nsec3::Entry> {
        let chain = match &self.denial {
            Denial::Nsec3(chain) => Some(chain),
            _ => None,
        };
        chain
            .into_iter()
            .flat_map(|chain| chain.entries.iter().map(|(_, entry)| entry))
            .chain(&self.unused_nsec3)
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

    /// Whether this version, made by changes to an earlier one, has changed enough
    /// names to be worth [`Zone::compacted`] (an eighth of them, or 4096).
    pub fn compaction_due(&self) -> bool {
        self.nodes.compaction_due()
            || matches!(&self.denial, Denial::Nsec3(chain) if chain.entries.compaction_due())
    }

    /// The same zone with names of its own, sharing nothing with the versions it
    /// was made from: lookups and walks no longer look at the changes. Worth it
    /// once [`Zone::compaction_due`]; off the path to serving (it copies every name).
    pub fn compacted(&self) -> Zone {
        Zone {
            origin: self.origin.clone(),
            origin_wire: self.origin_wire.clone(),
            apex_labels: self.apex_labels,
            soa: self.soa.clone(),
            nodes: self.nodes.compacted(),
            has_cuts: self.has_cuts,
            record_count: self.record_count,
            signed: self.signed,
            denial: match &self.denial {
                Denial::Nsec3(chain) => Denial::Nsec3(chain.compacted()),
                other => other.clone(),
            },
            unused_nsec3: self.unused_nsec3.clone(),
        }
    }

    /// A later version of this zone with `nodes` and `denial` (see `apply`).
    pub(crate) fn next_version(
        &self,
        soa: Record,
        nodes: Nodes,
        has_cuts: bool,
        record_count: usize,
        signed: bool,
        denial: Denial,
    ) -> Zone {
        Zone {
            origin: self.origin.clone(),
            origin_wire: self.origin_wire.clone(),
            apex_labels: self.apex_labels,
            soa,
            nodes,
            has_cuts,
            record_count,
            signed,
            denial,
            unused_nsec3: Vec::new(),
        }
    }

    /// Whether NSEC3 records of other parameters than the chain's are held.
    pub(crate) fn unused_nsec3_is_empty(&self) -> bool {
        self.unused_nsec3.is_empty()
    }

    /// The node of the chain's NSEC3 record owned by `owner` (wire form), if any.
    pub(crate) fn nsec3_node(&self, owner: &[u8]) -> Option<&Node> {
        let Denial::Nsec3(chain) = &self.denial else {
            return None;
        };
        let hash = nsec3::owner_hash(owner, chain.params.algorithm)?;
        let entry = chain.entries.get(&hash)?;
        entry
            .owner
            .eq_ignore_ascii_case(owner)
            .then_some(&entry.node)
    }

    /// True when some name below the one with canonical key `key` exists: then that
    /// name exists too, as an empty non-terminal if it has no node of its own.
    pub(crate) fn has_descendants_key(&self, key: &[u8]) -> bool {
        self.nodes
            .next_key_after(key)
            .is_some_and(|next| next.starts_with(key))
    }
}

fn covered_type_wire(wire: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*wire.first()?, *wire.get(1)?]))
}

/// A zone of `text` for `origin`, which must load (tests of the modules built on
/// zones).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn test_zone(origin: &str, text: &str) -> Zone {
    let none = |_: &Path| -> std::io::Result<String> { Err(std::io::ErrorKind::NotFound.into()) };
    Zone::from_master_text(
        &Name::from_ascii(origin).unwrap(),
        Path::new("z"),
        text,
        &none,
    )
    .unwrap()
    .0
}

/// The eight key bytes after the origin's (`skip` bytes) as a number in the same
/// order. A key never holds two 0 bytes in a row (labels are not empty), so the
/// zero padding of a short key sorts it before any longer one it begins.
fn key_prefix(key: &[u8], skip: usize) -> u64 {
    let rest = key.get(skip..).unwrap_or_default();
    let mut bytes = [0u8; 8];
    let len = rest.len().min(8);
    bytes[..len].copy_from_slice(&rest[..len]);
    u64::from_be_bytes(bytes)
}

/// A record standing alone in wire form (see [`ZoneBuilder::add_record`]), read.
pub(crate) struct Standalone<'a> {
    owner: [u8; sextant_wire::MAX_NAME_LEN],
    owner_len: usize,
    pub(crate) rtype: RecordType,
    pub(crate) ttl: u32,
    /// Names in NS, CNAME, PTR, MX and SOA data written out whole.
    pub(crate) data: std::borrow::Cow<'a, [u8]>,
}

impl<'a> Standalone<'a> {
    pub(crate) fn read(record: &'a [u8]) -> Result<Self, String> {
        let mut owner = [0u8; sextant_wire::MAX_NAME_LEN];
        let (owner_len, at) = sextant_wire::read_name(record, 0, &mut owner)
            .ok_or("the owner name does not decode")?;
        let fixed = record.get(at..at + 10).ok_or("the record ends early")?;
        let rtype = RecordType::from(u16::from_be_bytes([fixed[0], fixed[1]]));
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let start = at + 10;
        let end = start + usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        if end != record.len() {
            return Err("its data length does not match its size".into());
        }
        let names_at = match rtype {
            RecordType::NS | RecordType::CNAME | RecordType::PTR => Some((0, 1)),
            RecordType::MX => Some((2, 1)),
            RecordType::SOA => Some((0, 2)),
            _ => None,
        };
        let data = match names_at {
            None => std::borrow::Cow::Borrowed(&record[start..end]),
            Some((prefix, names)) => {
                let mut expanded = Vec::new();
                let fixed = record
                    .get(start..start + prefix)
                    .ok_or("the data ends early")?;
                expanded.extend_from_slice(fixed);
                let mut at = start + prefix;
                let mut name = [0u8; sextant_wire::MAX_NAME_LEN];
                for _ in 0..names {
                    let (len, next) = sextant_wire::read_name(record, at, &mut name)
                        .filter(|(_, next)| *next <= end)
                        .ok_or("a name in the data does not decode")?;
                    expanded.extend_from_slice(&name[..len]);
                    at = next;
                }
                // The SOA's five numbers follow its names.
                let rest = if rtype == RecordType::SOA { 20 } else { 0 };
                if end - at != rest {
                    return Err("the data has the wrong length for its type".into());
                }
                expanded.extend_from_slice(&record[at..end]);
                std::borrow::Cow::Owned(expanded)
            }
        };
        Ok(Self {
            owner,
            owner_len,
            rtype,
            ttl,
            data,
        })
    }

    /// The owner, uncompressed wire form.
    pub(crate) fn owner(&self) -> &[u8] {
        &self.owner[..self.owner_len]
    }
}

/// Collects records and builds a checked [`Zone`], as `named-checkzone` would judge it.
///
/// Records are appended as they arrive to two byte arenas (keys and data) and a
/// list of fixed-size entries, then sorted once and grouped into names: no map is
/// kept while loading. A map costs a cache miss and an allocation or three per
/// record; a million-record zone spent most of its load there.
#[derive(Debug)]
pub struct ZoneBuilder {
    origin: Name,
    origin_key: Box<[u8]>,
    file: Arc<std::path::PathBuf>,
    /// Canonical keys of the owners, one after the other (a record with the same
    /// owner as the one before it shares its key).
    keys: Vec<u8>,
    /// Record data, one after the other.
    data: Vec<u8>,
    pending: Vec<Pending>,
    /// The files records came from (the zone's and its `$INCLUDE`s).
    files: Vec<Arc<std::path::PathBuf>>,
    /// Each warning with the number of the record it is about: reported in the
    /// order the records were written.
    warnings: Vec<(usize, ZoneWarning)>,
    /// Records expected in canonical order (see [`ZoneBuilder::in_order`]).
    in_order: bool,
    ordered: Ordered,
}

/// Names built as their records arrive, while the records come in canonical
/// order: no arena, no entry per record, no sort. A transfer sends a zone so,
/// and a million-record zone built this way needs about 60 MB less at its peak.
#[derive(Debug, Default)]
struct Ordered {
    names: Vec<(Box<[u8]>, Node)>,
    /// The name being read: its key, its records, their data.
    key: Vec<u8>,
    run: Vec<RunRecord>,
    data: Vec<u8>,
    first_seen: HashMap<(Box<[u8]>, RecordType), Location>,
    count: usize,
}

/// A record of the name being read in order.
#[derive(Debug)]
struct RunRecord {
    rtype: u16,
    ttl: u32,
    data_at: usize,
    data_len: u16,
    file: u16,
    line: u32,
}

/// A record as a name's RRsets are grouped from it.
struct Grouped<'r> {
    rtype: RecordType,
    ttl: u32,
    rdata: &'r [u8],
    /// Where it is reported among the warnings.
    order: usize,
    file: u16,
    line: u32,
}

/// A record waiting for `build`.
#[derive(Debug)]
struct Pending {
    /// The eight key bytes after the origin's, for sorting without reading the
    /// arena (see `group`).
    prefix: u64,
    key_at: usize,
    /// Grows with every record added: the order records were written in.
    data_at: usize,
    key_len: u16,
    data_len: u16,
    rtype: u16,
    file: u16,
    ttl: u32,
    line: u32,
}

impl ZoneBuilder {
    /// A builder for zone `origin` read from `file` (named in errors).
    pub fn new(origin: &Name, file: &Path) -> Self {
        let mut origin = origin.to_lowercase();
        origin.set_fqdn(true);
        let file = Arc::new(file.to_path_buf());
        Self {
            origin_key: canonical::key(&origin),
            origin,
            files: vec![file.clone()],
            file,
            keys: Vec::new(),
            data: Vec::new(),
            pending: Vec::new(),
            warnings: Vec::new(),
            in_order: false,
            ordered: Ordered::default(),
        }
    }

    /// Tells the builder that records will come in canonical order, each name's
    /// records together, as a transfer sends them: names are then built as they
    /// arrive. A record out of that order is taken as any other (the names built
    /// so far are merged with the rest at `build`). Warnings are ordered by their
    /// record's line.
    pub fn in_order(mut self) -> Self {
        self.in_order = true;
        self
    }

    /// Room for the records of `text`, a master file: one entry per line at most,
    /// and no more key or data bytes than text (an estimate too low would double
    /// the lists once they are large; room never written costs no memory).
    fn reserve_for(&mut self, text: &str) {
        let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
        self.pending.reserve(lines);
        self.keys.reserve(text.len());
        self.data.reserve(text.len() / 2);
    }

    /// Adds a record; records outside the zone and duplicates become warnings.
    pub fn add(&mut self, located: LocatedRecord) {
        let LocatedRecord { record, location } = located;
        let Some(rdata) = crate::rrset::encode(&record.data) else {
            self.warn(
                self.data.len(),
                location,
                format!(
                    "{} record for {} cannot be encoded; ignored",
                    record.record_type(),
                    record.name
                ),
            );
            return;
        };
        self.add_wire(
            &wire_name(&record.name),
            record.record_type(),
            record.ttl,
            &rdata,
            &location,
        );
    }

    /// Room for about `records` more records.
    pub fn reserve(&mut self, records: usize) {
        self.pending.reserve(records);
    }

    /// Adds one record in wire form, standing alone as the transfer daemon stores
    /// it: owner, type, class, TTL, length, data. Names in NS, CNAME, PTR, MX and
    /// SOA data may point back into the record (hickory-proto compresses them even
    /// there); they are written out whole. Other data is kept as it is.
    pub fn add_record(&mut self, record: &[u8], location: &Location) -> Result<(), String> {
        let record = Standalone::read(record)?;
        self.add_wire(
            record.owner(),
            record.rtype,
            record.ttl,
            &record.data,
            location,
        );
        Ok(())
    }

    /// [`ZoneBuilder::add`] of a record whose owner (an uncompressed wire name) and
    /// data are already in wire form: what the master-file reader makes.
    pub(crate) fn add_wire(
        &mut self,
        owner: &[u8],
        rtype: RecordType,
        ttl: u32,
        rdata: &[u8],
        location: &Location,
    ) {
        let mut buffer = [0u8; canonical::MAX_KEY];
        let len = canonical::write_key_wire(owner, &mut buffer);
        let key = &buffer[..len];
        // Keys run from the root down, label by label: a name is in the zone
        // exactly when the origin's key begins its own.
        if !key.starts_with(&self.origin_key) {
            let message = format!(
                "{} is outside zone {}; the record is ignored",
                canonical::name(key),
                self.origin
            );
            self.warn(self.order_of(location), location.clone(), message);
            return;
        }
        let Ok(data_len) = u16::try_from(rdata.len()) else {
            let message = format!(
                "{rtype} record for {} cannot be encoded; ignored",
                canonical::name(key)
            );
            self.warn(self.order_of(location), location.clone(), message);
            return;
        };
        let file = match self
            .files
            .iter()
            .rposition(|f| Arc::ptr_eq(f, &location.file))
        {
            Some(at) => at,
            None => {
                self.files.push(location.file.clone());
                self.files.len() - 1
            }
        };
        if self.in_order {
            let ordered = &mut self.ordered;
            let line = u32::try_from(location.line).unwrap_or(u32::MAX);
            let mut record = RunRecord {
                rtype: u16::from(rtype),
                ttl,
                data_at: 0,
                data_len,
                file: u16::try_from(file).unwrap_or(u16::MAX),
                line,
            };
            // A name's records together, names in increasing order (the root's
            // apex has the empty key: compared as any other).
            let reading = !ordered.run.is_empty();
            let same_name = reading && key == ordered.key.as_slice();
            let next_name = if reading {
                key > ordered.key.as_slice()
            } else {
                ordered.names.last().is_none_or(|(last, _)| key > &**last)
            };
            if same_name || next_name {
                if next_name {
                    self.flush_run();
                    self.ordered.key.extend_from_slice(key);
                }
                record.data_at = self.ordered.data.len();
                self.ordered.data.extend_from_slice(rdata);
                self.ordered.run.push(record);
                return;
            }
        }
        let key_at = match self.pending.last() {
            Some(last) if self.keys[last.key_at..][..usize::from(last.key_len)] == *key => {
                last.key_at
            }
            _ => {
                self.keys.extend_from_slice(key);
                self.keys.len() - len
            }
        };
        self.data.extend_from_slice(rdata);
        self.pending.push(Pending {
            prefix: key_prefix(key, self.origin_key.len()),
            key_at,
            data_at: self.data.len() - rdata.len(),
            // Keys are at most `MAX_KEY` bytes.
            key_len: len as u16,
            data_len,
            rtype: u16::from(rtype),
            // Past 65535 included files, errors name the zone's own file.
            file: u16::try_from(file).unwrap_or(u16::MAX),
            ttl,
            line: u32::try_from(location.line).unwrap_or(u32::MAX),
        });
    }

    /// Where a warning about the record at `location`, arriving now, is reported.
    fn order_of(&self, location: &Location) -> usize {
        if self.in_order {
            location.line
        } else {
            self.data.len()
        }
    }

    /// Builds the name read in order so far.
    fn flush_run(&mut self) {
        let ordered = &mut self.ordered;
        if ordered.run.is_empty() {
            ordered.key.clear();
            return;
        }
        let (files, zone_file) = (&self.files, &self.file);
        let data = &ordered.data;
        let records = ordered.run.iter().map(|record| Grouped {
            rtype: RecordType::from(record.rtype),
            ttl: record.ttl,
            rdata: &data[record.data_at..][..usize::from(record.data_len)],
            order: record.line as usize,
            file: record.file,
            line: record.line,
        });
        let key: Box<[u8]> = Box::from(ordered.key.as_slice());
        let mut node = Node {
            rrsets: Vec::with_capacity(1),
        };
        ordered.count += group_name(
            &key,
            &mut node,
            records,
            &|file, line| locate(files, zone_file, file, line),
            &mut ordered.first_seen,
            &mut self.warnings,
        );
        node.rrsets.shrink_to_fit();
        ordered.names.push((key, node));
        ordered.run.clear();
        ordered.data.clear();
        ordered.key.clear();
    }

    fn warn(&mut self, order: usize, location: Location, message: String) {
        self.warnings
            .push((order, ZoneWarning { location, message }));
    }

    /// The records grouped into names in canonical order, with the places of the
    /// RRsets errors cite; duplicates and TTL differences become warnings.
    #[allow(clippy::type_complexity)]
    pub(crate) fn group(
        &mut self,
    ) -> (
        Vec<(Box<[u8]>, Node)>,
        HashMap<(Box<[u8]>, RecordType), Location>,
        usize,
    ) {
        self.flush_run();
        // Sorted in place by key, the prefix first (held inline: most comparisons
        // read no arena), the order written last: a name's records stay in it.
        let keys = &self.keys;
        let key_of = |record: &Pending| &keys[record.key_at..][..usize::from(record.key_len)];
        self.pending.sort_unstable_by(|a, b| {
            a.prefix
                .cmp(&b.prefix)
                .then_with(|| key_of(a).cmp(key_of(b)))
                .then(a.data_at.cmp(&b.data_at))
        });
        let ordered = std::mem::take(&mut self.ordered);
        let mut first_seen = ordered.first_seen;
        let mut count = ordered.count;
        let mut built = ordered.names.into_iter().peekable();
        let pending = &self.pending;
        let (files, zone_file) = (&self.files, &self.file);
        let distinct = 1 + pending
            .windows(2)
            .filter(|pair| key_of(&pair[0]) != key_of(&pair[1]))
            .count();
        let mut names: Vec<(Box<[u8]>, Node)> = if pending.is_empty() {
            Vec::new()
        } else {
            Vec::with_capacity(distinct + built.len())
        };
        let mut warnings = Vec::new();
        let by_line = self.in_order;
        let mut run_start = 0;
        while run_start < pending.len() {
            let key = key_of(&pending[run_start]);
            let run_end = pending[run_start..]
                .iter()
                .position(|record| key_of(record) != key)
                .map_or(pending.len(), |len| run_start + len);
            // Names read in order before this one's come first; one read in
            // order under the same key takes these records too.
            while let Some(name) = built.next_if(|(k, _)| **k < *key) {
                names.push(name);
            }
            let mut node = built.next_if(|(k, _)| **k == *key).map_or_else(
                || Node {
                    rrsets: Vec::with_capacity(1),
                },
                |(_, node)| node,
            );
            let data = &self.data;
            let records = pending[run_start..run_end].iter().map(|record| Grouped {
                rtype: RecordType::from(record.rtype),
                ttl: record.ttl,
                rdata: &data[record.data_at..][..usize::from(record.data_len)],
                order: if by_line {
                    record.line as usize
                } else {
                    record.data_at
                },
                file: record.file,
                line: record.line,
            });
            count += group_name(
                key,
                &mut node,
                records,
                &|file, line| locate(files, zone_file, file, line),
                &mut first_seen,
                &mut warnings,
            );
            node.rrsets.shrink_to_fit();
            names.push((Box::from(key), node));
            run_start = run_end;
        }
        if names.is_empty() {
            names = built.collect();
        } else {
            names.extend(built);
        }
        self.warnings.extend(warnings);
        // The arenas are done with: freed before the zone's checks run.
        self.keys = Vec::new();
        self.data = Vec::new();
        self.pending = Vec::new();
        (names, first_seen, count)
    }

    /// The warnings so far, in the order the records were written.
    pub(crate) fn take_warnings(&mut self) -> Vec<ZoneWarning> {
        let mut warnings = std::mem::take(&mut self.warnings);
        warnings.sort_by_key(|(order, _)| *order);
        warnings.into_iter().map(|(_, warning)| warning).collect()
    }

    /// Checks the zone as a whole and returns it with the warnings found on the way.
    pub fn build(mut self) -> Result<(Zone, Vec<ZoneWarning>), ZoneError> {
        let (names, first_seen, record_count) = self.group();
        let zone = finish(&self.origin, &self.file, names, &first_seen, record_count)?;
        let mut warnings = self.warnings;
        warnings.sort_by_key(|(order, _)| *order);
        Ok((
            zone,
            warnings.into_iter().map(|(_, warning)| warning).collect(),
        ))
    }
}

/// The place of a record, from its file's index and its line.
fn locate(
    files: &[Arc<std::path::PathBuf>],
    zone_file: &Arc<std::path::PathBuf>,
    file: u16,
    line: u32,
) -> Location {
    Location {
        file: files.get(usize::from(file)).unwrap_or(zone_file).clone(),
        line: line as usize,
    }
}

/// Adds one name's records to its `node`, grouped into RRsets; duplicates and
/// TTL differences become warnings. Returns the records added.
fn group_name<'r>(
    key: &[u8],
    node: &mut Node,
    records: impl Iterator<Item = Grouped<'r>>,
    locate: &dyn Fn(u16, u32) -> Location,
    first_seen: &mut HashMap<(Box<[u8]>, RecordType), Location>,
    warnings: &mut Vec<(usize, ZoneWarning)>,
) -> usize {
    let mut count = 0;
    for record in records {
        let Grouped {
            rtype,
            ttl,
            rdata,
            order,
            file,
            line,
        } = record;
        // RRSIGs covering different types are different sets (RFC 4034 §3: each
        // carries the TTL of the RRset it covers).
        let covers = (rtype == RecordType::RRSIG)
            .then(|| covered_type_wire(rdata))
            .flatten();
        let position = node.rrsets.iter().position(|set| {
            set.rtype == rtype
                && (rtype != RecordType::RRSIG
                    || set.wire_rdatas().next().and_then(covered_type_wire) == covers)
        });
        let Some(position) = position else {
            let mut set = RRset::new(rtype, ttl);
            set.push_wire(rdata);
            node.rrsets.push(set);
            // Only these types' places are ever cited (the checks in `build`).
            if matches!(
                rtype,
                RecordType::SOA
                    | RecordType::CNAME
                    | RecordType::DNAME
                    | RecordType::NSEC
                    | RecordType::NSEC3
            ) {
                first_seen.insert((Box::from(key), rtype), locate(file, line));
            }
            count += 1;
            continue;
        };
        let set = &mut node.rrsets[position];
        if !set.push_wire(rdata) {
            warnings.push((
                order,
                ZoneWarning {
                    location: locate(file, line),
                    message: format!(
                        "duplicate {rtype} record for {} ignored",
                        canonical::name(key)
                    ),
                },
            ));
            continue;
        }
        if ttl != set.ttl {
            let smallest = ttl.min(set.ttl);
            warnings.push((
                order,
                ZoneWarning {
                    location: locate(file, line),
                    message: format!(
                        "TTL {ttl} differs from the {rtype} RRset's TTL {} for {}; the RRset uses the smallest, {smallest} (RFC 2181 §5.2)",
                        set.ttl,
                        canonical::name(key)
                    ),
                },
            ));
            set.ttl = smallest;
        }
        count += 1;
    }
    count
}

/// The zone of `names` (sorted by key, every one in the zone), checked as a whole;
/// `first_seen` places the RRsets errors cite.
pub(crate) fn finish(
    origin: &Name,
    file: &Arc<std::path::PathBuf>,
    mut names: Vec<(Box<[u8]>, Node)>,
    first_seen: &HashMap<(Box<[u8]>, RecordType), Location>,
    record_count: usize,
) -> Result<Zone, ZoneError> {
    let whole_file = Location {
        file: file.clone(),
        line: 1,
    };
    let at = |name: &Name, rtype| {
        first_seen
            .get(&(canonical::key(name), rtype))
            .unwrap_or(&whole_file)
    };

    let origin_key = canonical::key(origin);
    let origin_wire = wire_name(origin).into_boxed_slice();
    let mut unused_nsec3 = Vec::new();
    let locate = |key: &[u8], rtype: RecordType| {
        first_seen
            .get(&(Box::<[u8]>::from(key), rtype))
            .cloned()
            .unwrap_or_else(|| whole_file.clone())
    };
    let (signed, denial) = crate::signed::denial(
        &mut names,
        &origin_key,
        &origin_wire,
        &mut unused_nsec3,
        &locate,
    )?;
    let nodes = Nodes::from_sorted(names);
    for (key, node) in nodes.iter() {
        check_name(origin, &origin_key, key, node, &at)?;
    }
    let soa = check_apex(origin, &origin_key, &nodes, &at, &whole_file)?;
    let has_cuts = nodes.iter().any(|(key, node)| {
        (key != &*origin_key && node.get(RecordType::NS).is_some())
            || node.get(RecordType::DNAME).is_some()
    });
    Ok(Zone {
        apex_labels: sextant_wire::label_count(&origin_wire),
        origin_wire,
        origin: origin.clone(),
        soa,
        nodes,
        has_cuts,
        record_count,
        signed,
        denial,
        unused_nsec3,
    })
}

/// Where an RRset of a name was first written (for errors).
pub(crate) type Placed<'a> = dyn Fn(&Name, RecordType) -> &'a Location + 'a;

/// The checks each name must pass on its own: SOA only at the apex, a CNAME alone
/// and single, one DNAME at most.
pub(crate) fn check_name<'a>(
    origin: &Name,
    origin_key: &[u8],
    key: &[u8],
    node: &Node,
    at: &Placed<'a>,
) -> Result<(), ZoneError> {
    let error = |location: &Location, message: String| ZoneError {
        location: location.clone(),
        message,
    };
    // Names are rebuilt only for messages: most nodes need none.
    let name = || canonical::name(key);
    if node.get(RecordType::SOA).is_some() && key != origin_key {
        return Err(error(
            at(&name(), RecordType::SOA),
            format!(
                "SOA record at {}, but the zone's apex is {}; move it to the apex (@)",
                name(),
                origin
            ),
        ));
    }
    if let Some(cname) = node.get(RecordType::CNAME) {
        if cname.len() > 1 {
            return Err(error(
                at(&name(), RecordType::CNAME),
                format!("{} has more than one CNAME; keep one", name()),
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
                at(&name(), RecordType::CNAME),
                format!(
                    "{} has a CNAME and other data ({}); a CNAME must be alone at its name (RFC 1034 §3.6.2): remove one",
                    name(),
                    others.join(", ")
                ),
            ));
        }
    }
    if let Some(dname) = node.get(RecordType::DNAME)
        && dname.len() > 1
    {
        return Err(error(
            at(&name(), RecordType::DNAME),
            format!("{} has more than one DNAME; keep one", name()),
        ));
    }
    Ok(())
}

/// The apex holds exactly one SOA (returned) and some NS records.
pub(crate) fn check_apex<'a>(
    origin: &Name,
    origin_key: &[u8],
    nodes: &Nodes,
    at: &Placed<'a>,
    whole_file: &Location,
) -> Result<Record, ZoneError> {
    let error = |location: &Location, message: String| ZoneError {
        location: location.clone(),
        message,
    };
    let apex = nodes.get(origin_key);
    let Some(soa_set) = apex.and_then(|n| n.get(RecordType::SOA)) else {
        return Err(error(
            whole_file,
            format!(
                "zone {} has no SOA record; add one at the apex, e.g. `@ IN SOA ns1 hostmaster 1 7200 3600 1209600 3600`",
                origin
            ),
        ));
    };
    if soa_set.len() > 1 {
        return Err(error(
            at(origin, RecordType::SOA),
            format!(
                "zone {} has more than one SOA record; keep exactly one",
                origin
            ),
        ));
    }
    if apex.and_then(|n| n.get(RecordType::NS)).is_none() {
        return Err(error(
            whole_file,
            format!(
                "zone {} has no NS records at its apex; add at least one, e.g. `@ IN NS ns1`",
                origin
            ),
        ));
    }
    soa_set
        .records(origin)
        .next()
        .ok_or_else(|| error(whole_file, "empty SOA RRset".into()))
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
        builder.reserve_for(text);
        crate::master::parse_wire(text, file, origin, read_include, progress, &mut |record| {
            builder.add_wire(
                record.owner,
                record.rtype,
                record.ttl,
                record.rdata,
                record.location,
            )
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

    /// Records given in canonical order build names as they come; the zone, its
    /// count and its warnings are what the general path makes of the same records,
    /// also when some come out of order (a name's records apart, a name before the
    /// last), which are merged in.
    #[test]
    fn records_in_order_build_the_zone_any_order_builds() {
        use hickory_proto::serialize::binary::BinEncodable;
        let text = format!(
            "{HEAD}www A 192.0.2.80\n  AAAA 2001:db8::80\nftp CNAME www\n@ MX 10 www\nsub NS ns.sub\n\
             ns.sub A 192.0.2.9\nb.a 30 TXT \"x\"\nb.a 60 TXT \"y\"\nz A 192.0.2.1\n"
        );
        let (zone, _) = load(&text).unwrap();
        let canonical: Vec<Vec<u8>> = zone
            .axfr_records()
            .take(zone.record_count())
            .map(|r| r.to_bytes().unwrap())
            .collect();
        let origin = Name::from_ascii("example.com.").unwrap();
        let build = |records: &[Vec<u8>], in_order: bool| {
            let mut builder = ZoneBuilder::new(&origin, Path::new("t"));
            if in_order {
                builder = builder.in_order();
            }
            for (line, record) in records.iter().enumerate() {
                let location = Location {
                    file: Arc::new("t".into()),
                    line: line + 1,
                };
                builder.add_record(record, &location).unwrap();
            }
            builder.build().unwrap()
        };
        let text_of =
            |zone: &Zone| -> Vec<String> { zone.axfr_records().map(|r| r.to_string()).collect() };
        let same = |records: &[Vec<u8>], warned: usize| {
            let (ordered, ordered_warnings) = build(records, true);
            let (general, general_warnings) = build(records, false);
            assert_eq!(text_of(&ordered), text_of(&general));
            assert_eq!(ordered.record_count(), general.record_count());
            assert_eq!(ordered.record_count(), zone.record_count());
            assert_eq!(ordered_warnings, general_warnings);
            assert_eq!(ordered_warnings.len(), warned, "{ordered_warnings:?}");
            let mut sorted = text_of(&ordered);
            sorted.sort();
            let mut expected = text_of(&zone);
            expected.sort();
            (sorted, expected)
        };
        // In order.
        let (built, expected) = same(&canonical, 0);
        assert_eq!(built, expected);
        // In order, with two duplicates (one of another TTL) inside one name: the
        // first of z's records sets the RRset's TTL.
        let mut doubled = canonical.clone();
        let z_at = doubled.len() - 1;
        doubled.insert(z_at, canonical[z_at].clone());
        let mut other_ttl = zone.axfr_records().nth(z_at).unwrap();
        other_ttl.ttl = 1;
        doubled.insert(z_at, other_ttl.to_bytes().unwrap());
        same(&doubled, 2);
        // Out of order: the apex's NS and www's AAAA last, a duplicate of an early
        // record after them.
        let mut shuffled = canonical.clone();
        let moved: Vec<Vec<u8>> = [1, 4]
            .into_iter()
            .rev()
            .map(|at| shuffled.remove(at))
            .collect();
        shuffled.extend(moved);
        shuffled.push(canonical[2].clone());
        let (built, expected) = same(&shuffled, 1);
        assert_eq!(built, expected);
    }

    #[test]
    fn standalone_wire_records_build_the_zone_their_decoded_form_builds() {
        use hickory_proto::serialize::binary::BinEncodable;
        let text = format!(
            "{HEAD}www A 192.0.2.80\n  AAAA 2001:db8::80\nftp CNAME www\n@ MX 10 www\nsub NS ns.sub\nns.sub A 192.0.2.9\n\
             ptr PTR www.example.com.\n_sip._udp SRV 0 5 5060 www\nt TXT \"a b\" c\nd DNAME example.net.\n\
             c CAA 0 issue \"ca.example\"\nu TYPE65000 \\# 2 abcd\n"
        );
        let (zone, _) = load(&text).unwrap();
        let records: Vec<Record> = zone.axfr_records().skip(1).collect();
        let location = Location {
            file: Arc::new("t".into()),
            line: 1,
        };
        let origin = Name::from_ascii("example.com.").unwrap();
        let mut decoded = ZoneBuilder::new(&origin, Path::new("t"));
        let mut wire = ZoneBuilder::new(&origin, Path::new("t"));
        let mut compressed = 0;
        for record in &records {
            // As the transfer daemon stores them: hickory-proto's encoding, which
            // compresses names in the data of some types against the owner.
            let bytes = record.to_bytes().unwrap();
            let whole = wire_name(&record.name).len()
                + 10
                + crate::rrset::encode(&record.data).unwrap().len();
            if bytes.len() < whole {
                compressed += 1;
            }
            decoded.add(LocatedRecord {
                record: record.clone(),
                location: location.clone(),
            });
            wire.add_record(&bytes, &location).unwrap();
        }
        assert!(compressed > 0);
        let (decoded, _) = decoded.build().unwrap();
        let (wire, _) = wire.build().unwrap();
        let sets = |zone: &Zone| -> Vec<(Vec<u8>, RecordType, u32, Vec<u8>)> {
            zone.nodes()
                .iter()
                .flat_map(|(key, node)| {
                    node.rrsets()
                        .iter()
                        .map(move |set| (key.to_vec(), set.rtype, set.ttl, set.wire().to_vec()))
                })
                .collect()
        };
        assert_eq!(sets(&wire), sets(&decoded));
        assert_eq!(wire.record_count(), decoded.record_count());

        let mut builder = ZoneBuilder::new(&origin, Path::new("t"));
        let good = records[0].to_bytes().unwrap();
        assert!(
            builder
                .add_record(&good[..good.len() - 1], &location)
                .is_err()
        );
        assert!(builder.add_record(&[0xc0, 0x00], &location).is_err());
        assert!(builder.add_record(&[], &location).is_err());
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
