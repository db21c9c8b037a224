//! One input record to one table row, or to a rejection with its reason. Parsing is a
//! pure function of the record's bytes, so it runs in parallel; deciding duplicates and
//! writing happen afterwards, in input order.

use serde_json::{Map, Value};

use super::json;
use super::mapping::{Column, FieldPath, Mapping, Target};
use crate::text::{IdScratch, content_id, marked_answer};

/// Why a record went to quarantine; the string is the quarantine table's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    MalformedJson,
    NotUtf8,
    NotAnObject,
    MissingField,
    WrongType,
    EmptyText,
    RecordTooLarge,
    /// A WARC record or gzip member that cannot be read (cut, or not WARC).
    CorruptRecord,
    /// An HTTP body whose transfer or content encoding cannot be undone.
    BadHttpBody,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MalformedJson => "malformed_json",
            Reason::NotUtf8 => "not_utf8",
            Reason::NotAnObject => "not_an_object",
            Reason::MissingField => "missing_field",
            Reason::WrongType => "wrong_type",
            Reason::EmptyText => "empty_text",
            Reason::RecordTooLarge => "record_too_large",
            Reason::CorruptRecord => "corrupt_record",
            Reason::BadHttpBody => "bad_http_body",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub reason: Reason,
    pub detail: String,
}

fn reject(reason: Reason, detail: impl Into<String>) -> Rejection {
    Rejection { reason, detail: detail.into() }
}

/// What the readers hand to the parser.
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// 1-based line (JSONL, text) or row (Parquet) where the record starts; for WARC
    /// files the byte offset of the record (of its gzip member in a `.gz`).
    pub position: u64,
    /// The record's bytes; only the first `RAW_KEEP` bytes when it is over the size limit.
    pub bytes: Vec<u8>,
    /// Its full size, which may exceed `bytes.len()`.
    pub size: u64,
    pub kind: RawKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawKind {
    /// A JSON object: a JSONL line (or a Parquet row that only serde_json may judge).
    Json,
    /// A Parquet row as the object its JSON rendering would parse to; `bytes` is empty.
    Fields(Box<Map<String, Value>>),
    /// A document cut from a text file.
    Text,
    /// An HTML page (an `.html` file, a WARC response's HTTP body): its main content is
    /// extracted.
    Html(Box<PageMeta>),
    /// Text a crawler already extracted from a page (a WET `conversion` record).
    PageText(Box<PageMeta>),
    /// Bytes of a WARC file that hold no readable record, and why.
    Corrupt(String),
}

impl RawRecord {
    /// A Parquet row; its size is the bytes of its values.
    pub fn fields(position: u64, object: Map<String, Value>) -> RawRecord {
        let size = object.iter().map(|(k, v)| k.len() as u64 + value_bytes(v)).sum();
        RawRecord { position, bytes: Vec::new(), size, kind: RawKind::Fields(Box::new(object)) }
    }

    /// The bytes a quarantine row keeps: the record's own, or a Parquet row as JSON.
    pub fn kept(self) -> Vec<u8> {
        match self.kind {
            RawKind::Fields(object) => {
                let mut json = serde_json::to_vec(&object).expect("a map with string keys always serializes");
                json.truncate(RAW_KEEP);
                json
            }
            _ => self.bytes,
        }
    }

    /// Bytes held in memory, for sizing the chunks parsed in parallel.
    pub fn held(&self) -> u64 {
        match self.kind {
            RawKind::Fields(_) => self.size,
            _ => self.bytes.len() as u64,
        }
    }
}

/// The bytes of a value's strings and numbers, an estimate of its JSON size.
fn value_bytes(value: &Value) -> u64 {
    match value {
        Value::String(s) => s.len() as u64,
        Value::Array(items) => items.iter().map(value_bytes).sum(),
        Value::Object(fields) => fields.iter().map(|(k, v)| k.len() as u64 + value_bytes(v)).sum(),
        _ => 8,
    }
}

/// Where a page came from and how its bytes are encoded, from its WARC and HTTP headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageMeta {
    /// `WARC-Target-URI`.
    pub url: Option<String>,
    /// `WARC-Date`: when the page was crawled.
    pub date: Option<String>,
    /// `WARC-Record-ID`.
    pub record_id: Option<String>,
    /// The MIME type, lowercased, without parameters.
    pub content_type: Option<String>,
    /// The `charset=` of the HTTP `Content-Type`.
    pub charset: Option<String>,
    /// HTTP `Transfer-Encoding` and `Content-Encoding`, lowercased.
    pub transfer: Option<String>,
    pub encoding: Option<String>,
}

/// How much of an oversize record the quarantine keeps.
pub const RAW_KEEP: usize = 64 * 1024;

/// A row for `documents` or `problems`, before duplicates are decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub id: String,
    pub position: u64,
    /// Documents: the text. Problems: the question.
    pub text: String,
    /// Problems only.
    pub solution: String,
    pub final_answer: Option<String>,
    pub level: Option<i32>,
    pub subject: Option<String>,
    pub split: Option<String>,
    pub source_id: Option<String>,
    pub url: Option<String>,
    pub metadata: Option<String>,
}

/// Everything parsing needs besides the record.
#[derive(Debug, Clone)]
pub struct Parser {
    pub mapping: Mapping,
    pub source: String,
    /// The split of problems whose record has none (from `--split` or the file name).
    pub split: Option<String>,
    pub max_record_bytes: u64,
}

impl Parser {
    pub fn parse(&self, raw: &RawRecord, scratch: &mut IdScratch) -> Result<Row, Rejection> {
        // Bytes that are no record are that, whatever their size.
        if let RawKind::Corrupt(detail) = &raw.kind {
            return Err(reject(Reason::CorruptRecord, detail.clone()));
        }
        if raw.size > self.max_record_bytes {
            return Err(reject(
                Reason::RecordTooLarge,
                format!("{} bytes, over the limit of {} (--max-record-bytes)", raw.size, self.max_record_bytes),
            ));
        }
        let mut row = match &raw.kind {
            RawKind::Html(meta) => self.page_row(&raw.bytes, meta)?,
            RawKind::Fields(object) => self.object_row(object.as_ref().clone())?,
            _ => self.decoded_row(raw)?,
        };
        row.position = raw.position;
        row.id = match self.mapping.target {
            Target::Documents => content_id(&[&self.source, &row.text], scratch),
            Target::Problems => content_id(&[&self.source, &row.text, &row.solution], scratch),
        };
        Ok(row)
    }

    /// A record whose bytes must be UTF-8: JSON, text, WET text.
    fn decoded_row(&self, raw: &RawRecord) -> Result<Row, Rejection> {
        let text = std::str::from_utf8(&raw.bytes).map_err(|e| {
            let line = raw.bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
            let hint = if raw.kind == RawKind::Text { "; if the file is Latin-1, pass --encoding latin1" } else { "" };
            reject(
                Reason::NotUtf8,
                format!("invalid UTF-8 at byte {} (line {} of the record){hint}", e.valid_up_to(), line + 1),
            )
        })?;
        match &raw.kind {
            RawKind::Json => self.json_row(text),
            RawKind::PageText(meta) => {
                let mut row = self.text_row(text.trim())?;
                if row.text.is_empty() {
                    return Err(reject(Reason::EmptyText, "the WET record holds no text"));
                }
                page_columns(&mut row, meta, serde_json::Map::new());
                Ok(row)
            }
            _ => self.text_row(text),
        }
    }

    /// An HTML page: its body decoded and its main content extracted, formulas as LaTeX.
    /// (Pages are documents: ingest refuses web inputs for `problems` before reading.)
    fn page_row(&self, bytes: &[u8], meta: &PageMeta) -> Result<Row, Rejection> {
        let body = super::http::body(bytes, meta.transfer.as_deref(), meta.encoding.as_deref())
            .map_err(|detail| reject(Reason::BadHttpBody, detail))?;
        let tld = meta.url.as_deref().and_then(top_level_domain);
        let decoded = crate::text::html::decode(&body, meta.charset.as_deref(), tld.as_ref().map(|t| t.as_bytes()));
        let page = crate::text::html::extract(&decoded.text);
        if page.text.is_empty() {
            return Err(reject(Reason::EmptyText, "no text left after extracting the page's main content"));
        }
        let mut extra = serde_json::Map::new();
        if !page.title.is_empty() {
            extra.insert("title".into(), Value::String(page.title));
        }
        extra.insert("charset".into(), Value::String(decoded.encoding.to_string()));
        extra.insert("charset_source".into(), Value::String(decoded.source.as_str().to_string()));
        extra.insert("formulas".into(), Value::from(page.formulas));
        let mut row = Row { text: page.text, ..Row::default() };
        page_columns(&mut row, meta, extra);
        Ok(row)
    }

    fn text_row(&self, text: &str) -> Result<Row, Rejection> {
        if self.mapping.target == Target::Problems {
            return Err(reject(Reason::MissingField, "a text file has no question and solution fields"));
        }
        Ok(Row { text: text.to_string(), ..Row::default() })
    }

    fn json_row(&self, text: &str) -> Result<Row, Rejection> {
        let object = match json::object(text) {
            Some(object) => object,
            None => {
                let value: Value =
                    serde_json::from_str(text).map_err(|e| reject(Reason::MalformedJson, e.to_string()))?;
                let Value::Object(object) = value else {
                    return Err(reject(
                        Reason::NotAnObject,
                        format!("a JSON {} where an object was expected", kind(&value)),
                    ));
                };
                object
            }
        };
        self.object_row(object)
    }

    /// A JSON object's fields into columns; the top-level fields left over are metadata.
    fn object_row(&self, mut object: Map<String, Value>) -> Result<Row, Rejection> {
        let mut row = Row::default();
        match self.mapping.target {
            Target::Documents => {
                row.text = self.required_text(&mut object, Column::Text)?;
            }
            Target::Problems => {
                row.text = self.required_text(&mut object, Column::Question)?;
                row.solution = self.required_text(&mut object, Column::Solution)?;
                row.final_answer = self.optional(&mut object, Column::FinalAnswer, Scalar::Lenient)?;
                row.final_answer = row.final_answer.or_else(|| marked_answer(&row.solution));
                row.level = self.level(&mut object);
                row.subject = self.optional(&mut object, Column::Subject, Scalar::Text)?;
                row.split = self.optional(&mut object, Column::Split, Scalar::Text)?.or_else(|| self.split.clone());
                if row.split.is_none() {
                    return Err(reject(Reason::MissingField, "the record has no split and none was given (--split)"));
                }
            }
        }
        row.source_id = self.optional(&mut object, Column::SourceId, Scalar::Lenient)?;
        row.url = self.optional(&mut object, Column::Url, Scalar::Text)?;
        // Straight into a buffer: `Value`'s `Display` goes through a formatter per token.
        row.metadata = (!object.is_empty())
            .then(|| serde_json::to_string(&object).expect("a map with string keys always serializes"));
        Ok(row)
    }

    /// A column that must be non-empty text; several fields are joined by a blank line.
    fn required_text(&self, object: &mut Map<String, Value>, column: Column) -> Result<String, Rejection> {
        let mut joined = String::new();
        for (i, path) in self.mapping.fields_of(column).iter().enumerate() {
            match take(object, path) {
                None | Some(Value::Null) => {
                    return Err(reject(
                        Reason::MissingField,
                        format!("field `{}` ({column}) is missing", path.join(".")),
                    ));
                }
                Some(Value::String(s)) if i == 0 => joined = s,
                Some(Value::String(s)) => {
                    joined.push_str("\n\n");
                    joined.push_str(&s);
                }
                Some(other) => {
                    return Err(reject(
                        Reason::WrongType,
                        format!("field `{}` ({column}) is a {}, expected a string", path.join("."), kind(&other)),
                    ));
                }
            }
        }
        if joined.trim().is_empty() {
            return Err(reject(Reason::EmptyText, format!("{column} is empty")));
        }
        Ok(joined)
    }

    fn optional(
        &self,
        object: &mut Map<String, Value>,
        column: Column,
        scalar: Scalar,
    ) -> Result<Option<String>, Rejection> {
        let Some(path) = self.mapping.fields_of(column).first() else { return Ok(None) };
        match take(object, path) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v @ (Value::Number(_) | Value::Bool(_))) if scalar == Scalar::Lenient => Ok(Some(v.to_string())),
            Some(other) => Err(reject(
                Reason::WrongType,
                format!("field `{}` ({column}) is a {}, expected a string", path.join("."), kind(&other)),
            )),
        }
    }

    /// `5`, `"5"` or `"Level 5"`; anything else (MATH has `"Level ?"`) leaves the level
    /// empty and the field in metadata.
    fn level(&self, object: &mut Map<String, Value>) -> Option<i32> {
        let path = self.mapping.fields_of(Column::Level).first()?;
        let level = match lookup(object, path)? {
            Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
            Value::String(s) => s.trim().trim_start_matches("Level").trim().parse().ok(),
            _ => None,
        };
        if level.is_some() {
            take(object, path);
        }
        level
    }
}

/// The URL and record id as columns; crawl date, content type and what extraction found
/// in `metadata`.
fn page_columns(row: &mut Row, meta: &PageMeta, mut extra: Map<String, Value>) {
    row.url = meta.url.clone();
    row.source_id = meta.record_id.clone();
    if let Some(date) = &meta.date {
        extra.insert("warc_date".into(), Value::String(date.clone()));
    }
    if let Some(content_type) = &meta.content_type {
        extra.insert("content_type".into(), Value::String(content_type.clone()));
    }
    row.metadata = (!extra.is_empty()).then(|| Value::Object(extra).to_string());
}

/// `ru` of `https://www.example.ru/x`: a hint for guessing a page's charset.
fn top_level_domain(url: &str) -> Option<String> {
    let host = url::Url::parse(url).ok()?.host_str()?.to_ascii_lowercase();
    let tld = host.rsplit('.').next()?;
    tld.chars().all(|c| c.is_ascii_alphabetic()).then(|| tld.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    /// Only strings.
    Text,
    /// Strings, and numbers or booleans written as text (ids, answers).
    Lenient,
}

fn lookup<'v>(object: &'v Map<String, Value>, path: &FieldPath) -> Option<&'v Value> {
    let (first, rest) = path.split_first()?;
    let mut value = object.get(first)?;
    for key in rest {
        value = value.as_object()?.get(key)?;
    }
    Some(value)
}

/// The value at `path`. A top-level field is moved out, so it leaves metadata; a nested
/// one is copied, and its parent object stays whole in metadata.
fn take(object: &mut Map<String, Value>, path: &FieldPath) -> Option<Value> {
    match path.as_slice() {
        [only] => object.remove(only),
        _ => lookup(object, path).cloned(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::mapping::Preset;

    fn parser(preset: &str) -> Parser {
        Parser {
            mapping: Preset::find(preset).unwrap().mapping(),
            source: preset.to_string(),
            split: Some("train".into()),
            max_record_bytes: 1000,
        }
    }

    fn json(line: &str) -> RawRecord {
        RawRecord { position: 7, bytes: line.as_bytes().to_vec(), size: line.len() as u64, kind: RawKind::Json }
    }

    fn parse(p: &Parser, line: &str) -> Result<Row, Rejection> {
        p.parse(&json(line), &mut IdScratch::default())
    }

    #[test]
    fn gsm8k_record() {
        let row = parse(&parser("gsm8k"), r#"{"question": "2+2?", "answer": "2+2=<<2+2=4>>4\n#### 4"}"#).unwrap();
        assert_eq!(row.final_answer.as_deref(), Some("4"));
        assert_eq!(row.split.as_deref(), Some("train"));
        assert_eq!(row.position, 7);
        assert_eq!(row.metadata, None);
    }

    #[test]
    fn math_levels_and_leftover_fields() {
        let p = parser("math");
        let row =
            parse(&p, r#"{"problem": "p", "solution": "\\boxed{1}", "level": "Level 5", "type": "Algebra", "idx": 3}"#)
                .unwrap();
        assert_eq!((row.level, row.subject.as_deref()), (Some(5), Some("Algebra")));
        assert_eq!(row.metadata.as_deref(), Some(r#"{"idx":3}"#));
        let row = parse(&p, r#"{"problem": "p", "solution": "s", "level": "Level ?", "type": "Algebra"}"#).unwrap();
        assert_eq!(row.level, None);
        assert_eq!(row.metadata.as_deref(), Some(r#"{"level":"Level ?"}"#));
    }

    #[test]
    fn joined_text_and_nested_url() {
        let row =
            parse(&parser("stackmathqa"), r#"{"Q": "Why?", "A": "Because.", "meta": {"url": "https://x"}}"#).unwrap();
        assert_eq!(row.text, "Why?\n\nBecause.");
        assert_eq!(row.url.as_deref(), Some("https://x"));
        assert!(row.metadata.unwrap().contains("https://x"), "meta is kept whole");
    }

    #[test]
    fn every_bad_record_has_its_reason() {
        let p = parser("gsm8k");
        let cases = [
            ("{\"question\": \"q\", \"answer\": \"#### 1\"", Reason::MalformedJson),
            (r#"[1, 2]"#, Reason::NotAnObject),
            (r#"{"question": "q"}"#, Reason::MissingField),
            (r#"{"question": "q", "answer": null}"#, Reason::MissingField),
            (r#"{"question": 5, "answer": "a"}"#, Reason::WrongType),
            (r#"{"question": "  ", "answer": "a"}"#, Reason::EmptyText),
        ];
        for (line, reason) in cases {
            assert_eq!(parse(&p, line).unwrap_err().reason, reason, "{line}");
        }
        let bad = RawRecord { position: 1, bytes: b"{\"question\": \"\xff\"}".to_vec(), size: 18, kind: RawKind::Json };
        assert_eq!(p.parse(&bad, &mut IdScratch::default()).unwrap_err().reason, Reason::NotUtf8);
        let big = RawRecord { position: 1, bytes: vec![b' '; 10], size: 5000, kind: RawKind::Json };
        assert_eq!(p.parse(&big, &mut IdScratch::default()).unwrap_err().reason, Reason::RecordTooLarge);
        let corrupt = RawRecord { position: 0, bytes: vec![0; 10], size: 5000, kind: RawKind::Corrupt("cut".into()) };
        assert_eq!(p.parse(&corrupt, &mut IdScratch::default()).unwrap_err().reason, Reason::CorruptRecord);
    }

    #[test]
    fn ids_depend_on_source_and_normalized_content() {
        let p = parser("gsm8k");
        let line = |q: &str, a: &str| serde_json::json!({"question": q, "answer": a}).to_string();
        let a = parse(&p, &line("2+2?", "#### 4")).unwrap();
        let b = parse(&p, &line(" 2+2? ", "####  4")).unwrap();
        assert_eq!(a.id, b.id);
        let mut other = parser("gsm8k");
        other.source = "gsm8k_copy".into();
        assert_ne!(a.id, parse(&other, &line("2+2?", "#### 4")).unwrap().id);
    }
}
