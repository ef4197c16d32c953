//! The fixed 12-byte message header and its flag bits.

/// Length of the header in bytes.
pub const HEADER_LEN: usize = 12;

/// Bits of the header's flags word (bytes 2 and 3).
pub mod flags {
    /// This message is a response.
    pub const QR: u16 = 0x8000;
    /// Where the 4-bit opcode sits.
    pub const OPCODE_MASK: u16 = 0x7800;
    /// Authoritative answer.
    pub const AA: u16 = 0x0400;
    /// Truncated: the client should ask again over TCP.
    pub const TC: u16 = 0x0200;
    /// Recursion desired.
    pub const RD: u16 = 0x0100;
    /// Recursion available.
    pub const RA: u16 = 0x0080;
    /// Authentic data (RFC 4035 §3.2.3).
    pub const AD: u16 = 0x0020;
    /// Checking disabled (RFC 4035 §3.2.2).
    pub const CD: u16 = 0x0010;
    /// Where the low 4 bits of the RCODE sit.
    pub const RCODE_MASK: u16 = 0x000f;
}

/// Opcodes the servers act on.
pub mod opcode {
    /// A standard query.
    pub const QUERY: u8 = 0;
    /// A NOTIFY (RFC 1996).
    pub const NOTIFY: u8 = 4;
}

/// The fixed 12-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The query ID, echoed in the response.
    pub id: u16,
    /// Bytes 2 and 3: QR, opcode, AA, TC, RD, RA, Z, AD, CD, RCODE (see [`flags`]).
    pub flags: u16,
    /// Entries in the question section.
    pub qdcount: u16,
    /// Records in the answer section.
    pub ancount: u16,
    /// Records in the authority section.
    pub nscount: u16,
    /// Records in the additional section.
    pub arcount: u16,
}

impl Header {
    /// QR is set: a response, never to be answered.
    pub fn is_response(&self) -> bool {
        self.flags & flags::QR != 0
    }
    /// The 4-bit opcode.
    pub fn opcode(&self) -> u8 {
        ((self.flags & flags::OPCODE_MASK) >> 11) as u8
    }
    /// RD: the client asks for recursion.
    pub fn recursion_desired(&self) -> bool {
        self.flags & flags::RD != 0
    }
    /// CD: the client does its own validation.
    pub fn checking_disabled(&self) -> bool {
        self.flags & flags::CD != 0
    }
}

/// Reads the header, or `None` when the packet is too short to have one (silence).
pub fn parse_header(packet: &[u8]) -> Option<Header> {
    let word = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*packet.get(i)?, *packet.get(i + 1)?]))
    };
    Some(Header {
        id: word(0)?,
        flags: word(2)?,
        qdcount: word(4)?,
        ancount: word(6)?,
        nscount: word(8)?,
        arcount: word(10)?,
    })
}

/// Reads the 16-bit count at `at` (4, 6, 8 or 10) of a message's header.
pub(crate) fn count_at(message: &[u8], at: usize) -> Option<usize> {
    let bytes = message.get(at..at + 2)?;
    Some(usize::from(u16::from_be_bytes([bytes[0], bytes[1]])))
}
