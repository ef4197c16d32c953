//! The authoritative lookup, following RFC 1034 §4.3.2 step 3, with wildcards (RFC
//! 4592), DNAME (RFC 6672) and CNAME chains that continue into the other zones this
//! server is authoritative for (as NSD does); for a signed zone and a query with DO=1,
//! the RRSIGs of every RRset sent and the NSEC or NSEC3 proofs of RFC 4035 §3.1.
//!
//! It works on names in wire form, as the query carries them, and its result points
//! at the zone's stored RRsets: the response writer copies them into the answer
//! without decoding them.

use std::borrow::Cow;

use hickory_proto::rr::RecordType;
use sextant_wire::{MAX_NAME_LEN, is_subdomain, label_count, lowercase_into, suffix_with_labels};

use crate::nodes::Node;
use crate::{Catalog, RRset, Zone, canonical};

/// What the lookup found, before it is written as a DNS message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Data, a referral, a NODATA: the RCODE is NOERROR.
    NoError,
    /// The name (the last of a CNAME chain) does not exist.
    NxDomain,
    /// The name is not in any zone served here.
    Refused,
    /// A DNAME substitution made a name longer than 255 bytes (RFC 6672 §2.2).
    YxDomain,
    /// The zone is a secondary past its SOA expire.
    ServFail,
}

/// One RRset of an answer, with its signatures when they go with it: where the
/// writer finds its owner and data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part<'a> {
    /// The owner, an uncompressed wire name in the case it should read.
    pub owner: Cow<'a, [u8]>,
    /// The type code.
    pub rtype: u16,
    /// Seconds.
    pub ttl: u32,
    /// Each record's data after its 2-byte length, names uncompressed.
    data: Cow<'a, [u8]>,
    /// The RRSIGs covering the set (DO=1 answers from signed zones): TTL and data.
    signatures: Option<(u32, &'a [u8])>,
}

impl<'a> Part<'a> {
    fn stored(owner: Cow<'a, [u8]>, set: &'a RRset) -> Self {
        Self {
            owner,
            rtype: u16::from(set.rtype),
            ttl: set.ttl,
            data: Cow::Borrowed(set.wire()),
            signatures: None,
        }
    }

    /// The set with its RRSIGs from `node`, when `signed`.
    pub(crate) fn signed(
        owner: Cow<'a, [u8]>,
        set: &'a RRset,
        node: &'a Node,
        signed: bool,
    ) -> Self {
        let mut part = Self::stored(owner, set);
        if signed {
            part.signatures = node
                .signatures(set.rtype)
                .map(|sigs| (sigs.ttl, sigs.wire()));
        }
        part
    }

    /// Each record's data in wire form.
    pub fn rdatas(&self) -> impl Iterator<Item = &[u8]> {
        crate::rrset::split_rdatas(&self.data)
    }

    /// The RRSIGs to send with the set: their TTL and each record's data.
    pub fn signatures(&self) -> Option<(u32, impl Iterator<Item = &[u8]>)> {
        self.signatures
            .map(|(ttl, data)| (ttl, crate::rrset::split_rdatas(data)))
    }

    pub(crate) fn same_set(&self, other: &Part<'_>) -> bool {
        self.rtype == other.rtype && self.owner.eq_ignore_ascii_case(&other.owner)
    }
}

/// The sections of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup<'a> {
    /// What the RCODE will be.
    pub outcome: Outcome,
    /// AA: false for a referral.
    pub authoritative: bool,
    /// The answer section's RRsets, in order.
    pub answer: Vec<Part<'a>>,
    /// The authority section's RRsets.
    pub authority: Vec<Part<'a>>,
    /// The additional section's RRsets (optional data: dropped first when short of room).
    pub additional: Vec<Part<'a>>,
}

impl Lookup<'_> {
    fn refused() -> Self {
        Self {
            outcome: Outcome::Refused,
            authoritative: false,
            answer: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
        }
    }

    /// Seconds an exact copy of this answer stays true: the smallest TTL in it.
    pub fn min_ttl(&self) -> u32 {
        self.answer
            .iter()
            .chain(&self.authority)
            .chain(&self.additional)
            .flat_map(|part| [Some(part.ttl), part.signatures.map(|(ttl, _)| ttl)])
            .flatten()
            .min()
            .unwrap_or(0)
    }
}

/// Adds `part` to `section` unless the same RRset is there already (two proofs may
/// need the same NSEC).
pub(crate) fn push_once<'a>(section: &mut Vec<Part<'a>>, part: Part<'a>) {
    if !section.iter().any(|existing| existing.same_set(&part)) {
        section.push(part);
    }
}

/// Longest CNAME/DNAME chain followed for one query; past it the chain so far is
/// returned (a loop, or a chain no resolver would follow anyway).
const MAX_CHAIN: usize = 12;

/// A name being looked up: as it should read in the answer, lower-cased for matching,
/// and its canonical key.
pub(crate) struct Current<'a> {
    name: Cow<'a, [u8]>,
    lower: [u8; MAX_NAME_LEN],
    lower_len: usize,
    key: [u8; canonical::MAX_KEY],
    key_len: usize,
}

impl<'a> Current<'a> {
    fn new(name: Cow<'a, [u8]>) -> Self {
        let mut lower = [0u8; MAX_NAME_LEN];
        let lower_len = lowercase_into(&name, &mut lower);
        let mut key = [0u8; canonical::MAX_KEY];
        let key_len = canonical::write_key_wire(&lower[..lower_len], &mut key);
        Self {
            name,
            lower,
            lower_len,
            key,
            key_len,
        }
    }

    /// The name, lower case.
    pub(crate) fn lower(&self) -> &[u8] {
        &self.lower[..self.lower_len]
    }

    /// Its canonical key.
    pub(crate) fn key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }

    /// The suffix of the name with `labels` labels, in the answer's case.
    fn suffix(&self, labels: usize) -> Cow<'a, [u8]> {
        match &self.name {
            Cow::Borrowed(name) => Cow::Borrowed(suffix_with_labels(name, labels)),
            Cow::Owned(name) => Cow::Owned(suffix_with_labels(name, labels).to_vec()),
        }
    }
}

/// The closest encloser of a name that does not exist (RFC 4592 §3.3.1): the longest
/// ancestor that does, as the length of its key (a prefix of the name's key) and its
/// number of labels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Encloser {
    pub(crate) key_len: usize,
    pub(crate) labels: usize,
}

/// What one zone says about one name.
enum Found<'z> {
    /// The RRset answering the query (for ANY, the one chosen), at `node`, or made
    /// from the wildcard below `wildcard` when the name itself does not exist.
    RRset {
        set: &'z RRset,
        node: &'z Node,
        wildcard: Option<Encloser>,
    },
    /// Every RRSIG at the name (a query for type RRSIG).
    Signatures {
        node: &'z Node,
        wildcard: Option<Encloser>,
    },
    Cname {
        set: &'z RRset,
        node: &'z Node,
        target: &'z [u8],
        wildcard: Option<Encloser>,
    },
    Dname {
        owner_labels: usize,
        rrset: &'z RRset,
        node: &'z Node,
        target: &'z [u8],
    },
    Referral {
        cut_labels: usize,
        cut_key_len: usize,
        ns: &'z RRset,
        node: &'z Node,
    },
    /// The name exists (at `node`, or as an empty non-terminal when `None`), or the
    /// wildcard below `wildcard` does, without the type asked for.
    NoData {
        node: Option<&'z Node>,
        wildcard: Option<Encloser>,
    },
    NxDomain(Encloser),
}

impl Found<'_> {
    /// The closest encloser of the name, when the answer is synthesized from the
    /// wildcard below it (the data exists, the name asked for does not).
    fn synthesized(&self) -> Option<Encloser> {
        match self {
            Found::RRset { wildcard, .. }
            | Found::Signatures { wildcard, .. }
            | Found::Cname { wildcard, .. } => *wildcard,
            _ => None,
        }
    }
}

impl Catalog {
    /// Answers `qname` (uncompressed wire form, in the client's case) and `qtype` from
    /// the zones served here; `dnssec` (the query's DO bit) adds the signatures and
    /// denial proofs of signed zones.
    pub fn lookup<'a>(&'a self, qname: &'a [u8], qtype: u16, dnssec: bool) -> Lookup<'a> {
        let mut out = Lookup::refused();
        let qtype = RecordType::from(qtype);
        let mut current = Current::new(Cow::Borrowed(qname));
        let Some(mut zone) = self.zone_for_wire(current.lower(), qtype) else {
            return out;
        };
        if self.is_expired_wire(zone.origin_wire()) {
            out.outcome = Outcome::ServFail;
            return out;
        }
        out.outcome = Outcome::NoError;
        out.authoritative = true;
        for _ in 0..MAX_CHAIN {
            let signed = dnssec && zone.is_signed();
            let found = zone.find(&current, qtype);
            if let (true, Some(encloser)) = (signed, found.synthesized()) {
                zone.deny_exact_name(&current, encloser, &mut out.authority);
            }
            match found {
                Found::RRset { set, node, .. } => {
                    out.answer
                        .push(Part::signed(current.name, set, node, signed));
                    zone.add_additional(&mut out.additional, set, signed);
                    return out;
                }
                Found::Signatures { node, .. } => {
                    for sigs in node.all_signatures() {
                        out.answer.push(Part::stored(current.name.clone(), sigs));
                    }
                    return out;
                }
                Found::Cname {
                    set, node, target, ..
                } => {
                    out.answer
                        .push(Part::signed(current.name, set, node, signed));
                    if qtype == RecordType::CNAME {
                        return out;
                    }
                    current = Current::new(Cow::Borrowed(target));
                }
                Found::Dname {
                    owner_labels,
                    rrset,
                    node,
                    target,
                } => {
                    out.answer.push(Part::signed(
                        current.suffix(owner_labels),
                        rrset,
                        node,
                        signed,
                    ));
                    let Some(synthesized) = substitute(&current.name, owner_labels, target) else {
                        out.outcome = Outcome::YxDomain;
                        return out;
                    };
                    // The synthesized CNAME carries the DNAME's TTL (RFC 6672 §3.1)
                    // and no signature: validators check it against the DNAME.
                    let mut data = Vec::with_capacity(2 + synthesized.len());
                    data.extend_from_slice(&(synthesized.len() as u16).to_be_bytes());
                    data.extend_from_slice(&synthesized);
                    out.answer.push(Part {
                        owner: current.name,
                        rtype: u16::from(RecordType::CNAME),
                        ttl: rrset.ttl,
                        data: Cow::Owned(data),
                        signatures: None,
                    });
                    if qtype == RecordType::CNAME {
                        return out;
                    }
                    current = Current::new(Cow::Owned(synthesized));
                }
                Found::Referral {
                    cut_labels,
                    cut_key_len,
                    ns,
                    node,
                } => {
                    if out.answer.is_empty() {
                        out.authoritative = false;
                    }
                    let cut = current.suffix(cut_labels);
                    out.authority.push(Part::stored(cut.clone(), ns));
                    if signed {
                        match node.get(RecordType::DS) {
                            Some(ds) => out.authority.push(Part::signed(cut, ds, node, true)),
                            None => zone.deny_ds(
                                &current,
                                cut_labels,
                                cut_key_len,
                                node,
                                &mut out.authority,
                            ),
                        }
                    }
                    zone.glue(ns, &mut out.additional);
                    return out;
                }
                Found::NoData { node, wildcard } => {
                    out.authority.extend(zone.negative_soa(signed));
                    if signed {
                        match wildcard {
                            Some(encloser) => {
                                zone.deny_type_at_wildcard(&current, encloser, &mut out.authority)
                            }
                            None => zone.deny_type(&current, node, &mut out.authority),
                        }
                    }
                    return out;
                }
                Found::NxDomain(encloser) => {
                    // After a CNAME, the RCODE describes the chain's last name (RFC 6604).
                    out.outcome = Outcome::NxDomain;
                    out.authority.extend(zone.negative_soa(signed));
                    if signed {
                        zone.deny_name(&current, encloser, &mut out.authority);
                    }
                    return out;
                }
            }
            // The chain leaves this zone: continue only where we are authoritative.
            match self.zone_for_wire(current.lower(), qtype) {
                Some(next) => zone = next,
                None => return out,
            }
        }
        out
    }
}

/// The name DNAME substitution makes of `name` (RFC 6672 §2.2): the labels below the
/// DNAME owner's `owner_labels`, then `target`. `None` past 255 bytes.
fn substitute(name: &[u8], owner_labels: usize, target: &[u8]) -> Option<Vec<u8>> {
    let owner = suffix_with_labels(name, owner_labels);
    let prefix = &name[..name.len() - owner.len()];
    let total = prefix.len() + target.len();
    if total > MAX_NAME_LEN {
        return None;
    }
    let mut synthesized = Vec::with_capacity(total);
    synthesized.extend_from_slice(prefix);
    synthesized.extend_from_slice(target);
    Some(synthesized)
}

impl Zone {
    /// What this zone says about `name` (at or below the apex).
    fn find(&self, name: &Current<'_>, qtype: RecordType) -> Found<'_> {
        // The canonical key of an ancestor is a prefix of the name's key, ending at
        // a label's closing 0 byte: one key serves the whole walk.
        let name_key = name.key();
        let apex_labels = self.apex_labels();
        let labels = label_count(name.lower());
        let mut ancestors = [0usize; 128];
        let mut count = 0;
        for (end, _) in name_key.iter().enumerate().filter(|(_, byte)| **byte == 0) {
            if count == ancestors.len() {
                break;
            }
            ancestors[count] = end + 1;
            count += 1;
        }
        let ancestors = &ancestors[..count];

        // Walk down from the apex: a zone cut (NS below the apex) or a DNAME above the
        // name decides the answer before the name itself is looked at.
        if self.has_cuts() {
            for (depth, &end) in (1..).zip(ancestors) {
                if depth < apex_labels {
                    continue;
                }
                let Some(node) = self.node_at(&name_key[..end]) else {
                    continue;
                };
                let at_name = depth == labels;
                // DS is the parent's data at the cut: answered here, not referred.
                if depth > apex_labels
                    && !(at_name && qtype == RecordType::DS)
                    && let Some(ns) = node.get(RecordType::NS)
                {
                    return Found::Referral {
                        cut_labels: depth,
                        cut_key_len: end,
                        ns,
                        node,
                    };
                }
                if !at_name
                    && let Some(rrset) = node.get(RecordType::DNAME)
                    && let Some(target) = rrset.wire_rdatas().next()
                {
                    return Found::Dname {
                        owner_labels: depth,
                        rrset,
                        node,
                        target,
                    };
                }
            }
        }

        if let Some(node) = self.node_at(name_key) {
            return answer_from(node, qtype, None);
        }
        if self.has_descendants_key(name_key) {
            return Found::NoData {
                node: None,
                wildcard: None,
            }; // an empty non-terminal
        }
        // RFC 4592 §3.3.1: the source of synthesis is `*.<closest encloser>`, the
        // longest ancestor that exists (has a node or names below it).
        let encloser_labels = (apex_labels..labels)
            .rev()
            .find(|&depth| {
                let Some(&end) = depth.checked_sub(1).and_then(|at| ancestors.get(at)) else {
                    return true; // the root zone's apex
                };
                let key = &name_key[..end];
                self.node_at(key).is_some() || self.has_descendants_key(key)
            })
            .unwrap_or(apex_labels);
        let encloser = Encloser {
            key_len: encloser_labels
                .checked_sub(1)
                .and_then(|at| ancestors.get(at))
                .copied()
                .unwrap_or(0),
            labels: encloser_labels,
        };
        let mut wildcard = [0u8; canonical::MAX_KEY];
        let len = encloser.key_len;
        wildcard[..len].copy_from_slice(&name_key[..len]);
        if len + 2 <= wildcard.len() {
            wildcard[len] = b'*';
            wildcard[len + 1] = 0;
            if let Some(node) = self.node_at(&wildcard[..len + 2]) {
                return answer_from(node, qtype, Some(encloser));
            }
        }
        Found::NxDomain(encloser)
    }

    /// The SOA of negative answers, with the negative TTL (RFC 2308 §5), which its
    /// RRSIGs take too.
    fn negative_soa(&self, signed: bool) -> Option<Part<'_>> {
        let apex = self.apex()?;
        let soa = apex.get(RecordType::SOA)?;
        let ttl = self.negative_ttl();
        let mut part = Part::signed(Cow::Borrowed(self.origin_wire()), soa, apex, signed);
        part.ttl = ttl;
        if let Some((sig_ttl, _)) = &mut part.signatures {
            *sig_ttl = (*sig_ttl).min(ttl);
        }
        Some(part)
    }

    /// A and AAAA records for the name servers of a referral that lie inside this
    /// zone (at or below the cut), needed to reach them at all. Glue is not
    /// authoritative data: never signed.
    fn glue<'a>(&'a self, ns: &'a RRset, additional: &mut Vec<Part<'a>>) {
        for target in ns.wire_rdatas() {
            if !is_subdomain(target, self.origin_wire()) {
                continue;
            }
            let mut buffer = [0u8; canonical::MAX_KEY];
            let len = canonical::write_key_wire(target, &mut buffer);
            let Some(node) = self.node_at(&buffer[..len]) else {
                continue;
            };
            for rtype in [RecordType::A, RecordType::AAAA] {
                if let Some(set) = node.get(rtype) {
                    push_once(additional, Part::stored(Cow::Borrowed(target), set));
                }
            }
        }
    }

    /// Addresses of the names that NS, MX and SRV answers point to, where this zone
    /// holds them (as NSD, Knot and BIND do: not from the other zones served here).
    fn add_additional<'a>(&'a self, additional: &mut Vec<Part<'a>>, set: &'a RRset, signed: bool) {
        let skip = match set.rtype {
            RecordType::NS => 0,
            RecordType::MX => 2,
            RecordType::SRV => 6,
            _ => return,
        };
        for rdata in set.wire_rdatas() {
            let Some(target) = rdata.get(skip..) else {
                continue;
            };
            if !is_subdomain(target, self.origin_wire()) {
                continue;
            }
            let target = Current::new(Cow::Borrowed(target));
            for rtype in [RecordType::A, RecordType::AAAA] {
                if let Found::RRset {
                    set: found,
                    node,
                    wildcard: None,
                } = self.find(&target, rtype)
                {
                    push_once(
                        additional,
                        Part::signed(target.name.clone(), found, node, signed),
                    );
                }
            }
        }
    }
}

fn answer_from(node: &Node, qtype: RecordType, wildcard: Option<Encloser>) -> Found<'_> {
    if qtype == RecordType::ANY {
        // RFC 8482: one RRset, not all of them (ANY answers are an amplification
        // tool). As NSD does: the SOA at the apex, elsewhere a fixed choice, here
        // the RRset with the lowest type code.
        let chosen = node.get(RecordType::SOA).or_else(|| {
            node.rrsets()
                .iter()
                .filter(|set| set.rtype != RecordType::RRSIG)
                .min_by_key(|set| u16::from(set.rtype))
        });
        return match chosen {
            Some(set) => Found::RRset {
                set,
                node,
                wildcard,
            },
            None => Found::NoData {
                node: Some(node),
                wildcard,
            },
        };
    }
    if qtype == RecordType::RRSIG && node.get(RecordType::RRSIG).is_some() {
        return Found::Signatures { node, wildcard };
    }
    if let Some(set) = node.get(qtype) {
        return Found::RRset {
            set,
            node,
            wildcard,
        };
    }
    if let Some(cname) = node.get(RecordType::CNAME)
        && let Some(target) = cname.wire_rdatas().next()
    {
        return Found::Cname {
            set: cname,
            node,
            target,
            wildcard,
        };
    }
    Found::NoData {
        node: Some(node),
        wildcard,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::Path;
    use std::sync::Arc;

    use hickory_proto::rr::{Name, RData, Record};
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, Restrict};

    use super::*;

    fn zone(origin: &str, body: &str) -> Arc<Zone> {
        let no_include =
            |_: &Path| -> std::io::Result<String> { Err(std::io::ErrorKind::NotFound.into()) };
        let text =
            format!("$TTL 300\n@ SOA ns hostmaster 1 2 3 4 60\n  NS ns\nns A 192.0.2.53\n{body}");
        let (zone, _) = Zone::from_master_text(
            &Name::from_ascii(origin).unwrap(),
            Path::new("t"),
            &text,
            &no_include,
        )
        .unwrap();
        Arc::new(zone)
    }

    fn catalog() -> Catalog {
        Catalog::new([
            zone(
                "example.com.",
                "www A 192.0.2.1\n\
                 alias CNAME www\n\
                 loop1 CNAME loop2\nloop2 CNAME loop1\n\
                 out CNAME www.other.org.\n\
                 a.b.c TXT deep\n\
                 *.wild TXT star\n\
                 *.wild MX 10 www\n\
                 sub NS ns.sub\nns.sub A 192.0.2.99\nhidden.sub A 192.0.2.98\n\
                 sub DS \\# 7 0001080201abcd\n\
                 dn DNAME other.org.\n\
                 mail MX 10 www\n",
            ),
            zone("other.org.", "www A 198.51.100.1\n"),
        ])
    }

    /// The name in wire form, in its own case.
    fn wire(text: &str) -> Vec<u8> {
        let name = Name::from_ascii(text).unwrap();
        let mut wire = Vec::new();
        for label in name.iter() {
            wire.push(label.len() as u8);
            wire.extend_from_slice(label);
        }
        wire.push(0);
        wire
    }

    /// What a lookup found, with its parts as hickory records for easy checking.
    struct Found {
        outcome: Outcome,
        authoritative: bool,
        answer: Vec<Record>,
        authority: Vec<Record>,
        additional: Vec<Record>,
    }

    fn records(parts: &[Part<'_>]) -> Vec<Record> {
        parts
            .iter()
            .flat_map(|part| {
                let owner = Name::read(&mut BinDecoder::new(&part.owner)).unwrap();
                part.rdatas()
                    .map(|rdata| {
                        let data = RData::read(
                            &mut BinDecoder::new(rdata),
                            RecordType::from(part.rtype),
                            Restrict::new(rdata.len() as u16),
                        )
                        .unwrap();
                        Record::from_rdata(owner.clone(), part.ttl, data)
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn lookup_in(catalog: &Catalog, name: &str, rtype: RecordType) -> Found {
        let qname = wire(name);
        let out = catalog.lookup(&qname, u16::from(rtype), false);
        Found {
            outcome: out.outcome,
            authoritative: out.authoritative,
            answer: records(&out.answer),
            authority: records(&out.authority),
            additional: records(&out.additional),
        }
    }

    fn q(name: &str, rtype: RecordType) -> Found {
        lookup_in(&catalog(), name, rtype)
    }

    fn texts(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
            .collect()
    }

    #[test]
    fn exact_match_echoes_query_case() {
        let out = q("WWW.example.com.", RecordType::A);
        assert_eq!(out.outcome, Outcome::NoError);
        assert!(out.authoritative);
        assert_eq!(texts(&out.answer), ["WWW.example.com. A 192.0.2.1"]);
    }

    #[test]
    fn nodata_nxdomain_and_empty_non_terminals() {
        let out = q("www.example.com.", RecordType::MX);
        assert_eq!((out.outcome, out.answer.len()), (Outcome::NoError, 0));
        assert_eq!(out.authority[0].record_type(), RecordType::SOA);
        assert_eq!(out.authority[0].ttl, 60);
        let out = q("nope.example.com.", RecordType::A);
        assert_eq!(out.outcome, Outcome::NxDomain);
        let out = q("b.c.example.com.", RecordType::A);
        assert_eq!(
            out.outcome,
            Outcome::NoError,
            "an empty non-terminal is NODATA"
        );
    }

    #[test]
    fn cname_chains_follow_into_other_zones_and_stop_on_loops() {
        let out = q("alias.example.com.", RecordType::A);
        assert_eq!(
            texts(&out.answer),
            [
                "alias.example.com. CNAME www.example.com.",
                "www.example.com. A 192.0.2.1"
            ]
        );
        let out = q("out.example.com.", RecordType::A);
        assert_eq!(out.answer.len(), 2);
        let out = q("loop1.example.com.", RecordType::A);
        assert_eq!(out.answer.len(), MAX_CHAIN);
    }

    #[test]
    fn wildcards_synthesize_with_the_query_name() {
        let out = q("x.wild.example.com.", RecordType::TXT);
        assert_eq!(texts(&out.answer), ["x.wild.example.com. TXT star"]);
        let out = q("x.y.wild.example.com.", RecordType::TXT);
        assert_eq!(out.answer.len(), 1, "a wildcard covers deeper names too");
        let out = q("x.wild.example.com.", RecordType::A);
        assert_eq!((out.outcome, out.answer.len()), (Outcome::NoError, 0));
        let out = q("x.wild.example.com.", RecordType::MX);
        assert_eq!(texts(&out.additional), ["www.example.com. A 192.0.2.1"]);
    }

    #[test]
    fn referrals_carry_glue_and_occlude_data_below_the_cut() {
        let out = q("hidden.sub.example.com.", RecordType::A);
        assert!(!out.authoritative);
        assert!(out.answer.is_empty());
        assert_eq!(
            texts(&out.authority),
            ["sub.example.com. NS ns.sub.example.com."]
        );
        assert_eq!(texts(&out.additional), ["ns.sub.example.com. A 192.0.2.99"]);
        let out = q("sub.example.com.", RecordType::DS);
        assert!(out.authoritative);
        assert_eq!(out.answer[0].record_type(), RecordType::DS);
    }

    #[test]
    fn dname_synthesizes_a_cname() {
        let out = q("www.dn.example.com.", RecordType::A);
        assert_eq!(
            texts(&out.answer)[1..],
            [
                "www.dn.example.com. CNAME www.other.org.",
                "www.other.org. A 198.51.100.1"
            ]
        );
        assert_eq!(out.answer[0].record_type(), RecordType::DNAME);
    }

    #[test]
    fn any_is_answered_with_one_rrset() {
        let out = q("example.com.", RecordType::ANY);
        assert_eq!(out.answer.len(), 1);
        assert_eq!(out.answer[0].record_type(), RecordType::SOA);
        let out = q("x.wild.example.com.", RecordType::ANY);
        assert_eq!(
            texts(&out.answer),
            ["x.wild.example.com. MX 10 www.example.com."]
        );
    }

    #[test]
    fn an_expired_zone_is_servfail() {
        let origin = Name::from_ascii("other.org.").unwrap();
        let expired = catalog().updated([], &[(origin, true)]);
        let out = lookup_in(&expired, "www.other.org.", RecordType::A);
        assert_eq!(out.outcome, Outcome::ServFail);
        let out = lookup_in(&expired, "www.example.com.", RecordType::A);
        assert_eq!(
            out.outcome,
            Outcome::NoError,
            "other zones are not affected"
        );
    }

    #[test]
    fn outside_every_zone_is_refused() {
        assert_eq!(q("example.net.", RecordType::A).outcome, Outcome::Refused);
    }
}
