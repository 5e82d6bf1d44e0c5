//! Deterministic memory patterns: every 64-bit word is a hash of its global word index
//! and a generation number, so a stray write, a lost page or a page from the wrong
//! place (e.g. after a bad restore) is caught and located to the byte.

/// The expected value of word `index` in generation `gen` (splitmix64 finaliser).
#[inline]
pub fn word(index: u64, gen: u64) -> u64 {
    let mut z = index ^ gen.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes the pattern into `buf`, whose first word has global index `first`.
pub fn fill(buf: &mut [u64], first: u64, gen: u64) {
    for (i, w) in buf.iter_mut().enumerate() {
        *w = word(first + i as u64, gen);
    }
}

/// Checks `buf` against the pattern. On mismatch returns the byte offset, relative to
/// the start of `buf`, of the first byte (in memory order) that differs.
pub fn verify(buf: &[u64], first: u64, gen: u64) -> Result<(), usize> {
    for (i, &w) in buf.iter().enumerate() {
        let want = word(first + i as u64, gen);
        if w != want {
            let got = w.to_ne_bytes();
            let exp = want.to_ne_bytes();
            let b = (0..8).find(|&b| got[b] != exp[b]).unwrap_or(0);
            return Err(i * 8 + b);
        }
    }
    Ok(())
}

/// Fills a byte buffer (the io workload's file contents) with the pattern.
pub fn fill_bytes(buf: &mut [u8], gen: u64) {
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let w = word(i as u64, gen).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_mut(buf: &mut [u64]) -> &mut [u8] {
        // SAFETY: u8 has no alignment or validity requirements; the length covers
        // exactly the same memory.
        unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), buf.len() * 8) }
    }

    #[test]
    fn clean_pattern_verifies() {
        let mut buf = vec![0u64; 4096];
        fill(&mut buf, 100, 7);
        assert_eq!(verify(&buf, 100, 7), Ok(()));
        assert_eq!(verify(&[], 0, 0), Ok(()));
    }

    #[test]
    fn wrong_generation_or_base_is_caught_at_zero() {
        let mut buf = vec![0u64; 64];
        fill(&mut buf, 0, 1);
        assert_eq!(verify(&buf, 0, 2), Err(0));
        assert_eq!(verify(&buf, 1, 1), Err(0));
    }

    #[test]
    fn corruption_is_located_to_the_byte() {
        let mut buf = vec![0u64; 1024];
        for offset in [0usize, 1, 7, 8, 13, 4095, 8191] {
            fill(&mut buf, 0, 3);
            bytes_mut(&mut buf)[offset] ^= 0x40;
            assert_eq!(verify(&buf, 0, 3), Err(offset), "offset {offset}");
        }
    }

    #[test]
    fn first_corruption_wins() {
        let mut buf = vec![0u64; 1024];
        fill(&mut buf, 0, 0);
        bytes_mut(&mut buf)[5000] = !bytes_mut(&mut buf)[5000];
        bytes_mut(&mut buf)[6000] = !bytes_mut(&mut buf)[6000];
        assert_eq!(verify(&buf, 0, 0), Err(5000));
    }

    #[test]
    fn zeroed_page_is_caught() {
        // A page that comes back zero-filled (lost in a dump) must not pass.
        let mut buf = vec![0u64; 2048];
        fill(&mut buf, 0, 0);
        for w in &mut buf[512..1024] {
            *w = 0;
        }
        let off = verify(&buf, 0, 0).unwrap_err();
        assert!((4096..4096 + 8).contains(&off), "{off}");
    }

    #[test]
    fn fill_bytes_matches_words() {
        let mut b = [0u8; 20];
        fill_bytes(&mut b, 9);
        assert_eq!(&b[..8], &word(0, 9).to_le_bytes());
        assert_eq!(&b[16..], &word(2, 9).to_le_bytes()[..4]);
    }
}
