//! NSEC3 (RFC 5155): the hash of a name, and a zone's chain of NSEC3 records in hash
//! order, kept apart from the zone's names — an NSEC3 owner name is not a name of
//! the zone (RFC 5155 §7.2.8: it is answered as if it did not exist).

use ring::digest;

use crate::nodes::{Layered, Node};

/// SHA-1, the only NSEC3 hash algorithm (RFC 5155 §11).
pub(crate) const ALGORITHM_SHA1: u8 = 1;

/// The hashing parameters of a chain (its NSEC3PARAM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    pub(crate) algorithm: u8,
    pub(crate) iterations: u16,
    pub(crate) salt: Box<[u8]>,
}

impl Params {
    /// The parameters at the start of NSEC3 or NSEC3PARAM data, and where they end.
    pub(crate) fn read(rdata: &[u8]) -> Option<(Self, usize)> {
        let algorithm = *rdata.first()?;
        let iterations = u16::from_be_bytes([*rdata.get(2)?, *rdata.get(3)?]);
        let salt_len = usize::from(*rdata.get(4)?);
        let salt = rdata.get(5..5 + salt_len)?;
        Some((
            Self {
                algorithm,
                iterations,
                salt: salt.into(),
            },
            5 + salt_len,
        ))
    }

    /// The hash of `name` (uncompressed wire form; lower-cased here).
    pub(crate) fn hash(&self, name: &[u8]) -> [u8; 20] {
        let mut lower = [0u8; sextant_wire::MAX_NAME_LEN];
        let len = sextant_wire::lowercase_into(name, &mut lower);
        let mut context = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
        context.update(&lower[..len]);
        context.update(&self.salt);
        let mut hash = [0u8; 20];
        hash.copy_from_slice(context.finish().as_ref());
        for _ in 0..self.iterations {
            let mut context = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
            context.update(&hash);
            context.update(&self.salt);
            hash.copy_from_slice(context.finish().as_ref());
        }
        hash
    }
}

/// One NSEC3 record's owner and data.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// The owner's hash (its first label, base32hex-decoded).
    pub(crate) hash: Box<[u8]>,
    /// The owner in wire form, lower case.
    pub(crate) owner: Box<[u8]>,
    /// The NSEC3 RRset and its RRSIG.
    pub(crate) node: Node,
}

impl Entry {
    /// The next hashed owner name of the entry's NSEC3 record.
    pub(crate) fn next_hash(&self) -> Option<&[u8]> {
        let set = self.node.get(hickory_proto::rr::RecordType::NSEC3)?;
        let rdata = set.wire_rdatas().next()?;
        let (_, at) = Params::read(rdata)?;
        let len = usize::from(*rdata.get(at)?);
        rdata.get(at + 1..at + 1 + len)
    }
}

/// A zone's NSEC3 records, sorted by hash.
#[derive(Clone, Debug)]
pub(crate) struct Chain {
    pub(crate) params: Params,
    /// By hash; a version changed by a transfer shares the entries of the one it
    /// came from, as its names do.
    pub(crate) entries: Layered<Entry>,
}

impl Chain {
    /// The same chain with entries of its own (see [`Layered::compacted`]).
    pub(crate) fn compacted(&self) -> Self {
        Self {
            params: self.params.clone(),
            entries: self.entries.compacted(),
        }
    }
}

/// How one hash relates to the chain.
pub(crate) enum Position<'c> {
    /// An NSEC3 record has exactly this hash: the name exists.
    Matches(&'c Entry),
    /// This record's span covers the hash: no name has it.
    Covered(&'c Entry),
}

impl Chain {
    /// The record matching `hash`, or the one whose span covers it (the previous in
    /// hash order, the last one for hashes before the first). `None` for an empty
    /// chain.
    pub(crate) fn position(&self, hash: &[u8]) -> Option<Position<'_>> {
        let (_, previous) = self.entries.at_or_before(hash, |_| true)?;
        Some(if *previous.hash == *hash {
            Position::Matches(previous)
        } else {
            Position::Covered(previous)
        })
    }

    /// The record matching the hash of `name`, if any.
    pub(crate) fn matching(&self, name: &[u8]) -> Option<&Entry> {
        match self.position(&self.params.hash(name))? {
            Position::Matches(entry) => Some(entry),
            Position::Covered(_) => None,
        }
    }

    /// The record covering the hash of `name` (or matching it, for a name that
    /// exists after all).
    pub(crate) fn covering(&self, name: &[u8]) -> Option<&Entry> {
        match self.position(&self.params.hash(name))? {
            Position::Matches(entry) | Position::Covered(entry) => Some(entry),
        }
    }
}

/// The hash an NSEC3 owner's first label spells, when it is base32hex of the right
/// length for `algorithm`.
pub(crate) fn owner_hash(owner: &[u8], algorithm: u8) -> Option<Box<[u8]>> {
    let label_len = usize::from(*owner.first()?);
    let label = owner.get(1..1 + label_len)?;
    let upper: Vec<u8> = label.iter().map(u8::to_ascii_uppercase).collect();
    let hash = data_encoding::BASE32HEX_NOPAD.decode(&upper).ok()?;
    (algorithm == ALGORITHM_SHA1 && hash.len() == 20).then(|| hash.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// RFC 5155 Appendix A: salt aabbccdd, 12 iterations.
    fn params() -> Params {
        Params {
            algorithm: 1,
            iterations: 12,
            salt: vec![0xaa, 0xbb, 0xcc, 0xdd].into(),
        }
    }

    fn base32hex(hash: &[u8]) -> String {
        data_encoding::BASE32HEX_NOPAD
            .encode(hash)
            .to_ascii_lowercase()
    }

    #[test]
    fn hashes_match_rfc5155_appendix_a() {
        let p = params();
        assert_eq!(
            base32hex(&p.hash(b"\x07example\x00")),
            "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom"
        );
        assert_eq!(
            base32hex(&p.hash(b"\x01a\x07EXAMPLE\x00")),
            "35mthgpgcu1qg68fab165klnsnk3dpvl"
        );
        assert_eq!(
            base32hex(&p.hash(b"\x03ns1\x07example\x00")),
            "2t7b4g4vsa5smi47k61mv5bv1a22bojr"
        );
    }

    #[test]
    fn owner_labels_decode_in_either_case() {
        let owner = b"\x200P9MHAVEQVM6T7VBL5LOP2U3T2RP3TOM\x07example\x00";
        let hash = owner_hash(owner, 1).unwrap();
        assert_eq!(base32hex(&hash), "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom");
        assert!(owner_hash(b"\x03abc\x00", 1).is_none());
        assert!(owner_hash(owner, 2).is_none());
    }
}
