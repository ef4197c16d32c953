//! The listener's dnstap entries: an exchange is chosen (sampled) when its query
//! arrives, and logged once its answer has gone out, with the bytes as sent.

use std::net::SocketAddr;
use std::time::SystemTime;

use sextant_dnstap::{Event, Exchange, Protocol};

use crate::backend::Backend;
use crate::frontend::Frontend;

/// An exchange to be logged: what is known when its query arrives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tapped {
    protocol: Protocol,
    /// The address the query came in on.
    local: SocketAddr,
    received: SystemTime,
}

impl Frontend {
    /// `Some` when dnstap is on and this exchange is sampled; asked before anything
    /// is copied for the log.
    pub(crate) fn tapped(&self, protocol: Protocol, local: SocketAddr) -> Option<Tapped> {
        self.dnstap.as_ref()?;
        self.tapped_at(protocol, local, SystemTime::now())
    }

    /// [`Frontend::tapped`] for a query read at `received`.
    pub(crate) fn tapped_at(
        &self,
        protocol: Protocol,
        local: SocketAddr,
        received: SystemTime,
    ) -> Option<Tapped> {
        let tap = self.dnstap.as_ref()?;
        tap.sampled().then_some(Tapped {
            protocol,
            local,
            received,
        })
    }

    /// Logs a query and the answer sent now (`None`: nothing was sent); see
    /// [`Frontend::log_exchange`].
    pub(crate) fn log_answered(
        &self,
        tapped: Tapped,
        client: SocketAddr,
        query: &[u8],
        response: Option<&[u8]>,
        from: Option<Backend>,
    ) {
        let response = response.map(|response| (SystemTime::now(), response));
        self.log_exchange(tapped, client, query, response, from);
    }

    /// Logs a query and the answer sent, with when (`None`: nothing was sent).
    /// `from` is the backend that answered; without one (the listener's own errors)
    /// a recursive query is a client's exchange when a resolver is configured.
    pub(crate) fn log_exchange(
        &self,
        tapped: Tapped,
        client: SocketAddr,
        query: &[u8],
        response: Option<(SystemTime, &[u8])>,
        from: Option<Backend>,
    ) {
        let Some(tap) = &self.dnstap else { return };
        let exchange = match from {
            Some(Backend::Resolver) => Exchange::Client,
            Some(Backend::Authority | Backend::Transfer) => Exchange::Auth,
            None if recursion_desired(query) && self.resolver.is_some() => Exchange::Client,
            None => Exchange::Auth,
        };
        tap.log(Event {
            exchange,
            protocol: tapped.protocol,
            initiator: client,
            responder: Some(tapped.local),
            query_time: tapped.received,
            query,
            zone: None,
            response,
        });
    }
}

impl Tapped {
    /// When the query was read.
    pub(crate) fn received(&self) -> SystemTime {
        self.received
    }
}

/// The RD bit of a message's header (false when there is no header).
fn recursion_desired(message: &[u8]) -> bool {
    message.get(2).is_some_and(|flags| flags & 0x01 != 0)
}
