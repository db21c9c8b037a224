//! Grading a generation against a benchmark's gold answer: the accuracy `mathlake eval`
//! reports. A grader that is too strict hides what a small model gets right, one that is
//! too loose credits wrong answers, so each rule below has equal and unequal tests.
//!
//! [`extract_answer`] takes the answer a generation gives, the first of:
//! 1. the last `#### X` line (GSM8K's marker, which a model trained on GSM8K copies);
//! 2. the last `\boxed{X}` or `\fbox{X}` (MATH's marker);
//! 3. the last "the answer is X" or "answer: X", X cut at the end of its sentence;
//! 4. the last number.
//!
//! [`equivalent`] decides whether two raw answers agree, trying in order:
//! 1. the same string after spacing commands (`\!`, `\,`, `\;`, `\ `, `~`), `$`, `x \in`
//!    and trailing unit words are removed and then [`normalize_answer`] (MATH's
//!    `strip_string`: `\dfrac`, `\left(`, `\%`, `^\circ`, `\text{ cm}`, `x = 5`, `1,000`);
//! 2. multiple-choice letters: `\text{(C)}`, `(C)` and `C` are one answer;
//! 3. matrices cell by cell (each cell by these rules);
//! 4. unions of intervals in any order; intervals and tuples element by element, with the
//!    same brackets (`(1,2)` is not `[1,2]`); sets and bare comma lists (`1, -2`) in any
//!    order, `a \pm b` counting as the two answers `a+b` and `a-b`;
//! 5. the same value: a small evaluator reads `\frac`, `\sqrt`, `\pi`, `^`, `*`, `\cdot`,
//!    `+ - /`, parentheses, implicit products and one-letter variables (compared at two
//!    sample points), and values agree within a relative 1e-6. Rational literals (`0.5`,
//!    `\frac{1}{2}`, the mixed number `1\frac{4}{5}`) and whole values compare exactly, so
//!    `1000001` is not `1000000` and `0.3333333` is not `\frac{1}{3}`.
//!
//! Anything the evaluator cannot read stays unequal unless rule 1 matched.

use crate::text::{balanced, final_answer, marked_answer, normalize_answer};

/// Values further apart than this, relative to the larger, are different answers.
const RELATIVE_TOLERANCE: f64 = 1e-6;

/// Nesting deeper than this is not a real answer; stop instead of recursing on it.
const MAX_DEPTH: usize = 32;

/// The phrases that introduce a stated answer, lower case.
const ANSWER_PHRASES: [&str; 2] = ["answer is", "answer:"];

/// The answer a generation gives (see the module doc for the order); `None` when it gives
/// none, e.g. an empty or number-free generation.
pub fn extract_answer(generation: &str) -> Option<String> {
    marked_answer(generation).or_else(|| stated_answer(generation)).or_else(|| final_answer(generation))
}

/// The X of the last "the answer is X." or "Answer: X": the rest of its line up to a full
/// stop and a space (a decimal point has a digit after it), without `$` or bold marks.
fn stated_answer(text: &str) -> Option<String> {
    // ASCII lower-casing keeps byte offsets, so positions in `lower` index `text`.
    let lower = text.to_ascii_lowercase();
    let (pos, len) =
        ANSWER_PHRASES.iter().filter_map(|p| lower.rfind(p).map(|i| (i, p.len()))).max_by_key(|(i, _)| *i)?;
    let rest = text[pos + len..].trim_start_matches([':', ' ', '\t', '*']);
    let line = rest.lines().next().unwrap_or("");
    let sentence = line.split(". ").next().unwrap_or(line);
    let answer = sentence.trim().trim_end_matches('.').trim_matches(['$', '*', ' ']).trim_end_matches('.');
    // "the answer is therefore 12": a sentence around a number gives the number.
    let first_word = answer.split_whitespace().next().unwrap_or("");
    let prose =
        first_word.len() > 1 && first_word.len() < answer.len() && first_word.bytes().all(|c| c.is_ascii_alphabetic());
    if prose && answer.contains(|c: char| c.is_ascii_digit()) {
        return final_answer(answer);
    }
    (!answer.is_empty()).then(|| answer.to_string())
}

/// Whether a predicted answer and a gold answer, both raw (as extracted, as the dataset
/// gives them), are the same answer by the rules of the module doc.
pub fn equivalent(predicted: &str, gold: &str) -> bool {
    same(predicted, gold, 0)
}

fn same(a: &str, b: &str, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let (a, b) = (clean(a), clean(b));
    if let (Some(x), Some(y)) = (matrix(&a), matrix(&b)) {
        return x.len() == y.len()
            && x.iter()
                .zip(&y)
                .all(|(r, s)| r.len() == s.len() && r.iter().zip(s).all(|(p, q)| same(p, q, depth + 1)));
    }
    let (a, b) = (normalize_answer(&a), normalize_answer(&b));
    if a == b {
        return true;
    }
    if let (Some(x), Some(y)) = (choice(&a), choice(&b)) {
        return x == y;
    }
    match (shape(&a), shape(&b)) {
        (Shape::Atom, Shape::Atom) => same_value(&a, &b),
        (Shape::Union(x), Shape::Union(y)) | (Shape::List(x), Shape::List(y)) => same_unordered(&x, &y, depth),
        (Shape::Group(open, close, x), Shape::Group(open2, close2, y)) => {
            open == open2
                && close == close2
                && x.len() == y.len()
                && x.iter().zip(&y).all(|(p, q)| same(p, q, depth + 1))
        }
        (Shape::List(x), Shape::Atom) if x.len() == 1 => same(&x[0], &b, depth + 1),
        (Shape::Atom, Shape::List(y)) if y.len() == 1 => same(&a, &y[0], depth + 1),
        _ => false,
    }
}

/// Every item of `x` matches a different item of `y`, and none is left over.
fn same_unordered(x: &[String], y: &[String], depth: usize) -> bool {
    if x.len() != y.len() {
        return false;
    }
    let mut used = vec![false; y.len()];
    x.iter().all(|p| match (0..y.len()).find(|&j| !used[j] && same(p, &y[j], depth + 1)) {
        Some(j) => {
            used[j] = true;
            true
        }
        None => false,
    })
}

/// What [`normalize_answer`] keeps by MATH's rules but a grader must not compare: spacing
/// commands, `\(`..`\)`, `\textbf`-like wrappers, a leading `x \in`, degree signs, and unit
/// words after a number (`5\text{km}`, `18 dollars`).
fn clean(raw: &str) -> String {
    let mut s = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek().copied()) {
            // `\\` is a matrix row break, not the spacing command `\ ` after a backslash.
            ('\\', Some('\\')) => {
                chars.next();
                s.push_str("\\\\");
            }
            ('\\', Some(',' | ';' | ':' | ' ')) => {
                chars.next();
                s.push(' ');
            }
            ('\\', Some('!')) => {
                chars.next();
            }
            ('~' | '°', _) => s.push(' '),
            ('−', _) => s.push('-'),
            ('π', _) => s.push_str("\\pi "),
            _ => s.push(c),
        }
    }
    for (from, to) in [
        ("\\qquad", " "),
        ("\\quad", " "),
        ("\\displaystyle", ""),
        ("\\degree", ""),
        ("{,}", ","),
        ("\\textbf{", "\\text{"),
        ("\\textrm{", "\\text{"),
        ("\\mathrm{", "\\text{"),
        ("\\mathbf{", "\\text{"),
        ("\\times", "\\cdot"),
    ] {
        s = s.replace(from, to);
    }
    let mut s = s.trim();
    for (open, close) in [("\\(", "\\)"), ("\\[", "\\]")] {
        if let Some(inner) = s.strip_prefix(open).and_then(|r| r.strip_suffix(close)) {
            s = inner.trim();
        }
    }
    // `x \in [-2,7]` answers the interval.
    let mut letters = s.chars();
    if letters.next().is_some_and(|c| c.is_ascii_alphabetic())
        && let Some(rest) = letters.as_str().trim_start().strip_prefix("\\in")
        && !rest.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        s = rest.trim();
    }
    let s = unbraced_subscripts(&root_as_power(s));
    drop_unit_words(&s).to_string()
}

/// `4210_{5}` as `4210_5`: a base written either way is one answer.
fn unbraced_subscripts(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("_{") {
        out.push_str(&rest[..pos + 1]);
        rest = &rest[pos + 2..];
        match balanced(rest) {
            Some(sub) if sub.chars().all(|c| c.is_ascii_alphanumeric()) => {
                out.push_str(sub);
                rest = &rest[sub.len() + 1..];
            }
            _ => out.push('{'),
        }
    }
    out.push_str(rest);
    out
}

/// `\sqrt[3]{x}` as `{x}^{\frac{1}{3}}`: [`normalize_answer`] braces the `[` of an index.
fn root_as_power(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("\\sqrt[") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + "\\sqrt[".len()..];
        let parts = after.split_once(']').and_then(|(index, tail)| {
            let inner = tail.trim_start().strip_prefix('{')?;
            let radicand = balanced(inner)?;
            Some((index, radicand, &inner[radicand.len() + 1..]))
        });
        match parts {
            Some((index, radicand, tail)) => {
                out.push_str(&format!("{{{radicand}}}^{{\\frac{{1}}{{{index}}}}}"));
                rest = tail;
            }
            None => {
                out.push_str("\\sqrt[");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A number followed by unit words is the number: `5\text{km}`, `18 dollars`, `3 apples.`
/// A word of one letter stays (`2 x` is a product), as does `\text{(A)}` or a lone word.
fn drop_unit_words(s: &str) -> &str {
    let unit_word = |t: &str| t.chars().all(|c| c.is_ascii_alphabetic() || matches!(c, ' ' | '.' | '\''));
    for command in ["\\text{", "\\mbox{"] {
        if let Some(pos) = s.rfind(command)
            && pos > 0
            && let Some(content) = balanced(&s[pos + command.len()..])
            && unit_word(content)
            && s[..pos].trim_end().ends_with(|c: char| c.is_ascii_digit() || c == '}')
        {
            return s[..pos].trim_end();
        }
    }
    if let Some((head, tail)) = s.split_once(char::is_whitespace) {
        let numeric = head.chars().all(|c| c.is_ascii_digit() || ".,-/$\\".contains(c));
        let word = tail.trim_start().split(' ').next().unwrap_or("");
        if numeric && head.contains(|c: char| c.is_ascii_digit()) && word.len() > 1 && unit_word(tail) {
            return head;
        }
    }
    s
}

/// The cells of a `pmatrix`/`bmatrix`/`matrix`, row by row; `None` for anything else.
fn matrix(s: &str) -> Option<Vec<Vec<String>>> {
    let kind = ["pmatrix", "bmatrix", "matrix"].into_iter().find(|k| s.starts_with(&format!("\\begin{{{k}}}")))?;
    let body = s.strip_prefix(&format!("\\begin{{{kind}}}"))?.strip_suffix(&format!("\\end{{{kind}}}"))?;
    let rows = body.split("\\\\").map(str::trim).filter(|row| !row.is_empty());
    Some(rows.map(|row| row.split('&').map(|cell| cell.trim().to_string()).collect()).collect())
}

/// The letter of a multiple-choice answer, `(C)` or `C` once normalized.
fn choice(s: &str) -> Option<char> {
    let letter = s.strip_prefix('(').and_then(|r| r.strip_suffix(')')).unwrap_or(s);
    let mut chars = letter.chars();
    let c = chars.next()?;
    (c.is_ascii_uppercase() && chars.next().is_none()).then_some(c)
}

/// How a normalized answer is compared: as a whole, or by its parts.
#[derive(Debug, PartialEq)]
enum Shape {
    /// `(-\infty,1)\cup[2,3]`: intervals in any order.
    Union(Vec<String>),
    /// `(1,2]`, `(3,\frac{\pi}{2})`: brackets and elements in order.
    Group(char, char, Vec<String>),
    /// `\{1,2\}`, `1,-2`, `1\pm\sqrt{19}`: elements in any order.
    List(Vec<String>),
    Atom,
}

fn shape(s: &str) -> Shape {
    let union = split_top(s, "\\cup");
    if union.len() > 1 {
        return Shape::Union(union);
    }
    if let Some(inner) = s.strip_prefix("\\{").and_then(|r| r.strip_suffix("\\}")) {
        return Shape::List(expand_pm(split_top(inner, ",")));
    }
    let (Some(open), Some(close)) = (s.chars().next(), s.chars().last()) else { return Shape::Atom };
    if matches!(open, '(' | '[') && matches!(close, ')' | ']') && closes_at_end(s) {
        let items = split_top(&s[1..s.len() - 1], ",");
        if items.len() > 1 {
            return Shape::Group(open, close, items);
        }
    }
    let items = split_top(s, ",");
    if items.len() > 1 || s.contains("\\pm") {
        return Shape::List(expand_pm(items));
    }
    Shape::Atom
}

/// Whether the bracket that opens `s` is closed by its last character (any bracket kind
/// closes any: `(1,2]` is an interval).
fn closes_at_end(s: &str) -> bool {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return i + c.len_utf8() == s.len();
        }
    }
    false
}

/// `s` split at each `separator` outside brackets and braces.
fn split_top(s: &str, separator: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut depth, mut start, mut i) = (0i32, 0, 0);
    while i < s.len() {
        let rest = &s[i..];
        if depth == 0 && rest.starts_with(separator) {
            parts.push(s[start..i].to_string());
            i += separator.len();
            start = i;
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
        i += c.len_utf8();
    }
    parts.push(s[start..].to_string());
    parts
}

/// `a\pm b` as the two answers `a+b` and `a-b`; other items unchanged.
fn expand_pm(items: Vec<String>) -> Vec<String> {
    items
        .into_iter()
        .flat_map(|item| match item.split_once("\\pm") {
            Some((a, b)) => vec![format!("{a}+{b}"), format!("{a}-{b}")],
            None => vec![item],
        })
        .collect()
}

/// Whether two normalized single answers have the same value: exactly when both are
/// rational literals, else at both sample points within the tolerance.
fn same_value(a: &str, b: &str) -> bool {
    if let (Some((p, q)), Some((r, t))) = (rational(a), rational(b)) {
        return p.checked_mul(t).zip(r.checked_mul(q)).is_some_and(|(left, right)| left == right);
    }
    (0..2).all(|sample| match (evaluate(a, sample), evaluate(b, sample)) {
        (Some(x), Some(y)) => close(x, y),
        _ => false,
    })
}

/// The exact value of a rational literal as numerator and denominator: `-0.25`,
/// `\frac{3}{4}`, the mixed number `1\frac{4}{5}`. Comparing these exactly keeps
/// `\frac{2010012}{2010013}` apart from `1`, which a relative 1e-6 would merge.
fn rational(s: &str) -> Option<(i128, i128)> {
    let (sign, s) = s.strip_prefix('-').map_or((1, s), |rest| (-1, rest));
    let (whole, fraction) = s.find("\\frac{").map_or((s, None), |pos| (&s[..pos], Some(&s[pos..])));
    let (int, decimals) = whole.split_once('.').unwrap_or((whole, ""));
    let digits = |t: &str| t.len() <= 30 && t.bytes().all(|c| c.is_ascii_digit());
    let no_digits = int.is_empty() && decimals.is_empty();
    if !digits(int) || !digits(decimals) || (no_digits && (fraction.is_none() || !whole.is_empty())) {
        return None;
    }
    let denominator = 10i128.checked_pow(u32::try_from(decimals.len()).ok()?)?;
    let mut numerator = format!("0{int}{decimals}").parse::<i128>().ok()?;
    let mut denominator = denominator;
    if let Some(fraction) = fraction {
        let (p, rest) = fraction.strip_prefix("\\frac{")?.split_once("}{")?;
        let q = rest.strip_suffix('}')?;
        let (p, q) = (p.parse::<i128>().ok()?, q.parse::<i128>().ok()?);
        if !decimals.is_empty() || q == 0 {
            return None;
        }
        numerator = numerator.checked_mul(q)?.checked_add(p)?;
        denominator = q;
    }
    Some((sign * numerator, denominator))
}

/// Equal within [`RELATIVE_TOLERANCE`]; whole values that a double holds exactly must be
/// equal exactly, so that float rounding never merges two different integers.
fn close(x: f64, y: f64) -> bool {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if x.fract() == 0.0 && y.fract() == 0.0 && x.abs() < EXACT && y.abs() < EXACT {
        return x == y;
    }
    (x - y).abs() <= RELATIVE_TOLERANCE * x.abs().max(y.abs())
}

/// The value of a normalized LaTeX expression with each one-letter variable at its value
/// for `sample`; `None` when it cannot be read or is not a finite real number.
fn evaluate(s: &str, sample: usize) -> Option<f64> {
    let mut parser = Parser { s: s.as_bytes(), pos: 0, depth: 0, sample };
    let value = parser.expr()?;
    (parser.pos == s.len() && value.is_finite()).then_some(value)
}

/// A recursive-descent reader of the LaTeX arithmetic subset, in the usual precedence:
/// `expr = term (± term)*`, `term = unary ((* | \cdot | / | implicit) unary)*`,
/// `unary = (- | +)* power`, `power = primary (^ primary)?`.
struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
    sample: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, token: &str) -> bool {
        let found = self.s[self.pos..].starts_with(token.as_bytes());
        // `\pi` must not match the start of `\pitchfork`.
        let whole =
            !token.starts_with('\\') || !self.s.get(self.pos + token.len()).is_some_and(|c| c.is_ascii_alphabetic());
        if found && whole {
            self.pos += token.len();
        }
        found && whole
    }

    fn expr(&mut self) -> Option<f64> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let mut value = self.term()?;
        loop {
            if self.eat("+") {
                value += self.term()?;
            } else if self.eat("-") {
                value -= self.term()?;
            } else {
                self.depth -= 1;
                return Some(value);
            }
        }
    }

    fn term(&mut self) -> Option<f64> {
        let mut value = self.unary()?;
        loop {
            if self.eat("*") || self.eat("\\cdot") {
                value *= self.unary()?;
            } else if self.eat("/") {
                value /= self.unary()?;
            } else if self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || b"({\\.".contains(&c)) {
                value *= self.power()?; // implicit product: `2\sqrt{2}`, `(a+5)(b+2)`
            } else {
                return Some(value);
            }
        }
    }

    fn unary(&mut self) -> Option<f64> {
        // A loop, not recursion: a run of signs must not grow the stack.
        let mut sign = 1.0;
        loop {
            if self.eat("-") {
                sign = -sign;
            } else if !self.eat("+") {
                return Some(sign * self.power()?);
            }
        }
    }

    fn power(&mut self) -> Option<f64> {
        let base = self.primary()?;
        if !self.eat("^") {
            return Some(base);
        }
        // `x^23` is `x^2 3` in LaTeX: an unbraced exponent is one character.
        let exponent = match self.peek()? {
            c if c.is_ascii_digit() => {
                self.pos += 1;
                f64::from(c - b'0')
            }
            b'-' => {
                self.pos += 1;
                -self.primary()?
            }
            _ => self.primary()?,
        };
        Some(base.powf(exponent))
    }

    fn primary(&mut self) -> Option<f64> {
        let c = self.peek()?;
        if c.is_ascii_digit() || c == b'.' {
            return self.number();
        }
        if c.is_ascii_alphabetic() {
            self.pos += 1;
            // Two letters in a row are a word (`east`), not a product of variables.
            if self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                return None;
            }
            return Some(variable(c, self.sample));
        }
        if self.eat("(") {
            return self.closed_by(")");
        }
        if self.eat("{") {
            return self.closed_by("}");
        }
        if self.eat("\\frac") {
            let numerator = self.braced()?;
            return Some(numerator / self.braced()?);
        }
        if self.eat("\\sqrt") {
            return Some(self.braced()?.sqrt());
        }
        if self.eat("\\pi") {
            return Some(std::f64::consts::PI);
        }
        None
    }

    fn closed_by(&mut self, close: &str) -> Option<f64> {
        let value = self.expr()?;
        self.eat(close).then_some(value)
    }

    fn braced(&mut self) -> Option<f64> {
        if self.eat("{") { self.closed_by("}") } else { None }
    }

    /// A decimal literal; an integer right before `\frac{p}{q}` of integers is a mixed
    /// number, as MATH writes them (`1\frac{4}{5}` is 9/5).
    fn number(&mut self) -> Option<f64> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit() || c == b'.') {
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).ok()?;
        let value: f64 = text.parse().ok()?;
        if !text.contains('.')
            && let Some((p, q)) = self.integer_fraction()
        {
            return Some(value + p / q);
        }
        Some(value)
    }

    /// `\frac{p}{q}` with integer `p` and `q` next, consumed; the parser stays put if not.
    fn integer_fraction(&mut self) -> Option<(f64, f64)> {
        let rest = std::str::from_utf8(&self.s[self.pos..]).ok()?.strip_prefix("\\frac{")?;
        let (p, rest) = rest.split_once("}{")?;
        let (q, _) = rest.split_once('}')?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
        if !digits(p) || !digits(q) {
            return None;
        }
        self.pos += "\\frac{}{}".len() + p.len() + q.len();
        Some((p.parse().ok()?, q.parse().ok()?))
    }
}

/// The value of a one-letter variable at a sample point: distinct per letter and sample,
/// and away from 0 and 1, where `x^2` and `x^3` agree.
fn variable(letter: u8, sample: usize) -> f64 {
    1.3 + f64::from(letter % 64) * 0.137 + sample as f64 * 0.711
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::text::normalize_answer;

    /// Pairs that must grade equal: (predicted, gold), the gold as MATH, MATH500 or GSM8K
    /// writes it.
    const EQUAL: &[(&str, &str)] = &[
        // thousands separators, `\!`, decimals
        ("10080", "10,\\!080"),
        ("11111111100", "11,\\! 111,\\! 111,\\! 100"),
        ("1600", "1,600"),
        ("1,450,000", "1450000"),
        ("-10.00", "-10"),
        ("0.0000672", ".0000672"),
        ("0.35625", ".35625"),
        ("18.9", "\\$18.90"),
        ("32348", "\\$32,\\!348"),
        ("36 dollars", "\\$36"),
        ("382", "382 \\text{ dollars}"),
        ("5.4", "5.4 \\text{ cents}"),
        ("25", "25 \\, \\text{km}"),
        ("0.25", "0.25\\,\\text{ cm}"),
        ("15", "15\\mbox{ cm}^2"),
        ("864", "864 \\mbox{ inches}^2"),
        ("85", "85\\text{feet}"),
        ("30", "30\\%"),
        ("7.2", "7.2\\%"),
        // degrees
        ("106", "106^\\circ"),
        ("180", "180^{\\circ}"),
        ("120°", "120^\\circ"),
        ("69", "69\\text{ degrees}"),
        ("270/7", "\\frac{270}7\\text{ degrees}"),
        // fractions: \frac, \dfrac, \tfrac, unbraced arguments, slash, decimal, mixed numbers
        ("3/4", "\\frac 34"),
        ("0.75", "\\frac 34"),
        ("\\frac{9}{19}", "\\frac9{19}"),
        ("0.34", "\\dfrac{17}{50}"),
        ("\\tfrac{4}{9}", "\\frac{4}{9}"),
        ("\\tfrac 94", "2.25"),
        ("0.5", "\\dfrac12"),
        ("1/2", "\\frac{1}{2}"),
        ("137.5", "137 \\frac{1}{2}"),
        ("9/5", "1\\frac{4}{5}"),
        ("-\\frac{24}{25}", "-0.96"),
        ("\\frac{-24}{25}", "-\\frac{24}{25}"),
        ("11\\frac{1}{2}", "23/2"),
        // roots and pi
        ("\\frac{1}{2}\\sqrt{3}", "\\frac{\\sqrt{3}}{2}"),
        ("\\frac{1}{\\sqrt{3}}", "\\frac{\\sqrt{3}}{3}"),
        ("\\sqrt{8}", "2\\sqrt{2}"),
        ("\\sqrt{242}", "11\\sqrt2"),
        ("2\\sqrt{5}", "2 \\sqrt{5}"),
        ("\\sqrt{21}/5", "\\frac{\\sqrt{21}}{5}"),
        ("11 + 11\\sqrt{5}", "11 \\sqrt{5} + 11"),
        ("\\frac12\\pi", "\\frac{\\pi}{2}"),
        ("-\\pi/6", "-\\frac{\\pi}{6}"),
        ("2\\pi + 18", "18+2\\pi"),
        ("\\frac{3 \\sqrt 3}{4}", "\\frac{3\\sqrt{3}}{4}"),
        ("\\sqrt[3]{8}", "2"),
        ("2^{1/2}", "\\sqrt{2}"),
        ("2 \\times 3", "6"),
        // intervals, tuples, unions
        ("(-\\infty,0]", "(-\\infty, 0]"),
        ("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("(1.5, -13)", "\\left( \\frac{3}{2}, -13 \\right)"),
        ("(0.6, 8/3]", "\\left(\\frac{3}{5},\\frac{8}{3}\\right]"),
        ("[\\pi^2/8, 5\\pi^2/4]", "\\left[ \\frac{\\pi^2}{8}, \\frac{5 \\pi^2}{4} \\right]"),
        ("(3, \\infty) \\cup (-\\infty, 2)", "(-\\infty, 2) \\cup (3, \\infty)"),
        ("[-2,7]", "x \\in [-2,7]"),
        ("(1,-16,-4,43)", "(1, -16, -4, 43)"),
        // lists and sets in any order, plus-minus
        ("-2,1", "1,-2"),
        ("7, 5, 3", "3, 5, 7"),
        ("-2, 1-\\sqrt{5}, 1+\\sqrt{5}", "\\{1\\pm\\sqrt{5},-2\\}"),
        ("1+\\sqrt{19}, 1-\\sqrt{19}", "1 \\pm \\sqrt{19}"),
        ("3-2\\sqrt2, 3+2\\sqrt2", "3 \\pm 2 \\sqrt{2}"),
        ("5,-11", "5,\\,-11"),
        // equations, variables and polynomials
        ("5", "x=5"),
        ("2x+3", "y = 2x + 3"),
        ("3 + 2x", "y = 2x + 3"),
        ("-2x", "y = -2x"),
        ("2(3r^2-2r-12)", "6r^2-4r-24"),
        ("x^5-x^4+x^3-x^2+x-1", "x^5 - x^4 + x^3 - x^2 + x - 1"),
        ("-q+p", "p - q"),
        ("(b+2)(a+5)", "(a+5)(b+2)"),
        ("7i-2", "-2 + 7i"),
        ("R^2 \\cdot 3", "3R^2"),
        // text answers, multiple choice, bases, matrices
        ("Evelyn", "\\text{Evelyn}"),
        ("\\textbf{east}", "\\text{east}"),
        ("(B)", "\\text{(B)}"),
        ("C", "\\text{(C)}"),
        ("\\textbf{(E)}", "\\text{(E)}"),
        ("4210_5", "4210_{5}"),
        ("\\begin{pmatrix}-1&0\\\\0&-1\\end{pmatrix}", "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}"),
        (
            "\\begin{pmatrix} -\\frac{1}{3} \\\\ \\frac{2}{3} \\\\ \\frac53 \\end{pmatrix}",
            "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
        ),
        ("$\\frac{3}{56}$", "\\frac{3}{56}"),
        ("\\(12\\pi\\)", "12\\pi"),
        ("12π", "12\\pi"),
        ("−5", "-5"),
    ];

    /// Pairs that must grade unequal, however close they look.
    const UNEQUAL: &[(&str, &str)] = &[
        ("1/2", "2"),
        ("\\frac{1}{2}", "\\frac{2}{1}"),
        ("0.33", "\\frac{1}{3}"),
        ("0.3333333", "\\frac{1}{3}"),
        ("1", "\\frac{4036082}{4036081}"), // MATH answers 1 and this differ by 2.5e-7
        ("3.14", "\\pi"),
        ("12", "120"),
        ("-5", "5"),
        ("1000001", "1000000"),
        ("1025", "2^{10}"),
        ("\\sqrt{2}", "2"),
        ("\\sqrt{5}", "2\\sqrt{5}"),
        ("\\frac{\\pi}{3}", "\\frac{\\pi}{2}"),
        ("68.5", "137 \\frac{1}{2}"), // a mixed number, not a product
        ("x^3", "x^2"),
        ("2x-3", "y = 2x + 3"),
        ("5x - 7y + 11z - 4 = 0", "5x - 7y + 11z + 4 = 0"),
        ("1 + 12i", "1 - 12i"),
        ("(2,1)", "(1,2)"),
        ("[1,2]", "(1,2)"),
        ("(3,4)", "(3,4]"),
        ("(-2,1)", "-2,1"),
        ("1,2", "1,-2"),
        ("1", "1,-2"),
        ("3, 5", "3, 5, 7"),
        ("1+\\sqrt{19}", "1 \\pm \\sqrt{19}"),
        ("(-\\infty, 2) \\cup (3, \\infty) \\cup (5, 6)", "(-\\infty, 2) \\cup (3, \\infty)"),
        ("(B)", "\\text{(C)}"),
        ("\\text{west}", "\\text{east}"),
        ("\\text{neve}", "\\text{even}"),
        ("204", "204_5"),
        ("2516_6", "2516_8"),
        ("\\begin{pmatrix} 1 & 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
        ("\\begin{pmatrix} -7 \\\\ 16 \\\\ 6 \\end{pmatrix}", "\\begin{pmatrix} -7 \\\\ 16 \\\\ 5 \\end{pmatrix}"),
        ("\\cot x", "\\tan x"),
        ("", "5"),
        ("-5", "--5"),
        (".", "0"),
        ("-", "0"),
    ];

    #[test]
    fn equivalent_pairs() {
        for (predicted, gold) in EQUAL {
            assert!(equivalent(predicted, gold), "{predicted:?} should equal {gold:?}");
            assert!(equivalent(gold, predicted), "{gold:?} should equal {predicted:?}");
        }
    }

    #[test]
    fn unequal_pairs() {
        for (predicted, gold) in UNEQUAL {
            assert!(!equivalent(predicted, gold), "{predicted:?} should differ from {gold:?}");
            assert!(!equivalent(gold, predicted), "{gold:?} should differ from {predicted:?}");
        }
    }

    #[test]
    fn extraction_order() {
        let cases = [
            ("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\n#### 18", Some("18")),
            ("\\boxed{3} is wrong.\n#### 4\nThe answer is 5.", Some("4")),
            ("First $\\boxed{1}$, then $x = \\boxed{\\frac{1}{2}}$.", Some("\\frac{1}{2}")),
            ("2 + 2 = 4, so the answer is 42.", Some("42")),
            ("The answer is $\\frac{3}{4}$. Question: what is 1+1?", Some("\\frac{3}{4}")),
            ("Answer: (C)", Some("(C)")),
            ("So the final answer is: **3.5**", Some("3.5")),
            ("The answer is therefore 12 pages.", Some("12")),
            ("The answer is Evelyn.", Some("Evelyn")),
            ("The answer is pi/2.", Some("pi/2")),
            ("She has 12 apples, eats 5 and keeps 7", Some("7")),
            ("The answer is\n12", Some("12")),
            ("no answer here", None),
            ("", None),
        ];
        for (generation, expected) in cases {
            assert_eq!(extract_answer(generation).as_deref(), expected, "{generation:?}");
        }
        let stated = extract_answer("So the answer is 3.5 dollars.").unwrap();
        assert!(equivalent(&stated, "3.50"), "{stated:?}");
    }

    #[test]
    fn deep_nesting_is_unequal_not_a_crash() {
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(!equivalent(&deep, "2"));
        let braces = format!("{}1{}", "{".repeat(10_000), "}".repeat(10_000));
        assert!(!equivalent(&braces, "2"));
    }

    #[test]
    fn malformed_input_is_unequal_not_a_panic() {
        let inputs = [
            "",
            "\\",
            "{",
            "}",
            "(",
            ")]",
            "\\frac{",
            "\\frac{1}{",
            "\\sqrt[",
            "\\sqrt[3",
            "_{",
            "_{é",
            "x \\in",
            "\\begin{pmatrix}",
            "\\begin{pmatrix}\\end{pmatrix}",
            "é½ π",
            "1\\frac{2}{",
            "\\{",
            "\\cup",
            ",,",
            "\\pm",
            "2^",
            "2^{",
            "\\text{",
            "$",
            "\\(",
            "99999999999999999999999999999999999999999.5",
        ];
        for a in inputs {
            for b in inputs {
                assert_eq!(equivalent(a, b), equivalent(b, a), "{a:?} vs {b:?}");
            }
            let _ = extract_answer(a);
            assert!(!equivalent(a, "7"), "{a:?}");
        }
    }

    fn rows(file: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(file).unwrap();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    const GSM8K_TEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/problems/gsm8k_test.jsonl");
    const MATH500_TEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/problems/math500_test.jsonl");

    fn gsm8k_gold(row: &serde_json::Value) -> (&str, &str) {
        let solution = row["answer"].as_str().unwrap();
        (solution, solution.rsplit("####").next().unwrap().trim())
    }

    #[test]
    fn gsm8k_gold_solutions_grade_correct() {
        let rows = rows(GSM8K_TEST);
        let mut correct = 0;
        for row in &rows {
            let (solution, gold) = gsm8k_gold(row);
            match extract_answer(solution) {
                Some(answer) if equivalent(&answer, gold) => correct += 1,
                other => eprintln!("gsm8k: extracted {other:?}, gold {gold:?}"),
            }
        }
        eprintln!("gsm8k gold solutions graded correct: {correct}/{}", rows.len());
        assert_eq!(rows.len(), 1319);
        assert_eq!(correct, rows.len());
    }

    #[test]
    fn gsm8k_wrong_answers_grade_wrong() {
        let rows = rows(GSM8K_TEST);
        let golds: Vec<&str> = rows.iter().map(|row| gsm8k_gold(row).1).collect();
        let (mut matched, mut truly_equal) = (0, 0);
        for pair in golds.windows(2) {
            matched += usize::from(equivalent(pair[1], pair[0]));
            truly_equal += usize::from(normalize_answer(pair[1]) == normalize_answer(pair[0]));
        }
        eprintln!("gsm8k next-row answers graded correct: {matched}/{}, truly equal: {truly_equal}", golds.len() - 1);
        assert_eq!(matched, truly_equal);
    }

    #[test]
    fn math500_gold_solutions_grade_correct() {
        let rows = rows(MATH500_TEST);
        let mut correct = 0;
        for row in &rows {
            let (solution, gold) = (row["solution"].as_str().unwrap(), row["answer"].as_str().unwrap());
            match extract_answer(solution) {
                Some(answer) if equivalent(&answer, gold) => correct += 1,
                other => eprintln!("math500 {}: extracted {other:?}, gold {gold:?}", row["unique_id"]),
            }
        }
        eprintln!("math500 gold solutions graded correct: {correct}/{}", rows.len());
        assert_eq!(rows.len(), 500);
        assert!(correct * 100 >= rows.len() * 99, "{correct}/{}", rows.len());
    }

    #[test]
    fn math500_wrong_answers_grade_wrong() {
        let rows = rows(MATH500_TEST);
        let golds: Vec<&str> = rows.iter().map(|row| row["answer"].as_str().unwrap()).collect();
        let (mut matched, mut truly_equal) = (0, 0);
        for pair in golds.windows(2) {
            if equivalent(pair[1], pair[0]) {
                matched += 1;
                eprintln!("math500 next-row match: {:?} vs {:?}", pair[1], pair[0]);
            }
            truly_equal += usize::from(normalize_answer(pair[1]) == normalize_answer(pair[0]));
        }
        eprintln!("math500 next-row answers graded correct: {matched}/{}, truly equal: {truly_equal}", golds.len() - 1);
        assert_eq!(matched, truly_equal);
    }
}
