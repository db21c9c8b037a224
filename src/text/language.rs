//! Language identification: whatlang on the first bytes of a text.
//!
//! whatlang compares the text's most frequent character trigrams with a 300-trigram profile
//! of each language of the text's script, so its cost is mostly those profile lookups, one
//! set per language compared, about the same for every text; reading more of the text buys
//! little accuracy on web pages (BENCHMARKS.md, "Language identification").

use std::sync::LazyLock;

use whatlang::{Detector, Lang};

/// Bytes of a text that identification reads, about 60 words: the shortest prefix whose
/// labels, and curation's English-at-confidence-0.5 decisions, agree with those of 512
/// bytes on over 99% of the benchmark corpus's documents (99.74% and 99.65%; 256 bytes
/// changes 1.1% of the decisions). whatlang takes 95 us a document on 128 bytes, 115 on 384,
/// 127 on 512 and 184 on the whole text.
pub const LANGUAGE_PREFIX: usize = 384;

/// The languages a text is first compared with: English and those that come second to it
/// on at least 0.1% of the benchmark corpus's English documents. Each language's score is
/// its own, so a text whatlang finds English among these is English among all languages,
/// with the same confidence, unless a language left out scores higher or comes second.
/// Against every language, on the 41,290 benchmark documents of over 200 characters,
/// that changed 4 labels, 6 more confidences and 2 of curation's decisions. Any other
/// answer is taken from every language. 13 profiles instead of whatlang's 40 for Latin
/// script: 54 us a document instead of 114 (`benches/language.rs` prints the runner-ups).
const FIRST_PASS: [Lang; 13] = [
    Lang::Eng,
    Lang::Fra,
    Lang::Afr,
    Lang::Dan,
    Lang::Deu,
    Lang::Nld,
    Lang::Cat,
    Lang::Lat,
    Lang::Por,
    Lang::Nob,
    Lang::Spa,
    Lang::Ita,
    Lang::Ron,
];

/// What [`identify`] finds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Language {
    /// ISO 639-3, like "eng".
    pub code: &'static str,
    /// 0..1: how far ahead of the runner-up the language is.
    pub confidence: f64,
}

/// The language of `text`'s first [`LANGUAGE_PREFIX`] bytes; `None` when no language shows
/// (no letters, or too few).
pub fn identify(text: &str) -> Option<Language> {
    static FIRST: LazyLock<Detector> = LazyLock::new(|| Detector::with_allowlist(FIRST_PASS.to_vec()));
    let head = &text[..text.floor_char_boundary(LANGUAGE_PREFIX)];
    let info = match FIRST.detect(head) {
        Some(info) if info.lang() == Lang::Eng => Some(info),
        _ => whatlang::detect(head),
    };
    info.map(|info| Language { code: info.lang().code(), confidence: info.confidence() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_is_identified_and_a_formula_alone_is_not() {
        let english = identify("The quick brown fox jumps over the lazy dog while the farmer watches from the field.");
        assert_eq!(english.map(|l| l.code), Some("eng"));
        let german = identify("Die Ordnung muss für immer in diesem Haus bleiben, sagte der alte Mann zu seinem Sohn.");
        assert_eq!(german.map(|l| l.code), Some("deu"));
        assert_eq!(identify("1 + 2 = 3; 4 * 5 = 20"), None);
        assert_eq!(identify(""), None);
    }

    #[test]
    fn languages_outside_the_first_pass_are_identified() {
        let swedish =
            identify("Det var en gång en liten flicka som bodde i ett hus vid sjön tillsammans med sin mormor.");
        assert_eq!(swedish.map(|l| l.code), Some("swe"));
        let polish =
            identify("Dawno temu w małej wiosce nad rzeką mieszkała dziewczynka, która bardzo lubiła czytać książki.");
        assert_eq!(polish.map(|l| l.code), Some("pol"));
        let russian = identify("Жила-была на свете маленькая девочка, которая очень любила читать книги у окна.");
        assert_eq!(russian.map(|l| l.code), Some("rus"));
    }

    #[test]
    fn english_gets_the_label_and_confidence_of_every_language() {
        for text in [
            "The quick brown fox jumps over the lazy dog while the farmer watches from the field.",
            "Let x be the number of apples. Then 3x + 2 = 11, so x = 3 and she has three apples left.",
            "Click here to subscribe to our newsletter and get the latest news delivered to your inbox.",
        ] {
            let all = whatlang::detect(text).map(|info| (info.lang().code(), info.confidence()));
            assert_eq!(identify(text).map(|l| (l.code, l.confidence)), all, "{text}");
        }
    }

    #[test]
    fn only_the_prefix_is_read() {
        let english = "The quick brown fox jumps over the lazy dog while the farmer watches. ".repeat(10);
        let tail = "Der schnelle braune Fuchs springt über den faulen Hund. ".repeat(100);
        let mixed = format!("{english}{tail}");
        assert!(english.len() > LANGUAGE_PREFIX);
        assert_eq!(identify(&mixed), identify(&english));
        // A prefix that would end inside a multi-byte character ends before it instead.
        let french = "Le café du marché est très célèbre, à côté de la forêt où l'été dure. ".repeat(10);
        let shifted = (0..80)
            .map(|pad| format!("{}{french}", " ".repeat(pad)))
            .find(|text| !text.is_char_boundary(LANGUAGE_PREFIX))
            .expect("some shift puts an accented character across the cut");
        let head = &shifted[..shifted.floor_char_boundary(LANGUAGE_PREFIX)];
        assert_eq!(identify(&shifted), identify(head));
        assert_eq!(identify(&shifted).map(|l| l.code), Some("fra"));
    }
}
