//! The configuration's shape. Each field documents its unit and default; the same text
//! is in docs/configuration.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::rr::Name;
use serde::Deserialize;
use sextant_rpc::Endpoint;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub log: LogConfig,
    pub listener: Option<ListenerConfig>,
    pub authority: Option<AuthorityConfig>,
    pub transfer: Option<TransferConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `sextant_listener=debug,info`; `RUST_LOG`
    /// wins when set. Default `info`.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `text` for terminals, `json` for log collectors. Default `text`.
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: default_log_level(),
            format: LogFormat::default(),
        }
    }
}

fn default_log_level() -> String {
    "info".into()
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Addresses served over both UDP and TCP, e.g. `["127.0.0.1:53", "[::1]:53"]`.
    /// Port 0 picks a free port (the same for UDP and TCP), reported in the ready file.
    pub listen: Vec<SocketAddr>,
    /// The authority's gRPC endpoint. Default: `authority.grpc` from the same file.
    #[serde(default)]
    pub authority: Option<Endpoint>,
    /// Where NOTIFY messages go. Default: `transfer.grpc` from the same file; without
    /// either, NOTIFY is answered NOTIMP.
    #[serde(default)]
    pub transfer: Option<Endpoint>,
    /// Deadline for a backend's answer; past it the client gets SERVFAIL. Default 1500ms.
    #[serde(default = "default_backend_timeout", with = "humantime_serde")]
    pub backend_timeout: Duration,
    /// gRPC streams opened to each backend, queries spread over them. Default 2.
    #[serde(default = "default_backend_lanes")]
    pub backend_lanes: usize,
    /// Largest UDP response we send, whatever the client's EDNS size (RFC 9715 advises
    /// 1232 to avoid fragmentation). Default 1232; 512..=4096.
    #[serde(default = "default_udp_payload_size")]
    pub udp_payload_size: u16,
    /// A TCP connection with no query for this long is closed. Default 10s.
    #[serde(default = "default_tcp_idle_timeout", with = "humantime_serde")]
    pub tcp_idle_timeout: Duration,
    /// Once a message's first byte has arrived, the rest must arrive within this. Default 5s.
    #[serde(default = "default_tcp_read_timeout", with = "humantime_serde")]
    pub tcp_read_timeout: Duration,
    /// TCP connections open at once, all clients together. Default 1024.
    #[serde(default = "default_tcp_max_connections")]
    pub tcp_max_connections: usize,
    /// TCP connections open at once from one client address. Default 16.
    #[serde(default = "default_tcp_max_connections_per_client")]
    pub tcp_max_connections_per_client: usize,
    /// Queries answered at once on one TCP connection (pipelining). Default 32.
    #[serde(default = "default_tcp_max_in_flight")]
    pub tcp_max_in_flight: usize,
    /// Answer to `version.bind`/`version.server` CH TXT. Default: off (REFUSED).
    #[serde(default)]
    pub version: Option<String>,
    /// Answer to `id.server`/`hostname.bind` CH TXT. Default: off (REFUSED).
    #[serde(default)]
    pub identity: Option<String>,
    /// Clients allowed to query; others get REFUSED. Default: everyone.
    #[serde(default = "default_allow_query")]
    pub allow_query: Vec<ipnet::IpNet>,
    /// Clients whose messages are dropped unanswered (UDP) or whose connections are
    /// closed at once (TCP). Default: none.
    #[serde(default)]
    pub blackhole: Vec<ipnet::IpNet>,
    /// Memory for the packet cache of backend answers, bytes; 0 turns it off.
    /// Default 64 MiB.
    #[serde(default = "default_packet_cache_bytes")]
    pub packet_cache_bytes: u64,
    /// Prometheus endpoint (`/metrics`), e.g. `"127.0.0.1:9153"`. Default: off.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// A JSON file written once the listener serves, with the addresses it bound.
    #[serde(default)]
    pub ready_file: Option<PathBuf>,
}

fn default_allow_query() -> Vec<ipnet::IpNet> {
    ["0.0.0.0/0", "::/0"]
        .iter()
        .filter_map(|net| net.parse().ok())
        .collect()
}

fn default_packet_cache_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_backend_timeout() -> Duration {
    Duration::from_millis(1500)
}
fn default_backend_lanes() -> usize {
    2
}
fn default_udp_payload_size() -> u16 {
    1232
}
fn default_tcp_idle_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_tcp_read_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_tcp_max_connections() -> usize {
    1024
}
fn default_tcp_max_connections_per_client() -> usize {
    16
}
fn default_tcp_max_in_flight() -> usize {
    32
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityConfig {
    /// Where the authority serves gRPC: `unix:/run/sextant/authority.sock` (default
    /// form) or `tcp:ADDRESS:PORT`.
    pub grpc: Endpoint,
    /// EDNS payload size we advertise in answers. Default 1232.
    #[serde(default = "default_udp_payload_size")]
    pub edns_payload_size: u16,
    /// Prometheus endpoint (`/metrics`). Default: off.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// A JSON file written once every zone is loaded and gRPC is served.
    #[serde(default)]
    pub ready_file: Option<PathBuf>,
    /// Primary zones loaded from master files.
    #[serde(default, rename = "zone")]
    pub zones: Vec<ZoneConfig>,
    /// The transfer daemon's endpoint for secondary zones. Default: `transfer.grpc`
    /// from the same file; without either, no secondary zones are served.
    #[serde(default)]
    pub secondaries: Option<Endpoint>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferConfig {
    /// Where the transfer daemon serves gRPC (NOTIFY from the listener, published
    /// versions to the authority).
    pub grpc: Endpoint,
    /// Directory of the sled store holding staged and published zone versions.
    pub state_dir: PathBuf,
    /// Prometheus endpoint (`/metrics`). Default: off.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// A JSON file written once the store is open and gRPC is served.
    #[serde(default)]
    pub ready_file: Option<PathBuf>,
    /// Bounds on the SOA refresh and retry intervals, whatever the primary's SOA says.
    /// Defaults 5s and 1 day.
    #[serde(default = "default_min_refresh", with = "humantime_serde")]
    pub min_refresh: Duration,
    #[serde(default = "default_max_refresh", with = "humantime_serde")]
    pub max_refresh: Duration,
    /// Longest silence from a primary during a transfer or SOA query. Default 10s.
    #[serde(default = "default_transfer_timeout", with = "humantime_serde")]
    pub transfer_timeout: Duration,
    /// Largest zone accepted, in records. Default 20,000,000.
    #[serde(default = "default_max_zone_records")]
    pub max_zone_records: u64,
    /// Secondary zones.
    #[serde(default, rename = "zone")]
    pub zones: Vec<SecondaryZoneConfig>,
}

fn default_min_refresh() -> Duration {
    Duration::from_secs(5)
}
fn default_max_refresh() -> Duration {
    Duration::from_secs(86_400)
}
fn default_transfer_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_zone_records() -> u64 {
    20_000_000
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryZoneConfig {
    #[serde(deserialize_with = "deserialize_name")]
    pub name: Name,
    /// Primaries, tried in order: `["192.0.2.1:53"]`.
    pub primaries: Vec<SocketAddr>,
    /// Addresses whose NOTIFY is accepted. Default: the primaries' addresses.
    #[serde(default)]
    pub allow_notify: Vec<std::net::IpAddr>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// The zone's apex, e.g. `example.com`.
    #[serde(deserialize_with = "deserialize_name")]
    pub name: Name,
    /// Its RFC 1035 master file.
    pub file: PathBuf,
}

fn deserialize_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
    let text = String::deserialize(d)?;
    let mut name = Name::from_ascii(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a domain name ({e}); write it like example.com"
        ))
    })?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}
