//! `normalize_text`: Unicode NFC, every run of Unicode white space (tabs, newlines,
//! NBSP, U+2028, ideographic space...) as one ASCII space, no leading or trailing space.
//! Case, punctuation and LaTeX are kept: `\frac{a}{b}` and `\frac{A}{B}` are different
//! mathematics. Ingest ids and exact dedup call this one function; near-dup detection and
//! decontamination compare the coarser words of `words.rs`.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};
use xxhash_rust::xxh3::xxh3_128;

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

/// Appends the normalized `text` to `out`. `composed` holds the NFC form when the text is
/// not already NFC (rare: the quick check answers for almost all real text).
fn push_normalized(text: &str, composed: &mut String, out: &mut Vec<u8>) {
    let text = if text.is_ascii() || is_nfc_quick(text.chars()) == IsNormalized::Yes {
        text
    } else {
        composed.clear();
        composed.extend(text.nfc());
        composed.as_str()
    };
    let bytes = text.as_bytes();
    out.reserve(bytes.len());
    let start = out.len();
    let mut space = false;
    let mut i = 0;
    while i < bytes.len() {
        // Copy in one go the run of bytes that needs no change: bytes that cannot start
        // white space, and single spaces between them (most text is mostly that).
        let mut end = i;
        loop {
            end += bytes[end..].iter().position(|&b| CLASS[b as usize] != PLAIN).unwrap_or(bytes.len() - end);
            let single_space = end > i
                && bytes.get(end) == Some(&b' ')
                && bytes.get(end + 1).is_some_and(|&b| CLASS[b as usize] == PLAIN);
            if !single_space {
                break;
            }
            end += 1;
        }
        let run = end - i;
        if run > 0 {
            if space {
                out.push(b' ');
                space = false;
            }
            out.extend_from_slice(&bytes[i..i + run]);
            i += run;
            continue;
        }
        let (is_space, width) = match CLASS[bytes[i] as usize] {
            ASCII_SPACE => (true, 1),
            _ => {
                let c = text[i..].chars().next().expect("a lead byte starts a character");
                (c.is_whitespace(), c.len_utf8())
            }
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

const PLAIN: u8 = 0;
const ASCII_SPACE: u8 = 1;
const LEAD: u8 = 2;

/// Which bytes can start white space: ASCII white space, and the lead bytes 0xC2, 0xE1,
/// 0xE2 and 0xE3 of U+0085, U+00A0, U+1680, U+2000..U+205F and U+3000. Every other byte,
/// continuation bytes included, is copied as it is.
static CLASS: [u8; 256] = {
    let mut class = [PLAIN; 256];
    let mut b = 0;
    while b < 256 {
        class[b] = match b as u8 {
            b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' => ASCII_SPACE,
            0xc2 | 0xe1 | 0xe2 | 0xe3 => LEAD,
            _ => PLAIN,
        };
        b += 1;
    }
    class
};

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
            let reference: Vec<String> = text
                .nfc()
                .collect::<String>()
                .split(char::is_whitespace)
                .filter(|w| !w.is_empty())
                .map(String::from)
                .collect();
            assert_eq!(normalize_text(text), reference.join(" "), "{text:?}");
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
