//! Serial number arithmetic (RFC 1982): SOA serials wrap around, so "newer" is a
//! comparison within half the number space, not `>`.

/// True when `a` is newer than `b` (RFC 1982 §3.2, SERIAL_BITS = 32). For the one
/// pair the RFC leaves undefined (exactly half the space apart) it answers false, so
/// an ambiguous serial never replaces a zone.
pub(crate) fn is_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < (1 << 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_around() {
        assert!(is_newer(2, 1));
        assert!(!is_newer(1, 2));
        assert!(is_newer(0, u32::MAX));
        assert!(is_newer(5, u32::MAX - 5));
        assert!(!is_newer(7, 7));
        assert!(
            !is_newer(1 << 31, 0),
            "half the space apart is undefined: not newer"
        );
        assert!(!is_newer(0, 1 << 31));
    }

    proptest! {
        #[test]
        fn adding_less_than_half_the_space_is_newer(base: u32, step in 1u32..(1 << 31)) {
            prop_assert!(is_newer(base.wrapping_add(step), base));
            prop_assert!(!is_newer(base, base.wrapping_add(step)));
        }
    }
}
