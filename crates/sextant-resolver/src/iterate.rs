//! Iteration (RFC 1034 §5.3.3): start at the closest zone cut we know, ask its
//! servers, follow referrals down until a server answers for the name. QNAME
//! minimisation (RFC 9156, relaxed) shows each server only one label more than it
//! needs; forward zones go to configured resolvers instead.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::cache::{Kind, Rank};
use crate::classify::{Classified, End, Found, classify};
use crate::resolve::{Budget, Failure, Forward, Resolver};

/// Servers tried for one step before the step fails.
const MAX_TRIES_PER_STEP: usize = 6;
/// Extra labels added one by one under minimisation before asking the full name.
const MAX_MINIMISE_STEPS: usize = 10;

/// A zone and the addresses of its servers (with the server's name, for logs).
type Servers = Vec<(IpAddr, Name)>;

impl Resolver {
    /// Finds the answer to `name`/`rtype` from the network (no cache lookup for the
    /// name itself; the caller did that).
    pub(crate) async fn iterate(
        self: &Arc<Self>,
        name: &Name,
        rtype: RecordType,
        budget: &Budget,
        depth: usize,
    ) -> Result<Found, Failure> {
        if let Some(forward) = self.forward_for(name) {
            match self.forward(&forward, name, rtype, budget).await {
                Ok(found) => return Ok(found),
                Err(failure) if !forward.fall_back => return Err(failure),
                Err(_) => {
                    metrics::counter!("sextant_resolver_forward_fallbacks_total").increment(1)
                }
            }
        }
        let (mut zone, mut servers) = self.closest_servers(name, rtype, budget, depth).await?;
        let mut minimise = self.limits.qname_minimisation;
        let mut extra_labels = 1;
        let mut minimise_steps = 0;
        for _ in 0..self.limits.max_referrals {
            let labels = usize::from(zone.num_labels()) + extra_labels;
            let (ask, ask_type) = if minimise && labels < usize::from(name.num_labels()) {
                // RFC 9156 §2.1 asks for A, which every server answers sensibly.
                (name.trim_to(labels), RecordType::A)
            } else {
                (name.clone(), rtype)
            };
            let minimised = ask != *name;
            let classified = self.ask_zone(&zone, &servers, &ask, ask_type, budget).await;
            let classified = match classified {
                Ok(classified) => classified,
                // Relaxed minimisation: a server that stumbles on the shortened name
                // gets the full one.
                Err(_) if minimised => {
                    minimise = false;
                    continue;
                }
                Err(failure) => return Err(failure),
            };
            match classified {
                Classified::Referral { child, ns, glue } => {
                    self.cache.insert_rrset(ns.clone(), Rank::Referral);
                    for rrset in group(glue) {
                        self.cache.insert_rrset(rrset, Rank::Additional);
                    }
                    let names = ns_names(&ns);
                    servers = self.addresses_for(&child, &names, budget, depth).await?;
                    zone = child;
                    extra_labels = 1;
                }
                Classified::Found(found) if minimised => {
                    let exists_here = matches!(
                        &found.end,
                        End::Records(_)
                            | End::Negative {
                                nxdomain: false,
                                ..
                            }
                    ) && found.chain.is_empty();
                    minimise_steps += 1;
                    if exists_here && minimise_steps < MAX_MINIMISE_STEPS {
                        // An empty non-terminal or a name without a cut: one label more.
                        extra_labels += 1;
                    } else {
                        minimise = false;
                    }
                }
                Classified::Found(found) => return Ok(*found),
                Classified::Lame(_) => return Err(Failure::NoServerAnswered),
            }
        }
        metrics::counter!("sextant_resolver_referral_limit_total").increment(1);
        Err(Failure::TooManyReferrals)
    }

    /// Asks the zone's servers, best first, until one gives a usable response.
    async fn ask_zone(
        &self,
        zone: &Name,
        servers: &Servers,
        name: &Name,
        rtype: RecordType,
        budget: &Budget,
    ) -> Result<Classified, Failure> {
        let mut order: Vec<(IpAddr, &Name)> = servers.iter().map(|(ip, n)| (*ip, n)).collect();
        self.upstream.servers.order(&mut order);
        for (ip, server_name) in order.into_iter().take(MAX_TRIES_PER_STEP) {
            budget.take()?;
            let timeout = self
                .upstream
                .servers
                .timeout(ip, self.limits.upstream_timeout);
            let address = SocketAddr::new(ip, self.limits.upstream_port);
            tracing::debug!(%zone, server = %server_name, %address, %name, ?rtype, "asking");
            match self
                .upstream
                .exchange(address, zone, name, rtype, false, timeout)
                .await
            {
                Ok(response) => match classify(&response, zone, name, rtype) {
                    Classified::Lame(why) => {
                        metrics::counter!("sextant_resolver_lame_total").increment(1);
                        tracing::debug!(%zone, server = %server_name, %ip, why, "lame answer; trying another server");
                    }
                    usable => {
                        tracing::debug!(%zone, %name, outcome = usable.summary(), "answered");
                        return Ok(usable);
                    }
                },
                Err(error) => {
                    tracing::debug!(%zone, server = %server_name, %ip, %error, "no answer; trying another server");
                }
            }
        }
        Err(Failure::NoServerAnswered)
    }

    /// The deepest zone cut above `name` whose servers we can reach: from cached NS
    /// sets, else the root.
    async fn closest_servers(
        self: &Arc<Self>,
        name: &Name,
        rtype: RecordType,
        budget: &Budget,
        depth: usize,
    ) -> Result<(Name, Servers), Failure> {
        let mut candidate = name.clone();
        // DS lives on the parent side of a cut (RFC 4035 §3.1.4.1).
        if rtype == RecordType::DS && !candidate.is_root() {
            candidate = candidate.base_name();
        }
        while !candidate.is_root() {
            if let Some(hit) =
                self.cache
                    .get(&candidate, Kind::RRset(RecordType::NS), Rank::Referral)
            {
                let names = ns_names(&hit.records());
                if let Ok(servers) = self.addresses_for(&candidate, &names, budget, depth).await {
                    return Ok((candidate, servers));
                }
            }
            candidate = candidate.base_name();
        }
        Ok((Name::root(), self.root_servers(budget).await))
    }

    /// Primes the root before serving, bounded by the resolution timeout: a root
    /// that cannot be reached now is primed again by the first query.
    pub async fn prime_at_start(self: &Arc<Self>) {
        let budget = Budget::new(self.limits.max_upstream_queries);
        let priming = self.root_servers(&budget);
        if tokio::time::timeout(self.limits.resolution_timeout, priming)
            .await
            .is_err()
        {
            tracing::warn!("priming the root timed out; the first query will try again");
        }
    }

    /// The root's servers: the primed NS set when cached, otherwise a priming query
    /// (RFC 8109) to the hints, otherwise the hints themselves.
    async fn root_servers(self: &Arc<Self>, budget: &Budget) -> Servers {
        let root = Name::root();
        if let Some(hit) = self
            .cache
            .get(&root, Kind::RRset(RecordType::NS), Rank::Referral)
        {
            let servers = self.cached_addresses(&ns_names(&hit.records()));
            if !servers.is_empty() {
                return servers;
            }
        }
        let hints: Servers = self
            .hints
            .addresses()
            .filter(|(_, ip)| self.filter.usable(*ip))
            .map(|(name, ip)| (ip, name.clone()))
            .collect();
        if !self.priming_due() {
            return hints;
        }
        match self.prime(&hints, budget).await {
            Some(servers) if !servers.is_empty() => servers,
            _ => hints,
        }
    }

    /// Asks the hinted servers for the root NS set and caches it with the addresses
    /// from the same response (the root may vouch for every name).
    pub(crate) async fn prime(&self, hints: &Servers, budget: &Budget) -> Option<Servers> {
        let root = Name::root();
        let mut order: Vec<(IpAddr, &Name)> = hints.iter().map(|(ip, n)| (*ip, n)).collect();
        self.upstream.servers.order(&mut order);
        for (ip, _) in order.into_iter().take(MAX_TRIES_PER_STEP) {
            budget.take().ok()?;
            let timeout = self
                .upstream
                .servers
                .timeout(ip, self.limits.upstream_timeout);
            let address = SocketAddr::new(ip, self.limits.upstream_port);
            let Ok(response) = self
                .upstream
                .exchange(address, &root, &root, RecordType::NS, false, timeout)
                .await
            else {
                continue;
            };
            let Classified::Found(found) = classify(&response, &root, &root, RecordType::NS) else {
                continue;
            };
            let End::Records(ns) = found.end else {
                continue;
            };
            let names = ns_names(&ns);
            self.cache.insert_rrset(ns, Rank::Answer);
            let glue: Vec<Record> = response
                .additionals
                .into_iter()
                .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
                .filter(|r| names.contains(&r.name.to_lowercase()))
                .collect();
            for rrset in group(glue) {
                self.cache.insert_rrset(rrset, Rank::Additional);
            }
            let servers = self.cached_addresses(&names);
            self.priming_succeeded();
            tracing::info!(servers = servers.len(), hints = %self.hints.source, "root primed");
            metrics::counter!("sextant_resolver_primings_total").increment(1);
            return Some(servers);
        }
        self.priming_failed();
        None
    }

    /// Usable addresses of a zone's servers: cached (glue or answers) first; where
    /// none is usable, a few server names resolved afresh. Names inside the zone
    /// itself are skipped then: they would need the very glue that is missing.
    async fn addresses_for(
        self: &Arc<Self>,
        zone: &Name,
        names: &[Name],
        budget: &Budget,
        depth: usize,
    ) -> Result<Servers, Failure> {
        let servers = self.cached_addresses(names);
        if !servers.is_empty() {
            return Ok(servers);
        }
        let mut servers = Servers::new();
        let lookups = names
            .iter()
            .filter(|n| !zone.zone_of(n))
            .take(self.limits.max_ns_lookups);
        for server in lookups {
            metrics::counter!("sextant_resolver_ns_lookups_total").increment(1);
            let Ok(outcome) =
                Box::pin(self.resolve_chain(server, RecordType::A, budget, depth + 1)).await
            else {
                continue;
            };
            let ips: Vec<IpAddr> = outcome
                .answer
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    _ => None,
                })
                .collect();
            for ip in self.filter.filter(server, ips) {
                servers.push((ip, server.clone()));
            }
            if !servers.is_empty() {
                break;
            }
        }
        if servers.is_empty() {
            tracing::debug!(%zone, "no usable address for any name server of the zone");
            return Err(Failure::NoServers);
        }
        Ok(servers)
    }

    /// Addresses of `names` the cache holds at any rank, minus unusable ones.
    fn cached_addresses(&self, names: &[Name]) -> Servers {
        let mut servers = Servers::new();
        for name in names {
            let mut ips = Vec::new();
            for rtype in [RecordType::A, RecordType::AAAA] {
                if let Some(hit) = self.cache.get(name, Kind::RRset(rtype), Rank::Additional) {
                    ips.extend(hit.records().iter().filter_map(|r| match &r.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                        _ => None,
                    }));
                }
            }
            for ip in self.filter.filter(name, ips) {
                servers.push((ip, name.clone()));
            }
        }
        servers
    }

    fn forward_for(&self, name: &Name) -> Option<Forward> {
        self.forwards.iter().find(|f| f.zone.zone_of(name)).cloned()
    }

    /// Sends the whole question, RD=1, to the zone's forwarders.
    async fn forward(
        &self,
        forward: &Forward,
        name: &Name,
        rtype: RecordType,
        budget: &Budget,
    ) -> Result<Found, Failure> {
        for server in &forward.servers {
            budget.take()?;
            let timeout = self
                .upstream
                .servers
                .timeout(server.ip(), self.limits.upstream_timeout);
            let Ok(response) = self
                .upstream
                .exchange(*server, &forward.zone, name, rtype, true, timeout)
                .await
            else {
                continue;
            };
            if let Classified::Found(found) = classify(&response, &forward.zone, name, rtype) {
                return Ok(*found);
            }
        }
        Err(Failure::NoServerAnswered)
    }
}

fn ns_names(records: &[Record]) -> Vec<Name> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::NS(ns) => Some(ns.0.to_lowercase()),
            _ => None,
        })
        .collect()
}

/// Splits records into RRsets (owner and type).
fn group(records: Vec<Record>) -> Vec<Vec<Record>> {
    let mut sets: Vec<Vec<Record>> = Vec::new();
    for record in records {
        match sets
            .iter_mut()
            .find(|set| set[0].name == record.name && set[0].record_type() == record.record_type())
        {
            Some(set) => set.push(record),
            None => sets.push(vec![record]),
        }
    }
    sets
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::addr::ServerFilter;
    use crate::cache::{Cache, CacheLimits};
    use crate::hints::RootHints;
    use crate::resolve::Limits;
    use crate::upstream::Upstream;

    /// A resolver whose only root server is a closed port on loopback.
    async fn resolver_with_dead_root() -> Arc<Resolver> {
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        resolver_with_root(port, 1024).await
    }

    /// A resolver whose only root server listens on `port` of 127.0.0.1.
    async fn resolver_with_root(port: u16, max_resolutions: usize) -> Arc<Resolver> {
        let filter = ServerFilter::default();
        let hints = RootHints::from_text(
            Path::new("t"),
            ". 1 NS a.root.lab.\na.root.lab. 1 A 127.0.0.1\n",
            &filter,
        )
        .unwrap();
        let upstream = Upstream::new(
            "0.0.0.0:0".parse().unwrap(),
            "[::]:0".parse().unwrap(),
            true,
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap();
        let cache = Cache::new(CacheLimits {
            bytes: 1 << 20,
            min_ttl: 0,
            max_ttl: 3600,
            max_negative_ttl: 600,
            stale_window: Duration::ZERO,
        });
        let limits = Limits {
            max_referrals: 16,
            max_upstream_queries: 64,
            max_ns_lookups: 3,
            upstream_timeout: Duration::from_millis(200),
            resolution_timeout: Duration::from_secs(2),
            qname_minimisation: true,
            serve_stale: false,
            upstream_port: port,
            failure_hold: crate::failures::FailureHold {
                first: Duration::from_secs(1),
                max: Duration::from_secs(30),
                entries: 1000,
            },
            max_resolutions,
        };
        Arc::new(Resolver::new(
            cache,
            upstream,
            filter,
            hints,
            Vec::new(),
            limits,
            None,
        ))
    }

    #[tokio::test]
    async fn past_max_resolutions_a_new_question_gets_servfail_at_once() {
        // A root that hears queries and never answers keeps a resolution going.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let resolver = resolver_with_root(port, 1).await;
        let first = Name::from_ascii("one.example.").unwrap();
        let pending = tokio::spawn({
            let resolver = resolver.clone();
            let first = first.clone();
            async move { resolver.resolve(&first, RecordType::A).await }
        });
        while resolver.in_flight.lock().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let second = Name::from_ascii("two.example.").unwrap();
        let busy = tokio::time::timeout(
            Duration::from_millis(100),
            resolver.resolve(&second, RecordType::A),
        )
        .await
        .unwrap();
        assert_eq!(busy.rcode, hickory_proto::op::ResponseCode::ServFail);
        assert!(busy.busy);
        // The question already being resolved is still shared, not refused, and its
        // slot is given back when it ends.
        let shared = resolver.resolve(&first, RecordType::A).await;
        assert!(!shared.busy);
        pending.await.unwrap();
        assert!(resolver.in_flight.lock().is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_root_is_primed_again_only_after_a_pause() {
        let resolver = resolver_with_dead_root().await;
        assert!(resolver.priming_due());
        let name = Name::from_ascii("www.example.").unwrap();
        let outcome = resolver.resolve(&name, RecordType::A).await;
        assert_eq!(outcome.rcode, hickory_proto::op::ResponseCode::ServFail);
        assert!(
            !resolver.priming_due(),
            "no priming storm while the root is down"
        );
    }
}
