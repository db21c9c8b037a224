//! Templates: how a row's columns become the text a model trains on.
//!
//! A template is a prompt and a response, each a string with `{column}` placeholders
//! (`{{` and `}}` are literal braces). The record's text is prompt followed by response,
//! tokenized as one string; SFT trains only on the response's tokens and the EOS, CPT
//! on every token. Both modes see the same tokens, so one tokenized table serves both.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::Serialize;

use crate::error::{Error, Result};

/// Documents: the text, all of it trained on.
pub const TEXT_PROMPT: &str = "";
pub const TEXT_RESPONSE: &str = "{text}";

/// Problems: a plain question/answer layout. The prompt ends at `Answer:` so that the
/// response starts with a space and a word, where a GPT-2-style pre-tokenizer always
/// splits: the prompt's tokens are the same with or without the response after them.
pub const PROBLEM_PROMPT: &str = "Question: {question}\nAnswer:";
pub const PROBLEM_RESPONSE: &str = " {solution}";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    pub prompt: String,
    pub response: String,
    #[serde(skip)]
    prompt_parts: Vec<Part>,
    #[serde(skip)]
    response_parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Column(String),
}

/// A row's text and where its prompt ends (a byte offset).
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered<'a> {
    /// The column's own value when the template is one column and nothing else.
    pub text: Cow<'a, str>,
    pub prompt_bytes: usize,
}

impl Template {
    pub fn new(prompt: &str, response: &str) -> Result<Template> {
        let prompt_parts = parse(prompt).map_err(|e| Error::user(format!("prompt template `{prompt}`: {e}")))?;
        let response_parts =
            parse(response).map_err(|e| Error::user(format!("response template `{response}`: {e}")))?;
        if !response_parts.iter().any(|p| matches!(p, Part::Column(_))) {
            return Err(Error::user(format!("response template `{response}` names no column"))
                .hint("write the column in braces, e.g. --response ' {solution}'"));
        }
        Ok(Template { prompt: prompt.into(), response: response.into(), prompt_parts, response_parts })
    }

    pub fn text() -> Template {
        Template::new(TEXT_PROMPT, TEXT_RESPONSE).expect("static template")
    }

    pub fn problem() -> Template {
        Template::new(PROBLEM_PROMPT, PROBLEM_RESPONSE).expect("static template")
    }

    /// The template a user chose: a named layout (`text`, `problem`), or a custom
    /// `response` with an optional `prompt`; `None` when nothing was chosen.
    pub fn choose(name: Option<&str>, prompt: Option<&str>, response: Option<&str>) -> Result<Option<Template>> {
        match (name, prompt, response) {
            (None, None, None) => Ok(None),
            (Some("text"), None, None) => Ok(Some(Template::text())),
            (Some("problem"), None, None) => Ok(Some(Template::problem())),
            (None, prompt, Some(response)) => Ok(Some(Template::new(prompt.unwrap_or(""), response)?)),
            _ => Err(Error::user("the template is `text` or `problem`, or a `response` (and a `prompt`) instead")
                .hint("e.g. --template problem, or --prompt 'Q: {question}' --response ' {solution}'")),
        }
    }

    /// The columns the template reads, each once.
    pub fn columns(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.prompt_parts
            .iter()
            .chain(&self.response_parts)
            .filter_map(|p| match p {
                Part::Column(c) if seen.insert(c.clone()) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    /// Whether some tokens are prompt (and so left out of the SFT loss).
    pub fn has_prompt(&self) -> bool {
        !self.prompt_parts.is_empty()
    }

    /// Fills the template; `value(column)` gives a row's value, `None` for null. A row
    /// with a null column renders nothing: the caller counts it as skipped.
    pub fn render<'a>(&self, mut value: impl FnMut(&str) -> Option<&'a str>) -> Option<Rendered<'a>> {
        if let ([], [Part::Column(column)]) = (self.prompt_parts.as_slice(), self.response_parts.as_slice()) {
            return Some(Rendered { text: Cow::Borrowed(value(column)?), prompt_bytes: 0 });
        }
        let mut text = String::new();
        for part in &self.prompt_parts {
            push(&mut text, part, &mut value)?;
        }
        let prompt_bytes = text.len();
        for part in &self.response_parts {
            push(&mut text, part, &mut value)?;
        }
        Some(Rendered { text: Cow::Owned(text), prompt_bytes })
    }
}

fn push<'a>(text: &mut String, part: &Part, value: &mut impl FnMut(&str) -> Option<&'a str>) -> Option<()> {
    match part {
        Part::Literal(l) => text.push_str(l),
        Part::Column(c) => text.push_str(value(c)?),
    }
    Some(())
}

fn parse(template: &str) -> std::result::Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                literal.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed || name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return Err(format!("`{{{name}` is not a column placeholder such as {{question}}"));
                }
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Column(name));
            }
            '}' => return Err("a lone `}` (write `}}` for a literal brace)".into()),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_layout_marks_where_the_prompt_ends() {
        let t = Template::problem();
        assert_eq!(t.columns(), ["question", "solution"]);
        let r = t
            .render(|c| match c {
                "question" => Some("What is 2+2?"),
                "solution" => Some("2+2=4. #### 4"),
                _ => None,
            })
            .unwrap();
        assert_eq!(r.text, "Question: What is 2+2?\nAnswer: 2+2=4. #### 4");
        assert_eq!(&r.text[..r.prompt_bytes], "Question: What is 2+2?\nAnswer:");
    }

    #[test]
    fn text_layout_has_no_prompt() {
        let t = Template::text();
        assert!(!t.has_prompt());
        let rendered = t.render(|_| Some("x {y}")).unwrap();
        assert_eq!(rendered, Rendered { text: "x {y}".into(), prompt_bytes: 0 });
        assert!(matches!(rendered.text, Cow::Borrowed(_)), "one column alone is not copied");
        assert_eq!(t.render(|_| None), None);
    }

    #[test]
    fn braces_escape_and_bad_placeholders_fail() {
        let t = Template::new("{{{q}}}: ", "{a}").unwrap();
        assert_eq!(t.render(|c| Some(if c == "q" { "Q" } else { "A" })).unwrap().text, "{Q}: A");
        assert!(Template::new("{no space}", "{a}").is_err());
        assert!(Template::new("x } y", "{a}").is_err());
        assert!(Template::new("", "{a").is_err());
        assert!(Template::new("{q}", "no column").is_err());
        assert_eq!(Template::choose(Some("text"), None, None).unwrap(), Some(Template::text()));
        assert_eq!(Template::choose(None, None, None).unwrap(), None);
        assert!(Template::choose(Some("chat"), None, None).is_err());
        assert!(Template::choose(None, Some("{q}"), None).is_err(), "a prompt needs a response");
    }
}
