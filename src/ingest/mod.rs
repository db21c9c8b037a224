//! `mathlake ingest`: real corpora in, clean lake tables out, no record lost.
//!
//! ```text
//! inputs (files, prefixes, globs; local or s3://)
//!   -> readers: JSONL lines / text pieces / Parquet rows        (inputs, text)
//!   -> parse + map, in parallel: a row or a rejection           (record, mapping)
//!   -> in input order: drop ids already in the table or seen    (content ids)
//!   -> Parquet writers: the table's rows, quarantine rows       (lake::TableWriter)
//!   -> commit: quarantine first, then the table                 (lake::Table::commit)
//! ```
//!
//! Every record read is counted once as written, duplicate or quarantined, and the
//! summary shows `read = written + duplicates + quarantined`. Nothing is visible until
//! the commit: a killed run leaves both tables as they were, and a rerun redoes the work.

mod batch;
mod existing;
mod http;
pub mod inputs;
mod json;
pub mod mapping;
mod parquet_rows;
pub mod record;
mod spec;
pub mod text;
mod warc;

pub use existing::OnChange;
pub use spec::IngestSpec;

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::time::Instant;

use chrono::{DateTime, Utc};
use datafusion::arrow::record_batch::RecordBatch;
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use self::batch::{QuarantineBatch, Quarantined, RowBatch};
use self::existing::id_key;
use self::inputs::{Format, Input};
use self::mapping::{Mapping, Target};
use self::record::{Parser, RAW_KEEP, RawKind, RawRecord};
use self::text::{Encoding, TextSplitter};
use crate::error::{Error, Result};
use crate::lake::{
    Commit, CommitMode, DataFile, FileLimits, Lake, Table, TableSchema, TableWriter, Version, run_id, schema,
};
use crate::text::{IdScratch, content_id};

/// Everything `ingest` needs to know; the CLI and job files build this.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Files, prefixes or globs, local or remote.
    pub inputs: Vec<String>,
    /// The table to fill; `documents` or `problems` by the mapping's target.
    pub table: Option<String>,
    pub mapping: Mapping,
    /// Dataset name stored in `source` and mixed into ids.
    pub source: String,
    /// Split of problems; by default read from each file name.
    pub split: Option<String>,
    /// Overrides the format read from file names.
    pub format: Option<Format>,
    pub encoding: Encoding,
    /// Records above this size go to quarantine as `record_too_large`.
    pub max_record_bytes: u64,
    /// Text files are cut into documents of at most this size.
    pub max_doc_bytes: usize,
    /// Fail (and commit nothing to the table) when more than this fraction is quarantined.
    pub max_bad_fraction: f64,
    pub file_limits: FileLimits,
    /// Parser threads.
    pub threads: usize,
    /// What to do with an input object that changed since the table read it.
    pub on_change: OnChange,
}

impl IngestOptions {
    pub fn new(inputs: Vec<String>, mapping: Mapping, source: &str) -> IngestOptions {
        IngestOptions {
            inputs,
            table: None,
            mapping,
            source: source.to_string(),
            split: None,
            format: None,
            encoding: Encoding::Utf8,
            max_record_bytes: 16 << 20,
            max_doc_bytes: 64 << 10,
            max_bad_fraction: 0.05,
            file_limits: FileLimits::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            on_change: OnChange::Error,
        }
    }
}

/// Counts for one input or the whole run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Counts {
    pub read: u64,
    pub written: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    /// WARC records that are no page (requests, images, redirects): read, not documents.
    #[serde(skip_serializing_if = "is_zero")]
    pub skipped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.read += other.read;
        self.written += other.written;
        self.duplicates += other.duplicates;
        self.quarantined += other.quarantined;
        self.skipped += other.skipped;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct InputSummary {
    pub input: String,
    pub format: Format,
    pub bytes: u64,
    #[serde(flatten)]
    pub counts: Counts,
}

/// One quarantined record, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineExample {
    pub input: String,
    pub position: u64,
    pub reason: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestSummary {
    pub lake: String,
    pub table: String,
    pub source: String,
    /// The version this run committed; `None` when it found nothing new.
    pub version: Option<u64>,
    /// Input objects the table read before, unchanged since: not read again.
    pub skipped_objects: usize,
    /// Changed objects whose earlier rows this run removed before reading them again.
    pub replaced_objects: Vec<String>,
    /// Rows of the table removed with the replaced objects' earlier content.
    pub rows_removed: u64,
    #[serde(flatten)]
    pub counts: Counts,
    pub reasons: BTreeMap<&'static str, u64>,
    pub examples: Vec<QuarantineExample>,
    /// Skipped WARC records by kind (`request`, `response image/png`, `response status 300`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped_by_kind: BTreeMap<String, u64>,
    pub input_bytes: u64,
    /// UTF-8 bytes of the text (documents) or question + solution (problems) written.
    pub text_bytes: u64,
    pub files_written: usize,
    pub bytes_written: u64,
    pub seconds: f64,
    pub inputs: Vec<InputSummary>,
}

impl IngestSummary {
    /// A run whose every input the table read before, unchanged since.
    fn nothing_new(lake: &Lake, table: &Table, options: &IngestOptions, skipped: usize, clock: Instant) -> Self {
        IngestSummary {
            lake: lake.root().to_string(),
            table: table.name().to_string(),
            source: options.source.clone(),
            skipped_objects: skipped,
            seconds: clock.elapsed().as_secs_f64(),
            ..IngestSummary::default()
        }
    }
}

/// Runs one ingest into `lake`. `progress` counts input bytes (use a hidden bar in tests).
pub async fn ingest(lake: &Lake, options: &IngestOptions, progress: &ProgressBar) -> Result<IngestSummary> {
    let started: DateTime<Utc> = Utc::now();
    let clock = Instant::now();
    let target = options.mapping.target;
    let inputs = resolve_inputs(options).await?;

    let table = lake.table(options.table.as_deref().unwrap_or(target.table()))?;
    let table_schema = schema::builtin(target.table())?;
    let base = table.latest().await?;
    check_schema(&table, base.as_ref(), &table_schema)?;
    let quarantine = lake.table("quarantine")?;
    let quarantine_schema = schema::builtin("quarantine")?;
    let quarantine_base = quarantine.latest().await?;
    check_schema(&quarantine, quarantine_base.as_ref(), &quarantine_schema)?;
    let plan = existing::plan(&table, base.as_ref(), inputs, &options.source, options.on_change)?;
    if plan.read.is_empty() {
        return Ok(IngestSummary::nothing_new(lake, &table, options, plan.skipped, clock));
    }
    let inputs = plan.read;
    let splits = problem_splits(options, &inputs)?;

    let run_id = run_id(started);
    let dropping = existing::Dropping { objects: &plan.replaced, target: None };
    let kept = existing::keep(&table, base.as_ref(), &dropping, &run_id).await?;
    let dropping = existing::Dropping { objects: &plan.replaced, target: Some(table.name()) };
    let kept_quarantine = existing::keep(&quarantine, quarantine_base.as_ref(), &dropping, &run_id).await?;
    let input_bytes: u64 = inputs.iter().map(|i| i.size).sum();
    progress.set_length(input_bytes);

    let (tx, rx) = mpsc::channel(4);
    let writers = (
        TableWriter::new(table.clone(), &run_id, table_schema.arrow()?, options.file_limits),
        TableWriter::new(quarantine.clone(), &run_id, quarantine_schema.arrow()?, options.file_limits),
    );
    let writer = tokio::spawn(write_batches(rx, writers));
    let work = Work {
        inputs: inputs.clone(),
        splits,
        options: options.clone(),
        table: table.name().to_string(),
        rows: RowBatch::new(target, table_schema.arrow()?, &options.source),
        quarantine: QuarantineBatch::new(quarantine_schema.arrow()?, table.name(), &options.source),
        seen: kept.ids,
        seen_quarantine: kept_quarantine.ids,
        handle: Handle::current(),
        progress: progress.clone(),
        tx,
    };
    let processed = tokio::task::spawn_blocking(move || work.run()).await;
    let written = writer.await;
    let (report, (files, quarantine_files)) = match (processed, written) {
        (_, Err(join)) => return Err(Error::Internal(format!("writer task failed: {join}"))),
        (_, Ok(Err(write_error))) => return Err(write_error),
        (Err(join), _) => return Err(Error::Internal(format!("ingest task failed: {join}"))),
        (Ok(Err(read_error)), _) => return Err(read_error),
        (Ok(Ok(report)), Ok(Ok(files))) => (report, files),
    };

    let mut summary = IngestSummary {
        lake: lake.root().to_string(),
        table: table.name().to_string(),
        source: options.source.clone(),
        version: None,
        skipped_objects: plan.skipped,
        replaced_objects: plan.replaced.iter().map(|o| o.url.clone()).collect(),
        rows_removed: kept.rows_removed,
        counts: report.total.clone(),
        reasons: report.reasons.clone(),
        examples: report.examples.clone(),
        skipped_by_kind: report.skipped_by_kind.clone(),
        input_bytes,
        text_bytes: report.text_bytes,
        files_written: files.len() + quarantine_files.len(),
        bytes_written: files.iter().chain(&quarantine_files).map(|f| f.bytes).sum(),
        seconds: 0.0,
        inputs: report.inputs.clone(),
    };
    let details = serde_json::json!({
        "run": run_id,
        "source": options.source,
        "inputs": report.inputs,
        "counts": report.total,
        "skipped_objects": summary.skipped_objects,
        "replaced_objects": summary.replaced_objects,
        "rows_removed": summary.rows_removed,
    });
    if !quarantine_files.is_empty() || !kept_quarantine.removed.is_empty() {
        let mut files = kept_quarantine.files;
        files.extend(quarantine_files);
        let commit = Commit {
            details: details.clone(),
            removed: kept_quarantine.removed,
            ..Commit::new(CommitMode::Append, "ingest", quarantine_schema, files)
        };
        quarantine.commit(quarantine_base.as_ref(), commit).await?;
    }
    let bad = summary.counts.quarantined as f64 / summary.counts.read.max(1) as f64;
    if bad > options.max_bad_fraction {
        return Err(Error::user(format!(
            "{} of {} records ({:.1}%) went to quarantine, over --max-bad-fraction {}; table `{}` is unchanged",
            summary.counts.quarantined,
            summary.counts.read,
            100.0 * bad,
            options.max_bad_fraction,
            table.name()
        ))
        .hint(format!(
            "see why: mathlake query \"SELECT input, reason, count(*) FROM quarantine GROUP BY 1, 2\"{}",
            describe_reasons(&summary.reasons)
        )));
    }
    // A run that read nothing leaves the table's version as it was; one that read objects
    // records them even when they held no new row, so that the next run skips them.
    let objects: Vec<_> = inputs.iter().map(|i| existing::source_object(i, &options.source)).collect();
    if !objects.is_empty() || base.is_none() {
        let mut all_files = kept.files;
        all_files.extend(files);
        let commit = Commit {
            details,
            removed: kept.removed,
            objects,
            ..Commit::new(CommitMode::Append, "ingest", table_schema, all_files)
        };
        let version = table.commit(base.as_ref(), commit).await?;
        summary.version = Some(version.version);
    }
    table.remove_orphans(started).await?;
    quarantine.remove_orphans(started).await?;
    summary.seconds = clock.elapsed().as_secs_f64();
    Ok(summary)
}

fn describe_reasons(reasons: &BTreeMap<&'static str, u64>) -> String {
    let parts: Vec<_> = reasons.iter().map(|(r, n)| format!("{r}: {n}")).collect();
    format!("\n  reasons: {}", parts.join(", "))
}

async fn resolve_inputs(options: &IngestOptions) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for spec in &options.inputs {
        for input in inputs::resolve(spec, options.format).await? {
            if !inputs.iter().any(|i: &Input| i.location == input.location) {
                inputs.push(input);
            }
        }
    }
    if inputs.is_empty() {
        return Err(Error::user("no inputs given")
            .hint("name files, folders or globs: mathlake ingest data/*.jsonl --preset gsm8k"));
    }
    let has_records = inputs.iter().any(|i| i.format.has_fields());
    options.mapping.check(!has_records)?;
    if options.mapping.target == Target::Problems
        && let Some(text) = inputs.iter().find(|i| !i.format.has_fields())
    {
        return Err(Error::user(format!(
            "`{}` is a text or web file; it is ingested as documents, not problems",
            text.location
        ))
        .hint("ingest it with --preset web / latex / wikitext / text, or give a JSONL or Parquet file of problems"));
    }
    Ok(inputs)
}

/// The split of each input's problems: `--split`, a mapped field, or the file name.
fn problem_splits(options: &IngestOptions, inputs: &[Input]) -> Result<Vec<Option<String>>> {
    let mapped = !options.mapping.fields_of(mapping::Column::Split).is_empty();
    inputs
        .iter()
        .map(|input| {
            if options.mapping.target != Target::Problems {
                return Ok(None);
            }
            if let Some(split) = &options.split {
                return Ok(Some(split.clone()));
            }
            let name = input.location.path().filename().unwrap_or_default();
            match inputs::split_from_name(name) {
                Some(split) => Ok(Some(split.to_string())),
                None if mapped => Ok(None),
                None => Err(Error::user(format!(
                    "cannot tell the split (train/test/validation) of `{}` from its name",
                    input.location
                ))
                .hint("pass --split train (or test: evaluation items), or --map split=FIELD")),
            }
        })
        .collect()
}

fn check_schema(table: &Table, base: Option<&Version>, expected: &TableSchema) -> Result<()> {
    let Some(base) = base else { return Ok(()) };
    let columns = |s: &TableSchema| s.fields.iter().map(|f| (f.name.clone(), f.data_type.clone())).collect::<Vec<_>>();
    if columns(&base.schema) != columns(expected) {
        return Err(Error::user(format!(
            "table `{}` has the `{}` schema, so {} rows cannot be appended to it",
            table.name(),
            base.schema.table,
            expected.table
        ))
        .hint("ingest into another table with --to NAME"));
    }
    Ok(())
}

enum Batch {
    Rows(RecordBatch),
    Quarantine(RecordBatch),
}

async fn write_batches(
    mut rx: mpsc::Receiver<Batch>,
    writers: (TableWriter, TableWriter),
) -> Result<(Vec<DataFile>, Vec<DataFile>)> {
    let (mut rows, mut quarantine) = writers;
    while let Some(batch) = rx.recv().await {
        match batch {
            Batch::Rows(b) => rows.write(&b).await?,
            Batch::Quarantine(b) => quarantine.write(&b).await?,
        }
    }
    Ok((rows.finish().await?, quarantine.finish().await?))
}

/// What the blocking side reports.
#[derive(Debug, Default)]
struct Report {
    total: Counts,
    inputs: Vec<InputSummary>,
    reasons: BTreeMap<&'static str, u64>,
    examples: Vec<QuarantineExample>,
    skipped_by_kind: BTreeMap<String, u64>,
    text_bytes: u64,
}

/// The reading, parsing and deduplicating side of a run, on a blocking thread.
struct Work {
    inputs: Vec<Input>,
    splits: Vec<Option<String>>,
    options: IngestOptions,
    table: String,
    rows: RowBatch,
    quarantine: QuarantineBatch,
    seen: HashSet<u128>,
    seen_quarantine: HashSet<u128>,
    handle: Handle,
    progress: ProgressBar,
    tx: mpsc::Sender<Batch>,
}

/// Records are parsed in chunks of about this many bytes, in parallel.
const CHUNK_BYTES: usize = 8 << 20;
const CHUNK_RECORDS: usize = 8192;

impl Work {
    fn run(mut self) -> Result<Report> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.options.threads.max(1))
            .thread_name(|i| format!("ingest-parse-{i}"))
            .build()
            .map_err(|e| Error::Internal(format!("cannot start parser threads: {e}")))?;
        let mut report = Report::default();
        for (input, split) in std::mem::take(&mut self.inputs).into_iter().zip(std::mem::take(&mut self.splits)) {
            let url = input.location.url();
            self.rows.set_input(&url);
            self.quarantine.set_input(&url);
            let parser = Parser {
                mapping: self.options.mapping.clone(),
                source: self.options.source.clone(),
                split,
                max_record_bytes: self.options.max_record_bytes,
            };
            let mut counts = Counts::default();
            let skipped = warc::Skipped::default();
            let mut records = self.records(&input, &skipped)?;
            loop {
                let mut chunk = Vec::new();
                let mut bytes = 0;
                while bytes < CHUNK_BYTES && chunk.len() < CHUNK_RECORDS {
                    match records.next() {
                        Some(record) => {
                            let record = record.map_err(|e| {
                                Error::user(format!("reading {}: {e}", input.location))
                                    .hint("nothing was committed; check that the file is complete (a cut download?) and run again")
                            })?;
                            bytes += record.held() as usize;
                            chunk.push(record);
                        }
                        None => break,
                    }
                }
                if chunk.is_empty() {
                    break;
                }
                let parsed: Vec<_> = pool.install(|| {
                    chunk.par_iter().map_init(IdScratch::default, |scratch, raw| parser.parse(raw, scratch)).collect()
                });
                for (raw, result) in chunk.into_iter().zip(parsed) {
                    self.accept(&url, raw, result, &mut counts, &mut report)?;
                }
            }
            self.flush()?;
            for (kind, n) in skipped.take() {
                counts.read += n;
                counts.skipped += n;
                *report.skipped_by_kind.entry(kind).or_default() += n;
            }
            report.total.add(&counts);
            report.inputs.push(InputSummary { input: url, format: input.format, bytes: input.size, counts });
        }
        Ok(report)
    }

    fn accept(
        &mut self,
        url: &str,
        raw: RawRecord,
        result: std::result::Result<record::Row, record::Rejection>,
        counts: &mut Counts,
        report: &mut Report,
    ) -> Result<()> {
        counts.read += 1;
        match result {
            Ok(row) => {
                if self.seen.insert(id_key(&row.id)?) {
                    counts.written += 1;
                    report.text_bytes += (row.text.len() + row.solution.len()) as u64;
                    if self.rows.push(row) {
                        self.send_rows()?;
                    }
                } else {
                    counts.duplicates += 1;
                }
            }
            Err(rejection) => {
                counts.quarantined += 1;
                *report.reasons.entry(rejection.reason.as_str()).or_default() += 1;
                if report.examples.len() < 5 {
                    report.examples.push(QuarantineExample {
                        input: url.to_string(),
                        position: raw.position,
                        reason: rejection.reason.as_str(),
                        detail: rejection.detail.clone(),
                    });
                }
                let id = content_id(
                    &[&self.table, url, &raw.position.to_string(), rejection.reason.as_str()],
                    &mut IdScratch::default(),
                );
                if self.seen_quarantine.insert(id_key(&id)?) {
                    let (position, raw_bytes) = (raw.position, raw.size);
                    let row = Quarantined { id, position, rejection, raw: raw.kept(), raw_bytes };
                    if self.quarantine.push(row)
                        && let Some(batch) = self.quarantine.take()?
                    {
                        self.send(Batch::Quarantine(batch))?;
                    }
                }
            }
        }
        Ok(())
    }

    fn send_rows(&mut self) -> Result<()> {
        match self.rows.take()? {
            Some(batch) => self.send(Batch::Rows(batch)),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> Result<()> {
        self.send_rows()?;
        if let Some(batch) = self.quarantine.take()? {
            self.send(Batch::Quarantine(batch))?;
        }
        Ok(())
    }

    fn send(&self, batch: Batch) -> Result<()> {
        // A closed channel means the writer failed; its error is the one reported.
        self.tx.blocking_send(batch).map_err(|_| Error::Internal("the writer stopped early".into()))
    }

    /// The records of one input, in order.
    fn records(
        &self,
        input: &Input,
        skipped: &warc::Skipped,
    ) -> Result<Box<dyn Iterator<Item = std::io::Result<RawRecord>>>> {
        Ok(match input.format {
            Format::Jsonl => {
                let reader = inputs::open(input, &self.handle, &self.progress)?;
                Box::new(JsonLines::new(reader, self.options.max_record_bytes))
            }
            Format::Text => {
                let reader = inputs::open(input, &self.handle, &self.progress)?;
                let splitter = TextSplitter::new(
                    reader,
                    self.options.mapping.text_split,
                    self.options.encoding,
                    self.options.max_doc_bytes,
                );
                Box::new(splitter.map(|piece| {
                    piece.map(|p| RawRecord {
                        position: p.line,
                        size: p.bytes.len() as u64,
                        bytes: p.bytes,
                        kind: RawKind::Text,
                    })
                }))
            }
            Format::Parquet => Box::new(parquet_rows::ParquetRows::open(input, &self.handle, &self.progress)?),
            Format::Warc => {
                let stored = inputs::open_stored(input, &self.handle, &self.progress)?;
                let gzip = input.compression == inputs::Compression::Gzip;
                Box::new(warc::WarcRecords::new(stored, gzip, self.options.max_record_bytes, skipped.clone()))
            }
            Format::Html => {
                let reader = inputs::open(input, &self.handle, &self.progress)?;
                Box::new(std::iter::once(html_page(reader, self.options.max_record_bytes)))
            }
        })
    }
}

/// An HTML file as one record: at most `max_record_bytes` of it kept, its full size
/// counted.
fn html_page(mut reader: Box<dyn BufRead + Send>, max_record_bytes: u64) -> std::io::Result<RawRecord> {
    use std::io::Read;
    let mut bytes = Vec::new();
    (&mut reader).take(max_record_bytes).read_to_end(&mut bytes)?;
    let size = bytes.len() as u64 + std::io::copy(&mut reader, &mut std::io::sink())?;
    if size > bytes.len() as u64 {
        bytes.truncate(RAW_KEEP);
    }
    Ok(RawRecord { position: 1, bytes, size, kind: RawKind::Html(Box::default()) })
}

/// JSONL records: one per non-blank line, numbered by line.
struct JsonLines {
    reader: Box<dyn BufRead + Send>,
    keep: usize,
    line: u64,
    buf: Vec<u8>,
}

impl JsonLines {
    fn new(reader: Box<dyn BufRead + Send>, max_record_bytes: u64) -> JsonLines {
        let keep = usize::try_from(max_record_bytes).unwrap_or(usize::MAX).max(RAW_KEEP);
        JsonLines { reader, keep, line: 0, buf: Vec::new() }
    }
}

impl Iterator for JsonLines {
    type Item = std::io::Result<RawRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let size = match inputs::read_line_capped(&mut *self.reader, self.keep, &mut self.buf) {
                Ok(Some(size)) => size,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            self.line += 1;
            if size as usize == self.buf.len() && self.buf.trim_ascii().is_empty() {
                continue; // a blank line is no record
            }
            // A copy of exactly the line's size; `buf` keeps its capacity for the next line.
            let mut bytes = self.buf.clone();
            if size > bytes.len() as u64 {
                bytes.truncate(RAW_KEEP);
            }
            return Some(Ok(RawRecord { position: self.line, bytes, size, kind: RawKind::Json }));
        }
    }
}
