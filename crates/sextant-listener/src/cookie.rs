//! DNS Cookies (RFC 7873) on the listener: a client cookie gets a server cookie made
//! as RFC 9018 §4 says (version 1, a timestamp and a SipHash-2-4 of the client
//! cookie, the timestamp and the client's address under the server secret), so
//! that every listener sharing the secret accepts the others' cookies. A query that
//! brings back a valid server cookie has proven that its source address is real:
//! rate limiting does not apply to it.

use std::hash::Hasher;
use std::net::IpAddr;

use sextant_wire::{QueryView, find_option};
use siphasher::sip::SipHasher24;

/// Bytes of a client cookie (RFC 7873 §4).
const CLIENT_LEN: usize = 8;
/// Bytes of the server cookies made here (RFC 9018 §4.2).
const SERVER_LEN: usize = 16;
/// The cookie option's data in an answer: client and server cookie.
pub(crate) const OPTION_DATA_LEN: usize = CLIENT_LEN + SERVER_LEN;
/// What the option adds to an answer: code, length, data.
pub(crate) const OPTION_LEN: u16 = 4 + OPTION_DATA_LEN as u16;
/// A server cookie older than this is no longer valid (RFC 9018 §4.3).
const MAX_AGE: u32 = 3600;
/// Nor one from further in the future than this (clock skew between listeners).
const MAX_AHEAD: u32 = 300;

/// The secrets server cookies are made and checked with.
#[derive(Clone)]
pub(crate) struct Cookies {
    secret: [u8; 16],
    /// Still accepted, never used for new cookies (a rotation in progress).
    previous: Option<[u8; 16]>,
    /// Cookie-aware UDP clients without a valid server cookie get BADCOOKIE.
    pub(crate) require: bool,
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        write!(f, "Cookies {{ require: {} }}", self.require)
    }
}

/// What a query's COOKIE option says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QueryCookie {
    /// No cookie.
    None,
    /// A client cookie, with no server cookie or one that is not valid.
    Client([u8; CLIENT_LEN]),
    /// A client cookie and a valid server cookie: the source address is real.
    Verified([u8; CLIENT_LEN]),
    /// An option of a length no cookie has: FORMERR (RFC 7873 §5.2.2).
    Malformed,
}

impl QueryCookie {
    /// The client cookie to answer with, if any.
    pub(crate) fn client(self) -> Option<[u8; CLIENT_LEN]> {
        match self {
            QueryCookie::Client(client) | QueryCookie::Verified(client) => Some(client),
            QueryCookie::None | QueryCookie::Malformed => None,
        }
    }

    /// Whether the query proved its source address.
    pub(crate) fn verified(self) -> bool {
        matches!(self, QueryCookie::Verified(_))
    }
}

impl Cookies {
    /// From the configuration; `None` when cookies are off.
    pub(crate) fn new(config: &sextant_config::CookieConfig) -> Option<Self> {
        if !config.enabled {
            return None;
        }
        let secret = config
            .secret
            .as_deref()
            .and_then(sextant_config::cookie_secret)
            .unwrap_or_else(process_secret);
        Some(Self {
            secret,
            previous: config
                .previous_secret
                .as_deref()
                .and_then(sextant_config::cookie_secret),
            require: config.require,
        })
    }

    /// Reads the COOKIE option of a query from `client`, checking its server cookie.
    pub(crate) fn read(
        &self,
        view: &QueryView,
        packet: &[u8],
        client: IpAddr,
        now: u32,
    ) -> QueryCookie {
        let Some(edns) = view.edns else {
            return QueryCookie::None;
        };
        let Some(data) = find_option(edns.options(packet), sextant_wire::OPTION_COOKIE) else {
            return QueryCookie::None;
        };
        // RFC 7873 §4: a client cookie of 8 bytes, alone or with a server cookie of
        // 8 to 32 bytes.
        if data.len() != CLIENT_LEN && !(CLIENT_LEN + 8..=CLIENT_LEN + 32).contains(&data.len()) {
            return QueryCookie::Malformed;
        }
        let mut cookie = [0u8; CLIENT_LEN];
        cookie.copy_from_slice(&data[..CLIENT_LEN]);
        let server = &data[CLIENT_LEN..];
        if server.len() == SERVER_LEN && self.valid(&cookie, server, client, now) {
            QueryCookie::Verified(cookie)
        } else {
            QueryCookie::Client(cookie)
        }
    }

    /// The option data for an answer: the client's cookie and a fresh server cookie.
    pub(crate) fn answer(
        &self,
        cookie: &[u8; CLIENT_LEN],
        client: IpAddr,
        now: u32,
    ) -> [u8; OPTION_DATA_LEN] {
        let mut data = [0u8; OPTION_DATA_LEN];
        data[..CLIENT_LEN].copy_from_slice(cookie);
        // Version 1, three reserved bytes, the timestamp (RFC 9018 §4.2).
        data[CLIENT_LEN] = 1;
        data[CLIENT_LEN + 4..CLIENT_LEN + 8].copy_from_slice(&now.to_be_bytes());
        let hash = hash(&self.secret, &data[..CLIENT_LEN + 8], client);
        data[CLIENT_LEN + 8..].copy_from_slice(&hash.to_le_bytes());
        data
    }

    fn valid(&self, cookie: &[u8; CLIENT_LEN], server: &[u8], client: IpAddr, now: u32) -> bool {
        if server[0] != 1 {
            return false;
        }
        let timestamp = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
        // Serial number arithmetic (RFC 1982), as RFC 9018 §4.3 asks.
        let age = now.wrapping_sub(timestamp);
        if age > MAX_AGE && timestamp.wrapping_sub(now) > MAX_AHEAD {
            return false;
        }
        let mut input = [0u8; CLIENT_LEN + 8];
        input[..CLIENT_LEN].copy_from_slice(cookie);
        input[CLIENT_LEN..].copy_from_slice(&server[..8]);
        let expected = &server[8..];
        std::iter::once(&self.secret)
            .chain(&self.previous)
            .any(|secret| hash(secret, &input, client).to_le_bytes() == expected)
    }
}

/// SipHash-2-4 of the client cookie, version, reserved and timestamp (`input`) and
/// the client's address, under `secret` (RFC 9018 §4.4); its 8 bytes go on the wire
/// little-endian, as SipHash's reference output and the RFC's examples have them.
fn hash(secret: &[u8; 16], input: &[u8], client: IpAddr) -> u64 {
    let mut hasher = SipHasher24::new_with_key(secret);
    hasher.write(input);
    match client {
        IpAddr::V4(v4) => hasher.write(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => hasher.write(&v4.octets()),
            None => hasher.write(&v6.octets()),
        },
    }
    hasher.finish()
}

/// The secret used when none is configured: made once per process, so that a reload
/// of the configuration keeps the cookies clients hold valid.
fn process_secret() -> [u8; 16] {
    static SECRET: std::sync::OnceLock<[u8; 16]> = std::sync::OnceLock::new();
    *SECRET.get_or_init(rand::random)
}

/// Seconds since 1970, as cookie timestamps count them (wrapping in 2106).
pub(crate) fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn with_secret(secret: &str) -> Cookies {
        Cookies::new(&sextant_config::CookieConfig {
            secret: Some(secret.into()),
            ..Default::default()
        })
        .unwrap()
    }

    /// A query for `a.` carrying `option` as its COOKIE data.
    fn query(option: &[u8]) -> Vec<u8> {
        let mut q = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, b'a', 0, 0, 1, 0, 1];
        q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0]);
        q.extend_from_slice(&((4 + option.len()) as u16).to_be_bytes());
        q.extend_from_slice(&10u16.to_be_bytes());
        q.extend_from_slice(&(option.len() as u16).to_be_bytes());
        q.extend_from_slice(option);
        q
    }

    fn read(cookies: &Cookies, option: &[u8], ip: &str, now: u32) -> QueryCookie {
        let packet = query(option);
        let view = sextant_wire::parse_query(&packet).unwrap();
        cookies.read(&view, &packet, ip.parse().unwrap(), now)
    }

    /// RFC 9018 Appendix A.1: the server cookie of a first query.
    #[test]
    fn the_rfc_9018_example_cookie_is_made_and_accepted() {
        let cookies = with_secret("e5e973e5a6b2a43f48e7dc849e37bfcf");
        let client = [0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57];
        let data = cookies.answer(&client, "198.51.100.100".parse().unwrap(), 1_559_731_985);
        assert_eq!(
            data[8..],
            [
                0x01, 0, 0, 0, 0x5c, 0xf7, 0x9f, 0x11, 0x1f, 0x81, 0x30, 0xc3, 0xee, 0xe2, 0x94,
                0x80
            ]
        );
        assert_eq!(
            read(&cookies, &data, "198.51.100.100", 1_559_731_985 + 10),
            QueryCookie::Verified(client)
        );
    }

    #[test]
    fn wrong_addresses_old_cookies_and_odd_lengths_are_not_verified() {
        let cookies = with_secret("e5e973e5a6b2a43f48e7dc849e37bfcf");
        let client = [7u8; 8];
        let data = cookies.answer(&client, "192.0.2.1".parse().unwrap(), 1_000_000);
        assert!(read(&cookies, &data, "192.0.2.1", 1_000_100).verified());
        assert_eq!(
            read(&cookies, &data, "192.0.2.2", 1_000_100),
            QueryCookie::Client(client)
        );
        assert_eq!(
            read(&cookies, &data, "192.0.2.1", 1_000_000 + 3601),
            QueryCookie::Client(client)
        );
        assert_eq!(
            read(&cookies, &data, "192.0.2.1", 1_000_000 - 301),
            QueryCookie::Client(client)
        );
        assert_eq!(
            read(&cookies, &client, "192.0.2.1", 1),
            QueryCookie::Client(client)
        );
        assert_eq!(
            read(&cookies, &[1, 2, 3], "192.0.2.1", 1),
            QueryCookie::Malformed
        );
        assert_eq!(
            read(&cookies, &[0; 12], "192.0.2.1", 1),
            QueryCookie::Malformed
        );
        // Another listener with the same secret accepts it; a rotated one too.
        let same = with_secret("e5e973e5a6b2a43f48e7dc849e37bfcf");
        assert!(read(&same, &data, "192.0.2.1", 1_000_100).verified());
        let rotated = Cookies::new(&sextant_config::CookieConfig {
            secret: Some("00112233445566778899aabbccddeeff".into()),
            previous_secret: Some("e5e973e5a6b2a43f48e7dc849e37bfcf".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(read(&rotated, &data, "192.0.2.1", 1_000_100).verified());
        let other = with_secret("00112233445566778899aabbccddeeff");
        assert!(!read(&other, &data, "192.0.2.1", 1_000_100).verified());
    }
}
