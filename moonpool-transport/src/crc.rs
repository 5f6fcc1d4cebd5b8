//! CRC-32C (Castagnoli) of a packet's body, the checksum of the wire format, with a fast path
//! for the short bodies RPC sends.
//!
//! Floor 1 (plumbing). The `crc32c` crate's hardware path aligns its input to 8 bytes with
//! byte-at-a-time steps and sets up its three-way interleaving even for a few dozen bytes, so a
//! 40-byte body read at an odd offset of the decoder's buffer takes up to fourteen dependent
//! one-byte steps and about 140 instructions. Here a body of at most [`SHORT_MAX`] bytes is read
//! eight bytes at a time from wherever it lies (x86-64 reads unaligned words at full speed),
//! then four, two and one: at most eight steps for 40 bytes, about 40 instructions a packet
//! with the call (callgrind). Longer bodies, and machines without SSE 4.2, use the crate. Both
//! give the same value for every input (the tests compare them at every length up to past
//! [`SHORT_MAX`], at sixteen offsets).

/// The longest body the short path handles; longer ones go to the `crc32c` crate, whose
/// interleaved path is faster on long inputs.
const SHORT_MAX: usize = 256;

/// The CRC-32C of `data` (as `crc32c::crc32c`).
#[inline]
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    crc32c_append(0, data)
}

/// The CRC-32C of the bytes hashed into `crc` followed by `data` (as `crc32c::crc32c_append`).
#[inline]
pub(crate) fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if data.len() <= SHORT_MAX && std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: `short_sse42` needs only the SSE 4.2 instructions (its `target_feature`),
        // which the check just above found on this CPU; it reads `data` through safe slice
        // methods only.
        return unsafe { short_sse42(crc, data) };
    }
    crc32c::crc32c_append(crc, data)
}

/// The short path: eight bytes a step, then four, two and one (little-endian words, which is
/// the order the CRC instructions take the bytes in).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn short_sse42(crc: u32, mut data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u16, _mm_crc32_u32, _mm_crc32_u64};
    let mut wide = u64::from(!crc);
    while let Some((word, rest)) = data.split_first_chunk::<8>() {
        wide = _mm_crc32_u64(wide, u64::from_le_bytes(*word));
        data = rest;
    }
    // The 64-bit step leaves the CRC in the low half.
    #[allow(clippy::cast_possible_truncation)]
    let mut state = wide as u32;
    if let Some((word, rest)) = data.split_first_chunk::<4>() {
        state = _mm_crc32_u32(state, u32::from_le_bytes(*word));
        data = rest;
    }
    if let Some((word, rest)) = data.split_first_chunk::<2>() {
        state = _mm_crc32_u16(state, u16::from_le_bytes(*word));
        data = rest;
    }
    if let Some(&byte) = data.first() {
        state = _mm_crc32_u8(state, byte);
    }
    !state
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes from a fixed-seed generator (xorshift), so the test is the same every run.
    fn bytes(count: usize, mut seed: u64) -> Vec<u8> {
        (0..count)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed.to_le_bytes()[3]
            })
            .collect()
    }

    #[test]
    fn test_crc32c_matches_the_crate_at_every_length_and_offset() {
        let data = bytes(SHORT_MAX + 64, 0x9E37_79B9_7F4A_7C15);
        for start in 0..16 {
            for end in start..data.len() {
                let slice = &data[start..end];
                assert_eq!(crc32c(slice), crc32c::crc32c(slice), "bytes {start}..{end}");
            }
        }
    }

    #[test]
    fn test_crc32c_append_matches_the_crate() {
        let data = bytes(600, 7);
        for split in [0, 1, 7, 8, 9, 16, 31, 100, 255, 256, 257, 599, 600] {
            let (head, tail) = data.split_at(split);
            let seed = crc32c(head);
            assert_eq!(
                crc32c_append(seed, tail),
                crc32c::crc32c_append(crc32c::crc32c(head), tail),
                "split at {split}"
            );
            assert_eq!(crc32c_append(seed, tail), crc32c::crc32c(&data));
        }
    }

    #[test]
    fn test_crc32c_known_value() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }
}
