//! Bytes classified 64 at a time: bit k of a mask for byte k of a block. Loops that scan
//! text for a few kinds of bytes (word characters, white space) branch per found byte
//! instead of per byte; a byte loop's mispredicted ends were most of their cost.

/// Bytes in a block, one bit each in a `u64`.
pub const BLOCK: usize = 64;

/// For each `(lo, hi)` of `ranges`, the bytes of `bytes`' first block that lie in
/// `lo..=hi`. Bytes past the end of `bytes` read as 0, which no caller's range holds.
#[inline(always)]
pub fn range_masks<const N: usize>(bytes: &[u8], ranges: [(u8, u8); N]) -> [u64; N] {
    let mut padded = [0u8; BLOCK];
    let block = match bytes.first_chunk::<BLOCK>() {
        Some(full) => full,
        None => {
            padded[..bytes.len()].copy_from_slice(bytes);
            &padded
        }
    };
    classify(block, ranges)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify<const N: usize>(block: &[u8; BLOCK], ranges: [(u8, u8); N]) -> [u64; N] {
    use std::arch::x86_64::*;
    let mut masks = [0u64; N];
    for (k, chunk) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of x86-64, and the load reads the 16 bytes of `chunk`.
        unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            for (mask, &(lo, hi)) in masks.iter_mut().zip(&ranges) {
                // x in lo..=hi exactly when x - lo (wrapping) <= hi - lo, unsigned.
                let shifted = _mm_sub_epi8(v, _mm_set1_epi8(lo as i8));
                let inside = _mm_cmpeq_epi8(_mm_min_epu8(shifted, _mm_set1_epi8(hi.wrapping_sub(lo) as i8)), shifted);
                *mask |= u64::from(_mm_movemask_epi8(inside) as u16) << (16 * k);
            }
        }
    }
    masks
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn classify<const N: usize>(block: &[u8; BLOCK], ranges: [(u8, u8); N]) -> [u64; N] {
    let mut masks = [0u64; N];
    for (k, &b) in block.iter().enumerate() {
        for (mask, &(lo, hi)) in masks.iter_mut().zip(&ranges) {
            *mask |= u64::from((lo..=hi).contains(&b)) << k;
        }
    }
    masks
}

/// The low `n` bits (n <= 64).
pub fn low_bits(n: u32) -> u64 {
    if n >= 64 { u64::MAX } else { (1 << n) - 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_agree_with_plain_range_tests() {
        let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).chain([b'a', 0xe2, b' ']).collect();
        let ranges = [(b'0', b'9'), (0x80, 0xff), (b' ', b' '), (1, 8), (0xe1, 0xe3)];
        for start in 0..bytes.len() {
            let masks = range_masks(&bytes[start..], ranges);
            for (mask, (lo, hi)) in masks.iter().zip(ranges) {
                for k in 0..BLOCK {
                    let inside = bytes.get(start + k).is_some_and(|b| (lo..=hi).contains(b));
                    assert_eq!(mask >> k & 1 == 1, inside, "byte {k} of the block at {start}, range {lo}..={hi}");
                }
            }
        }
    }
}
