//! System tests: real daemons, real sockets, real clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod acl;
mod answer_defects;
mod backend_down;
mod backend_pool;
mod bind_errors;
mod catalog_zones;
mod cluster;
mod config_errors;
mod control;
mod cookies;
mod differential_nsd;
mod dnssec_differential;
mod dnssec_validation;
mod dnssec_zones;
pub(crate) mod dnstap;
mod encrypted;
mod extended_errors;
mod grpc_tcp;
mod grpc_tls;
mod hardening;
mod listener_handover;
mod metrics;
mod outgoing;
mod query_path;
mod reload;
mod resolver;
mod resolver_validation;
mod robustness;
mod signed_zone;
mod signing;
mod systemd_units;
mod trace;
mod transfer;

/// A small zone used by several tests.
pub const EXAMPLE_ZONE: &str = "\
$TTL 3600
@       IN SOA ns1 hostmaster 2026112101 7200 3600 1209600 300
        IN NS  ns1
ns1     IN A   192.0.2.1
www     IN A   192.0.2.80
        IN AAAA 2001:db8::80
ftp     IN CNAME www
sub     IN NS  ns.sub
ns.sub  IN A   192.0.2.53
";
