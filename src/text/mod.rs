//! Text utilities every stage shares: the one normalization that ids, dedup and
//! decontamination agree on, content ids, and final-answer extraction.

mod answer;
mod normalize;

pub use answer::final_answer;
pub use normalize::{IdScratch, content_id, normalize_text, normalize_text_into};
