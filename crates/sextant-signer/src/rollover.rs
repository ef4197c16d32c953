//! Key rollovers (RFC 6781 §4.1, RFC 7583): when to make, activate, retire and
//! remove keys, as a pure function of the keys' times and the clock, so that every
//! step is tested by moving the clock rather than by waiting.
//!
//! - **ZSK, pre-publication** (RFC 7583 §3.2.1): the successor is published, and
//!   signs only once its DNSKEY has reached every cache (DNSKEY TTL + propagation
//!   delay); the old key stays published until the signatures it made have left
//!   every cache (the zone's largest TTL + propagation delay).
//! - **KSK, double-KSK** (RFC 7583 §3.3.2): the successor is published and signs the
//!   DNSKEY RRset at once beside the old key; once it has reached every cache the
//!   CDS/CDNSKEY records name it alone and the operator submits its DS (or confirms
//!   the parent has it) with `sextantctl dnssec ksk-submitted`; the old key goes
//!   when the parent's old DS has left every cache (parent DS TTL + propagation).
//! - **CSK**: the successor is published, takes over all signing once it has reached
//!   every cache, and the old key keeps signing the DNSKEY RRset until the DS
//!   change has propagated and its data signatures have expired from caches.
//! - **Algorithm** (RFC 6781 §4.1.4, the conservative order): keys of the new
//!   algorithm sign every RRset before their DNSKEYs are published (a validator
//!   must find signatures of every algorithm the DNSKEY RRset lists); once those
//!   signatures are in every cache the new DNSKEYs are published; once they are in
//!   every cache the CDS names the new key-signing key and the operator submits its
//!   DS; after the old DS has left the caches the old DNSKEYs go, and after they
//!   have left the caches the old keys stop signing and are removed.

use std::time::Duration;

use crate::key::{KeyRole, KeyUse};
use crate::policy::KeySplit;

/// A key's life so far, seconds since the epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedKey {
    /// What it signs.
    pub role: KeyRole,
    /// Its key tag.
    pub tag: u16,
    /// When its DNSKEY entered the zone.
    pub published: u64,
    /// When it started signing (a key being rolled in waits).
    pub active: Option<u64>,
    /// When it stopped signing zone data (a key being rolled out).
    pub retired: Option<u64>,
    /// When the operator confirmed the parent has its DS (key-signing keys).
    pub submitted: Option<u64>,
    /// Its DNSSEC algorithm number.
    pub algorithm: u8,
    /// Signing without its DNSKEY in the zone yet (the first step of an algorithm
    /// rollover); `published` is then when it started signing.
    pub hidden: bool,
    /// When its DNSKEY left the zone while it still signs (the last step of an
    /// algorithm rollover).
    pub unpublished: Option<u64>,
}

/// The waits between steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// TTL of the DNSKEY RRset.
    pub dnskey_ttl: Duration,
    /// How long a change takes to reach every secondary (and so every cache's
    /// source), on top of TTLs.
    pub propagation: Duration,
    /// The largest TTL in the zone: how long old signatures may be cached.
    pub max_zone_ttl: Duration,
    /// TTL of the DS RRset at the parent.
    pub parent_ds_ttl: Duration,
    /// How long a zone-signing key is used; zero: for good.
    pub zsk_lifetime: Duration,
    /// How long a key-signing (or combined) key is used; zero: for good.
    pub ksk_lifetime: Duration,
}

/// One step of a rollover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Make a key of `role` and publish it now; it signs at once when `active`.
    Make {
        /// Its role.
        role: KeyRole,
        /// Whether it signs from now.
        active: bool,
    },
    /// The key starts signing now.
    Activate(u16),
    /// The key stops signing zone data now (it stays published).
    Retire(u16),
    /// The key leaves the zone.
    Remove(u16),
    /// Make a key of `role` that signs from now but is not published yet (an
    /// algorithm rollover's first step).
    MakeHidden(KeyRole),
    /// The key's DNSKEY enters the zone now.
    Publish(u16),
    /// The key's DNSKEY leaves the zone now; it still signs.
    Unpublish(u16),
}

/// What to do now, and when to look again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The steps due now, in order.
    pub actions: Vec<Action>,
    /// When the next step falls due (seconds since the epoch), if one is timed.
    pub next_event: Option<u64>,
    /// A key whose DS the parent needs before the rollover can go on.
    pub waiting_for_ds: Option<u16>,
}

impl Plan {
    fn at(&mut self, when: u64) {
        self.next_event = Some(self.next_event.map_or(when, |t| t.min(when)));
    }
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

/// The steps due at `now` for `keys` under `split`, the zone's algorithm now being
/// `algorithm`.
pub fn plan(
    keys: &[ManagedKey],
    split: KeySplit,
    algorithm: u8,
    timing: &Timing,
    now: u64,
) -> Plan {
    let mut plan = Plan::default();
    if keys.iter().any(|k| k.algorithm != algorithm) {
        plan_algorithm(keys, split, algorithm, timing, now, &mut plan);
        return plan;
    }
    match split {
        KeySplit::KskZsk => {
            plan_ksk(keys, KeyRole::Ksk, timing, now, &mut plan);
            plan_zsk(keys, timing, now, &mut plan);
        }
        KeySplit::Csk => plan_csk(keys, timing, now, &mut plan),
    }
    plan
}

/// An algorithm rollover, step by step (module documentation).
fn plan_algorithm(
    keys: &[ManagedKey],
    split: KeySplit,
    algorithm: u8,
    timing: &Timing,
    now: u64,
    plan: &mut Plan,
) {
    let (new, old): (Vec<&ManagedKey>, Vec<&ManagedKey>) =
        keys.iter().partition(|k| k.algorithm == algorithm);
    let roles: &[KeyRole] = match split {
        KeySplit::Csk => &[KeyRole::Csk],
        KeySplit::KskZsk => &[KeyRole::Ksk, KeyRole::Zsk],
    };
    if new.is_empty() {
        plan.actions
            .extend(roles.iter().map(|role| Action::MakeHidden(*role)));
        return;
    }
    let ttl = secs(timing.dnskey_ttl) + secs(timing.propagation);
    // New signatures in every cache: publish the new keys.
    if new.iter().any(|k| k.hidden) {
        let since = new.iter().map(|k| k.published).max().unwrap_or(now);
        let due = since + secs(timing.max_zone_ttl) + secs(timing.propagation);
        if now >= due {
            plan.actions.extend(
                new.iter()
                    .filter(|k| k.hidden)
                    .map(|k| Action::Publish(k.tag)),
            );
        } else {
            plan.at(due);
        }
        return;
    }
    let published = new.iter().map(|k| k.published).max().unwrap_or(now);
    let entry = new
        .iter()
        .filter(|k| k.role.signs_keys())
        .max_by_key(|k| (k.published, k.tag));
    let Some(entry) = entry else {
        return;
    };
    if now < published + ttl {
        plan.at(published + ttl);
        return;
    }
    let Some(submitted) = entry.submitted else {
        plan.waiting_for_ds = Some(entry.tag);
        return;
    };
    // The old DS out of caches: the old DNSKEYs go; once those are out of caches
    // too, the old keys stop signing and go.
    let unpublish =
        submitted.max(published + ttl) + secs(timing.parent_ds_ttl) + secs(timing.propagation);
    if old.iter().any(|k| k.unpublished.is_none()) {
        if now >= unpublish {
            plan.actions.extend(
                old.iter()
                    .filter(|k| k.unpublished.is_none())
                    .map(|k| Action::Unpublish(k.tag)),
            );
        } else {
            plan.at(unpublish);
        }
        return;
    }
    let gone = old
        .iter()
        .filter_map(|k| k.unpublished)
        .max()
        .unwrap_or(now)
        + ttl;
    if now >= gone {
        plan.actions
            .extend(old.iter().map(|k| Action::Remove(k.tag)));
    } else {
        plan.at(gone);
    }
}

fn of_role(keys: &[ManagedKey], role: KeyRole) -> Vec<&ManagedKey> {
    let mut keys: Vec<&ManagedKey> = keys.iter().filter(|k| k.role == role).collect();
    keys.sort_by_key(|k| (k.published, k.tag));
    keys
}

fn plan_zsk(keys: &[ManagedKey], timing: &Timing, now: u64, plan: &mut Plan) {
    let zsks = of_role(keys, KeyRole::Zsk);
    let current = zsks
        .iter()
        .find(|k| k.active.is_some() && k.retired.is_none());
    let successor = zsks.iter().find(|k| k.active.is_none());
    for retired in zsks.iter().filter(|k| k.retired.is_some()) {
        let gone =
            retired.retired.unwrap_or(now) + secs(timing.max_zone_ttl) + secs(timing.propagation);
        if now >= gone {
            plan.actions.push(Action::Remove(retired.tag));
        } else {
            plan.at(gone);
        }
    }
    match (current, successor) {
        (None, None) => plan.actions.push(Action::Make {
            role: KeyRole::Zsk,
            active: true,
        }),
        (current, Some(successor)) => {
            let ready = successor.published + secs(timing.dnskey_ttl) + secs(timing.propagation);
            if now >= ready {
                plan.actions.push(Action::Activate(successor.tag));
                if let Some(current) = current {
                    plan.actions.push(Action::Retire(current.tag));
                }
            } else {
                plan.at(ready);
            }
        }
        (Some(current), None) if !timing.zsk_lifetime.is_zero() => {
            let due = current.active.unwrap_or(now) + secs(timing.zsk_lifetime);
            if now >= due {
                plan.actions.push(Action::Make {
                    role: KeyRole::Zsk,
                    active: false,
                });
            } else {
                plan.at(due);
            }
        }
        (Some(_), None) => {}
    }
}

fn plan_ksk(keys: &[ManagedKey], role: KeyRole, timing: &Timing, now: u64, plan: &mut Plan) {
    let ksks = of_role(keys, role);
    match ksks.as_slice() {
        [] => plan.actions.push(Action::Make { role, active: true }),
        [only] => {
            if !timing.ksk_lifetime.is_zero() {
                let due = only.active.unwrap_or(now) + secs(timing.ksk_lifetime);
                if now >= due {
                    plan.actions.push(Action::Make { role, active: true });
                } else {
                    plan.at(due);
                }
            }
        }
        [old, .., new] => {
            let ready = new.published + secs(timing.dnskey_ttl) + secs(timing.propagation);
            match new.submitted {
                None if now >= ready => plan.waiting_for_ds = Some(new.tag),
                None => plan.at(ready),
                Some(submitted) => {
                    let gone = submitted.max(ready)
                        + secs(timing.parent_ds_ttl)
                        + secs(timing.propagation);
                    if now >= gone {
                        plan.actions.push(Action::Remove(old.tag));
                    } else {
                        plan.at(gone);
                    }
                }
            }
        }
    }
}

fn plan_csk(keys: &[ManagedKey], timing: &Timing, now: u64, plan: &mut Plan) {
    let csks = of_role(keys, KeyRole::Csk);
    match csks.as_slice() {
        [] => plan.actions.push(Action::Make {
            role: KeyRole::Csk,
            active: true,
        }),
        [only] => {
            if !timing.ksk_lifetime.is_zero() {
                let due = only.active.unwrap_or(now) + secs(timing.ksk_lifetime);
                if now >= due {
                    plan.actions.push(Action::Make {
                        role: KeyRole::Csk,
                        active: false,
                    });
                } else {
                    plan.at(due);
                }
            }
        }
        [old, .., new] => {
            let ready = new.published + secs(timing.dnskey_ttl) + secs(timing.propagation);
            if new.active.is_none() {
                if now >= ready {
                    plan.actions.push(Action::Activate(new.tag));
                    plan.actions.push(Action::Retire(old.tag));
                } else {
                    plan.at(ready);
                }
                return;
            }
            let Some(submitted) = new.submitted else {
                plan.waiting_for_ds = Some(new.tag);
                return;
            };
            let retired = old.retired.unwrap_or(now);
            let gone = (submitted + secs(timing.parent_ds_ttl))
                .max(retired + secs(timing.max_zone_ttl))
                + secs(timing.propagation);
            if now >= gone {
                plan.actions.push(Action::Remove(old.tag));
            } else {
                plan.at(gone);
            }
        }
    }
}

/// What `key` does at `now`, given the zone's other keys.
pub fn usage(keys: &[ManagedKey], key: &ManagedKey, timing: &Timing, now: u64) -> KeyUse {
    let algorithms: std::collections::BTreeSet<u8> = keys.iter().map(|k| k.algorithm).collect();
    if algorithms.len() > 1 {
        return usage_in_algorithm_rollover(keys, key, timing, now);
    }
    let active = key.active.is_some_and(|t| t <= now);
    let retired = key.retired.is_some_and(|t| t <= now);
    let same_role = of_role(keys, key.role);
    let newest = same_role.last().is_some_and(|k| k.tag == key.tag);
    let newest_ready = same_role.last().is_some_and(|new| {
        now >= new.published + secs(timing.dnskey_ttl) + secs(timing.propagation)
    });
    match key.role {
        KeyRole::Zsk => KeyUse {
            publish: true,
            sign_keyset: false,
            sign_zone: active && !retired,
            ds: false,
        },
        KeyRole::Ksk => KeyUse {
            publish: true,
            sign_keyset: active,
            sign_zone: false,
            // The newest key once it is in every cache; until then the old one.
            ds: same_role.len() == 1 || newest == newest_ready,
        },
        KeyRole::Csk => {
            let successor_active = !newest
                && same_role
                    .last()
                    .is_some_and(|new| new.active.is_some_and(|t| t <= now));
            KeyUse {
                publish: true,
                // The old key signs the DNSKEY RRset until it leaves: the parent's
                // DS may still name it.
                sign_keyset: active,
                sign_zone: active && !retired,
                ds: if newest { active } else { !successor_active },
            }
        }
    }
}

/// During an algorithm rollover every key signs as its role says (both algorithms
/// sign every RRset); publication and the DS follow the steps.
fn usage_in_algorithm_rollover(
    keys: &[ManagedKey],
    key: &ManagedKey,
    timing: &Timing,
    now: u64,
) -> KeyUse {
    // The new algorithm is the one whose keys were made last.
    let newest = keys.iter().max_by_key(|k| (k.published, k.tag));
    let new_algorithm = newest.map_or(key.algorithm, |k| k.algorithm);
    let ttl = secs(timing.dnskey_ttl) + secs(timing.propagation);
    let new_ready = keys
        .iter()
        .filter(|k| k.algorithm == new_algorithm)
        .all(|k| !k.hidden && now >= k.published + ttl);
    let is_new = key.algorithm == new_algorithm;
    KeyUse {
        publish: if is_new {
            !key.hidden
        } else {
            key.unpublished.is_none()
        },
        sign_keyset: key.role.signs_keys(),
        sign_zone: key.role.signs_zone(),
        ds: key.role.signs_keys() && (is_new == new_ready),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const HOUR: u64 = 3_600;
    const DAY: u64 = 86_400;

    fn timing() -> Timing {
        Timing {
            dnskey_ttl: Duration::from_secs(HOUR),
            propagation: Duration::from_secs(HOUR),
            max_zone_ttl: Duration::from_secs(DAY),
            parent_ds_ttl: Duration::from_secs(DAY),
            zsk_lifetime: Duration::from_secs(30 * DAY),
            ksk_lifetime: Duration::from_secs(365 * DAY),
        }
    }

    fn key(role: KeyRole, tag: u16, published: u64, active: Option<u64>) -> ManagedKey {
        ManagedKey {
            role,
            tag,
            published,
            active,
            retired: None,
            submitted: None,
            algorithm: 13,
            hidden: false,
            unpublished: None,
        }
    }

    /// Applies `actions` as the authority would, with new keys tagged from 100.
    fn apply(keys: &mut Vec<ManagedKey>, actions: &[Action], now: u64) {
        for action in actions {
            match action {
                Action::Make { role, active } => {
                    let tag = 100 + keys.len() as u16;
                    keys.push(key(*role, tag, now, active.then_some(now)));
                }
                Action::Activate(tag) => {
                    for k in keys.iter_mut().filter(|k| k.tag == *tag) {
                        k.active = Some(now);
                    }
                }
                Action::Retire(tag) => {
                    for k in keys.iter_mut().filter(|k| k.tag == *tag) {
                        k.retired = Some(now);
                    }
                }
                Action::Remove(tag) => keys.retain(|k| k.tag != *tag),
                Action::MakeHidden(_) | Action::Publish(_) | Action::Unpublish(_) => {}
            }
        }
    }

    #[test]
    fn a_zsk_is_published_before_it_signs_and_removed_after_its_signatures_expire() {
        let t = timing();
        let mut keys = vec![
            key(KeyRole::Ksk, 1, 0, Some(0)),
            key(KeyRole::Zsk, 2, 0, Some(0)),
        ];
        let p = plan(&keys, KeySplit::KskZsk, 13, &t, DAY);
        assert!(p.actions.is_empty());
        assert_eq!(p.next_event, Some(30 * DAY));
        // The lifetime ends: a successor is published, not signing.
        let now = 30 * DAY;
        let p = plan(&keys, KeySplit::KskZsk, 13, &t, now);
        assert_eq!(
            p.actions,
            [Action::Make {
                role: KeyRole::Zsk,
                active: false
            }]
        );
        apply(&mut keys, &p.actions, now);
        let new = keys[2].clone();
        assert!(!usage(&keys, &new, &t, now).sign_zone);
        assert!(usage(&keys, &new, &t, now).publish);
        assert!(usage(&keys, &keys[1], &t, now).sign_zone);
        // Two hours later (TTL + propagation) it takes over; the old key stays.
        let p = plan(&keys, KeySplit::KskZsk, 13, &t, now + HOUR);
        assert!(p.actions.is_empty());
        assert_eq!(p.next_event, Some(now + 2 * HOUR));
        let now = now + 2 * HOUR;
        let p = plan(&keys, KeySplit::KskZsk, 13, &t, now);
        assert_eq!(p.actions, [Action::Activate(new.tag), Action::Retire(2)]);
        apply(&mut keys, &p.actions, now);
        assert!(usage(&keys, &keys[2], &t, now).sign_zone);
        let old = usage(&keys, &keys[1], &t, now);
        assert!(old.publish && !old.sign_zone);
        // Its signatures leave the caches after a day and an hour: then it goes.
        let p = plan(&keys, KeySplit::KskZsk, 13, &t, now + DAY);
        assert_eq!(p.next_event, Some(now + DAY + HOUR));
        let now = now + DAY + HOUR;
        let p = plan(&keys, KeySplit::KskZsk, 13, &t, now);
        assert_eq!(p.actions, [Action::Remove(2)]);
        apply(&mut keys, &p.actions, now);
        assert_eq!(keys.iter().map(|k| k.tag).collect::<Vec<_>>(), [1, new.tag]);
    }

    #[test]
    fn a_ksk_rollover_waits_for_the_parent_and_the_ds_caches() {
        let t = Timing {
            zsk_lifetime: Duration::ZERO,
            ..timing()
        };
        let mut keys = vec![
            key(KeyRole::Ksk, 1, 0, Some(0)),
            key(KeyRole::Zsk, 2, 0, Some(0)),
        ];
        let now = 365 * DAY;
        let p = plan(&keys, KeySplit::KskZsk, 13, &t, now);
        assert!(p.actions.contains(&Action::Make {
            role: KeyRole::Ksk,
            active: true
        }));
        apply(&mut keys, &p.actions, now);
        let new = keys
            .iter()
            .find(|k| k.role == KeyRole::Ksk && k.tag != 1)
            .unwrap()
            .clone();
        // Both sign the DNSKEY RRset; the CDS still names the old one.
        assert!(usage(&keys, &new, &t, now).sign_keyset);
        assert!(!usage(&keys, &new, &t, now).ds);
        assert!(usage(&keys, &keys[0], &t, now).ds);
        // In every cache: the CDS names the new key, and the rollover waits.
        let now = now + 2 * HOUR;
        let p = plan(&keys, KeySplit::KskZsk, 13, &t, now);
        assert_eq!(p.waiting_for_ds, Some(new.tag));
        assert!(usage(&keys, &new, &t, now).ds);
        assert!(!usage(&keys, &keys[0], &t, now).ds);
        // Days pass without the DS: nothing happens, the old key keeps signing.
        let p = plan(&keys, KeySplit::KskZsk, 13, &t, now + 10 * DAY);
        assert!(p.actions.is_empty());
        // Submitted: the old key goes once the old DS has left the caches.
        let submitted = now + 10 * DAY;
        for k in keys.iter_mut().filter(|k| k.tag == new.tag) {
            k.submitted = Some(submitted);
        }
        let p = plan(&keys, KeySplit::KskZsk, 13, &t, submitted + DAY);
        assert!(p.actions.is_empty());
        let p = plan(&keys, KeySplit::KskZsk, 13, &t, submitted + DAY + HOUR);
        assert_eq!(p.actions, [Action::Remove(1)]);
    }

    #[test]
    fn a_csk_rollover_hands_over_signing_then_waits_for_the_ds() {
        let t = timing();
        let mut keys = vec![key(KeyRole::Csk, 1, 0, Some(0))];
        let now = 365 * DAY;
        let p = plan(&keys, KeySplit::Csk, 13, &t, now);
        assert_eq!(
            p.actions,
            [Action::Make {
                role: KeyRole::Csk,
                active: false
            }]
        );
        apply(&mut keys, &p.actions, now);
        let new_tag = keys[1].tag;
        let new = usage(&keys, &keys[1], &t, now);
        assert!(new.publish && !new.sign_zone && !new.sign_keyset && !new.ds);
        let now = now + 2 * HOUR;
        let p = plan(&keys, KeySplit::Csk, 13, &t, now);
        assert_eq!(p.actions, [Action::Activate(new_tag), Action::Retire(1)]);
        apply(&mut keys, &p.actions, now);
        let old = usage(&keys, &keys[0], &t, now);
        let new = usage(&keys, &keys[1], &t, now);
        assert!(old.sign_keyset && !old.sign_zone && !old.ds);
        assert!(new.sign_keyset && new.sign_zone && new.ds);
        let p = plan(&keys, KeySplit::Csk, 13, &t, now + DAY);
        assert_eq!(p.waiting_for_ds, Some(new_tag));
        keys[1].submitted = Some(now + DAY);
        let p = plan(&keys, KeySplit::Csk, 13, &t, now + 2 * DAY + HOUR);
        assert_eq!(p.actions, [Action::Remove(1)]);
    }
}
