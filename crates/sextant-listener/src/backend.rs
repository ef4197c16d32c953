//! The daemons the listener forwards to.

/// The daemon a forwarded message goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// Queries inside the zones served here.
    Authority,
    /// Recursive queries outside our zones, from clients allowed to recurse.
    Resolver,
    /// NOTIFY messages, for the secondary zones.
    Transfer,
}

impl Backend {
    /// The `backend` label of metrics and logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Authority => "authority",
            Backend::Resolver => "resolver",
            Backend::Transfer => "transfer",
        }
    }
}
