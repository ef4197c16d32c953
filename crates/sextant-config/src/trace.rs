//! `[trace]`: one trace per query across the daemons, exported over OTLP. Read by
//! every daemon of the file; the listener decides which queries are traced.

use serde::Deserialize;

use crate::validate::Problems;

/// Where traces go and which queries are traced.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TraceConfig {
    /// The OTLP collector's gRPC endpoint, e.g. `"http://127.0.0.1:4317"`.
    pub otlp: String,
    /// The share of queries the listener traces, 0.0 to 1.0 (head sampling).
    /// Default 0: only the queries the rules below pick.
    #[serde(default)]
    pub sample_rate: f64,
    /// Questions for these names, or names below them, are always traced (the
    /// operator chasing one complaint), e.g. `["www.example.com"]`.
    #[serde(default)]
    pub always_names: Vec<String>,
    /// Queries from these clients are always traced, e.g. `["192.0.2.7/32"]`.
    #[serde(default)]
    pub always_clients: Vec<ipnet::IpNet>,
}

impl TraceConfig {
    pub(crate) fn validate(&self, problems: &mut Problems) {
        let endpoint = self
            .otlp
            .strip_prefix("http://")
            .or_else(|| self.otlp.strip_prefix("https://"));
        if endpoint.is_none_or(|rest| rest.is_empty()) {
            problems.add(
                "trace.otlp",
                format!(
                    "{:?} is not an OTLP gRPC endpoint; write it as a URL, e.g. \"http://127.0.0.1:4317\"",
                    self.otlp
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.sample_rate) {
            problems.add(
                "trace.sample_rate",
                "must be between 0.0 (only the always_* rules) and 1.0 (every query)",
            );
        }
        for name in &self.always_names {
            if name.is_empty() || name.contains(char::is_whitespace) {
                problems.add(
                    "trace.always_names",
                    format!("{name:?} is not a domain name; write it as \"www.example.com\""),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let config: TraceConfig = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        let mut problems = Problems::default();
        config.validate(&mut problems);
        problems.into_vec().into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn a_url_a_rate_between_0_and_1_and_names_are_required() {
        assert!(problems("otlp = \"http://127.0.0.1:4317\"\nsample_rate = 0.01\nalways_names = [\"www.example.com\"]\nalways_clients = [\"192.0.2.0/24\"]").is_empty());
        assert_eq!(
            problems("otlp = \"127.0.0.1:4317\"\nsample_rate = 2.0\nalways_names = [\"a b\"]"),
            ["trace.otlp", "trace.sample_rate", "trace.always_names"]
        );
    }
}
