//! DNS Cookies (RFC 7873) as a client: every upstream query carries a client cookie
//! made for its server (SipHash-2-4 of the server's address under a secret of this
//! process), and the server cookie that server last gave, if any. An answer whose
//! client cookie is not ours is spoofed; so is an answer without one from a server
//! that has given us a cookie before (RFC 7873 §5.3).

use std::collections::HashMap;
use std::hash::Hasher;
use std::net::IpAddr;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::opt::EdnsOption;
use parking_lot::Mutex;
use siphasher::sip::SipHasher24;

/// The COOKIE option code (RFC 7873 §4).
pub(crate) const OPTION_COOKIE: u16 = 10;
/// Servers whose cookies are remembered at once; past it the memory starts over
/// (servers give a new cookie with their next answer).
const MAX_SERVERS: usize = 16_384;

/// Client cookies and the server cookies learned.
#[derive(Debug)]
pub(crate) struct ClientCookies {
    secret: [u8; 16],
    server_cookies: Mutex<HashMap<IpAddr, Vec<u8>>>,
}

/// What an answer's cookie says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Our client cookie came back, or the server does not do cookies.
    Genuine,
    /// Not our client cookie, or none from a server that gave one before.
    Spoofed,
}

impl Default for ClientCookies {
    fn default() -> Self {
        Self {
            secret: rand::random(),
            server_cookies: Mutex::default(),
        }
    }
}

impl ClientCookies {
    /// Our client cookie for `server`.
    pub(crate) fn client_cookie(&self, server: IpAddr) -> [u8; 8] {
        let mut hasher = SipHasher24::new_with_key(&self.secret);
        match server {
            IpAddr::V4(v4) => hasher.write(&v4.octets()),
            IpAddr::V6(v6) => hasher.write(&v6.octets()),
        }
        hasher.finish().to_le_bytes()
    }

    /// The COOKIE option data for a query to `server`.
    pub(crate) fn option(&self, server: IpAddr) -> Vec<u8> {
        let mut data = self.client_cookie(server).to_vec();
        if let Some(known) = self.server_cookies.lock().get(&server) {
            data.extend_from_slice(known);
        }
        data
    }

    /// Checks the cookie of `answer` from `server` (asked with a cookie).
    pub(crate) fn check(&self, server: IpAddr, answer: &Message) -> Verdict {
        match cookie_of(answer) {
            Some(data) if data.get(..8) == Some(&self.client_cookie(server)[..]) => {
                Verdict::Genuine
            }
            Some(_) => Verdict::Spoofed,
            None if self.server_cookies.lock().contains_key(&server) => Verdict::Spoofed,
            None => Verdict::Genuine,
        }
    }

    /// Remembers the server cookie of a genuine `answer` from `server`; returns
    /// whether it had one.
    pub(crate) fn learn(&self, server: IpAddr, answer: &Message) -> bool {
        let Some(server_cookie) = cookie_of(answer)
            .and_then(|data| data.get(8..))
            .filter(|cookie| (8..=32).contains(&cookie.len()))
        else {
            return false;
        };
        let mut known = self.server_cookies.lock();
        if known.len() >= MAX_SERVERS && !known.contains_key(&server) {
            known.clear();
        }
        known.insert(server, server_cookie.to_vec());
        true
    }
}

fn cookie_of(answer: &Message) -> Option<&[u8]> {
    let edns = answer.edns.as_ref()?;
    edns.options()
        .as_ref()
        .iter()
        .find_map(|(_, option)| match option {
            EdnsOption::Unknown(OPTION_COOKIE, data) => Some(&data[..]),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use hickory_proto::op::Edns;

    use super::*;

    fn answer_with(cookie: Option<Vec<u8>>) -> Message {
        let mut message = Message::query();
        let mut edns = Edns::new();
        if let Some(cookie) = cookie {
            edns.options_mut()
                .insert(EdnsOption::Unknown(OPTION_COOKIE, cookie));
        }
        message.set_edns(edns);
        message
    }

    #[test]
    fn our_cookie_comes_back_and_a_server_that_gave_one_must_keep_giving_it() {
        let cookies = ClientCookies::default();
        let server: IpAddr = "192.0.2.53".parse().unwrap();
        let other: IpAddr = "192.0.2.54".parse().unwrap();
        assert_ne!(cookies.client_cookie(server), cookies.client_cookie(other));
        assert_eq!(cookies.option(server).len(), 8);
        // A server that does not do cookies.
        assert_eq!(cookies.check(server, &answer_with(None)), Verdict::Genuine);
        // A wrong client cookie is spoofed.
        let wrong = answer_with(Some(vec![0; 24]));
        assert_eq!(cookies.check(server, &wrong), Verdict::Spoofed);
        // Ours, with a server cookie: remembered and sent next time.
        let mut data = cookies.client_cookie(server).to_vec();
        data.extend_from_slice(&[9; 16]);
        let good = answer_with(Some(data));
        assert_eq!(cookies.check(server, &good), Verdict::Genuine);
        assert!(cookies.learn(server, &good));
        assert_eq!(cookies.option(server).len(), 24);
        // From now on an answer without a cookie from that server is spoofed.
        assert_eq!(cookies.check(server, &answer_with(None)), Verdict::Spoofed);
        assert_eq!(cookies.check(other, &answer_with(None)), Verdict::Genuine);
    }
}
