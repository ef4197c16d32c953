//! Sextant's configuration: one TOML file with a section per daemon, overridable by
//! `SEXTANT__SECTION__KEY` environment variables, checked as a whole before use.
//!
//! Every problem is reported at once, each as one sentence naming the file, the key
//! and the fix. Relative paths in the file are relative to the file's directory.

mod dnstap;
mod endpoint;
mod error;
mod grpc;
mod load;
mod model;
mod section;
pub mod tls;
mod trace;
mod validate;

pub use dnstap::{DnstapConfig, DnstapMessage};
pub use endpoint::Endpoint;
pub use error::{ConfigError, MissingSection, Problem, required};
pub use grpc::{GrpcConfig, GrpcTlsFiles};
pub use load::{key_secret, load};
pub use model::{
    AuthorityConfig, Config, CookieConfig, DNSSEC_ALGORITHMS, DnssecPolicyConfig, ForwardConfig,
    ForwardMode, KeyConfig, ListenerConfig, ListenerTlsConfig, LogConfig, LogFormat,
    ResolverConfig, RrlConfig, SecondaryZoneConfig, TransferConfig, ZoneConfig, cookie_secret,
    signature_refresh_window,
};
pub use section::Section;
pub use trace::TraceConfig;
