//! Zones the authority signs itself (`dnssec_policy`), judged by the real tools:
//! `dnssec-verify` (bind9-utils) and `ldns-verify-zone` (ldnsutils) on an AXFR of
//! each zone, and `delv` with the zone's key-signing key as trust anchor on an
//! answer of every class. Keys and signatures survive a restart unchanged, and a
//! change re-signs only what it touches, under a new serial.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sextant_systest::{Lab, dig, eventually};

use crate::dnssec_zones::zone_text;

/// A zone per way of signing: apex, algorithm, key split, denial, Opt-Out.
const POLICIES: &[(&str, &str, &str, &str, bool)] = &[
    ("csk.test", "ecdsap256sha256", "csk", "nsec3", false),
    ("split.test", "ed25519", "ksk-zsk", "nsec", false),
    ("rsa.test", "rsasha256", "ksk-zsk", "nsec3", true),
];

/// Relative names and types whose answers must validate (as in
/// dnssec_validation.rs, against zones signed by BIND, ldns and Knot).
const QUESTIONS: &[(&str, &str)] = &[
    ("@", "SOA"),
    ("@", "DNSKEY"),
    ("@", "NS"),
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
    ("sub.wild", "TXT"),
    ("secure", "DS"),
    ("insecure", "DS"),
    ("deep", "A"),
    ("dn", "DNAME"),
    ("big", "TXT"),
];

fn config(lab: &Lab) -> std::path::PathBuf {
    let mut text = String::from(
        "[log]\nlevel = \"info\"\n\n[listener]\nlisten = [\"127.0.0.1:0\"]\nready_file = \"listener.ready.json\"\n\n\
         [authority]\ngrpc = \"unix:authority.sock\"\nready_file = \"authority.ready.json\"\n\
         state_dir = \"state\"\nallow_transfer = [\"127.0.0.0/8\"]\n",
    );
    for (apex, algorithm, keys, denial, opt_out) in POLICIES {
        let file = format!("zones/{apex}.zone");
        lab.write(&file, &zone_text(apex)).unwrap();
        text.push_str(&format!(
            "\n[[authority.zone]]\nname = \"{apex}\"\nfile = \"{file}\"\ndnssec_policy = \"{apex}\"\n"
        ));
        text.push_str(&format!(
            "\n[[dnssec_policy]]\nname = \"{apex}\"\nalgorithm = \"{algorithm}\"\nkeys = \"{keys}\"\ndenial = \"{denial}\"\nnsec3_opt_out = {opt_out}\nnsec3_salt_length = 4\n"
        ));
    }
    lab.write("sextant.toml", &text).unwrap()
}

/// The zone as an AXFR gives it, one SOA, in master-file form.
fn axfr(server: std::net::SocketAddr, apex: &str) -> String {
    let text = dig(
        server,
        &[apex, "AXFR", "+onesoa", "+nocmd", "+nostats", "+time=5"],
    )
    .unwrap();
    assert!(text.contains("RRSIG"), "{apex}: no signed AXFR:\n{text}");
    text
}

fn run(command: &mut Command) -> (bool, String) {
    let output = command
        .output()
        .expect("the tool (see .ci/run for packages)");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// `dnssec-verify` and `ldns-verify-zone` both accept the zone in `file`.
fn assert_tools_verify(apex: &str, file: &Path) {
    // A combined signing key has the KSK flag and signs everything: -z tells
    // dnssec-verify not to expect a separate key without it.
    let csk = POLICIES.iter().any(|p| p.0 == apex && p.2 == "csk");
    let mut verify = Command::new("dnssec-verify");
    if csk {
        verify.arg("-z");
    }
    let (ok, output) = run(verify.args(["-o", apex]).arg(file));
    assert!(ok, "dnssec-verify {apex}:\n{output}");
    let (ok, output) = run(Command::new("ldns-verify-zone").arg(file));
    assert!(ok, "ldns-verify-zone {apex}:\n{output}");
}

/// The key-signing key's DNSKEY line (flags 257) from an AXFR.
fn ksk(axfr: &str) -> (String, String) {
    let line = axfr
        .lines()
        .find(|l| l.contains("\tDNSKEY\t257 ") || l.contains(" DNSKEY 257 "))
        .expect("a key-signing key");
    let fields: Vec<&str> = line.split_whitespace().collect();
    // owner TTL class DNSKEY flags protocol algorithm key...
    let rdata = &fields[4..];
    (
        format!("{} {} {}", rdata[0], rdata[1], rdata[2]),
        rdata[3..].join(""),
    )
}

fn delv_verdict(
    lab: &Lab,
    server: std::net::SocketAddr,
    apex: &str,
    axfr: &str,
    name: &str,
    rtype: &str,
) -> String {
    let (head, key) = ksk(axfr);
    let anchor = lab
        .write(
            &format!("{apex}.anchor"),
            &format!("trust-anchors {{\n  {apex}. static-key {head} \"{key}\";\n}};\n"),
        )
        .unwrap();
    let (_, output) = run(Command::new("delv")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "-a"])
        .arg(&anchor)
        .arg(format!("+root={apex}"))
        .args([name, rtype]));
    output
        .lines()
        .find(|line| line.starts_with("; "))
        .unwrap_or("(no verdict)")
        .to_string()
}

/// A DS record's data as "TAG ALG TYPE DIGEST", the digest upper case in one
/// piece (tools split and case it differently).
fn normal_ds(text: &str) -> String {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() < 4 {
        return text.to_string();
    }
    format!(
        "{} {} {} {}",
        fields[0],
        fields[1],
        fields[2],
        fields[3..].concat().to_ascii_uppercase()
    )
}

fn serial(server: std::net::SocketAddr, apex: &str) -> u32 {
    dig(server, &[apex, "SOA", "+short"])
        .unwrap()
        .split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .expect("a serial")
}

#[test]
fn zones_signed_by_each_policy_pass_dnssec_verify_ldns_and_delv() {
    let lab = Lab::new().unwrap();
    let config = config(&lab);
    let suite = lab.start_suite(&config).unwrap();
    let mut failures = Vec::new();
    for (apex, ..) in POLICIES {
        let text = axfr(suite.dns, apex);
        let file = lab.write(&format!("{apex}.axfr"), &text).unwrap();
        assert_tools_verify(apex, &file);
        for (relative, rtype) in QUESTIONS {
            let name = if *relative == "@" {
                format!("{apex}.")
            } else {
                format!("{relative}.{apex}.")
            };
            let verdict = delv_verdict(&lab, suite.dns, apex, &text, &name, rtype);
            let validated =
                verdict == "; fully validated" || verdict == "; negative response, fully validated";
            // An Opt-Out span may hide an unsigned delegation: a wildcard answer
            // whose next closer name falls in one is provably only insecure.
            let opt_out_wildcard =
                *apex == "rsa.test" && relative.ends_with("wild") && verdict == "; unsigned answer";
            if !(validated || opt_out_wildcard) {
                failures.push(format!("{name} {rtype}: {verdict}"));
            }
        }
        // The DS the parent needs, three ways: as sextantctl says, as the CDS the
        // zone publishes, and as BIND's dnssec-dsfromkey computes it from the
        // DNSKEY served.
        let status =
            sextant_systest::sextantctl(&config, &["dnssec", "status", apex, "--json"]).unwrap();
        assert!(status.status.success(), "{status:?}");
        let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        let ours: Vec<String> = json[0]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|k| k["ds"].as_str().filter(|d| !d.is_empty()).map(normal_ds))
            .collect();
        let cds: Vec<String> = dig(suite.dns, &[apex, "CDS", "+short"])
            .unwrap()
            .lines()
            .map(normal_ds)
            .collect();
        let (ok, computed) = run(Command::new("dnssec-dsfromkey")
            .args(["-2", "-f"])
            .arg(&file)
            .arg(apex));
        assert!(ok, "dnssec-dsfromkey: {computed}");
        let computed: Vec<String> = computed
            .lines()
            .filter_map(|l| l.split_once(" DS ").map(|(_, ds)| normal_ds(ds)))
            .collect();
        assert_eq!(ours.len(), 1, "{json}");
        assert_eq!(ours, cds, "{apex}: sextantctl vs CDS");
        assert_eq!(ours, computed, "{apex}: sextantctl vs dnssec-dsfromkey");
        let table = sextant_systest::sextantctl(&config, &["dnssec", "status", apex]).unwrap();
        let table = String::from_utf8_lossy(&table.stdout).into_owned();
        assert!(
            table.contains(&format!("DS for the parent: {apex}. IN DS ")),
            "{table}"
        );
        // The keys are private to the authority.
        let dir = lab.path().join("state/dnssec").join(apex);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "pkcs8") {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", path.display());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "not validated:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_restart_keeps_keys_and_signatures_and_a_change_re_signs_only_what_it_touches() {
    let lab = Lab::new().unwrap();
    let config = config(&lab);
    let apex = "csk.test";
    let suite = lab.start_suite(&config).unwrap();
    let before = axfr(suite.dns, apex);
    let first_serial = serial(suite.dns, apex);
    drop(suite);

    // Restarted: the same version, signatures and all (nothing re-signed, so a
    // secondary has nothing to transfer).
    let suite = lab.start_suite(&config).unwrap();
    let mut a: Vec<&str> = before.lines().collect();
    let again = axfr(suite.dns, apex);
    let mut b: Vec<&str> = again.lines().collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "the zone changed across a restart");
    assert!(
        suite
            .authority
            .as_ref()
            .unwrap()
            .log_text()
            .contains("made=0"),
        "signatures were made again after a restart"
    );

    // One address changes: a new serial, the zone still verifies, and an IXFR from
    // the old serial carries the changed A, its signature, the SOA and its
    // signature, not the zone.
    let zone = lab.path().join(format!("zones/{apex}.zone"));
    let text = zone_text(apex).replace("192.0.2.80", "192.0.2.81");
    std::fs::write(&zone, text).unwrap();
    let pid = suite.authority.as_ref().unwrap().pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    eventually(Duration::from_secs(10), "the change served", || {
        dig(suite.dns, &[&format!("www.{apex}"), "A", "+short"])
            .unwrap()
            .contains("192.0.2.81")
    })
    .unwrap();
    let new_serial = serial(suite.dns, apex);
    assert_eq!(new_serial, first_serial + 1);
    let after = axfr(suite.dns, apex);
    let file = lab.write("after.axfr", &after).unwrap();
    assert_tools_verify(apex, &file);
    let ixfr = dig(
        suite.dns,
        &[
            apex,
            &format!("IXFR={first_serial}"),
            "+nocmd",
            "+nostats",
            "+tcp",
        ],
    )
    .unwrap();
    let records = ixfr
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .count();
    // SOA, old SOA + RRSIG, old A + RRSIG, SOA, new SOA + RRSIG, new A + RRSIG, SOA.
    assert!(records <= 12, "the IXFR has {records} records:\n{ixfr}");
    assert!(ixfr.contains("192.0.2.81"), "{ixfr}");
}
