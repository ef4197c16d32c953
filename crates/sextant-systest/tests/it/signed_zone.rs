//! A zone signed by BIND's dnssec-signzone (NSEC and NSEC3) loads and is served:
//! DNSKEY, RRSIG, NSEC, NSEC3 and NSEC3PARAM from their presentation forms, each
//! RRSIG with the TTL of the set it covers, and the whole zone out by AXFR.

use std::process::Command;

use sextant_systest::{Lab, dig};

fn sign(lab: &Lab, nsec3: bool) -> String {
    let dir = lab.path().join(if nsec3 { "nsec3" } else { "nsec" });
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("plain.zone"),
        "$TTL 3600\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n  NS ns1\nns1 A 192.0.2.1\nwww A 192.0.2.80\nsub NS ns1.sub\nns1.sub A 192.0.2.2\n",
    )
    .unwrap();
    let key = Command::new("dnssec-keygen")
        .args(["-q", "-a", "ECDSAP256SHA256", "-K"])
        .arg(&dir)
        .arg("example.com")
        .output()
        .expect("dnssec-keygen (apt-get install bind9-utils)");
    assert!(key.status.success(), "{key:?}");
    let key = String::from_utf8_lossy(&key.stdout).trim().to_string();
    let mut zone = std::fs::read_to_string(dir.join("plain.zone")).unwrap();
    zone.push_str(&std::fs::read_to_string(dir.join(format!("{key}.key"))).unwrap());
    std::fs::write(dir.join("plain.zone"), zone).unwrap();
    let mut signzone = Command::new("dnssec-signzone");
    signzone
        .current_dir(&dir)
        .args(["-z", "-o", "example.com", "-f", "signed.zone"]);
    if nsec3 {
        signzone.args(["-3", "aabbccdd"]);
    }
    let signed = signzone
        .args(["plain.zone", &format!("{key}.private")])
        .output()
        .unwrap();
    assert!(signed.status.success(), "{signed:?}");
    std::fs::read_to_string(dir.join("signed.zone")).unwrap()
}

#[test]
fn zones_signed_with_nsec_and_nsec3_load_and_transfer_whole() {
    for nsec3 in [false, true] {
        let lab = Lab::new().unwrap();
        let signed = sign(&lab, nsec3);
        let config = lab.suite_config(&[("example.com", &signed)], "").unwrap();
        let text = std::fs::read_to_string(&config).unwrap().replace(
            "[authority]\n",
            "[authority]\nallow_transfer = [\"127.0.0.1/32\"]\n",
        );
        std::fs::write(&config, text).unwrap();
        let suite = lab.start_suite(&config).unwrap();

        let dnskey = dig(suite.dns, &["+norec", "DNSKEY", "example.com"]).unwrap();
        assert!(dnskey.contains("DNSKEY\t256 3 13 "), "{dnskey}");
        let kind = if nsec3 { "NSEC3PARAM" } else { "NSEC" };
        let chain = dig(suite.dns, &["+norec", kind, "example.com"]).unwrap();
        assert!(chain.contains(&format!("IN\t{kind}")), "{chain}");

        let axfr = dig(suite.dns, &["AXFR", "example.com"]).unwrap();
        let transferred: Vec<&str> = axfr
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .collect();
        // owner TTL class type data...
        let fields: Vec<Vec<&str>> = transferred
            .iter()
            .map(|l| l.split_whitespace().collect())
            .collect();
        for kind in ["RRSIG", "DNSKEY", if nsec3 { "NSEC3" } else { "NSEC" }] {
            assert!(
                fields.iter().any(|f| f.get(3) == Some(&kind)),
                "{kind} missing from the AXFR:\n{axfr}"
            );
        }
        // Each RRSIG keeps the TTL of what it covers: the NSEC3PARAM's RRSIG has TTL
        // 0 beside RRSIGs of 3600 at the same name.
        let ttl_of_rrsig = |covered: &str| {
            fields
                .iter()
                .find(|f| {
                    f.get(3) == Some(&"RRSIG")
                        && f.get(4) == Some(&covered)
                        && f[0] == "example.com."
                })
                .map(|f| f[1].to_string())
        };
        assert_eq!(ttl_of_rrsig("SOA").as_deref(), Some("3600"), "{axfr}");
        if nsec3 {
            assert_eq!(ttl_of_rrsig("NSEC3PARAM").as_deref(), Some("0"), "{axfr}");
        }
    }
}
