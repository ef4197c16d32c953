//! `stats`: every daemon's counters, read from its Prometheus endpoint (the `metrics`
//! key of its section), so the tool and a Prometheus server always agree.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::Outcome;

const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
/// Far above what a daemon exports; a bound on what a wrong endpoint can make us read.
const MAX_RESPONSE: u64 = 8 << 20;

/// One line of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

pub(crate) async fn stats(config_path: &Path, json: bool) -> Outcome {
    let config = match sextant_config::load(config_path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return Outcome::BadInput;
        }
    };
    let endpoints: Vec<(&str, SocketAddr)> = [
        (
            "sextant-listener",
            config.listener.as_ref().and_then(|s| s.metrics),
        ),
        (
            "sextant-authority",
            config.authority.as_ref().and_then(|s| s.metrics),
        ),
        (
            "sextant-transfer",
            config.transfer.as_ref().and_then(|s| s.metrics),
        ),
        (
            "sextant-resolver",
            config.resolver.as_ref().and_then(|s| s.metrics),
        ),
    ]
    .into_iter()
    .filter_map(|(daemon, address)| address.map(|a| (daemon, a)))
    .collect();
    if endpoints.is_empty() {
        eprintln!(
            "no daemon in {} has `metrics` set; add e.g. metrics = \"127.0.0.1:9153\" to its section and restart it",
            config_path.display()
        );
        return Outcome::BadInput;
    }
    let mut results = Vec::new();
    for (daemon, address) in endpoints {
        let scraped = scrape(address).await.map(|text| parse(&text));
        results.push((daemon, address, scraped));
    }
    if json {
        print_json(&results);
    } else {
        print_table(&results);
    }
    if results.iter().all(|(_, _, r)| r.is_ok()) {
        Outcome::Ok
    } else {
        Outcome::Unreachable
    }
}

/// GET /metrics over HTTP/1.0 (the body ends when the server closes).
pub(crate) async fn scrape(address: SocketAddr) -> Result<String, String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: sextant\r\nAccept: text/plain\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        stream.take(MAX_RESPONSE).read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(SCRAPE_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer from {address} in {SCRAPE_TIMEOUT:?}"))?
        .map_err(|e| {
            format!("{address}: {e}; is the daemon running with this `metrics` address?")
        })?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{address} did not answer HTTP"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("{address} answered {status:?}"));
    }
    Ok(body.to_string())
}

/// The samples of a Prometheus text exposition; comment and malformed lines skipped.
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = line.trim().rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `a="x",b="y \"q\""` into a map; escapes per the exposition format.
fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (index, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break index,
                other => value.push(other),
            }
        };
        labels.insert(key.trim_start_matches(',').to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

fn series(sample: &Sample) -> String {
    if sample.labels.is_empty() {
        return sample.name.clone();
    }
    let labels: Vec<String> = sample
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{}{{{}}}", sample.name, labels.join(","))
}

type Scraped<'a> = (&'a str, SocketAddr, Result<Vec<Sample>, String>);

/// Counters and gauges as they are; histograms as count and mean (the buckets are
/// for Prometheus).
fn print_table(results: &[Scraped<'_>]) {
    for (index, (daemon, address, result)) in results.iter().enumerate() {
        if index > 0 {
            say!();
        }
        match result {
            Err(error) => say!("{daemon} ({address}): unreachable: {error}"),
            Ok(samples) => {
                say!("{daemon} ({address})");
                let sums: BTreeMap<String, f64> = samples
                    .iter()
                    .filter_map(|s| {
                        let base = s.name.strip_suffix("_sum")?;
                        let mut key = s.clone();
                        key.name = base.to_string();
                        Some((series(&key), s.value))
                    })
                    .collect();
                // Series registered ahead (every RCODE, every QTYPE) that never moved
                // are noise in a table; --json has them all.
                for sample in samples {
                    if sample.name.ends_with("_bucket")
                        || sample.name.ends_with("_sum")
                        || sample.value == 0.0
                    {
                        continue;
                    }
                    if let Some(base) = sample.name.strip_suffix("_count") {
                        let mut key = sample.clone();
                        key.name = base.to_string();
                        let key = series(&key);
                        if let Some(sum) = sums.get(&key) {
                            let mean = if sample.value > 0.0 {
                                format!("{:.1} µs mean", sum / sample.value * 1e6)
                            } else {
                                "-".to_string()
                            };
                            say!("  {:<72} {:>14} ({mean})", key, sample.value);
                            continue;
                        }
                    }
                    say!("  {:<72} {:>14}", series(sample), sample.value);
                }
            }
        }
    }
}

fn print_json(results: &[Scraped<'_>]) {
    let daemons: Vec<serde_json::Value> = results
        .iter()
        .map(|(daemon, address, result)| match result {
            Ok(samples) => serde_json::json!({
                "daemon": daemon, "metrics": address.to_string(), "reachable": true,
                "samples": samples.iter().filter(|s| s.value.is_finite()).map(|s| serde_json::json!({
                    "name": s.name, "labels": s.labels, "value": s.value,
                })).collect::<Vec<_>>(),
            }),
            Err(error) => serde_json::json!({
                "daemon": daemon, "metrics": address.to_string(), "reachable": false, "error": error,
            }),
        })
        .collect();
    say!("{:#}", serde_json::json!({ "daemons": daemons }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_format_is_read_line_by_line() {
        let text = "# HELP x_total things\n# TYPE x_total counter\n\
            sextant_listener_queries_total{transport=\"udp\"} 42\n\
            sextant_listener_tcp_connections 3\n\
            weird{a=\"q\\\"uote\",b=\"2\"} 1.5\n\
            h_seconds_bucket{le=\"+Inf\"} 7\n\
            broken line here\n";
        let samples = parse(text);
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0].name, "sextant_listener_queries_total");
        assert_eq!(samples[0].labels["transport"], "udp");
        assert_eq!(samples[0].value, 42.0);
        assert!(samples[1].labels.is_empty());
        assert_eq!(samples[2].labels["a"], "q\"uote");
        assert_eq!(samples[2].labels["b"], "2");
        assert_eq!(samples[3].labels["le"], "+Inf");
    }

    #[test]
    fn malformed_labels_are_skipped_not_fatal() {
        assert!(parse("x{a=\"unterminated} 1\n").is_empty());
        assert!(parse("x{a=\"1\"} not-a-number\n").is_empty());
    }
}
