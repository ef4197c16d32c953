//! `[listener.dnstap]` and `[resolver.dnstap]`: the query log in the dnstap format,
//! written as Frame Streams to a Unix socket or a file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::validate::Problems;

/// Where and what a daemon logs in dnstap.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DnstapConfig {
    /// The Unix socket of a Frame Streams reader (`fstrm_capture`, a dnstap
    /// collector). Connected at start and again whenever the reader goes away;
    /// entries logged while it is away are dropped and counted.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Or a file, created afresh (replaced) when the daemon starts, with its
    /// directory if need be.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// The `identity` field of every entry, e.g. the host's name. Default: none.
    #[serde(default)]
    pub identity: Option<String>,
    /// Whether entries carry the `version` field ("sextant 0.1.0"). Default true.
    #[serde(default = "default_true")]
    pub version: bool,
    /// Which entries to write. Default: every kind the daemon writes (the listener
    /// `client_*` and `auth_*`, the resolver `resolver_*` and `forwarder_*`).
    #[serde(default)]
    pub messages: Vec<DnstapMessage>,
    /// Log one exchange in this many, chosen at random; 1 logs every one. Default 1.
    #[serde(default = "default_sample")]
    pub sample: u32,
    /// Entries waiting to be written; past it new ones are dropped and counted,
    /// so the query path never waits for the log. Default 16384.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

/// One kind of dnstap entry, named as in the format (snake case).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum DnstapMessage {
    /// A query to our authoritative answers, as received.
    AuthQuery,
    /// Its answer, as sent.
    AuthResponse,
    /// The resolver's query to an authoritative server, as sent.
    ResolverQuery,
    /// That server's answer, as received.
    ResolverResponse,
    /// A client's recursive query, as received.
    ClientQuery,
    /// Its answer, as sent.
    ClientResponse,
    /// The resolver's query to a forwarder (a `[[resolver.forward]]` zone), as sent.
    ForwarderQuery,
    /// The forwarder's answer, as received.
    ForwarderResponse,
}

impl DnstapMessage {
    /// What the listener writes.
    pub const LISTENER: [DnstapMessage; 4] = [
        DnstapMessage::AuthQuery,
        DnstapMessage::AuthResponse,
        DnstapMessage::ClientQuery,
        DnstapMessage::ClientResponse,
    ];
    /// What the resolver writes.
    pub const RESOLVER: [DnstapMessage; 4] = [
        DnstapMessage::ResolverQuery,
        DnstapMessage::ResolverResponse,
        DnstapMessage::ForwarderQuery,
        DnstapMessage::ForwarderResponse,
    ];

    /// The name used in the config.
    pub fn name(self) -> &'static str {
        match self {
            DnstapMessage::AuthQuery => "auth_query",
            DnstapMessage::AuthResponse => "auth_response",
            DnstapMessage::ResolverQuery => "resolver_query",
            DnstapMessage::ResolverResponse => "resolver_response",
            DnstapMessage::ClientQuery => "client_query",
            DnstapMessage::ClientResponse => "client_response",
            DnstapMessage::ForwarderQuery => "forwarder_query",
            DnstapMessage::ForwarderResponse => "forwarder_response",
        }
    }
}

impl DnstapConfig {
    /// The entries to write: those configured, or all that `written` lists.
    pub fn selected(&self, written: &[DnstapMessage]) -> Vec<DnstapMessage> {
        if self.messages.is_empty() {
            written.to_vec()
        } else {
            self.messages.clone()
        }
    }

    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        for path in [&mut self.socket, &mut self.file].into_iter().flatten() {
            crate::section::absolute(base, path);
        }
    }

    /// `section` is `"listener"` or `"resolver"`, `written` what that daemon writes.
    pub(crate) fn validate(
        &self,
        section: &str,
        written: &[DnstapMessage],
        problems: &mut Problems,
    ) {
        let key = format!("{section}.dnstap");
        match (&self.socket, &self.file) {
            (None, None) => problems.add(
                &key,
                "no output; set socket = \"/run/sextant/dnstap.sock\" (a Frame Streams reader such as fstrm_capture) or file = \"/var/log/sextant/dnstap.fstrm\"",
            ),
            (Some(_), Some(_)) => problems.add(
                &key,
                "both socket and file are set; keep one (run fstrm_capture on the socket to get both)",
            ),
            (Some(socket), None) => {
                // sun_path holds 108 bytes, the terminating NUL included.
                if socket.as_os_str().len() > 107 {
                    problems.add(
                        &format!("{key}.socket"),
                        format!(
                            "{} is longer than a Unix socket path may be (107 bytes); use a shorter path",
                            socket.display()
                        ),
                    );
                }
            }
            (None, Some(_)) => {}
        }
        for message in &self.messages {
            if !written.contains(message) {
                let names: Vec<&str> = written.iter().map(|m| m.name()).collect();
                problems.add(
                    &format!("{key}.messages"),
                    format!(
                        "the {section} never writes {} entries; choose among {}",
                        message.name(),
                        names.join(", ")
                    ),
                );
            }
        }
        if self.sample == 0 {
            problems.add(
                &format!("{key}.sample"),
                "must be at least 1 (1 logs every exchange, 10 one in ten)",
            );
        }
        problems.positive(&format!("{key}.queue"), self.queue);
    }
}

fn default_true() -> bool {
    true
}
fn default_sample() -> u32 {
    1
}
fn default_queue() -> usize {
    16_384
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> DnstapConfig {
        toml_from(text)
    }

    fn toml_from(text: &str) -> DnstapConfig {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap()
    }

    fn problems_of(config: &DnstapConfig, section: &str, written: &[DnstapMessage]) -> Vec<String> {
        let mut problems = Problems::default();
        config.validate(section, written, &mut problems);
        problems
            .into_vec()
            .into_iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    }

    #[test]
    fn defaults_log_everything_the_daemon_writes() {
        let config = parse("socket = \"/run/dnstap.sock\"");
        assert_eq!(config.sample, 1);
        assert_eq!(config.queue, 16_384);
        assert!(config.version);
        assert_eq!(
            config.selected(&DnstapMessage::LISTENER),
            DnstapMessage::LISTENER.to_vec()
        );
        assert!(problems_of(&config, "listener", &DnstapMessage::LISTENER).is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_fix() {
        let config = parse(
            "socket = \"/run/dnstap.sock\"\nfile = \"/tmp/x\"\nmessages = [\"resolver_query\", \"client_query\"]\nsample = 0\nqueue = 0",
        );
        let problems = problems_of(&config, "listener", &DnstapMessage::LISTENER);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("keep one"));
        assert!(
            problems[1]
                .starts_with("listener.dnstap.messages: the listener never writes resolver_query")
        );
        assert!(problems[2].starts_with("listener.dnstap.sample"));
        assert!(problems[3].starts_with("listener.dnstap.queue"));

        let nothing = parse("identity = \"ns1\"");
        let problems = problems_of(&nothing, "resolver", &DnstapMessage::RESOLVER);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("no output"));
    }

    #[test]
    fn unknown_message_names_are_refused_at_parse() {
        let result: Result<DnstapConfig, _> = config::Config::builder()
            .add_source(config::File::from_str(
                "socket = \"/s\"\nmessages = [\"stub_query\"]",
                config::FileFormat::Toml,
            ))
            .build()
            .unwrap()
            .try_deserialize();
        assert!(result.is_err());
    }
}
