//! The same tricky zones served by Sextant and by NSD, the same query battery over UDP
//! (with and without EDNS) and TCP; the normalized responses must match. Normalized:
//! record order inside a section, owner-name case, and the records of truncated (TC)
//! responses, which RFC 2181 §9 leaves to the server.
//!
//! NSD runs with `minimal-responses: yes`, the mode Sextant follows (no NS RRset in
//! the authority section of positive answers, as Knot and Unbound do). One documented
//! difference remains, checked rather than ignored: Sextant adds the A/AAAA records of
//! NS, MX and SRV targets that any zone served here holds (RFC 1035 §3.3.9-style
//! additional processing); NSD adds only in-zone NS glue.

use std::collections::BTreeSet;

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use sextant_systest::{Lab, Peer, exchange, question_with};

const TRICKY: &str = r#"$ORIGIN tricky.test.
$TTL 3600
@           SOA   ns1 hostmaster 2026112101 7200 3600 1209600 300
@           NS    ns1
@           NS    ns.other.test.
@           MX    10 mail
@           TXT   "apex text"
ns1         A     192.0.2.1
mail        A     192.0.2.25
mail        AAAA  2001:db8::25
www         A     192.0.2.80
MiXeD       A     192.0.2.99
alias       CNAME www
chain1      CNAME chain2
chain2      CNAME alias
crossalias  CNAME www.other.test.
outside     CNAME www.example.net.
loop1       CNAME loop2
loop2       CNAME loop1
x.y.z.ent   TXT   "deep"
*.wild      TXT   "wildcard"
*.wild      MX    10 mail
sub.wild    A     192.0.2.7
*.cnamewild CNAME www
deleg       NS    ns1.deleg
deleg       NS    ns.other.test.
ns1.deleg   A     192.0.2.53
below.deleg A     192.0.2.54
deleg       DS    \# 7 0001080201abcd
dn          DNAME other.test.
_sip._tcp   SRV   0 5 5060 sip
sip         A     192.0.2.60
unk         TYPE65534 \# 3 abcdef
a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.long A 192.0.2.200
foo_bar     A     192.0.2.101
esc\065    A     192.0.2.103
upper       CNAME Target.Example.NET.
upmx        MX    10 Mx.Example.NET.
"#;

const OTHER: &str = r#"$ORIGIN other.test.
$TTL 600
@    SOA ns hostmaster 7 7200 3600 1209600 60
@    NS  ns
ns   A   198.51.100.53
www  A   198.51.100.1
"#;

fn big_txt() -> String {
    (0..40)
        .map(|i| {
            format!("big TXT \"string {i:02} padded to make the RRset long enough to need TCP\"\n")
        })
        .collect()
}

const BATTERY: &[(&str, RecordType)] = &[
    ("tricky.test.", RecordType::SOA),
    ("tricky.test.", RecordType::NS),
    ("tricky.test.", RecordType::MX),
    ("tricky.test.", RecordType::TXT),
    ("www.tricky.test.", RecordType::A),
    ("WWW.Tricky.TEST.", RecordType::A),
    ("mixed.tricky.test.", RecordType::A),
    // Names as RFC 1035 and NSD read them: `_` inside a label, `\DDD` decimal,
    // the case of names in data kept (NSD keeps a name's first spelling in the
    // zone, so these targets appear nowhere else).
    ("foo_bar.tricky.test.", RecordType::A),
    ("escA.tricky.test.", RecordType::A),
    ("upper.tricky.test.", RecordType::A),
    ("upper.tricky.test.", RecordType::CNAME),
    ("upmx.tricky.test.", RecordType::MX),
    ("www.tricky.test.", RecordType::AAAA),
    ("nope.tricky.test.", RecordType::A),
    ("alias.tricky.test.", RecordType::A),
    ("alias.tricky.test.", RecordType::CNAME),
    ("chain1.tricky.test.", RecordType::A),
    ("crossalias.tricky.test.", RecordType::A),
    ("outside.tricky.test.", RecordType::A),
    ("loop1.tricky.test.", RecordType::A),
    ("z.ent.tricky.test.", RecordType::A),
    ("ent.tricky.test.", RecordType::TXT),
    ("x.y.z.ent.tricky.test.", RecordType::TXT),
    ("nope.z.ent.tricky.test.", RecordType::TXT),
    ("foo.wild.tricky.test.", RecordType::TXT),
    ("foo.wild.tricky.test.", RecordType::A),
    ("foo.wild.tricky.test.", RecordType::MX),
    ("a.b.wild.tricky.test.", RecordType::TXT),
    ("wild.tricky.test.", RecordType::TXT),
    ("sub.wild.tricky.test.", RecordType::TXT),
    ("a.sub.wild.tricky.test.", RecordType::A),
    ("x.cnamewild.tricky.test.", RecordType::A),
    ("deleg.tricky.test.", RecordType::NS),
    ("deleg.tricky.test.", RecordType::A),
    ("host.deleg.tricky.test.", RecordType::A),
    ("below.deleg.tricky.test.", RecordType::A),
    ("ns1.deleg.tricky.test.", RecordType::A),
    ("deleg.tricky.test.", RecordType::DS),
    ("dn.tricky.test.", RecordType::DNAME),
    ("www.dn.tricky.test.", RecordType::A),
    ("nope.dn.tricky.test.", RecordType::A),
    ("_sip._tcp.tricky.test.", RecordType::SRV),
    ("unk.tricky.test.", RecordType::Unknown(65534)),
    ("www.tricky.test.", RecordType::Unknown(65534)),
    (
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.long.tricky.test.",
        RecordType::A,
    ),
    (
        "m.n.o.p.q.r.s.t.u.v.w.x.y.z.long.tricky.test.",
        RecordType::A,
    ),
    ("big.tricky.test.", RecordType::TXT),
    ("www.tricky.test.", RecordType::ANY),
    ("tricky.test.", RecordType::ANY),
    ("foo.wild.tricky.test.", RecordType::ANY),
    ("nope.tricky.test.", RecordType::ANY),
    ("www.other.test.", RecordType::A),
    ("nope.other.test.", RecordType::A),
];

/// The additional records Sextant may add beyond NSD's: addresses of the NS, MX and
/// SRV targets named in the answer.
fn extra_additional_allowed(ours: &Message, theirs: &Message) -> bool {
    let targets: BTreeSet<String> = ours
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::NS(ns) => Some(ns.0.to_lowercase().to_string()),
            RData::MX(mx) => Some(mx.exchange.to_lowercase().to_string()),
            RData::SRV(srv) => Some(srv.target.to_lowercase().to_string()),
            _ => None,
        })
        .collect();
    let theirs: BTreeSet<String> = theirs.additionals.iter().map(|r| format!("{r}")).collect();
    let ours_all: BTreeSet<String> = ours.additionals.iter().map(|r| format!("{r}")).collect();
    theirs.is_subset(&ours_all)
        && ours.additionals.iter().all(|r| {
            theirs.contains(&format!("{r}"))
                || r.record_type() == RecordType::OPT
                || (matches!(r.record_type(), RecordType::A | RecordType::AAAA)
                    && targets.contains(&r.name.to_lowercase().to_string()))
        })
}

/// The parts of a response that must agree, in a comparable form.
fn normalize(message: &Message) -> String {
    let section = |records: &[hickory_proto::rr::Record]| -> BTreeSet<String> {
        records
            .iter()
            .filter(|r| r.record_type() != RecordType::OPT)
            .map(|r| {
                format!(
                    "{} {} {} {}",
                    r.name.to_lowercase(),
                    r.ttl,
                    r.record_type(),
                    r.data
                )
            })
            .collect()
    };
    let m = &message.metadata;
    let mut text = format!(
        "rcode={} aa={} tc={} question={:?}",
        m.response_code,
        m.authoritative,
        m.truncation,
        message.queries.first().map(|q| q.name().to_string())
    );
    if !m.truncation {
        text.push_str(&format!(
            "\n  answer={:?}\n  authority={:?}\n  additional={:?}",
            section(&message.answers),
            section(&message.authorities),
            section(&message.additionals)
        ));
    }
    text
}

#[test]
fn sextant_answers_like_nsd() {
    let lab = Lab::new().unwrap();
    let tricky = format!("{TRICKY}{}", big_txt());
    let config = lab
        .suite_config(&[("tricky.test", &tricky), ("other.test", OTHER)], "")
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let nsd_dir = lab.path().join("nsd");
    std::fs::create_dir_all(&nsd_dir).unwrap();
    let nsd = Peer::nsd(
        &nsd_dir,
        &[
            ("tricky.test", &lab.path().join("zones/tricky.test.zone")),
            ("other.test", &lab.path().join("zones/other.test.zone")),
        ],
    )
    .unwrap();

    let mut differences = Vec::new();
    for (name, rtype) in BATTERY {
        for (transport, edns, tcp) in [
            ("udp+edns", Some(1232), false),
            ("udp", None, false),
            ("tcp", Some(1232), true),
        ] {
            let message = question_with(name, *rtype, edns).unwrap();
            let mut ours = exchange(suite.dns, &message, tcp).unwrap();
            let theirs = exchange(nsd.addr, &message, tcp).unwrap();
            if extra_additional_allowed(&ours, &theirs) {
                ours.additionals = theirs.additionals.clone();
            }
            let (ours, theirs) = (normalize(&ours), normalize(&theirs));
            if ours != theirs {
                differences.push(format!(
                    "{name} {rtype} over {transport}:\n sextant {ours}\n nsd     {theirs}"
                ));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "{} difference(s) from NSD:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
