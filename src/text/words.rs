//! Words as dedup and decontamination compare them: maximal runs of letters and digits
//! (any script), lower-cased, after Unicode NFC. Punctuation, white space and LaTeX
//! markup separate words, so `Janet's ducks` and `janets ducks` differ but `\frac{3}{4}`
//! and `\frac {3} {4}` agree. Digits are kept as they are: math problems that differ
//! only in their numbers are different problems (FineWeb maps every digit to 0; we do not).
//!
//! Each word becomes a 64-bit hash; word n-grams are hashes of consecutive word hashes.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use xxhash_rust::xxh3::xxh3_64;

use super::block::{low_bits, range_masks};
use super::normalize::in_nfc;

/// Buffers reused between texts: hot loops split millions of them.
#[derive(Debug, Default)]
pub struct WordScratch {
    word: Vec<u8>,
    composed: String,
}

/// `char::is_alphanumeric`, from a bit set for the Basic Multilingual Plane: the standard
/// library searches a table of ranges for each character, which was 4% of a
/// decontamination pass over math text (symbols, dashes and quotes are non-ASCII too).
fn is_alphanumeric(c: char) -> bool {
    static BMP: OnceLock<Box<[u64]>> = OnceLock::new();
    let Ok(code) = u16::try_from(u32::from(c)) else { return c.is_alphanumeric() };
    let bits = BMP.get_or_init(|| {
        let mut bits = vec![0u64; 1 << 10];
        for c in (0..=u16::MAX).filter_map(|code| char::from_u32(code.into())).filter(|c| c.is_alphanumeric()) {
            bits[usize::from(c as u16 >> 6)] |= 1 << (c as u16 & 63);
        }
        bits.into_boxed_slice()
    });
    bits[usize::from(code >> 6)] & (1 << (code & 63)) != 0
}

/// The word in progress while [`for_each_word`] walks a text.
#[derive(Clone, Copy)]
enum Run {
    /// Between words.
    Gap,
    /// `bytes[start..i]`, ASCII already in lower case: passed to `f` without a copy.
    Slice(usize),
    /// In `WordScratch::word`, lower-cased (upper case or non-ASCII letters met).
    Copied,
}

/// Calls `f` with each word of `text`, lower-cased, as UTF-8 bytes.
///
/// ASCII is classified a block at a time and words are found from the bit masks, so the
/// loop branches per word, not per byte (a byte loop was a fifth of decontamination). A
/// non-ASCII character is handled on its own.
pub fn for_each_word(text: &str, scratch: &mut WordScratch, mut f: impl FnMut(&[u8])) {
    let text = in_nfc(text, &mut scratch.composed);
    let word = &mut scratch.word;
    word.clear();
    let bytes = text.as_bytes();
    let mut run = Run::Gap;
    let mut i = 0;
    while i < bytes.len() {
        let [digit, lower, upper, high] =
            range_masks(&bytes[i..], [(b'0', b'9'), (b'a', b'z'), (b'A', b'Z'), (0x80, 0xff)]);
        // The ASCII bytes before the first non-ASCII one (or the end of the text).
        let n = (high.trailing_zeros() as usize).min(bytes.len() - i) as u32;
        if n == 0 {
            let c = text[i..].chars().next().expect("i is on a character boundary");
            if is_alphanumeric(c) {
                if let Run::Slice(start) = run {
                    word.extend_from_slice(&bytes[start..i]);
                }
                for lower in c.to_lowercase() {
                    word.extend_from_slice(lower.encode_utf8(&mut [0; 4]).as_bytes());
                }
                run = Run::Copied;
            } else {
                emit(run, &bytes[..i], word, &mut f);
                run = Run::Gap;
            }
            i += c.len_utf8();
            continue;
        }
        let mut rest = (digit | lower | upper) & low_bits(n);
        // The word in progress goes on through the block's first word bytes.
        if !matches!(run, Run::Gap) {
            let len = (!rest).trailing_zeros().min(n);
            match run {
                Run::Slice(start) if upper & low_bits(len) != 0 => {
                    word.extend_from_slice(&bytes[start..i]);
                    run = Run::Copied;
                }
                _ => {}
            }
            if matches!(run, Run::Copied) {
                word.extend(bytes[i..i + len as usize].iter().map(u8::to_ascii_lowercase));
            }
            if len == n {
                i += n as usize;
                continue;
            }
            emit(run, &bytes[..i + len as usize], word, &mut f);
            run = Run::Gap;
            rest &= !low_bits(len);
        }
        while rest != 0 {
            let start = rest.trailing_zeros();
            let len = (!(rest >> start)).trailing_zeros();
            let span = &bytes[i + start as usize..i + (start + len) as usize];
            let upper_case = (upper >> start) & low_bits(len) != 0;
            if start + len == n {
                // It may go on past the block.
                if upper_case {
                    word.extend(span.iter().map(u8::to_ascii_lowercase));
                    run = Run::Copied;
                } else {
                    run = Run::Slice(i + start as usize);
                }
                break;
            }
            if upper_case {
                word.extend(span.iter().map(u8::to_ascii_lowercase));
                f(word);
                word.clear();
            } else {
                f(span);
            }
            rest &= !(low_bits(len) << start);
        }
        i += n as usize;
    }
    emit(run, bytes, word, &mut f);
}

/// Passes the word in progress, which ends at `before.len()`, to `f`.
fn emit(run: Run, before: &[u8], word: &mut Vec<u8>, f: &mut impl FnMut(&[u8])) {
    match run {
        Run::Gap => {}
        Run::Slice(start) => f(&before[start..]),
        Run::Copied => {
            f(word);
            word.clear();
        }
    }
}

/// The hash of each word of `text`, appended to `out`.
pub fn word_hashes(text: &str, scratch: &mut WordScratch, out: &mut Vec<u64>) {
    for_each_word(text, scratch, |word| out.push(xxh3_64(word)));
}

/// The words of `text` as strings (benchmark items keep theirs to quote matches).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_word(text, &mut WordScratch::default(), |word| out.push(String::from_utf8_lossy(word).into_owned()));
    out
}

/// Multiplier of the polynomial n-gram hash (odd, so no word's bits are shifted out).
const BASE: u64 = 0x0000_0100_0000_01b3;

/// The hash of the word sequence `words` (word hashes): an n-gram, or a whole text. It is
/// a polynomial in the word hashes, so [`for_each_ngram`] slides it along a text in
/// constant time per word, then mixed so that every bit depends on every word.
pub fn sequence_hash(words: &[u64]) -> u64 {
    mix(words.iter().fold(0, |h: u64, &w| h.wrapping_mul(BASE).wrapping_add(w)))
}

/// Calls `f(position, hash)` for each run of `n` consecutive words, the hash equal to
/// [`sequence_hash`] of the run. Nothing when there are fewer than `n` words.
pub fn for_each_ngram(words: &[u64], n: usize, mut f: impl FnMut(usize, u64)) {
    if n == 0 || words.len() < n {
        return;
    }
    // BASE^(n-1): the weight of the word that leaves the window.
    let top = (1..n).fold(1u64, |p, _| p.wrapping_mul(BASE));
    let mut h = words[..n].iter().fold(0, |h: u64, &w| h.wrapping_mul(BASE).wrapping_add(w));
    f(0, mix(h));
    for i in n..words.len() {
        h = h.wrapping_sub(words[i - n].wrapping_mul(top)).wrapping_mul(BASE).wrapping_add(words[i]);
        f(i + 1 - n, mix(h));
    }
}

/// The hash of each run of `n` consecutive words, appended to `out`. A text shorter than
/// `n` words (but not empty) gives one hash, of all its words, so short texts still compare.
pub fn ngram_hashes(words: &[u64], n: usize, out: &mut Vec<u64>) {
    if words.is_empty() {
        return;
    }
    if words.len() <= n {
        out.push(sequence_hash(words));
        return;
    }
    for_each_ngram(words, n, |_, hash| out.push(hash));
}

/// splitmix64's finalizer: every input bit flips about half of the output bits.
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A hasher for keys that are already hashes (xxh3): it passes them through.
#[derive(Default, Clone, Copy)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64(bytes); // not used for u64 keys; correct for any other
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub type Prehashed = BuildHasherDefault<PassThrough>;

#[cfg(test)]
mod tests {
    use unicode_normalization::UnicodeNormalization;

    use super::*;

    #[test]
    fn words_are_lower_cased_letter_and_digit_runs() {
        assert_eq!(words("Janet's ducks lay 16 eggs."), ["janet", "s", "ducks", "lay", "16", "eggs"]);
        assert_eq!(words("$\\frac{3}{4}$ vs \\frac {3} {4}"), ["frac", "3", "4", "vs", "frac", "3", "4"]);
        assert_eq!(words("ÉCOLE Straße 東京 x²"), ["école", "straße", "東京", "x²"]);
        // A decomposed accent composes first, so it stays inside its word.
        assert_eq!(words("Cafe\u{301} au lait"), ["café", "au", "lait"]);
        assert!(words("  ... $$ \n").is_empty());
        // ASCII runs beside non-ASCII characters, inside a word or between two.
        assert_eq!(words("naïve—ABC42—x éa Ab€"), ["naïve", "abc42", "x", "éa", "ab"]);
    }

    #[test]
    fn alphanumeric_table_agrees_with_the_standard_library() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(is_alphanumeric(c), c.is_alphanumeric(), "{c:?} U+{:04X}", c as u32);
        }
    }

    /// Words character by character, as the module doc defines them.
    fn reference_words(text: &str) -> Vec<String> {
        let text: String = text.nfc().collect();
        let mut out = vec![String::new()];
        for c in text.chars() {
            if c.is_alphanumeric() {
                out.last_mut().unwrap().extend(c.to_lowercase());
            } else if !out.last().unwrap().is_empty() {
                out.push(String::new());
            }
        }
        out.retain(|w| !w.is_empty());
        out
    }

    #[test]
    fn words_of_real_text_match_the_definition() {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");
        for file in ["general/wikitext2_test.txt", "web/whitehead_intro_math.tex", "problems/math_test.jsonl"] {
            let bytes = std::fs::read(format!("{data}/{file}")).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            for line in text.lines() {
                assert_eq!(words(line), reference_words(line), "{file}: {line}");
            }
        }
    }

    #[test]
    fn words_of_generated_text_match_the_definition() {
        // Runs of every class, long enough to cross the 64-byte blocks in every way.
        let palette = [
            "a",
            "z",
            "q",
            "A",
            "Z",
            "0",
            "9",
            " ",
            ".",
            "'",
            "@",
            "[",
            "`",
            "{",
            "\n",
            "\u{7f}",
            "é",
            "É",
            "ß",
            "東",
            "²",
            "—",
            "€",
            "\u{301}",
            "\u{a0}",
            "ǅ",
            "İ",
            "🙂",
            "ab",
            "xyzxyzxyz",
            "ABCDEFGH",
            "0123456789",
        ];
        for text in crate::text::generated_texts(&palette, 120, 20_000) {
            assert_eq!(words(&text), reference_words(&text), "{text:?}");
        }
    }

    #[test]
    fn ngrams_slide_and_short_texts_give_one() {
        let mut scratch = WordScratch::default();
        let mut hashes = Vec::new();
        word_hashes("a b c d", &mut scratch, &mut hashes);
        let mut grams = Vec::new();
        ngram_hashes(&hashes, 2, &mut grams);
        assert_eq!(grams.len(), 3);
        assert_eq!(grams[0], sequence_hash(&hashes[0..2]));
        assert_ne!(grams[0], grams[1]);
        grams.clear();
        ngram_hashes(&hashes, 13, &mut grams);
        assert_eq!(grams, [sequence_hash(&hashes)]);
        grams.clear();
        ngram_hashes(&[], 13, &mut grams);
        assert!(grams.is_empty());
        let mut slid = Vec::new();
        let many: Vec<u64> = (0..50).map(mix).collect();
        for_each_ngram(&many, 13, |position, hash| {
            assert_eq!(hash, sequence_hash(&many[position..position + 13]));
            slid.push(hash);
        });
        assert_eq!(slid.len(), 38);
        // Order matters: "a b" and "b a" are different bigrams.
        assert_ne!(sequence_hash(&hashes[0..2]), sequence_hash(&[hashes[1], hashes[0]]));
    }
}
