//! Reading the file, applying environment overrides, resolving relative paths and
//! checking the result as a whole.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::{Config, ConfigError, Problem};

/// Environment variables `SEXTANT__LISTENER__BACKEND_TIMEOUT=3s` override the file.
const ENV_PREFIX: &str = "SEXTANT";
const ENV_SEPARATOR: &str = "__";

/// Loads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::one(
            path.to_path_buf(),
            "",
            "cannot read the configuration file: it does not exist or is not a file; pass an existing file with --config",
        ));
    }
    let raw = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR),
        )
        .build()
        .map_err(|e| ConfigError::one(path.to_path_buf(), "", syntax_message(&e)))?;
    let mut config: Config = raw
        .try_deserialize()
        .map_err(|e| deserialize_error(path, &e))?;

    // Relative paths start at the file's directory, made absolute so that they do not
    // change meaning with the daemon's working directory.
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
    config.resolve_paths(&base);
    config.source = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
    let problems = config.problems();
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// The TOML parser's report is several lines with a drawing; keep its position and
/// its diagnosis on one line.
fn syntax_message(error: &config::ConfigError) -> String {
    let text = error.to_string();
    let position = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .and_then(|first| first.strip_prefix("TOML parse error at "))
        .map(str::to_string);
    let diagnosis = text
        .lines()
        .map(str::trim)
        .rfind(|l| {
            !l.is_empty() && !l.starts_with('|') && !l.contains(" | ") && !l.starts_with("in ")
        })
        .map(str::to_string);
    match (position, diagnosis) {
        (Some(position), Some(diagnosis)) => {
            format!("invalid TOML at {position}: {diagnosis}; fix the syntax there")
        }
        _ => format!("invalid TOML ({}); fix the syntax", text.replace('\n', " ")),
    }
}

/// Turns serde's messages into one sentence with the key and the fix.
fn deserialize_error(path: &Path, error: &config::ConfigError) -> ConfigError {
    let (key, inner) = match error {
        config::ConfigError::At { error, key, .. } => {
            (key.clone().unwrap_or_default(), error.to_string())
        }
        other => (String::new(), other.to_string()),
    };
    let message = if let Some(rest) = inner.strip_prefix("unknown field ") {
        let (field, expected) = rest.split_once(", expected").unwrap_or((rest, ""));
        let field = field.trim_matches('`');
        let key = if key.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        };
        return ConfigError::one(
            path.to_path_buf(),
            key,
            format!(
                "unknown key; the keys allowed here are {}; check the spelling (see docs/configuration.md)",
                expected.trim_start_matches(" one of ").trim_start()
            ),
        );
    } else if inner.starts_with("missing field ") {
        format!("{inner}; add it (see samples/sextant.toml)")
    } else {
        format!("{inner}; fix the value (see docs/configuration.md)")
    };
    let message = match from_environment(&key) {
        Some(variable) => {
            format!("{message} (the value comes from the environment variable {variable})")
        }
        None => message,
    };
    ConfigError::one(path.to_path_buf(), key, message)
}

/// The environment variable that set `key`, if one did.
fn from_environment(key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let variable = format!(
        "{ENV_PREFIX}{ENV_SEPARATOR}{}",
        key.to_ascii_uppercase().replace('.', ENV_SEPARATOR)
    );
    std::env::var_os(&variable).map(|_| variable)
}

fn absolute(base: &Path, path: &mut PathBuf) {
    if path.is_relative() {
        *path = base.join(&*path);
    }
}

impl Config {
    fn resolve_paths(&mut self, base: &Path) {
        if let Some(listener) = &mut self.listener {
            if let Some(ready) = &mut listener.ready_file {
                absolute(base, ready);
            }
            for endpoint in [
                &mut listener.authority,
                &mut listener.transfer,
                &mut listener.resolver,
            ]
            .into_iter()
            .flatten()
            {
                if let crate::Endpoint::Unix(path) = endpoint {
                    absolute(base, path);
                }
            }
        }
        if let Some(authority) = &mut self.authority {
            if let Some(ready) = &mut authority.ready_file {
                absolute(base, ready);
            }
            if let crate::Endpoint::Unix(path) = &mut authority.grpc {
                absolute(base, path);
            }
            for zone in &mut authority.zones {
                absolute(base, &mut zone.file);
            }
            if let Some(crate::Endpoint::Unix(path)) = &mut authority.secondaries {
                absolute(base, path);
            }
            if let Some(dir) = &mut authority.state_dir {
                absolute(base, dir);
            }
        }
        if let Some(resolver) = &mut self.resolver {
            for path in [&mut resolver.ready_file, &mut resolver.root_hints]
                .into_iter()
                .flatten()
            {
                absolute(base, path);
            }
            if let crate::Endpoint::Unix(path) = &mut resolver.grpc {
                absolute(base, path);
            }
        }
        if let Some(transfer) = &mut self.transfer {
            absolute(base, &mut transfer.state_dir);
            if let Some(ready) = &mut transfer.ready_file {
                absolute(base, ready);
            }
            if let crate::Endpoint::Unix(path) = &mut transfer.grpc {
                absolute(base, path);
            }
        }
    }

    /// Every problem of the whole file, each as one sentence with its fix.
    fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| {
            problems.push(Problem {
                key: key.to_string(),
                message,
            })
        };
        if let Err(e) = tracing_filter_ok(&self.log.level) {
            problem("log.level", e);
        }
        if let Some(listener) = &self.listener {
            if listener.listen.is_empty() {
                problem(
                    "listener.listen",
                    "no address to serve on; add one, e.g. listen = [\"127.0.0.1:53\"]".into(),
                );
            }
            let mut seen = HashSet::new();
            for addr in &listener.listen {
                if !seen.insert(addr) {
                    problem(
                        "listener.listen",
                        format!("{addr} is listed twice; remove the duplicate"),
                    );
                }
            }
            if self.authority_endpoint().is_none() && self.resolver_endpoint().is_none() {
                problem(
                    "listener.authority",
                    "the listener has no backend to forward to; set listener.authority or listener.resolver, or add an [authority] or [resolver] section".into(),
                );
            }
            if listener.rrl.ipv4_prefix_length > 32 || listener.rrl.ipv6_prefix_length > 128 {
                problem(
                    "listener.rrl",
                    "prefix lengths are at most 32 (IPv4) and 128 (IPv6); the defaults are 24 and 56".into(),
                );
            }
            if listener.resolver_timeout.is_zero() {
                problem(
                    "listener.resolver_timeout",
                    "must be longer than zero, e.g. \"4s\"".into(),
                );
            }
            if listener.backend_timeout.is_zero() {
                problem(
                    "listener.backend_timeout",
                    "must be longer than zero, e.g. \"1500ms\"".into(),
                );
            }
            if listener.backend_lanes == 0 || listener.backend_lanes > 64 {
                problem("listener.backend_lanes", "must be between 1 and 64".into());
            }
            if !(512..=4096).contains(&listener.udp_payload_size) {
                problem(
                    "listener.udp_payload_size",
                    "must be between 512 and 4096 bytes (1232 is the safe default)".into(),
                );
            }
            if listener.tcp_max_connections == 0 {
                problem("listener.tcp_max_connections", "must be at least 1".into());
            }
            if listener.tcp_max_connections_per_client == 0 {
                problem(
                    "listener.tcp_max_connections_per_client",
                    "must be at least 1".into(),
                );
            }
            if listener.tcp_max_in_flight == 0 {
                problem("listener.tcp_max_in_flight", "must be at least 1".into());
            }
            for (key, value) in [
                ("listener.tcp_idle_timeout", listener.tcp_idle_timeout),
                ("listener.tcp_read_timeout", listener.tcp_read_timeout),
            ] {
                if value.is_zero() {
                    problem(key, "must be longer than zero, e.g. \"10s\"".into());
                }
            }
        }
        if let Some(authority) = &self.authority {
            if !(512..=4096).contains(&authority.edns_payload_size) {
                problem(
                    "authority.edns_payload_size",
                    "must be between 512 and 4096 bytes (1232 is the safe default)".into(),
                );
            }
            let mut seen = HashSet::new();
            for zone in &authority.zones {
                if !seen.insert(&zone.name) {
                    problem(
                        "authority.zone",
                        format!("zone {} is configured twice; keep one entry", zone.name),
                    );
                }
                if !zone.file.is_file() {
                    problem(
                        "authority.zone",
                        format!(
                            "the file {} of zone {} does not exist; create it or fix the path (relative paths start at the config file's directory)",
                            zone.file.display(),
                            zone.name
                        ),
                    );
                }
            }
        }
        if let Some(transfer) = &self.transfer {
            if transfer.min_refresh.is_zero() || transfer.min_refresh > transfer.max_refresh {
                problem(
                    "transfer.min_refresh",
                    "must be above zero and at most transfer.max_refresh".into(),
                );
            }
            if transfer.transfer_timeout.is_zero() {
                problem(
                    "transfer.transfer_timeout",
                    "must be longer than zero, e.g. \"10s\"".into(),
                );
            }
            let mut seen = HashSet::new();
            for zone in &transfer.zones {
                if !seen.insert(&zone.name) {
                    problem(
                        "transfer.zone",
                        format!("zone {} is configured twice; keep one entry", zone.name),
                    );
                }
                if zone.primaries.is_empty() {
                    problem(
                        "transfer.zone",
                        format!(
                            "zone {} has no primaries; add primaries = [\"ADDRESS:53\"]",
                            zone.name
                        ),
                    );
                }
                let primary_too = self
                    .authority
                    .as_ref()
                    .is_some_and(|a| a.zones.iter().any(|z| z.name == zone.name));
                if primary_too {
                    problem(
                        "transfer.zone",
                        format!(
                            "zone {} is both a primary ([[authority.zone]]) and a secondary; keep one",
                            zone.name
                        ),
                    );
                }
            }
        }
        if let Some(resolver) = &self.resolver {
            resolver_problems(resolver, self.listener.as_ref(), &mut problem);
        }
        let mut key_names = HashSet::new();
        for key in &self.keys {
            if !key_names.insert(&key.name) {
                problem(
                    "key",
                    format!("key {} is defined twice; keep one", key.name),
                );
            }
            if !crate::model::KEY_ALGORITHMS.contains(&key.algorithm.as_str()) {
                problem(
                    "key",
                    format!(
                        "key {} has algorithm {:?}; use one of {}",
                        key.name,
                        key.algorithm,
                        crate::model::KEY_ALGORITHMS.join(", ")
                    ),
                );
            }
            if key_secret(&key.secret).is_none_or(|s| s.is_empty()) {
                problem(
                    "key",
                    format!(
                        "the secret of key {} is not base64; paste it as tsig-keygen prints it",
                        key.name
                    ),
                );
            }
        }
        if let Some(key) = self
            .authority
            .as_ref()
            .and_then(|a| a.transfer_key.as_ref())
            && !key_names.contains(key)
        {
            problem(
                "authority.transfer_key",
                format!("key {key} is not defined by any [[key]] section; add it or fix the name"),
            );
        }
        if let Some(transfer) = &self.transfer {
            for zone in &transfer.zones {
                if let Some(key) = &zone.key
                    && !key_names.contains(key)
                {
                    problem(
                        "transfer.zone",
                        format!(
                            "zone {} uses key {key}, which no [[key]] section defines; add it or fix the name",
                            zone.name
                        ),
                    );
                }
            }
        }
        problems
    }

    /// The listener's resolver endpoint: explicit, or the resolver section's own.
    pub fn resolver_endpoint(&self) -> Option<&crate::Endpoint> {
        self.listener
            .as_ref()
            .and_then(|l| l.resolver.as_ref())
            .or(self.resolver.as_ref().map(|r| &r.grpc))
    }

    /// The transfer daemon's endpoint as the listener reaches it (for NOTIFY).
    pub fn listener_transfer_endpoint(&self) -> Option<&crate::Endpoint> {
        self.listener
            .as_ref()
            .and_then(|l| l.transfer.as_ref())
            .or(self.transfer.as_ref().map(|t| &t.grpc))
    }

    /// The transfer daemon's endpoint as the authority reaches it (secondary zones).
    pub fn secondaries_endpoint(&self) -> Option<&crate::Endpoint> {
        self.authority
            .as_ref()
            .and_then(|a| a.secondaries.as_ref())
            .or(self.transfer.as_ref().map(|t| &t.grpc))
    }

    /// The listener's authority endpoint: explicit, or the authority section's own.
    pub fn authority_endpoint(&self) -> Option<&crate::Endpoint> {
        self.listener
            .as_ref()
            .and_then(|l| l.authority.as_ref())
            .or(self.authority.as_ref().map(|a| &a.grpc))
    }
}

fn resolver_problems(
    resolver: &crate::ResolverConfig,
    listener: Option<&crate::ListenerConfig>,
    problem: &mut impl FnMut(&str, String),
) {
    for (key, value) in [
        ("resolver.upstream_timeout", resolver.upstream_timeout),
        ("resolver.resolution_timeout", resolver.resolution_timeout),
    ] {
        if value.is_zero() {
            problem(key, "must be longer than zero, e.g. \"800ms\"".into());
        }
    }
    if resolver.min_ttl > resolver.max_ttl {
        problem(
            "resolver.min_ttl",
            format!(
                "{} is above resolver.max_ttl ({}); lower it",
                resolver.min_ttl, resolver.max_ttl
            ),
        );
    }
    for (key, value) in [
        ("resolver.max_referrals", resolver.max_referrals),
        (
            "resolver.max_upstream_queries",
            resolver.max_upstream_queries,
        ),
    ] {
        if value == 0 {
            problem(key, "must be at least 1".into());
        }
    }
    if resolver.upstream_port == 0 {
        problem(
            "resolver.upstream_port",
            "must be a port number, normally 53".into(),
        );
    }
    // A fixed query port on an address the listener serves would steal its answers
    // (the outage of lesson 3): refuse it here, where the fix is obvious.
    let listen = listener.map_or(&[][..], |l| &l.listen[..]);
    for (key, source) in [
        ("resolver.query_source", resolver.query_source),
        ("resolver.query_source_v6", resolver.query_source_v6),
    ] {
        let Some(source) = source else { continue };
        if key.ends_with("_v6") != source.is_ipv6() {
            problem(
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
                problem(
                    key,
                    format!(
                        "{source} clashes with the listener address {addr}; use port 0 (a random port per query, the safe default) or another port"
                    ),
                );
            }
        }
    }
    for forward in &resolver.forwards {
        if forward.servers.is_empty() {
            problem(
                "resolver.forward",
                format!(
                    "forward zone {} has no servers; add servers = [\"ADDRESS:53\"]",
                    forward.name
                ),
            );
        }
    }
}

/// The secret of a key, decoded (`None` when it is not base64).
pub fn key_secret(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn loads_sections_with_defaults_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "z.zone", "");
        let path = write(
            dir.path(),
            "s.toml",
            r#"
[listener]
listen = ["127.0.0.1:0"]
[authority]
grpc = "unix:auth.sock"
[[authority.zone]]
name = "Example.COM"
file = "z.zone"
"#,
        );
        let config = load(&path).unwrap();
        let listener = config.listener.as_ref().unwrap();
        assert_eq!(listener.backend_lanes, 2);
        assert_eq!(
            config.authority_endpoint(),
            Some(&crate::Endpoint::Unix(dir.path().join("auth.sock")))
        );
        let zone = &config.authority.as_ref().unwrap().zones[0];
        assert_eq!(zone.name.to_string(), "example.com.");
        assert_eq!(zone.file, dir.path().join("z.zone"));
    }

    #[test]
    fn unknown_key_names_file_key_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "s.toml",
            "[listener]\nlisten = [\"127.0.0.1:0\"]\nlissten = 1\n",
        );
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("s.toml"), "{err}");
        assert!(err.contains("`listener.lissten`: unknown key"), "{err}");
        assert!(err.contains("listen"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "s.toml",
            r#"
[listener]
listen = []
backend_lanes = 0
[authority]
grpc = "unix:a.sock"
[[authority.zone]]
name = "example.com"
file = "missing.zone"
"#,
        );
        let err = load(&path).unwrap_err();
        let keys: Vec<_> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "listener.listen",
                "listener.backend_lanes",
                "authority.zone"
            ]
        );
        assert!(
            err.to_string()
                .contains("missing.zone of zone example.com. does not exist")
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "s.toml", "[listener]\nlisten = [\"nowhere\"]\n");
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("listener.listen"), "{err}");
        let path = write(dir.path(), "t.toml", "[authority]\ngrpc = \"localhost\"\n");
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("unix:/path/to.sock"), "{err}");
    }

    #[test]
    fn missing_file_says_so() {
        let err = load(Path::new("/nonexistent/sextant.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/sextant.toml: cannot read"),
            "{err}"
        );
    }
}
