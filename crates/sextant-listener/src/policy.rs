//! What SIGHUP may change without a restart: the address ACLs, the CH TXT answers,
//! response rate limiting and which queries are traced, swapped whole so a packet
//! sees one policy throughout.

use std::net::{IpAddr, SocketAddr};

use sextant_wire::flags;

use crate::rrl::{AnswerKind, QuestionKey, Rrl, Verdict, slip_response};
use crate::stats;

/// Address-based access control (checked before anything else is read).
#[derive(Debug, Default)]
pub(crate) struct Acl {
    /// Who may query at all (others get REFUSED, or silence for garbage).
    pub allow_query: Vec<ipnet::IpNet>,
    /// Who may ask for recursion.
    pub allow_recursion: Vec<ipnet::IpNet>,
    /// Who is ignored entirely.
    pub blackhole: Vec<ipnet::IpNet>,
}

impl Acl {
    /// The client is ignored: not even an error goes back.
    pub(crate) fn is_blackholed(&self, ip: IpAddr) -> bool {
        contains(&self.blackhole, ip)
    }

    /// The client may query.
    pub(crate) fn may_query(&self, ip: IpAddr) -> bool {
        contains(&self.allow_query, ip)
    }

    /// The client may have recursion.
    pub(crate) fn may_recurse(&self, ip: IpAddr) -> bool {
        contains(&self.allow_recursion, ip)
    }
}

fn contains(networks: &[ipnet::IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    networks.iter().any(|net| net.contains(&ip))
}

/// IPv4 clients on a dual-stack socket appear as ::ffff:a.b.c.d; match them as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The SIGHUP-reloadable part of the listener's configuration.
#[derive(Debug, Default)]
pub(crate) struct Policy {
    /// Who may query (others: REFUSED), recurse, or is ignored entirely.
    pub acl: Acl,
    /// CH TXT answers for `version.bind` and `id.server`; `None` = REFUSED.
    pub version: Option<String>,
    /// The answer to `id.server` and `hostname.bind`; `None` = REFUSED.
    pub identity: Option<String>,
    /// Response rate limiting of UDP answers; `None` = off.
    pub rrl: Option<Rrl>,
    /// DNS Cookies; `None` = off.
    pub(crate) cookies: Option<crate::cookie::Cookies>,
    /// Which queries are traced.
    pub(crate) trace: crate::trace::TraceRules,
}

/// What rate limiting does with one UDP response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Limited {
    /// Send it as it is.
    Send,
    /// Send this truncated answer instead, so a real client retries over TCP.
    Slip(Vec<u8>),
    /// Send nothing.
    Drop,
}

impl Policy {
    /// Response rate limiting of a UDP `response` to `client`'s question `question`.
    /// Answers to clients that may recurse and asked for recursion are exempt: they
    /// are our own networks, not forged victims.
    pub(crate) fn rate_limit(
        &self,
        response: &[u8],
        client: SocketAddr,
        question: QuestionKey,
    ) -> Limited {
        let Some(rrl) = &self.rrl else {
            return Limited::Send;
        };
        let Some(header) = sextant_wire::parse_header(response) else {
            return Limited::Send;
        };
        if header.flags & flags::RD != 0 && self.acl.may_recurse(client.ip()) {
            return Limited::Send;
        }
        match rrl.check(client.ip(), question, AnswerKind::of(&header)) {
            Verdict::Send => Limited::Send,
            Verdict::Slip => {
                stats::dropped("rrl_slip");
                match slip_response(response) {
                    Some(slip) => Limited::Slip(slip),
                    None => Limited::Drop,
                }
            }
            Verdict::Drop => {
                stats::dropped("rrl");
                Limited::Drop
            }
        }
    }
}
