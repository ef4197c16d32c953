//! The authoritative lookup, following RFC 1034 §4.3.2 step 3, with wildcards (RFC
//! 4592), DNAME (RFC 6672) and CNAME chains that continue into the other zones this
//! server is authoritative for (as NSD does).
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

/// One RRset of an answer: where the writer finds its owner and data.
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
}

impl<'a> Part<'a> {
    fn stored(owner: Cow<'a, [u8]>, set: &'a RRset) -> Self {
        Self {
            owner,
            rtype: u16::from(set.rtype),
            ttl: set.ttl,
            data: Cow::Borrowed(set.wire()),
        }
    }

    /// Each record's data in wire form.
    pub fn rdatas(&self) -> impl Iterator<Item = &[u8]> {
        crate::rrset::split_rdatas(&self.data)
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
            .map(|part| part.ttl)
            .min()
            .unwrap_or(0)
    }
}

/// Longest CNAME/DNAME chain followed for one query; past it the chain so far is
/// returned (a loop, or a chain no resolver would follow anyway).
const MAX_CHAIN: usize = 12;

/// A name being looked up: as it should read in the answer, and lower-cased for
/// matching.
struct Current<'a> {
    name: Cow<'a, [u8]>,
    lower: [u8; MAX_NAME_LEN],
    lower_len: usize,
}

impl<'a> Current<'a> {
    fn new(name: Cow<'a, [u8]>) -> Self {
        let mut lower = [0u8; MAX_NAME_LEN];
        let lower_len = lowercase_into(&name, &mut lower);
        Self {
            name,
            lower,
            lower_len,
        }
    }

    fn lower(&self) -> &[u8] {
        &self.lower[..self.lower_len]
    }

    /// The suffix of the name with `labels` labels, in the answer's case.
    fn suffix(&self, labels: usize) -> Cow<'a, [u8]> {
        match &self.name {
            Cow::Borrowed(name) => Cow::Borrowed(suffix_with_labels(name, labels)),
            Cow::Owned(name) => Cow::Owned(suffix_with_labels(name, labels).to_vec()),
        }
    }
}

/// What one zone says about one name.
enum Found<'z> {
    /// The RRset answering the query (for ANY, the one chosen).
    RRset(&'z RRset),
    Cname(&'z RRset, &'z [u8]),
    Dname {
        owner_labels: usize,
        rrset: &'z RRset,
        target: &'z [u8],
    },
    Referral {
        cut_labels: usize,
        ns: &'z RRset,
    },
    NoData,
    NxDomain,
}

impl Catalog {
    /// Answers `qname` (uncompressed wire form, in the client's case) and `qtype` from
    /// the zones served here.
    pub fn lookup<'a>(&'a self, qname: &'a [u8], qtype: u16) -> Lookup<'a> {
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
            match zone.find(current.lower(), qtype) {
                Found::RRset(set) => {
                    out.answer.push(Part::stored(current.name, set));
                    self.add_additional(&mut out.additional, set);
                    return out;
                }
                Found::Cname(set, target) => {
                    out.answer.push(Part::stored(current.name, set));
                    if qtype == RecordType::CNAME {
                        return out;
                    }
                    current = Current::new(Cow::Borrowed(target));
                }
                Found::Dname {
                    owner_labels,
                    rrset,
                    target,
                } => {
                    out.answer
                        .push(Part::stored(current.suffix(owner_labels), rrset));
                    let Some(synthesized) = substitute(&current.name, owner_labels, target) else {
                        out.outcome = Outcome::YxDomain;
                        return out;
                    };
                    // The synthesized CNAME carries the DNAME's TTL (RFC 6672 §3.1).
                    let mut data = Vec::with_capacity(2 + synthesized.len());
                    data.extend_from_slice(&(synthesized.len() as u16).to_be_bytes());
                    data.extend_from_slice(&synthesized);
                    out.answer.push(Part {
                        owner: current.name,
                        rtype: u16::from(RecordType::CNAME),
                        ttl: rrset.ttl,
                        data: Cow::Owned(data),
                    });
                    if qtype == RecordType::CNAME {
                        return out;
                    }
                    current = Current::new(Cow::Owned(synthesized));
                }
                Found::Referral { cut_labels, ns } => {
                    if out.answer.is_empty() {
                        out.authoritative = false;
                    }
                    out.authority
                        .push(Part::stored(current.suffix(cut_labels), ns));
                    zone.glue(ns, &mut out.additional);
                    return out;
                }
                Found::NoData => {
                    out.authority.extend(zone.negative_soa());
                    return out;
                }
                Found::NxDomain => {
                    // After a CNAME, the RCODE describes the chain's last name (RFC 6604).
                    out.outcome = Outcome::NxDomain;
                    out.authority.extend(zone.negative_soa());
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

    /// Addresses of the names that NS, MX and SRV answers point to, where served here.
    fn add_additional<'a>(&'a self, additional: &mut Vec<Part<'a>>, set: &'a RRset) {
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
            let target = Current::new(Cow::Borrowed(target));
            let Some(zone) = self.zone_for_wire(target.lower(), RecordType::A) else {
                continue;
            };
            for rtype in [RecordType::A, RecordType::AAAA] {
                if let Found::RRset(found) = zone.find(target.lower(), rtype) {
                    let part = Part::stored(target.name.clone(), found);
                    if !additional.contains(&part) {
                        additional.push(part);
                    }
                }
            }
        }
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
    /// What this zone says about `name` (lower-cased, at or below the apex).
    fn find(&self, name: &[u8], qtype: RecordType) -> Found<'_> {
        // The canonical key of an ancestor is a prefix of the name's key, ending at
        // a label's closing 0 byte: one key serves the whole walk.
        let mut buffer = [0u8; canonical::MAX_KEY];
        let len = canonical::write_key_wire(name, &mut buffer);
        let name_key = &buffer[..len];
        let apex_labels = self.apex_labels();
        let labels = label_count(name);
        let label_ends = || {
            name_key
                .iter()
                .enumerate()
                .filter(|(_, byte)| **byte == 0)
                .map(|(end, _)| end + 1)
        };

        // Walk down from the apex: a zone cut (NS below the apex) or a DNAME above the
        // name decides the answer before the name itself is looked at.
        if self.has_cuts() {
            for (depth, end) in (1..).zip(label_ends()) {
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
                        ns,
                    };
                }
                if !at_name
                    && let Some(rrset) = node.get(RecordType::DNAME)
                    && let Some(target) = rrset.wire_rdatas().next()
                {
                    return Found::Dname {
                        owner_labels: depth,
                        rrset,
                        target,
                    };
                }
            }
        }

        if let Some(node) = self.node_at(name_key) {
            return answer_from(node, qtype);
        }
        if self.has_descendants_key(name_key) {
            return Found::NoData; // an empty non-terminal
        }
        // RFC 4592 §3.3.1: the source of synthesis is `*.<closest encloser>`, the
        // longest ancestor that exists (has a node or names below it).
        let mut ancestors = [0usize; 128];
        let mut count = 0;
        for end in label_ends().take(ancestors.len()) {
            ancestors[count] = end;
            count += 1;
        }
        let ancestors = &ancestors[..count];
        let encloser_end = ancestors
            .iter()
            .rev()
            .skip(1)
            .take(labels.saturating_sub(apex_labels))
            .copied()
            .find(|&end| {
                let key = &name_key[..end];
                self.node_at(key).is_some() || self.has_descendants_key(key)
            })
            .unwrap_or_else(|| {
                ancestors
                    .get(apex_labels.wrapping_sub(1))
                    .copied()
                    .unwrap_or(0)
            });
        let mut wildcard = [0u8; canonical::MAX_KEY];
        let mut len = encloser_end;
        wildcard[..len].copy_from_slice(&name_key[..len]);
        if len + 2 <= wildcard.len() {
            wildcard[len] = b'*';
            wildcard[len + 1] = 0;
            len += 2;
            if let Some(node) = self.node_at(&wildcard[..len]) {
                return answer_from(node, qtype);
            }
        }
        Found::NxDomain
    }

    /// The SOA of negative answers, with the negative TTL (RFC 2308 §5).
    fn negative_soa(&self) -> Option<Part<'_>> {
        let soa = self.apex()?.get(RecordType::SOA)?;
        let mut part = Part::stored(Cow::Borrowed(self.origin_wire()), soa);
        part.ttl = self.negative_ttl();
        Some(part)
    }

    /// A and AAAA records for the name servers of a referral that lie inside this
    /// zone (at or below the cut), needed to reach them at all.
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
                    additional.push(Part::stored(Cow::Borrowed(target), set));
                }
            }
        }
    }
}

fn answer_from(node: &Node, qtype: RecordType) -> Found<'_> {
    if qtype == RecordType::ANY {
        // RFC 8482: one RRset, not all of them (ANY answers are an amplification
        // tool). As NSD does: the SOA at the apex, elsewhere a fixed choice, here
        // the RRset with the lowest type code.
        let chosen = node
            .get(RecordType::SOA)
            .or_else(|| node.rrsets().iter().min_by_key(|set| u16::from(set.rtype)));
        return match chosen {
            Some(set) => Found::RRset(set),
            None => Found::NoData,
        };
    }
    if let Some(set) = node.get(qtype) {
        return Found::RRset(set);
    }
    if let Some(cname) = node.get(RecordType::CNAME)
        && let Some(target) = cname.wire_rdatas().next()
    {
        return Found::Cname(cname, target);
    }
    Found::NoData
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
        let out = catalog.lookup(&qname, u16::from(rtype));
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
