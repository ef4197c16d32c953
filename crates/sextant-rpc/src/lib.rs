//! The gRPC contract between Sextant's daemons, mapped to plain Rust types.
//!
//! Invariant: this is the only crate that sees prost or tonic types. Daemons speak in
//! [`Query`], [`Answer`], [`ZoneSet`] and [`Endpoint`], implement [`QueryHandler`], and
//! call [`QueryClient`] / [`ZoneWatcher`]; everything on the wire stays in here.

mod control;
mod endpoint;
mod error;
mod health;
mod query_client;
mod query_server;
mod secondary;
mod server;
mod unary;
mod zones;

/// Code generated from `proto/sextant/v1/dns.proto` at build time (see build.rs).
mod pb {
    #![allow(
        clippy::all,
        clippy::pedantic,
        clippy::unwrap_used,
        clippy::expect_used
    )]
    tonic::include_proto!("sextant.v1");
}

pub use control::{
    CacheStatus, ControlClient, ControlHandler, DaemonStatus, Flush, NotifyOutcome, ZoneStatus,
};
pub use endpoint::Endpoint;
pub use error::RpcError;
pub use health::{HealthState, check_health};
pub use query_client::{Completion, QueryClient, QueryClientOptions};
pub use query_server::{QueryHandler, QueryService, error_message, refusal};
pub use secondary::{
    VersionEvent, VersionNotifier, VersionSource, VersionState, ZoneVersion, follow_versions,
};
pub use server::{GrpcServer, Services};
pub use unary::UnaryQueryClient;
pub use zones::{ZoneSet, ZoneSetPublisher, ZoneWatcher};

use std::net::SocketAddr;

use bytes::Bytes;

/// How the client reached the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// A DNS query as the listener forwards it to a backend.
#[derive(Clone, Debug)]
pub struct Query {
    /// The query exactly as the client sent it (no TCP length prefix).
    pub wire: Bytes,
    pub client: SocketAddr,
    pub transport: Transport,
    /// Largest response in bytes the client can take: EDNS payload size (>= 512) over
    /// UDP, 65535 over TCP.
    pub max_response_size: u16,
}

/// A backend's answer to one [`Query`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// The complete response; empty means the listener sends nothing back.
    pub wire: Bytes,
    /// Seconds the listener may keep this answer in its packet cache; 0 = never.
    pub cache_ttl: u32,
}
