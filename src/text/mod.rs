//! Text utilities every stage shares: the normalization of ids and exact dedup, content
//! ids, the words that near-dup detection and decontamination compare, and the analysis
//! of problem-solving records (final answers, reasoning steps, difficulty, completeness).

mod answer;
mod block;
mod normalize;
mod steps;
mod words;

pub(crate) use answer::balanced;
pub use answer::{final_answer, marked_answer, normalize_answer};
pub use normalize::{IdScratch, content_id, normalize_text, normalize_text_into};
pub use steps::{DIFFICULTY, completeness, difficulty, reasoning_steps};
pub use words::{
    Prehashed, WordScratch, for_each_ngram, for_each_word, mix, ngram_hashes, sequence_hash, word_hashes, words,
};
