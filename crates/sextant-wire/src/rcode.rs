//! Response codes: the 4 bits in the header plus the 8 extended bits an OPT record
//! carries (RFC 6891 §6.1.3), as one type instead of bare integers.

use std::fmt;

/// A DNS response code, up to 12 bits wide.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rcode(u16);

impl Rcode {
    /// No error.
    pub const NOERROR: Rcode = Rcode(0);
    /// The query could not be read (RFC 1035).
    pub const FORMERR: Rcode = Rcode(1);
    /// The server failed to answer (RFC 1035).
    pub const SERVFAIL: Rcode = Rcode(2);
    /// The name does not exist (RFC 1035).
    pub const NXDOMAIN: Rcode = Rcode(3);
    /// The opcode is not implemented (RFC 1035).
    pub const NOTIMP: Rcode = Rcode(4);
    /// The server will not answer this client or this question (RFC 1035).
    pub const REFUSED: Rcode = Rcode(5);
    /// A name that should not exist does (RFC 6672: a DNAME substitution overflowed).
    pub const YXDOMAIN: Rcode = Rcode(6);
    /// Not authoritative for the zone, or a TSIG failure (RFC 2136, RFC 8945).
    pub const NOTAUTH: Rcode = Rcode(9);
    /// EDNS version not supported (RFC 6891); shares 16 with TSIG's BADSIG.
    pub const BADVERS: Rcode = Rcode(16);
    /// A bad or missing server cookie (RFC 7873).
    pub const BADCOOKIE: Rcode = Rcode(23);

    /// The code from its number; only the low 12 bits can travel.
    pub const fn new(code: u16) -> Self {
        Rcode(code & 0x0fff)
    }

    /// The code from a header's low 4 bits (the flags' second byte).
    pub const fn from_header(flags_low: u8) -> Self {
        Rcode((flags_low & 0x0f) as u16)
    }

    /// The number.
    pub const fn code(self) -> u16 {
        self.0
    }

    /// The 4 bits that go in the header.
    pub const fn header_bits(self) -> u16 {
        self.0 & 0x0f
    }

    /// The 8 bits that go in the OPT record's TTL field.
    pub const fn extended_bits(self) -> u8 {
        (self.0 >> 4) as u8
    }

    /// Whether only an OPT record can carry it (a code above 15).
    pub const fn is_extended(self) -> bool {
        self.0 > 15
    }

    /// The mnemonic, for logs and metric labels (a fixed set: clients cannot grow it).
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            6 => "YXDOMAIN",
            9 => "NOTAUTH",
            16 => "BADVERS",
            23 => "BADCOOKIE",
            _ => "OTHER",
        }
    }

    /// The header RCODE of a complete message, for metrics; `None` without a header.
    pub fn of_message(message: &[u8]) -> Option<Self> {
        message.get(3).map(|flags| Self::from_header(*flags))
    }
}

impl fmt::Debug for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            "OTHER" => write!(f, "RCODE{}", self.0),
            name => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_codes_split_between_header_and_opt() {
        assert_eq!(Rcode::BADVERS.header_bits(), 0);
        assert_eq!(Rcode::BADVERS.extended_bits(), 1);
        assert!(Rcode::BADVERS.is_extended());
        assert_eq!(Rcode::BADCOOKIE.header_bits(), 7);
        assert_eq!(Rcode::BADCOOKIE.extended_bits(), 1);
        assert!(!Rcode::REFUSED.is_extended());
        assert_eq!(Rcode::from_header(0x83), Rcode::NXDOMAIN);
        assert_eq!(Rcode::new(0xf001).code(), 1);
        assert_eq!(Rcode::new(99).to_string(), "RCODE99");
        assert_eq!(Rcode::SERVFAIL.to_string(), "SERVFAIL");
    }
}
