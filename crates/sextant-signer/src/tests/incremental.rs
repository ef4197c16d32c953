//! Signing a change gives the very zone that signing the changed zone whole gives
//! (Ed25519 signatures are deterministic, so the comparison is byte for byte),
//! through every kind of change: names added and removed, empty non-terminals
//! made and ended, delegations made and removed (occlusion moving), DS added
//! to an Opt-Out delegation, wildcards, DNAME.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use hickory_proto::dnssec::Algorithm;
use hickory_proto::serialize::binary::BinEncodable;
use sextant_zone::{LocatedRecord, Location, Zone, ZoneBuilder};

use super::*;

fn zone_of(records: &[Record]) -> Zone {
    let mut builder = ZoneBuilder::new(&name("example."), Path::new("signed"));
    for (line, record) in records.iter().enumerate() {
        builder.add(LocatedRecord {
            record: record.clone(),
            location: Location {
                file: Arc::new("signed".into()),
                line: line + 1,
            },
        });
    }
    builder.build().unwrap().0
}

fn wire_set(records: impl Iterator<Item = Record>) -> BTreeSet<Vec<u8>> {
    records.map(|r| r.to_bytes().unwrap()).collect()
}

fn text_of(set: &BTreeSet<Vec<u8>>) -> Vec<String> {
    use hickory_proto::serialize::binary::BinDecodable;
    set.iter()
        .map(|w| Record::from_bytes(w).unwrap().to_string())
        .collect()
}

/// The unsigned records `before` has and `after` lacks, and the other way.
fn difference(before: &str, after: &str) -> (Vec<Record>, Vec<Record>) {
    let (old, new) = (records(before), records(after));
    let old_wire = wire_set(old.iter().cloned());
    let new_wire = wire_set(new.iter().cloned());
    (
        old.into_iter()
            .filter(|r| !new_wire.contains(&r.to_bytes().unwrap()))
            .collect(),
        new.into_iter()
            .filter(|r| !old_wire.contains(&r.to_bytes().unwrap()))
            .collect(),
    )
}

/// Each text after the first is a change of the one before it.
fn steps() -> Vec<String> {
    let mut texts = vec![ZONE.to_string()];
    let mut serial = 7;
    let mut next = |edit: &dyn Fn(&str) -> String| {
        let last = texts.last().unwrap().clone();
        serial += 1;
        let edited = edit(&last).replace(
            &format!("hostmaster {} ", serial - 1),
            &format!("hostmaster {serial} "),
        );
        texts.push(edited);
    };
    // One RRset's data.
    next(&|t| t.replace("www A 192.0.2.2", "www A 192.0.2.22"));
    // A new name, and one with empty non-terminals above it.
    next(&|t| format!("{t}new TXT \"n\"\nx.y.deep A 192.0.2.9\n"));
    // The name under an empty non-terminal removed: both ENTs go.
    next(&|t| t.replace("a.b.ent A 192.0.2.3\n", ""));
    // A delegation over an existing name: www's data becomes occluded... at the
    // cut itself; names below it become glue.
    next(&|t| format!("{t}www NS ns.www\nns.www A 192.0.2.30\n"));
    // A delegation removed: its glue becomes authoritative data.
    next(&|t| t.replace("child NS ns.child\n", ""));
    // A DS added to the Opt-Out delegation left.
    next(&|t| {
        format!(
            "{t}www DS 54321 13 2 1111111111111111111111111111111111111111111111111111111111111111\n"
        )
    });
    // A wildcard, a DNAME, a name removed.
    next(&|t| {
        format!("{t}*.star A 192.0.2.40\nmoved DNAME elsewhere.example.\n")
            .replace("Mixed TXT \"case\"\n", "")
    });
    // TTL of one RRset only.
    next(&|t| t.replace("ns1 A 192.0.2.1", "ns1 120 A 192.0.2.1"));
    // Data below the DNAME (occluded), an insecure delegation below empty
    // non-terminals (left out of an Opt-Out chain with them).
    next(&|t| {
        format!(
            "{t}x.moved A 192.0.2.50
d.c.insecure NS ns.elsewhere.
"
        )
    });
    // The DNAME removed (x.moved comes out from under it), the DS removed
    // (www becomes an insecure delegation), the wildcard removed.
    next(&|t| {
        t.replace(
            "moved DNAME elsewhere.example.
",
            "",
        )
        .replace(
            "www DS 54321 13 2 1111111111111111111111111111111111111111111111111111111111111111
",
            "",
        )
        .replace(
            "*.star A 192.0.2.40
",
            "",
        )
    });
    // A secure delegation below the insecure one's empty non-terminals.
    next(&|t| {
        format!(
            "{t}s.c.insecure NS ns.elsewhere.
s.c.insecure DS 1 13 2 2222222222222222222222222222222222222222222222222222222222222222
"
        )
    });
    // A wildcard directly below the apex.
    next(&|t| format!("{t}* TXT \"apex wildcard\"\n"));
    texts
}

fn check_changes(denial: DenialPolicy) {
    let policy = policy(denial, Algorithm::ED25519);
    let keys = keys(Algorithm::ED25519);
    let texts = steps();
    let first = sign(&texts[0], &keys, &policy, NOW, None);
    let mut signed = first.records;
    let mut zone = zone_of(&signed);
    for (index, pair) in texts.windows(2).enumerate() {
        let now = NOW + 60 * (index as u64 + 1);
        let whole = sign(&pair[1], &keys, &policy, now, Some(&signed));
        let (removed, added) = difference(&pair[0], &pair[1]);
        let change = match resign(ResignRequest {
            zone: &zone,
            removed,
            added,
            keys: &keys,
            policy: &policy,
            now,
        })
        .unwrap_or_else(|e| panic!("step {index}: {e}"))
        {
            Resign::Change(change) => change,
            Resign::Whole(why) => panic!("step {index}: signed whole: {why}"),
        };
        assert_eq!(change.serial, whole.serial, "step {index}");
        let encode = |records: &[Record]| -> Vec<Vec<u8>> {
            records.iter().map(|r| r.to_bytes().unwrap()).collect()
        };
        let (next, _) = zone
            .apply(
                &encode(&change.removed),
                &encode(&change.added),
                Path::new("change"),
            )
            .unwrap_or_else(|e| panic!("step {index}: {e}"));
        let got = wire_set(next.axfr_records());
        let want = wire_set(whole.records.iter().cloned());
        let missing: Vec<String> = text_of(&want.difference(&got).cloned().collect());
        let extra: Vec<String> = text_of(&got.difference(&want).cloned().collect());
        assert!(
            missing.is_empty() && extra.is_empty(),
            "step {index}:\nmissing {missing:#?}\nextra {extra:#?}"
        );
        assert_verifies(&next.axfr_records().skip(1).collect::<Vec<_>>());
        assert!(
            change.made < 20,
            "step {index}: {} signatures made for a small change",
            change.made
        );
        signed = whole.records;
        zone = next;
    }
}

#[test]
fn a_signed_change_gives_the_whole_signing_result_with_nsec() {
    check_changes(DenialPolicy::Nsec);
}

#[test]
fn a_signed_change_gives_the_whole_signing_result_with_nsec3() {
    check_changes(DenialPolicy::Nsec3 {
        iterations: 0,
        salt_length: 0,
        opt_out: false,
    });
}

#[test]
fn a_signed_change_gives_the_whole_signing_result_with_nsec3_opt_out_and_salt() {
    check_changes(DenialPolicy::Nsec3 {
        iterations: 2,
        salt_length: 2,
        opt_out: true,
    });
}

#[test]
fn what_changes_the_whole_zone_is_sent_back_to_whole_signing() {
    let policy = policy(DenialPolicy::Nsec, Algorithm::ED25519);
    let keys = keys(Algorithm::ED25519);
    let zone = zone_of(&sign(ZONE, &keys, &policy, NOW, None).records);
    let whole_for = |keys: &[ZoneKey], policy: &Policy, edit: &dyn Fn(&str) -> String| {
        let (removed, added) = difference(ZONE, &edit(ZONE));
        match resign(ResignRequest {
            zone: &zone,
            removed,
            added,
            keys,
            policy,
            now: NOW + 60,
        })
        .unwrap()
        {
            Resign::Whole(why) => why,
            Resign::Change(_) => String::new(),
        }
    };
    let serial = |t: &str| t.replace("hostmaster 7 ", "hostmaster 8 ");
    assert!(
        whole_for(&keys, &policy, &|t| serial(t).replace(" 60\n", " 30\n")).contains("MINIMUM")
    );
    let other_keys = self::keys(Algorithm::ED25519);
    assert!(whole_for(&other_keys, &policy, &serial).contains("keys"));
    let nsec3 = self::policy(
        DenialPolicy::Nsec3 {
            iterations: 0,
            salt_length: 0,
            opt_out: false,
        },
        Algorithm::ED25519,
    );
    assert!(whole_for(&keys, &nsec3, &serial).contains("denial"));
    // A record the zone does not hold is an error, not a guess.
    let (_, added) = difference(ZONE, &serial(ZONE));
    let error = resign(ResignRequest {
        zone: &zone,
        removed: records("$TTL 300\nnothere A 192.0.2.99\n"),
        added,
        keys: &keys,
        policy: &policy,
        now: NOW + 60,
    })
    .unwrap_err();
    assert!(error.to_string().contains("does not hold"), "{error}");
}

/// The zone parser writes names in lower case, but a change from a transfer
/// carries them as the primary sent them: `MX 10 MAIL.example.` is the record
/// `MX 10 mail.example.` (RFC 4034 canonical form), as whole signing has it.
#[test]
fn data_differing_only_in_the_case_of_its_names_is_the_same_record() {
    let policy = policy(DenialPolicy::Nsec, Algorithm::ED25519);
    let keys = keys(Algorithm::ED25519);
    let signed = sign(
        &format!("{ZONE}mx MX 10 mail.example.\n"),
        &keys,
        &policy,
        NOW,
        None,
    );
    let zone = zone_of(&signed.records);
    let mx = |host: &str| {
        Record::from_rdata(
            name("mx.example."),
            300,
            RData::MX(hickory_proto::rr::rdata::MX::new(10, name(host))),
        )
    };
    let change = |removed: Vec<Record>, added: Vec<Record>| match resign(ResignRequest {
        zone: &zone,
        removed,
        added,
        keys: &keys,
        policy: &policy,
        now: NOW + 60,
    })
    .unwrap()
    {
        Resign::Change(change) => change,
        Resign::Whole(why) => panic!("signed whole: {why}"),
    };
    let mx_of = |records: &[Record]| -> Vec<String> {
        records
            .iter()
            .filter(|r| r.record_type() == RecordType::MX)
            .map(|r| r.to_string().to_lowercase())
            .collect()
    };
    // Added again in other case: the RRset keeps its one record.
    let added = change(Vec::new(), vec![mx("MAIL.example.")]);
    assert_eq!(mx_of(&added.added), Vec::<String>::new());
    assert_eq!(mx_of(&added.removed), Vec::<String>::new());
    // Removed in other case (twice, in two cases): the record held goes.
    let removed = change(vec![mx("Mail.Example."), mx("MAIL.EXAMPLE.")], Vec::new());
    assert_eq!(
        mx_of(&removed.removed),
        vec!["mx.example. 300 in mx 10 mail.example.".to_string()]
    );
    assert!(
        removed
            .removed
            .iter()
            .any(|r| r.record_type() == RecordType::RRSIG && r.name == name("mx.example.")),
        "the MX signature goes with it"
    );
}
