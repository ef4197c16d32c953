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

#[cfg(test)]
mod corpus {
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
