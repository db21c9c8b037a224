//! `mathlake decontaminate`: removes training records that overlap evaluation items.
//!
//! A record overlaps an item when they share a word n-gram (`text::words`: lower-cased
//! letter and digit runs; n = 13 by default, DeepSeekMath used 10) in which some word has
//! a letter (`--numeric-ngrams` counts runs of bare numbers too), or when the record's
//! question equals the item's word for word, however short. A record is removed when an
//! item it overlaps has at least `min_overlap` of its n-grams in the record; 0 removes on
//! any overlap. Every overlap, removed or not, becomes a row of the report table
//! (training id, benchmark, item id, n-grams matched and the item's total, one matched
//! n-gram as an example), and the run ends with a summary per benchmark.
//!
//! Benchmarks load into memory (`text::benchmark_index`); the training side streams
//! through DataFusion's partitions, one task each, into the output and the report. On a
//! Ballista engine the comparison is the SQL function of `overlaps.rs`, which executors
//! run with the items the driver put in the lake.

pub mod overlaps;

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lake::engine::Engine;
use crate::lake::incremental::{self, Update};
use crate::lake::{
    CommitMode, Lake, Output, SessionOptions, Target, literal, quote, register_source, register_table,
    require_text_columns, validate_name,
};
use crate::text::benchmark_index::{self as index, BenchmarkIndex, Hit, HitScratch};
use crate::text::texts;

const INPUT: &str = "decontam_input";

/// Words per n-gram: 13, as GPT-3's decontamination (DeepSeekMath used 10).
pub const DEFAULT_NGRAM: usize = 13;

/// One evaluation set: `[name=]source`, a lake table, a table's URL or Parquet files, with
/// `id`, `question` and optionally `solution` (else `final_answer`) columns.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkSpec {
    /// Names every item of the source; without it each item is named by its `source`
    /// column (so `problems` gives gsm8k, math and math500), else by the source itself.
    pub name: Option<String>,
    pub source: String,
}

impl BenchmarkSpec {
    pub fn parse(text: &str) -> Result<BenchmarkSpec> {
        let (name, source) = match text.split_once('=') {
            Some((name, source)) if !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                (Some(name.to_string()), source.to_string())
            }
            _ => (None, text.to_string()),
        };
        if source.is_empty() {
            return Err(Error::user(format!("benchmark `{text}` names no table or URL")));
        }
        Ok(BenchmarkSpec { name, source })
    }
}

/// The settings of one decontamination, as `mathlake decontaminate` flags and as a job's
/// `kind = "decontaminate"` stage: one definition, so both accept the same things.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecontamSpec {
    /// In a job file: the stage's name in logs and summaries.
    #[arg(skip)]
    #[serde(default)]
    pub name: Option<String>,
    /// Training records: a lake table, a table's URL, or Parquet files.
    #[arg(long)]
    pub input: String,
    /// Evaluation sets, comma-separated: [NAME=]TABLE-OR-URL.
    #[arg(long, required = true, value_delimiter = ',')]
    pub benchmarks: Vec<String>,
    /// Which benchmark rows are items, as SQL [default: split = 'test' where there is a split column].
    #[arg(long, value_name = "SQL")]
    #[serde(default)]
    pub benchmark_where: Option<String>,
    /// Text columns of a training record, comma-separated [default: question,solution if
    /// there is a question column, else text].
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Where the kept rows go: a lake table (replaced) or a .parquet URL.
    #[arg(long)]
    pub to: String,
    /// Where the overlap report goes: a lake table (replaced) or a .parquet URL.
    #[arg(long)]
    pub report: String,
    /// Words per n-gram [default: 13].
    #[arg(long)]
    #[serde(default)]
    pub ngram: Option<usize>,
    /// Share of an item's n-grams a record must contain to be removed (0: any overlap)
    /// [default: 0].
    #[arg(long)]
    #[serde(default)]
    pub min_overlap: Option<f64>,
    /// Count n-grams whose words are all numbers, too. Off by default: a run such as
    /// "1 2 3 ... 13" is shared by clean pages and competition solutions alike.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub numeric_ngrams: bool,
    /// Memory DataFusion's operators may hold before they spill (e.g. 512M, 4G).
    #[arg(long, value_name = "SIZE")]
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// Where spill files go [default: the system temp folder].
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub spill_dir: Option<PathBuf>,
    /// When the input table only gained rows since the version the output was made from
    /// (same benchmarks at the same versions, same settings), compare those rows alone and
    /// append to the kept rows and the report.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incremental: bool,
    /// Where records are compared with the benchmarks' n-grams: local, standalone
    /// (Ballista in this process) or ballista://HOST:PORT (both need the `distributed`
    /// build); the kept rows and the report are written here [default: local].
    #[arg(long)]
    #[serde(default)]
    pub engine: Option<String>,
}

impl DecontamSpec {
    pub fn to_options(&self) -> Result<DecontamOptions> {
        Ok(DecontamOptions {
            input: self.input.clone(),
            benchmarks: self.benchmarks.iter().map(|b| BenchmarkSpec::parse(b)).collect::<Result<_>>()?,
            benchmark_where: self.benchmark_where.clone(),
            columns: self.columns.clone(),
            to: Target::parse(&self.to)?,
            report: Target::parse(&self.report)?,
            ngram: self.ngram.unwrap_or(DEFAULT_NGRAM),
            min_overlap: self.min_overlap.unwrap_or(0.0),
            numeric_ngrams: self.numeric_ngrams,
            session: SessionOptions::from_settings(self.memory_limit.as_deref(), self.spill_dir.as_deref())?
                .on_engine(self.engine.as_deref())?,
            incremental: self.incremental,
        })
    }
}

#[derive(Debug, Clone)]
pub struct DecontamOptions {
    /// Training records: a lake table, a table's URL, or Parquet files.
    pub input: String,
    pub benchmarks: Vec<BenchmarkSpec>,
    /// Which benchmark rows are evaluation items [default: `split = 'test'` where there is
    /// a split column, else every row].
    pub benchmark_where: Option<String>,
    /// The text columns of a training record [default: question and solution where there
    /// is a question column, else text].
    pub columns: Option<Vec<String>>,
    pub to: Target,
    pub report: Target,
    pub ngram: usize,
    /// The share of an item's n-grams a record must contain to be removed; 0: any.
    pub min_overlap: f64,
    /// Whether n-grams of bare numbers count (`BenchmarkIndex::new`).
    pub numeric_ngrams: bool,
    pub session: SessionOptions,
    /// Append what the input's new rows give when that is all that changed (see DecontamSpec).
    pub incremental: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DecontamReport {
    pub input: String,
    pub to: String,
    pub report: String,
    pub columns: Vec<String>,
    pub ngram: usize,
    pub min_overlap: f64,
    pub numeric_ngrams: bool,
    pub input_rows: u64,
    pub output_rows: u64,
    pub removed: u64,
    /// Bytes of text compared (the training columns).
    pub text_bytes: u64,
    pub benchmarks: Vec<BenchmarkSummary>,
    /// Distinct n-grams over every item.
    pub benchmark_ngrams: u64,
    pub seconds: f64,
    /// An incremental run: how the outputs were brought up to date (the counts above are
    /// of the rows this run compared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
}

/// What must be as it was for an incremental run to append to its outputs.
const SAME_SETTINGS: &[&str] =
    &["input", "benchmarks", "benchmark_where", "columns", "ngram", "min_overlap", "numeric_ngrams"];

#[derive(Debug, Clone, Default, Serialize)]
pub struct BenchmarkSummary {
    pub name: String,
    pub items: u64,
    /// Items that some training record overlaps.
    pub items_hit: u64,
    /// Training records with an overlap with this benchmark.
    pub records_flagged: u64,
    /// ... and with one that meets the removal rule.
    pub records_removed: u64,
    /// Report rows: (record, item) overlaps.
    pub overlaps: u64,
}

pub async fn decontaminate(lake: &Lake, options: &DecontamOptions, progress: &ProgressBar) -> Result<DecontamReport> {
    let started = Instant::now();
    if !(1..64).contains(&options.ngram) {
        return Err(Error::user(format!("ngram must be 1 to 63 words, not {}", options.ngram)));
    }
    if !(0.0..=1.0).contains(&options.min_overlap) {
        return Err(Error::user(format!("min overlap must be 0 to 1, not {}", options.min_overlap)));
    }
    if options.benchmarks.is_empty() {
        return Err(Error::user("no benchmarks to decontaminate against").hint("--benchmarks problems,extra=s3://..."));
    }
    // Only the comparison runs on the engine: the rest is reading a few columns.
    let mut session = options.session.clone();
    let engine = std::mem::take(&mut session.engine);
    let ctx = crate::lake::session(lake, &session).await?;
    let input_version = register_source(&ctx, lake, INPUT, &options.input).await?;
    let columns = match &options.columns {
        Some(columns) => columns.clone(),
        None if has_column(&ctx, INPUT, "question").await? => {
            let mut columns = vec!["question".to_string()];
            if has_column(&ctx, INPUT, "solution").await? {
                columns.push("solution".into());
            }
            columns
        }
        None => vec!["text".into()],
    };
    let mut required: Vec<&str> = columns.iter().map(String::as_str).collect();
    required.push("id");
    require_text_columns(&ctx, INPUT, &options.input, &required, "--columns").await?;

    // What the outputs are made from: settings, and the versions of the lake tables read.
    let mut read = serde_json::Map::new();
    if let Some(version) = &input_version {
        read.insert(options.input.clone(), version.version.into());
    }
    for benchmark in &options.benchmarks {
        if validate_name(&benchmark.source).is_ok()
            && let Some(version) = lake.table(&benchmark.source)?.latest().await?
        {
            read.insert(benchmark.source.clone(), version.version.into());
        }
    }
    let benchmarks: Vec<String> = options
        .benchmarks
        .iter()
        .map(|b| b.name.as_ref().map_or(b.source.clone(), |n| format!("{n}={}", b.source)))
        .collect();
    let mut details = serde_json::json!({
        "input": options.input,
        "benchmarks": benchmarks,
        "benchmark_where": options.benchmark_where,
        "columns": columns,
        "ngram": options.ngram,
        "min_overlap": options.min_overlap,
        "numeric_ngrams": options.numeric_ngrams,
        "read": read,
    });
    let mut mode = CommitMode::Replace;
    let mut update = None;
    if let (true, Target::Table(to), Target::Table(_), Some(_)) =
        (options.incremental, &options.to, &options.report, &input_version)
        && validate_name(&options.input).is_ok()
    {
        let decided = incremental::update(lake, to, &details, SAME_SETTINGS, Some(&options.input)).await?;
        update = Some(decided.describe());
        match decided {
            Update::Unchanged => {
                return Ok(DecontamReport {
                    seconds: started.elapsed().as_secs_f64(),
                    update,
                    ..DecontamReport::of(options, columns)
                });
            }
            Update::Append { delta, .. } => {
                ctx.deregister_table(INPUT)?;
                register_table(&ctx, INPUT, &lake.table(&options.input)?, &delta)?;
                mode = CommitMode::Append;
            }
            Update::Full(_) => {}
        }
    }

    progress.set_message("decontaminate: indexing benchmarks");
    let items = load_benchmarks(&ctx, lake, options).await?;
    let index = Arc::new(overlaps::index_of(&items, options.ngram, options.numeric_ngrams)?);
    let mut summaries: Vec<BenchmarkSummary> = index
        .benchmarks
        .iter()
        .enumerate()
        .map(|(b, name)| BenchmarkSummary {
            name: name.clone(),
            items: index.items.iter().filter(|i| i.benchmark == b as u32).count() as u64,
            ..Default::default()
        })
        .collect();
    let mut items_hit: Vec<HashSet<u32>> = vec![HashSet::new(); summaries.len()];

    progress.set_message("decontaminate: comparing");
    let frame = ctx.table(INPUT).await?;
    let schema = SchemaRef::new(frame.schema().as_arrow().clone());
    let field_columns: Vec<usize> = columns.iter().map(|c| schema.index_of(c)).collect::<Result<_, _>>()?;
    let question_column = columns.iter().position(|c| c == "question").map(|i| field_columns[i]);
    let id_column = schema.index_of("id")?;

    // One task per partition computes overlaps (or the engine does); this task writes,
    // in arrival order.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Compared>>(4);
    let streams = if engine == Engine::Local { frame.execute_stream_partitioned().await? } else { Vec::new() };
    if engine != Engine::Local {
        let texts = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let question = if columns.iter().any(|c| c == "question") { "question" } else { "NULL" };
        let sql = format!(
            "SELECT *, {}({}, {}, {}, {}, {question}, {texts}) AS overlaps__ FROM {INPUT}",
            overlaps::NAME,
            literal(&overlaps::put_items(lake, &items).await?),
            options.ngram,
            options.numeric_ngrams,
            options.min_overlap,
        );
        ctx.register_udf(overlaps::udf());
        let distributed = crate::lake::engine::connect(ctx.clone(), &engine).await?;
        let mut stream = distributed.sql(&sql).await?.execute_stream().await?;
        let (sender, field_columns) = (sender.clone(), field_columns.clone());
        tokio::spawn(async move {
            while let Some(batch) = stream.next().await {
                let compared = batch.map_err(Error::from).and_then(|batch| compared(batch, &field_columns));
                let failed = compared.is_err();
                if sender.send(compared).await.is_err() || failed {
                    break;
                }
            }
        });
    }
    for mut stream in streams {
        let (sender, index, field_columns) = (sender.clone(), index.clone(), field_columns.clone());
        let min_overlap = options.min_overlap;
        tokio::spawn(async move {
            let mut scratch = HitScratch::default();
            while let Some(batch) = stream.next().await {
                let compared = batch.map_err(Error::from).and_then(|batch| {
                    compare(batch, &index, &field_columns, question_column, min_overlap, &mut scratch)
                });
                let failed = compared.is_err();
                if sender.send(compared).await.is_err() || failed {
                    break;
                }
            }
        });
    }
    drop(sender);

    let mut kept = Output::open_with(lake, &options.to, schema, mode).await?;
    let mut report = Output::open_with(lake, &options.report, report_schema(), mode).await?;
    let (mut input_rows, mut removed, mut text_bytes) = (0, 0, 0);
    while let Some(compared) = receiver.recv().await {
        let compared = compared?;
        let batch = &compared.batch;
        input_rows += batch.num_rows() as u64;
        text_bytes += compared.text_bytes;
        progress.inc(batch.num_rows() as u64);
        let keep: BooleanArray = compared.removed.iter().map(|r| Some(!r)).collect();
        removed += compared.removed.iter().filter(|r| **r).count() as u64;
        kept.write(&filter_record_batch(batch, &keep)?).await?;

        let ids: Vec<Option<&str>> = texts(batch.column(id_column))?.collect();
        let mut rows = ReportRows::default();
        for (row, hits) in compared.hits.iter().enumerate() {
            let mut flagged = BTreeSet::new();
            let mut removing = BTreeSet::new();
            for (hit, removes) in hits {
                let item = &index.items[hit.item as usize];
                let b = item.benchmark as usize;
                items_hit[b].insert(hit.item);
                summaries[b].overlaps += 1;
                flagged.insert(b);
                if *removes {
                    removing.insert(b);
                }
                rows.push(ids[row].unwrap_or(""), &index.benchmarks[b], item, hit, *removes);
            }
            flagged.iter().for_each(|&b| summaries[b].records_flagged += 1);
            removing.iter().for_each(|&b| summaries[b].records_removed += 1);
        }
        if !rows.training_id.is_empty() {
            report.write(&rows.batch()?).await?;
        }
    }
    for (summary, hit) in summaries.iter_mut().zip(&items_hit) {
        summary.items_hit = hit.len() as u64;
    }
    if let Some(object) = details.as_object_mut() {
        object.insert("removed".into(), removed.into());
    }
    let written = kept.finish("decontaminate", details.clone()).await?;
    report.finish("decontamination report", details).await?;
    Ok(DecontamReport {
        input_rows,
        output_rows: written.rows,
        removed,
        text_bytes,
        benchmarks: summaries,
        benchmark_ngrams: index.ngrams() as u64,
        seconds: started.elapsed().as_secs_f64(),
        update,
        ..DecontamReport::of(options, columns)
    })
}

impl DecontamReport {
    /// A report of nothing compared yet: what `options` name, over the text `columns`.
    fn of(options: &DecontamOptions, columns: Vec<String>) -> DecontamReport {
        DecontamReport {
            input: options.input.clone(),
            to: options.to.describe(),
            report: options.report.describe(),
            columns,
            ngram: options.ngram,
            min_overlap: options.min_overlap,
            numeric_ngrams: options.numeric_ngrams,
            ..DecontamReport::default()
        }
    }
}

/// A batch of training records with each row's overlaps (and whether each removes it).
struct Compared {
    batch: RecordBatch,
    hits: Vec<Vec<(Hit, bool)>>,
    removed: Vec<bool>,
    text_bytes: u64,
}

fn compare(
    batch: RecordBatch,
    index: &BenchmarkIndex,
    field_columns: &[usize],
    question_column: Option<usize>,
    min_overlap: f64,
    scratch: &mut HitScratch,
) -> Result<Compared> {
    let columns: Vec<Vec<Option<&str>>> =
        field_columns.iter().map(|&c| texts(batch.column(c)).map(Iterator::collect)).collect::<Result<_, _>>()?;
    let questions: Option<Vec<Option<&str>>> =
        question_column.map(|c| texts(batch.column(c)).map(Iterator::collect)).transpose()?;
    let mut hits = Vec::with_capacity(batch.num_rows());
    let mut removed = Vec::with_capacity(batch.num_rows());
    let mut text_bytes = 0;
    let mut fields = Vec::with_capacity(columns.len());
    for row in 0..batch.num_rows() {
        fields.clear();
        fields.extend(columns.iter().filter_map(|c| c[row]));
        text_bytes += fields.iter().map(|f| f.len() as u64).sum::<u64>();
        let question = questions.as_ref().and_then(|q| q[row]);
        let row_hits = index.overlaps(&fields, question, min_overlap, scratch);
        removed.push(row_hits.iter().any(|(_, removes)| *removes));
        hits.push(row_hits);
    }
    // The text columns borrow from `batch`; end the borrow before moving it.
    drop(columns);
    drop(questions);
    Ok(Compared { batch, hits, removed, text_bytes })
}

/// What the engine's `benchmark_overlaps` gave for `batch` (its last column), as
/// `compare` gives it.
fn compared(batch: RecordBatch, field_columns: &[usize]) -> Result<Compared> {
    let last = batch.num_columns() - 1;
    let hits = overlaps::decode(batch.column(last))?;
    let removed = hits.iter().map(|row| row.iter().any(|(_, removes)| *removes)).collect();
    let mut text_bytes = 0;
    for &c in field_columns {
        text_bytes += texts(batch.column(c))?.flatten().map(|t| t.len() as u64).sum::<u64>();
    }
    let batch = batch.project(&(0..last).collect::<Vec<_>>())?;
    Ok(Compared { batch, hits, removed, text_bytes })
}

/// Reads every benchmark's items: rows of `overlaps::items_schema`, in the order the
/// index numbers them.
async fn load_benchmarks(ctx: &SessionContext, lake: &Lake, options: &DecontamOptions) -> Result<RecordBatch> {
    let mut items: [Vec<String>; 4] = Default::default();
    for (i, spec) in options.benchmarks.iter().enumerate() {
        let alias = format!("benchmark_{i}");
        register_source(ctx, lake, &alias, &spec.source).await?;
        require_text_columns(ctx, &alias, &spec.source, &["id", "question"], "--benchmarks").await?;
        let answer = if has_column(ctx, &alias, "solution").await? {
            "solution"
        } else if has_column(ctx, &alias, "final_answer").await? {
            "final_answer"
        } else {
            "''"
        };
        let name = match &spec.name {
            Some(name) => literal(name),
            None if has_column(ctx, &alias, "source").await? => "source".to_string(),
            None => literal(&spec.source),
        };
        let filter = match &options.benchmark_where {
            Some(filter) => filter.clone(),
            None if has_column(ctx, &alias, "split").await? => "split = 'test'".to_string(),
            None => "TRUE".to_string(),
        };
        // Ordered, so that items (and the summary's benchmarks) come in the same order on
        // every run, whatever the table's files and partitions.
        let sql = format!(
            "SELECT CAST({name} AS VARCHAR) AS benchmark, id, question, CAST({answer} AS VARCHAR) FROM {alias} \
             WHERE {filter} ORDER BY benchmark, id"
        );
        let frame = ctx.sql(&sql).await.map_err(|e| {
            Error::user(format!("benchmark `{}` with filter `{filter}`: {e}", spec.source))
                .hint("--benchmark-where takes a SQL condition over the benchmark's columns")
        })?;
        let mut added = 0;
        for batch in frame.collect().await? {
            let rows = texts(batch.column(0))?
                .zip(texts(batch.column(1))?)
                .zip(texts(batch.column(2))?.zip(texts(batch.column(3))?));
            for ((name, id), (question, answer)) in rows {
                let (Some(id), Some(question)) = (id, question) else { continue };
                for (column, value) in
                    items.iter_mut().zip([name.unwrap_or(&spec.source), id, question, answer.unwrap_or("")])
                {
                    column.push(value.to_string());
                }
                added += 1;
            }
        }
        if added == 0 {
            return Err(Error::user(format!("benchmark `{}` has no items where {filter}", spec.source))
                .hint("check --benchmark-where, or that the benchmark was ingested"));
        }
    }
    let columns: Vec<ArrayRef> = items.into_iter().map(|c| Arc::new(StringArray::from(c)) as ArrayRef).collect();
    Ok(RecordBatch::try_new(overlaps::items_schema(), columns)?)
}

async fn has_column(ctx: &SessionContext, alias: &str, name: &str) -> Result<bool> {
    Ok(ctx.table(alias).await?.schema().as_arrow().field_with_name(name).is_ok())
}

fn report_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("training_id", DataType::Utf8, false),
        Field::new("benchmark", DataType::Utf8, false),
        Field::new("item_id", DataType::Utf8, false),
        Field::new("matched_ngrams", DataType::Int64, false),
        Field::new("item_ngrams", DataType::Int64, false),
        Field::new("overlap", DataType::Float64, false),
        Field::new("question_match", DataType::Boolean, false),
        Field::new("removed", DataType::Boolean, false),
        Field::new("example", DataType::Utf8, false),
    ]))
}

/// Report rows of one batch, column by column.
#[derive(Default)]
struct ReportRows {
    training_id: Vec<String>,
    benchmark: Vec<String>,
    item_id: Vec<String>,
    matched: Vec<i64>,
    item_ngrams: Vec<i64>,
    overlap: Vec<f64>,
    question_match: Vec<bool>,
    removed: Vec<bool>,
    example: Vec<String>,
}

impl ReportRows {
    fn push(&mut self, training_id: &str, benchmark: &str, item: &index::Item, hit: &Hit, removed: bool) {
        self.training_id.push(training_id.to_string());
        self.benchmark.push(benchmark.to_string());
        self.item_id.push(item.id.clone());
        self.matched.push(hit.matched as i64);
        self.item_ngrams.push(item.ngrams as i64);
        self.overlap.push(if item.ngrams == 0 { 0.0 } else { hit.matched as f64 / item.ngrams as f64 });
        self.question_match.push(hit.question_match);
        self.removed.push(removed);
        self.example.push(hit.example.clone());
    }

    fn batch(self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(self.training_id)),
            Arc::new(StringArray::from(self.benchmark)),
            Arc::new(StringArray::from(self.item_id)),
            Arc::new(Int64Array::from(self.matched)),
            Arc::new(Int64Array::from(self.item_ngrams)),
            Arc::new(Float64Array::from(self.overlap)),
            Arc::new(BooleanArray::from(self.question_match)),
            Arc::new(BooleanArray::from(self.removed)),
            Arc::new(StringArray::from(self.example)),
        ];
        Ok(RecordBatch::try_new(report_schema(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_specs_take_an_optional_name() {
        assert_eq!(BenchmarkSpec::parse("problems").unwrap(), BenchmarkSpec { name: None, source: "problems".into() });
        assert_eq!(
            BenchmarkSpec::parse("aime=s3://evals/aime.parquet").unwrap(),
            BenchmarkSpec { name: Some("aime".into()), source: "s3://evals/aime.parquet".into() }
        );
        assert!(BenchmarkSpec::parse("aime=").is_err());
    }
}
