//! `mathlake sql FILE.sql`: a file of SQL statements run in order over the lake.
//!
//! - Lake tables are there by name; `CREATE EXTERNAL TABLE` reads any lake URL.
//! - `COPY (query) TO 'name'` writes lake table `name` (a bare name) and commits it
//!   atomically, replacing its contents; `COPY (query) TO 'url.parquet'` writes one
//!   Parquet object through a multipart upload, which appears whole or not at all. Later
//!   statements read a table the file wrote.
//! - Parameters are `$name` placeholders. A file declares them with defaults in comments,
//!   `-- @param min_words = 50`, and `--set min_words=100` overrides; values are bound
//!   into the plan as typed literals, never spliced into the text.
//! - An error names the file, the line and column, and the statement.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{CopyToSource, CopyToStatement, DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{ObjectName, Query, Statement as SqlStatement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use futures::StreamExt;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lake::engine::Engine;
use crate::lake::incremental::{self, Update};
use crate::lake::{
    CommitMode, Lake, Output, SessionOptions, Target, drain, register_table, scanning_version, versions_read,
    write_from_engine,
};
use crate::suggest::nearest;

/// One statement of a file, with where it starts.
#[derive(Debug, Clone)]
struct Statement {
    /// 1-based position in the file.
    index: usize,
    line: u64,
    column: u64,
    text: String,
    /// The names of its `$name` placeholders.
    placeholders: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatementReport {
    pub index: usize,
    pub line: u64,
    /// The statement's first words, e.g. `COPY`, `CREATE VIEW`, `SELECT`.
    pub kind: String,
    /// Where a COPY wrote.
    pub target: Option<String>,
    /// Rows written (COPY) or returned (queries).
    pub rows: u64,
    /// An incremental COPY: how the table was brought up to date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
    pub seconds: f64,
    /// The first rows a query returned (JSON: `result`, one object per row).
    #[serde(rename = "result", serialize_with = "rows_as_json", skip_serializing_if = "Option::is_none")]
    pub shown: Option<(SchemaRef, Vec<RecordBatch>)>,
}

fn rows_as_json<S: serde::Serializer>(
    shown: &Option<(SchemaRef, Vec<RecordBatch>)>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    let batches: Vec<&RecordBatch> = shown.iter().flat_map(|(_, batches)| batches).collect();
    writer.write_batches(&batches).map_err(serde::ser::Error::custom)?;
    writer.finish().map_err(serde::ser::Error::custom)?;
    let bytes = writer.into_inner();
    let rows: serde_json::Value = if bytes.is_empty() {
        serde_json::json!([])
    } else {
        serde_json::from_slice(&bytes).map_err(serde::ser::Error::custom)?
    };
    serde::Serialize::serialize(&rows, serializer)
}

/// The settings of `mathlake sql FILE` and of a job's `kind = "sql"` stage: one
/// definition, so both accept the same things.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSpec {
    /// In a job file: the stage's name in logs and summaries [default: the file's stem].
    #[arg(skip)]
    #[serde(default)]
    pub name: Option<String>,
    /// The SQL file (in a job, relative to the folder the job runs in).
    pub file: PathBuf,
    /// A parameter value, bound to `$NAME` (repeatable): --set min_words=100; in a job file
    /// a table, `set = { min_words = 100 }`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_assignment)]
    #[serde(default, with = "assignments")]
    pub set: Vec<(String, String)>,
    /// Rows of each query's result to show [default: 10].
    #[arg(long)]
    #[serde(default)]
    pub show: Option<usize>,
    /// Cut shown cells longer than this many characters [default: 60].
    #[arg(long)]
    #[serde(default)]
    pub max_width: Option<usize>,
    /// Memory DataFusion's operators may hold before they spill (e.g. 512M, 4G).
    #[arg(long, value_name = "SIZE")]
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// Where spill files go [default: the system temp folder].
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub spill_dir: Option<PathBuf>,
    /// Where the statements run: local, standalone (Ballista in this process) or
    /// ballista://HOST:PORT (both need the `distributed` build) [default: local].
    #[arg(long)]
    #[serde(default)]
    pub engine: Option<String>,
    /// Each `COPY ... TO 'table'` treats rows one at a time, so when the one table it reads
    /// that changed only had rows appended, it runs over those rows and appends its output
    /// (anything else rebuilds the table; unchanged inputs leave it as it is).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incremental: bool,
}

impl SqlSpec {
    pub fn to_options(&self) -> Result<ScriptOptions> {
        Ok(ScriptOptions {
            set: self.set.clone(),
            session: SessionOptions::from_settings(self.memory_limit.as_deref(), self.spill_dir.as_deref())?
                .on_engine(self.engine.as_deref())?,
            show_rows: self.show.unwrap_or(10),
            incremental: self.incremental,
        })
    }

    pub fn max_width(&self) -> usize {
        self.max_width.unwrap_or(60)
    }
}

/// `NAME=VALUE` for --set.
fn parse_assignment(text: &str) -> std::result::Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    let name = name.trim().trim_start_matches('$');
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`{name}` is not a parameter name (letters, digits, _)"));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// Parameter values in a job file: a table of names to strings, numbers or booleans, each
/// bound as its text, as `--set` binds it.
mod assignments {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(set: &[(String, String)], serializer: S) -> Result<S::Ok, S::Error> {
        set.iter().cloned().collect::<BTreeMap<String, String>>().serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<(String, String)>, D::Error> {
        let table = BTreeMap::<String, toml::Value>::deserialize(deserializer)?;
        Ok(table
            .into_iter()
            .map(|(name, value)| {
                let text = match value {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                };
                (name, text)
            })
            .collect())
    }
}

#[derive(Debug, Clone, Default)]
pub struct ScriptOptions {
    /// `--set name=value` overrides.
    pub set: Vec<(String, String)>,
    pub session: SessionOptions,
    /// Rows of each query's result to keep for display.
    pub show_rows: usize,
    /// COPY to a table appends what the rows appended to its input make (see SqlSpec).
    pub incremental: bool,
}

/// Runs every statement of `sql` (read from `file`, which errors name) over `lake`.
/// `progress` counts the rows each statement produces.
pub async fn run(
    lake: &Lake,
    file: &str,
    sql: &str,
    options: &ScriptOptions,
    progress: &ProgressBar,
) -> Result<Vec<StatementReport>> {
    let statements = split(file, sql)?;
    let params = parameters(file, sql, &statements, &options.set)?;
    let ctx = crate::lake::session(lake, &options.session).await?;
    let mut reports = Vec::with_capacity(statements.len());
    for statement in &statements {
        let started = Instant::now();
        progress.reset();
        progress.set_message(format!("[{}/{}] {}", statement.index, statements.len(), kind_of(&statement.text)));
        let report = match execute(&ctx, lake, statement, &params, options, progress).await {
            Ok(report) => report,
            Err(e) => return Err(locate(file, statement, lake.explain_missing_table(e).await)),
        };
        reports.push(StatementReport { seconds: started.elapsed().as_secs_f64(), ..report });
    }
    Ok(reports)
}

/// Cuts the file at top-level semicolons (the tokenizer knows strings and comments).
fn split(file: &str, sql: &str) -> Result<Vec<Statement>> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| Error::user(format!("{file}:{}:{}: {}", e.location.line, e.location.column, e.message)))?;
    let offsets = LineOffsets::new(sql);
    let mut statements = Vec::new();
    let mut start: Option<(u64, u64)> = None;
    let mut end = (0u64, 0u64);
    let mut placeholders = Vec::new();
    let mut push = |start: (u64, u64), end: Option<(u64, u64)>, placeholders: &mut Vec<String>| {
        let (line, column) = start;
        let to = end.map_or(sql.len(), |(line, column)| offsets.byte(line, column));
        let text = sql[offsets.byte(line, column)..to].trim_end().to_string();
        let index = statements.len() + 1;
        statements.push(Statement { index, line, column, text, placeholders: std::mem::take(placeholders) });
    };
    for token in &tokens {
        match &token.token {
            Token::Whitespace(_) => {}
            Token::SemiColon | Token::EOF => {
                if let Some(first) = start.take() {
                    push(first, Some(end), &mut placeholders);
                }
            }
            other => {
                if let Token::Placeholder(name) = other
                    && let Some(name) = name.strip_prefix('$')
                {
                    placeholders.push(name.to_string());
                }
                start.get_or_insert((token.span.start.line, token.span.start.column));
                end = (token.span.end.line, token.span.end.column);
            }
        }
    }
    if let Some(first) = start {
        push(first, None, &mut placeholders);
    }
    if statements.is_empty() {
        return Err(Error::user(format!("{file} has no SQL statements")));
    }
    Ok(statements)
}

/// Byte offsets of (line, column) positions, both 1-based, columns in characters.
struct LineOffsets<'a> {
    sql: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineOffsets<'a> {
    fn new(sql: &'a str) -> Self {
        let starts = std::iter::once(0).chain(sql.match_indices('\n').map(|(i, _)| i + 1)).collect();
        LineOffsets { sql, starts }
    }

    fn byte(&self, line: u64, column: u64) -> usize {
        let Some(&start) = self.starts.get(line.saturating_sub(1) as usize) else {
            return self.sql.len();
        };
        let rest = &self.sql[start..];
        rest.char_indices().nth(column.saturating_sub(1) as usize).map_or(self.sql.len(), |(i, _)| start + i)
    }
}

/// The values of the file's `$name` placeholders: declared defaults, then `--set`.
fn parameters(
    file: &str,
    sql: &str,
    statements: &[Statement],
    set: &[(String, String)],
) -> Result<BTreeMap<String, ScalarValue>> {
    let mut values = BTreeMap::new();
    for (number, line) in sql.lines().enumerate() {
        let Some(declaration) = line.trim().strip_prefix("--").map(str::trim).and_then(|l| l.strip_prefix("@param"))
        else {
            continue;
        };
        let declaration = declaration.split("--").next().unwrap_or("");
        let Some((name, value)) = declaration.split_once('=') else {
            return Err(Error::user(format!(
                "{file}:{}: a parameter is declared as `-- @param name = value`",
                number + 1
            )));
        };
        values.insert(name.trim().to_string(), literal(value.trim()));
    }
    let mut used = BTreeMap::new();
    for statement in statements {
        for name in &statement.placeholders {
            used.entry(name.clone()).or_insert(statement.index);
        }
    }
    for (name, value) in set {
        if !values.contains_key(name) && !used.contains_key(name) {
            let known: Vec<&str> = values.keys().chain(used.keys()).map(String::as_str).collect();
            let mut error = Error::user(format!("{file} has no parameter `{name}`"));
            error = match nearest(name, &known) {
                Some(close) => error.hint(format!("did you mean `{close}`?")),
                None if known.is_empty() => error.hint(format!("{file} declares no parameters")),
                None => error.hint(format!("its parameters: {}", known.join(", "))),
            };
            return Err(error);
        }
        values.insert(name.clone(), literal(value));
    }
    if let Some((name, index)) = used.iter().find(|(name, _)| !values.contains_key(*name)) {
        let line = statements[index - 1].line;
        return Err(Error::user(format!("{file}:{line}: statement {index} uses ${name}, which has no value"))
            .hint(format!("pass --set {name}=VALUE, or declare `-- @param {name} = VALUE` in the file")));
    }
    Ok(values)
}

/// A parameter value as a typed literal: integers, decimals, booleans, 'quoted' or bare text.
fn literal(text: &str) -> ScalarValue {
    if let Ok(i) = text.parse::<i64>() {
        ScalarValue::Int64(Some(i))
    } else if let Ok(f) = text.parse::<f64>() {
        ScalarValue::Float64(Some(f))
    } else if let Ok(b) = text.parse::<bool>() {
        ScalarValue::Boolean(Some(b))
    } else {
        let unquoted = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')).unwrap_or(text);
        ScalarValue::Utf8(Some(unquoted.replace("''", "'")))
    }
}

async fn execute(
    ctx: &SessionContext,
    lake: &Lake,
    statement: &Statement,
    params: &BTreeMap<String, ScalarValue>,
    options: &ScriptOptions,
    progress: &ProgressBar,
) -> Result<StatementReport> {
    let mut parsed = DFParser::parse_sql_with_dialect(&statement.text, &GenericDialect {})?;
    let parsed = match (parsed.pop_front(), parsed.is_empty()) {
        (Some(one), true) => one,
        _ => return Err(Error::Internal("a statement cut at its semicolon did not parse as one".into())),
    };
    let kind = kind_of(&statement.text);
    let mut report = StatementReport {
        index: statement.index,
        line: statement.line,
        kind,
        target: None,
        rows: 0,
        update: None,
        seconds: 0.0,
        shown: None,
    };
    if let DFStatement::CopyTo(copy) = parsed {
        let (target, rows, update) = copy_to(ctx, lake, &statement.text, copy, params, options, progress).await?;
        report.target = Some(target);
        report.rows = rows;
        report.update = update;
        return Ok(report);
    }
    let frame = plan(ctx, parsed, params).await?;
    let schema = SchemaRef::new(frame.schema().as_arrow().clone());
    let mut stream = frame.execute_stream().await?;
    let mut shown = Vec::new();
    let mut kept = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        report.rows += batch.num_rows() as u64;
        progress.inc(batch.num_rows() as u64);
        if kept < options.show_rows {
            let take = batch.num_rows().min(options.show_rows - kept);
            shown.push(batch.slice(0, take));
            kept += take;
        }
    }
    if !schema.fields().is_empty() {
        report.shown = Some((schema, shown));
    }
    Ok(report)
}

/// Plans a statement with the parameters bound into it.
async fn plan(
    ctx: &SessionContext,
    statement: DFStatement,
    params: &BTreeMap<String, ScalarValue>,
) -> Result<DataFrame> {
    let plan = ctx.state().statement_to_plan(statement).await?;
    let plan = plan.with_param_values(params.clone().into_iter().collect::<Vec<_>>())?;
    Ok(ctx.execute_logical_plan(plan).await?)
}

async fn copy_to(
    ctx: &SessionContext,
    lake: &Lake,
    text: &str,
    copy: CopyToStatement,
    params: &BTreeMap<String, ScalarValue>,
    options: &ScriptOptions,
    progress: &ProgressBar,
) -> Result<(String, u64, Option<String>)> {
    let target = Target::parse(&copy.target)?;
    let on_engine = options.session.engine != Engine::Local;
    if copy.stored_as.as_deref().is_some_and(|format| !format.eq_ignore_ascii_case("parquet")) {
        return Err(Error::user("COPY writes Parquet only").hint("drop STORED AS, or write STORED AS PARQUET"));
    }
    if !copy.partitioned_by.is_empty() || !copy.options.is_empty() {
        return Err(Error::user("COPY takes no PARTITIONED BY or OPTIONS here")
            .hint("file sizes, row groups and compression are the lake's own (zstd, 16 MiB row groups)"));
    }
    let query: Box<Query> = match copy.source {
        CopyToSource::Query(query) => query,
        CopyToSource::Relation(name) => select_all(&name)?,
    };
    let frame = plan(ctx, DFStatement::Statement(Box::new(SqlStatement::Query(query))), params).await?;
    // What made the table: the statement, its parameters and the versions it read.
    let details = serde_json::json!({
        "statement": text.trim(),
        "parameters": params.iter().map(|(k, v)| (k.clone(), v.to_string())).collect::<BTreeMap<_, _>>(),
        "read": versions_read(ctx, frame.logical_plan())?,
    });
    let update = match &target {
        Target::Table(name) if options.incremental => {
            incremental::update(lake, name, &details, &["statement", "parameters"], None).await?
        }
        _ => {
            return Ok((
                target.describe(),
                write(ctx, lake, &target, frame, details, CommitMode::Replace, on_engine, progress).await?,
                None,
            ));
        }
    };
    let said = update.describe();
    let rows = match update {
        Update::Unchanged => 0,
        Update::Full(_) => write(ctx, lake, &target, frame, details, CommitMode::Replace, on_engine, progress).await?,
        Update::Append { table, delta, .. } => {
            // The statement again, over the appended rows of `table` alone.
            let plan = scanning_version(frame.logical_plan().clone(), &table, &lake.table(&table)?, &delta)?;
            let frame = ctx.execute_logical_plan(plan).await?;
            write(ctx, lake, &target, frame, details, CommitMode::Append, on_engine, progress).await?
        }
    };
    Ok((target.describe(), rows, Some(said)))
}

fn select_all(name: &ObjectName) -> Result<Box<Query>> {
    let mut parsed = DFParser::parse_sql_with_dialect(&format!("SELECT * FROM {name}"), &GenericDialect {})?;
    match parsed.pop_front() {
        Some(DFStatement::Statement(statement)) => match *statement {
            SqlStatement::Query(query) => Ok(query),
            _ => Err(Error::Internal("SELECT did not parse as a query".into())),
        },
        _ => Err(Error::Internal("SELECT did not parse as a query".into())),
    }
}

/// Streams `frame` to `target`. A table is replaced in one commit and re-registered, so
/// the statements that follow read the new version.
#[allow(clippy::too_many_arguments)]
async fn write(
    ctx: &SessionContext,
    lake: &Lake,
    target: &Target,
    frame: DataFrame,
    details: serde_json::Value,
    mode: CommitMode,
    on_engine: bool,
    progress: &ProgressBar,
) -> Result<u64> {
    let written = match target {
        // On a Ballista engine the executors write the files; this process commits them.
        Target::Table(name) if on_engine => write_from_engine(lake, name, frame, mode, "sql", details).await?,
        _ => {
            let schema = SchemaRef::new(frame.schema().as_arrow().clone());
            let mut output = Output::open_with(lake, target, schema, mode).await?;
            drain(frame, progress, async |batch| output.write(batch).await).await?;
            output.finish("sql", details).await?
        }
    };
    if on_engine {
        progress.inc(written.rows);
    }
    if let (Target::Table(name), Some(version)) = (target, &written.version) {
        ctx.deregister_table(name)?;
        register_table(ctx, name, &lake.table(name)?, version)?;
    }
    Ok(written.rows)
}

/// `COPY`, `CREATE VIEW`, `SELECT`...: the statement's first keywords, for reports.
fn kind_of(text: &str) -> String {
    let words: Vec<String> = text.split_whitespace().take(3).map(|w| w.to_ascii_uppercase()).collect();
    let take = match words.first().map(String::as_str) {
        Some("CREATE") if words.get(1).is_some_and(|w| w == "EXTERNAL" || w == "OR") => 3,
        Some("CREATE" | "DROP") => 2,
        _ => 1,
    };
    words.into_iter().take(take).collect::<Vec<_>>().join(" ")
}

/// An error of `statement`, placed in the file: `file:line:column: statement N (KIND): ...`.
fn locate(file: &str, statement: &Statement, error: Error) -> Error {
    let (message, hint) = match error {
        Error::User { message, hint } => (message, hint),
        other => (other.to_string(), None),
    };
    // Positions inside the statement (parser errors say `at Line: 2, Column: 5`) become
    // positions in the file.
    let (mut line, mut column) = (statement.line, statement.column);
    if let Some(at) = message.rfind("at Line: ") {
        let numbers: Vec<u64> = message[at + 9..]
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .take(2)
            .filter_map(|s| s.parse().ok())
            .collect();
        if let [l, c] = numbers[..] {
            column = if l == 1 { statement.column + c - 1 } else { c };
            line = statement.line + l - 1;
        }
    } else if message.contains("found: EOF") {
        // The statement ended too soon: point at its end.
        let lines = statement.text.matches('\n').count() as u64;
        let last = statement.text.rsplit('\n').next().unwrap_or("").chars().count() as u64;
        line = statement.line + lines;
        column = if lines == 0 { statement.column + last } else { last + 1 };
    }
    let kind = kind_of(&statement.text);
    let error = Error::user(format!("{file}:{line}:{column}: statement {} ({kind}): {message}", statement.index));
    match hint {
        Some(hint) => error.hint(hint),
        None if message.contains("No value found for placeholder") => {
            error.hint("declare it with `-- @param name = value` or pass --set name=value")
        }
        None => error,
    }
}
