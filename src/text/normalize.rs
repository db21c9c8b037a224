//! `normalize_text`: Unicode NFC, every run of Unicode white space (tabs, newlines,
//! NBSP, U+2028, ideographic space...) as one ASCII space, no leading or trailing space.
//! Case, punctuation and LaTeX are kept: `\frac{a}{b}` and `\frac{A}{B}` are different
//! mathematics. Ingest ids, dedup and decontamination all call this one function.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};
use xxhash_rust::xxh3::Xxh3;

pub fn normalize_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    normalize_text_into(text, &mut out);
    out
}

/// As [`normalize_text`], reusing `out`'s allocation (hot loops normalize millions of texts).
pub fn normalize_text_into(text: &str, out: &mut String) {
    out.clear();
    out.reserve(text.len());
    let mut space = false;
    let mut push = |c: char| {
        if c.is_whitespace() {
            space = !out.is_empty();
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    };
    if text.is_ascii() || is_nfc_quick(text.chars()) == IsNormalized::Yes {
        text.chars().for_each(&mut push);
    } else {
        text.nfc().for_each(&mut push);
    }
}

/// A content id: xxh3-128 over the parts, each normalized, separated by a byte that
/// normalized text never contains, as 32 lower-case hex digits.
pub fn content_id(parts: &[&str], scratch: &mut String) -> String {
    let mut hasher = Xxh3::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(&[0xff]);
        }
        normalize_text_into(part, scratch);
        hasher.update(scratch.as_bytes());
    }
    format!("{:032x}", hasher.digest128())
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
    fn ids_ignore_spacing_but_not_content_or_part_boundaries() {
        let mut s = String::new();
        let a = content_id(&["gsm8k", "What is 2+2?", "4"], &mut s);
        assert_eq!(a.len(), 32);
        assert_eq!(a, content_id(&["gsm8k", "What  is 2+2?\n", " 4"], &mut s));
        assert_ne!(a, content_id(&["gsm8k", "What is 2+3?", "4"], &mut s));
        assert_ne!(content_id(&["ab", "c"], &mut s), content_id(&["a", "bc"], &mut s));
    }
}
