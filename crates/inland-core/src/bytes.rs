//! Comparing short byte strings read off the wire. A slice `==` is a call into libc's
//! `memcmp`, which costs more than the comparison itself for the few bytes of a VSS path
//! or a protobuf field; per sample of every upload, that shows.

/// `a == b`, inlined, 8 bytes at a time; `a == b` when shorter than 8 bytes.
#[inline(always)]
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && same_length_equal(a, b)
}

/// `a == b` for slices of one length. Paths of one length mostly differ at the end
/// ("….Latitude", "….Altitude"), so the last 8 bytes go first.
#[inline(always)]
pub(crate) fn same_length_equal(a: &[u8], b: &[u8]) -> bool {
    debug_assert_eq!(a.len(), b.len());
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()))
    };
    if a.len() < 8 {
        return a == b;
    }
    let last = a.len() - 8;
    word(a, last) == word(b, last) && (0..last).step_by(8).all(|at| word(a, at) == word(b, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_is_slice_equality() {
        let text = b"Vehicle.CurrentLocation.Latitude and more";
        for a_len in 0..text.len() {
            for b_len in 0..text.len() {
                let (a, b) = (&text[..a_len], &text[..b_len]);
                assert_eq!(equal(a, b), a == b, "{a_len} vs {b_len}");
                // One byte off anywhere.
                for at in 0..b_len {
                    let mut c = b.to_vec();
                    c[at] ^= 1;
                    assert_eq!(
                        equal(a, &c),
                        a == &c[..],
                        "{a_len} vs {b_len}, {at} flipped"
                    );
                }
            }
        }
    }
}
