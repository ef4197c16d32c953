//! Why a transfer failed, in words an operator can act on. Every failure leaves the
//! previously published version served.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub(crate) enum XfrError {
    #[error("cannot connect to primary {primary}: {cause}")]
    Connect {
        primary: SocketAddr,
        cause: std::io::Error,
    },
    #[error("primary {primary} went silent for {seconds}s {during}")]
    Timeout {
        primary: SocketAddr,
        seconds: u64,
        during: &'static str,
    },
    #[error(
        "primary {primary} closed the connection before the closing SOA ({records} records received)"
    )]
    Closed { primary: SocketAddr, records: u64 },
    #[error("primary {primary} answered {rcode}")]
    Refused { primary: SocketAddr, rcode: String },
    #[error("primary {primary} sent a malformed transfer: {reason}")]
    Malformed { primary: SocketAddr, reason: String },
    #[error(
        "primary {primary} ended the transfer with serial {closing}, but it began with serial {opening}"
    )]
    SoaMismatch {
        primary: SocketAddr,
        opening: u32,
        closing: u32,
    },
    #[error(
        "primary {primary} sent more than {limit} {what}; raise the zone's limit if this zone is really that large"
    )]
    TooLarge {
        primary: SocketAddr,
        limit: u64,
        what: &'static str,
    },
    #[error("primary {primary} failed the TSIG check: {reason}")]
    Tsig { primary: SocketAddr, reason: String },
    #[error("storing the transfer failed: {0}")]
    Store(#[from] sextant_store::StoreError),
}
