//! Reasoning steps, the difficulty they imply, and whether a problem record is complete.
//!
//! A *reasoning step* is one sentence of a worked solution, or one line of displayed math:
//! the solution (without a GSM8K `#### N` line) is cut at line breaks, at `\\` row breaks of
//! displayed math, and after `.`, `!` or `?` followed by white space outside inline math
//! (`$...$`); every piece with a letter or a digit is a step. GSM8K writes one step per line,
//! MATH writes sentences, and both count the same way.

use std::ops::Range;

use super::answer::marked_answer;

/// The number of reasoning steps in a solution (see the module documentation).
pub fn reasoning_steps(solution: &str) -> u64 {
    step_spans(solution).len() as u64
}

/// The byte ranges of a solution's reasoning steps, in order, each without the white space
/// around it: what synthesis rearranges (retrospective enhancement moves one step early).
pub fn step_spans(solution: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    for line in solution.split('\n') {
        if line.trim_start().starts_with("####") {
            continue;
        }
        for row in line.split("\\\\") {
            for piece in sentences(row) {
                if without_environments(piece).chars().any(char::is_alphanumeric) {
                    let trimmed = piece.trim();
                    let start = trimmed.as_ptr() as usize - solution.as_ptr() as usize;
                    spans.push(start..start + trimmed.len());
                }
            }
        }
    }
    spans
}

/// `row` without `\begin{...}` and `\end{...}`: opening an environment is no step.
fn without_environments(row: &str) -> String {
    let mut out = String::with_capacity(row.len());
    let mut rest = row;
    while let Some(pos) = [rest.find("\\begin{"), rest.find("\\end{")].into_iter().flatten().min() {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        rest = after.find('}').map_or("", |close| &after[close + 1..]);
    }
    out.push_str(rest);
    out
}

/// Pieces of `text` cut after sentence-ending punctuation that is followed by white space
/// and lies outside inline math.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    let mut pieces = Vec::new();
    let mut in_math = false;
    let mut start = 0;
    let mut previous = '\0';
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '$' if previous != '\\' => {
                // `$x = 5.$ Next` ends a sentence inside the math.
                let at_break = chars.peek().is_none_or(|(_, next)| next.is_whitespace());
                if in_math && matches!(previous, '.' | '!' | '?') && at_break {
                    pieces.push(&text[start..i + 1]);
                    start = i + 1;
                }
                in_math = !in_math;
            }
            '.' | '!' | '?' if !in_math => {
                let at_break = chars.peek().is_none_or(|(_, next)| next.is_whitespace());
                if at_break {
                    pieces.push(&text[start..i + 1]);
                    start = i + 1;
                }
            }
            _ => {}
        }
        previous = c;
    }
    pieces.push(&text[start..]);
    pieces.into_iter()
}

/// Difficulty buckets by step count, with the largest count of each. On the training
/// problems of GSM8K and MATH (14,973) they hold 44%, 34% and 22%: easy is most of GSM8K,
/// hard is mostly MATH's upper levels, the many-step problems SFT learns poorly.
pub const DIFFICULTY: [(&str, u64); 3] = [("easy", 3), ("medium", 6), ("hard", u64::MAX)];

/// The difficulty bucket of a solution with `steps` reasoning steps.
pub fn difficulty(steps: u64) -> &'static str {
    DIFFICULTY.iter().find(|(_, max)| steps <= *max).map_or("hard", |(name, _)| name)
}

/// Why a problem record is not a complete training example, or `"complete"`: it needs a
/// question, a worked solution (a step besides the marked answer) and a marked final
/// answer (`####` or `\boxed{}`; evaluation parses answers in those forms, so training
/// records should show them).
pub fn completeness(question: &str, solution: &str) -> &'static str {
    if !question.chars().any(char::is_alphanumeric) {
        return "missing_question";
    }
    let Some(answer) = marked_answer(solution) else {
        return "missing_final_answer";
    };
    // What is left when the answer and its marker are taken out must still say something.
    let mut worked = solution.to_string();
    if let Some(pos) = worked.rfind(&answer) {
        worked.replace_range(pos..pos + answer.len(), "");
    }
    let worked = worked.replace("####", "").replace("\\boxed", "").replace("\\fbox", "");
    if reasoning_steps(&worked) == 0 {
        return "missing_solution";
    }
    "complete"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm8k_steps_are_lines() {
        let solution = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n\
                        Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72";
        assert_eq!(reasoning_steps(solution), 2);
    }

    #[test]
    fn math_steps_are_sentences_outside_math() {
        let solution = "We have $x = 2.5$. So $2x = 5.$ Hence the answer is $\\boxed{5}$.";
        assert_eq!(reasoning_steps(solution), 3);
        let display = "\\begin{align*}\na &= 1 \\\\\nb &= 2 \\\\ c &= 3\n\\end{align*}";
        assert_eq!(reasoning_steps(display), 3);
        assert_eq!(reasoning_steps(""), 0);
        assert_eq!(reasoning_steps("...\n\n$$ $$"), 0);
    }

    #[test]
    fn step_spans_point_into_the_solution() {
        let solution = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\r\n  Then 48+24 = 72 in all.\n#### 72";
        let steps: Vec<&str> = step_spans(solution).into_iter().map(|s| &solution[s]).collect();
        assert_eq!(steps, ["Natalia sold 48/2 = <<48/2=24>>24 clips in May.", "Then 48+24 = 72 in all."]);
        let math = "We have $x = 2.5$. So $2x = 5.$ Hence\\\\ $\\boxed{5}$.";
        let steps: Vec<&str> = step_spans(math).into_iter().map(|s| &math[s]).collect();
        assert_eq!(steps, ["We have $x = 2.5$.", "So $2x = 5.$", "Hence", "$\\boxed{5}$."]);
    }

    #[test]
    fn difficulty_buckets() {
        assert_eq!(difficulty(0), "easy");
        assert_eq!(difficulty(3), "easy");
        assert_eq!(difficulty(4), "medium");
        assert_eq!(difficulty(100), "hard");
    }

    #[test]
    fn completeness_reasons() {
        assert_eq!(completeness("What is 2+2?", "2+2 = 4.\n#### 4"), "complete");
        assert_eq!(completeness("Compute $\\dbinom{8}{4}$.", "We have $\\dbinom{8}{4} = \\boxed{70}$."), "complete");
        assert_eq!(completeness("  ", "#### 4"), "missing_question");
        assert_eq!(completeness("What is 2+2?", "It is four."), "missing_final_answer");
        assert_eq!(completeness("What is 2+2?", "#### 4"), "missing_solution");
        assert_eq!(completeness("What is 2+2?", "$\\boxed{4}$"), "missing_solution");
    }
}
