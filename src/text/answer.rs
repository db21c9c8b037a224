//! Final answers as problem-solving datasets mark them: GSM8K ends a solution with
//! `#### 72`; MATH puts the answer in `\boxed{...}` (braces nest: `\boxed{\frac{1}{2}}`),
//! sometimes `\fbox{...}` or `\boxed 5`. The last marked answer wins, as graders take it.
//! Answers are compared after [`normalize_answer`], so `\dfrac{1}{2}`, `0.5` and `1/2` agree.

/// The final answer of a solution: the marked one, else the last number in it (the answer
/// of most unmarked word-problem solutions). `None` when there is neither.
pub fn final_answer(solution: &str) -> Option<String> {
    marked_answer(solution).or_else(|| last_number(solution).map(str::to_string))
}

/// The answer a solution marks with `####` or `\boxed{}`/`\fbox{}`; `None` when it marks none.
/// Ingest fills the problems table's `final_answer` with this, never with a guess.
pub fn marked_answer(solution: &str) -> Option<String> {
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
pub(crate) fn balanced(inner: &str) -> Option<&str> {
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

/// The last number in `text`: an optional minus sign, digits with optional thousands
/// commas and decimals (`-1,000.5`), or a fraction of two such (`3/4`).
fn last_number(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let end = bytes.iter().rposition(u8::is_ascii_digit)? + 1;
    let mut start = end;
    while start > 0 {
        let b = bytes[start - 1];
        let inside =
            b.is_ascii_digit() || (matches!(b, b',' | b'.' | b'/') && start >= 2 && bytes[start - 2].is_ascii_digit());
        if !inside {
            break;
        }
        start -= 1;
    }
    // A minus sign, not the hyphen of a range (`10-20`) or a word (`COVID-19`).
    if start > 0 && bytes[start - 1] == b'-' && (start < 2 || !bytes[start - 2].is_ascii_alphanumeric()) {
        start -= 1;
    }
    Some(&text[start..end])
}

/// An answer in the form graders compare: the normalization of the MATH benchmark's
/// `strip_string` (no `\left`/`\right`, `\dfrac` as `\frac`, no units in `\text{}`, no `$`,
/// `%` or degrees, no spaces, `\frac12` as `\frac{1}{2}`, `a/b` as `\frac{a}{b}`, `x = 5`
/// as `5`) plus the number forms of word problems (`1,000` is `1000`, `72.00` is `72`,
/// a trailing full stop dropped).
pub fn normalize_answer(answer: &str) -> String {
    let mut s = answer.trim().replace('\n', "").replace("\\!", "");
    for (from, to) in [("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"), ("\\left", ""), ("\\right", "")] {
        s = s.replace(from, to);
    }
    for unit in ["^{\\circ}", "^\\circ", "\\$", "$", "\\%", "%"] {
        s = s.replace(unit, "");
    }
    // Units: `5 \text{ cm}` is 5; a whole answer in `\text{}` keeps its content.
    if let Some(pos) = s.find("\\text{ ").or_else(|| s.find("\\mbox{ "))
        && pos > 0
    {
        s.truncate(pos);
    }
    s = unwrap_command(&s, "\\text");
    s = unwrap_command(&s, "\\mbox");
    s = s.trim().trim_end_matches('.').trim().to_string();
    // `x = 5` and `k=5` answer 5; a longer left side (an equation) is the answer itself.
    if let Some((left, right)) = s.split_once('=')
        && left.trim().chars().count() <= 2
        && !right.contains('=')
    {
        s = right.trim().to_string();
    }
    s.retain(|c| !c.is_whitespace());
    s = s.replace(".\\", "\\");
    if s.starts_with('.') {
        s.insert(0, '0');
    }
    s = s.replace("{.", "{0.");
    s = braced_arguments(&s, "\\sqrt", 1);
    s = braced_arguments(&s, "\\frac", 2);
    if let Some(number) = plain_number(&s) {
        return number;
    }
    if let Some((a, b)) = s.split_once('/')
        && is_integer(a)
        && is_integer(b)
    {
        return format!("\\frac{{{a}}}{{{b}}}");
    }
    s
}

/// `\text{abc}` -> `abc` (every occurrence; nested braces kept).
fn unwrap_command(s: &str, command: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find(command) {
        let after = &rest[pos + command.len()..];
        out.push_str(&rest[..pos]);
        match after.strip_prefix('{').and_then(|inner| balanced(inner).map(|c| (c, inner))) {
            Some((content, inner)) => {
                out.push_str(content);
                rest = &inner[content.len() + 1..];
            }
            None => {
                out.push_str(command);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `\frac12` -> `\frac{1}{2}`, `\sqrt3` -> `\sqrt{3}`: single-character arguments braced;
/// an optional argument (`\sqrt[3]2`) is kept as it is.
fn braced_arguments(s: &str, command: &str, arity: usize) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut rest = s;
    while let Some(pos) = rest.find(command) {
        out.push_str(&rest[..pos + command.len()]);
        rest = &rest[pos + command.len()..];
        if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue; // another command, like `\fraction`
        }
        if rest.starts_with('[')
            && let Some(close) = rest.find(']')
        {
            out.push_str(&rest[..=close]);
            rest = &rest[close + 1..];
        }
        for _ in 0..arity {
            if let Some(inner) = rest.strip_prefix('{') {
                match balanced(inner) {
                    Some(content) => {
                        out.push('{');
                        out.push_str(content);
                        out.push('}');
                        rest = &inner[content.len() + 1..];
                    }
                    None => break,
                }
            } else if let Some(c) = rest.chars().next() {
                out.push('{');
                out.push(c);
                out.push('}');
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A plain decimal number in canonical form: no thousands commas, no trailing zeros after
/// the point, `-0` as `0`. `None` for anything else.
fn plain_number(s: &str) -> Option<String> {
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let grouped = int.contains(',');
    if grouped {
        let mut groups = int.split(',');
        let first = groups.next()?;
        if first.is_empty() || first.len() > 3 || !groups.all(|g| g.len() == 3) {
            return None;
        }
    }
    let digits: String = int.chars().filter(|c| *c != ',').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let mut number = if digits.is_empty() { "0".to_string() } else { digits.to_string() };
    if !frac.is_empty() {
        number.push('.');
        number.push_str(frac);
    }
    if s.starts_with('-') && number != "0" {
        number.insert(0, '-');
    }
    Some(number)
}

fn is_integer(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
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
        assert_eq!(marked_answer("The answer is 5."), None);
        assert_eq!(marked_answer("\\boxed{unclosed"), None);
        assert_eq!(marked_answer("\\boxed{}"), None);
        assert_eq!(final_answer(""), None);
        assert_eq!(final_answer("no numbers here"), None);
    }

    #[test]
    fn last_number_fallback() {
        assert_eq!(final_answer("The answer is 5.").as_deref(), Some("5"));
        assert_eq!(final_answer("She pays $1,250.50 in all.").as_deref(), Some("1,250.50"));
        assert_eq!(final_answer("so x = -3").as_deref(), Some("-3"));
        assert_eq!(final_answer("a ratio of 3/4 remains").as_deref(), Some("3/4"));
        assert_eq!(final_answer("<<48+24=72>>72 clips").as_deref(), Some("72"));
        assert_eq!(final_answer("2. Then 7.").as_deref(), Some("7"));
        assert_eq!(final_answer("between 10-20 apples").as_deref(), Some("20"), "a range's hyphen");
        assert_eq!(final_answer("since COVID-19").as_deref(), Some("19"));
        assert_eq!(final_answer("it drops by (-4)").as_deref(), Some("-4"));
    }

    #[test]
    fn normalized_answers_agree() {
        let same = |a: &str, b: &str| assert_eq!(normalize_answer(a), normalize_answer(b), "{a} vs {b}");
        same("\\dfrac{1}{2}", "\\frac12");
        same("\\frac{1}{2}", "1/2");
        same("1,000", "1000");
        same("72.00", "72");
        same("72.", "72");
        same("$5$", "5");
        same("10\\%", "10");
        same("90^\\circ", "90");
        same("x = 5", "5");
        same("5 \\text{ cm}", "5");
        same("\\text{(A)}", "(A)");
        same("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})");
        same("\\sqrt2", "\\sqrt{2}");
        same("\\sqrt[3]{2}", "\\sqrt[3]2");
        assert_eq!(normalize_answer("\\sqrt[3]{2}"), "\\sqrt[3]{2}");
        assert_ne!(normalize_answer("\\sqrt[3]{2}"), normalize_answer("\\sqrt{2}"));
        same(".5", "0.5");
        assert_ne!(normalize_answer("1,2"), normalize_answer("12"));
        same("y = 2x + 1", "2x+1"); // as the MATH grader does: a short left side is a name
        assert_eq!(normalize_answer(""), "");
    }
}
