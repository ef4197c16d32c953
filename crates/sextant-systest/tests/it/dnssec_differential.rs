//! Signed zones served by Sextant, NSD and Knot side by side: NSEC, NSEC3 and NSEC3
//! with Opt-Out; RSA/SHA-256, ECDSA P-256 and Ed25519; signed by dnssec-signzone,
//! ldns-signzone and Knot itself. Every class of answer (positive, NXDOMAIN, NODATA,
//! wildcard, empty non-terminal, secure and insecure delegation, DS at a cut and at
//! the apex, DNAME, CNAME into a wildcard) is asked over UDP without EDNS, and with
//! DO=1 (with AD and CD set, which an authority must clear and echo) over UDP+EDNS
//! and TCP; the sections must hold the same records, signatures and proofs.
//! Normalized: record order inside a section and owner-name case. Where NSD and Knot
//! disagree with each other, Sextant follows the one named below and the difference
//! from the other is checked, not ignored:
//! - ANY (RFC 8482 leaves the choice of RRset to the server): NSD's choice, the SOA
//!   at the apex; Knot answers with another RRset.
//! - RRSIG: every RRSIG at the name, as NSD; Knot sends one RRSIG set.
//! - Additional data: Knot's, which adds the addresses of MX and SRV targets (with
//!   their RRSIGs); NSD with `minimal-responses` leaves them out.
//! - CD: echoed, as BIND does (RFC 4035 §3.1.6 lets an authority clear it, and NSD
//!   and Knot do; no validator reads it in an authoritative answer). Checked on its
//!   own; AD is compared (never set by an authority).

use std::collections::BTreeSet;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use sextant_systest::{Lab, Peer, exchange};

use crate::dnssec_zones::{CASES, serve_signed};

/// Relative names (`@` is the apex) and types: one of every class of answer.
const QUERIES: &[(&str, RecordType)] = &[
    ("@", RecordType::SOA),
    ("@", RecordType::NS),
    ("@", RecordType::DNSKEY),
    ("@", RecordType::MX),
    ("@", RecordType::TXT),
    ("@", RecordType::NSEC3PARAM),
    ("@", RecordType::DS),
    ("@", RecordType::ANY),
    ("www", RecordType::A),
    ("WwW", RecordType::A),
    ("www", RecordType::AAAA),
    ("www", RecordType::RRSIG),
    ("www", RecordType::NSEC),
    ("nope", RecordType::A),
    ("a.b.nope", RecordType::TXT),
    ("alias", RecordType::A),
    ("alias", RecordType::CNAME),
    ("wcalias", RecordType::TXT),
    ("ent", RecordType::A),
    ("y.ent", RecordType::TXT),
    ("x.y.ent", RecordType::TXT),
    ("nope.y.ent", RecordType::A),
    ("foo.wild", RecordType::TXT),
    ("foo.wild", RecordType::A),
    ("a.b.wild", RecordType::MX),
    ("wild", RecordType::TXT),
    ("sub.wild", RecordType::TXT),
    ("secure", RecordType::NS),
    ("secure", RecordType::DS),
    ("host.secure", RecordType::A),
    ("insecure", RecordType::NS),
    ("insecure", RecordType::DS),
    ("host.insecure", RecordType::A),
    ("deep", RecordType::A),
    ("x.deep", RecordType::DS),
    ("host.x.deep", RecordType::A),
    ("dn", RecordType::DNAME),
    ("www.dn", RecordType::A),
    ("_sip._tcp", RecordType::SRV),
    ("mail", RecordType::A),
    ("big", RecordType::TXT),
];

fn query(name: &str, rtype: RecordType, edns: bool) -> Message {
    let mut message = Message::query();
    message.add_query(Query::query(
        Name::from_ascii(name).expect("a test name"),
        rtype,
    ));
    if edns {
        let mut opt = Edns::new();
        opt.set_max_payload(1232);
        opt.set_dnssec_ok(true);
        message.set_edns(opt);
        message.metadata.authentic_data = true;
        message.metadata.checking_disabled = true;
    }
    message
}

/// Which of the peers' answers Sextant's must equal for this question (see the
/// module documentation for why they differ).
fn compared_with(rtype: RecordType) -> &'static [&'static str] {
    match rtype {
        RecordType::ANY | RecordType::RRSIG => &["nsd"],
        _ => &["nsd", "knot"],
    }
}

/// Whether `ours` is `nsd`'s answer but for the addresses (and their RRSIGs) of the
/// MX and SRV targets in the additional section.
fn nsd_but_for_target_addresses(ours: &Message, nsd: &Message) -> bool {
    let targets: BTreeSet<String> = ours
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::MX(mx) => Some(mx.exchange.to_lowercase().to_string()),
            RData::SRV(srv) => Some(srv.target.to_lowercase().to_string()),
            _ => None,
        })
        .collect();
    let mut trimmed = ours.clone();
    trimmed
        .additionals
        .retain(|r| !targets.contains(&r.name.to_lowercase().to_string()));
    normalize(&trimmed) == normalize(nsd)
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
        "rcode={} aa={} tc={} ad={}",
        m.response_code, m.authoritative, m.truncation, m.authentic_data
    );
    if !m.truncation {
        for (name, records) in [
            ("answer", &message.answers),
            ("authority", &message.authorities),
            ("additional", &message.additionals),
        ] {
            text.push_str(&format!("\n  {name}:"));
            for record in section(records) {
                text.push_str(&format!("\n    {record}"));
            }
        }
    }
    text
}

#[test]
fn signed_answers_agree_with_nsd_and_knot() {
    let lab = Lab::new().expect("a lab");
    let (suite, zones) = serve_signed(&lab);
    let files: Vec<(&str, &std::path::Path)> =
        zones.iter().map(|(a, z)| (*a, z.file.as_path())).collect();
    let nsd = Peer::nsd(&lab.path().join("nsd"), &files).expect("NSD");
    let knot = Peer::knot(&lab.path().join("knot"), &files).expect("Knot");

    let mut differences = Vec::new();
    for case in CASES {
        for (relative, rtype) in QUERIES {
            let name = if *relative == "@" {
                format!("{}.", case.apex)
            } else {
                format!("{relative}.{}.", case.apex)
            };
            for (transport, edns, tcp) in [
                ("udp", false, false),
                ("udp+do", true, false),
                ("tcp+do", true, true),
            ] {
                let message = query(&name, *rtype, edns);
                let ours = exchange(suite.dns, &message, tcp);
                if let Ok(ours) = &ours
                    && ours.metadata.checking_disabled != message.metadata.checking_disabled
                {
                    differences.push(format!("{name} {rtype} over {transport}: CD not echoed"));
                }
                for (peer, addr) in [("nsd", nsd.addr), ("knot", knot.addr)] {
                    if !compared_with(*rtype).contains(&peer) {
                        continue;
                    }
                    let theirs = exchange(addr, &message, tcp);
                    if let (Ok(ours), Ok(theirs), "nsd") = (&ours, &theirs, peer)
                        && nsd_but_for_target_addresses(ours, theirs)
                    {
                        continue;
                    }
                    let text = |m: &anyhow::Result<Message>| match m {
                        Ok(m) => normalize(m),
                        Err(e) => format!("error: {e}"),
                    };
                    let (ours, theirs) = (text(&ours), text(&theirs));
                    if ours != theirs {
                        differences.push(format!(
                            "{name} {rtype} over {transport}, against {peer}:\n sextant {ours}\n {peer:<7} {theirs}"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        differences.is_empty(),
        "{} difference(s):\n{}",
        differences.len(),
        differences.join("\n")
    );
}
