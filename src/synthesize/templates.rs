//! Prompt templates: the files under jobs/synthesis/, compiled in as defaults, or the same
//! names in a folder the user gives (`templates = "my/prompts"`). A template is the user
//! message, with `{{name}}` where a value goes; double braces, because the values and the
//! templates themselves are full of LaTeX's single ones.

use std::path::Path;

use crate::error::{Context, Error, Result};

/// One prompt, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The file's stem: `tutorship_teacher`.
    pub name: &'static str,
    pub text: String,
    /// xxh3-64 hex of the text: records made from another text are another lineage.
    pub hash: String,
}

/// The bundled templates, by name.
const BUILTIN: [(&str, &str); 4] = [
    ("response_diversity", include_str!("../../jobs/synthesis/response_diversity.txt")),
    ("query_expansion", include_str!("../../jobs/synthesis/query_expansion.txt")),
    ("tutorship_student", include_str!("../../jobs/synthesis/tutorship_student.txt")),
    ("tutorship_teacher", include_str!("../../jobs/synthesis/tutorship_teacher.txt")),
];

/// The values a template may use.
const PLACEHOLDERS: [&str; 3] = ["question", "solution", "attempt"];

impl Template {
    /// The template `name` from `folder` (as `{name}.txt`), or the bundled one; it must use
    /// every placeholder in `required` and no unknown one.
    pub fn load(name: &'static str, folder: Option<&Path>, required: &[&str]) -> Result<Template> {
        let text = match folder {
            Some(folder) => {
                let path = folder.join(format!("{name}.txt"));
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading the prompt template {}", path.display()))
                    .map_err(|e| {
                        e.hint(format!("a templates folder holds {name}.txt; jobs/synthesis/ has the bundled ones"))
                    })?
            }
            None => BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, text)| text.to_string())
                .ok_or_else(|| Error::Internal(format!("no bundled template {name}")))?,
        };
        let used = placeholders(&text);
        if let Some(unknown) = used.iter().find(|p| !PLACEHOLDERS.contains(&p.as_str())) {
            return Err(Error::user(format!("the template {name} uses an unknown placeholder {{{{{unknown}}}}}"))
                .hint(format!("a template may use {}", PLACEHOLDERS.map(|p| format!("{{{{{p}}}}}")).join(", "))));
        }
        if let Some(missing) = required.iter().find(|r| !used.iter().any(|u| u == *r)) {
            return Err(Error::user(format!("the template {name} does not use {{{{{missing}}}}}"))
                .hint("without it the model never sees that part of the problem"));
        }
        let hash = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()));
        Ok(Template { name, text, hash })
    }

    /// The text with each `{{name}}` replaced by its value in `values`.
    pub fn render(&self, values: &[(&str, &str)]) -> String {
        let mut out = String::with_capacity(self.text.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
        let mut rest = self.text.as_str();
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start + 2..].find("}}") else { break };
            let name = &rest[start + 2..start + 2 + len];
            match values.iter().find(|(n, _)| *n == name) {
                Some((_, value)) => {
                    out.push_str(&rest[..start]);
                    out.push_str(value.trim());
                }
                None => out.push_str(&rest[..start + 4 + len]),
            }
            rest = &rest[start + 4 + len..];
        }
        out.push_str(rest);
        out.trim_end().to_string()
    }
}

/// The `{{name}}`s a template uses (names of letters and underscores only).
fn placeholders(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(len) = after.find("}}") else { break };
        let name = &after[..len];
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphabetic() || c == '_') {
            found.push(name.to_string());
        }
        rest = &after[len + 2..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_templates_load_and_render_every_value() {
        let teacher = Template::load("tutorship_teacher", None, &["question", "solution", "attempt"]).unwrap();
        let text = teacher.render(&[("question", "What is $\\frac{1}{2}+1$?"), ("solution", "S"), ("attempt", "A")]);
        assert!(text.contains("What is $\\frac{1}{2}+1$?\n") && text.contains("\nA\n"), "{text}");
        assert!(!text.contains("{{"), "{text}");
        for (name, _) in BUILTIN {
            let template = Template::load(name, None, &["question"]).unwrap();
            assert_eq!(template.hash.len(), 16);
        }
    }

    #[test]
    fn a_users_folder_replaces_them_and_bad_templates_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tutorship_student.txt"), "Q: {{question}}\\boxed{x}").unwrap();
        let own = Template::load("tutorship_student", Some(dir.path()), &["question"]).unwrap();
        assert_eq!(own.render(&[("question", " 1+1? ")]), "Q: 1+1?\\boxed{x}");
        assert_ne!(own.hash, Template::load("tutorship_student", None, &["question"]).unwrap().hash);

        std::fs::write(dir.path().join("response_diversity.txt"), "{{question}} {{answer}}").unwrap();
        let err = Template::load("response_diversity", Some(dir.path()), &["question"]).unwrap_err();
        assert!(err.to_string().contains("unknown placeholder {{answer}}"), "{err}");
        std::fs::write(dir.path().join("tutorship_teacher.txt"), "{{question}}").unwrap();
        let err = Template::load("tutorship_teacher", Some(dir.path()), &["question", "attempt"]).unwrap_err();
        assert!(err.to_string().contains("does not use {{attempt}}"), "{err}");
        let err = Template::load("query_expansion", Some(dir.path()), &["question"]).unwrap_err();
        assert!(err.to_string().contains("query_expansion.txt"), "{err}");
    }
}
