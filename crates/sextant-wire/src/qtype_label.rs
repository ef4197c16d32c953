//! QTYPEs as metric labels: a fixed set, so a client cannot grow the label set.

/// The types a metrics label may name, in [`qtype_index`] order; every other type is
/// counted as `OTHER`, so a client cannot grow the label set.
pub const QTYPE_LABELS: [&str; 24] = [
    "A", "NS", "CNAME", "SOA", "PTR", "MX", "TXT", "AAAA", "SRV", "NAPTR", "DS", "RRSIG", "NSEC",
    "DNSKEY", "NSEC3", "TLSA", "SVCB", "HTTPS", "CAA", "ANY", "AXFR", "IXFR", "DNAME", "OTHER",
];

/// Where a QTYPE's label sits in [`QTYPE_LABELS`].
pub fn qtype_index(qtype: u16) -> usize {
    match qtype {
        1 => 0,
        2 => 1,
        5 => 2,
        6 => 3,
        12 => 4,
        15 => 5,
        16 => 6,
        28 => 7,
        33 => 8,
        35 => 9,
        43 => 10,
        46 => 11,
        47 => 12,
        48 => 13,
        50 => 14,
        52 => 15,
        64 => 16,
        65 => 17,
        257 => 18,
        255 => 19,
        252 => 20,
        251 => 21,
        39 => 22,
        _ => 23,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_qtype_has_its_own_label_and_the_rest_share_one() {
        assert_eq!(QTYPE_LABELS[qtype_index(1)], "A");
        assert_eq!(QTYPE_LABELS[qtype_index(28)], "AAAA");
        assert_eq!(QTYPE_LABELS[qtype_index(65)], "HTTPS");
        assert_eq!(QTYPE_LABELS[qtype_index(252)], "AXFR");
        assert_eq!(QTYPE_LABELS[qtype_index(39)], "DNAME");
        assert_eq!(QTYPE_LABELS[qtype_index(4242)], "OTHER");
        let mut seen: Vec<usize> = (0..=u16::MAX).map(qtype_index).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), QTYPE_LABELS.len(), "every label is reachable");
    }
}
