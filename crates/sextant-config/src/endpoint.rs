//! Where a daemon's gRPC service lives: a Unix socket path (the default: file
//! permissions are the access control) or a TCP address. Only the address: the
//! connection is the RPC crate's business.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// A gRPC endpoint as written in the config: `unix:/run/sextant/authority.sock` or
/// `tcp:127.0.0.1:7001` (a bare `127.0.0.1:7001` is read as TCP too).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Endpoint {
    /// A Unix socket at this path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(
                    "\"unix:\" needs a socket path, e.g. unix:/run/sextant/authority.sock".into(),
                );
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let addr = s.strip_prefix("tcp:").unwrap_or(s);
        addr.parse().map(Endpoint::Tcp).map_err(|_| {
            format!(
                "{s:?} is not a gRPC endpoint; write unix:/path/to.sock or tcp:ADDRESS:PORT (e.g. tcp:127.0.0.1:7001)"
            )
        })
    }
}

impl TryFrom<String> for Endpoint {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

/// A key holding one endpoint or a list of them (`authority = "unix:/a.sock"` or
/// `authority = ["tcp:198.18.0.2:7001", "tcp:198.18.0.3:7001"]`).
pub(crate) fn one_or_many<'de, D>(deserializer: D) -> Result<Vec<Endpoint>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct OneOrMany;

    impl<'de> serde::de::Visitor<'de> for OneOrMany {
        type Value = Vec<Endpoint>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "an endpoint (\"unix:/path.sock\" or \"tcp:ADDRESS:PORT\") or a list of them",
            )
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            text.parse()
                .map(|endpoint| vec![endpoint])
                .map_err(E::custom)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut endpoints = Vec::new();
            while let Some(text) = seq.next_element::<String>()? {
                endpoints.push(text.parse().map_err(serde::de::Error::custom)?);
            }
            Ok(endpoints)
        }
    }

    deserializer.deserialize_any(OneOrMany)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_and_tcp_forms() {
        assert_eq!(
            "unix:/run/x.sock".parse::<Endpoint>(),
            Ok(Endpoint::Unix("/run/x.sock".into()))
        );
        let tcp = Endpoint::Tcp("127.0.0.1:7001".parse().unwrap_or_else(|_| unreachable!()));
        assert_eq!("tcp:127.0.0.1:7001".parse::<Endpoint>(), Ok(tcp.clone()));
        assert_eq!("127.0.0.1:7001".parse::<Endpoint>(), Ok(tcp));
    }

    #[test]
    fn rejects_garbage_with_the_fix() {
        let err = "localhost".parse::<Endpoint>().err().unwrap_or_default();
        assert!(err.contains("unix:/path/to.sock"), "{err}");
        assert!("unix:".parse::<Endpoint>().is_err());
    }
}
