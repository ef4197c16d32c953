//! `resolver nta list|add|remove`: the resolver's negative trust anchors (RFC 7646),
//! names below which answers are not validated while their zone's signing is broken.
//! They last until removed or until the resolver restarts (configure lasting ones in
//! `resolver.negative_trust_anchors`).

use std::path::Path;

use sextant_rpc::NtaAction;

use crate::Outcome;

pub(crate) async fn nta(config: &Path, action: NtaAction) -> Outcome {
    let mut client = match crate::cache::resolver(config).await {
        Ok(client) => client,
        Err(outcome) => return outcome,
    };
    match client.negative_trust_anchors(&action).await {
        Ok(Ok((changed, names))) => {
            match (&action, changed) {
                (NtaAction::Add(name), true) => say!("added {name}; cached data below it flushed"),
                (NtaAction::Add(name), false) => say!("{name} was already a negative trust anchor"),
                (NtaAction::Remove(name), true) => say!("removed {name}; validated again from now"),
                (NtaAction::Remove(name), false) => say!("{name} was not a negative trust anchor"),
                (NtaAction::List, _) => {}
            }
            if names.is_empty() {
                say!("no negative trust anchors");
            }
            for name in names {
                say!("{name}");
            }
            Outcome::Ok
        }
        Ok(Err(refusal)) => {
            eprintln!("the resolver refused: {refusal}");
            Outcome::BadInput
        }
        Err(error) => {
            eprintln!("{error}");
            Outcome::Unreachable
        }
    }
}
