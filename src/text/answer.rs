//! Final answers as problem-solving datasets mark them: GSM8K ends a solution with
//! `#### 72`; MATH puts the answer in `\boxed{...}` (braces nest: `\boxed{\frac{1}{2}}`),
//! sometimes `\fbox{...}` or `\boxed 5`. The last marked answer wins, as graders take it.

/// The marked final answer of a solution, or `None` when it marks none.
pub fn final_answer(solution: &str) -> Option<String> {
    if let Some(pos) = solution.rfind("####") {
        let rest = &solution[pos + 4..];
        let answer = rest.lines().next().unwrap_or("").trim();
        if !answer.is_empty() {
            return Some(answer.to_string());
        }
    }
    last_boxed(solution)
}

fn last_boxed(text: &str) -> Option<String> {
    let start = ["\\boxed", "\\fbox"]
        .iter()
        .filter_map(|cmd| text.rfind(cmd).map(|pos| (pos, cmd.len())))
        .max_by_key(|(pos, _)| *pos)?;
    let rest = &text[start.0 + start.1..];
    let trimmed = rest.trim_start();
    if let Some(inner) = trimmed.strip_prefix('{') {
        let content = balanced(inner)?;
        let content = content.trim();
        return (!content.is_empty()).then(|| content.to_string());
    }
    // `\boxed 5` and `\boxed5$`: the argument runs to white space or the end of the math.
    if rest.starts_with(|c: char| c.is_alphabetic()) {
        return None; // `\boxedtext` is another command
    }
    let arg: String = trimmed.chars().take_while(|c| !c.is_whitespace() && *c != '$').collect();
    (!arg.is_empty()).then_some(arg)
}

/// The text up to the brace that closes an already-opened `{`, honouring `\{` and `\}`.
fn balanced(inner: &str) -> Option<&str> {
    let mut depth = 1usize;
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&inner[..i]);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm8k_marker() {
        let solution = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72";
        assert_eq!(final_answer(solution).as_deref(), Some("72"));
        assert_eq!(final_answer("x\n#### 1,000\n").as_deref(), Some("1,000"));
    }

    #[test]
    fn boxed_with_nested_and_escaped_braces() {
        assert_eq!(final_answer("so $a+b=\\boxed{0}$.").as_deref(), Some("0"));
        assert_eq!(final_answer("$\\boxed{\\frac{1}{2}}$").as_deref(), Some("\\frac{1}{2}"));
        assert_eq!(final_answer("$\\boxed{\\{1,2\\}}$").as_deref(), Some("\\{1,2\\}"));
        assert_eq!(final_answer("first \\boxed{1} then \\boxed{2}").as_deref(), Some("2"));
        assert_eq!(final_answer("\\fbox{7}").as_deref(), Some("7"));
        assert_eq!(final_answer("$\\boxed 5$").as_deref(), Some("5"));
    }

    #[test]
    fn no_marked_answer() {
        assert_eq!(final_answer("The answer is 5."), None);
        assert_eq!(final_answer("\\boxed{unclosed"), None);
        assert_eq!(final_answer("\\boxed{}"), None);
        assert_eq!(final_answer(""), None);
    }
}
