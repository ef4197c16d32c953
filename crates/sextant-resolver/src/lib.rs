//! The resolver daemon: iterative resolution from the root with a shared cache,
//! answering the listener's recursive queries over gRPC.

mod addr;
mod aggressive;
mod autotrust;
mod cache;
mod chain;
mod classify;
mod control;
mod cookies;
mod dnssec;
mod failures;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod hints;
mod iterate;
mod resolve;
mod servers;
mod service;
mod upstream;

use addr::ServerFilter;
use cache::{Cache, CacheLimits};
use hints::RootHints;
use resolve::{Forward, Limits, Resolver};
use service::ResolverService;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use sextant_config::{Config, ForwardMode, ResolverConfig};
use sextant_daemon::Daemon;
use sextant_rpc::{CacheGenerations, GrpcServer, Services};
use tokio_util::sync::CancellationToken;

use crate::control::Control;
use crate::upstream::Upstream;

/// The resolver as `sextant_daemon` runs it.
#[derive(Debug)]
pub struct ResolverDaemon {
    endpoint: sextant_rpc::Endpoint,
    hints_source: String,
    /// Where trust starts; `None` when validation is off.
    trust_anchors: Option<String>,
    serving: tokio::task::JoinHandle<Result<(), sextant_rpc::RpcError>>,
    /// The dnstap log, ended (STOP) once the service has stopped.
    dnstap: Option<sextant_dnstap::Tap>,
}

impl Daemon for ResolverDaemon {
    const NAME: &'static str = "sextant-resolver";
    type Section = ResolverConfig;

    fn check(_config: &Config, section: &ResolverConfig) -> anyhow::Result<()> {
        let (hints, _, warning) = hints(section)?;
        if let Some(warning) = warning {
            eprintln!("warning: {warning}");
        }
        println!(
            "root hints: {} server(s) from {}",
            hints.servers.len(),
            hints.source
        );
        match validator(section)? {
            Some(validator) => println!(
                "DNSSEC validation on; trust anchors: {}",
                validator.anchors_source()
            ),
            None => println!("DNSSEC validation off"),
        }
        Ok(())
    }

    async fn start(
        _config: Config,
        section: ResolverConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let resolver = Arc::new(build(&section, shutdown.clone()).await?);
        resolver.prime_at_start().await;
        if resolver
            .validator
            .as_ref()
            .is_some_and(|v| v.autotrust.is_some())
        {
            tokio::spawn(refresh_trust_anchors(
                resolver.clone(),
                section.trust_anchor_refresh,
                shutdown.clone(),
            ));
        }
        let published = resolver.clone();
        sextant_daemon::publish_every(shutdown.clone(), move || {
            let cache = &published.cache;
            metrics::gauge!("sextant_resolver_cache_bytes").set(cache.bytes() as f64);
            metrics::gauge!("sextant_resolver_cache_entries").set(cache.len() as f64);
            metrics::gauge!("sextant_resolver_cache_budget_bytes").set(cache.budget() as f64);
            let resolutions = published.in_flight.lock().len();
            metrics::gauge!("sextant_resolver_resolutions").set(resolutions as f64);
            if let Some(kept) = published
                .validator
                .as_ref()
                .and_then(|v| v.aggressive.as_ref())
            {
                metrics::gauge!("sextant_resolver_aggressive_nsec_bytes").set(kept.bytes() as f64);
            }
        });
        // The listener keeps resolver answers in its packet cache; a flush bumps the
        // cache generation here so that the listener drops them too.
        let generations = CacheGenerations::new();
        let control = Arc::new(Control {
            resolver: resolver.clone(),
            generations: generations.clone(),
            started: std::time::Instant::now(),
        });
        let server = GrpcServer::bind(&section.grpc).await?;
        let endpoint = server.local_endpoint().clone();
        let services = Services::new()
            .with_query(Arc::new(ResolverService {
                resolver: resolver.clone(),
            }))
            .with_cache_generations(&generations)
            .with_control(control);
        let serving = tokio::spawn(server.serve(services, shutdown));
        let hints_source = resolver.hints.source.to_string();
        let trust_anchors = resolver
            .validator
            .as_ref()
            .map(|v| v.anchors_source().to_string());
        tracing::info!(grpc = %endpoint, hints = %hints_source, "resolver serving");
        Ok(Self {
            endpoint,
            hints_source,
            trust_anchors,
            serving,
            dnstap: resolver.upstream.tap.clone(),
        })
    }

    fn ready_info(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut info = serde_json::Map::new();
        info.insert("grpc".into(), self.endpoint.to_string().into());
        info.insert("root_hints".into(), self.hints_source.clone().into());
        if let Some(anchors) = &self.trust_anchors {
            info.insert("trust_anchors".into(), anchors.clone().into());
        }
        info
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.serving.await.context("gRPC server task failed")??;
        if let Some(tap) = self.dnstap {
            // Resolutions still running log nothing more: their entries are dropped.
            let closing = tokio::task::spawn_blocking(move || {
                tap.close(std::time::Duration::from_secs(2));
            });
            let _ = closing.await;
        }
        Ok(())
    }
}

/// The root hints the section asks for, with the address filter they were checked
/// with and the warning when the built-in hints stand in for a damaged file.
fn hints(section: &ResolverConfig) -> anyhow::Result<(RootHints, ServerFilter, Option<String>)> {
    let filter = ServerFilter::new(section.deny_servers.clone());
    let (hints, warning) = RootHints::load(
        section.root_hints.as_deref(),
        section.root_hints_fallback,
        &filter,
    )
    .map_err(anyhow::Error::msg)?;
    Ok((hints, filter, warning))
}

/// RFC 5011: the anchored zones looked at now and then at the interval their keys
/// ask for (`every` overrides it), until shutdown.
async fn refresh_trust_anchors(
    resolver: Arc<Resolver>,
    every: Option<std::time::Duration>,
    shutdown: CancellationToken,
) {
    loop {
        let next = resolver.refresh_trust_anchors(every).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(next) => {}
        }
    }
}

/// Builds the resolver from its configuration section: hints checked, query
/// sources bound. Errors are the one-sentence start-up messages.
pub async fn build(
    section: &ResolverConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<Resolver> {
    let (hints, filter, warning) = hints(section)?;
    if let Some(warning) = warning {
        tracing::error!("{warning}");
    }
    let v4 = section
        .query_source
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    let v6 = section
        .query_source_v6
        .unwrap_or(SocketAddr::from(([0u16; 8], 0)));
    let mut upstream = Upstream::with_server_entries(
        v4,
        v6,
        section.send_cookies,
        section.server_entries,
        shutdown,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    upstream.dnssec_ok = section.validation;
    if let Some(dnstap) = &section.dnstap {
        upstream.tap = Some(
            sextant_dnstap::Tap::start(dnstap, &sextant_config::DnstapMessage::RESOLVER)
                .map_err(|e| anyhow::anyhow!("resolver.dnstap: {e}"))?,
        );
    }
    let cache = Cache::new(CacheLimits {
        bytes: section.cache_bytes,
        min_ttl: section.min_ttl,
        max_ttl: section.max_ttl,
        max_negative_ttl: section.max_negative_ttl,
        stale_window: if section.serve_stale {
            section.stale_window
        } else {
            std::time::Duration::ZERO
        },
    });
    let forwards = section
        .forwards
        .iter()
        .map(|f| Forward {
            zone: f.name.clone(),
            servers: f.servers.clone(),
            fall_back: f.mode == ForwardMode::First,
        })
        .collect();
    let limits = Limits {
        max_referrals: section.max_referrals,
        max_upstream_queries: section.max_upstream_queries,
        max_ns_lookups: section.max_ns_lookups,
        upstream_timeout: section.upstream_timeout,
        resolution_timeout: section.resolution_timeout,
        qname_minimisation: section.qname_minimisation,
        serve_stale: section.serve_stale,
        upstream_port: section.upstream_port,
        failure_hold: failures::FailureHold {
            first: section.failure_ttl,
            max: section.failure_ttl_max,
            entries: section.failure_entries,
        },
        max_resolutions: section.max_resolutions,
    };
    let validator = validator(section)?;
    Ok(Resolver::new(
        cache, upstream, filter, hints, forwards, limits, validator,
    ))
}

/// The validator the section asks for; a broken anchor file is one sentence, never
/// a resolver that quietly stops validating.
fn validator(section: &ResolverConfig) -> anyhow::Result<Option<chain::Validator>> {
    if !section.validation {
        return Ok(None);
    }
    let anchors = match &section.trust_anchor_file {
        Some(path) => dnssec::TrustAnchors::from_file(path).map_err(anyhow::Error::msg)?,
        None => dnssec::TrustAnchors::builtin(),
    };
    let mut negative = Vec::new();
    for text in &section.negative_trust_anchors {
        let mut name = hickory_proto::rr::Name::from_ascii(text).map_err(|e| {
            anyhow::anyhow!(
                "resolver.negative_trust_anchors: {text:?} is not a domain name ({e}); write it like broken.example"
            )
        })?;
        name.set_fqdn(true);
        negative.push(name);
    }
    let limits = chain::ValidationLimits {
        clock_skew: section.clock_skew,
        max_nsec3_iterations: section.max_nsec3_iterations,
        max_signature_checks: section.max_signature_checks,
        max_nsec3_hashes: section.max_nsec3_hashes,
        max_key_tag_collisions: section.max_key_tag_collisions.max(1),
        aggressive_nsec: section.aggressive_nsec,
        aggressive_nsec_bytes: section.aggressive_nsec_bytes,
    };
    let autotrust = match &section.state_dir {
        Some(dir) => Some(
            autotrust::AutoTrust::open(dir, section.trust_anchor_hold_down)
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    let validator = chain::Validator::new(anchors, &negative, limits, autotrust);
    tracing::info!(anchors = %validator.anchors_source(), "DNSSEC validation on");
    Ok(Some(validator))
}
