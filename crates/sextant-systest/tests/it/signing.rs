//! Zones the authority signs itself (`dnssec_policy`), judged by the real tools:
//! `dnssec-verify` (bind9-utils) and `ldns-verify-zone` (ldnsutils) on an AXFR of
//! each zone, and `delv` with the zone's key-signing key as trust anchor on an
//! answer of every class. Keys and signatures survive a restart unchanged, and a
//! change re-signs only what it touches, under a new serial.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sextant_systest::{Lab, dig, eventually};

use crate::dnssec_validation::QUESTIONS;
use crate::dnssec_zones::zone_text;

/// A zone per way of signing: apex, algorithm, key split, denial, Opt-Out.
const POLICIES: &[(&str, &str, &str, &str, bool)] = &[
    ("csk.test", "ecdsap256sha256", "csk", "nsec3", false),
    ("split.test", "ed25519", "ksk-zsk", "nsec", false),
    ("rsa.test", "rsasha256", "ksk-zsk", "nsec3", true),
];

/// A listener and an authority with a state directory for keys, allowing
/// transfers to loopback (the AXFRs the tools judge); zones and policies follow.
const SUITE: &str = "[log]\nlevel = \"info\"\n\n[listener]\nlisten = [\"127.0.0.1:0\"]\nready_file = \"listener.ready.json\"\n\n\
     [authority]\ngrpc = \"unix:authority.sock\"\nready_file = \"authority.ready.json\"\n\
     state_dir = \"state\"\nallow_transfer = [\"127.0.0.0/8\"]\n";

fn config(lab: &Lab) -> std::path::PathBuf {
    let mut text = String::from(SUITE);
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
    // Signed as a change (the names around it only), not as a whole zone.
    let log = suite.authority.as_ref().unwrap().log_text();
    assert!(log.contains("zone change signed"), "{log}");

    // Names added below empty non-terminals and one removed: the chain moves
    // around them, the zone verifies, delv validates the new name and the
    // absence of the old one.
    let text = zone_text(apex).replace("192.0.2.80", "192.0.2.81")
        + "a.b.c.deep A 192.0.2.90\nx.y.www TXT \"below\"\n";
    std::fs::write(&zone, text).unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    eventually(Duration::from_secs(10), "the second change served", || {
        dig(suite.dns, &[&format!("a.b.c.deep.{apex}"), "A", "+short"])
            .unwrap()
            .contains("192.0.2.90")
    })
    .unwrap();
    assert_eq!(serial(suite.dns, apex), first_serial + 2);
    let changed = axfr(suite.dns, apex);
    let file = lab.write("changed.axfr", &changed).unwrap();
    assert_tools_verify(apex, &file);
    assert_eq!(
        delv_verdict(
            &lab,
            suite.dns,
            apex,
            &changed,
            &format!("a.b.c.deep.{apex}."),
            "A"
        ),
        "; fully validated"
    );
    let ent = delv_verdict(
        &lab,
        suite.dns,
        apex,
        &changed,
        &format!("c.deep.{apex}."),
        "A",
    );
    assert!(
        ent.contains("negative response, fully validated"),
        "an empty non-terminal's proof: {ent}"
    );
    let log = suite.authority.as_ref().unwrap().log_text();
    assert!(
        !log.contains("zone change signed with the whole zone"),
        "a change was signed whole:\n{log}"
    );
    drop(suite);

    // Restarted after the changes: the version served before, read back from the
    // whole signed version and the changes appended to it; nothing signed again.
    let suite = lab.start_suite(&config).unwrap();
    let mut served: Vec<&str> = changed.lines().collect();
    let restarted = axfr(suite.dns, apex);
    let mut read_back: Vec<&str> = restarted.lines().collect();
    served.sort_unstable();
    read_back.sort_unstable();
    assert_eq!(
        served, read_back,
        "the changed zone changed across a restart"
    );
    assert!(
        suite
            .authority
            .as_ref()
            .unwrap()
            .log_text()
            .contains("made=0"),
        "signatures were made again after a restart"
    );
}

/// One zone signed with a moved clock, step by step through a rollover: the
/// authority restarted at each step with `SEXTANT_SIGNER_CLOCK_OFFSET`, each step's
/// zone judged by `ldns-verify-zone` and by a fresh Unbound, both at the moved
/// date, Unbound validating from the DS the parent has at that moment.
struct RolloverLab {
    lab: Lab,
    config: std::path::PathBuf,
    apex: &'static str,
    suite: Option<sextant_systest::Suite>,
    offset: u64,
}

const DAY: u64 = 86_400;

impl RolloverLab {
    fn new(apex: &'static str, policy: &str) -> Self {
        let lab = Lab::new().unwrap();
        let file = format!("zones/{apex}.zone");
        lab.write(&file, &zone_text(apex)).unwrap();
        let config = lab
            .write(
                "sextant.toml",
                &format!(
                    "{SUITE}\n[[authority.zone]]\nname = \"{apex}\"\nfile = \"{file}\"\ndnssec_policy = \"roll\"\n\n\
                     [[dnssec_policy]]\nname = \"roll\"\nalgorithm = \"ed25519\"\n{policy}"
                ),
            )
            .unwrap();
        Self {
            lab,
            config,
            apex,
            suite: None,
            offset: 0,
        }
    }

    /// Restarts the authority (and listener) with the clock `offset` seconds ahead.
    fn at(&mut self, offset: u64) -> std::net::SocketAddr {
        self.suite = None;
        self.offset = offset;
        let text = offset.to_string();
        let authority = self
            .lab
            .start_authority_with_env(&self.config, &[("SEXTANT_SIGNER_CLOCK_OFFSET", &text)])
            .unwrap();
        let (listener, dns) = self.lab.start_listener(&self.config).unwrap();
        self.suite = Some(sextant_systest::Suite {
            transfer: None,
            authority: Some(authority),
            resolver: None,
            listener,
            dns,
        });
        dns
    }

    fn dns(&self) -> std::net::SocketAddr {
        self.suite.as_ref().unwrap().dns
    }

    /// The keys as `sextantctl dnssec status --json` lists them: (role, tag, state).
    fn keys(&self) -> Vec<(String, u64, String)> {
        let output =
            sextant_systest::sextantctl(&self.config, &["dnssec", "status", self.apex, "--json"])
                .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        json[0]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["role"].as_str().unwrap().to_string(),
                    k["tag"].as_u64().unwrap(),
                    k["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The DS of key `tag` as `sextantctl` gives it, for Unbound's anchor.
    fn ds(&self, tag: u64) -> String {
        let output =
            sextant_systest::sextantctl(&self.config, &["dnssec", "status", self.apex, "--json"])
                .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let ds = json[0]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["tag"].as_u64() == Some(tag))
            .and_then(|k| k["ds"].as_str())
            .unwrap()
            .to_string();
        format!("{}. DS {ds}", self.apex)
    }

    /// The zone at this step passes dnssec-verify and validates in Unbound from
    /// the parent's DS `anchor`: a name, its absence, and the DNSKEY RRset.
    fn assert_valid(&self, step: &str, anchor: &str) {
        let text = axfr(self.dns(), self.apex);
        let file = self.lab.write(&format!("{step}.axfr"), &text).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + self.offset;
        let date =
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(now))
                .to_string()
                .replace(['-', ':', 'T', 'Z'], "");
        // dnssec-verify judges signatures at the real date; ldns-verify-zone can be
        // told the moved one.
        let (ok, output) = run(Command::new("ldns-verify-zone")
            .args(["-t", &date])
            .arg(&file));
        assert!(ok, "{step}: ldns-verify-zone -t {date}:\n{output}");
        let unbound = sextant_systest::Peer::unbound_validating_stub(
            &self.lab.path().join(format!("unbound-{step}")),
            self.apex,
            self.dns(),
            anchor,
            &date,
        )
        .unwrap();
        for (name, rtype, rcode) in [
            (format!("www.{}", self.apex), "A", "NOERROR"),
            (format!("nope.{}", self.apex), "A", "NXDOMAIN"),
            (self.apex.to_string(), "DNSKEY", "NOERROR"),
        ] {
            let answer = dig(unbound.addr, &[&name, rtype, "+dnssec"]).unwrap();
            assert!(
                answer.contains(&format!("status: {rcode}")) && answer.contains(" ad;"),
                "{step}: {name} {rtype} not validated by Unbound (anchor {anchor}):\n{answer}"
            );
        }
    }
}

#[test]
fn a_zsk_rollover_validates_at_every_step() {
    let mut roll = RolloverLab::new(
        "zskroll.test",
        "keys = \"ksk-zsk\"\ndenial = \"nsec3\"\nzsk_lifetime = \"30d\"\n",
    );
    roll.at(0);
    let keys = roll.keys();
    let ksk = keys.iter().find(|k| k.0 == "ksk").unwrap().1;
    let old_zsk = keys.iter().find(|k| k.0 == "zsk").unwrap().1;
    let anchor = roll.ds(ksk);
    roll.assert_valid("start", &anchor);

    // The lifetime is over: a successor is published, not yet signing.
    roll.at(30 * DAY + 60);
    let keys = roll.keys();
    assert_eq!(keys.len(), 3, "{keys:?}");
    let new_zsk = keys
        .iter()
        .find(|k| k.0 == "zsk" && k.1 != old_zsk)
        .unwrap()
        .1;
    assert!(
        keys.iter().any(|k| k.1 == new_zsk && k.2 == "published"),
        "{keys:?}"
    );
    roll.assert_valid("published", &anchor);

    // DNSKEY TTL + propagation later: the successor signs, the old key stays.
    roll.at(30 * DAY + 2 * 3_600 + 120);
    let keys = roll.keys();
    assert!(
        keys.iter()
            .any(|k| k.1 == new_zsk && k.2.starts_with("signing")),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.1 == old_zsk && k.2 == "published"),
        "{keys:?}"
    );
    roll.assert_valid("active", &anchor);

    // The zone's largest TTL (1 h) + propagation after that: the old key is gone.
    roll.at(30 * DAY + 5 * 3_600);
    let tags: Vec<u64> = roll.keys().iter().map(|k| k.1).collect();
    assert_eq!(tags.len(), 2, "{tags:?}");
    assert!(tags.contains(&ksk) && tags.contains(&new_zsk), "{tags:?}");
    roll.assert_valid("removed", &anchor);
}

#[test]
fn a_csk_rollover_waits_for_the_ds_and_validates_at_every_step() {
    let mut roll = RolloverLab::new(
        "cskroll.test",
        "keys = \"csk\"\ndenial = \"nsec\"\nksk_lifetime = \"365d\"\n",
    );
    roll.at(0);
    let old = roll.keys()[0].1;
    let old_ds = roll.ds(old);
    roll.assert_valid("start", &old_ds);

    roll.at(365 * DAY + 60);
    let keys = roll.keys();
    let new = keys.iter().find(|k| k.1 != old).unwrap().1;
    roll.assert_valid("published", &old_ds);

    // Active, and waiting for the parent: the CDS names the new key.
    roll.at(365 * DAY + 2 * 3_600 + 120);
    let keys = roll.keys();
    assert!(
        keys.iter()
            .any(|k| k.1 == new && k.2.contains("waiting for its DS")),
        "{keys:?}"
    );
    let table =
        sextant_systest::sextantctl(&roll.config, &["dnssec", "status", roll.apex]).unwrap();
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table.contains(&format!("publish the DS of key {new}")),
        "{table}"
    );
    let cds = dig(roll.dns(), &[roll.apex, "CDS", "+short"]).unwrap();
    assert!(cds.starts_with(&format!("{new} ")), "{cds}");
    roll.assert_valid("active", &old_ds);
    // Days later without the DS: nothing is removed.
    roll.at(375 * DAY);
    assert_eq!(roll.keys().len(), 2);
    roll.assert_valid("waiting", &old_ds);

    // The operator says the parent has the new DS.
    let submitted =
        sextant_systest::sextantctl(&roll.config, &["dnssec", "ksk-submitted", roll.apex]).unwrap();
    assert!(submitted.status.success(), "{submitted:?}");
    let new_ds = roll.ds(new);
    // Parent DS TTL (1 d) + propagation later, the old key goes.
    roll.at(376 * DAY + 2 * 3_600);
    let keys = roll.keys();
    assert_eq!(
        keys.iter().map(|k| k.1).collect::<Vec<_>>(),
        [new],
        "{keys:?}"
    );
    roll.assert_valid("removed", &new_ds);
}

/// A signer between a hidden primary and the public secondaries: Knot serves the
/// zone unsigned and NOTIFYs Sextant's transfer daemon, the authority signs each
/// version it publishes, and BIND and Knot, secondaries of Sextant, serve what
/// validates.
/// A suite on `listener` whose authority signs secondary zone `apex`,
/// transferred from `primary`, with a KSK+ZSK policy denying with `denial`
/// (`authority_extra` adds lines to `[authority]`).
fn secondary_signer_config(
    lab: &Lab,
    listener: std::net::SocketAddr,
    apex: &str,
    primary: std::net::SocketAddr,
    denial: &str,
    authority_extra: &str,
) -> std::path::PathBuf {
    lab.write(
        "sextant.toml",
        &format!(
            "[log]\nlevel = \"info\"\n\n[listener]\nlisten = [\"{listener}\"]\nready_file = \"listener.ready.json\"\n\n\
             [authority]\ngrpc = \"unix:authority.sock\"\nready_file = \"authority.ready.json\"\n\
             state_dir = \"state\"\nallow_transfer = [\"127.0.0.0/8\"]\n{authority_extra}\n\
             [transfer]\ngrpc = \"unix:transfer.sock\"\nstate_dir = \"transfer-state\"\nready_file = \"transfer.ready.json\"\n\
             min_refresh = \"1s\"\ntransfer_timeout = \"2s\"\n\n\
             [[transfer.zone]]\nname = \"{apex}\"\nprimaries = [\"{primary}\"]\ndnssec_policy = \"signer\"\n\n\
             [[dnssec_policy]]\nname = \"signer\"\nkeys = \"ksk-zsk\"\ndenial = \"{denial}\"\n"
        ),
    )
    .unwrap()
}

#[test]
fn a_secondary_zone_is_signed_on_the_way_through_to_bind_and_knot() {
    let lab = Lab::new().unwrap();
    let apex = "bump.test";
    let unsigned = |serial: u32, extra: &str| {
        format!(
            "$ORIGIN {apex}.\n$TTL 300\n@ SOA ns1 hostmaster {serial} 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.1\nwww A 192.0.2.80\n{extra}"
        )
    };
    let zone_file = lab.write("knot/bump.test.zone", &unsigned(1, "")).unwrap();
    let port = sextant_systest::free_port().unwrap();
    let listener: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    // The public secondaries' ports, known before the authority that notifies them.
    let bind_port = sextant_systest::free_port().unwrap();
    let knot_port = sextant_systest::free_port().unwrap();
    let primary = sextant_systest::Peer::knot_primary(
        &lab.path().join("knot"),
        &format!("{apex}."),
        &zone_file,
        listener,
        None,
    )
    .unwrap();
    let config = secondary_signer_config(
        &lab,
        listener,
        apex,
        primary.addr,
        "nsec3",
        &format!("notify = [\"127.0.0.1:{bind_port}\", \"127.0.0.1:{knot_port}\"]\n"),
    );
    let suite = lab.start_suite(&config).unwrap();
    eventually(Duration::from_secs(20), "the signed secondary zone", || {
        dig(suite.dns, &[apex, "SOA", "+dnssec"])
            .unwrap()
            .contains("RRSIG")
    })
    .unwrap();
    let text = axfr(suite.dns, apex);
    let file = lab.write("bump-1.axfr", &text).unwrap();
    assert_tools_verify(apex, &file);
    assert_eq!(
        delv_verdict(&lab, suite.dns, apex, &text, &format!("www.{apex}."), "A"),
        "; fully validated"
    );

    // BIND, a secondary of Sextant, transfers the signed zone and serves it.
    let bind_dir = lab.path().join("bind");
    std::fs::create_dir_all(&bind_dir).unwrap();
    let d = bind_dir.display();
    let named_conf = bind_dir.join("named.conf");
    std::fs::write(
        &named_conf,
        format!(
            "options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; listen-on port {bind_port} {{ 127.0.0.1; }};\n  \
             listen-on-v6 {{ none; }}; recursion no; dnssec-validation no; }};\ncontrols {{ }};\n\
             zone \"{apex}\" {{ type secondary; primaries {{ 127.0.0.1 port {port}; }}; file \"{d}/bump.db\"; }};\n"
        ),
    )
    .unwrap();
    /// Stops the BIND secondary however the test ends.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let bind = Stop(
        Command::new("named")
            .args(["-g", "-n", "1", "-c"])
            .arg(&named_conf)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(bind_dir.join("named.log")).unwrap())
            .spawn()
            .expect("named (apt-get install bind9)"),
    );
    let bind_addr: std::net::SocketAddr = ([127, 0, 0, 1], bind_port).into();
    eventually(
        Duration::from_secs(20),
        "BIND's transfer from Sextant",
        || {
            dig(
                bind_addr,
                &[&format!("www.{apex}"), "A", "+dnssec", "+norec"],
            )
            .map(|answer| answer.contains("RRSIG"))
            .unwrap_or(false)
        },
    )
    .unwrap();
    assert_eq!(
        delv_verdict(&lab, bind_addr, apex, &text, &format!("www.{apex}."), "A"),
        "; fully validated",
        "BIND serving the zone Sextant signed"
    );

    // Knot, another secondary of Sextant, does the same.
    let knot_dir = lab.path().join("knot-secondary");
    std::fs::create_dir_all(&knot_dir).unwrap();
    let d = knot_dir.display();
    let knot_conf = knot_dir.join("knot.conf");
    std::fs::write(
        &knot_conf,
        format!(
            "server:\n    listen: 127.0.0.1@{knot_port}\n    rundir: \"{d}\"\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
             database:\n    storage: \"{d}\"\nlog:\n  - target: stderr\n    any: info\n\
             remote:\n  - id: sextant\n    address: 127.0.0.1@{port}\n\
             acl:\n  - id: notify\n    address: 127.0.0.1\n    action: notify\n\
             zone:\n  - domain: {apex}.\n    master: sextant\n    acl: notify\n    storage: \"{d}\"\n    zonefile-sync: -1\n    journal-content: none\n"
        ),
    )
    .unwrap();
    let _knot = Stop(
        Command::new("knotd")
            .arg("-c")
            .arg(&knot_conf)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(knot_dir.join("knotd.log")).unwrap())
            .spawn()
            .expect("knotd (apt-get install knot)"),
    );
    let knot_addr: std::net::SocketAddr = ([127, 0, 0, 1], knot_port).into();
    eventually(
        Duration::from_secs(20),
        "Knot's transfer from Sextant",
        || {
            dig(
                knot_addr,
                &[&format!("www.{apex}"), "A", "+dnssec", "+norec"],
            )
            .map(|answer| answer.contains("RRSIG"))
            .unwrap_or(false)
        },
    )
    .unwrap();
    assert_eq!(
        delv_verdict(&lab, knot_addr, apex, &text, &format!("www.{apex}."), "A"),
        "; fully validated",
        "Knot serving the zone Sextant signed"
    );

    // A change at the hidden primary reaches the public side signed.
    std::fs::write(&zone_file, unsigned(2, "new A 192.0.2.99\n")).unwrap();
    primary.reload().unwrap();
    eventually(Duration::from_secs(20), "the new version, signed", || {
        dig(suite.dns, &[&format!("new.{apex}"), "A", "+dnssec"])
            .map(|answer| answer.contains("192.0.2.99") && answer.contains("RRSIG"))
            .unwrap_or(false)
    })
    .unwrap();
    assert_eq!(
        delv_verdict(&lab, suite.dns, apex, &text, &format!("new.{apex}."), "A"),
        "; fully validated"
    );
    let again = axfr(suite.dns, apex);
    let file = lab.write("bump-2.axfr", &again).unwrap();
    assert_tools_verify(apex, &file);
    // Knot sent the change as an IXFR; it was signed as a change.
    let log = suite.authority.as_ref().unwrap().log_text();
    assert!(log.contains("zone change signed"), "{log}");
    assert!(
        !log.contains("zone change signed with the whole zone"),
        "{log}"
    );
    // BIND and Knot, notified, follow the signed change.
    for (name, addr, log) in [
        ("BIND", bind_addr, bind_dir.join("named.log")),
        ("Knot", knot_addr, knot_dir.join("knotd.log")),
    ] {
        let followed = eventually(Duration::from_secs(30), name, || {
            dig(addr, &[&format!("new.{apex}"), "A", "+dnssec", "+norec"])
                .map(|answer| answer.contains("192.0.2.99") && answer.contains("RRSIG"))
                .unwrap_or(false)
        });
        assert!(
            followed.is_ok(),
            "{name} did not follow the signed change:\n{}\nauthority:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            suite.authority.as_ref().unwrap().log_text()
        );
    }

    // A third version: www removed, a delegation with glue and a name below
    // empty non-terminals added. Signed as a change again, and whole-zone
    // verifiers find nothing wrong with the result.
    let www = unsigned(
        3,
        "new A 192.0.2.99\nsub NS ns.sub\nns.sub A 192.0.2.7\nx.y.z A 192.0.2.8\n",
    )
    .replace("www A 192.0.2.80\n", "");
    std::fs::write(&zone_file, www).unwrap();
    primary.reload().unwrap();
    eventually(Duration::from_secs(20), "the third version, signed", || {
        dig(suite.dns, &[&format!("x.y.z.{apex}"), "A", "+dnssec"])
            .map(|answer| answer.contains("192.0.2.8") && answer.contains("RRSIG"))
            .unwrap_or(false)
    })
    .unwrap();
    let third = axfr(suite.dns, apex);
    let file = lab.write("bump-3.axfr", &third).unwrap();
    assert_tools_verify(apex, &file);
    let gone = delv_verdict(&lab, suite.dns, apex, &text, &format!("www.{apex}."), "A");
    assert!(
        gone.contains("negative response, fully validated"),
        "{gone}"
    );
    let log = suite.authority.as_ref().unwrap().log_text();
    assert_eq!(
        log.matches("zone change signed zone=").count(),
        2,
        "both IXFRs signed as changes:\n{log}"
    );
    drop(bind);
}

/// A signed secondary zone whose primary (NSD, which keeps no IXFR history) sends
/// every version whole: each new version is signed as the change from the one
/// served, not as a zone, and still verifies.
#[test]
fn a_secondary_version_sent_whole_is_signed_as_a_change() {
    let lab = Lab::new().unwrap();
    let apex = "whole.test";
    let unsigned = |serial: u32, extra: &str| {
        format!(
            "$ORIGIN {apex}.\n$TTL 300\n@ SOA ns1 hostmaster {serial} 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.1\nwww A 192.0.2.80\n{extra}"
        )
    };
    let zone_file = lab.write("nsd/whole.test.zone", &unsigned(1, "")).unwrap();
    let port = sextant_systest::free_port().unwrap();
    let listener: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let primary = sextant_systest::Peer::nsd_with(
        &lab.path().join("nsd"),
        &[(apex, &zone_file)],
        &format!("  notify: 127.0.0.1@{port} NOKEY\n  provide-xfr: 127.0.0.0/8 NOKEY\n"),
    )
    .unwrap();
    let config = secondary_signer_config(&lab, listener, apex, primary.addr, "nsec3", "");
    let suite = lab.start_suite(&config).unwrap();
    eventually(Duration::from_secs(20), "the signed secondary zone", || {
        dig(suite.dns, &[apex, "SOA", "+dnssec"])
            .unwrap()
            .contains("RRSIG")
    })
    .unwrap();
    let first = axfr(suite.dns, apex);
    for (serial, extra) in [
        (2, "new A 192.0.2.99\nx.y.deep TXT \"d\"\n"),
        (3, "new A 192.0.2.98\nsub NS ns.sub\nns.sub A 192.0.2.7\n"),
    ] {
        std::fs::write(&zone_file, unsigned(serial, extra)).unwrap();
        primary.reload().unwrap();
        let serial_text = format!("hostmaster.{apex}. {serial} ");
        eventually(Duration::from_secs(20), "the new version, signed", || {
            dig(suite.dns, &[apex, "SOA", "+dnssec"])
                .map(|answer| answer.contains(&serial_text) && answer.contains("RRSIG"))
                .unwrap_or(false)
        })
        .unwrap();
        let text = axfr(suite.dns, apex);
        let file = lab.write(&format!("whole-{serial}.axfr"), &text).unwrap();
        assert_tools_verify(apex, &file);
        assert_eq!(
            delv_verdict(&lab, suite.dns, apex, &first, &format!("new.{apex}."), "A"),
            "; fully validated"
        );
    }
    let log = suite.authority.as_ref().unwrap().log_text();
    assert_eq!(
        log.matches("zone change signed zone=").count(),
        2,
        "both versions signed as changes:\n{log}"
    );
    // Signed again whole, as when its signatures fall due (the DS submission
    // confirmed makes the authority sign it at once): from the version served,
    // whose data it keeps.
    let before = log.matches("zone signed zone=").count();
    let confirmed =
        sextant_systest::sextantctl(&config, &["dnssec", "ksk-submitted", apex]).unwrap();
    assert!(confirmed.status.success(), "{confirmed:?}");
    eventually(Duration::from_secs(20), "the zone signed again", || {
        suite
            .authority
            .as_ref()
            .unwrap()
            .log_text()
            .matches("zone signed zone=")
            .count()
            > before
    })
    .unwrap();
    let text = axfr(suite.dns, apex);
    for wanted in [
        format!("new.{apex}. 300 IN A 192.0.2.98"),
        format!("sub.{apex}. 300 IN NS ns.sub.{apex}."),
        format!("ns.sub.{apex}. 300 IN A 192.0.2.7"),
    ] {
        assert!(
            text.lines()
                .any(|line| line.split_whitespace().collect::<Vec<_>>().join(" ") == wanted),
            "{wanted} missing after signing again:\n{text}"
        );
    }
    let file = lab.write("whole-again.axfr", &text).unwrap();
    assert_tools_verify(apex, &file);
}

/// Zones signed by BIND move to Sextant with their keys: the pairs
/// `dnssec-keygen` wrote are imported (`sextantctl dnssec import-bind`), the zone
/// is served with the same DNSKEYs, and the BIND key-signing key still anchors it.
#[test]
fn keys_imported_from_bind_sign_the_zone_with_the_same_tags() {
    let lab = Lab::new().unwrap();
    // apex, BIND algorithm, policy algorithm, key split, keys to make (KSK, ZSK?).
    let cases = [
        (
            "ecdsa.moved.test",
            "ECDSAP256SHA256",
            "ecdsap256sha256",
            "ksk-zsk",
            true,
        ),
        ("ed.moved.test", "ED25519", "ed25519", "csk", false),
        ("rsa.moved.test", "RSASHA256", "rsasha256", "ksk-zsk", true),
    ];
    let mut text = String::from(SUITE);
    for (apex, _, algorithm, keys, _) in &cases {
        let file = format!("zones/{apex}.zone");
        lab.write(&file, &zone_text(apex)).unwrap();
        text.push_str(&format!(
            "\n[[authority.zone]]\nname = \"{apex}\"\nfile = \"{file}\"\ndnssec_policy = \"{apex}\"\n\
             \n[[dnssec_policy]]\nname = \"{apex}\"\nalgorithm = \"{algorithm}\"\nkeys = \"{keys}\"\n"
        ));
    }
    let config = lab.write("sextant.toml", &text).unwrap();
    let mut tags = Vec::new();
    for (apex, bind_algorithm, _, _, with_zsk) in &cases {
        let dir = lab.path().join("bind-keys").join(apex);
        std::fs::create_dir_all(&dir).unwrap();
        let keygen = |extra: &[&str]| {
            let output = Command::new("dnssec-keygen")
                .current_dir(&dir)
                .args(["-q", "-a", bind_algorithm])
                .args(extra)
                .arg(apex)
                .output()
                .expect("dnssec-keygen (bind9-utils)");
            assert!(output.status.success(), "{output:?}");
            String::from_utf8_lossy(&output.stdout).trim().to_string()
        };
        let ksk = keygen(&["-f", "KSK"]);
        let mut files = vec![dir.join(format!("{ksk}.key"))];
        if *with_zsk {
            let zsk = keygen(&[]);
            files.push(dir.join(format!("{zsk}.private")));
        }
        let mut args = vec!["dnssec", "import-bind", apex];
        let paths: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        args.extend(paths.iter().map(String::as_str));
        let imported = sextant_systest::sextantctl(&config, &args).unwrap();
        assert!(imported.status.success(), "{imported:?}");
        let ksk_key = std::fs::read_to_string(dir.join(format!("{ksk}.key"))).unwrap();
        let ksk_tag: u64 = ksk.rsplit('+').next().unwrap().parse().unwrap();
        tags.push((*apex, ksk_tag, ksk_key));
    }
    // A second import into a zone that has keys is refused.
    let again = sextant_systest::sextantctl(
        &config,
        &["dnssec", "import-bind", cases[0].0, "/nonexistent/Kx.key"],
    )
    .unwrap();
    assert!(!again.status.success());

    let suite = lab.start_suite(&config).unwrap();
    for (apex, ksk_tag, ksk_key) in &tags {
        let status =
            sextant_systest::sextantctl(&config, &["dnssec", "status", apex, "--json"]).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        let served: Vec<u64> = json[0]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["tag"].as_u64().unwrap())
            .collect();
        assert!(
            served.contains(ksk_tag),
            "{apex}: {served:?} lacks BIND's KSK {ksk_tag}"
        );
        // BIND's key file is the trust anchor: the zone validates under it.
        let text = axfr(suite.dns, apex);
        assert!(
            text.contains(ksk_key.split_whitespace().last().unwrap()),
            "{apex}: BIND's DNSKEY is served"
        );
        let file = lab.write(&format!("{apex}.axfr"), &text).unwrap();
        let (ok, output) = run(Command::new("ldns-verify-zone").arg(&file));
        assert!(ok, "{apex}: {output}");
        assert_eq!(
            delv_verdict(&lab, suite.dns, apex, &text, &format!("www.{apex}."), "A"),
            "; fully validated",
            "{apex}"
        );
    }
}

#[test]
fn an_algorithm_rollover_validates_at_every_step() {
    let mut roll = RolloverLab::new(
        "algroll.test",
        "keys = \"ksk-zsk\"\ndenial = \"nsec3\"\nzsk_lifetime = \"0s\"\n",
    );
    roll.at(0);
    let old: Vec<u64> = roll.keys().iter().map(|k| k.1).collect();
    let old_ksk = roll.keys().iter().find(|k| k.0 == "ksk").unwrap().1;
    let old_ds = roll.ds(old_ksk);
    roll.assert_valid("start", &old_ds);

    // The policy moves from Ed25519 to ECDSA P-256: new keys sign first, unpublished.
    let text = std::fs::read_to_string(&roll.config)
        .unwrap()
        .replace("algorithm = \"ed25519\"", "algorithm = \"ecdsap256sha256\"");
    std::fs::write(&roll.config, text).unwrap();
    roll.at(60);
    assert_eq!(roll.keys().len(), 4);
    let dnskeys = |roll: &RolloverLab| {
        dig(roll.dns(), &[roll.apex, "DNSKEY", "+short"])
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(dnskeys(&roll), 2, "the new keys are not published yet");
    roll.assert_valid("signing-ahead", &old_ds);

    // The zone's TTL (1 h) + propagation later: published.
    roll.at(60 + 2 * 3_600 + 120);
    assert_eq!(dnskeys(&roll), 4);
    roll.assert_valid("published", &old_ds);

    // In every cache: waiting for the new DS.
    roll.at(60 + 4 * 3_600 + 240);
    let new_ksk = roll
        .keys()
        .iter()
        .find(|k| k.0 == "ksk" && !old.contains(&k.1))
        .unwrap()
        .1;
    assert!(
        roll.keys()
            .iter()
            .any(|k| k.1 == new_ksk && k.2.contains("waiting for its DS")),
        "{:?}",
        roll.keys()
    );
    roll.assert_valid("waiting", &old_ds);
    let submitted =
        sextant_systest::sextantctl(&roll.config, &["dnssec", "ksk-submitted", roll.apex]).unwrap();
    assert!(submitted.status.success(), "{submitted:?}");
    let new_ds = roll.ds(new_ksk);

    // The old DS out of caches: the old DNSKEYs go, the old keys still sign.
    roll.at(60 + 4 * 3_600 + 240 + DAY + 3_600 + 120);
    assert_eq!(dnskeys(&roll), 2);
    roll.assert_valid("unpublished", &new_ds);
    // And then they go.
    roll.at(60 + 4 * 3_600 + 240 + DAY + 3 * 3_600 + 240);
    let keys = roll.keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| !old.contains(&k.1)), "{keys:?}");
    roll.assert_valid("done", &new_ds);
}
