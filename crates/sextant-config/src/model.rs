//! The configuration's shape. Each field documents its unit and default; the same text
//! is in docs/configuration.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::Endpoint;
use hickory_proto::rr::Name;
use serde::Deserialize;

/// The whole configuration file: one section per daemon, the logging and the TSIG keys.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The file this was loaded from (absolute), for daemons that re-read it.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Logging, for every daemon.
    #[serde(default)]
    pub log: LogConfig,
    /// The listener's section, `[listener]`.
    pub listener: Option<ListenerConfig>,
    /// The authority's section, `[authority]`.
    pub authority: Option<AuthorityConfig>,
    /// The transfer daemon's section, `[transfer]`.
    pub transfer: Option<TransferConfig>,
    /// The resolver's section, `[resolver]`.
    pub resolver: Option<ResolverConfig>,
    /// TSIG keys (RFC 8945), referred to by name from zones.
    #[serde(default, rename = "key")]
    pub keys: Vec<KeyConfig>,
    /// DNSSEC signing policies (`[[dnssec_policy]]`), referred to by name from zones.
    #[serde(default, rename = "dnssec_policy")]
    pub dnssec_policies: Vec<DnssecPolicyConfig>,
    /// Tracing of queries across the daemons (`[trace]`). Default: off.
    #[serde(default)]
    pub trace: Option<crate::TraceConfig>,
    /// Mutual TLS for gRPC between hosts (`[grpc]`). Default: none (Unix sockets
    /// and loopback TCP only).
    #[serde(default)]
    pub grpc: Option<crate::GrpcConfig>,
}

/// How a zone is signed (`[[dnssec_policy]]`); the defaults follow RFC 9276 and the
/// practice of BIND and Knot.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DnssecPolicyConfig {
    /// The policy's name, given as `dnssec_policy = "NAME"` on a zone.
    pub name: String,
    /// `ecdsap256sha256` (default, algorithm 13), `ed25519` (15) or `rsasha256` (8,
    /// 2048-bit keys).
    #[serde(default = "default_dnssec_algorithm")]
    pub algorithm: String,
    /// `csk`: one key signs everything (default); `ksk-zsk`: a key-signing key for
    /// the DNSKEY RRset and a zone-signing key for the rest.
    #[serde(default = "default_dnssec_keys")]
    pub keys: String,
    /// Proof of non-existence: `nsec3` (default) or `nsec`.
    #[serde(default = "default_dnssec_denial")]
    pub denial: String,
    /// Extra NSEC3 hash iterations. Default 0 (RFC 9276 §3.1: more only costs
    /// validators, and above 150 they treat the zone as insecure).
    #[serde(default)]
    pub nsec3_iterations: u16,
    /// NSEC3 salt length in bytes, a new random salt each time the chain is made.
    /// Default 0: no salt (RFC 9276 §3.1).
    #[serde(default)]
    pub nsec3_salt_length: u8,
    /// NSEC3 Opt-Out: unsigned delegations get no NSEC3 record (for large
    /// delegation-only zones). Default false.
    #[serde(default)]
    pub nsec3_opt_out: bool,
    /// How long a new signature is valid. Default 14 days.
    #[serde(default = "default_signature_validity", with = "humantime_serde")]
    pub signature_validity: Duration,
    /// A signature is made again when less than this is left of it. Default 5 days.
    #[serde(default = "default_signature_refresh", with = "humantime_serde")]
    pub signature_refresh: Duration,
    /// TTL of the DNSKEY, CDS and CDNSKEY RRsets, seconds. Default 3600.
    #[serde(default = "default_dnskey_ttl")]
    pub dnskey_ttl: u32,
    /// How long a zone-signing key (or CSK) is used before it is rolled.
    /// `"0s"`: never. Default 30 days.
    #[serde(default = "default_zsk_lifetime", with = "humantime_serde")]
    pub zsk_lifetime: Duration,
    /// How long a key-signing key (or CSK) is used before it is rolled; each such
    /// rollover needs the parent's DS changed. `"0s"`: never. Default never.
    #[serde(default, with = "humantime_serde")]
    pub ksk_lifetime: Duration,
    /// How long a change takes to reach every secondary, on top of TTLs (the waits
    /// of a rollover). Default 1h.
    #[serde(default = "default_propagation_delay", with = "humantime_serde")]
    pub propagation_delay: Duration,
    /// TTL of the zone's DS records at the parent (how long the old DS stays in
    /// caches after it is replaced). Default 1 day.
    #[serde(default = "default_parent_ds_ttl", with = "humantime_serde")]
    pub parent_ds_ttl: Duration,
}

/// How far past the refresh point a signature is made again with those falling due
/// now: expirations are spread over the last tenth of the validity, and without a
/// window each signature would fall due seconds after the one before it and have a
/// pass over the zone (and a new serial) of its own. An hour, or a quarter of the
/// refresh period if that is less.
pub fn signature_refresh_window(refresh: Duration) -> Duration {
    (refresh / 4).min(Duration::from_secs(3_600))
}

fn default_propagation_delay() -> Duration {
    Duration::from_secs(3_600)
}
fn default_parent_ds_ttl() -> Duration {
    Duration::from_secs(86_400)
}

fn default_dnssec_algorithm() -> String {
    "ecdsap256sha256".into()
}
fn default_dnssec_keys() -> String {
    "csk".into()
}
fn default_dnssec_denial() -> String {
    "nsec3".into()
}
fn default_signature_validity() -> Duration {
    Duration::from_secs(14 * 86_400)
}
fn default_signature_refresh() -> Duration {
    Duration::from_secs(5 * 86_400)
}
fn default_dnskey_ttl() -> u32 {
    3600
}
fn default_zsk_lifetime() -> Duration {
    Duration::from_secs(30 * 86_400)
}

/// DNSSEC algorithms the signer makes keys for: configuration name, number.
pub const DNSSEC_ALGORITHMS: [(&str, u8); 3] =
    [("ecdsap256sha256", 13), ("ed25519", 15), ("rsasha256", 8)];

/// A TSIG key (`[[key]]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The key's name, the same on both sides, e.g. `transfer-key`.
    #[serde(deserialize_with = "deserialize_name")]
    pub name: Name,
    /// `hmac-sha256` (default), `hmac-sha384` or `hmac-sha512`.
    #[serde(default = "default_key_algorithm")]
    pub algorithm: String,
    /// The shared secret, base64, as `tsig-keygen`/`keymgr` print it.
    pub secret: String,
}

fn default_key_algorithm() -> String {
    "hmac-sha256".into()
}

/// TSIG algorithms supported (RFC 8945 §6: HMAC-SHA256 is mandatory).
pub(crate) const KEY_ALGORITHMS: [&str; 3] = ["hmac-sha256", "hmac-sha384", "hmac-sha512"];

/// How the daemons log (`[log]`).
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

/// The log format.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The listener (`[listener]`): the addresses served, the backends, the limits and ACLs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Addresses served over both UDP and TCP, e.g. `["127.0.0.1:53", "[::1]:53"]`.
    /// Port 0 picks a free port (the same for UDP and TCP), reported in the ready file.
    pub listen: Vec<SocketAddr>,
    /// The authorities' gRPC endpoints: one, or a list whose members serve the same
    /// zones (queries spread over the healthy ones, retried on another when one
    /// fails). Default: `authority.grpc` from the same file.
    #[serde(default, deserialize_with = "crate::endpoint::one_or_many")]
    pub authority: Vec<Endpoint>,
    /// Where NOTIFY messages go. Default: `transfer.grpc` from the same file; without
    /// either, NOTIFY is answered NOTIMP.
    #[serde(default)]
    pub transfer: Option<Endpoint>,
    /// The resolvers' gRPC endpoints, one or a list (as `authority`). Default:
    /// `resolver.grpc` from the same file; without either, recursive queries outside
    /// our zones are REFUSED.
    #[serde(default, deserialize_with = "crate::endpoint::one_or_many")]
    pub resolver: Vec<Endpoint>,
    /// Where the listener serves `sextantctl` (its status, the spans of a traced
    /// query), e.g. `"unix:/run/sextant/listener.sock"`. Default: off.
    #[serde(default)]
    pub control: Option<Endpoint>,
    /// Clients whose recursive queries (RD=1) go to the resolver; others get REFUSED
    /// for names outside our zones. Default: loopback only (never an open resolver).
    #[serde(default = "default_allow_recursion")]
    pub allow_recursion: Vec<ipnet::IpNet>,
    /// Deadline for the resolver's answer (iterative resolution takes longer than an
    /// authoritative lookup). Default 4s.
    #[serde(default = "default_resolver_timeout", with = "humantime_serde")]
    pub resolver_timeout: Duration,
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
    /// Default 8 MiB (about 20,000 answers; see docs/configuration.md for sizing).
    #[serde(default = "default_packet_cache_bytes")]
    pub packet_cache_bytes: u64,
    /// Response rate limiting for UDP answers. Default: off.
    #[serde(default)]
    pub rrl: RrlConfig,
    /// DNS Cookies (RFC 7873, server cookies as RFC 9018 makes them). Default: on,
    /// with a secret made at start.
    #[serde(default)]
    pub cookies: CookieConfig,
    /// Prometheus endpoint (`/metrics`), e.g. `"127.0.0.1:9153"`. Default: off.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// A JSON file written once the listener serves, with the addresses it bound.
    #[serde(default)]
    pub ready_file: Option<PathBuf>,
    /// DNS over TLS (RFC 7858) and over HTTPS (RFC 8484). Default: off.
    #[serde(default)]
    pub tls: Option<ListenerTlsConfig>,
    /// The query log in dnstap (client and authoritative exchanges). Default: off.
    #[serde(default)]
    pub dnstap: Option<crate::DnstapConfig>,
}

/// `[listener.tls]`: the encrypted transports, with one certificate.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// Addresses for DNS over TLS, e.g. `["0.0.0.0:853"]`.
    #[serde(default)]
    pub dot: Vec<SocketAddr>,
    /// Addresses for DNS over HTTPS (HTTP/2, path `/dns-query`), e.g.
    /// `["0.0.0.0:443"]`.
    #[serde(default)]
    pub doh: Vec<SocketAddr>,
    /// The certificate chain, PEM, the server's own certificate first. Read again
    /// on SIGHUP.
    pub certificate: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1). Read again on SIGHUP.
    pub key: PathBuf,
    /// A connection whose TLS handshake is not done within this is closed.
    /// Default 5s.
    #[serde(default = "default_tls_handshake_timeout", with = "humantime_serde")]
    pub handshake_timeout: Duration,
}

fn default_tls_handshake_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_allow_query() -> Vec<ipnet::IpNet> {
    ["0.0.0.0/0", "::/0"]
        .iter()
        .filter_map(|net| net.parse().ok())
        .collect()
}

/// Response rate limiting (`[listener.rrl]`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RrlConfig {
    /// Identical UDP responses per second to one client network; 0 turns RRL off.
    /// Default 0.
    pub responses_per_second: u32,
    /// Every `slip`-th limited response goes out truncated (TC=1) so that real
    /// clients retry over TCP; 0 never, 1 always. Default 2.
    pub slip: u32,
    /// Client networks sharing a budget: IPv4 /24, IPv6 /56 by default.
    pub ipv4_prefix_length: u8,
    /// IPv6 clients in one network of this prefix length share a budget. Default 56.
    pub ipv6_prefix_length: u8,
    /// Rate buckets (client network, question, kind of answer) kept at most; past
    /// it, buckets back at their full rate are forgotten first. About 48 bytes each.
    /// Default 65536.
    pub table_size: usize,
}

impl Default for RrlConfig {
    fn default() -> Self {
        Self {
            responses_per_second: 0,
            slip: 2,
            ipv4_prefix_length: 24,
            ipv6_prefix_length: 56,
            table_size: 65_536,
        }
    }
}

/// DNS Cookies (`[listener.cookies]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CookieConfig {
    /// Answer client cookies with server cookies. Default true.
    pub enabled: bool,
    /// The server secret, 32 hex digits (16 bytes), shared by every listener behind
    /// one anycast address so that they accept each other's cookies. Default: a
    /// random secret made at start (cookies then last until a restart).
    pub secret: Option<String>,
    /// The secret before the last rotation, still accepted: set it to the old
    /// `secret` when changing `secret`, reload, and remove it an hour later.
    pub previous_secret: Option<String>,
    /// Answer UDP queries from cookie-aware clients without a valid server cookie
    /// with BADCOOKIE and a fresh cookie, instead of the answer (RFC 7873 §5.2.3: for
    /// a server under attack by spoofed sources). Default false.
    pub require: bool,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            secret: None,
            previous_secret: None,
            require: false,
        }
    }
}

/// A cookie secret: 32 hex digits, 16 bytes.
pub fn cookie_secret(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    if text.len() != 32 {
        return None;
    }
    let mut secret = [0u8; 16];
    for (byte, pair) in secret.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(secret)
}

fn default_allow_recursion() -> Vec<ipnet::IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|net| net.parse().ok())
        .collect()
}

fn default_resolver_timeout() -> Duration {
    Duration::from_secs(4)
}

fn default_packet_cache_bytes() -> u64 {
    8 * 1024 * 1024
}

fn default_cache_bytes() -> u64 {
    16 * 1024 * 1024
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

/// The authority (`[authority]`): primary zones, outgoing transfers, NOTIFY.
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
    /// Clients allowed outgoing zone transfers (AXFR/IXFR over TCP) of every zone
    /// served. Default: nobody.
    #[serde(default)]
    pub allow_transfer: Vec<ipnet::IpNet>,
    /// A `[[key]]` that every transfer request must be signed with (and that signs
    /// every answer message). Default: none (`allow_transfer` alone decides).
    #[serde(default, deserialize_with = "deserialize_optional_name")]
    pub transfer_key: Option<Name>,
    /// Secondaries sent a NOTIFY when a zone's serial changes, and at start, e.g.
    /// `["192.0.2.2:53"]`. Default: none.
    #[serde(default)]
    pub notify: Vec<SocketAddr>,
    /// Directory of the authority's IXFR journal (the differences between successive
    /// versions of each zone, kept across restarts). Default: none, and IXFR is
    /// answered with the whole zone.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Produce a catalog zone (RFC 9432, version 2) of this name listing every
    /// primary zone, served and transferred like them, so that secondaries provision
    /// themselves from it (e.g. `catalog.invalid`). Default: none.
    #[serde(default, deserialize_with = "deserialize_optional_name")]
    pub catalog: Option<Name>,
}

/// The transfer daemon (`[transfer]`): the secondary zones and their store.
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
    /// The upper bound; see `min_refresh`.
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

/// A secondary zone (`[[transfer.zone]]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryZoneConfig {
    /// The zone's apex, e.g. `example.com`.
    #[serde(deserialize_with = "deserialize_name")]
    pub name: Name,
    /// Primaries, tried in order: `["192.0.2.1:53"]`.
    pub primaries: Vec<SocketAddr>,
    /// Addresses whose NOTIFY is accepted. Default: the primaries' addresses.
    #[serde(default)]
    pub allow_notify: Vec<std::net::IpAddr>,
    /// The TSIG key (a `[[key]]` name) that signs every exchange with the primaries;
    /// unsigned or badly signed answers are then rejected. Default: none.
    #[serde(default, deserialize_with = "deserialize_optional_name")]
    pub key: Option<Name>,
    /// Have the authority sign each version it serves with this
    /// `[[dnssec_policy]]` (a signer between a hidden primary and the public
    /// secondaries). Default: served as transferred.
    #[serde(default)]
    pub dnssec_policy: Option<String>,
    /// The zone is a catalog zone (RFC 9432, version 2): each member it lists is a
    /// secondary zone too, transferred from the same primaries with the same key
    /// and allowed NOTIFY senders, added and removed as the catalog changes.
    /// Default: false.
    #[serde(default)]
    pub catalog: bool,
}

fn deserialize_optional_name<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Name>, D::Error> {
    deserialize_name(d).map(Some)
}

/// A primary zone (`[[authority.zone]]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// The zone's apex, e.g. `example.com`.
    #[serde(deserialize_with = "deserialize_name")]
    pub name: Name,
    /// Its RFC 1035 master file.
    pub file: PathBuf,
    /// Sign the zone with this `[[dnssec_policy]]` (keys kept in
    /// `authority.state_dir`). Default: served as the file has it.
    #[serde(default)]
    pub dnssec_policy: Option<String>,
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

/// The resolver (`[resolver]`): the cache, the upstream queries and their limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverConfig {
    /// Where the resolver serves gRPC (queries from the listener, control).
    pub grpc: Endpoint,
    /// Prometheus endpoint (`/metrics`). Default: off.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// A JSON file written once the root is primed and gRPC is served.
    #[serde(default)]
    pub ready_file: Option<PathBuf>,
    /// A root hints file (named.root format). Default: the IANA hints compiled in.
    #[serde(default)]
    pub root_hints: Option<PathBuf>,
    /// When `root_hints` is unusable: true = say why and use the built-in hints,
    /// false = refuse to start. Default true.
    #[serde(default = "default_true")]
    pub root_hints_fallback: bool,
    /// Source of upstream queries: `"0.0.0.0:0"` (default) sends each query from a
    /// fresh random port; a non-zero port fixes it (not advised: easier to spoof).
    #[serde(default)]
    pub query_source: Option<SocketAddr>,
    /// The same for IPv6 upstreams. Default `[::]:0`.
    #[serde(default)]
    pub query_source_v6: Option<SocketAddr>,
    /// Server addresses never queried, on top of those that cannot be servers
    /// (0.0.0.0/8, ::, broadcast, multicast). Default: none.
    #[serde(default)]
    pub deny_servers: Vec<ipnet::IpNet>,
    /// Send DNS Cookies (RFC 7873) with upstream queries and check those that come
    /// back (an answer without our cookie, from a server that gave one, is spoofed).
    /// Default true.
    #[serde(default = "default_true")]
    pub send_cookies: bool,
    /// Upstream port (53 everywhere in the real DNS; other values are for labs).
    #[serde(default = "default_upstream_port")]
    pub upstream_port: u16,
    /// Memory for the RRset cache, bytes. Default 16 MiB (about 25,000 RRsets; see
    /// docs/configuration.md for sizing).
    #[serde(default = "default_cache_bytes")]
    pub cache_bytes: u64,
    /// Client questions being resolved at once (distinct questions; clients asking
    /// the same one share its resolution). Past it, a new question gets SERVFAIL at
    /// once instead of a task, as Unbound's num-queries-per-thread and BIND's
    /// recursive-clients bound theirs. Default 1024.
    #[serde(default = "default_max_resolutions")]
    pub max_resolutions: usize,
    /// Upstream servers whose round-trip time, timeouts and EDNS support are
    /// remembered. Default 10000 (Unbound's infra-cache-numhosts).
    #[serde(default = "default_server_entries")]
    pub server_entries: usize,
    /// Failed questions remembered for `failure_ttl` (RFC 9520). Default 10000.
    #[serde(default = "default_failure_entries")]
    pub failure_entries: usize,
    /// Memory for the NSEC records kept by `aggressive_nsec`, bytes, counted like
    /// `cache_bytes`. Default 2 MiB.
    #[serde(default = "default_aggressive_nsec_bytes")]
    pub aggressive_nsec_bytes: u64,
    /// TTL bounds applied to cached data, seconds. Defaults 0 and 86400.
    #[serde(default)]
    pub min_ttl: u32,
    /// The upper TTL bound, seconds; see `min_ttl`.
    #[serde(default = "default_max_ttl")]
    pub max_ttl: u32,
    /// Longest a negative answer (NXDOMAIN/NODATA) is cached, seconds. Default 3600.
    #[serde(default = "default_max_negative_ttl")]
    pub max_negative_ttl: u32,
    /// Serve expired data (TTL 30) when every upstream fails (RFC 8767). Default true.
    #[serde(default = "default_true")]
    pub serve_stale: bool,
    /// How long past expiry data may still be served stale. Default 1 day.
    #[serde(default = "default_stale_window", with = "humantime_serde")]
    pub stale_window: Duration,
    /// How long a question whose resolution failed is answered SERVFAIL ("Cached
    /// Error") without trying again (RFC 9520). `"0s"` turns this off. Default 1s.
    #[serde(default = "default_failure_ttl", with = "humantime_serde")]
    pub failure_ttl: Duration,
    /// A question that keeps failing is held twice as long each time, up to this.
    /// Default 30s.
    #[serde(default = "default_failure_ttl_max", with = "humantime_serde")]
    pub failure_ttl_max: Duration,
    /// Send each zone's servers only one more label than they need (RFC 9156,
    /// relaxed: falls back to the full name when a server stumbles). Default true.
    #[serde(default = "default_true")]
    pub qname_minimisation: bool,
    /// Longest wait for one upstream server before trying another. Default 800ms.
    #[serde(default = "default_upstream_timeout", with = "humantime_serde")]
    pub upstream_timeout: Duration,
    /// Longest a whole resolution may take before SERVFAIL (or stale data). Default 3s.
    #[serde(default = "default_resolution_timeout", with = "humantime_serde")]
    pub resolution_timeout: Duration,
    /// Referrals followed for one name. Default 16.
    #[serde(default = "default_max_referrals")]
    pub max_referrals: usize,
    /// Upstream queries one client query may cause, all sub-resolutions included.
    /// Default 64.
    #[serde(default = "default_max_upstream_queries")]
    pub max_upstream_queries: usize,
    /// Name server names without glue resolved per referral. Default 3.
    #[serde(default = "default_max_ns_lookups")]
    pub max_ns_lookups: usize,
    /// Zones sent to other resolvers instead of iterated (split horizon).
    #[serde(default, rename = "forward")]
    pub forwards: Vec<ForwardConfig>,
    /// DNSSEC validation (RFC 4035 §5): AD on secure answers, SERVFAIL with an
    /// Extended DNS Error on bogus ones, as Unbound, Knot Resolver and BIND do out of
    /// the box. Default true.
    #[serde(default = "default_true")]
    pub validation: bool,
    /// A file of DS or DNSKEY records to trust instead of the root KSKs compiled in
    /// (a lab's root, a private tree). Default: the built-in root anchors.
    #[serde(default)]
    pub trust_anchor_file: Option<PathBuf>,
    /// Domains not validated (RFC 7646), e.g. `["broken.example"]`.
    #[serde(default)]
    pub negative_trust_anchors: Vec<String>,
    /// Clock difference allowed either side of a signature's validity window.
    /// Default 1h.
    #[serde(default = "default_clock_skew", with = "humantime_serde")]
    pub clock_skew: Duration,
    /// NSEC3 chains hashed with more iterations are insecure (RFC 9276 §3.2).
    /// Default 150.
    #[serde(default = "default_max_nsec3_iterations")]
    pub max_nsec3_iterations: u16,
    /// Signature verifications one client query may cause (KeyTrap). Default 64.
    #[serde(default = "default_max_signature_checks")]
    pub max_signature_checks: u32,
    /// NSEC3 hashes one client query may cause. Default 64.
    #[serde(default = "default_max_nsec3_hashes")]
    pub max_nsec3_hashes: u32,
    /// Keys tried for one signature when several share its key tag. Default 4.
    #[serde(default = "default_max_key_tag_collisions")]
    pub max_key_tag_collisions: usize,
    /// Answer names proven absent by NSEC records already validated, without asking
    /// the zone's servers (RFC 8198): random-name floods under signed zones stay
    /// local. Default true.
    #[serde(default = "default_true")]
    pub aggressive_nsec: bool,
    /// Where the resolver keeps state across restarts: the trust anchors learned by
    /// RFC 5011 (`trust-anchors.json`). Unset: the anchors are not updated.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// How long a new key-signing key must be seen before it is trusted, and a
    /// revoked one is remembered (RFC 5011 §2.4.1). Default 30 days.
    #[serde(default = "default_trust_anchor_hold_down", with = "humantime_serde")]
    pub trust_anchor_hold_down: Duration,
    /// How often the anchored zones' DNSKEY RRsets are fetched. Default: RFC 5011
    /// §2.3 (half the TTL or signature lifetime, within 1 hour and 15 days).
    #[serde(default, with = "humantime_serde")]
    pub trust_anchor_refresh: Option<Duration>,
    /// The log of upstream exchanges in dnstap. Default: off.
    #[serde(default)]
    pub dnstap: Option<crate::DnstapConfig>,
}

fn default_max_resolutions() -> usize {
    1024
}
fn default_server_entries() -> usize {
    10_000
}
fn default_failure_entries() -> usize {
    10_000
}
fn default_aggressive_nsec_bytes() -> u64 {
    2 * 1024 * 1024
}

fn default_trust_anchor_hold_down() -> Duration {
    Duration::from_secs(30 * 86_400)
}

fn default_clock_skew() -> Duration {
    Duration::from_secs(3600)
}
fn default_max_nsec3_iterations() -> u16 {
    150
}
fn default_max_signature_checks() -> u32 {
    64
}
fn default_max_nsec3_hashes() -> u32 {
    64
}
fn default_max_key_tag_collisions() -> usize {
    4
}

/// A forward zone (`[[resolver.forward]]`): its names are asked of the given servers.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// The zone's apex, e.g. `corp.example`.
    #[serde(deserialize_with = "deserialize_name")]
    pub name: Name,
    /// Resolvers that answer for the zone, e.g. `["10.0.0.53:53"]`.
    pub servers: Vec<SocketAddr>,
    /// `only`: never iterate for this zone; `first`: iterate when the forwarders fail.
    /// Default `only`.
    #[serde(default)]
    pub mode: ForwardMode,
}

/// How a forward zone uses its servers.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    /// Only the forwarders; their failure is SERVFAIL.
    #[default]
    Only,
    /// The forwarders first, iteration from the root when they fail.
    First,
}

fn default_true() -> bool {
    true
}
fn default_upstream_port() -> u16 {
    53
}
fn default_max_ttl() -> u32 {
    86_400
}
fn default_max_negative_ttl() -> u32 {
    3_600
}
fn default_stale_window() -> Duration {
    Duration::from_secs(86_400)
}
fn default_failure_ttl() -> Duration {
    Duration::from_secs(1)
}
fn default_failure_ttl_max() -> Duration {
    Duration::from_secs(30)
}
fn default_upstream_timeout() -> Duration {
    Duration::from_millis(800)
}
fn default_resolution_timeout() -> Duration {
    Duration::from_secs(3)
}
fn default_max_referrals() -> usize {
    16
}
fn default_max_upstream_queries() -> usize {
    64
}
fn default_max_ns_lookups() -> usize {
    3
}
