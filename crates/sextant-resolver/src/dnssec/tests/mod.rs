//! The validation primitives against zones signed by BIND's dnssec-signzone
//! (testdata/, signatures valid 2026-2090; regenerate with the commands in
//! testdata/README.md).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::str::FromStr;

use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::anchors::decoded;
use super::verify::Clock;
use super::*;
use crate::chain::rrsets;

fn name(text: &str) -> Name {
    Name::from_str(text).unwrap()
}

fn zone(file: &str) -> Vec<Record> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/dnssec/testdata")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let no_include = |_: &Path| -> std::io::Result<String> { Err(std::io::Error::other("no")) };
    sextant_zone::parse(&text, &path, &name("example.test."), &no_include)
        .unwrap()
        .into_iter()
        .map(|located| decoded(located.record))
        .collect()
}

fn keys(records: &[Record]) -> Vec<ZoneKey> {
    records
        .iter()
        .filter_map(dnskey)
        .filter_map(ZoneKey::usable)
        .collect()
}

/// 2030-01-01, inside every fixture's window.
fn clock() -> Clock {
    Clock {
        now: 1_893_456_000,
        skew: 0,
    }
}

fn work() -> Work {
    Work::new(1000, 1000, 4)
}

fn sigs(records: &[Record]) -> Vec<Record> {
    records
        .iter()
        .filter(|r| r.record_type() == RecordType::RRSIG)
        .cloned()
        .collect()
}

#[test]
fn every_rrset_of_zones_signed_with_each_algorithm_verifies() {
    for file in [
        "rsasha256.db",
        "rsasha512.db",
        "ecdsap256.db",
        "ecdsap384.db",
        "ed25519.db",
        "nsec3.db",
    ] {
        let records = zone(file);
        let keys = keys(&records);
        assert_eq!(keys.len(), 1, "{file}");
        let sigs = sigs(&records);
        let mut checked = 0;
        for set in rrsets(&records) {
            // Glue and the delegations' NS sets are not signed (RFC 4035 §2.2).
            let signed = signatures_for(&sigs, &set[0].name, set[0].record_type()).count();
            if signed == 0 {
                continue;
            }
            let ttl = verify_rrset(&set, &sigs, &name("example.test."), &keys, clock(), &work());
            assert!(
                ttl.is_ok(),
                "{file}: {} {}: {ttl:?}",
                set[0].name,
                set[0].record_type()
            );
            assert!(ttl.unwrap() <= set[0].ttl);
            checked += 1;
        }
        assert!(checked >= 10, "{file}: only {checked} RRsets checked");
    }
}

fn rrset(records: &[Record], owner: &str, rtype: RecordType) -> Vec<Record> {
    records
        .iter()
        .filter(|r| r.name == name(owner) && r.record_type() == rtype)
        .cloned()
        .collect()
}

#[test]
fn changed_data_missing_signatures_and_foreign_keys_are_bogus() {
    let records = zone("ecdsap256.db");
    let keys = keys(&records);
    let sigs = sigs(&records);
    let apex = name("example.test.");
    let mut www = rrset(&records, "www.example.test.", RecordType::A);
    assert!(verify_rrset(&www, &sigs, &apex, &keys, clock(), &work()).is_ok());
    // A spoofer changed an address after signing.
    www[0].data = RData::A("192.0.2.66".parse().unwrap());
    assert_eq!(
        verify_rrset(&www, &sigs, &apex, &keys, clock(), &work()),
        Err(Bogus::Signature)
    );
    let www = rrset(&records, "www.example.test.", RecordType::A);
    assert_eq!(
        verify_rrset(&www, &[], &apex, &keys, clock(), &work()),
        Err(Bogus::RrsigsMissing)
    );
    let other = keys_of("ed25519.db");
    assert_eq!(
        verify_rrset(&www, &sigs, &apex, &other, clock(), &work()),
        Err(Bogus::DnskeyMissing)
    );
    // A signature by another zone's name is not this zone's.
    assert_eq!(
        verify_rrset(&www, &sigs, &name("test."), &keys, clock(), &work()),
        Err(Bogus::Signature)
    );
}

fn keys_of(file: &str) -> Vec<ZoneKey> {
    keys(&zone(file))
}

#[test]
fn the_same_record_twice_is_one_record() {
    let records = zone("ed25519.db");
    let mut www = rrset(&records, "www.example.test.", RecordType::A);
    www.push(www[0].clone());
    let verified = verify_rrset(
        &www,
        &sigs(&records),
        &name("example.test."),
        &keys(&records),
        clock(),
        &work(),
    );
    assert!(verified.is_ok());
}

#[test]
fn signatures_outside_their_window_are_expired_or_not_yet_valid() {
    let apex = name("example.test.");
    for (file, why) in [
        ("expired.db", Bogus::Expired),
        ("future.db", Bogus::NotYetValid),
    ] {
        let records = zone(file);
        let www = rrset(&records, "www.example.test.", RecordType::A);
        let verified = verify_rrset(
            &www,
            &sigs(&records),
            &apex,
            &keys(&records),
            clock(),
            &work(),
        );
        assert_eq!(verified, Err(why), "{file}");
    }
    // One second past expiry (2020-02-01) is accepted within the clock skew allowed.
    let records = zone("expired.db");
    let www = rrset(&records, "www.example.test.", RecordType::A);
    let just_after = Clock {
        now: 1_580_515_201,
        skew: 300,
    };
    let verified = verify_rrset(
        &www,
        &sigs(&records),
        &apex,
        &keys(&records),
        just_after,
        &work(),
    );
    assert_eq!(verified, Ok(1));
}

#[test]
fn signature_checks_stop_at_the_work_limit() {
    let records = zone("ecdsap256.db");
    let www = rrset(&records, "www.example.test.", RecordType::A);
    let spent = Work::new(0, 0, 4);
    assert_eq!(
        verify_rrset(
            &www,
            &sigs(&records),
            &name("example.test."),
            &keys(&records),
            clock(),
            &spent
        ),
        Err(Bogus::WorkLimit)
    );
}

#[test]
fn a_ds_designates_its_key() {
    let records = zone("ecdsap256.db");
    let keys = keys(&records);
    let anchors = TrustAnchors::from_text(
        Path::new("anchors"),
        "example.test. IN DS 59826 13 2 B358EC698F2DA45B844EBC0CBBA2839B29C3A4FB83F38941A03F8050D10775A9\n",
    )
    .unwrap();
    let anchor = anchors.at(&name("example.test.")).unwrap();
    assert!(key_matches_ds(
        &name("example.test."),
        &keys[0],
        &anchor.ds[0]
    ));
    let other = keys_of("ed25519.db");
    assert!(!key_matches_ds(
        &name("example.test."),
        &other[0],
        &anchor.ds[0]
    ));
}

#[test]
fn the_built_in_root_anchors_match_the_published_root_keys() {
    // The root KSKs as IANA publishes them (root-anchors.xml, also Debian's
    // dns-root-data): the compiled-in DS records must designate them.
    let keys_text = "\
. IN DNSKEY 257 3 8 AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU=
. IN DNSKEY 257 3 8 AwEAAa96jeuknZlaeSrvyAJj6ZHv28hhOKkx3rLGXVaC6rXTsDc449/cidltpkyGwCJNnOAlFNKF2jBosZBU5eeHspaQWOmOElZsjICMQMC3aeHbGiShvZsx4wMYSjH8e7Vrhbu6irwCzVBApESjbUdpWWmEnhathWu1jo+siFUiRAAxm9qyJNg/wOZqqzL/dL/q8PkcRU5oUKEpUge71M3ej2/7CPqpdVwuMoTvoB+ZOT4YeGyxMvHmbrxlFzGOHOijtzN+u1TQNatX2XBuzZNQ1K+s2CXkPIZo7s6JgZyvaBevYtxPvYLw4z9mR7K2vaF18UYH9Z9GNUUeayffKC73PYc=
";
    let published = TrustAnchors::from_text(Path::new("root.key"), keys_text).unwrap();
    let keys: Vec<ZoneKey> = published
        .at(&Name::root())
        .unwrap()
        .keys
        .iter()
        .filter_map(ZoneKey::usable)
        .collect();
    let tags: Vec<u16> = keys.iter().map(|k| k.tag).collect();
    assert_eq!(tags, [20326, 38696]);
    let builtin = TrustAnchors::builtin();
    let root = builtin.closest(&name("www.example.com.")).unwrap();
    assert_eq!(root.ds.len(), 2);
    for (key, ds) in keys.iter().zip(&root.ds) {
        assert!(key_matches_ds(&Name::root(), key, ds), "key {}", key.tag);
    }
}

#[test]
fn a_broken_anchor_file_is_one_sentence_with_its_line() {
    let error = TrustAnchors::from_text(
        Path::new("/etc/anchors"),
        "; anchors\n. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\nwww. IN A 192.0.2.1\n",
    )
    .unwrap_err();
    assert!(
        error.starts_with("/etc/anchors:3: a A record is not a trust anchor"),
        "{error}"
    );
    let error = TrustAnchors::from_text(Path::new("/etc/anchors"), "; nothing\n").unwrap_err();
    assert!(error.contains("no DS or DNSKEY record"), "{error}");
    let error =
        TrustAnchors::from_text(Path::new("/etc/anchors"), ". IN DS 1 99 2 00\n").unwrap_err();
    assert!(error.contains("/etc/anchors:1:"), "{error}");
    assert!(error.contains("cannot check"), "{error}");
}

#[test]
fn negative_trust_anchors_cover_their_subtree() {
    let ntas = NegativeAnchors::new(&[name("broken.example.")]);
    assert!(ntas.covers(&name("www.Broken.example.")));
    assert!(!ntas.covers(&name("example.")));
    assert!(ntas.add(&name("other.")));
    assert!(!ntas.add(&name("OTHER.")));
    assert!(ntas.remove(&name("broken.example.")));
    assert!(!ntas.covers(&name("www.broken.example.")));
    assert_eq!(ntas.list(), vec![name("other.")]);
}

fn proofs(records: &[Record]) -> Vec<Record> {
    records
        .iter()
        .filter(|r| matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3))
        .cloned()
        .collect()
}

fn denial(file: &str, qname: &str, qtype: RecordType) -> Denial {
    let records = proofs(&zone(file));
    deny(
        &name(qname),
        qtype,
        &name("example.test."),
        &records,
        50,
        &work(),
    )
    .unwrap()
}

#[test]
fn nsec_proves_nxdomain_nodata_empty_non_terminals_and_insecure_delegations() {
    let file = "ecdsap256.db";
    assert_eq!(
        denial(file, "nope.example.test.", RecordType::A),
        Denial::NxDomain
    );
    assert_eq!(
        denial(file, "zzz.example.test.", RecordType::A),
        Denial::NxDomain
    );
    assert_eq!(
        denial(file, "www.example.test.", RecordType::AAAA),
        Denial::NoData { cut: false }
    );
    assert_eq!(
        denial(file, "ent.example.test.", RecordType::A),
        Denial::NoData { cut: false }
    );
    assert_eq!(
        denial(file, "unsigned.example.test.", RecordType::DS),
        Denial::NoData { cut: true }
    );
    assert_eq!(
        denial(file, "foo.wild.example.test.", RecordType::A),
        Denial::WildcardNoData
    );
    // What the records do not prove.
    assert_eq!(
        denial(file, "www.example.test.", RecordType::A),
        Denial::Unproven
    );
    assert_eq!(
        denial(file, "signedchild.example.test.", RecordType::DS),
        Denial::Unproven
    );
    // The parent's NSEC at a delegation says nothing of the child's data.
    assert_eq!(
        denial(file, "unsigned.example.test.", RecordType::A),
        Denial::Unproven
    );
    assert_eq!(
        denial(file, "x.unsigned.example.test.", RecordType::A),
        Denial::Unproven
    );
    let none: Vec<Record> = Vec::new();
    let unproven = deny(
        &name("nope.example.test."),
        RecordType::A,
        &name("example.test."),
        &none,
        50,
        &work(),
    );
    assert_eq!(unproven, Ok(Denial::Unproven));
}

#[test]
fn nsec3_proves_the_same_and_opt_out_makes_it_insecure() {
    let file = "nsec3.db";
    assert_eq!(
        denial(file, "nope.example.test.", RecordType::A),
        Denial::NxDomain
    );
    assert_eq!(
        denial(file, "www.example.test.", RecordType::AAAA),
        Denial::NoData { cut: false }
    );
    assert_eq!(
        denial(file, "ent.example.test.", RecordType::A),
        Denial::NoData { cut: false }
    );
    assert_eq!(
        denial(file, "unsigned.example.test.", RecordType::DS),
        Denial::NoData { cut: true }
    );
    assert_eq!(
        denial(file, "foo.wild.example.test.", RecordType::A),
        Denial::WildcardNoData
    );
    assert_eq!(
        denial(file, "www.example.test.", RecordType::A),
        Denial::Unproven
    );
    assert_eq!(
        denial(file, "signedchild.example.test.", RecordType::DS),
        Denial::Unproven
    );
    // Opt-Out: the unsigned delegation has no NSEC3 of its own.
    assert_eq!(
        denial("nsec3-optout.db", "unsigned.example.test.", RecordType::DS),
        Denial::OptOut
    );
    // The zone hashes once more than this validator will.
    let records = proofs(&zone(file));
    let denied = deny(
        &name("nope.example.test."),
        RecordType::A,
        &name("example.test."),
        &records,
        0,
        &work(),
    );
    assert_eq!(denied, Ok(Denial::TooManyIterations));
    // And hashing stops at the work limit.
    let denied = deny(
        &name("nope.example.test."),
        RecordType::A,
        &name("example.test."),
        &records,
        50,
        &Work::new(10, 1, 4),
    );
    assert_eq!(denied, Err(Bogus::WorkLimit));
}

#[test]
fn a_wildcard_answer_needs_proof_that_the_name_itself_is_absent() {
    for file in ["ecdsap256.db", "nsec3.db"] {
        let records = proofs(&zone(file));
        let apex = name("example.test.");
        let proven = proves_expansion(
            &name("foo.wild.example.test."),
            3,
            &apex,
            &records,
            50,
            &work(),
        );
        assert_eq!(proven, Ok(Denial::NxDomain), "{file}");
        let none: Vec<Record> = Vec::new();
        let proven = proves_expansion(
            &name("foo.wild.example.test."),
            3,
            &apex,
            &none,
            50,
            &work(),
        );
        assert_eq!(proven, Ok(Denial::Unproven), "{file}");
    }
}

#[test]
fn security_of_an_answer_is_its_weakest_part() {
    use Security::*;
    assert_eq!(Secure.and(Secure), Secure);
    assert_eq!(Secure.and(Insecure), Insecure);
    assert_eq!(
        Insecure.and(Bogus(super::Bogus::Expired)),
        Bogus(super::Bogus::Expired)
    );
    assert_eq!(Indeterminate.and(Secure), Indeterminate);
}
