//! The signer against its own promises: every signature verifies with the DNSKEY
//! it names, the chain covers exactly the authoritative names, and a second pass
//! over an unchanged zone changes nothing. The real tools' verdicts
//! (dnssec-verify, ldns-verify-zone, Unbound) are in the system tests.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use hickory_proto::dnssec::Verifier;
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::*;
use crate::{Action, ManagedKey, Timing, plan, usage};

const ZONE: &str = "$TTL 300
@ SOA ns1 hostmaster 7 3600 900 604800 60
@ NS ns1
ns1 A 192.0.2.1
www A 192.0.2.2
www AAAA 2001:db8::2
Mixed TXT \"case\"
*.wild TXT \"wild\"
a.b.ent A 192.0.2.3
child NS ns.child
ns.child A 192.0.2.4
secure NS ns.secure
secure DS 12345 13 2 0000000000000000000000000000000000000000000000000000000000000000
";

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn records(text: &str) -> Vec<Record> {
    let no_include = |_: &Path| -> std::io::Result<String> { Err(std::io::Error::other("no")) };
    sextant_zone::parse(text, Path::new("zone"), &name("example."), &no_include)
        .unwrap()
        .into_iter()
        .map(|located| located.record)
        .collect()
}

fn policy(denial: DenialPolicy, algorithm: hickory_proto::dnssec::Algorithm) -> Policy {
    Policy {
        name: "test".into(),
        algorithm,
        split: KeySplit::KskZsk,
        denial,
        validity: Duration::from_secs(14 * 86_400),
        refresh: Duration::from_secs(5 * 86_400),
        dnskey_ttl: 3600,
        zsk_lifetime: Duration::ZERO,
        ksk_lifetime: Duration::ZERO,
        propagation_delay: Duration::from_secs(3600),
        parent_ds_ttl: Duration::from_secs(86_400),
    }
}

fn keys(algorithm: hickory_proto::dnssec::Algorithm) -> Vec<ZoneKey> {
    vec![
        ZoneKey::new(KeyRole::Ksk, &PrivateKey::generate(algorithm).unwrap()).unwrap(),
        ZoneKey::new(KeyRole::Zsk, &PrivateKey::generate(algorithm).unwrap()).unwrap(),
    ]
}

const NOW: u64 = 1_800_000_000;

/// What signing returned, with the records it emitted.
struct Output {
    records: Vec<Record>,
    serial: u32,
    changed: bool,
    made: usize,
    kept: usize,
    refresh_at: u64,
}

fn sign(
    text: &str,
    keys: &[ZoneKey],
    policy: &Policy,
    now: u64,
    previous: Option<&[Record]>,
) -> Output {
    let mut records_out = Vec::new();
    let signed = sign_zone(
        SignRequest {
            origin: &name("example."),
            records: records(text),
            keys,
            policy,
            now,
            previous: previous
                .map(|p| Box::new(p.iter().cloned()) as Box<dyn Iterator<Item = Record>>),
            fresh_salt: match policy.denial {
                DenialPolicy::Nsec3 { salt_length, .. } => vec![0xab; usize::from(salt_length)],
                DenialPolicy::Nsec => Vec::new(),
            },
        },
        &mut |record| records_out.push(record),
    )
    .unwrap();
    Output {
        records: records_out,
        serial: signed.serial,
        changed: signed.changed,
        made: signed.made,
        kept: signed.kept,
        refresh_at: signed.refresh_at,
    }
}

/// Every RRSIG verifies with the DNSKEY of its tag, and every RRset of
/// authoritative data has one from each key of the right role.
fn assert_verifies(signed: &[Record]) {
    let dnskeys: Vec<DNSKEY> = signed
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(key)) => Some(key.clone()),
            _ => None,
        })
        .collect();
    let mut checked = 0;
    for record in signed {
        let RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) = &record.data else {
            continue;
        };
        let input = rrsig.input();
        // A key not published yet (an algorithm rollover's start) signs ahead.
        let Some(key) = dnskeys
            .iter()
            .find(|k| k.calculate_key_tag().unwrap() == input.key_tag)
        else {
            continue;
        };
        let set = signed
            .iter()
            .filter(|r| r.name == record.name && r.record_type() == input.type_covered);
        key.verify_rrsig(&record.name, DNSClass::IN, rrsig, set)
            .unwrap_or_else(|e| panic!("{} {}: {e}", record.name, input.type_covered));
        checked += 1;
    }
    assert!(checked > 10, "only {checked} signatures");
}

fn covered(signed: &[Record], owner: &str, rtype: RecordType) -> usize {
    signed
        .iter()
        .filter(|r| r.name == name(owner))
        .filter(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(s)) => s.input().type_covered == rtype,
            _ => false,
        })
        .count()
}

#[test]
fn every_signature_verifies_for_each_algorithm_and_denial() {
    use hickory_proto::dnssec::Algorithm;
    for algorithm in [
        Algorithm::ECDSAP256SHA256,
        Algorithm::ED25519,
        Algorithm::RSASHA256,
    ] {
        let keys = keys(algorithm);
        for denial in [
            DenialPolicy::Nsec,
            DenialPolicy::Nsec3 {
                iterations: 0,
                salt_length: 0,
                opt_out: false,
            },
        ] {
            let signed = sign(ZONE, &keys, &policy(denial.clone(), algorithm), NOW, None);
            assert_verifies(&signed.records);
            assert_eq!(signed.serial, 7);
            // The DNSKEY, CDS and CDNSKEY RRsets by the KSK only, data by the ZSK only.
            assert_eq!(covered(&signed.records, "example.", RecordType::DNSKEY), 1);
            assert_eq!(covered(&signed.records, "example.", RecordType::CDS), 1);
            assert_eq!(covered(&signed.records, "example.", RecordType::CDNSKEY), 1);
            assert_eq!(covered(&signed.records, "www.example.", RecordType::A), 1);
            // A delegation: DS signed, NS and glue not.
            assert_eq!(
                covered(&signed.records, "secure.example.", RecordType::DS),
                1
            );
            assert_eq!(
                covered(&signed.records, "child.example.", RecordType::NS),
                0
            );
            assert_eq!(
                covered(&signed.records, "ns.child.example.", RecordType::A),
                0
            );
        }
    }
}

#[test]
fn the_nsec_chain_links_exactly_the_authoritative_names() {
    use hickory_proto::dnssec::Algorithm;
    let keys = keys(Algorithm::ECDSAP256SHA256);
    let signed = sign(
        ZONE,
        &keys,
        &policy(DenialPolicy::Nsec, Algorithm::ECDSAP256SHA256),
        NOW,
        None,
    );
    let mut links: Vec<(String, String)> = signed
        .records
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::NSEC(nsec)) => {
                Some((r.name.to_string(), nsec.next_domain_name().to_string()))
            }
            _ => None,
        })
        .collect();
    links.sort();
    let owners: Vec<&str> = links.iter().map(|(o, _)| o.as_str()).collect();
    // Glue under child. is not in the chain; the empty non-terminals b.ent and ent
    // have no NSEC; every name is lower-cased.
    assert_eq!(
        owners,
        [
            "*.wild.example.",
            "a.b.ent.example.",
            "child.example.",
            "example.",
            "mixed.example.",
            "ns1.example.",
            "secure.example.",
            "www.example.",
        ]
    );
    // The last name points back to the apex.
    assert!(links.contains(&("www.example.".into(), "example.".into())));
}

#[test]
fn nsec3_covers_empty_non_terminals_and_opt_out_skips_insecure_delegations() {
    use hickory_proto::dnssec::Algorithm;
    let keys = keys(Algorithm::ECDSAP256SHA256);
    let count = |opt_out: bool| {
        let denial = DenialPolicy::Nsec3 {
            iterations: 0,
            salt_length: 0,
            opt_out,
        };
        let signed = sign(
            ZONE,
            &keys,
            &policy(denial, Algorithm::ECDSAP256SHA256),
            NOW,
            None,
        );
        assert_verifies(&signed.records);
        signed
            .records
            .iter()
            .filter(|r| r.record_type() == RecordType::NSEC3)
            .count()
    };
    // 8 names with data plus the empty non-terminals b.ent, ent and wild.
    assert_eq!(count(false), 11);
    // Opt-Out leaves out child (no DS); secure keeps its record.
    assert_eq!(count(true), 10);
}

#[test]
fn an_unchanged_zone_signed_again_is_the_same_version() {
    use hickory_proto::dnssec::Algorithm;
    let keys = keys(Algorithm::ECDSAP256SHA256);
    let policy = policy(
        DenialPolicy::Nsec3 {
            iterations: 0,
            salt_length: 2,
            opt_out: false,
        },
        Algorithm::ECDSAP256SHA256,
    );
    let first = sign(ZONE, &keys, &policy, NOW, None);
    // A day later nothing is due: every signature is kept, the serial stays.
    let again = sign(ZONE, &keys, &policy, NOW + 86_400, Some(&first.records));
    assert!(!again.changed);
    assert_eq!(again.made, 0);
    assert_eq!(again.serial, first.serial);
    let mut a: Vec<String> = first.records.iter().map(|r| r.to_string()).collect();
    let mut b: Vec<String> = again.records.iter().map(|r| r.to_string()).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn a_change_re_signs_only_what_it_touches_and_moves_the_serial() {
    use hickory_proto::dnssec::Algorithm;
    let keys = keys(Algorithm::ECDSAP256SHA256);
    let policy = policy(DenialPolicy::Nsec, Algorithm::ECDSAP256SHA256);
    let first = sign(ZONE, &keys, &policy, NOW, None);
    let changed = ZONE.replace("www A 192.0.2.2", "www A 192.0.2.22");
    let second = sign(&changed, &keys, &policy, NOW + 60, Some(&first.records));
    assert!(second.changed);
    // The A RRset and the SOA: two signatures; the rest kept.
    assert_eq!(second.made, 2, "made {} kept {}", second.made, second.kept);
    assert_eq!(second.serial, 8);
    assert_verifies(&second.records);
    // A new name changes its neighbours' NSEC records too.
    let added = format!("{ZONE}new A 192.0.2.9\n");
    let third = sign(&added, &keys, &policy, NOW + 120, Some(&first.records));
    // new's A and NSEC, the NSEC before it (mixed -> new), the SOA.
    assert_eq!(third.made, 4, "made {} kept {}", third.made, third.kept);
    // An operator who moves the file's serial ahead gets that serial.
    let bumped = added.replace("hostmaster 7", "hostmaster 100");
    let fourth = sign(&bumped, &keys, &policy, NOW + 180, Some(&third.records));
    assert_eq!(fourth.serial, 100);
}

#[test]
fn signatures_close_to_expiry_are_made_again() {
    use hickory_proto::dnssec::Algorithm;
    let keys = keys(Algorithm::ED25519);
    let policy = policy(DenialPolicy::Nsec, Algorithm::ED25519);
    let first = sign(ZONE, &keys, &policy, NOW, None);
    assert!(first.refresh_at >= NOW + 7 * 86_400 && first.refresh_at <= NOW + 9 * 86_400);
    // Past the refresh point of every signature (validity 14 d - jitter <= 1.4 d,
    // refresh 5 d): all are made again, and the serial moves.
    let later = sign(
        ZONE,
        &keys,
        &policy,
        NOW + 10 * 86_400,
        Some(&first.records),
    );
    assert_eq!(later.kept, 0);
    assert!(later.changed);
    assert_eq!(later.serial, first.serial + 1);
}

/// The refresh timer run as the authority runs it (a pass whenever the first
/// signature falls due): expirations spread over a tenth of the validity are
/// made again in passes at least the refresh window apart, not one pass per
/// signature, and no pass leaves a signature inside the refresh period.
#[test]
fn signatures_falling_due_are_made_again_in_batches() {
    use hickory_proto::dnssec::Algorithm;
    let keys = keys(Algorithm::ED25519);
    let policy = policy(DenialPolicy::Nsec, Algorithm::ED25519);
    let window = crate::sign::refresh_window(&policy);
    assert_eq!(window, 3600);
    let zone: String = (0..150).fold(ZONE.to_string(), |zone, i| {
        format!("{zone}host{i} A 192.0.2.{}\n", i % 250)
    });
    let mut signed = sign(&zone, &keys, &policy, NOW, None);
    let mut passes = 0;
    let mut now = signed.refresh_at;
    // Two weeks of the timer: past the first signatures' whole spread.
    while now < NOW + 14 * 86_400 {
        let next = sign(&zone, &keys, &policy, now, Some(&signed.records));
        passes += 1;
        assert!(next.made > 0, "a pass at {now} made nothing");
        assert!(
            next.refresh_at >= now + window,
            "the next pass {} s after this one",
            next.refresh_at - now
        );
        for record in &next.records {
            if let RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) = &record.data {
                let expiration = u64::from(rrsig.input().sig_expiration.get());
                assert!(expiration > now + policy.refresh.as_secs());
            }
        }
        now = next.refresh_at;
        signed = next;
    }
    // 300-odd RRsets whose expirations spread over 1.4 days: one pass per hour
    // of the spread at most (and another for the SOA made in every pass).
    let spread_hours = policy.validity.as_secs() / 10 / 3600;
    assert!(
        passes <= 2 * (spread_hours + 2),
        "{passes} passes for a spread of {spread_hours} hours"
    );
}

/// A key rollover run hour by hour through the planner and the signer, as the
/// authority runs it.
struct Rollover {
    split: KeySplit,
    timing: Timing,
    keys: Vec<(ManagedKey, PrivateKey)>,
    policy: Policy,
    /// (time, signed zone) at every step.
    steps: Vec<(u64, Vec<Record>)>,
}

impl Rollover {
    fn new(split: KeySplit, timing: Timing) -> Self {
        let mut policy = policy(
            DenialPolicy::Nsec,
            hickory_proto::dnssec::Algorithm::ED25519,
        );
        policy.split = split;
        Self {
            split,
            timing,
            keys: Vec::new(),
            policy,
            steps: Vec::new(),
        }
    }

    fn step(&mut self, now: u64) {
        for _ in 0..4 {
            let managed: Vec<ManagedKey> = self.keys.iter().map(|(m, _)| m.clone()).collect();
            let plan = plan(
                &managed,
                self.split,
                u8::from(self.policy.algorithm),
                &self.timing,
                now,
            );
            if plan.actions.is_empty() {
                break;
            }
            for action in plan.actions {
                match action {
                    Action::Make { role, active } => self.make(role, now, active, false),
                    Action::MakeHidden(role) => self.make(role, now, true, true),
                    Action::Publish(tag) => self.set(tag, |k| {
                        k.hidden = false;
                        k.published = now;
                    }),
                    Action::Unpublish(tag) => self.set(tag, |k| k.unpublished = Some(now)),
                    Action::Activate(tag) => self.set(tag, |k| k.active = Some(now)),
                    Action::Retire(tag) => self.set(tag, |k| k.retired = Some(now)),
                    Action::Remove(tag) => self.keys.retain(|(k, _)| k.tag != tag),
                }
            }
        }
        let managed: Vec<ManagedKey> = self.keys.iter().map(|(m, _)| m.clone()).collect();
        let zone_keys: Vec<ZoneKey> = self
            .keys
            .iter()
            .map(|(m, private)| {
                ZoneKey::new(m.role, private).unwrap().with_use(usage(
                    &managed,
                    m,
                    &self.timing,
                    now,
                ))
            })
            .collect();
        let previous = self.steps.last().map(|(_, records)| records.clone());
        let signed = sign(ZONE, &zone_keys, &self.policy, now, previous.as_deref());
        assert_verifies(&signed.records);
        self.steps.push((now, signed.records));
    }

    fn make(&mut self, role: KeyRole, now: u64, active: bool, hidden: bool) {
        let algorithm = self.policy.algorithm;
        let private = PrivateKey::generate(algorithm).unwrap();
        let tag = ZoneKey::new(role, &private).unwrap().tag();
        let managed = ManagedKey {
            role,
            tag,
            published: now,
            active: active.then_some(now),
            retired: None,
            submitted: None,
            algorithm: u8::from(algorithm),
            hidden,
            unpublished: None,
        };
        self.keys.push((managed, private));
    }

    fn set(&mut self, tag: u16, change: impl Fn(&mut ManagedKey)) {
        for (key, _) in self.keys.iter_mut().filter(|(k, _)| k.tag == tag) {
            change(key);
        }
    }

    fn tags(&self) -> Vec<u16> {
        self.keys.iter().map(|(k, _)| k.tag).collect()
    }

    /// RFC 7583's promise, checked between every two steps: a validator holding
    /// the DNSKEY RRset of an earlier step (within its TTL) validates the data of a
    /// later one, and one holding data of an earlier step (within the zone's TTL)
    /// validates it with the DNSKEY RRset of a later one.
    fn assert_no_validator_breaks(&self) {
        let ttl = self.timing.dnskey_ttl.as_secs() + self.timing.propagation.as_secs();
        let data_ttl = 300;
        for (i, (earlier, old)) in self.steps.iter().enumerate() {
            for (later, new) in &self.steps[i + 1..] {
                if later - earlier < ttl {
                    assert_signed_by_keys_of(
                        new,
                        old,
                        &format!("data at {later}, keys of {earlier}"),
                    );
                }
                if later - earlier < data_ttl {
                    assert_signed_by_keys_of(
                        old,
                        new,
                        &format!("data at {earlier}, keys of {later}"),
                    );
                }
            }
        }
    }
}

/// Every RRset of `data` (but DNSKEY/CDS/CDNSKEY) has a signature in `data` that
/// verifies with a DNSKEY of `keys`.
fn assert_signed_by_keys_of(data: &[Record], keys: &[Record], what: &str) {
    let dnskeys: Vec<DNSKEY> = keys
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(key)) => Some(key.clone()),
            _ => None,
        })
        .collect();
    let mut sets: std::collections::BTreeSet<(Name, RecordType)> = Default::default();
    for record in data {
        if !matches!(
            record.record_type(),
            RecordType::RRSIG | RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY
        ) {
            sets.insert((record.name.clone(), record.record_type()));
        }
    }
    for (owner, rtype) in sets {
        let rrset: Vec<&Record> = data
            .iter()
            .filter(|r| r.name == owner && r.record_type() == rtype)
            .collect();
        let signed = data.iter().any(|r| {
            let RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) = &r.data else {
                return false;
            };
            r.name == owner
                && rrsig.input().type_covered == rtype
                && dnskeys.iter().any(|key| {
                    key.verify_rrsig(&owner, DNSClass::IN, rrsig, rrset.iter().copied())
                        .is_ok()
                })
        });
        // Glue and delegation NS sets carry no signature at all.
        let unsigned_by_design = !data.iter().any(|r| {
            matches!(&r.data, RData::DNSSEC(DNSSECRData::RRSIG(s)) if r.name == owner && s.input().type_covered == rtype)
        });
        assert!(
            signed || unsigned_by_design,
            "{what}: {owner} {rtype} fails"
        );
    }
}

fn rollover_timing() -> Timing {
    Timing {
        dnskey_ttl: Duration::from_secs(3600),
        propagation: Duration::from_secs(3600),
        max_zone_ttl: Duration::from_secs(300),
        parent_ds_ttl: Duration::from_secs(86_400),
        zsk_lifetime: Duration::from_secs(30 * 86_400),
        ksk_lifetime: Duration::from_secs(365 * 86_400),
    }
}

#[test]
fn a_zsk_rollover_never_leaves_a_caching_validator_without_a_key() {
    let mut run = Rollover::new(KeySplit::KskZsk, rollover_timing());
    run.step(NOW);
    let first = run.tags();
    // Through the rollover, hour by hour from just before the lifetime ends.
    let start = NOW + 30 * 86_400 - 3_600;
    for hour in 0..8 {
        run.step(start + hour * 3_600);
    }
    run.assert_no_validator_breaks();
    let last = run.tags();
    assert_eq!(last.len(), 2, "{last:?}");
    assert_eq!(last[0], first[0], "the KSK stays");
    assert_ne!(last[1], first[1], "the ZSK was replaced");
}

#[test]
fn a_csk_rollover_keeps_the_old_key_until_the_ds_has_changed() {
    let mut run = Rollover::new(KeySplit::Csk, rollover_timing());
    run.step(NOW);
    let old = run.tags()[0];
    let start = NOW + 365 * 86_400;
    for hour in 0..4 {
        run.step(start + hour * 3_600);
    }
    assert_eq!(run.tags().len(), 2);
    let new = run.tags()[1];
    // The CDS names the new key; nothing goes until the DS is confirmed.
    let cds = |records: &[Record]| -> Vec<u16> {
        records
            .iter()
            .filter_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::CDS(cds)) => Some(cds.key_tag()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(cds(&run.steps.last().unwrap().1), [new]);
    run.step(start + 20 * 86_400);
    assert_eq!(run.tags(), [old, new]);
    // Confirmed: a day and an hour later (parent DS TTL + propagation) the old
    // key leaves.
    let submitted = start + 20 * 86_400;
    run.set(new, |k| k.submitted = Some(submitted));
    run.step(submitted + 86_400);
    assert_eq!(run.tags(), [old, new]);
    run.step(submitted + 86_400 + 3_600);
    assert_eq!(run.tags(), [new]);
    run.assert_no_validator_breaks();
}

#[test]
fn an_algorithm_rollover_signs_first_publishes_next_and_waits_for_the_ds() {
    use hickory_proto::dnssec::Algorithm;
    let mut run = Rollover::new(KeySplit::KskZsk, rollover_timing());
    run.policy.algorithm = Algorithm::ECDSAP256SHA256;
    run.step(NOW);
    let old = run.tags();
    // The policy's algorithm changes.
    run.policy.algorithm = Algorithm::ED25519;
    let dnskeys = |records: &[Record]| {
        records
            .iter()
            .filter(|r| r.record_type() == RecordType::DNSKEY)
            .count()
    };
    run.step(NOW + 60);
    assert_eq!(run.tags().len(), 4, "new keys made");
    // Signing with both, publishing the old ones only.
    assert_eq!(dnskeys(&run.steps.last().unwrap().1), 2);
    // Zone TTL (300 s) + propagation later: the new DNSKEYs are published.
    run.step(NOW + 60 + 3_600 + 300);
    assert_eq!(dnskeys(&run.steps.last().unwrap().1), 4);
    // DNSKEY TTL + propagation later: the CDS names the new KSK; waiting.
    for hour in 1..4 {
        run.step(NOW + 60 + 3_600 + 300 + hour * 3_600);
    }
    let last = &run.steps.last().unwrap().1;
    let cds: Vec<u16> = last
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::CDS(cds)) => Some(cds.key_tag()),
            _ => None,
        })
        .collect();
    let new_ksk = run
        .keys
        .iter()
        .find(|(k, _)| k.role == KeyRole::Ksk && !old.contains(&k.tag))
        .unwrap()
        .0
        .tag;
    assert_eq!(cds, [new_ksk]);
    assert_eq!(run.tags().len(), 4);
    // Submitted: the old DNSKEYs go a day and an hour later, the old keys an
    // hour and a DNSKEY TTL after that.
    let submitted = NOW + 6 * 3_600;
    run.set(new_ksk, |k| k.submitted = Some(submitted));
    run.step(submitted + 86_400 + 3_600);
    assert_eq!(dnskeys(&run.steps.last().unwrap().1), 2);
    assert_eq!(run.tags().len(), 4, "old keys still sign");
    run.step(submitted + 86_400 + 3 * 3_600);
    assert_eq!(run.tags().len(), 2);
    assert!(run.tags().iter().all(|t| !old.contains(t)));
    run.assert_no_validator_breaks();
}

mod incremental;
