//! Root hints: where iteration starts. The IANA hints are compiled in; a hints file
//! from the configuration is checked at start (a corrupted hints file once broke
//! every lookup of a widely deployed resolver without a word), and priming (RFC 8109) replaces the hints with the
//! root's own NS set as soon as a root server answers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use hickory_proto::rr::{Name, RData};

use crate::addr::ServerFilter;

/// The root's name servers and their addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootHints {
    pub servers: Vec<(Name, Vec<IpAddr>)>,
    /// Where they came from, for logs and status.
    pub source: String,
}

/// The root servers as IANA publishes them (named.root, 2023 onwards).
const IANA: [(&str, Ipv4Addr, Ipv6Addr); 13] = [
    (
        "a",
        Ipv4Addr::new(198, 41, 0, 4),
        Ipv6Addr::new(0x2001, 0x503, 0xba3e, 0, 0, 0, 2, 0x30),
    ),
    (
        "b",
        Ipv4Addr::new(170, 247, 170, 2),
        Ipv6Addr::new(0x2801, 0x1b8, 0x10, 0, 0, 0, 0, 0xb),
    ),
    (
        "c",
        Ipv4Addr::new(192, 33, 4, 12),
        Ipv6Addr::new(0x2001, 0x500, 0x2, 0, 0, 0, 0, 0xc),
    ),
    (
        "d",
        Ipv4Addr::new(199, 7, 91, 13),
        Ipv6Addr::new(0x2001, 0x500, 0x2d, 0, 0, 0, 0, 0xd),
    ),
    (
        "e",
        Ipv4Addr::new(192, 203, 230, 10),
        Ipv6Addr::new(0x2001, 0x500, 0xa8, 0, 0, 0, 0, 0xe),
    ),
    (
        "f",
        Ipv4Addr::new(192, 5, 5, 241),
        Ipv6Addr::new(0x2001, 0x500, 0x2f, 0, 0, 0, 0, 0xf),
    ),
    (
        "g",
        Ipv4Addr::new(192, 112, 36, 4),
        Ipv6Addr::new(0x2001, 0x500, 0x12, 0, 0, 0, 0, 0xd0d),
    ),
    (
        "h",
        Ipv4Addr::new(198, 97, 190, 53),
        Ipv6Addr::new(0x2001, 0x500, 0x1, 0, 0, 0, 0, 0x53),
    ),
    (
        "i",
        Ipv4Addr::new(192, 36, 148, 17),
        Ipv6Addr::new(0x2001, 0x7fe, 0, 0, 0, 0, 0, 0x53),
    ),
    (
        "j",
        Ipv4Addr::new(192, 58, 128, 30),
        Ipv6Addr::new(0x2001, 0x503, 0xc27, 0, 0, 0, 2, 0x30),
    ),
    (
        "k",
        Ipv4Addr::new(193, 0, 14, 129),
        Ipv6Addr::new(0x2001, 0x7fd, 0, 0, 0, 0, 0, 1),
    ),
    (
        "l",
        Ipv4Addr::new(199, 7, 83, 42),
        Ipv6Addr::new(0x2001, 0x500, 0x9f, 0, 0, 0, 0, 0x42),
    ),
    (
        "m",
        Ipv4Addr::new(202, 12, 27, 33),
        Ipv6Addr::new(0x2001, 0xdc3, 0, 0, 0, 0, 0, 0x35),
    ),
];

impl RootHints {
    pub fn builtin() -> Self {
        let servers = IANA
            .iter()
            .filter_map(|(letter, v4, v6)| {
                let name = Name::from_ascii(format!("{letter}.root-servers.net.")).ok()?;
                Some((name, vec![IpAddr::V4(*v4), IpAddr::V6(*v6)]))
            })
            .collect();
        Self {
            servers,
            source: "built-in IANA hints".into(),
        }
    }

    /// Reads and checks a hints file; the error is one sentence with file, line and fix.
    pub fn from_file(path: &Path, filter: &ServerFilter) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "{}: cannot read the root hints file ({e}); fix the path in resolver.root_hints or remove the key to use the built-in hints",
                path.display()
            )
        })?;
        Self::from_text(path, &text, filter)
    }

    pub fn from_text(path: &Path, text: &str, filter: &ServerFilter) -> Result<Self, String> {
        let no_include = |file: &Path| -> std::io::Result<String> {
            Err(std::io::Error::other(format!(
                "$INCLUDE {} is not allowed in a root hints file",
                file.display()
            )))
        };
        let records = sextant_zone::parse(text, path, &Name::root(), &no_include)
            .map_err(|e| {
                format!(
                    "{e}; the root hints file is damaged: restore it (e.g. from https://www.internic.net/domain/named.root) or remove resolver.root_hints to use the built-in hints"
                )
            })?;
        let mut servers: Vec<(Name, Vec<IpAddr>, usize)> = Vec::new();
        for located in &records {
            if let (true, RData::NS(ns)) = (located.record.name.is_root(), &located.record.data) {
                let name = ns.0.to_lowercase();
                if !servers.iter().any(|(n, _, _)| *n == name) {
                    servers.push((name, Vec::new(), located.location.line));
                }
            }
        }
        if servers.is_empty() {
            return Err(format!(
                "{}: no NS records for the root zone (lines like `. 3600000 NS a.root-servers.net.`); the file is empty or damaged: restore it or remove resolver.root_hints to use the built-in hints",
                path.display()
            ));
        }
        for located in &records {
            let ip = match &located.record.data {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
                _ => continue,
            };
            let owner = located.record.name.to_lowercase();
            if let Some((_, addresses, _)) = servers.iter_mut().find(|(n, _, _)| *n == owner) {
                addresses.extend(filter.filter(&owner, vec![ip]));
            }
        }
        let first_line = servers.first().map_or(1, |(_, _, line)| *line);
        let servers: Vec<(Name, Vec<IpAddr>)> = servers
            .into_iter()
            .filter(|(_, addresses, _)| !addresses.is_empty())
            .map(|(name, addresses, _)| (name, addresses))
            .collect();
        if servers.is_empty() {
            return Err(format!(
                "{}:{first_line}: none of the root name servers has a usable A or AAAA record in the file; add their addresses or remove resolver.root_hints to use the built-in hints",
                path.display()
            ));
        }
        Ok(Self {
            servers,
            source: path.display().to_string(),
        })
    }

    /// The hints the resolver starts with: the configured file when it is sound;
    /// otherwise the built-in ones (with the reason as a warning) or an error.
    pub fn load(
        path: Option<&Path>,
        fallback: bool,
        filter: &ServerFilter,
    ) -> Result<(Self, Option<String>), String> {
        let Some(path) = path else {
            return Ok((Self::builtin(), None));
        };
        match Self::from_file(path, filter) {
            Ok(hints) => Ok((hints, None)),
            Err(problem) if fallback => Ok((
                Self::builtin(),
                Some(format!("{problem} (using the built-in hints meanwhile)")),
            )),
            Err(problem) => Err(format!(
                "{problem} (resolver.root_hints_fallback = false, so the resolver does not start)"
            )),
        }
    }

    /// Addresses of every hinted server, with the server's name.
    pub fn addresses(&self) -> impl Iterator<Item = (&Name, IpAddr)> {
        self.servers
            .iter()
            .flat_map(|(name, ips)| ips.iter().map(move |ip| (name, *ip)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = ".  3600000  NS  a.root-servers.lab.\n\
                        .  3600000  NS  b.root-servers.lab.\n\
                        a.root-servers.lab.  3600000  A  127.0.0.2\n\
                        b.root-servers.lab.  3600000  A  0.0.0.0\n";

    fn parse(text: &str) -> Result<RootHints, String> {
        RootHints::from_text(Path::new("hints.txt"), text, &ServerFilter::default())
    }

    #[test]
    fn builtin_hints_have_thirteen_servers_with_two_families() {
        let hints = RootHints::builtin();
        assert_eq!(hints.servers.len(), 13);
        assert_eq!(hints.addresses().count(), 26);
        assert_eq!(hints.servers[0].0.to_string(), "a.root-servers.net.");
    }

    #[test]
    fn a_good_file_keeps_only_usable_addresses() {
        let hints = parse(GOOD).unwrap();
        assert_eq!(hints.servers.len(), 1);
        assert_eq!(
            hints.servers[0].1,
            vec!["127.0.0.2".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn damaged_files_are_explained_with_file_and_line() {
        let truncated = &GOOD[..GOOD.len() - 20];
        let error = parse(&format!(
            "{truncated}\nc.root-servers.lab. 3600000 A 127.0."
        ))
        .unwrap_err();
        assert!(error.starts_with("hints.txt:"), "{error}");
        assert!(error.contains("built-in hints"), "{error}");

        let error = parse("").unwrap_err();
        assert!(error.contains("no NS records"), "{error}");

        let error = parse(".  3600000 NS a.root-servers.lab.\na.root-servers.lab. 1 A 0.0.0.0\n")
            .unwrap_err();
        assert!(
            error.starts_with("hints.txt:1: none of the root name servers"),
            "{error}"
        );
    }

    #[test]
    fn fallback_or_refusal_as_configured() {
        let dir = std::env::temp_dir().join(format!("sextant-hints-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("broken.hints");
        std::fs::write(&path, "garbage line that is not a record\n").unwrap();
        let filter = ServerFilter::default();
        let (hints, warning) = RootHints::load(Some(&path), true, &filter).unwrap();
        assert_eq!(hints, RootHints::builtin());
        assert!(warning.unwrap().contains("broken.hints:1"));
        let error = RootHints::load(Some(&path), false, &filter).unwrap_err();
        assert!(error.contains("does not start"), "{error}");
        let missing = RootHints::load(Some(&dir.join("absent")), false, &filter).unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
