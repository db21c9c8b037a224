//! Retrospective enhancement, the study's rule-based method: a correct solution with a
//! later step written too early, then a `[back]` marker and the correct continuation, so
//! that a model sees an error and its repair. No model is involved; which step moves, and
//! where to, is drawn from a seed, per problem and rollout.

use std::ops::Range;

use crate::random::{SplitMix, streams};
use crate::text::step_spans;

/// Written after the misplaced step: the solution goes back to where it went wrong.
pub const MARKER: &str = "[back]";

/// Solutions with fewer steps (of two words or more) have no later step to move.
pub const MIN_STEPS: usize = 3;

/// A solution with one step moved early and the correct continuation after [`MARKER`].
#[derive(Debug, Clone, PartialEq)]
pub struct Backtrack {
    pub solution: String,
    /// The step, 0-based among the solution's steps of two words or more, that was
    /// written too early ...
    pub moved: usize,
    /// ... before this one.
    pub before: usize,
}

/// Why a solution cannot be enhanced, as the `reason` the synthetic table records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooFewSteps,
    HasMarker,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::TooFewSteps => "fewer_than_3_steps",
            Refusal::HasMarker => "solution_has_back_marker",
        }
    }
}

/// Moves a later step of `solution` in front of an earlier one (never the first: some
/// correct work comes before the error), followed by ` [back] ` and the solution from the
/// earlier step on, unchanged. Only steps of two words or more take part: the step
/// splitter also cuts after abbreviations (`sq. ft.`), and a moved `ft.` teaches nothing.
/// The same seed, problem and rollout give the same result.
pub fn enhance(solution: &str, seed: u64, problem: &str, rollout: u32) -> Result<Backtrack, Refusal> {
    if solution.contains(MARKER) {
        return Err(Refusal::HasMarker);
    }
    let steps: Vec<Range<usize>> =
        step_spans(solution).into_iter().filter(|s| substantial(&solution[s.clone()])).collect();
    let n = steps.len();
    if n < MIN_STEPS {
        return Err(Refusal::TooFewSteps);
    }
    let problem = xxhash_rust::xxh3::xxh3_64(problem.as_bytes());
    let mut rng = SplitMix::new(seed, &[streams::RETROSPECTIVE, problem, u64::from(rollout)]);
    let before = 1 + rng.below(n - 2);
    let moved = before + 1 + rng.below(n - 1 - before);
    Ok(Backtrack { solution: splice(solution, &steps[moved], steps[before].start), moved, before })
}

/// At least two runs of letters or digits: `$x = 5$.` is a step, `ft.` is not.
fn substantial(step: &str) -> bool {
    step.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).nth(1).is_some()
}

/// `solution` with the text of `step` and the marker inserted at byte `at`.
fn splice(solution: &str, step: &Range<usize>, at: usize) -> String {
    let step = &solution[step.clone()];
    let mut out = String::with_capacity(solution.len() + step.len() + MARKER.len() + 2);
    out.push_str(&solution[..at]);
    out.push_str(step);
    out.push(' ');
    out.push_str(MARKER);
    out.push(' ');
    out.push_str(&solution[at..]);
    out
}

/// The solution an enhanced one was made from: the misplaced step and the marker taken
/// out. `None` when `enhanced` has no marker, or what stands before it is not a step that
/// the solution takes later; what verification uses to show a record is correct after
/// the `[back]`.
pub fn undo(enhanced: &str) -> Option<String> {
    let marker = enhanced.find(&format!(" {MARKER} "))?;
    let (head, continuation) = (&enhanced[..marker], &enhanced[marker + MARKER.len() + 2..]);
    step_spans(continuation).into_iter().skip(1).find_map(|step| {
        let moved = &continuation[step];
        let at = head.len().checked_sub(moved.len()).filter(|_| head.ends_with(moved))?;
        let original = format!("{}{continuation}", &head[..at]);
        step_spans(&original).iter().any(|s| s.start == at).then_some(original)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GSM8K: &str = "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\n\
                         Working 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n\
                         She then spent 10 - 3 = $<<10-3=7>>7 on lunch.\n\
                         So she has 7 left.\n#### 7";

    #[test]
    fn a_later_step_comes_early_then_the_marker_and_the_rest_unchanged() {
        let b = enhance(GSM8K, 1, "p1", 0).unwrap();
        assert!((1..=2).contains(&b.before) && b.moved > b.before && b.moved <= 3, "{b:?}");
        let steps: Vec<&str> = step_spans(GSM8K).into_iter().map(|s| &GSM8K[s]).collect();
        let at = GSM8K.find(steps[b.before]).unwrap();
        assert_eq!(b.solution, format!("{}{} [back] {}", &GSM8K[..at], steps[b.moved], &GSM8K[at..]));
        assert!(b.solution.ends_with("#### 7"));
        assert_eq!(undo(&b.solution).as_deref(), Some(GSM8K));
    }

    #[test]
    fn the_draw_is_a_function_of_seed_problem_and_rollout() {
        assert_eq!(enhance(GSM8K, 1, "p1", 0), enhance(GSM8K, 1, "p1", 0));
        let draws: std::collections::BTreeSet<(usize, usize)> = (0..40)
            .flat_map(|r| [enhance(GSM8K, 7, "p1", r), enhance(GSM8K, r as u64, "p2", 0)])
            .map(|b| b.map(|b| (b.before, b.moved)).unwrap())
            .collect();
        // Every placement of a 4-step solution: before 1 or 2, moved after it.
        assert_eq!(draws.into_iter().collect::<Vec<_>>(), [(1, 2), (1, 3), (2, 3)]);
    }

    #[test]
    fn sentences_of_math_solutions_move_too() {
        let math = "We have $x = 2.5$. So $2x = 5.$ Then $3x = 7.5$. Hence $\\boxed{5}$.";
        for rollout in 0..10 {
            let b = enhance(math, 3, "m", rollout).unwrap();
            assert_eq!(undo(&b.solution).as_deref(), Some(math), "{}", b.solution);
        }
    }

    #[test]
    fn one_word_pieces_never_move() {
        let solution = "The house has 1200 sq. ft. of floor.\nThe garden adds 300 sq. ft.\nSo 1500 in all.\n#### 1500";
        for rollout in 0..20 {
            let b = enhance(solution, 5, "h", rollout).unwrap();
            let moved = &b.solution[..b.solution.find(" [back] ").unwrap()];
            assert!(moved.ends_with("The garden adds 300 sq.") || moved.ends_with("So 1500 in all."), "{moved}");
            assert_eq!(undo(&b.solution).as_deref(), Some(solution));
        }
        assert_eq!(enhance("Hence.\nWe get $x = 1$.\nThus $y = 2$.\n#### 2", 1, "p", 0), Err(Refusal::TooFewSteps));
    }

    #[test]
    fn short_or_marked_solutions_are_refused() {
        assert_eq!(enhance("One step.\nTwo steps.\n#### 2", 1, "p", 0), Err(Refusal::TooFewSteps));
        assert_eq!(enhance("", 1, "p", 0), Err(Refusal::TooFewSteps));
        assert_eq!(enhance("A. B. C. [back] D.", 1, "p", 0), Err(Refusal::HasMarker));
        assert_eq!(Refusal::TooFewSteps.reason(), "fewer_than_3_steps");
    }

    #[test]
    fn undo_refuses_what_enhancement_did_not_make() {
        assert_eq!(undo(GSM8K), None);
        // The text before the marker is no later step of the continuation.
        assert_eq!(undo("First.\nSomething else [back] Second.\nThird.\n#### 3"), None);
    }
}
