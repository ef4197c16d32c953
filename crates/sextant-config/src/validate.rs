//! Checking a loaded configuration: one `validate` per section for what the section
//! alone decides, then the checks that span sections. Every problem is collected, so
//! an operator sees them all at once.

use std::collections::HashSet;

use hickory_proto::rr::Name;

use crate::{
    AuthorityConfig, Config, Endpoint, KeyConfig, ListenerConfig, ListenerTlsConfig, Problem,
    ResolverConfig, TransferConfig,
};

/// The problems found so far.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<Problem>);

impl Problems {
    pub(crate) fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// A problem when `value` is zero.
    pub(crate) fn positive(&mut self, key: &str, value: usize) {
        if value == 0 {
            self.add(key, "must be at least 1");
        }
    }

    /// A problem when `value` is zero; `example` shows a good value.
    fn nonzero_duration(&mut self, key: &str, value: std::time::Duration, example: &str) {
        if value.is_zero() {
            self.add(key, format!("must be longer than zero, e.g. \"{example}\""));
        }
    }

    pub(crate) fn into_vec(self) -> Vec<Problem> {
        self.0
    }
}

impl Config {
    /// Every problem of the whole file, each as one sentence with its fix.
    pub(crate) fn problems(&self) -> Problems {
        let mut problems = Problems::default();
        if let Err(e) = tracing_filter_ok(&self.log.level) {
            problems.add("log.level", e);
        }
        if let Some(listener) = &self.listener {
            listener.validate(&mut problems);
            if self.authority_endpoint().is_none() && self.resolver_endpoint().is_none() {
                problems.add(
                    "listener.authority",
                    "the listener has no backend to forward to; set listener.authority or listener.resolver, or add an [authority] or [resolver] section",
                );
            }
        }
        if let Some(authority) = &self.authority {
            authority.validate(&mut problems);
        }
        if let Some(transfer) = &self.transfer {
            transfer.validate(&mut problems);
        }
        if let Some(resolver) = &self.resolver {
            resolver.validate(&mut problems);
            resolver.check_query_sources(self.listener.as_ref(), &mut problems);
        }
        if let Some(grpc) = &self.grpc {
            grpc.validate(&mut problems);
        }
        self.check_plaintext(&mut problems);
        if let Some(trace) = &self.trace {
            trace.validate(&mut problems);
        }
        let key_names = validate_keys(&self.keys, &mut problems);
        validate_policies(&self.dnssec_policies, &mut problems);
        self.check_across_sections(&key_names, &mut problems);
        self.check_signed_zones(&mut problems);
        problems
    }

    /// Zones name policies that exist, and their keys have somewhere to live.
    fn check_signed_zones(&self, problems: &mut Problems) {
        let secondaries = self.transfer.iter().flat_map(|t| &t.zones);
        let signed: Vec<(&str, &Name, &String)> = self
            .authority
            .iter()
            .flat_map(|a| &a.zones)
            .filter_map(|z| Some(("authority.zone", &z.name, z.dnssec_policy.as_ref()?)))
            .chain(
                secondaries
                    .filter_map(|z| Some(("transfer.zone", &z.name, z.dnssec_policy.as_ref()?))),
            )
            .collect();
        if signed.is_empty() {
            return;
        }
        let Some(authority) = &self.authority else {
            problems.add(
                "transfer.zone",
                "a secondary zone with dnssec_policy is signed by the authority, but there is no [authority] section; add one (with state_dir)",
            );
            return;
        };
        for (key, name, policy) in signed {
            if !self.dnssec_policies.iter().any(|p| &p.name == policy) {
                problems.add(
                    key,
                    format!(
                        "zone {name} names dnssec_policy {policy:?}, which no [[dnssec_policy]] section defines; add it or fix the name"
                    ),
                );
            }
            if authority.state_dir.is_none() {
                problems.add(
                    "authority.state_dir",
                    format!(
                        "zone {name} is signed (dnssec_policy {policy:?}) but the authority has no state_dir for its keys; set authority.state_dir, e.g. \"/var/lib/sextant/authority\""
                    ),
                );
            }
        }
    }

    /// What no section decides alone: keys named by zones exist, a zone is not both
    /// a primary and a secondary.
    fn check_across_sections(&self, key_names: &HashSet<&Name>, problems: &mut Problems) {
        if let Some(key) = self
            .authority
            .as_ref()
            .and_then(|a| a.transfer_key.as_ref())
            && !key_names.contains(key)
        {
            problems.add(
                "authority.transfer_key",
                format!("key {key} is not defined by any [[key]] section; add it or fix the name"),
            );
        }
        let Some(transfer) = &self.transfer else {
            return;
        };
        for zone in &transfer.zones {
            let primary_too = self
                .authority
                .as_ref()
                .is_some_and(|a| a.zones.iter().any(|z| z.name == zone.name));
            if primary_too {
                problems.add(
                    "transfer.zone",
                    format!(
                        "zone {} is both a primary ([[authority.zone]]) and a secondary; keep one",
                        zone.name
                    ),
                );
            }
            if let Some(key) = &zone.key
                && !key_names.contains(key)
            {
                problems.add(
                    "transfer.zone",
                    format!(
                        "zone {} uses key {key}, which no [[key]] section defines; add it or fix the name",
                        zone.name
                    ),
                );
            }
        }
    }

    /// The listener's (first) resolver endpoint: explicit, or the resolver section's own.
    pub fn resolver_endpoint(&self) -> Option<&Endpoint> {
        self.resolver_endpoints().first().copied()
    }

    /// Every resolver the listener spreads recursive queries over.
    pub fn resolver_endpoints(&self) -> Vec<&Endpoint> {
        match self.listener.as_ref().map(|l| &l.resolver) {
            Some(list) if !list.is_empty() => list.iter().collect(),
            _ => self.resolver.iter().map(|r| &r.grpc).collect(),
        }
    }

    /// The transfer daemon's endpoint as the listener reaches it (for NOTIFY).
    pub fn listener_transfer_endpoint(&self) -> Option<&Endpoint> {
        self.listener
            .as_ref()
            .and_then(|l| l.transfer.as_ref())
            .or(self.transfer.as_ref().map(|t| &t.grpc))
    }

    /// The transfer daemon's endpoint as the authority reaches it (secondary zones).
    pub fn secondaries_endpoint(&self) -> Option<&Endpoint> {
        self.authority
            .as_ref()
            .and_then(|a| a.secondaries.as_ref())
            .or(self.transfer.as_ref().map(|t| &t.grpc))
    }

    /// The listener's (first) authority endpoint: explicit, or the authority section's own.
    pub fn authority_endpoint(&self) -> Option<&Endpoint> {
        self.authority_endpoints().first().copied()
    }

    /// Every authority the listener spreads queries for its zones over.
    pub fn authority_endpoints(&self) -> Vec<&Endpoint> {
        match self.listener.as_ref().map(|l| &l.authority) {
            Some(list) if !list.is_empty() => list.iter().collect(),
            _ => self.authority.iter().map(|a| &a.grpc).collect(),
        }
    }
}

/// Every name is given once, with a known algorithm and a base64 secret; returns the
/// names defined.
/// Each `[[dnssec_policy]]` alone: known algorithm, key split and denial, sane
/// NSEC3 parameters and signature times.
fn validate_policies(policies: &[crate::DnssecPolicyConfig], problems: &mut Problems) {
    let mut seen = HashSet::new();
    for policy in policies {
        let name = &policy.name;
        if !seen.insert(name) {
            problems.add(
                "dnssec_policy",
                format!("policy {name:?} is defined twice; keep one"),
            );
        }
        if !crate::DNSSEC_ALGORITHMS
            .iter()
            .any(|(known, _)| *known == policy.algorithm)
        {
            problems.add(
                "dnssec_policy.algorithm",
                format!(
                    "policy {name:?}: {:?} is not an algorithm the signer makes keys for; use ecdsap256sha256, ed25519 or rsasha256",
                    policy.algorithm
                ),
            );
        }
        if !matches!(policy.keys.as_str(), "csk" | "ksk-zsk") {
            problems.add(
                "dnssec_policy.keys",
                format!("policy {name:?}: keys must be \"csk\" or \"ksk-zsk\""),
            );
        }
        if !matches!(policy.denial.as_str(), "nsec" | "nsec3") {
            problems.add(
                "dnssec_policy.denial",
                format!("policy {name:?}: denial must be \"nsec3\" or \"nsec\""),
            );
        }
        if policy.nsec3_iterations > 150 {
            problems.add(
                "dnssec_policy.nsec3_iterations",
                format!(
                    "policy {name:?}: {} iterations make validators treat the zone as insecure (RFC 9276 §3.2); use 0",
                    policy.nsec3_iterations
                ),
            );
        }
        // A new signature's expiration is up to a tenth of the validity early
        // (spread); it falls due `signature_refresh` before that, and the pass that
        // makes it also makes those due within the refresh window: that must all
        // fit, or signing would go round in circles.
        let window = crate::model::signature_refresh_window(policy.signature_refresh);
        if policy.signature_refresh + policy.signature_validity / 10 + window
            >= policy.signature_validity
        {
            problems.add(
                "dnssec_policy.signature_refresh",
                format!(
                    "policy {name:?}: signatures would fall due again almost as soon as they are made; make signature_refresh shorter than nine tenths of signature_validity less {} (e.g. \"5d\" for \"14d\")",
                    humantime_serde::re::humantime::format_duration(window)
                ),
            );
        }
        if policy.signature_refresh < std::time::Duration::from_secs(3_600) {
            problems.add(
                "dnssec_policy.signature_refresh",
                format!(
                    "policy {name:?}: signatures must be refreshed at least an hour before they expire; set signature_refresh to \"1h\" or more"
                ),
            );
        }
        if !policy.zsk_lifetime.is_zero()
            && policy.zsk_lifetime
                < policy.signature_validity + std::time::Duration::from_secs(86_400)
        {
            problems.add(
                "dnssec_policy.zsk_lifetime",
                format!(
                    "policy {name:?}: a key must outlive the signatures it makes; set zsk_lifetime longer than signature_validity plus a day, or \"0s\" for never"
                ),
            );
        }
    }
}

fn validate_keys<'k>(keys: &'k [KeyConfig], problems: &mut Problems) -> HashSet<&'k Name> {
    let mut names = HashSet::new();
    for key in keys {
        if !names.insert(&key.name) {
            problems.add(
                "key",
                format!("key {} is defined twice; keep one", key.name),
            );
        }
        if !crate::model::KEY_ALGORITHMS.contains(&key.algorithm.as_str()) {
            problems.add(
                "key",
                format!(
                    "key {} has algorithm {:?}; use one of {}",
                    key.name,
                    key.algorithm,
                    crate::model::KEY_ALGORITHMS.join(", ")
                ),
            );
        }
        if crate::key_secret(&key.secret).is_none_or(|s| s.is_empty()) {
            problems.add(
                "key",
                format!(
                    "the secret of key {} is not base64; paste it as tsig-keygen prints it",
                    key.name
                ),
            );
        }
    }
    names
}

impl ListenerTlsConfig {
    fn validate(&self, listen: &[std::net::SocketAddr], problems: &mut Problems) {
        if self.dot.is_empty() && self.doh.is_empty() {
            problems.add(
                "listener.tls",
                "no address for DNS over TLS or HTTPS; add dot = [\"0.0.0.0:853\"] or doh = [\"0.0.0.0:443\"], or remove [listener.tls]",
            );
        }
        let mut seen: HashSet<&std::net::SocketAddr> = listen.iter().collect();
        for (key, addresses) in [
            ("listener.tls.dot", &self.dot),
            ("listener.tls.doh", &self.doh),
        ] {
            // Port 0 (any free port, as tests use) never clashes.
            for addr in addresses.iter().filter(|a| a.port() != 0) {
                if !seen.insert(addr) {
                    problems.add(
                        key,
                        format!("{addr} is already served (listener.listen, dot or doh); give each its own port, e.g. 853 for DoT and 443 for DoH"),
                    );
                }
            }
        }
        problems.nonzero_duration(
            "listener.tls.handshake_timeout",
            self.handshake_timeout,
            "5s",
        );
        if let Err(message) = crate::tls::read_certificates(&self.certificate) {
            problems.add("listener.tls.certificate", message);
        }
        if let Err(message) = crate::tls::read_key(&self.key) {
            problems.add("listener.tls.key", message);
        }
    }
}

impl ListenerConfig {
    fn validate(&self, problems: &mut Problems) {
        if self.listen.is_empty() {
            problems.add(
                "listener.listen",
                "no address to serve on; add one, e.g. listen = [\"127.0.0.1:53\"]",
            );
        }
        let mut seen = HashSet::new();
        for addr in &self.listen {
            if !seen.insert(addr) {
                problems.add(
                    "listener.listen",
                    format!("{addr} is listed twice; remove the duplicate"),
                );
            }
        }
        for (key, list) in [
            ("listener.authority", &self.authority),
            ("listener.resolver", &self.resolver),
        ] {
            let mut seen = HashSet::new();
            for endpoint in list {
                if !seen.insert(endpoint) {
                    problems.add(
                        key,
                        format!("{endpoint} is listed twice; remove the duplicate"),
                    );
                }
            }
        }
        if self.rrl.ipv4_prefix_length > 32 || self.rrl.ipv6_prefix_length > 128 {
            problems.add(
                "listener.rrl",
                "prefix lengths are at most 32 (IPv4) and 128 (IPv6); the defaults are 24 and 56",
            );
        }
        problems.nonzero_duration("listener.resolver_timeout", self.resolver_timeout, "4s");
        problems.nonzero_duration("listener.backend_timeout", self.backend_timeout, "1500ms");
        if self.backend_lanes == 0 || self.backend_lanes > 64 {
            problems.add("listener.backend_lanes", "must be between 1 and 64");
        }
        if !(512..=4096).contains(&self.udp_payload_size) {
            problems.add(
                "listener.udp_payload_size",
                "must be between 512 and 4096 bytes (1232 is the safe default)",
            );
        }
        problems.positive("listener.tcp_max_connections", self.tcp_max_connections);
        problems.positive(
            "listener.tcp_max_connections_per_client",
            self.tcp_max_connections_per_client,
        );
        problems.positive("listener.tcp_max_in_flight", self.tcp_max_in_flight);
        if let Some(tls) = &self.tls {
            tls.validate(&self.listen, problems);
        }
        if let Some(dnstap) = &self.dnstap {
            dnstap.validate("listener", &crate::DnstapMessage::LISTENER, problems);
        }
        if self.rrl.responses_per_second > 0 {
            problems.positive("listener.rrl.table_size", self.rrl.table_size);
        }
        for (key, secret) in [
            ("listener.cookies.secret", &self.cookies.secret),
            (
                "listener.cookies.previous_secret",
                &self.cookies.previous_secret,
            ),
        ] {
            if secret
                .as_deref()
                .is_some_and(|s| crate::cookie_secret(s).is_none())
            {
                problems.add(
                    key,
                    "must be 32 hex digits (16 bytes), e.g. from `openssl rand -hex 16`",
                );
            }
        }
        problems.nonzero_duration("listener.tcp_idle_timeout", self.tcp_idle_timeout, "10s");
        problems.nonzero_duration("listener.tcp_read_timeout", self.tcp_read_timeout, "5s");
    }
}

impl AuthorityConfig {
    fn validate(&self, problems: &mut Problems) {
        if !(512..=4096).contains(&self.edns_payload_size) {
            problems.add(
                "authority.edns_payload_size",
                "must be between 512 and 4096 bytes (1232 is the safe default)",
            );
        }
        let mut seen = HashSet::new();
        for zone in &self.zones {
            if !seen.insert(&zone.name) {
                problems.add(
                    "authority.zone",
                    format!("zone {} is configured twice; keep one entry", zone.name),
                );
            }
            if !zone.file.is_file() {
                problems.add(
                    "authority.zone",
                    format!(
                        "the file {} of zone {} does not exist; create it or fix the path (relative paths start at the config file's directory)",
                        zone.file.display(),
                        zone.name
                    ),
                );
            }
        }
        if let Some(catalog) = &self.catalog
            && self.zones.iter().any(|zone| &zone.name == catalog)
        {
            problems.add(
                "authority.catalog",
                format!("{catalog} is also a configured zone; the catalog zone is made by the authority, so give it a name of its own (catalog.invalid, say)"),
            );
        }
    }
}

impl TransferConfig {
    fn validate(&self, problems: &mut Problems) {
        if self.min_refresh.is_zero() || self.min_refresh > self.max_refresh {
            problems.add(
                "transfer.min_refresh",
                "must be above zero and at most transfer.max_refresh",
            );
        }
        problems.nonzero_duration("transfer.transfer_timeout", self.transfer_timeout, "10s");
        let mut seen = HashSet::new();
        for zone in &self.zones {
            if !seen.insert(&zone.name) {
                problems.add(
                    "transfer.zone",
                    format!("zone {} is configured twice; keep one entry", zone.name),
                );
            }
            if zone.primaries.is_empty() {
                problems.add(
                    "transfer.zone",
                    format!(
                        "zone {} has no primaries; add primaries = [\"ADDRESS:53\"]",
                        zone.name
                    ),
                );
            }
        }
    }
}

impl ResolverConfig {
    fn validate(&self, problems: &mut Problems) {
        if let Some(dnstap) = &self.dnstap {
            dnstap.validate("resolver", &crate::DnstapMessage::RESOLVER, problems);
        }
        problems.nonzero_duration("resolver.upstream_timeout", self.upstream_timeout, "800ms");
        problems.nonzero_duration("resolver.resolution_timeout", self.resolution_timeout, "3s");
        if self.min_ttl > self.max_ttl {
            problems.add(
                "resolver.min_ttl",
                format!(
                    "{} is above resolver.max_ttl ({}); lower it",
                    self.min_ttl, self.max_ttl
                ),
            );
        }
        if self.failure_ttl > self.failure_ttl_max {
            problems.add(
                "resolver.failure_ttl",
                format!(
                    "{:?} is above resolver.failure_ttl_max ({:?}); lower it",
                    self.failure_ttl, self.failure_ttl_max
                ),
            );
        }
        if self.failure_ttl_max > std::time::Duration::from_secs(300) {
            problems.add(
                "resolver.failure_ttl_max",
                "holds failures longer than 5 minutes (RFC 9520 §3.2); set it to \"300s\" or less",
            );
        }
        problems.positive("resolver.max_referrals", self.max_referrals);
        problems.positive("resolver.max_upstream_queries", self.max_upstream_queries);
        problems.positive("resolver.max_resolutions", self.max_resolutions);
        problems.positive("resolver.server_entries", self.server_entries);
        if self.upstream_port == 0 {
            problems.add(
                "resolver.upstream_port",
                "must be a port number, normally 53",
            );
        }
        for forward in &self.forwards {
            if forward.servers.is_empty() {
                problems.add(
                    "resolver.forward",
                    format!(
                        "forward zone {} has no servers; add servers = [\"ADDRESS:53\"]",
                        forward.name
                    ),
                );
            }
        }
    }

    /// A fixed query port on an address the listener serves would steal its answers
    /// (a fixed source port that clashes): refuse it here, where the fix is obvious.
    fn check_query_sources(&self, listener: Option<&ListenerConfig>, problems: &mut Problems) {
        let listen = listener.map_or(&[][..], |l| &l.listen[..]);
        for (key, source) in [
            ("resolver.query_source", self.query_source),
            ("resolver.query_source_v6", self.query_source_v6),
        ] {
            let Some(source) = source else { continue };
            if key.ends_with("_v6") != source.is_ipv6() {
                problems.add(
                    key,
                    format!(
                        "{source} is the wrong address family for {key}; use an {} address",
                        if key.ends_with("_v6") { "IPv6" } else { "IPv4" }
                    ),
                );
            }
            if source.port() == 0 {
                continue;
            }
            for addr in listen {
                let same_ip = addr.ip() == source.ip()
                    || addr.ip().is_unspecified()
                    || source.ip().is_unspecified();
                if same_ip && addr.port() == source.port() {
                    problems.add(
                        key,
                        format!(
                            "{source} clashes with the listener address {addr}; use port 0 (a random port per query, the safe default) or another port"
                        ),
                    );
                }
            }
        }
    }
}

/// A light check of a tracing filter so that a typo fails at --check, not at start.
fn tracing_filter_ok(level: &str) -> Result<(), String> {
    let known = ["trace", "debug", "info", "warn", "error", "off"];
    for directive in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let value = directive.rsplit('=').next().unwrap_or(directive);
        if !known.contains(&value.to_ascii_lowercase().as_str()) && directive.contains('=') {
            return Err(format!(
                "{directive:?} has no level after '='; use one of {}",
                known.join(", ")
            ));
        }
        if !directive.contains('=')
            && !known.contains(&value.to_ascii_lowercase().as_str())
            && !value
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == ':')
        {
            return Err(format!(
                "{directive:?} is not a level or a module name; use e.g. \"info\""
            ));
        }
    }
    Ok(())
}
