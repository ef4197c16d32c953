//! Entry points for the fuzz targets in fuzz/ (feature `fuzzing`) and for the replay
//! of their corpora in the unit tests: the classifier itself stays private.

use hickory_proto::op::Message;

use crate::classify::{Classified, End, classify};

/// Classifies any datagram as an answer to its own question, from every zone above
/// that question, and asserts the bailiwick rules: nothing outside the zone asked
/// comes out. For the fuzz target and the corpus replay; panics on a broken rule.
pub fn assert_bailiwick_rules(bytes: &[u8]) {
    let Ok(message) = Message::from_vec(bytes) else {
        return;
    };
    let Some(question) = message.queries.first() else {
        return;
    };
    let (qname, qtype) = (question.name().clone(), question.query_type());
    let mut zone = qname.clone();
    loop {
        match classify(&message, &zone, &qname, qtype) {
            Classified::Referral { child, ns, glue } => {
                assert!(zone.zone_of(&child) && child != zone && child.zone_of(&qname));
                assert!(ns.iter().all(|r| r.name == child));
                assert!(glue.iter().all(|r| zone.zone_of(&r.name)));
            }
            Classified::Found(found) => {
                assert!(found.chain.iter().all(|r| zone.zone_of(&r.name)));
                if let End::Records(records) = &found.end {
                    assert!(records.iter().all(|r| zone.zone_of(&r.name)));
                }
            }
            Classified::Lame(_) => {}
        }
        if zone.is_root() {
            break;
        }
        zone = zone.base_name();
    }
}

/// Runs the validator's checks over any datagram: every RRset of the answer section
/// against every RRSIG's signer with the message's own DNSKEYs, and the denial
/// proofs of the authority section for the question, from every zone above it, on
/// a small work budget. For the fuzz target and the corpus replay: it must neither
/// panic nor work past its budget.
pub fn exercise_validator(bytes: &[u8]) {
    use crate::dnssec::{self, Clock, Work, ZoneKey};
    let Ok(message) = Message::from_vec(bytes) else {
        return;
    };
    let Some(question) = message.queries.first() else {
        return;
    };
    let (qname, qtype) = (question.name().clone(), question.query_type());
    let keys: Vec<ZoneKey> = message
        .answers
        .iter()
        .chain(&message.additionals)
        .filter_map(dnssec::dnskey)
        .filter_map(ZoneKey::usable)
        .collect();
    let clock = Clock {
        now: 1_893_456_000,
        skew: 300,
    };
    let work = Work::new(16, 16, 4);
    let sigs: Vec<_> = message.answers.clone();
    for set in crate::chain::rrsets(&message.answers) {
        let signers: Vec<_> = dnssec::signatures_for(&sigs, &set[0].name, set[0].record_type())
            .map(|sig| sig.input().signer_name.clone())
            .collect();
        for signer in signers {
            let _ = dnssec::verify_rrset(&set, &sigs, &signer, &keys, clock, &work);
        }
    }
    let mut zone = qname.clone();
    loop {
        let _ = dnssec::deny(&qname, qtype, &zone, &message.authorities, 5, &work);
        let _ = dnssec::proves_expansion(&qname, 1, &zone, &message.authorities, 5, &work);
        if zone.is_root() {
            break;
        }
        zone = zone.base_name();
    }
}

#[cfg(test)]
mod corpus {
    /// Replays fuzz/corpus/resolver_validation.
    #[test]
    fn the_validation_fuzz_corpus_runs_clean() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/resolver_validation");
        let mut replayed = 0;
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if let Ok(bytes) = std::fs::read(entry.path()) {
                super::exercise_validator(&bytes);
                replayed += 1;
            }
        }
        assert!(replayed >= 4, "the seed corpus is missing");
    }

    /// Replays fuzz/corpus/resolver_response, where crash reproducers are committed.
    #[test]
    fn the_fuzz_corpus_keeps_the_bailiwick_rules() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/resolver_response");
        let mut replayed = 0;
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if let Ok(bytes) = std::fs::read(entry.path()) {
                super::assert_bailiwick_rules(&bytes);
                replayed += 1;
            }
        }
        assert!(replayed >= 4, "the seed corpus is missing");
    }
}
