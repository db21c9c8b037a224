//! MinHash signatures of word n-gram shingles, and LSH bands over them.
//!
//! A shingle is the hash of `ngram` consecutive words (`text::words`). Permutation `i`
//! maps a shingle hash `x` to the high 32 bits of `a_i * x + b_i` (mod 2^64), with `a_i`
//! odd: multiply-shift hashing, which needs no modulo by a prime and vectorizes. The
//! signature is the minimum of each permutation over the text's shingles. The share of
//! equal positions in two signatures estimates the Jaccard similarity of their shingle
//! sets, with a standard error of at most 0.5 / sqrt(permutations) (0.047 for 112).
//!
//! LSH cuts the signature into `bands` bands of `rows` values; two texts become candidates
//! when any band is equal. The chance for a pair at similarity s is
//! `1 - (1 - s^rows)^bands`: with FineWeb's 14 x 8, 0.99 at s = 0.85 and 0.05 at s = 0.5.

use xxhash_rust::xxh3::xxh3_64;

use crate::text::{WordScratch, mix, ngram_hashes, word_hashes};

/// Settings of a MinHash LSH run; FineWeb's are the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinHashConfig {
    /// Words per shingle.
    pub ngram: usize,
    pub bands: usize,
    /// Signature values per band.
    pub rows: usize,
    /// Seeds the permutations: signatures compare only under the same seed.
    pub seed: u64,
}

impl Default for MinHashConfig {
    fn default() -> Self {
        MinHashConfig { ngram: 5, bands: 14, rows: 8, seed: 1 }
    }
}

impl MinHashConfig {
    pub fn permutations(&self) -> usize {
        self.bands * self.rows
    }

    /// Refuses settings that cannot work, with the rule they break.
    pub fn validate(&self) -> Result<(), String> {
        if self.ngram == 0 || self.ngram > 64 {
            return Err(format!("ngram must be 1 to 64 words, not {}", self.ngram));
        }
        if self.bands == 0 || self.rows == 0 || self.permutations() > 4096 {
            return Err(format!("bands x rows must be 1 to 4096 permutations, not {} x {}", self.bands, self.rows));
        }
        Ok(())
    }
}

/// Computes signatures under one set of permutations.
#[derive(Debug, Clone)]
pub struct MinHasher {
    ngram: usize,
    a: Vec<u64>,
    b: Vec<u64>,
}

/// Buffers a [`MinHasher`] reuses between texts.
#[derive(Debug, Default)]
pub struct MinHashScratch {
    words: WordScratch,
    hashes: Vec<u64>,
    shingles: Vec<u64>,
}

impl MinHasher {
    pub fn new(ngram: usize, permutations: usize, seed: u64) -> MinHasher {
        // splitmix64 from the seed: the same seed gives the same permutations everywhere.
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix(state)
        };
        let (a, b) = (0..permutations).map(|_| (next() | 1, next())).unzip();
        MinHasher { ngram, a, b }
    }

    pub fn from_config(config: &MinHashConfig) -> MinHasher {
        MinHasher::new(config.ngram, config.permutations(), config.seed)
    }

    pub fn permutations(&self) -> usize {
        self.a.len()
    }

    /// The signature of `text` into `out`; false (and `out` empty) when it has no words.
    pub fn signature(&self, text: &str, scratch: &mut MinHashScratch, out: &mut Vec<u32>) -> bool {
        scratch.hashes.clear();
        scratch.shingles.clear();
        out.clear();
        word_hashes(text, &mut scratch.words, &mut scratch.hashes);
        ngram_hashes(&scratch.hashes, self.ngram, &mut scratch.shingles);
        if scratch.shingles.is_empty() {
            return false;
        }
        out.resize(self.a.len(), u32::MAX);
        fold_shingles(&self.a, &self.b, &scratch.shingles, out);
        true
    }
}

/// The inner loop: every permutation of every shingle, into the running minima. On x86-64
/// CPUs with AVX2 the same code is compiled for AVX2 and picked at run time (3.3x faster,
/// measured; the baseline target has no vector 64-bit multiply). Same results either way.
fn fold_shingles(a: &[u64], b: &[u64], shingles: &[u64], minima: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, as checked just above.
        return unsafe { fold_shingles_avx2(a, b, shingles, minima) };
    }
    fold_shingles_portable(a, b, shingles, minima)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn fold_shingles_avx2(a: &[u64], b: &[u64], shingles: &[u64], minima: &mut [u32]) {
    fold_shingles_portable(a, b, shingles, minima)
}

#[inline(always)]
fn fold_shingles_portable(a: &[u64], b: &[u64], shingles: &[u64], minima: &mut [u32]) {
    for &x in shingles {
        for ((min, &a), &b) in minima.iter_mut().zip(a).zip(b) {
            *min = (*min).min((a.wrapping_mul(x).wrapping_add(b) >> 32) as u32);
        }
    }
}

/// One hash per band of `signature` (`bands` x `rows` values); the band's index is part
/// of its hash, so equal values in different bands do not collide.
pub fn band_hashes(signature: &[u32], bands: usize, rows: usize) -> impl Iterator<Item = u64> + '_ {
    signature
        .chunks_exact(rows)
        .take(bands)
        .enumerate()
        .map(|(band, values)| values.iter().fold(mix(band as u64 + 1), |h, &v| mix(h ^ v as u64)))
}

/// The low byte of each signature value: what verification keeps of a candidate
/// (b-bit MinHash, Li and König), a quarter of the memory of the whole signature.
pub fn low_bytes(signature: &[u32]) -> Box<[u8]> {
    signature.iter().map(|&v| v as u8).collect()
}

/// An estimate of the Jaccard similarity of two texts from the low bytes of their
/// signatures: positions agree when the minima do (probability J) or, otherwise, by
/// chance (1/256); the share of agreeing positions is corrected for the second.
pub fn estimated_jaccard(a: &[u8], b: &[u8]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    let agree = a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64;
    ((agree - 1.0 / 256.0) / (1.0 - 1.0 / 256.0)).max(0.0)
}

/// The exact Jaccard similarity of the `ngram` shingle sets of two texts (`jaccard()` in
/// SQL; dedup itself verifies with [`estimated_jaccard`]).
pub fn jaccard(a: &str, b: &str, ngram: usize) -> f64 {
    let set = |text: &str| {
        let mut scratch = MinHashScratch::default();
        word_hashes(text, &mut scratch.words, &mut scratch.hashes);
        ngram_hashes(&scratch.hashes, ngram, &mut scratch.shingles);
        scratch.shingles.into_iter().collect::<std::collections::HashSet<u64>>()
    };
    let (a, b) = (set(a), set(b));
    if a.is_empty() && b.is_empty() {
        return 0.0;
    }
    let shared = a.intersection(&b).count();
    shared as f64 / (a.len() + b.len() - shared) as f64
}

/// A document's 64-bit handle: the hash of its id. Keys sort with handles, not ids: 16
/// bytes a row instead of an id string (and string views that pin their source buffers).
/// Two ids share a handle with odds of about 3 in 10^8 at a million documents (n^2 / 2^65).
pub fn document(id: &str) -> u64 {
    xxh3_64(id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signature(hasher: &MinHasher, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        hasher.signature(text, &mut MinHashScratch::default(), &mut out);
        out
    }

    #[test]
    fn estimates_track_exact_jaccard() {
        let hasher = MinHasher::new(2, 512, 7);
        let words: Vec<String> = (0..400).map(|i| format!("w{i}")).collect();
        let base = words.join(" ");
        for changed in [0, 20, 60, 120, 200] {
            let mut edited = words.clone();
            for word in edited.iter_mut().step_by(400 / changed.max(1)).take(changed) {
                word.push('x');
            }
            let edited = edited.join(" ");
            let exact = jaccard(&base, &edited, 2);
            let (a, b) = (signature(&hasher, &base), signature(&hasher, &edited));
            let estimate = estimated_jaccard(&low_bytes(&a), &low_bytes(&b));
            // 512 permutations: standard error about 0.022.
            assert!((exact - estimate).abs() < 0.07, "{changed} changed: exact {exact:.3}, estimate {estimate:.3}");
        }
    }

    #[test]
    fn same_text_same_bands_and_seed_matters() {
        let config = MinHashConfig::default();
        let hasher = MinHasher::from_config(&config);
        let a = signature(&hasher, "The quick brown fox jumps over the lazy dog today");
        let b = signature(&hasher, "the QUICK brown fox, jumps over the lazy dog today!");
        assert_eq!(a.len(), 112);
        assert_eq!(a, b, "case and punctuation do not count");
        let bands: Vec<u64> = band_hashes(&a, config.bands, config.rows).collect();
        assert_eq!(bands.len(), 14);
        assert_eq!(bands, band_hashes(&b, 14, 8).collect::<Vec<_>>());
        let other = MinHasher::new(5, 112, 2);
        assert_ne!(a, signature(&other, "The quick brown fox jumps over the lazy dog today"));
    }

    #[test]
    fn the_vector_loop_computes_what_the_portable_one_does() {
        let hasher = MinHasher::new(5, 112, 3);
        let shingles: Vec<u64> = (0..1000).map(mix).collect();
        let (mut fast, mut portable) = (vec![u32::MAX; 112], vec![u32::MAX; 112]);
        fold_shingles(&hasher.a, &hasher.b, &shingles, &mut fast);
        fold_shingles_portable(&hasher.a, &hasher.b, &shingles, &mut portable);
        assert_eq!(fast, portable);
    }

    #[test]
    fn texts_without_words_have_no_signature() {
        let hasher = MinHasher::new(5, 16, 1);
        let mut out = vec![1];
        assert!(!hasher.signature(" $$ ... ", &mut MinHashScratch::default(), &mut out));
        assert!(out.is_empty());
        // Short texts still get one shingle, of all their words.
        assert!(hasher.signature("two words", &mut MinHashScratch::default(), &mut out));
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(MinHashConfig { ngram: 0, ..Default::default() }.validate().is_err());
        assert!(MinHashConfig { bands: 0, ..Default::default() }.validate().is_err());
        assert!(MinHashConfig { bands: 1000, rows: 10, ..Default::default() }.validate().is_err());
        assert!(MinHashConfig::default().validate().is_ok());
    }
}
