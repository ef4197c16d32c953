//! The chain of trust (RFC 4035 §5): from a trust anchor down to the zone that
//! signed an answer, each zone's DNSKEY RRset proven by its parent's DS RRset (or
//! its absence proven, which makes the zone and everything below it insecure), and
//! then the answer's own signatures and denial proofs checked with the zone's keys.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::dnssec::DigestType;
use hickory_proto::dnssec::rdata::DS;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable};
use parking_lot::RwLock;

use crate::aggressive::{NsecCache, Synthesized};
use crate::autotrust::{self, AutoTrust};

use crate::classify::{End, Found};
use crate::dnssec::{
    self, Bogus, Denial, NegativeAnchors, Security, TrustAnchors, ZoneKey, deny, key_matches_ds,
    proves_expansion, signatures_for, verify_rrset,
};
use crate::resolve::{Budget, Resolver};

/// How long a zone found insecure or bogus is remembered before it is tried again.
const INSECURE_TTL: Duration = Duration::from_secs(300);
const BOGUS_TTL: Duration = Duration::from_secs(30);
/// Zones whose keys (or insecurity) are remembered; beyond, the least used go.
const MAX_ZONES_KEPT: usize = 16_384;
/// Zones whose bogus state was logged lately.
const MAX_ZONES_LOGGED: usize = 1_024;
/// Verified RRsets remembered (each a few hundred bytes of fingerprint).
const MAX_VERIFIED_KEPT: usize = 8_192;
/// Longest fingerprint remembered; larger RRsets are verified each time.
const MAX_FINGERPRINT: usize = 4_096;
/// Zones walked from an anchor down to one signer: a name has at most 127 labels.
const MAX_CHAIN_DEPTH: usize = 128;

/// Validation's limits and clock (`[resolver]` keys).
#[derive(Clone, Debug)]
pub(crate) struct ValidationLimits {
    pub(crate) clock_skew: Duration,
    pub(crate) max_nsec3_iterations: u16,
    pub(crate) max_signature_checks: u32,
    pub(crate) max_nsec3_hashes: u32,
    pub(crate) max_key_tag_collisions: usize,
    pub(crate) aggressive_nsec: bool,
    pub(crate) aggressive_nsec_bytes: u64,
}

/// What is known of a zone's keys.
#[derive(Clone, Debug)]
enum KeyState {
    Secure(Arc<[ZoneKey]>),
    Insecure,
    Bogus(Bogus),
}

/// The validator's state: anchors and the keys proven so far.
#[derive(Debug)]
pub(crate) struct Validator {
    anchors: RwLock<TrustAnchors>,
    /// RFC 5011 state, when `resolver.state_dir` is set.
    pub(crate) autotrust: Option<AutoTrust>,
    source: String,
    pub(crate) negative: NegativeAnchors,
    pub(crate) limits: ValidationLimits,
    /// Bounded: an attacker can make us look at as many zones as it likes.
    keys: quick_cache::sync::Cache<Name, (KeyState, Instant)>,
    /// Zones whose bogus state was logged, so that each is said once.
    logged: quick_cache::sync::Cache<Name, Instant>,
    /// Signed data already checked, by its exact content (records, signatures and
    /// keys): the same NSEC proof in every NXDOMAIN of a random-name flood is
    /// verified once, not once per query.
    verified: quick_cache::sync::Cache<Box<[u8]>, (Instant, u32)>,
    /// Validated NSEC and NSEC3 records reused for other names (RFC 8198); `None` when
    /// `aggressive_nsec = false`.
    pub(crate) aggressive: Option<NsecCache>,
}

impl Validator {
    pub(crate) fn new(
        mut anchors: TrustAnchors,
        negative: &[Name],
        limits: ValidationLimits,
        autotrust: Option<AutoTrust>,
    ) -> Self {
        let mut source = anchors.source.clone();
        if let Some(autotrust) = &autotrust {
            // What RFC 5011 learned before the restart wins over a configured anchor
            // that may be older.
            for zone in anchors.zones() {
                let keys = autotrust.trusted(&zone);
                if !keys.is_empty() {
                    anchors.replace_keys(&zone, keys);
                }
            }
            source = format!(
                "{source}, kept up to date (RFC 5011) in {}",
                autotrust.path().display()
            );
        }
        let aggressive = limits
            .aggressive_nsec
            .then(|| NsecCache::new(limits.aggressive_nsec_bytes));
        Self {
            anchors: RwLock::new(anchors),
            autotrust,
            source,
            negative: NegativeAnchors::new(negative),
            limits,
            keys: quick_cache::sync::Cache::new(MAX_ZONES_KEPT),
            logged: quick_cache::sync::Cache::new(MAX_ZONES_LOGGED),
            verified: quick_cache::sync::Cache::new(MAX_VERIFIED_KEPT),
            aggressive,
        }
    }

    pub(crate) fn anchors_source(&self) -> &str {
        &self.source
    }

    /// Forgets every zone's keys (with a cache flush).
    pub(crate) fn forget(&self) {
        self.keys.clear();
        self.verified.clear();
        if let Some(aggressive) = &self.aggressive {
            aggressive.clear();
        }
    }

    pub(crate) fn work(&self) -> dnssec::Work {
        dnssec::Work::new(
            self.limits.max_signature_checks,
            self.limits.max_nsec3_hashes,
            self.limits.max_key_tag_collisions,
        )
    }

    fn clock(&self) -> dnssec::Clock {
        dnssec::Clock::now(self.limits.clock_skew)
    }

    /// [`verify_rrset`], remembered: data whose exact signed content was verified
    /// with the same keys is not verified again while its signature lasts.
    fn verify(
        &self,
        set: &[Record],
        sigs: &[Record],
        zone: &Name,
        keys: &[ZoneKey],
        work: &dnssec::Work,
    ) -> Result<u32, Bogus> {
        let clock = self.clock();
        let fingerprint = fingerprint(set, sigs, zone, keys);
        if let Some(fingerprint) = &fingerprint
            && let Some((until, ttl)) = self.verified.get(fingerprint)
            && Instant::now() < until
        {
            metrics::counter!("sextant_resolver_verifications_total", "result" => "remembered")
                .increment(1);
            return Ok(ttl);
        }
        let ttl = verify_rrset(set, sigs, zone, keys, clock, work)?;
        metrics::counter!("sextant_resolver_verifications_total", "result" => "checked")
            .increment(1);
        if let Some(fingerprint) = fingerprint {
            let until = Instant::now() + Duration::from_secs(u64::from(ttl));
            self.verified.insert(fingerprint, (until, ttl));
        }
        Ok(ttl)
    }

    fn cached(&self, zone: &Name) -> Option<KeyState> {
        let (state, until) = self.keys.get(zone)?;
        (Instant::now() < until).then_some(state)
    }

    fn remember(&self, zone: &Name, state: &KeyState, ttl: Duration) {
        self.keys
            .insert(zone.clone(), (state.clone(), Instant::now() + ttl));
    }

    /// Logs a bogus zone once every few minutes, not once per query.
    fn say_bogus(&self, zone: &Name, why: Bogus) {
        metrics::counter!("sextant_resolver_bogus_total", "reason" => why.label()).increment(1);
        let now = Instant::now();
        if self
            .logged
            .get(zone)
            .is_some_and(|at| now.duration_since(at) < INSECURE_TTL)
        {
            return;
        }
        self.logged.insert(zone.clone(), now);
        tracing::warn!(%zone, %why, "DNSSEC validation failed: answers from the zone are SERVFAIL (said once per 5 minutes per zone)");
    }
}

impl Resolver {
    /// The security of a fresh answer: every CNAME of its chain and its final
    /// RRsets, or its denial of existence.
    pub(crate) async fn validate(
        self: &Arc<Self>,
        found: &Found,
        rtype: RecordType,
        budget: &Budget,
        depth: usize,
    ) -> Security {
        let Some(validator) = &self.validator else {
            return Security::Indeterminate;
        };
        let mut security = Security::Secure;
        for link in &found.chain {
            // A CNAME synthesized from a DNAME carries no signature: the DNAME does
            // (RFC 6672 §5.3.3), and classify built the CNAME from it.
            let signed = signatures_for(&found.sigs, &link.name, RecordType::CNAME)
                .next()
                .is_some();
            let dname = found
                .dnames
                .iter()
                .find(|d| d.name.zone_of(&link.name) && d.name != link.name);
            let proven_by = match (signed, dname) {
                (false, Some(dname)) if synthesized_from(dname, link) => dname,
                // A CNAME that is not the DNAME's rewrite proves nothing.
                (false, Some(_)) => {
                    security = security.and(Security::Bogus(Bogus::Signature));
                    continue;
                }
                _ => link,
            };
            let one = std::slice::from_ref(proven_by);
            let checked = self
                .validate_rrset(validator, one, found, budget, depth)
                .await;
            security = security.and(checked);
        }
        match &found.end {
            End::Records(records) => {
                for set in rrsets(records) {
                    let checked = self
                        .validate_rrset(validator, &set, found, budget, depth)
                        .await;
                    security = security.and(checked);
                }
            }
            End::Negative {
                name,
                nxdomain,
                soa,
            } => {
                let zone = soa.as_ref().map_or(&found.zone, |soa| &soa.name);
                let checked = self
                    .validate_denial(
                        validator, name, rtype, *nxdomain, zone, found, budget, depth,
                    )
                    .await;
                security = security.and(checked);
            }
            End::Continue(_) => {}
        }
        if let Security::Bogus(why) = security {
            validator.say_bogus(&found.zone, why);
        }
        security
    }

    async fn validate_rrset(
        self: &Arc<Self>,
        validator: &Validator,
        set: &[Record],
        found: &Found,
        budget: &Budget,
        depth: usize,
    ) -> Security {
        let Some(first) = set.first() else {
            return Security::Secure;
        };
        let owner = &first.name;
        if validator.negative.covers(owner) {
            return Security::Insecure;
        }
        // The zone that signed it; unsigned data belongs to the zone that answered.
        let signer = signatures_for(&found.sigs, owner, first.record_type())
            .map(|sig| sig.input().signer_name.clone())
            .find(|signer| signer.zone_of(owner))
            .unwrap_or_else(|| found.zone.clone());
        let keys = match self.zone_keys(&signer, budget, depth, 0).await {
            KeyState::Secure(keys) => keys,
            KeyState::Insecure => return Security::Insecure,
            KeyState::Bogus(why) => return Security::Bogus(why),
        };
        let work = budget.work();
        match validator.verify(set, &found.sigs, &signer, &keys, work) {
            Ok(_) => {}
            Err(why) => return Security::Bogus(why),
        }
        // A wildcard expansion (fewer labels signed than the owner has) is secure only
        // with proof that the name itself does not exist (RFC 4035 §5.3.4).
        let labels = signatures_for(&found.sigs, owner, first.record_type())
            .map(|sig| sig.input().num_labels)
            .max()
            .unwrap_or(0);
        let owner_labels = owner.num_labels();
        if labels < owner_labels {
            let proof = verified_proof(validator, &found.proof, &signer, &keys, work);
            let max = validator.limits.max_nsec3_iterations;
            return match proves_expansion(owner, labels, &signer, &proof, max, work) {
                Ok(Denial::NxDomain) => Security::Secure,
                Ok(Denial::OptOut | Denial::TooManyIterations) => Security::Insecure,
                Ok(_) => Security::Bogus(Bogus::NsecMissing),
                Err(why) => Security::Bogus(why),
            };
        }
        Security::Secure
    }

    #[allow(clippy::too_many_arguments)]
    async fn validate_denial(
        self: &Arc<Self>,
        validator: &Validator,
        name: &Name,
        rtype: RecordType,
        nxdomain: bool,
        zone: &Name,
        found: &Found,
        budget: &Budget,
        depth: usize,
    ) -> Security {
        if validator.negative.covers(name) {
            return Security::Insecure;
        }
        let keys = match self.zone_keys(zone, budget, depth, 0).await {
            KeyState::Secure(keys) => keys,
            KeyState::Insecure => return Security::Insecure,
            KeyState::Bogus(why) => return Security::Bogus(why),
        };
        let work = budget.work();
        let proof = verified_proof(validator, &found.proof, zone, &keys, work);
        let max = validator.limits.max_nsec3_iterations;
        match (nxdomain, deny(name, rtype, zone, &proof, max, work)) {
            (true, Ok(Denial::NxDomain)) => Security::Secure,
            (false, Ok(Denial::NoData { .. } | Denial::WildcardNoData)) => Security::Secure,
            (_, Ok(Denial::OptOut | Denial::TooManyIterations)) => Security::Insecure,
            (_, Ok(_)) => Security::Bogus(Bogus::NsecMissing),
            (_, Err(why)) => Security::Bogus(why),
        }
    }

    /// The keys of `zone`, proven from the closest trust anchor down, or why there
    /// are none to prove with.
    fn zone_keys<'a>(
        self: &'a Arc<Self>,
        zone: &'a Name,
        budget: &'a Budget,
        depth: usize,
        walked: usize,
    ) -> std::pin::Pin<Box<dyn Future<Output = KeyState> + Send + 'a>> {
        Box::pin(async move {
            let Some(validator) = &self.validator else {
                return KeyState::Insecure;
            };
            if validator.negative.covers(zone) {
                return KeyState::Insecure;
            }
            if let Some(state) = validator.cached(zone) {
                return state;
            }
            let Some(anchor) = validator.anchors.read().closest(zone).cloned() else {
                return KeyState::Insecure;
            };
            if walked > MAX_CHAIN_DEPTH {
                return KeyState::Bogus(Bogus::WorkLimit);
            }
            let (state, ttl) = if anchor.zone == *zone {
                let (ds, keys) = (anchor.ds.clone(), anchor.keys.clone());
                self.keys_proven_by(validator, zone, &ds, &keys, budget, depth)
                    .await
            } else {
                self.keys_below(validator, zone, budget, depth, walked)
                    .await
            };
            // A work limit is one client query's, not the zone's: not remembered.
            if !matches!(state, KeyState::Bogus(Bogus::WorkLimit)) {
                validator.remember(zone, &state, ttl);
            }
            state
        })
    }

    /// The keys of a zone below an anchor: its DS RRset from the parent, proven
    /// with the parent's keys, then its DNSKEY RRset proven by that DS.
    async fn keys_below(
        self: &Arc<Self>,
        validator: &Validator,
        zone: &Name,
        budget: &Budget,
        depth: usize,
        walked: usize,
    ) -> (KeyState, Duration) {
        let Ok(found) = Box::pin(self.iterate(zone, RecordType::DS, budget, depth)).await else {
            return (KeyState::Bogus(Bogus::Unreachable), BOGUS_TTL);
        };
        // The parent: the signer of the DS or of its denial, else the zone that answered.
        let parent = found
            .sigs
            .iter()
            .chain(&found.proof)
            .filter_map(dnssec::rrsig)
            .map(|sig| sig.input().signer_name.clone())
            .find(|signer| signer.zone_of(zone) && signer != zone)
            .unwrap_or_else(|| found.zone.clone());
        if !parent.zone_of(zone) || parent == *zone {
            return (KeyState::Bogus(Bogus::DnskeyMissing), BOGUS_TTL);
        }
        let parent_keys = match self.zone_keys(&parent, budget, depth, walked + 1).await {
            KeyState::Secure(keys) => keys,
            KeyState::Insecure => return (KeyState::Insecure, INSECURE_TTL),
            bogus => return (bogus, BOGUS_TTL),
        };
        let work = budget.work();
        let clock = validator.clock();
        match &found.end {
            End::Records(records) => {
                if let Err(why) =
                    verify_rrset(records, &found.sigs, &parent, &parent_keys, clock, work)
                {
                    return (KeyState::Bogus(why), BOGUS_TTL);
                }
                let ds: Vec<DS> = records.iter().filter_map(dnssec::ds).cloned().collect();
                self.keys_proven_by(validator, zone, &ds, &[], budget, depth)
                    .await
            }
            End::Negative { .. } => {
                let proof = verified_proof(validator, &found.proof, &parent, &parent_keys, work);
                let max = validator.limits.max_nsec3_iterations;
                match deny(zone, RecordType::DS, &parent, &proof, max, work) {
                    // A delegation proven to have no DS: the child is unsigned.
                    Ok(
                        Denial::NoData { cut: true } | Denial::OptOut | Denial::TooManyIterations,
                    ) => (KeyState::Insecure, INSECURE_TTL),
                    // Not a delegation at all: whoever claimed it was a zone lied.
                    Ok(_) => (KeyState::Bogus(Bogus::NsecMissing), BOGUS_TTL),
                    Err(why) => (KeyState::Bogus(why), BOGUS_TTL),
                }
            }
            End::Continue(_) => (KeyState::Bogus(Bogus::DnskeyMissing), BOGUS_TTL),
        }
    }

    /// The zone's DNSKEY RRset, proven by `ds` (from the parent or an anchor) or
    /// by an anchored key among `anchored`.
    async fn keys_proven_by(
        self: &Arc<Self>,
        validator: &Validator,
        zone: &Name,
        ds: &[DS],
        anchored: &[hickory_proto::dnssec::rdata::DNSKEY],
        budget: &Budget,
        depth: usize,
    ) -> (KeyState, Duration) {
        // DS records we can use; SHA-1 only where nothing better is offered (RFC 4509 §3).
        let supported: Vec<&DS> = ds
            .iter()
            .filter(|d| d.algorithm().is_supported() && d.digest_type().is_supported())
            .collect();
        let strong: Vec<&DS> = supported
            .iter()
            .copied()
            .filter(|d| d.digest_type() != DigestType::SHA1)
            .collect();
        let usable = if strong.is_empty() { supported } else { strong };
        if usable.is_empty() && anchored.is_empty() {
            // Only algorithms or digests we cannot check: insecure (RFC 4035 §5.2).
            metrics::counter!("sextant_resolver_unsupported_algorithm_total").increment(1);
            return (KeyState::Insecure, INSECURE_TTL);
        }
        let Ok(found) = Box::pin(self.iterate(zone, RecordType::DNSKEY, budget, depth)).await
        else {
            return (KeyState::Bogus(Bogus::Unreachable), BOGUS_TTL);
        };
        let End::Records(records) = &found.end else {
            return (KeyState::Bogus(Bogus::DnskeyMissing), BOGUS_TTL);
        };
        let keys: Vec<ZoneKey> = records
            .iter()
            .filter_map(dnssec::dnskey)
            .filter_map(ZoneKey::usable)
            .collect();
        let entry: Vec<ZoneKey> = keys
            .iter()
            .filter(|k| {
                usable.iter().any(|d| key_matches_ds(zone, k, d)) || anchored.contains(&k.key)
            })
            .cloned()
            .collect();
        if entry.is_empty() {
            return (KeyState::Bogus(Bogus::DnskeyMissing), BOGUS_TTL);
        }
        let dnskeys: Vec<Record> = records
            .iter()
            .filter(|r| r.record_type() == RecordType::DNSKEY)
            .cloned()
            .collect();
        match verify_rrset(
            &dnskeys,
            &found.sigs,
            zone,
            &entry,
            validator.clock(),
            budget.work(),
        ) {
            Ok(ttl) => {
                let ttl = Duration::from_secs(u64::from(ttl.min(self.cache.max_ttl())));
                (KeyState::Secure(keys.into()), ttl)
            }
            Err(why) => (KeyState::Bogus(why), BOGUS_TTL),
        }
    }
}

impl Resolver {
    /// A negative answer for `name`/`rtype` proven by NSEC or NSEC3 records kept from earlier
    /// secure answers (RFC 8198), without asking the zone's servers.
    pub(crate) fn synthesize(
        &self,
        name: &Name,
        rtype: RecordType,
        budget: &Budget,
    ) -> Option<Synthesized> {
        let validator = self.validator.as_ref()?;
        if validator.negative.covers(name) {
            return None;
        }
        validator
            .aggressive
            .as_ref()?
            .synthesize(name, rtype, budget.work())
    }

    /// Keeps the NSEC or NSEC3 records of a secure negative answer for
    /// [`Self::synthesize`].
    pub(crate) async fn keep_denial(
        self: &Arc<Self>,
        found: &Found,
        soa: &Record,
        budget: &Budget,
        depth: usize,
    ) {
        let Some(validator) = &self.validator else {
            return;
        };
        let Some(aggressive) = &validator.aggressive else {
            return;
        };
        let zone = &soa.name;
        let KeyState::Secure(keys) = self.zone_keys(zone, budget, depth, 0).await else {
            return;
        };
        let verified = verified_proof(validator, &found.proof, zone, &keys, budget.work());
        if verified
            .iter()
            .all(|r| !matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3))
        {
            return;
        }
        let mut proof = verified;
        proof.extend(
            found
                .proof
                .iter()
                .filter(|r| r.record_type() == RecordType::RRSIG)
                .cloned(),
        );
        let minimum = match &soa.data {
            RData::SOA(data) => data.minimum,
            _ => 0,
        };
        let ttl = Duration::from_secs(u64::from(
            soa.ttl.min(minimum).min(self.cache.max_negative_ttl()),
        ));
        aggressive.remember(zone, soa, &proof, ttl);
    }
}

impl Resolver {
    /// One RFC 5011 round: each anchored zone's DNSKEY RRset fetched and checked with
    /// the keys trusted now, then the state moved on and saved. Returns when to look
    /// again. Errors are logged: the keys trusted stay as they were.
    pub(crate) async fn refresh_trust_anchors(
        self: &Arc<Self>,
        every: Option<Duration>,
    ) -> Duration {
        let retry = every.unwrap_or(Duration::from_secs(3_600));
        let Some(validator) = &self.validator else {
            return retry;
        };
        let Some(autotrust) = &validator.autotrust else {
            return retry;
        };
        let mut next = Duration::from_secs(15 * 86_400);
        let zones = validator.anchors.read().zones();
        for zone in zones {
            match self.refresh_zone_anchor(validator, autotrust, &zone).await {
                Ok(interval) => next = next.min(interval),
                Err(why) => {
                    metrics::counter!("sextant_resolver_trust_anchor_refresh_failures_total")
                        .increment(1);
                    tracing::warn!(%zone, %why, "trust anchor refresh (RFC 5011) failed; the keys trusted stay as they were");
                    next = next.min(retry);
                }
            }
        }
        every.unwrap_or(next)
    }

    async fn refresh_zone_anchor(
        self: &Arc<Self>,
        validator: &Validator,
        autotrust: &AutoTrust,
        zone: &Name,
    ) -> Result<Duration, String> {
        let budget = Budget::with_work(self.limits.max_upstream_queries, validator.work());
        let found = Box::pin(self.iterate(zone, RecordType::DNSKEY, &budget, 0))
            .await
            .map_err(|e| format!("the DNSKEY RRset could not be fetched: {e}"))?;
        let End::Records(records) = &found.end else {
            return Err("the zone answered no DNSKEY RRset".into());
        };
        let dnskeys: Vec<Record> = records
            .iter()
            .filter(|r| r.record_type() == RecordType::DNSKEY)
            .cloned()
            .collect();
        let Some(anchor) = validator.anchors.read().at(zone).cloned() else {
            return Err("the zone is no longer anchored".into());
        };
        let keys: Vec<ZoneKey> = dnskeys
            .iter()
            .filter_map(dnssec::dnskey)
            .filter_map(ZoneKey::usable)
            .collect();
        let entry: Vec<ZoneKey> = keys
            .into_iter()
            .filter(|k| {
                anchor.ds.iter().any(|d| key_matches_ds(zone, k, d)) || anchor.keys.contains(&k.key)
            })
            .collect();
        let clock = validator.clock();
        verify_rrset(&dnskeys, &found.sigs, zone, &entry, clock, budget.work()).map_err(|why| {
            format!("the DNSKEY RRset is not signed by a key trusted now ({why})")
        })?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let before = autotrust.phases(zone);
        let trusted = autotrust.observe(zone, &dnskeys, &found.sigs, &entry, now)?;
        let after = autotrust.phases(zone);
        if before != after {
            tracing::info!(%zone, keys = ?after, "trust anchor keys changed (RFC 5011)");
        }
        if !trusted.is_empty() {
            validator.anchors.write().replace_keys(zone, trusted);
            validator.forget();
        }
        Ok(autotrust::refresh_interval(&dnskeys, &found.sigs, clock))
    }
}

/// Whether `cname` is exactly what `dname` makes of its owner (RFC 6672 §2.2): the
/// labels below the DNAME's owner, then the DNAME's target.
fn synthesized_from(dname: &Record, cname: &Record) -> bool {
    let RData::Unknown { rdata, .. } = &dname.data else {
        return false;
    };
    let Ok(target) = Name::read(&mut BinDecoder::new(&rdata.anything)) else {
        return false;
    };
    let RData::CNAME(written) = &cname.data else {
        return false;
    };
    let keep = usize::from(
        cname
            .name
            .num_labels()
            .saturating_sub(dname.name.num_labels()),
    );
    let expected = Name::from_labels(cname.name.iter().take(keep))
        .ok()
        .and_then(|prefix| prefix.append_name(&target).ok());
    expected.is_some_and(|expected| expected == written.0)
}

/// The NSEC and NSEC3 records among `proof` whose signatures check out with the
/// keys of `zone`; the others prove nothing.
fn verified_proof(
    validator: &Validator,
    proof: &[Record],
    zone: &Name,
    keys: &[ZoneKey],
    work: &dnssec::Work,
) -> Vec<Record> {
    let denials: Vec<Record> = proof
        .iter()
        .filter(|r| matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3))
        .cloned()
        .collect();
    let mut verified = Vec::new();
    for set in rrsets(&denials) {
        if validator.verify(&set, proof, zone, keys, work).is_ok() {
            verified.extend(set);
        }
    }
    verified
}

/// The exact content a verification depends on: the zone, the records, the
/// signatures over them and the keys; `None` when it is too large to keep.
fn fingerprint(
    set: &[Record],
    sigs: &[Record],
    zone: &Name,
    keys: &[ZoneKey],
) -> Option<Box<[u8]>> {
    let first = set.first()?;
    let mut bytes = zone.to_lowercase().to_bytes().ok()?;
    bytes.extend_from_slice(&u16::from(first.record_type()).to_be_bytes());
    for record in set {
        bytes.extend(record.name.to_lowercase().to_bytes().ok()?);
        let data = record.data.to_bytes().ok()?;
        bytes.extend_from_slice(&u16::try_from(data.len()).ok()?.to_be_bytes());
        bytes.extend(data);
    }
    for sig in sigs.iter().filter(|r| r.name == first.name) {
        if dnssec::rrsig(sig).is_some_and(|s| s.input().type_covered == first.record_type()) {
            let data = sig.data.to_bytes().ok()?;
            bytes.extend_from_slice(&u16::try_from(data.len()).ok()?.to_be_bytes());
            bytes.extend(data);
        }
    }
    for key in keys {
        let data = key.key.to_bytes().ok()?;
        bytes.extend_from_slice(&u16::try_from(data.len()).ok()?.to_be_bytes());
        bytes.extend(data);
    }
    (bytes.len() <= MAX_FINGERPRINT).then(|| bytes.into_boxed_slice())
}

/// Records split into RRsets (owner and type), RRSIGs left out.
pub(crate) fn rrsets(records: &[Record]) -> Vec<Vec<Record>> {
    let mut sets: Vec<Vec<Record>> = Vec::new();
    for record in records
        .iter()
        .filter(|r| r.record_type() != RecordType::RRSIG)
    {
        match sets
            .iter_mut()
            .find(|s| s[0].name == record.name && s[0].record_type() == record.record_type())
        {
            Some(set) => set.push(record.clone()),
            None => sets.push(vec![record.clone()]),
        }
    }
    sets
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::str::FromStr;

    use hickory_proto::rr::rdata::{CNAME, NULL};
    use hickory_proto::serialize::binary::BinEncodable;

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_str(text).unwrap()
    }

    #[test]
    fn a_cname_counts_as_the_dname_rewrite_only_when_it_is_one() {
        let dname = Record::from_rdata(
            name("old.test."),
            300,
            RData::Unknown {
                code: RecordType::DNAME,
                rdata: NULL::with(name("new.test.").to_bytes().unwrap()),
            },
        );
        let cname = |owner: &str, target: &str| {
            Record::from_rdata(name(owner), 300, RData::CNAME(CNAME(name(target))))
        };
        assert!(synthesized_from(
            &dname,
            &cname("www.old.test.", "www.new.test.")
        ));
        assert!(synthesized_from(
            &dname,
            &cname("a.b.old.test.", "a.b.new.test.")
        ));
        assert!(!synthesized_from(
            &dname,
            &cname("www.old.test.", "www.evil.test.")
        ));
        assert!(!synthesized_from(
            &dname,
            &cname("www.old.test.", "other.new.test.")
        ));
    }
}
