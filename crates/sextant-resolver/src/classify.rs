//! What an upstream response means for the question we asked a zone's server: an
//! answer (possibly through CNAMEs), a negative answer, a referral further down, or
//! a lame/broken response to be ignored. Everything outside the zone we asked (its
//! bailiwick) is discarded here, so nothing a server says about other zones is ever
//! cached or used.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// Longest CNAME/DNAME chain followed inside one response.
const MAX_CHAIN_IN_RESPONSE: usize = 16;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Classified {
    Found(Box<Found>),
    /// Go down to `child`: its NS set and the glue we may trust.
    Referral {
        child: Name,
        ns: Vec<Record>,
        glue: Vec<Record>,
    },
    /// Nothing usable: error RCODE, upward or sideways referral, unrelated data.
    Lame(&'static str),
}

impl Classified {
    /// A few words for the debug log.
    pub(crate) fn summary(&self) -> String {
        match self {
            Classified::Referral { child, ns, glue } => {
                format!("referral to {child} ({} NS, {} glue)", ns.len(), glue.len())
            }
            Classified::Found(found) => match &found.end {
                End::Records(records) => format!(
                    "answer ({} CNAME, {} records)",
                    found.chain.len(),
                    records.len()
                ),
                End::Negative { nxdomain: true, .. } => "NXDOMAIN".into(),
                End::Negative { .. } => "NODATA".into(),
                End::Continue(target) => format!("CNAME to {target}"),
            },
            Classified::Lame(why) => format!("lame: {why}"),
        }
    }
}

/// An answer to `qname`, through `chain` (CNAMEs, in order) to `end`, with what
/// validation needs: the zone whose server answered, the answer's signatures and
/// the authority section's denial records (NSEC, NSEC3 and their signatures).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Found {
    pub chain: Vec<Record>,
    pub end: End,
    pub zone: Name,
    pub sigs: Vec<Record>,
    pub proof: Vec<Record>,
    /// DNAME records of the answer section: a CNAME synthesized from one is
    /// validated through it (RFC 6672 §5.3.3).
    pub dnames: Vec<Record>,
}

impl Found {
    fn new(chain: Vec<Record>, end: End) -> Box<Self> {
        Box::new(Self {
            chain,
            end,
            zone: Name::root(),
            sigs: Vec::new(),
            proof: Vec::new(),
            dnames: Vec::new(),
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum End {
    /// The RRset asked for (for ANY, every RRset the server gave for the name).
    Records(Vec<Record>),
    /// NXDOMAIN (`nxdomain`) or NODATA for the last name of the chain.
    Negative {
        name: Name,
        nxdomain: bool,
        soa: Option<Box<Record>>,
    },
    /// The chain leaves what this server may speak for: resolve the target afresh.
    Continue(Name),
}

/// Classifies `response` to `qname`/`qtype` from a server of `zone`.
pub(crate) fn classify(
    response: &Message,
    zone: &Name,
    qname: &Name,
    qtype: RecordType,
) -> Classified {
    let mut classified = classify_records(response, zone, qname, qtype);
    if let Classified::Found(found) = &mut classified {
        let in_zone = |record: &&Record| zone.zone_of(&record.name);
        found.zone = zone.clone();
        found.sigs = response
            .answers
            .iter()
            .filter(in_zone)
            .filter(|r| r.record_type() == RecordType::RRSIG)
            .cloned()
            .collect();
        found.dnames = response
            .answers
            .iter()
            .filter(in_zone)
            .filter(|r| r.record_type() == RecordType::DNAME)
            .cloned()
            .collect();
        found.proof = response
            .authorities
            .iter()
            .filter(in_zone)
            .filter(|r| {
                matches!(
                    r.record_type(),
                    RecordType::NSEC | RecordType::NSEC3 | RecordType::RRSIG
                )
            })
            .cloned()
            .collect();
    }
    classified
}

fn classify_records(
    response: &Message,
    zone: &Name,
    qname: &Name,
    qtype: RecordType,
) -> Classified {
    let rcode = response.metadata.response_code;
    if !matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
        return Classified::Lame("error RCODE");
    }
    let in_zone = |record: &&Record| zone.zone_of(&record.name);

    // Follow the answer section from the question name, within the bailiwick.
    let mut chain = Vec::new();
    let mut current = qname.clone();
    for _ in 0..MAX_CHAIN_IN_RESPONSE {
        let here: Vec<Record> = response
            .answers
            .iter()
            .filter(in_zone)
            .filter(|r| r.name == current)
            .cloned()
            .collect();
        let wanted: Vec<Record> = here
            .iter()
            .filter(|r| r.record_type() == qtype || qtype == RecordType::ANY)
            .cloned()
            .collect();
        if !wanted.is_empty() && rcode == ResponseCode::NoError {
            return Classified::Found(Found::new(chain, End::Records(wanted)));
        }
        let cname = here.iter().find_map(|r| match &r.data {
            RData::CNAME(target) => Some((r.clone(), target.0.clone())),
            _ => None,
        });
        let Some((record, target)) = cname.or_else(|| dname_step(response, zone, &current)) else {
            break;
        };
        if chain.iter().any(|r: &Record| r.name == record.name) {
            return Classified::Lame("CNAME loop");
        }
        chain.push(record);
        current = target;
        if !zone.zone_of(&current) {
            return Classified::Found(Found::new(chain, End::Continue(current)));
        }
    }

    let soa = response
        .authorities
        .iter()
        .filter(in_zone)
        .find(|r| r.record_type() == RecordType::SOA && r.name.zone_of(&current))
        .cloned();
    if rcode == ResponseCode::NXDomain {
        return Classified::Found(Found::new(
            chain,
            End::Negative {
                name: current,
                nxdomain: true,
                soa: soa.map(Box::new),
            },
        ));
    }
    if !chain.is_empty() && soa.is_none() && !has_ns(response) {
        // The chain stops inside the zone with nothing more said: ask for the target.
        return Classified::Found(Found::new(chain, End::Continue(current)));
    }

    // A referral: NS for a zone strictly below the one we asked, above the name.
    let ns: Vec<Record> = response
        .authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::NS)
        .filter(|r| zone.zone_of(&r.name) && r.name != *zone && r.name.zone_of(&current))
        .cloned()
        .collect();
    if soa.is_none() && response.answers.is_empty() {
        if let Some(child) = ns.first().map(|r| r.name.clone()) {
            let ns: Vec<Record> = ns.into_iter().filter(|r| r.name == child).collect();
            let glue = glue_for(response, zone, &ns);
            return Classified::Referral { child, ns, glue };
        }
        if has_ns(response) {
            return Classified::Lame("referral upwards or sideways");
        }
    }
    if response.answers.iter().any(|r| !zone.zone_of(&r.name)) && chain.is_empty() {
        return Classified::Lame("answer outside the zone asked");
    }
    if !response.answers.is_empty() && chain.is_empty() && soa.is_none() {
        return Classified::Lame("answer does not match the question");
    }
    Classified::Found(Found::new(
        chain,
        End::Negative {
            name: current,
            nxdomain: false,
            soa: soa.map(Box::new),
        },
    ))
}

fn has_ns(response: &Message) -> bool {
    response
        .authorities
        .iter()
        .any(|r| r.record_type() == RecordType::NS)
}

/// Addresses in the additional section for the referral's server names, only when
/// the name is inside the zone that gave the referral: a server may vouch for
/// addresses in its own zone and nowhere else.
fn glue_for(response: &Message, zone: &Name, ns: &[Record]) -> Vec<Record> {
    let targets: Vec<&Name> = ns
        .iter()
        .filter_map(|r| match &r.data {
            RData::NS(target) => Some(&target.0),
            _ => None,
        })
        .collect();
    let (trusted, foreign): (Vec<&Record>, Vec<&Record>) = response
        .additionals
        .iter()
        .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
        .filter(|r| targets.contains(&&r.name))
        .partition(|r| zone.zone_of(&r.name));
    if !foreign.is_empty() {
        metrics::counter!("sextant_resolver_out_of_bailiwick_total")
            .increment(foreign.len() as u64);
    }
    trusted.into_iter().cloned().collect()
}

/// A DNAME above `current` rewrites it (RFC 6672): returns the CNAME it synthesises.
fn dname_step(response: &Message, zone: &Name, current: &Name) -> Option<(Record, Name)> {
    response.answers.iter().find_map(|r| {
        if r.record_type() != RecordType::DNAME
            || !zone.zone_of(&r.name)
            || !r.name.zone_of(current)
            || r.name == *current
        {
            return None;
        }
        let RData::Unknown { rdata, .. } = &r.data else {
            return None;
        };
        let target = Name::read(&mut BinDecoder::new(&rdata.anything)).ok()?;
        let keep = usize::from(current.num_labels() - r.name.num_labels());
        let prefix = Name::from_labels(current.iter().take(keep)).ok()?;
        let rewritten = prefix.append_name(&target).ok()?;
        let synthesized = Record::from_rdata(
            current.clone(),
            r.ttl,
            RData::CNAME(hickory_proto::rr::rdata::CNAME(rewritten.clone())),
        );
        Some((synthesized, rewritten))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::Ipv4Addr;
    use std::str::FromStr;

    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::rdata::{A, CNAME, NS, NULL, SOA};
    use hickory_proto::serialize::binary::BinEncodable;

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_str(text).unwrap()
    }

    fn a(owner: &str, last: u8) -> Record {
        Record::from_rdata(
            name(owner),
            300,
            RData::A(A(Ipv4Addr::new(127, 0, 0, last))),
        )
    }

    fn cname(owner: &str, target: &str) -> Record {
        Record::from_rdata(name(owner), 300, RData::CNAME(CNAME(name(target))))
    }

    fn ns(owner: &str, target: &str) -> Record {
        Record::from_rdata(name(owner), 300, RData::NS(NS(name(target))))
    }

    fn soa(owner: &str) -> Record {
        let data = SOA::new(name("ns.test."), name("h.test."), 1, 2, 3, 4, 60);
        Record::from_rdata(name(owner), 300, RData::SOA(data))
    }

    fn response(
        rcode: ResponseCode,
        answers: Vec<Record>,
        auth: Vec<Record>,
        add: Vec<Record>,
    ) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.answers = answers;
        m.authorities = auth;
        m.additionals = add;
        m
    }

    #[test]
    fn referral_keeps_only_glue_inside_the_parent_zone() {
        let m = response(
            ResponseCode::NoError,
            vec![],
            vec![
                ns("example.test.", "ns1.example.test."),
                ns("example.test.", "ns.other."),
            ],
            vec![
                a("ns1.example.test.", 3),
                a("ns.other.", 66),
                a("unrelated.test.", 9),
            ],
        );
        let Classified::Referral { child, ns, glue } = classify(
            &m,
            &name("test."),
            &name("www.example.test."),
            RecordType::A,
        ) else {
            panic!("not a referral");
        };
        assert_eq!(child, name("example.test."));
        assert_eq!(ns.len(), 2);
        assert_eq!(glue, vec![a("ns1.example.test.", 3)]);
    }

    #[test]
    fn answers_follow_cnames_inside_the_zone_and_stop_at_its_edge() {
        let m = response(
            ResponseCode::NoError,
            vec![
                cname("www.example.test.", "web.example.test."),
                a("web.example.test.", 1),
            ],
            vec![],
            vec![],
        );
        let Classified::Found(found) = classify(
            &m,
            &name("example.test."),
            &name("www.example.test."),
            RecordType::A,
        ) else {
            panic!()
        };
        assert_eq!(found.chain.len(), 1);
        assert_eq!(found.end, End::Records(vec![a("web.example.test.", 1)]));

        // The target's address from another zone is not believed, only followed.
        let m = response(
            ResponseCode::NoError,
            vec![
                cname("www.example.test.", "www.other."),
                a("www.other.", 66),
            ],
            vec![],
            vec![],
        );
        let Classified::Found(found) = classify(
            &m,
            &name("example.test."),
            &name("www.example.test."),
            RecordType::A,
        ) else {
            panic!()
        };
        assert_eq!(found.end, End::Continue(name("www.other.")));
    }

    #[test]
    fn negative_answers_carry_the_soa() {
        let m = response(
            ResponseCode::NXDomain,
            vec![],
            vec![soa("example.test.")],
            vec![],
        );
        let Classified::Found(found) = classify(
            &m,
            &name("example.test."),
            &name("nope.example.test."),
            RecordType::A,
        ) else {
            panic!()
        };
        assert_eq!(
            found.end,
            End::Negative {
                name: name("nope.example.test."),
                nxdomain: true,
                soa: Some(Box::new(soa("example.test."))),
            }
        );
        let m = response(
            ResponseCode::NoError,
            vec![],
            vec![soa("example.test.")],
            vec![],
        );
        let Classified::Found(found) = classify(
            &m,
            &name("example.test."),
            &name("www.example.test."),
            RecordType::AAAA,
        ) else {
            panic!()
        };
        assert!(matches!(
            found.end,
            End::Negative {
                nxdomain: false,
                ..
            }
        ));
    }

    #[test]
    fn lame_and_foreign_responses_are_rejected() {
        let upward = response(
            ResponseCode::NoError,
            vec![],
            vec![ns(".", "a.root.")],
            vec![],
        );
        assert!(matches!(
            classify(
                &upward,
                &name("example.test."),
                &name("www.example.test."),
                RecordType::A
            ),
            Classified::Lame(_)
        ));
        let refused = response(ResponseCode::Refused, vec![], vec![], vec![]);
        assert!(matches!(
            classify(
                &refused,
                &name("test."),
                &name("www.example.test."),
                RecordType::A
            ),
            Classified::Lame(_)
        ));
        let foreign = response(
            ResponseCode::NoError,
            vec![a("www.victim.", 66)],
            vec![],
            vec![],
        );
        assert!(matches!(
            classify(
                &foreign,
                &name("example.test."),
                &name("www.example.test."),
                RecordType::A
            ),
            Classified::Lame(_)
        ));
    }

    #[test]
    fn dname_rewrites_the_rest_of_the_name() {
        let mut target = Vec::new();
        {
            let mut encoder = hickory_proto::serialize::binary::BinEncoder::new(&mut target);
            name("new.test.").emit(&mut encoder).unwrap();
        }
        let dname = Record::from_rdata(
            name("old.test."),
            300,
            RData::Unknown {
                code: RecordType::DNAME,
                rdata: NULL::with(target),
            },
        );
        let m = response(ResponseCode::NoError, vec![dname], vec![], vec![]);
        let Classified::Found(found) =
            classify(&m, &name("test."), &name("www.old.test."), RecordType::A)
        else {
            panic!()
        };
        assert_eq!(found.chain[0].data.to_string(), "www.new.test.");
        assert_eq!(found.end, End::Continue(name("www.new.test.")));
    }
}
