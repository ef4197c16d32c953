//! A validator accepts every class of signed answer Sextant gives: `delv`
//! (bind9-dnsutils), with each zone's key-signing key as its trust anchor, asks the
//! listener and must print "fully validated" (positive answers) or "negative
//! response, fully validated" (NXDOMAIN and NODATA, whose proofs it checks), and the
//! same verdict as for NSD serving the same zone. One verdict is the zone's, not the
//! server's: in an NSEC3 Opt-Out zone a wildcard answer whose next closer name falls
//! in an Opt-Out span can only be proven insecure (an unsigned delegation could
//! exist there, RFC 5155 §7.2.6), which delv reports as "unsigned answer".

use std::process::Command;

use sextant_systest::{Lab, Peer};

use crate::dnssec_zones::serve_signed;

/// Relative names (`@` is the apex) and types whose answers must validate.
pub(crate) const QUESTIONS: &[(&str, &str)] = &[
    ("@", "SOA"),
    ("@", "DNSKEY"),
    ("@", "TXT"),
    ("@", "MX"),
    ("www", "A"),
    ("www", "AAAA"),
    ("nope", "A"),
    ("a.b.nope", "TXT"),
    ("alias", "A"),
    ("wcalias", "TXT"),
    ("y.ent", "TXT"),
    ("nope.y.ent", "A"),
    ("foo.wild", "TXT"),
    ("foo.wild", "A"),
    ("a.b.wild", "MX"),
    ("sub.wild", "TXT"),
    ("secure", "DS"),
    ("insecure", "DS"),
    ("x.deep", "DS"),
    ("deep", "A"),
    ("dn", "DNAME"),
    ("_sip._tcp", "SRV"),
    ("big", "TXT"),
];

#[test]
fn delv_fully_validates_every_class_of_answer() {
    let lab = Lab::new().expect("a lab");
    let (suite, zones) = serve_signed(&lab);
    let files: Vec<(&str, &std::path::Path)> =
        zones.iter().map(|(a, z)| (*a, z.file.as_path())).collect();
    let nsd = Peer::nsd(&lab.path().join("nsd"), &files).expect("NSD");
    let mut failures = Vec::new();
    for (apex, signed) in &zones {
        let mut fields = signed.anchor.splitn(4, ' ');
        let (flags, protocol, algorithm, key) = (
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
        );
        let anchor = lab
            .write(
                &format!("{apex}.anchor"),
                &format!(
                    "trust-anchors {{\n  {apex}. static-key {flags} {protocol} {algorithm} \"{key}\";\n}};\n"
                ),
            )
            .expect("the anchor file");
        for (relative, rtype) in QUESTIONS {
            let name = if *relative == "@" {
                format!("{apex}.")
            } else {
                format!("{relative}.{apex}.")
            };
            let delv = |server: std::net::SocketAddr| {
                let output = Command::new("delv")
                    .arg(format!("@{}", server.ip()))
                    .args(["-p", &server.port().to_string(), "-a"])
                    .arg(&anchor)
                    .arg(format!("+root={apex}"))
                    .args([name.as_str(), rtype])
                    .output()
                    .expect("delv (apt-get install bind9-dnsutils)");
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )
            };
            let (ours, theirs) = (delv(suite.dns), delv(nsd.addr));
            let validated = verdict(&ours) == "; fully validated"
                || verdict(&ours) == "; negative response, fully validated";
            let opt_out_wildcard = *apex == "optout.test"
                && relative.ends_with("wild")
                && verdict(&ours) == "; unsigned answer";
            if verdict(&ours) != verdict(&theirs) || !(validated || opt_out_wildcard) {
                failures.push(format!(
                    "{name} {rtype}:\n{ours}\n(NSD: {})",
                    verdict(&theirs)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} answer(s) did not validate:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// delv's verdict: its first comment line.
fn verdict(output: &str) -> &str {
    output
        .lines()
        .find(|line| line.starts_with("; "))
        .unwrap_or("(no verdict)")
}
