//! The authoritative lookup, following RFC 1034 §4.3.2 step 3, with wildcards (RFC
//! 4592), DNAME (RFC 6672) and CNAME chains that continue into the other zones this
//! server is authoritative for (as NSD does).

use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::zone::{Node, label_count};
use crate::{Catalog, RRset, Zone};

/// The outcome of a lookup, before it is written as a DNS message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    NxDomain,
    /// The name is not in any zone served here.
    Refused,
    /// A DNAME substitution made a name longer than 255 bytes (RFC 6672 §2.2).
    YxDomain,
    /// The zone is a secondary past its SOA expire.
    ServFail,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    pub rcode: Rcode,
    pub authoritative: bool,
    pub answer: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
}

impl Lookup {
    fn refused() -> Self {
        Self {
            rcode: Rcode::Refused,
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
            .map(|r| r.ttl)
            .min()
            .unwrap_or(0)
    }
}

/// Longest CNAME/DNAME chain followed for one query; past it the chain so far is
/// returned (a loop, or a chain no resolver would follow anyway).
const MAX_CHAIN: usize = 12;

/// What one zone says about one name.
enum Found<'z> {
    /// The RRsets answering the query (several for ANY).
    RRsets(Vec<&'z RRset>),
    Cname(&'z RRset, Name),
    Dname {
        owner_labels: usize,
        rrset: &'z RRset,
        target: Name,
    },
    Referral {
        cut_labels: usize,
        ns: &'z RRset,
    },
    NoData,
    NxDomain,
}

impl Catalog {
    /// Answers `qname`/`qtype` from the zones served here.
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> Lookup {
        let mut out = Lookup::refused();
        let Some(mut zone) = self.zone_for(qname, qtype) else {
            return out;
        };
        if self.is_expired(zone.origin()) {
            out.rcode = Rcode::ServFail;
            return out;
        }
        out.rcode = Rcode::NoError;
        out.authoritative = true;
        let mut name = qname.clone();
        for _ in 0..MAX_CHAIN {
            match zone.find(&name, qtype) {
                Found::RRsets(sets) => {
                    for set in &sets {
                        out.answer.extend(set.records(&name));
                    }
                    self.add_additional(&mut out, &sets);
                    return out;
                }
                Found::Cname(set, target) => {
                    out.answer.extend(set.records(&name));
                    if qtype == RecordType::CNAME {
                        return out;
                    }
                    name = target;
                }
                Found::Dname {
                    owner_labels,
                    rrset,
                    target,
                } => {
                    let owner = name.trim_to(owner_labels);
                    out.answer.extend(rrset.records(&owner));
                    let prefix = label_count(&name) - owner_labels;
                    let synthesized = Name::from_labels(name.iter().take(prefix))
                        .and_then(|prefix| prefix.append_domain(&target));
                    let Ok(synthesized) = synthesized else {
                        out.rcode = Rcode::YxDomain;
                        return out;
                    };
                    // The synthesized CNAME carries the DNAME's TTL (RFC 6672 §3.1).
                    let cname = RData::CNAME(hickory_proto::rr::rdata::CNAME(synthesized.clone()));
                    out.answer
                        .push(Record::from_rdata(name.clone(), rrset.ttl, cname));
                    if qtype == RecordType::CNAME {
                        return out;
                    }
                    name = synthesized;
                }
                Found::Referral { cut_labels, ns } => {
                    let cut = name.trim_to(cut_labels);
                    if out.answer.is_empty() {
                        out.authoritative = false;
                    }
                    out.authority.extend(ns.records(&cut));
                    out.additional.extend(zone.glue(ns));
                    return out;
                }
                Found::NoData => {
                    out.authority.push(zone.negative_soa());
                    return out;
                }
                Found::NxDomain => {
                    // After a CNAME, the RCODE describes the chain's last name (RFC 6604).
                    out.rcode = Rcode::NxDomain;
                    out.authority.push(zone.negative_soa());
                    return out;
                }
            }
            // The chain leaves this zone: continue only where we are authoritative.
            match self.zone_for(&name, qtype) {
                Some(next) => zone = next,
                None => return out,
            }
        }
        out
    }

    /// Addresses of the names that NS, MX and SRV answers point to, where served here.
    fn add_additional(&self, out: &mut Lookup, sets: &[&RRset]) {
        for set in sets {
            for rdata in set.rdatas() {
                let target = match &rdata {
                    RData::NS(ns) => &ns.0,
                    RData::MX(mx) => &mx.exchange,
                    RData::SRV(srv) => &srv.target,
                    _ => continue,
                };
                let Some(zone) = self.zone_for(target, RecordType::A) else {
                    continue;
                };
                for rtype in [RecordType::A, RecordType::AAAA] {
                    if let Found::RRsets(found) = zone.find(target, rtype) {
                        for found in found {
                            for record in found.records(target) {
                                if !out.additional.contains(&record) {
                                    out.additional.push(record);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

impl Zone {
    /// What this zone says about `name` (which must be at or below the apex).
    fn find(&self, name: &Name, qtype: RecordType) -> Found<'_> {
        // The canonical key of an ancestor is a prefix of the name's key, ending at
        // a label's closing 0 byte: one key serves the whole walk.
        let mut buffer = [0u8; crate::canonical::MAX_KEY];
        let len = crate::canonical::write_key(name, &mut buffer);
        let name_key = &buffer[..len];
        let apex_labels = label_count(self.origin());
        let labels = label_count(name);

        // Walk down from the apex: a zone cut (NS below the apex) or a DNAME above the
        // name decides the answer before the name itself is looked at.
        let label_ends = name_key
            .iter()
            .enumerate()
            .filter(|(_, byte)| **byte == 0)
            .map(|(end, _)| end + 1);
        for (depth, end) in (1..).zip(label_ends) {
            if depth < apex_labels {
                continue;
            }
            let prefix = &name_key[..end];
            if !self.has_cuts() {
                break;
            }
            let Some(node) = self.node_at(prefix) else {
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
                && let Some(target) = dname_target(rrset)
            {
                return Found::Dname {
                    owner_labels: depth,
                    rrset,
                    target,
                };
            }
        }

        if let Some(node) = self.node_at(name_key) {
            return answer_from(node, qtype);
        }
        let key = name.to_lowercase();
        if self.has_descendants(&key) {
            return Found::NoData; // an empty non-terminal
        }
        // RFC 4592 §3.3.1: the source of synthesis is `*.<closest encloser>`.
        let mut encloser = key.base_name();
        while !self.origin().zone_of(&encloser)
            || (self.node(&encloser).is_none() && !self.has_descendants(&encloser))
        {
            if label_count(&encloser) <= apex_labels {
                break;
            }
            encloser = encloser.base_name();
        }
        if let Ok(wildcard) = encloser.prepend_label("*")
            && let Some(node) = self.node(&wildcard)
        {
            return answer_from(node, qtype);
        }
        Found::NxDomain
    }

    fn negative_soa(&self) -> Record {
        let mut soa = self.soa().clone();
        soa.ttl = self.negative_ttl();
        soa
    }

    /// A and AAAA records for the name servers of a referral that lie inside this
    /// zone (at or below the cut), needed to reach them at all.
    fn glue<'a>(&'a self, ns: &'a RRset) -> impl Iterator<Item = Record> + 'a {
        ns.rdatas()
            .filter_map(|rdata| match rdata {
                RData::NS(ns) => Some(ns.0),
                _ => None,
            })
            .filter(|target| self.origin().zone_of(target))
            .flat_map(move |target| {
                let node = self.node(&target.to_lowercase());
                [RecordType::A, RecordType::AAAA]
                    .into_iter()
                    .filter_map(move |rtype| node.and_then(|n| n.get(rtype)))
                    .flat_map(move |set| set.records(&target))
            })
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
            Some(set) => Found::RRsets(vec![set]),
            None => Found::NoData,
        };
    }
    if let Some(set) = node.get(qtype) {
        return Found::RRsets(vec![set]);
    }
    if let Some(cname) = node.get(RecordType::CNAME)
        && let Some(RData::CNAME(target)) = cname.first()
    {
        return Found::Cname(cname, target.0);
    }
    Found::NoData
}

/// DNAME data is kept as uncompressed wire bytes (hickory-proto has no DNAME type).
fn dname_target(rrset: &RRset) -> Option<Name> {
    crate::rrset::read_name(rrset.wire_rdatas().next()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::Path;
    use std::sync::Arc;

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

    fn q(name: &str, rtype: RecordType) -> Lookup {
        catalog().lookup(&Name::from_ascii(name).unwrap(), rtype)
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
        assert_eq!(out.rcode, Rcode::NoError);
        assert!(out.authoritative);
        assert_eq!(texts(&out.answer), ["WWW.example.com. A 192.0.2.1"]);
    }

    #[test]
    fn nodata_nxdomain_and_empty_non_terminals() {
        let out = q("www.example.com.", RecordType::MX);
        assert_eq!((out.rcode, out.answer.len()), (Rcode::NoError, 0));
        assert_eq!(out.authority[0].record_type(), RecordType::SOA);
        assert_eq!(out.authority[0].ttl, 60);
        let out = q("nope.example.com.", RecordType::A);
        assert_eq!(out.rcode, Rcode::NxDomain);
        let out = q("b.c.example.com.", RecordType::A);
        assert_eq!(out.rcode, Rcode::NoError, "an empty non-terminal is NODATA");
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
        assert_eq!((out.rcode, out.answer.len()), (Rcode::NoError, 0));
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
        let out = expired.lookup(&Name::from_ascii("www.other.org.").unwrap(), RecordType::A);
        assert_eq!(out.rcode, Rcode::ServFail);
        let out = expired.lookup(
            &Name::from_ascii("www.example.com.").unwrap(),
            RecordType::A,
        );
        assert_eq!(out.rcode, Rcode::NoError, "other zones are not affected");
    }

    #[test]
    fn outside_every_zone_is_refused() {
        assert_eq!(q("example.net.", RecordType::A).rcode, Rcode::Refused);
    }
}
