//! The listener: the only process on port 53. It reads the header and question of
//! each message, answers what it can by itself (FORMERR, REFUSED, NOTIMP, SERVFAIL)
//! and forwards the rest, as raw wire bytes, to a backend over gRPC.

mod backend;
mod bind;
mod chaos;
mod control;
mod cookie;
mod doh;
mod forward;
mod frontend;
mod handover;
mod holder;
mod packet_cache;
mod policy;
mod route;
mod rrl;
mod stats;
mod tap;
mod tcp;
mod tls;
mod trace;
mod udp;
mod udp_batch;

use frontend::Frontend;
use packet_cache::PacketCache;
use policy::{Acl, Policy};
use route::Router;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use sextant_config::{Config, ListenerConfig};
use sextant_daemon::Daemon;
use sextant_rpc::{CacheGenerationWatcher, QueryClientOptions, QueryPool, ZoneWatcher};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The listener as `sextant_daemon` runs it.
#[derive(Debug)]
pub struct ListenerDaemon {
    config: Config,
    section: ListenerConfig,
    frontend: Arc<Frontend>,
    tasks: tokio::task::JoinSet<()>,
    udp_workers: Vec<udp::Worker>,
    udp_in_flight: Arc<Semaphore>,
    tcp_connections: Arc<Semaphore>,
    /// Ends the lanes to the backends, after the drain.
    lanes_shutdown: CancellationToken,
    addresses: Vec<String>,
    /// The control endpoint bound (`listener.control`).
    control: Option<sextant_rpc::Endpoint>,
    /// DoT and DoH addresses bound, as `transport` → addresses.
    encrypted: Vec<(&'static str, Vec<String>)>,
    /// The certificate of DoT and DoH, read again on SIGHUP.
    certificates: Option<Arc<tls::Certificates>>,
    /// Started beside a running listener, which holds the ports until it stops.
    took_over: bool,
}

/// Forwarded UDP queries waiting for a backend at once; past it new ones are dropped
/// (counted), so a flood costs bounded memory.
const MAX_UDP_IN_FLIGHT: usize = 16 * 1024;
/// How long the dnstap writer may take to write what is queued and end its stream.
const DNSTAP_CLOSE: Duration = Duration::from_secs(2);
/// How long start-up waits for the authority (zone set and a query stream) before
/// declaring itself ready anyway (answering SERVFAIL until the authority is there).
const ZONE_SET_WAIT: Duration = Duration::from_secs(5);

impl Daemon for ListenerDaemon {
    const NAME: &'static str = "sextant-listener";
    type Section = ListenerConfig;
    const REPLACEABLE: bool = true;

    async fn start(
        config: Config,
        section: ListenerConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        start(config, section, shutdown).await
    }

    fn took_over(&self) -> bool {
        self.took_over
    }

    fn ready_info(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut info = serde_json::Map::new();
        info.insert("udp".into(), self.addresses.clone().into());
        info.insert("tcp".into(), self.addresses.clone().into());
        for (transport, addresses) in &self.encrypted {
            info.insert((*transport).into(), addresses.clone().into());
        }
        info.insert(
            "metrics".into(),
            self.section.metrics.map(|m| m.to_string()).into(),
        );
        info.insert(
            "control".into(),
            self.control.as_ref().map(ToString::to_string).into(),
        );
        info
    }

    async fn reload(&self) {
        reload(
            &self.config,
            &self.section,
            &self.frontend,
            self.certificates.as_deref(),
        );
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        while self.tasks.join_next().await.is_some() {}
        // Graceful stop: answers already asked of a backend still go out (each is
        // bounded by its backend deadline), then the process exits. Holding every
        // permit means nothing is in flight.
        let udp = u32::try_from(MAX_UDP_IN_FLIGHT).unwrap_or(u32::MAX);
        let tcp = u32::try_from(self.section.tcp_max_connections).unwrap_or(u32::MAX);
        let drained = async {
            let _udp = self.udp_in_flight.acquire_many(udp).await;
            let _tcp = self.tcp_connections.acquire_many(tcp).await;
        };
        let drain_limit = self
            .section
            .backend_timeout
            .max(self.section.resolver_timeout)
            + DRAIN_MARGIN;
        if tokio::time::timeout(drain_limit, drained).await.is_err() {
            tracing::warn!("stopped with queries still in flight");
        }
        self.lanes_shutdown.cancel();
        // The UDP workers end with the lanes (their loops stopped at `shutdown`).
        let workers = std::mem::take(&mut self.udp_workers);
        let tap = self.frontend.dnstap.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.thread.join();
            }
            // Every answer has gone out: the log's stream can end (STOP).
            if let Some(tap) = tap {
                tap.close(DNSTAP_CLOSE);
            }
        })
        .await;
        Ok(())
    }
}

/// Binds, connects to the backends and starts every front end.
async fn start(
    config: Config,
    section: ListenerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<ListenerDaemon> {
    let authority_endpoints: Vec<_> = config.authority_endpoints().into_iter().cloned().collect();
    let resolver_endpoints: Vec<_> = config.resolver_endpoints().into_iter().cloned().collect();
    if authority_endpoints.is_empty() && resolver_endpoints.is_empty() {
        anyhow::bail!("the listener has no backend; set listener.authority or listener.resolver");
    }
    // Bind first: a port conflict must stop start-up before anything else happens.
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let mut bound = Vec::new();
    for addr in &section.listen {
        bound.push(bind::bind_address(*addr, workers)?);
    }
    let took_over = bound.iter().any(|address| address.predecessor);
    if took_over {
        tracing::info!("a running listener holds these addresses: taking over from it once ready");
    }
    let mut encrypted_bound = Vec::new();
    let certificates = match &section.tls {
        Some(tls) => {
            let certificates = Arc::new(tls::Certificates::load(tls)?);
            for (transport, addresses) in [
                (tls::Encrypted::Dot, &tls.dot),
                (tls::Encrypted::Doh, &tls.doh),
            ] {
                for addr in addresses {
                    let listener = bind::joins_predecessor(*addr)
                        .and_then(|_| bind::tcp_listener(*addr))
                        .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot listen on {addr} for {} ({e}); free the port or change listener.tls.{}",
                            transport.label(),
                            transport.label()
                        )
                    })?;
                    encrypted_bound.push((transport, listener));
                }
            }
            Some(certificates)
        }
        None => None,
    };
    let control = match &section.control {
        Some(endpoint) => match sextant_rpc::GrpcServer::bind(endpoint).await {
            Ok(server) => Some(control::Binding::Bound(server)),
            // The predecessor's until it stops.
            Err(error) if took_over && error.is_in_use() => {
                Some(control::Binding::WhenFree(endpoint.clone()))
            }
            Err(error) => anyhow::bail!("listener.control: {error}"),
        },
        None => None,
    };

    // The lanes to the backends outlive the front end's sockets by the drain in
    // `stop`: queries already forwarded at SIGTERM get their real answers, not SERVFAIL.
    let lanes_shutdown = CancellationToken::new();
    let pool = |endpoints: &[sextant_rpc::Endpoint], lanes, timeout| {
        QueryPool::start(
            endpoints,
            &QueryClientOptions { lanes, timeout },
            lanes_shutdown.clone(),
        )
    };
    let authority = pool(
        &authority_endpoints,
        section.backend_lanes,
        section.backend_timeout,
    );
    let resolver = pool(
        &resolver_endpoints,
        section.backend_lanes,
        section.resolver_timeout,
    );
    let transfer = pool(
        &config
            .listener_transfer_endpoint()
            .cloned()
            .into_iter()
            .collect::<Vec<_>>(),
        1,
        section.backend_timeout,
    );
    let (router, zone_sets) = if authority_endpoints.is_empty() {
        (Arc::new(Router::without_zones()), None)
    } else {
        let router = Arc::new(Router::default());
        let zone_sets = ZoneWatcher::start(authority_endpoints.clone(), shutdown.clone());
        router.follow(zone_sets.clone(), shutdown.clone());
        (router, Some(zone_sets))
    };
    let resolver_generation = (!resolver_endpoints.is_empty()).then(|| {
        route::Generation::follow(
            CacheGenerationWatcher::start(resolver_endpoints.clone(), shutdown.clone()),
            shutdown.clone(),
        )
    });
    let frontend = Arc::new(Frontend {
        router: router.clone(),
        authority,
        resolver,
        resolver_generation,
        transfer,
        udp_payload_size: section.udp_payload_size,
        packet_cache: (section.packet_cache_bytes > 0)
            .then(|| Arc::new(PacketCache::new(section.packet_cache_bytes))),
        policy: Arc::new(ArcSwap::from_pointee(policy(
            &section,
            config.trace.as_ref(),
        ))),
        dnstap: match &section.dnstap {
            Some(dnstap) => Some(
                sextant_dnstap::Tap::start(dnstap, &sextant_config::DnstapMessage::LISTENER)
                    .map_err(|e| anyhow::anyhow!("listener.dnstap: {e}"))?,
            ),
            None => None,
        },
    });

    if let Some(cache) = frontend.packet_cache.clone() {
        sextant_daemon::publish_every(shutdown.clone(), move || {
            metrics::gauge!("sextant_listener_packet_cache_bytes").set(cache.bytes() as f64);
            metrics::gauge!("sextant_listener_packet_cache_entries").set(cache.len() as f64);
            metrics::gauge!("sextant_listener_packet_cache_budget_bytes")
                .set(cache.budget() as f64);
        });
    }
    let udp_in_flight = Arc::new(Semaphore::new(MAX_UDP_IN_FLIGHT));
    let tcp_connections = Arc::new(Semaphore::new(section.tcp_max_connections));
    let limits = tcp::TcpLimits {
        idle_timeout: section.tcp_idle_timeout,
        read_timeout: section.tcp_read_timeout,
        max_in_flight: section.tcp_max_in_flight,
        max_per_client: section.tcp_max_connections_per_client,
    };
    let mut tasks = tokio::task::JoinSet::new();
    let control = control.map(|binding| {
        let endpoint = binding.endpoint().clone();
        let pools = [
            ("authority", &frontend.authority),
            ("resolver", &frontend.resolver),
            ("transfer", &frontend.transfer),
        ];
        let handler = Arc::new(control::Control {
            started: std::time::Instant::now(),
            pools: pools
                .into_iter()
                .filter_map(|(role, pool)| Some((role, pool.clone()?)))
                .collect(),
        });
        tasks.spawn(binding.serve(handler, shutdown.clone()));
        endpoint
    });
    // The UDP workers read nothing, and TCP is not accepted, before the backends are
    // reached (a predecessor keeps answering meanwhile).
    let serving = CancellationToken::new();
    let mut udp_workers = Vec::new();
    let mut tcp_listeners = Vec::new();
    let mut addresses = Vec::new();
    for address in bound {
        addresses.push(address.local.to_string());
        for socket in address.udp {
            // A lane of its own to each backend, on the worker's runtime: a forwarded
            // query and its answer never leave the worker's thread.
            let own_lanes = || {
                let lane = |pool: &Option<QueryPool>| {
                    pool.as_ref().and_then(|pool| {
                        QueryPool::start(
                            &pool.endpoints(),
                            &QueryClientOptions {
                                lanes: 1,
                                timeout: pool.timeout(),
                            },
                            lanes_shutdown.clone(),
                        )
                    })
                };
                Arc::new(Frontend {
                    authority: lane(&frontend.authority),
                    resolver: lane(&frontend.resolver),
                    transfer: lane(&frontend.transfer),
                    ..Frontend::clone(&frontend)
                })
            };
            let worker = udp::spawn_worker(
                socket,
                own_lanes,
                udp_in_flight.clone(),
                serving.clone(),
                shutdown.clone(),
                lanes_shutdown.clone(),
            )
            .map_err(|e| anyhow::anyhow!("starting a UDP worker for {}: {e}", address.local))?;
            udp_workers.push(worker);
        }
        tcp_listeners.push(address.tcp);
    }
    // Ready means answering: the zone set known and a query stream up to each backend.
    let backend_ready = async {
        if let Some(mut zone_sets) = zone_sets {
            let _ = zone_sets.wait_for(Option::is_some).await;
        }
        let frontends = std::iter::once(&frontend).chain(udp_workers.iter().map(|w| &w.frontend));
        for frontend in frontends {
            for client in [&frontend.authority, &frontend.resolver]
                .into_iter()
                .flatten()
            {
                client.wait_connected().await;
            }
        }
    };
    if tokio::time::timeout(ZONE_SET_WAIT, backend_ready)
        .await
        .is_err()
    {
        tracing::warn!(authority = ?authority_endpoints, resolver = ?resolver_endpoints, "a backend is not reachable yet; answering SERVFAIL for its queries until it is");
    }
    serving.cancel();
    // TCP, DoT and DoH connections are served on the UDP workers' threads in turn.
    let placement = tcp::Placement::new(
        udp_workers
            .iter()
            .map(|w| (w.handle.clone(), w.frontend.clone()))
            .collect(),
        frontend.clone(),
    );
    for listener in tcp_listeners {
        tasks.spawn(tcp::serve(
            listener,
            tcp::Wrapping::Plain,
            placement.clone(),
            tcp_connections.clone(),
            limits,
            shutdown.clone(),
        ));
    }
    // DoT and DoH share TCP's connection limits: one pool of slots per client.
    let mut encrypted: Vec<(&'static str, Vec<String>)> = Vec::new();
    if let (Some(certificates), Some(tls)) = (&certificates, &section.tls) {
        for (transport, listener) in encrypted_bound {
            let local = listener.local_addr()?.to_string();
            match encrypted.iter_mut().find(|(t, _)| *t == transport.label()) {
                Some((_, addresses)) => addresses.push(local),
                None => encrypted.push((transport.label(), vec![local])),
            }
            tasks.spawn(tcp::serve(
                listener,
                tcp::Wrapping::Tls {
                    transport,
                    certificates: certificates.clone(),
                    handshake_timeout: tls.handshake_timeout,
                },
                placement.clone(),
                tcp_connections.clone(),
                limits,
                shutdown.clone(),
            ));
        }
    }

    tracing::info!(
        listen = ?addresses,
        encrypted = ?encrypted,
        authority = ?authority_endpoints.iter().map(ToString::to_string).collect::<Vec<_>>(),
        resolver = ?resolver_endpoints.iter().map(ToString::to_string).collect::<Vec<_>>(),
        zones = router.zone_count(),
        udp_workers = workers,
        packet_cache_bytes = section.packet_cache_bytes,
        "listener serving"
    );
    Ok(ListenerDaemon {
        config,
        section,
        frontend,
        tasks,
        udp_workers,
        udp_in_flight,
        tcp_connections,
        lanes_shutdown,
        addresses,
        control,
        encrypted,
        certificates,
        took_over,
    })
}

/// Extra time past the longest backend deadline for the last answers to go out.
const DRAIN_MARGIN: Duration = Duration::from_millis(500);

/// The parts of the listener's section that SIGHUP may change.
fn policy(section: &ListenerConfig, trace: Option<&sextant_config::TraceConfig>) -> Policy {
    let rrl = &section.rrl;
    Policy {
        acl: Acl {
            allow_query: section.allow_query.clone(),
            allow_recursion: section.allow_recursion.clone(),
            blackhole: section.blackhole.clone(),
        },
        version: section.version.clone(),
        identity: section.identity.clone(),
        cookies: cookie::Cookies::new(&section.cookies),
        rrl: rrl::Rrl::new(rrl::RrlSettings {
            responses_per_second: rrl.responses_per_second,
            slip: rrl.slip,
            ipv4_prefix: rrl.ipv4_prefix_length,
            ipv6_prefix: rrl.ipv6_prefix_length,
            table_size: rrl.table_size,
        }),
        trace: trace::TraceRules::new(trace),
    }
}

/// SIGHUP: re-reads the configuration file and applies the ACLs, CH TXT answers and
/// rate limits at once. A file that does not load changes nothing. Settings that
/// need a restart (addresses, backends, TCP limits, cache size) are reported, not
/// applied.
fn reload(
    config: &Config,
    running: &ListenerConfig,
    frontend: &Frontend,
    certificates: Option<&tls::Certificates>,
) {
    let Some(path) = config.source.as_deref() else {
        tracing::warn!("SIGHUP ignored: the configuration was not read from a file");
        return;
    };
    let new = match sextant_config::load(path) {
        Ok(new) => new,
        Err(error) => {
            tracing::error!(%error, "SIGHUP: the configuration does not load; nothing changed");
            return;
        }
    };
    let Some(section) = new.listener.as_ref() else {
        tracing::error!(file = %path.display(), "SIGHUP: the configuration has no [listener] section any more; nothing changed");
        return;
    };
    let tls_addresses = |section: &ListenerConfig| {
        section
            .tls
            .as_ref()
            .map(|tls| (tls.dot.clone(), tls.doh.clone()))
    };
    let needs_restart = section.listen != running.listen
        || tls_addresses(section) != tls_addresses(running)
        || section.control != running.control
        || section.tcp_max_connections != running.tcp_max_connections
        || section.packet_cache_bytes != running.packet_cache_bytes
        || new.authority_endpoints() != config.authority_endpoints()
        || new.resolver_endpoints() != config.resolver_endpoints();
    if needs_restart {
        tracing::warn!(
            "SIGHUP: listen addresses (also DoT and DoH), the control endpoint, backends, tcp_max_connections and packet_cache_bytes change only with a restart"
        );
    }
    // New connections get the certificate read now; open ones keep theirs.
    if let (Some(certificates), Some(tls)) = (certificates, &section.tls) {
        match certificates.reload(tls) {
            Ok(()) => {
                tracing::info!(certificate = %tls.certificate.display(), "SIGHUP: TLS certificate reloaded")
            }
            Err(error) => {
                tracing::error!(%error, "SIGHUP: the TLS certificate does not load; the one in use stays")
            }
        }
    }
    let otlp = |config: &Config| config.trace.as_ref().map(|t| t.otlp.clone());
    if otlp(&new) != otlp(config) {
        tracing::warn!(
            "SIGHUP: trace.otlp (where spans are exported) changes only with a restart; the new sampling rules apply now"
        );
    }
    frontend
        .policy
        .store(Arc::new(policy(section, new.trace.as_ref())));
    tracing::info!(file = %path.display(), "SIGHUP: ACLs, CH TXT answers, rate limits, cookie secrets and trace rules reloaded");
}
