//! `normalize_text`: Unicode NFC, every run of Unicode white space (tabs, newlines,
//! NBSP, U+2028, ideographic space...) as one ASCII space, no leading or trailing space.
//! Case, punctuation and LaTeX are kept: `\frac{a}{b}` and `\frac{A}{B}` are different
//! mathematics. Ingest ids and exact dedup call this one function; near-dup detection and
//! decontamination compare the coarser words of `words.rs`.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};
use xxhash_rust::xxh3::xxh3_128;

use super::block::{BLOCK, range_masks};

pub fn normalize_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    normalize_text_into(text, &mut out);
    out
}

/// As [`normalize_text`], reusing `out`'s allocation (hot loops normalize millions of texts).
pub fn normalize_text_into(text: &str, out: &mut String) {
    let mut bytes = std::mem::take(out).into_bytes();
    bytes.clear();
    push_normalized(text, &mut String::new(), &mut bytes);
    *out = String::from_utf8(bytes).expect("normalization copies whole characters");
}

/// A content id: xxh3-128 over the parts, each normalized, separated by a byte that
/// normalized text never contains, as 32 lower-case hex digits. `scratch` is reused
/// between calls: hashing one buffer at once is several times faster than feeding a
/// streaming hasher word by word.
pub fn content_id(parts: &[&str], scratch: &mut IdScratch) -> String {
    scratch.bytes.clear();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            scratch.bytes.push(0xff);
        }
        push_normalized(part, &mut scratch.composed, &mut scratch.bytes);
    }
    format!("{:032x}", xxh3_128(&scratch.bytes))
}

/// Buffers [`content_id`] reuses.
#[derive(Debug, Default)]
pub struct IdScratch {
    bytes: Vec<u8>,
    composed: String,
}

/// `text` in Unicode NFC: `text` itself when the quick check says it already is (almost
/// all real text), else its composition, made in `composed`.
pub(super) fn in_nfc<'a>(text: &'a str, composed: &'a mut String) -> &'a str {
    if text.is_ascii() || is_nfc_quick(text.chars()) == IsNormalized::Yes {
        return text;
    }
    composed.clear();
    composed.extend(text.nfc());
    composed
}

/// Appends the normalized `text` to `out`, using `composed` for its NFC form if needed.
fn push_normalized(text: &str, composed: &mut String, out: &mut Vec<u8>) {
    let text = in_nfc(text, composed);
    let bytes = text.as_bytes();
    out.reserve(bytes.len());
    let start = out.len();
    // White space seen since the last byte copied, and some byte copied before it.
    let mut space = false;
    let mut i = 0;
    while i < bytes.len() {
        // Copy in one go the bytes that need no change: all but those that may start
        // white space, with single spaces between them (most text is mostly that).
        let [blank, control, lead_c2, lead_e] =
            range_masks(&bytes[i..], [(b' ', b' '), (b'\t', b'\r'), (0xc2, 0xc2), (0xe1, 0xe3)]);
        let valid = (bytes.len() - i).min(BLOCK) as u32;
        let other = control | lead_c2 | lead_e;
        // A space is copied when a plain byte follows it in the block, and it neither
        // starts the output nor continues white space.
        let mut special = other | blank & ((blank | other) >> 1 | 1 << (valid - 1));
        if space || out.len() == start {
            special |= blank & 1;
        }
        let plain = special.trailing_zeros().min(valid) as usize;
        if plain > 0 {
            if space {
                out.push(b' ');
                space = false;
            }
            out.extend_from_slice(&bytes[i..i + plain]);
            i += plain;
            continue;
        }
        let (is_space, width) = if control & 1 != 0 || blank & 1 != 0 {
            (true, 1)
        } else {
            let c = text[i..].chars().next().expect("a lead byte starts a character");
            (c.is_whitespace(), c.len_utf8())
        };
        if is_space {
            space = out.len() > start;
        } else {
            if space {
                out.push(b' ');
                space = false;
            }
            out.extend_from_slice(&bytes[i..i + width]);
        }
        i += width;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_every_kind_of_white_space() {
        let text = " a\tb\n\nc\u{a0}d\u{2028}e\u{3000}f\u{85}g\r\n ";
        assert_eq!(normalize_text(text), "a b c d e f g");
        assert_eq!(normalize_text(""), "");
        assert_eq!(normalize_text(" \n\t "), "");
    }

    #[test]
    fn composes_unicode_and_keeps_latex_and_case() {
        // "e" + combining acute becomes the precomposed "é".
        assert_eq!(normalize_text("Cafe\u{301}"), "Caf\u{e9}");
        assert_eq!(normalize_text("$\\frac{A}{B}$"), "$\\frac{A}{B}$");
    }

    #[test]
    fn agrees_with_a_plain_reference_on_mixed_text() {
        let texts = [
            "",
            " x ",
            "a b c",
            "a  b",
            "a \n b",
            "  lead and trail  ",
            "x\u{a0} y é  ü",
            "a\u{b}b",
            "tab\tthen\u{2029}para",
            "Å\u{30a}x \u{3000} y",
            "\u{1c}kept\u{1c}",
        ];
        for text in texts {
            assert_eq!(normalize_text(text), reference(text), "{text:?}");
        }
    }

    /// The module doc's definition, character by character.
    fn reference(text: &str) -> String {
        let composed: String = text.nfc().collect();
        composed.split(char::is_whitespace).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn agrees_with_the_reference_on_generated_text() {
        // White space of every kind, bytes that lead both white space and other characters
        // (U+00A9, U+2014, U+3001), and runs long enough to cross the 64-byte blocks.
        let palette = [
            " ",
            "  ",
            "\t",
            "\n",
            "\r\n",
            "\u{b}",
            "\u{c}",
            "\u{1c}",
            "\u{85}",
            "\u{a0}",
            "\u{a9}",
            "\u{1680}",
            "\u{2003}",
            "\u{2014}",
            "\u{2028}",
            "\u{202f}",
            "\u{3000}",
            "\u{3001}",
            "é",
            "e\u{301}",
            "x",
            "word",
            "$\\frac{a}{b}$",
            "abcdefghijklmnopqrstuvwxyz0123456789",
            "0",
        ];
        for text in crate::text::generated_texts(&palette, 100, 20_000) {
            assert_eq!(normalize_text(&text), reference(&text), "{text:?}");
        }
    }

    #[test]
    fn ids_ignore_spacing_but_not_content_or_part_boundaries() {
        let mut s = IdScratch::default();
        let a = content_id(&["gsm8k", "What is 2+2?", "4"], &mut s);
        assert_eq!(a.len(), 32);
        assert_eq!(a, content_id(&["gsm8k", "What  is 2+2?\n", " 4"], &mut s));
        assert_ne!(a, content_id(&["gsm8k", "What is 2+3?", "4"], &mut s));
        assert_ne!(content_id(&["ab", "c"], &mut s), content_id(&["a", "bc"], &mut s));
    }
}
