//! The gRPC contract between Sextant's daemons, mapped to plain Rust types.
//!
//! Invariant: this is the only crate that sees prost or tonic types. Daemons speak in
//! [`Query`], [`Answer`], [`ZoneSet`] and [`Endpoint`], implement [`QueryHandler`], and
//! call [`QueryClient`] / [`ZoneWatcher`]; everything on the wire stays in here.

mod cache_watch;
mod control;
mod endpoint;
mod error;
mod health;
mod query_client;
mod query_pool;
mod query_server;
mod secondary;
mod server;
mod tls;
mod unary;
mod watch;
mod zones;

/// Code generated from `proto/sextant/v1/dns.proto` at build time (see build.rs).
mod pb {
    #![allow(
        clippy::all,
        clippy::pedantic,
        clippy::unwrap_used,
        clippy::expect_used,
        missing_docs,
        unreachable_pub,
        missing_debug_implementations
    )]
    tonic::include_proto!("sextant.v1");
}

pub use cache_watch::{CacheGenerationWatcher, CacheGenerations};
pub use control::{
    BackendStatus, CacheStatus, ControlClient, ControlHandler, DaemonStatus, Flush, NotifyOutcome,
    NtaAction, SigningKey, ZoneSigning, ZoneStatus,
};
pub use error::RpcError;
pub use health::{HealthState, check_health};
pub use query_client::{Completion, QueryClient, QueryClientOptions};
pub use query_pool::{BackendHealth, HEALTH_EVERY, QueryPool};
pub use query_server::{QueryHandler, QueryService};
pub use secondary::{
    KnownVersion, KnownVersions, RecordChunk, VersionEvent, VersionNotifier, VersionSource,
    VersionState, VersionStep, ZoneVersion, follow_versions,
};
pub use server::{GrpcServer, Services};
pub use sextant_config::Endpoint;
pub use sextant_trace::SpanRecord;
pub use tls::install_grpc_tls;
pub use unary::UnaryQueryClient;
pub use zones::{ZoneSet, ZoneSetPublisher, ZoneWatcher};

use std::net::SocketAddr;

use bytes::Bytes;

/// How the client reached the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Transport {
    /// The `transport` label of metrics and logs.
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
    /// The client's address and port.
    pub client: SocketAddr,
    /// How the query arrived.
    pub transport: Transport,
    /// Largest response in bytes the client can take: EDNS payload size (>= 512) over
    /// UDP, 65535 over TCP.
    pub max_response_size: u16,
    /// The W3C `traceparent` of a traced query; `None` for the others.
    pub traceparent: Option<String>,
}

/// A backend's answer to one [`Query`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Send this response back.
    Reply {
        /// The complete response.
        wire: Bytes,
        /// Seconds the listener may keep it in its packet cache; 0 = never.
        cache_ttl: u32,
    },
    /// Send nothing back: the message was not a query (no header, or a response).
    Silent,
}

impl Answer {
    /// A response the listener must not keep.
    pub fn once(wire: impl Into<Bytes>) -> Self {
        Answer::Reply {
            wire: wire.into(),
            cache_ttl: 0,
        }
    }

    /// The response, unless the answer is silence.
    pub fn wire(&self) -> Option<&Bytes> {
        match self {
            Answer::Reply { wire, .. } => Some(wire),
            Answer::Silent => None,
        }
    }

    /// On the wire of the contract, silence is an empty message (see dns.proto).
    pub(crate) fn to_parts(&self) -> (Bytes, u32) {
        match self {
            Answer::Reply { wire, cache_ttl } => (wire.clone(), *cache_ttl),
            Answer::Silent => (Bytes::new(), 0),
        }
    }

    pub(crate) fn from_parts(wire: Bytes, cache_ttl: u32) -> Self {
        if wire.is_empty() {
            Answer::Silent
        } else {
            Answer::Reply { wire, cache_ttl }
        }
    }
}
