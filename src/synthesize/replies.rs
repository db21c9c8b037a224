//! What the model-based methods read out of a reply. Small models answer loosely, so the
//! labels the templates ask for (`Verdict:`, `Problem:`, `First wrong step:`) are found in
//! any case, after list marks or Markdown emphasis, and with `-` for `:`; a reply without
//! them is not guessed at but rejected with the reason the synthetic table records.

/// A self-check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfCheck {
    Accept,
    Refuse,
}

impl SelfCheck {
    pub fn name(self) -> &'static str {
        match self {
            SelfCheck::Accept => "accept",
            SelfCheck::Refuse => "refuse",
        }
    }
}

/// A `response_diversity` reply: a solution, then its self-check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedSolution {
    pub solution: String,
    pub check: SelfCheck,
}

/// The solution before the last `Verdict:` line and what that line says.
pub fn checked_solution(reply: &str) -> Result<CheckedSolution, &'static str> {
    let lines: Vec<&str> = reply.lines().collect();
    let (at, verdict) = lines
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, line)| labeled(line, "verdict").map(|v| (i, v)))
        .ok_or("no_verdict")?;
    let check = self_check(verdict).ok_or("unclear_verdict")?;
    let solution = lines[..at].join("\n").trim().to_string();
    if solution.is_empty() {
        return Err("no_solution");
    }
    Ok(CheckedSolution { solution, check })
}

/// A `query_expansion` reply: the source problem as a fact, and a new problem with its
/// self-checked solution.
#[derive(Debug, Clone, PartialEq)]
pub struct Expansion {
    pub statement: String,
    pub question: String,
    pub solution: String,
    pub check: SelfCheck,
}

pub fn expansion(reply: &str) -> Result<Expansion, &'static str> {
    let sections = sections(reply, &["statement", "problem", "solution", "verdict"]);
    let get =
        |label: &str| sections.iter().find(|(l, _)| *l == label).map(|(_, text)| text.trim()).filter(|t| !t.is_empty());
    let question = get("problem").ok_or("no_problem")?;
    let solution = get("solution").ok_or("no_solution")?;
    let verdict = get("verdict").ok_or("no_verdict")?;
    let check = self_check(verdict.lines().next().unwrap_or_default()).ok_or("unclear_verdict")?;
    Ok(Expansion {
        statement: get("statement").unwrap_or_default().to_string(),
        question: question.to_string(),
        solution: solution.to_string(),
        check,
    })
}

/// A teacher's review of a student's numbered steps.
#[derive(Debug, Clone, PartialEq)]
pub enum Review {
    Correct,
    /// The first wrong step (1-based, as numbered in the prompt) and the corrected step
    /// with the rest of the solution.
    Wrong {
        step: usize,
        correction: String,
    },
}

impl Review {
    pub fn verdict(&self) -> &'static str {
        match self {
            Review::Correct => "correct",
            Review::Wrong { .. } => "wrong",
        }
    }
}

pub fn review(reply: &str) -> Result<Review, &'static str> {
    let sections = sections(reply, &["verdict", "first wrong step", "correction"]);
    let get =
        |label: &str| sections.iter().find(|(l, _)| *l == label).map(|(_, text)| text.trim()).filter(|t| !t.is_empty());
    let verdict = get("verdict").ok_or("no_verdict")?;
    let word = first_word(verdict);
    if word == "correct" {
        return Ok(Review::Correct);
    }
    if word != "wrong" && word != "incorrect" {
        return Err("unclear_verdict");
    }
    let step = get("first wrong step").ok_or("no_wrong_step")?;
    let digits: String =
        step.trim_start_matches(|c: char| !c.is_ascii_digit()).chars().take_while(char::is_ascii_digit).collect();
    let step: usize = digits.parse().ok().filter(|s| *s > 0).ok_or("bad_step_number")?;
    let correction = get("correction").ok_or("no_correction")?;
    Ok(Review::Wrong { step, correction: correction.to_string() })
}

/// `accept` / `refuse` (also `accepted`, `reject`, ...), from the verdict's first word.
fn self_check(verdict: &str) -> Option<SelfCheck> {
    match first_word(verdict).as_str() {
        "accept" | "accepted" | "correct" | "yes" => Some(SelfCheck::Accept),
        "refuse" | "refused" | "reject" | "rejected" | "incorrect" | "wrong" | "no" => Some(SelfCheck::Refuse),
        _ => None,
    }
}

fn first_word(text: &str) -> String {
    text.trim_start_matches(|c: char| !c.is_alphanumeric())
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_lowercase()
}

/// What follows `label:` on a line that starts with it (after `-`, `*`, `#` and spaces; the
/// label in any case, `**` around it, `:` or `-` after it).
fn labeled<'a>(line: &'a str, label: &str) -> Option<&'a str> {
    let rest = line.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '-' | '*' | '#' | '_'));
    let head = rest.get(..label.len())?;
    if !head.eq_ignore_ascii_case(label) {
        return None;
    }
    let rest = rest[label.len()..].trim_start_matches(['*', '_', ' ']);
    let rest = rest.strip_prefix(':').or_else(|| rest.strip_prefix(" -")).or_else(|| rest.strip_prefix('-'))?;
    Some(rest.trim_start_matches(['*', '_']).trim())
}

/// The reply cut into labelled sections: each starts at a line that begins with one of
/// `labels` and runs to the next; text before the first label is dropped.
fn sections<'a>(reply: &str, labels: &[&'a str]) -> Vec<(&'a str, String)> {
    let mut out: Vec<(&'a str, String)> = Vec::new();
    for line in reply.lines() {
        if let Some((label, rest)) = labels.iter().find_map(|l| labeled(line, l).map(|rest| (*l, rest))) {
            out.push((label, rest.to_string()));
        } else if let Some((_, text)) = out.last_mut() {
            text.push('\n');
            text.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solution_then_its_verdict_in_the_forms_models_write() {
        let reply = "Each box holds 6 eggs, so 4 boxes hold 4 * 6 = 24 eggs.\nShe ate 3, leaving 24 - 3 = 21.\n#### 21\n\nVerdict: accept";
        let got = checked_solution(reply).unwrap();
        assert_eq!(got.check, SelfCheck::Accept);
        assert!(got.solution.ends_with("#### 21") && got.solution.starts_with("Each box"), "{got:?}");
        for (line, check) in [
            ("**Verdict:** Accept.", SelfCheck::Accept),
            ("- verdict - refuse", SelfCheck::Refuse),
            ("### VERDICT: REJECTED", SelfCheck::Refuse),
            ("Verdict: **accept** (the answer matches)", SelfCheck::Accept),
        ] {
            assert_eq!(checked_solution(&format!("x = 2, so \\boxed{{2}}.\n{line}")).unwrap().check, check, "{line}");
        }
    }

    #[test]
    fn malformed_solutions_are_rejected_with_their_reason() {
        assert_eq!(checked_solution("The answer is 5.\n#### 5"), Err("no_verdict"));
        assert_eq!(checked_solution("#### 5\nVerdict: maybe"), Err("unclear_verdict"));
        assert_eq!(checked_solution("Verdict: accept"), Err("no_solution"));
        assert_eq!(checked_solution(""), Err("no_verdict"));
        // "Verdicts" is not the label.
        assert_eq!(checked_solution("#### 5\nVerdicts are hard"), Err("no_verdict"));
    }

    #[test]
    fn an_expansion_has_its_four_parts_over_several_lines() {
        let reply = "Sure! Here it is.\n\nStatement: Natalia sold 72 clips in April and May.\n\
                     **Problem:** Natalia sold 30 clips in June,\nhalf as many in July. How many in all?\n\
                     Solution: In July she sold 30 / 2 = 15.\nIn all 30 + 15 = 45.\n#### 45\nVerdict: accept";
        let got = expansion(reply).unwrap();
        assert_eq!(got.statement, "Natalia sold 72 clips in April and May.");
        assert_eq!(got.question, "Natalia sold 30 clips in June,\nhalf as many in July. How many in all?");
        assert!(got.solution.starts_with("In July") && got.solution.ends_with("#### 45"), "{got:?}");
        assert_eq!(got.check, SelfCheck::Accept);
        assert_eq!(expansion("Statement: x\nSolution: y\nVerdict: accept"), Err("no_problem"));
        assert_eq!(expansion("Problem: x\nSolution:\nVerdict: accept"), Err("no_solution"));
        assert_eq!(expansion("Problem: x\nSolution: y #### 3"), Err("no_verdict"));
        assert_eq!(expansion("I cannot help with that."), Err("no_problem"));
    }

    #[test]
    fn a_teachers_review_names_the_step_and_corrects_it() {
        assert_eq!(review("Verdict: correct"), Ok(Review::Correct));
        assert_eq!(review("All steps check out.\n**Verdict**: Correct."), Ok(Review::Correct));
        let wrong = "Verdict: wrong\nFirst wrong step: Step 2\nCorrection: 4 boxes hold 4 * 6 = 24 eggs.\nShe has 24 - 3 = 21 left.\n#### 21";
        let Ok(Review::Wrong { step, correction }) = review(wrong) else { panic!("{:?}", review(wrong)) };
        assert_eq!(step, 2);
        assert!(correction.starts_with("4 boxes") && correction.ends_with("#### 21"), "{correction}");
        assert_eq!(review("Verdict: wrong\nFirst wrong step: the second\nCorrection: x"), Err("bad_step_number"));
        assert_eq!(review("Verdict: wrong\nFirst wrong step: 0\nCorrection: x"), Err("bad_step_number"));
        assert_eq!(review("Verdict: wrong\nFirst wrong step: 3"), Err("no_correction"));
        assert_eq!(review("Verdict: wrong\nCorrection: x"), Err("no_wrong_step"));
        assert_eq!(review("Verdict: partly right"), Err("unclear_verdict"));
        assert_eq!(review("The student is right."), Err("no_verdict"));
    }
}
