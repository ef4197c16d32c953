//! The resolver validating (issue 18) on a signed loopback hierarchy: a root and a
//! `test.` TLD signed by dnssec-signzone with the DS records of their children, a
//! secure leaf, an unsigned leaf (no DS) and a leaf whose data was changed after
//! signing. The lab's root key is the trust anchor.

use std::path::Path;
use std::process::Command;

use sextant_systest::signing::{self, Algorithm, Denial, Signer};
use sextant_systest::{DnsLab, Lab, dig};

/// The DS record (SHA-256) of `zone`'s key-signing key, as its parent writes it.
fn ds_of(dir: &Path, zone: &str, anchor: &str) -> String {
    let file = dir.join(format!("{zone}key"));
    std::fs::write(&file, format!("{zone} 3600 IN DNSKEY {anchor}\n")).unwrap();
    let output = Command::new("dnssec-dsfromkey")
        .args(["-2", "-f"])
        .arg(&file)
        .arg(zone)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn signed(dir: &Path, zone: &str, text: &str) -> (String, String) {
    let zone_dir = dir.join(zone.trim_end_matches('.').replace('.', "_") + "_keys");
    let zone_dir = if zone == "." {
        dir.join("root_keys")
    } else {
        zone_dir
    };
    let signed = signing::sign(
        &zone_dir,
        zone,
        text,
        Signer::Bind,
        Algorithm::EcdsaP256,
        Denial::Nsec,
    )
    .unwrap();
    let text = std::fs::read_to_string(&signed.file).unwrap();
    (text, signed.anchor)
}

#[test]
fn secure_insecure_and_bogus_answers_through_the_listener() {
    let lab = Lab::new().unwrap();
    let dns = DnsLab::new();
    let ip = |n: u8| dns.ip(n).to_string();
    let dir = lab.path().join("zones");
    std::fs::create_dir_all(&dir).unwrap();

    let leaf = |name: &str, address: &str| {
        format!(
            "$TTL 300\n@ SOA ns1 h 1 1800 900 604800 60\n@ NS ns1\nns1 A {}\nwww A {address}\n",
            ip(3)
        )
        .replace("{name}", name)
    };
    let (secure, secure_key) = signed(&dir, "secure.test.", &leaf("secure", "192.0.2.10"));
    let (bogus, bogus_key) = signed(&dir, "bogus.test.", &leaf("bogus", "192.0.2.66"));
    // A spoofer changed the address after signing: the signature no longer matches.
    let bogus = bogus.replace("192.0.2.66", "192.0.2.99");
    let insecure = leaf("insecure", "192.0.2.30");

    let tld = format!(
        "$TTL 3600\n@ SOA ns h 1 1800 900 604800 300\n@ NS ns\nns A {}\n\
         secure NS ns1.secure\nns1.secure A {}\n{}\n\
         bogus NS ns1.bogus\nns1.bogus A {}\n{}\n\
         insecure NS ns1.insecure\nns1.insecure A {}\n",
        ip(2),
        ip(3),
        ds_of(&dir, "secure.test.", &secure_key),
        ip(3),
        ds_of(&dir, "bogus.test.", &bogus_key),
        ip(3),
    );
    let (tld, tld_key) = signed(&dir, "test.", &tld);
    let root = format!(
        "$TTL 86400\n@ SOA a.root-servers.lab. nstld.lab. 1 1800 900 604800 86400\n\
         @ NS a.root-servers.lab.\na.root-servers.lab. A {}\n\
         test. NS ns.test.\nns.test. A {}\n{}\n",
        ip(1),
        ip(2),
        ds_of(&dir, "test.", &tld_key),
    );
    let (root, root_key) = signed(&dir, ".", &root);
    let _servers = [
        dns.serve(1, &[(".", &root)]).unwrap(),
        dns.serve(2, &[("test.", &tld)]).unwrap(),
        dns.serve(
            3,
            &[
                ("secure.test.", &secure),
                ("bogus.test.", &bogus),
                ("insecure.test.", &insecure),
            ],
        )
        .unwrap(),
    ];
    lab.write("anchors", &format!(". IN DNSKEY {root_key}\n"))
        .unwrap();
    let config = lab
        .resolver_config(
            &dns.hints(&[("a.root-servers.lab.", 1)]),
            "validation = true\ntrust_anchor_file = \"anchors\"\n",
        )
        .unwrap();
    let suite = lab.start_resolver_suite(&config).unwrap();

    let secure = dig(suite.dns, &["+dnssec", "www.secure.test.", "A"]).unwrap();
    assert!(secure.contains("status: NOERROR"), "{secure}");
    assert!(
        secure.contains(" ad;") || secure.contains(" ad "),
        "no AD on a secure answer:\n{secure}"
    );
    assert!(secure.contains("192.0.2.10"), "{secure}");

    let nxdomain = dig(suite.dns, &["+dnssec", "nope.secure.test.", "A"]).unwrap();
    assert!(nxdomain.contains("status: NXDOMAIN"), "{nxdomain}");
    assert!(
        nxdomain.contains(" ad;") || nxdomain.contains(" ad "),
        "no AD on a proven NXDOMAIN:\n{nxdomain}"
    );

    let nodata = dig(suite.dns, &["+dnssec", "www.secure.test.", "TXT"]).unwrap();
    assert!(nodata.contains("status: NOERROR"), "{nodata}");
    assert!(
        nodata.contains(" ad;") || nodata.contains(" ad "),
        "no AD on a proven NODATA:\n{nodata}"
    );

    let insecure = dig(suite.dns, &["+dnssec", "www.insecure.test.", "A"]).unwrap();
    assert!(insecure.contains("status: NOERROR"), "{insecure}");
    assert!(insecure.contains("192.0.2.30"), "{insecure}");
    assert!(
        !insecure.contains(" ad;") && !insecure.contains(" ad "),
        "AD on an insecure answer:\n{insecure}"
    );

    let bogus = dig(suite.dns, &["+dnssec", "www.bogus.test.", "A"]).unwrap();
    assert!(bogus.contains("status: SERVFAIL"), "{bogus}");
    assert!(bogus.contains("EDE: 6"), "no DNSSEC Bogus EDE:\n{bogus}");
    assert!(!bogus.contains("192.0.2.99"), "{bogus}");
}
