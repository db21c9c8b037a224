//! How input fields fill a table's columns. A preset is a named mapping for a dataset we
//! know; `--map column=field.path` builds or overrides one for any other JSONL or Parquet,
//! so a new dataset needs no code.

use std::fmt;

use serde::Serialize;

use super::text::TextSplit;
use crate::error::{Error, Result};

/// The two tables ingest fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Documents,
    Problems,
}

impl Target {
    pub fn table(self) -> &'static str {
        match self {
            Target::Documents => "documents",
            Target::Problems => "problems",
        }
    }

    pub fn parse(name: &str) -> Result<Target> {
        match name {
            "documents" => Ok(Target::Documents),
            "problems" => Ok(Target::Problems),
            other => Err(Error::user(format!("ingest fills `documents` or `problems`, not `{other}`"))),
        }
    }

    fn columns(self) -> &'static [Column] {
        use Column::*;
        match self {
            Target::Documents => &[Text, SourceId, Url],
            Target::Problems => &[Question, Solution, FinalAnswer, Level, Subject, Split, SourceId],
        }
    }
}

/// A column an input field can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Column {
    Text,
    Question,
    Solution,
    FinalAnswer,
    Level,
    Subject,
    Split,
    SourceId,
    Url,
}

impl Column {
    const ALL: [Column; 9] = [
        Column::Text,
        Column::Question,
        Column::Solution,
        Column::FinalAnswer,
        Column::Level,
        Column::Subject,
        Column::Split,
        Column::SourceId,
        Column::Url,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Column::Text => "text",
            Column::Question => "question",
            Column::Solution => "solution",
            Column::FinalAnswer => "final_answer",
            Column::Level => "level",
            Column::Subject => "subject",
            Column::Split => "split",
            Column::SourceId => "source_id",
            Column::Url => "url",
        }
    }

    /// Only `text` may join several fields (StackMathQA's question and answer).
    fn joins(self) -> bool {
        self == Column::Text
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A field path into a record: `meta.url` is the `url` key of the `meta` object.
pub type FieldPath = Vec<String>;

#[derive(Debug, Clone, Serialize)]
pub struct Mapping {
    pub target: Target,
    /// Each column and the field(s) that fill it; `text` joins several with a blank line.
    pub fields: Vec<(Column, Vec<FieldPath>)>,
    /// How `.txt` / `.tex` inputs are cut into documents.
    pub text_split: TextSplit,
}

impl Mapping {
    pub fn fields_of(&self, column: Column) -> &[FieldPath] {
        self.fields.iter().find(|(c, _)| *c == column).map_or(&[], |(_, f)| f.as_slice())
    }

    /// Sets a column from `--map column=field[+field...]`.
    pub fn set(&mut self, spec: &str) -> Result<()> {
        let (column, fields) = spec.split_once('=').ok_or_else(|| {
            Error::user(format!("`--map {spec}` is not of the form column=field"))
                .hint("for example --map text=body --map url=meta.url")
        })?;
        let allowed = self.target.columns();
        let column =
            Column::ALL.into_iter().find(|c| c.name() == column.trim() && allowed.contains(c)).ok_or_else(|| {
                let names: Vec<_> = allowed.iter().map(|c| c.name()).collect();
                Error::user(format!(
                    "`{}` is not a column of `{}` that ingest fills",
                    column.trim(),
                    self.target.table()
                ))
                .hint(format!("columns: {}", names.join(", ")))
            })?;
        let paths: Vec<FieldPath> =
            fields.split('+').map(|f| f.trim().split('.').map(str::to_string).collect::<Vec<_>>()).collect();
        if paths.iter().any(|p| p.iter().any(String::is_empty)) {
            return Err(Error::user(format!("`--map {spec}` names an empty field")));
        }
        if paths.len() > 1 && !column.joins() {
            return Err(Error::user(format!("only `text` may join several fields, not `{column}`")));
        }
        self.fields.retain(|(c, _)| *c != column);
        self.fields.push((column, paths));
        Ok(())
    }

    /// Fails when a column the table requires has no field.
    pub fn check(&self, is_text_input: bool) -> Result<()> {
        if is_text_input {
            return Ok(());
        }
        let required: &[Column] = match self.target {
            Target::Documents => &[Column::Text],
            Target::Problems => &[Column::Question, Column::Solution],
        };
        for column in required {
            if self.fields_of(*column).is_empty() {
                return Err(Error::user(format!(
                    "no field is mapped to `{column}`, which `{}` requires",
                    self.target.table()
                ))
                .hint(format!("add --map {column}=FIELD, or pick a --preset (`mathlake ingest --list-presets`)")));
            }
        }
        Ok(())
    }
}

/// A named mapping for a dataset mathlake knows.
pub struct Preset {
    pub name: &'static str,
    pub about: &'static str,
    target: Target,
    fields: &'static [(Column, &'static [&'static str])],
    text_split: TextSplit,
}

use Column::*;

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "gsm8k",
        about: "GSM8K {question, answer}; the answer's `#### N` fills final_answer",
        target: Target::Problems,
        fields: &[(Question, &["question"]), (Solution, &["answer"])],
        text_split: TextSplit::Paragraphs,
    },
    Preset {
        name: "math",
        about: "MATH {problem, level, type, solution}; the last \\boxed{...} fills final_answer",
        target: Target::Problems,
        fields: &[(Question, &["problem"]), (Solution, &["solution"]), (Level, &["level"]), (Subject, &["type"])],
        text_split: TextSplit::Paragraphs,
    },
    Preset {
        name: "math500",
        about: "MATH500 {problem, solution, answer, subject, level, unique_id}",
        target: Target::Problems,
        fields: &[
            (Question, &["problem"]),
            (Solution, &["solution"]),
            (FinalAnswer, &["answer"]),
            (Level, &["level"]),
            (Subject, &["subject"]),
            (SourceId, &["unique_id"]),
        ],
        text_split: TextSplit::Paragraphs,
    },
    Preset {
        name: "stackmathqa",
        about: "StackMathQA {Q, A, meta}: question and answer joined into one document",
        target: Target::Documents,
        fields: &[(Text, &["Q", "A"]), (Url, &["meta.url"])],
        text_split: TextSplit::Paragraphs,
    },
    Preset {
        name: "dolma",
        about: "Dolma / Common Crawl JSONL {id, text, metadata.url, ...}",
        target: Target::Documents,
        fields: &[(Text, &["text"]), (SourceId, &["id"]), (Url, &["metadata.url"])],
        text_split: TextSplit::Paragraphs,
    },
    Preset {
        name: "wikitext",
        about: "WikiText .txt: one document per article (` = Title = ` lines)",
        target: Target::Documents,
        fields: &[],
        text_split: TextSplit::WikiArticles,
    },
    Preset {
        name: "latex",
        about: ".tex files: one document per \\chapter / \\section, paragraphs beyond the size cap",
        target: Target::Documents,
        fields: &[],
        text_split: TextSplit::LatexSections,
    },
    Preset {
        name: "web",
        about: "WARC, WET and HTML pages: main content with formulas as LaTeX, URL and record id kept",
        target: Target::Documents,
        fields: &[],
        text_split: TextSplit::Paragraphs,
    },
    Preset {
        name: "text",
        about: "plain .txt: a file is a document, cut at blank lines beyond the size cap",
        target: Target::Documents,
        fields: &[],
        text_split: TextSplit::Paragraphs,
    },
];

impl Preset {
    pub fn find(name: &str) -> Result<&'static Preset> {
        PRESETS.iter().find(|p| p.name == name).ok_or_else(|| {
            let names: Vec<_> = PRESETS.iter().map(|p| p.name).collect();
            let hint = match crate::suggest::nearest(name, &names) {
                Some(near) => format!("did you mean `{near}`? presets: {}", names.join(", ")),
                None => format!("presets: {}", names.join(", ")),
            };
            Error::user(format!("no preset named `{name}`")).hint(hint)
        })
    }

    pub fn target(&self) -> Target {
        self.target
    }

    pub fn mapping(&self) -> Mapping {
        Mapping {
            target: self.target,
            fields: self
                .fields
                .iter()
                .map(|(c, paths)| (*c, paths.iter().map(|p| p.split('.').map(str::to_string).collect()).collect()))
                .collect(),
            text_split: self.text_split,
        }
    }
}

/// An empty mapping for `--table`, filled by `--map`.
pub fn generic(target: Target) -> Mapping {
    Mapping { target, fields: Vec::new(), text_split: TextSplit::Paragraphs }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_complete_and_unique() {
        let mut names = std::collections::HashSet::new();
        for preset in PRESETS {
            assert!(names.insert(preset.name), "duplicate preset {}", preset.name);
            let is_text = preset.fields.is_empty();
            preset.mapping().check(is_text).unwrap();
        }
    }

    #[test]
    fn map_overrides_and_validates() {
        let mut m = generic(Target::Documents);
        assert!(m.check(false).is_err());
        m.set("text=title+body").unwrap();
        m.set("url=meta.link").unwrap();
        m.check(false).unwrap();
        assert_eq!(m.fields_of(Column::Text).len(), 2);
        assert_eq!(m.fields_of(Column::Url)[0], vec!["meta".to_string(), "link".to_string()]);
        assert!(m.set("question=q").unwrap_err().hint_text().unwrap().contains("text"));
        assert!(m.set("url=a+b").is_err());
        assert!(m.set("nonsense").is_err());
        assert!(m.set("text=a..b").is_err());
    }

    #[test]
    fn misspelt_preset_gets_a_suggestion() {
        let err = Preset::find("gsm8").err().unwrap();
        assert!(err.hint_text().unwrap().contains("did you mean `gsm8k`"), "{:?}", err.hint_text());
    }
}
