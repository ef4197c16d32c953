//! Resolving one question for a client: the cache first, then iteration, following
//! CNAMEs across zones; identical questions in flight share one resolution; when
//! every upstream fails, expired data is served stale (RFC 8767) before SERVFAIL.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::addr::ServerFilter;
use crate::cache::{Cache, Data, Hit, Kind, Rank};
use crate::chain::Validator;
use crate::classify::{End, Found};
use crate::dnssec::{Bogus, Security, Work};
use crate::failures::{FailureCache, FailureHold};
use crate::hints::RootHints;
use crate::upstream::Upstream;

/// Longest CNAME chain given to a client, all zones together.
const MAX_CHAIN: usize = 12;
/// After a failed priming, the hints are used as they are for this long.
const PRIMING_RETRY: Duration = Duration::from_secs(5);
const PRIMING_LOG_EVERY: Duration = Duration::from_secs(60);
/// Sub-resolutions nested (a name server's address needing its own resolution...).
pub(crate) const MAX_DEPTH: usize = 4;

#[derive(Clone, Debug)]
pub struct Limits {
    pub max_referrals: usize,
    pub max_upstream_queries: usize,
    pub max_ns_lookups: usize,
    pub upstream_timeout: Duration,
    pub resolution_timeout: Duration,
    pub qname_minimisation: bool,
    pub serve_stale: bool,
    /// The port upstream servers listen on (53 outside labs).
    pub upstream_port: u16,
    /// How long a failed client question is answered SERVFAIL without a new try.
    pub failure_hold: FailureHold,
    /// Distinct client questions resolved at once; a new one past it gets SERVFAIL.
    pub max_resolutions: usize,
}

/// A zone sent to other resolvers instead of iterated.
#[derive(Clone, Debug)]
pub struct Forward {
    pub zone: Name,
    pub servers: Vec<std::net::SocketAddr>,
    /// Iterate when every forwarder fails.
    pub fall_back: bool,
}

/// What a client gets.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub rcode: ResponseCode,
    pub answer: Vec<Record>,
    /// The SOA of a negative answer.
    pub authority: Vec<Record>,
    /// The answer's RRSIGs, for clients that set DO.
    pub(crate) answer_sigs: Vec<Record>,
    /// A negative answer's NSEC/NSEC3 records and the signatures of the SOA and
    /// them, for clients that set DO.
    pub(crate) authority_sigs: Vec<Record>,
    /// Served from expired data because resolution failed.
    pub stale: bool,
    /// SERVFAIL without trying: the same question failed moments ago.
    pub cached_failure: bool,
    /// SERVFAIL without trying: `max_resolutions` questions were being resolved.
    pub busy: bool,
    /// What validation concluded (Indeterminate when it is off).
    pub(crate) security: Security,
}

impl Outcome {
    pub fn servfail() -> Self {
        Self {
            rcode: ResponseCode::ServFail,
            answer: Vec::new(),
            authority: Vec::new(),
            answer_sigs: Vec::new(),
            authority_sigs: Vec::new(),
            stale: false,
            cached_failure: false,
            busy: false,
            security: Security::Indeterminate,
        }
    }

    /// SERVFAIL because `max_resolutions` questions are being resolved already.
    pub(crate) fn busy() -> Self {
        Self {
            busy: true,
            ..Self::servfail()
        }
    }

    /// SERVFAIL for data that failed validation.
    pub(crate) fn bogus(why: Bogus) -> Self {
        Self {
            security: Security::Bogus(why),
            ..Self::servfail()
        }
    }

    /// Why the answer is SERVFAIL for validation, if it is.
    pub(crate) fn bogus_reason(&self) -> Option<Bogus> {
        match self.security {
            Security::Bogus(why) => Some(why),
            _ => None,
        }
    }
}

/// Why a resolution gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Failure {
    #[error("no server of the zone gave a usable answer")]
    NoServerAnswered,
    #[error("no usable name server address")]
    NoServers,
    #[error("the upstream query budget of this client query is spent")]
    Budget,
    #[error("too many referrals")]
    TooManyReferrals,
    #[error("sub-resolutions nested too deep")]
    TooDeep,
    #[error("CNAME chain too long or looping")]
    Chain,
}

/// Upstream queries left for one client query, shared by its sub-resolutions, and
/// the validation work it may still cause.
#[derive(Debug)]
pub(crate) struct Budget {
    queries: AtomicUsize,
    work: Work,
}

impl Budget {
    pub(crate) fn new(queries: usize) -> Self {
        Self::with_work(queries, Work::new(u32::MAX, u32::MAX, usize::MAX))
    }

    pub(crate) fn with_work(queries: usize, work: Work) -> Self {
        Self {
            queries: AtomicUsize::new(queries),
            work,
        }
    }

    pub(crate) fn work(&self) -> &Work {
        &self.work
    }

    pub(crate) fn take(&self) -> Result<(), Failure> {
        self.queries
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .map(|_| ())
            .map_err(|_| {
                metrics::counter!("sextant_resolver_budget_exhausted_total").increment(1);
                Failure::Budget
            })
    }
}

type InFlight = HashMap<(Name, RecordType), watch::Receiver<Option<Arc<Outcome>>>>;

#[derive(Debug)]
pub struct Resolver {
    pub cache: Cache,
    pub upstream: Upstream,
    pub filter: ServerFilter,
    pub hints: RootHints,
    pub forwards: Vec<Forward>,
    pub limits: Limits,
    /// DNSSEC validation; `None` when `validation = false`.
    pub(crate) validator: Option<Validator>,
    pub(crate) in_flight: Mutex<InFlight>,
    failures: FailureCache,
    /// When priming last failed and when that was last logged: while the root is
    /// unreachable, priming is retried every few seconds, not for every query, and
    /// said once a minute, not once per query.
    priming_failure: Mutex<Option<(Instant, Instant)>>,
    /// Client questions answered wholly from the cache, and the others.
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

/// A question's place among those being resolved, given back when dropped.
struct InFlightSlot {
    resolver: Arc<Resolver>,
    key: (Name, RecordType),
}

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        self.resolver.in_flight.lock().remove(&self.key);
    }
}

/// What the cache says about one name on the way along a chain.
enum Cached {
    Records(Part),
    Cname(Name, Part),
    Negative {
        nxdomain: bool,
        soa: Option<Box<Record>>,
        part: Part,
    },
}

impl Resolver {
    pub(crate) fn new(
        cache: Cache,
        upstream: Upstream,
        filter: ServerFilter,
        hints: RootHints,
        mut forwards: Vec<Forward>,
        limits: Limits,
        validator: Option<Validator>,
    ) -> Self {
        // Most specific zone first, so the first match wins.
        forwards.sort_by_key(|f| std::cmp::Reverse(f.zone.num_labels()));
        Self {
            cache,
            upstream,
            filter,
            hints,
            forwards,
            failures: FailureCache::new(limits.failure_hold),
            limits,
            validator,
            in_flight: Mutex::default(),
            priming_failure: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Whether a priming query may be sent now.
    pub(crate) fn priming_due(&self) -> bool {
        self.priming_failure
            .lock()
            .is_none_or(|(failed, _)| failed.elapsed() >= PRIMING_RETRY)
    }

    pub(crate) fn priming_succeeded(&self) {
        *self.priming_failure.lock() = None;
    }

    pub(crate) fn priming_failed(&self) {
        let now = Instant::now();
        let mut failure = self.priming_failure.lock();
        let logged = failure.map(|(_, logged)| logged);
        let say = logged.is_none_or(|at| now.duration_since(at) >= PRIMING_LOG_EVERY);
        if say {
            tracing::warn!(
                hints = %self.hints.source,
                "priming failed: no root server answered; using the hints as they are (said once a minute)"
            );
        }
        *failure = Some((now, if say { now } else { logged.unwrap_or(now) }));
    }

    /// The answer for a client. Cache hits return at once; misses for the same
    /// question share one resolution, run as its own task so that a client giving up
    /// does not cancel it for the others.
    pub async fn resolve(self: &Arc<Self>, name: &Name, rtype: RecordType) -> Arc<Outcome> {
        if let Some(outcome) = self.answer_from_cache(name, rtype) {
            metrics::counter!("sextant_resolver_cache_total", "result" => "hit").increment(1);
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Arc::new(outcome);
        }
        metrics::counter!("sextant_resolver_cache_total", "result" => "miss").increment(1);
        self.misses.fetch_add(1, Ordering::Relaxed);
        let key = (name.to_lowercase(), rtype);
        if self.failures.holds(&key, Instant::now()) {
            return Arc::new(self.held_failure(name, rtype));
        }
        let mut receiver = {
            let mut in_flight = self.in_flight.lock();
            match in_flight.get(&key) {
                Some(receiver) => {
                    metrics::counter!("sextant_resolver_coalesced_total").increment(1);
                    receiver.clone()
                }
                None if in_flight.len() >= self.limits.max_resolutions => {
                    metrics::counter!("sextant_resolver_busy_total").increment(1);
                    return Arc::new(Outcome::busy());
                }
                None => {
                    let (sender, receiver) = watch::channel(None);
                    in_flight.insert(key.clone(), receiver.clone());
                    let resolver = self.clone();
                    let name = name.clone();
                    // A traced query's trace follows the resolution it starts (queries
                    // that join it later get the answer, not spans).
                    let trace = opentelemetry::Context::current();
                    let resolution = async move {
                        // Frees the slot however the task ends, so a slot can never
                        // leak and shrink `max_resolutions` for good.
                        let slot = InFlightSlot {
                            resolver: resolver.clone(),
                            key,
                        };
                        let outcome = Arc::new(resolver.resolve_fresh(&name, rtype).await);
                        if outcome.rcode == ResponseCode::ServFail && !outcome.stale {
                            resolver.failures.failed(slot.key.clone(), Instant::now());
                        } else {
                            resolver.failures.succeeded(&slot.key);
                        }
                        drop(slot);
                        let _ = sender.send(Some(outcome));
                    };
                    tokio::spawn(opentelemetry::context::FutureExt::with_context(
                        resolution, trace,
                    ));
                    receiver
                }
            }
        };
        match receiver.wait_for(Option::is_some).await {
            Ok(outcome) => outcome
                .clone()
                .unwrap_or_else(|| Arc::new(Outcome::servfail())),
            Err(_) => Arc::new(Outcome::servfail()),
        }
    }

    /// The answer while `name` `rtype` is held after a failure: stale data where
    /// allowed, else SERVFAIL marked as a cached error.
    fn held_failure(&self, name: &Name, rtype: RecordType) -> Outcome {
        metrics::counter!("sextant_resolver_cached_failures_total").increment(1);
        if self.limits.serve_stale
            && let Some(outcome) = self.stale(name, rtype)
        {
            return outcome;
        }
        Outcome {
            cached_failure: true,
            busy: false,
            ..Outcome::servfail()
        }
    }

    /// Resolution bounded in time and upstream queries; stale data or SERVFAIL when
    /// it fails.
    async fn resolve_fresh(self: &Arc<Self>, name: &Name, rtype: RecordType) -> Outcome {
        let budget = match &self.validator {
            Some(validator) => {
                Budget::with_work(self.limits.max_upstream_queries, validator.work())
            }
            None => Budget::new(self.limits.max_upstream_queries),
        };
        let work = self.resolve_chain(name, rtype, &budget, 0);
        let failure = match tokio::time::timeout(self.limits.resolution_timeout, work).await {
            Ok(Ok(outcome)) => return outcome,
            Ok(Err(failure)) => failure.to_string(),
            Err(_) => format!("no answer within {:?}", self.limits.resolution_timeout),
        };
        tracing::debug!(name = %name, ?rtype, %failure, "resolution failed");
        metrics::counter!("sextant_resolver_failures_total").increment(1);
        if self.limits.serve_stale
            && let Some(outcome) = self.stale(name, rtype)
        {
            metrics::counter!("sextant_resolver_stale_answers_total").increment(1);
            return outcome;
        }
        Outcome::servfail()
    }

    /// Follows `name` to an answer: from the cache where it can, iterating where it
    /// must, across as many zones as the CNAMEs lead.
    pub(crate) async fn resolve_chain(
        self: &Arc<Self>,
        name: &Name,
        rtype: RecordType,
        budget: &Budget,
        depth: usize,
    ) -> Result<Outcome, Failure> {
        if depth > MAX_DEPTH {
            return Err(Failure::TooDeep);
        }
        let mut answer = Assembly::new(if self.validator.is_some() {
            Security::Secure
        } else {
            Security::Indeterminate
        });
        let mut current = name.clone();
        for _ in 0..MAX_CHAIN {
            if let Some(cached) = self.cached(&current, rtype, false) {
                match cached {
                    Cached::Records(part) => return Ok(answer.positive(part)),
                    Cached::Negative {
                        nxdomain,
                        soa,
                        part,
                    } => {
                        return Ok(answer.negative(nxdomain, soa.map(|soa| *soa), part));
                    }
                    Cached::Cname(target, part) => {
                        answer.link(part);
                        current = target;
                        continue;
                    }
                }
            }
            if let Some(synthesized) = self.synthesize(&current, rtype, budget) {
                let part = Part {
                    records: Vec::new(),
                    sigs: synthesized.proof,
                    security: Security::Secure,
                };
                return Ok(answer.negative(synthesized.nxdomain, Some(synthesized.soa), part));
            }
            let found = Box::pin(self.iterate(&current, rtype, budget, depth)).await?;
            let security = self.validate(&found, rtype, budget, depth).await;
            if let (Security::Secure, End::Negative { soa: Some(soa), .. }) = (security, &found.end)
            {
                self.keep_denial(&found, soa, budget, depth).await;
            }
            // Bogus data is kept briefly (RFC 4035 §4.7), to be given only to clients
            // that set CD=1; everyone else gets SERVFAIL from it without a new try.
            self.remember(&found, rtype, security);
            let signed = |owner: &Name, rtype: RecordType| signatures(&found.sigs, owner, rtype);
            for link in &found.chain {
                answer.link(Part {
                    records: vec![link.clone()],
                    sigs: signed(&link.name, RecordType::CNAME),
                    security,
                });
            }
            match &found.end {
                End::Records(records) => {
                    let sigs = rrset_types(records)
                        .into_iter()
                        .flat_map(|(owner, rtype)| signed(&owner, rtype))
                        .collect();
                    return Ok(answer.positive(Part {
                        records: records.clone(),
                        sigs,
                        security,
                    }));
                }
                End::Negative { nxdomain, soa, .. } => {
                    let part = Part {
                        records: Vec::new(),
                        sigs: found.proof.clone(),
                        security,
                    };
                    return Ok(answer.negative(*nxdomain, soa.as_deref().cloned(), part));
                }
                End::Continue(target) => current = target.clone(),
            }
            if answer.records.iter().any(|r| r.name == current) {
                return Err(Failure::Chain);
            }
        }
        Err(Failure::Chain)
    }

    /// Caches an answer: each CNAME of the chain, the final RRset(s) or the negative
    /// answer, with their signatures and what validation said. Only data that passed
    /// the bailiwick checks gets here.
    fn remember(&self, found: &Found, rtype: RecordType, security: Security) {
        for cname in &found.chain {
            let sigs = signatures(&found.sigs, &cname.name, RecordType::CNAME);
            self.cache
                .insert_answer(vec![cname.clone()], Rank::Answer, security, sigs);
        }
        match &found.end {
            End::Records(records) => {
                let mut by_type: HashMap<RecordType, Vec<Record>> = HashMap::new();
                for record in records {
                    by_type
                        .entry(record.record_type())
                        .or_default()
                        .push(record.clone());
                }
                for (rtype, rrset) in by_type {
                    let sigs = signatures(&found.sigs, &rrset[0].name, rtype);
                    self.cache
                        .insert_answer(rrset, Rank::Answer, security, sigs);
                }
            }
            End::Negative {
                name,
                nxdomain,
                soa,
            } => {
                let kind = if *nxdomain {
                    Kind::NxDomain
                } else {
                    Kind::RRset(rtype)
                };
                self.cache.insert_negative(
                    name,
                    kind,
                    soa.as_deref().cloned(),
                    security,
                    found.proof.clone(),
                );
            }
            End::Continue(_) => {}
        }
    }

    /// The whole answer from fresh cache data, if the cache has all of it.
    fn answer_from_cache(&self, name: &Name, rtype: RecordType) -> Option<Outcome> {
        self.chain_from_cache(name, rtype, false)
    }

    fn stale(&self, name: &Name, rtype: RecordType) -> Option<Outcome> {
        let mut outcome = self.chain_from_cache(name, rtype, true)?;
        outcome.stale = true;
        Some(outcome)
    }

    fn chain_from_cache(&self, name: &Name, rtype: RecordType, stale: bool) -> Option<Outcome> {
        let mut answer = Assembly::new(Security::Secure);
        let mut current = name.clone();
        for _ in 0..MAX_CHAIN {
            match self.cached(&current, rtype, stale)? {
                Cached::Records(part) => return Some(answer.positive(part)),
                Cached::Negative {
                    nxdomain,
                    soa,
                    part,
                } => {
                    return Some(answer.negative(nxdomain, soa.map(|soa| *soa), part));
                }
                Cached::Cname(target, part) => {
                    answer.link(part);
                    current = target;
                }
            }
        }
        None
    }

    fn cached(&self, name: &Name, rtype: RecordType, stale: bool) -> Option<Cached> {
        let get = |kind: Kind| -> Option<Hit> {
            if stale {
                self.cache.get_stale(name, kind)
            } else {
                self.cache.get(name, kind, Rank::Answer)
            }
        };
        let nxdomain = if stale {
            get(Kind::NxDomain)
        } else {
            self.cache.nxdomain(name)
        };
        if let Some(hit) = nxdomain {
            return Some(Cached::Negative {
                nxdomain: true,
                soa: hit.soa().map(Box::new),
                part: Part::of(&hit),
            });
        }
        if let Some(hit) = get(Kind::RRset(rtype)) {
            return Some(match hit.data {
                Data::Records(_) => Cached::Records(Part::of(&hit)),
                Data::Negative(_) => Cached::Negative {
                    nxdomain: false,
                    soa: hit.soa().map(Box::new),
                    part: Part::of(&hit),
                },
            });
        }
        if rtype == RecordType::CNAME {
            return None;
        }
        let hit = get(Kind::RRset(RecordType::CNAME))?;
        let part = Part::of(&hit);
        let RData::CNAME(target) = &part.records.first()?.data else {
            return None;
        };
        let target = target.0.clone();
        Some(Cached::Cname(target, part))
    }
}

/// One piece of an answer: an RRset (or nothing, for a negative answer), the
/// signatures and denial records that go with it for DO=1 clients, and what
/// validation said of it.
struct Part {
    records: Vec<Record>,
    sigs: Vec<Record>,
    security: Security,
}

impl Part {
    fn of(hit: &Hit) -> Self {
        Self {
            records: hit.records(),
            sigs: hit.signatures(),
            security: hit.security,
        }
    }
}

/// An answer put together link by link along a CNAME chain.
struct Assembly {
    records: Vec<Record>,
    sigs: Vec<Record>,
    security: Security,
}

impl Assembly {
    fn new(security: Security) -> Self {
        Self {
            records: Vec::new(),
            sigs: Vec::new(),
            security,
        }
    }

    fn link(&mut self, part: Part) {
        self.records.extend(part.records);
        self.sigs.extend(part.sigs);
        self.security = self.security.and(part.security);
    }

    fn positive(mut self, part: Part) -> Outcome {
        self.link(part);
        Outcome {
            rcode: ResponseCode::NoError,
            answer: self.records,
            authority: Vec::new(),
            answer_sigs: self.sigs,
            authority_sigs: Vec::new(),
            stale: false,
            cached_failure: false,
            busy: false,
            security: self.security,
        }
    }

    fn negative(self, nxdomain: bool, soa: Option<Record>, part: Part) -> Outcome {
        Outcome {
            rcode: if nxdomain {
                ResponseCode::NXDomain
            } else {
                ResponseCode::NoError
            },
            answer: self.records,
            authority: soa.into_iter().collect(),
            answer_sigs: self.sigs,
            authority_sigs: part.sigs,
            stale: false,
            cached_failure: false,
            busy: false,
            security: self.security.and(part.security),
        }
    }
}

/// The RRSIGs among `sigs` over `owner`'s RRset of `rtype`.
fn signatures(sigs: &[Record], owner: &Name, rtype: RecordType) -> Vec<Record> {
    sigs.iter()
        .filter(|r| r.name == *owner)
        .filter(|r| crate::dnssec::rrsig(r).is_some_and(|sig| sig.input().type_covered == rtype))
        .cloned()
        .collect()
}

/// The distinct (owner, type) pairs among `records`.
fn rrset_types(records: &[Record]) -> Vec<(Name, RecordType)> {
    let mut types: Vec<(Name, RecordType)> = Vec::new();
    for record in records {
        let key = (record.name.clone(), record.record_type());
        if !types.contains(&key) {
            types.push(key);
        }
    }
    types
}
