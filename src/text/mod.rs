//! Text utilities every stage shares: the one normalization that ids, dedup and
//! decontamination agree on, content ids, and the analysis of problem-solving records
//! (final answers, reasoning steps, difficulty, completeness).

mod answer;
mod normalize;
mod steps;

pub use answer::{final_answer, marked_answer, normalize_answer};
pub use normalize::{IdScratch, content_id, normalize_text, normalize_text_into};
pub use steps::{DIFFICULTY, completeness, difficulty, reasoning_steps};
