//! Which addresses may be sent a query. A referral's glue is data from the network:
//! an address that cannot be a name server (bogus 0.0.0.0 glue, for one) is treated
//! as absent, and saying so is rate-limited so that a bad delegation cannot flood
//! the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;
use parking_lot::Mutex;

/// Addresses never queried.
#[derive(Debug, Default)]
pub struct ServerFilter {
    deny: Vec<ipnet::IpNet>,
    /// When each server name's bad address was last logged.
    logged: Mutex<HashMap<Name, Instant>>,
}

/// One warning per server name per this long.
const LOG_EVERY: Duration = Duration::from_secs(3600);
/// Server names remembered for rate limiting; past it the memory is reset.
const LOGGED_MAX: usize = 10_000;

impl ServerFilter {
    pub fn new(deny: Vec<ipnet::IpNet>) -> Self {
        Self {
            deny,
            logged: Mutex::default(),
        }
    }

    /// Whether `ip` can be a name server we may ask.
    pub fn usable(&self, ip: IpAddr) -> bool {
        can_be_server(ip) && !self.deny.iter().any(|net| net.contains(&ip))
    }

    /// Keeps the usable addresses of `server`, logging once an hour per server name
    /// when some are dropped.
    pub fn filter(&self, server: &Name, addresses: Vec<IpAddr>) -> Vec<IpAddr> {
        let (usable, dropped): (Vec<IpAddr>, Vec<IpAddr>) =
            addresses.into_iter().partition(|ip| self.usable(*ip));
        if !dropped.is_empty() {
            metrics::counter!("sextant_resolver_unusable_addresses_total")
                .increment(dropped.len() as u64);
            if self.first_time_this_hour(server) {
                tracing::warn!(
                    server = %server,
                    dropped = ?dropped,
                    kept = usable.len(),
                    "ignoring name server addresses that cannot be servers (said once an hour per name)"
                );
            }
        }
        usable
    }

    fn first_time_this_hour(&self, server: &Name) -> bool {
        let now = Instant::now();
        let mut logged = self.logged.lock();
        if logged.len() >= LOGGED_MAX {
            logged.clear();
        }
        match logged.get(server) {
            Some(at) if now.duration_since(*at) < LOG_EVERY => false,
            _ => {
                logged.insert(server.clone(), now);
                true
            }
        }
    }
}

/// Unspecified, "this network" (0.0.0.0/8), broadcast and multicast addresses can
/// never answer a query. Loopback stays usable: test labs and local forwarders use it.
fn can_be_server(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.octets()[0] == 0 || v4.is_broadcast() || v4.is_multicast() || v4.is_unspecified())
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return can_be_server(IpAddr::V4(v4));
            }
            !(v6.is_unspecified() || v6.is_multicast())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_that_cannot_be_servers_are_dropped() {
        let filter = ServerFilter::new(vec!["192.0.2.0/24".parse().unwrap()]);
        for bad in [
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "ff02::1",
            "::ffff:0.0.0.0",
            "192.0.2.7",
        ] {
            assert!(!filter.usable(ip(bad)), "{bad} must not be usable");
        }
        for good in ["127.0.0.1", "198.41.0.4", "2001:503:ba3e::2:30", "::1"] {
            assert!(filter.usable(ip(good)), "{good} must be usable");
        }
    }

    #[test]
    fn filtering_keeps_the_good_and_logs_once_per_name() {
        let filter = ServerFilter::default();
        let name = Name::from_ascii("ns1.example.").unwrap();
        let kept = filter.filter(&name, vec![ip("0.0.0.0"), ip("192.0.2.1")]);
        assert_eq!(kept, vec![ip("192.0.2.1")]);
        assert!(!filter.first_time_this_hour(&name));
        let other = Name::from_ascii("ns2.example.").unwrap();
        assert!(filter.first_time_this_hour(&other));
    }
}
