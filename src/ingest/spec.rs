//! The settings of one ingest, as `mathlake ingest` flags and as a job file's
//! `[[stage]] kind = "ingest"` table: one definition, so both accept the same things.

use serde::Deserialize;

use super::inputs::Format;
use super::mapping::{self, Preset, Target};
use super::text::Encoding;
use super::{IngestOptions, OnChange};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSpec {
    /// In a job file: the stage's name in logs and summaries.
    #[arg(skip)]
    #[serde(default)]
    pub name: Option<String>,

    /// Input files, folders/prefixes or globs, local or s3:// (quote globs).
    #[arg(required_unless_present = "list_presets")]
    pub inputs: Vec<String>,

    /// A known dataset's mapping: gsm8k, math, math500, stackmathqa, dolma, wikitext, latex, text.
    #[arg(long, short)]
    pub preset: Option<String>,

    /// Without a preset: the kind of table to fill, `documents` or `problems`.
    #[arg(long, value_name = "KIND")]
    #[serde(default)]
    pub table: Option<String>,

    /// Map an input field to a column: `text=body`, `url=meta.url`, `text=Q+A` (joined).
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    #[serde(default)]
    pub map: Vec<String>,

    /// Table name to write; default `documents` or `problems`.
    #[arg(long, value_name = "TABLE")]
    #[serde(default)]
    pub to: Option<String>,

    /// Dataset name stored in `source` (and part of every id); default: the preset's name.
    #[arg(long)]
    #[serde(default)]
    pub source: Option<String>,

    /// Split of problems (train, test, validation); default: from each file name.
    #[arg(long)]
    #[serde(default)]
    pub split: Option<String>,

    /// Input format when file names do not tell.
    #[arg(long, value_enum)]
    #[serde(default)]
    pub format: Option<Format>,

    /// Encoding of text files.
    #[arg(long, value_enum, default_value = "utf8")]
    #[serde(default)]
    pub encoding: Encoding,

    /// Records larger than this go to quarantine (`record_too_large`) [default: 16777216].
    /// A line of JSONL, a WARC record; a Parquet row counts the bytes of its values.
    #[arg(long, value_name = "BYTES")]
    #[serde(default)]
    pub max_record_bytes: Option<u64>,

    /// Text files are cut into documents of at most this size [default: 65536].
    #[arg(long, value_name = "BYTES")]
    #[serde(default)]
    pub max_doc_bytes: Option<usize>,

    /// Fail, committing nothing to the table, when more than this fraction of records is
    /// quarantined [default: 0.05].
    #[arg(long, value_name = "FRACTION")]
    #[serde(default)]
    pub max_bad_fraction: Option<f64>,

    /// Data files are closed at about this size [default: 268435456].
    #[arg(long, value_name = "BYTES")]
    #[serde(default)]
    pub max_file_bytes: Option<u64>,

    /// An input object that changed since this table read it: `error` names it and reads
    /// nothing; `replace` removes the rows of its earlier content and reads it again.
    /// (Objects read before and unchanged are skipped.)
    #[arg(long, value_enum, default_value = "error")]
    #[serde(default)]
    pub on_change: OnChange,

    /// List the presets and exit.
    #[arg(long)]
    #[serde(skip)]
    pub list_presets: bool,
}

impl IngestSpec {
    pub fn to_options(&self, threads: usize) -> Result<IngestOptions> {
        let (mut mapping, default_source) = match (&self.preset, &self.table) {
            (Some(name), None) => (Preset::find(name)?.mapping(), Some(name.clone())),
            (None, Some(kind)) => (mapping::generic(Target::parse(kind)?), None),
            (Some(_), Some(_)) => {
                return Err(Error::user("give --preset or --table, not both")
                    .hint("a preset already says which table it fills; use --map to change its fields"));
            }
            (None, None) => {
                return Err(Error::user(
                    "say how to read the input: --preset NAME, or --table documents|problems with --map",
                )
                .hint("`mathlake ingest --list-presets` shows the presets"));
            }
        };
        for spec in &self.map {
            mapping.set(spec)?;
        }
        let source = self.source.clone().or(default_source).ok_or_else(|| {
            Error::user("without a preset, --source names the dataset").hint("for example --source openwebmath")
        })?;
        if source.trim().is_empty() {
            return Err(Error::user("--source must not be empty"));
        }
        let mut options = IngestOptions::new(self.inputs.clone(), mapping, &source);
        options.table = self.to.clone();
        options.split = self.split.clone();
        options.format = self.format;
        options.encoding = self.encoding;
        options.threads = threads;
        options.on_change = self.on_change;
        if let Some(v) = self.max_record_bytes {
            options.max_record_bytes = v;
        }
        if let Some(v) = self.max_doc_bytes {
            options.max_doc_bytes = v.max(1);
        }
        if let Some(v) = self.max_bad_fraction {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::user(format!("--max-bad-fraction {v} is not between 0 and 1")));
            }
            options.max_bad_fraction = v;
        }
        if let Some(v) = self.max_file_bytes {
            options.file_limits.max_file_bytes = v.max(1);
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_or_table_but_not_both_nor_neither() {
        let mut spec =
            IngestSpec { inputs: vec!["x.jsonl".into()], preset: Some("gsm8k".into()), ..Default::default() };
        let options = spec.to_options(1).unwrap();
        assert_eq!((options.source.as_str(), options.mapping.target), ("gsm8k", Target::Problems));
        spec.table = Some("documents".into());
        assert!(spec.to_options(1).is_err());
        spec.preset = None;
        assert!(spec.to_options(1).unwrap_err().to_string().contains("--source"));
        spec.source = Some("web".into());
        spec.map = vec!["text=body".into()];
        assert_eq!(spec.to_options(1).unwrap().mapping.target, Target::Documents);
        spec.table = None;
        assert!(spec.to_options(1).is_err());
    }

    #[test]
    fn job_tables_reject_unknown_keys() {
        let ok: IngestSpec = toml::from_str("inputs = ['a.jsonl']\npreset = 'gsm8k'").unwrap();
        assert_eq!(ok.inputs, ["a.jsonl"]);
        let err = toml::from_str::<IngestSpec>("inputs = []\npreset = 'gsm8k'\nsplt = 'test'").unwrap_err();
        assert!(err.to_string().contains("unknown field `splt`"), "{err}");
    }
}
