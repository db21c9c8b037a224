//! Text utilities every stage shares: the normalization of ids and exact dedup, content
//! ids, the words that near-dup detection and decontamination compare, the analysis
//! of problem-solving records (final answers, reasoning steps, difficulty, completeness)
//! and the personal data of web pages.

mod answer;
pub mod benchmark_index;
pub(crate) mod block;
pub mod classifier;
mod column;
pub mod html;
pub mod language;
pub mod minhash;
mod normalize;
pub mod pii;
pub mod signals;
mod steps;
pub mod url;
mod words;

pub(crate) use answer::balanced;
pub use answer::{final_answer, marked_answer, normalize_answer};
pub use column::texts;
pub use normalize::{IdScratch, content_id, normalize_text, normalize_text_into};
pub use steps::{DIFFICULTY, completeness, difficulty, reasoning_steps, step_spans};
pub use words::{
    Prehashed, WordScratch, for_each_ngram, for_each_word, mix, ngram_hashes, sequence_hash, word_hashes, words,
};

/// `count` texts of up to `max_pieces` pieces drawn from `palette`, the same on every
/// run: the generated inputs of the text tests.
#[cfg(test)]
fn generated_texts<'a>(palette: &'a [&'a str], max_pieces: usize, count: usize) -> impl Iterator<Item = String> + 'a {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |bound: usize| {
        state = mix(state.wrapping_add(0x9e37_79b9_7f4a_7c15));
        (state % bound as u64) as usize
    };
    (0..count).map(move |_| {
        let pieces = next(max_pieces);
        (0..pieces).map(|_| palette[next(palette.len())]).collect()
    })
}
