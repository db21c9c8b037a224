//! `mathlake tokenize`: a table of documents or problems into a tokenized table
//! (id, source, the `--keep` columns, tokens, prompt_tokens, token_count).
//!
//! Rows render through a [`Template`] (documents: the text; problems: a question/answer
//! layout whose prompt is out of the SFT loss), are tokenized as one string with a
//! Hugging Face `tokenizer.json`, and end with EOS. The prompt is always the first tokens,
//! so `prompt_tokens` counts them instead of a boolean per token (writing that list was
//! an eighth of the stage's CPU time). Tokenization is CPU-bound, so it runs on its own
//! thread pool, not on DataFusion's runtime threads: the input streams in batches, at
//! most two batches per thread are in flight, and finished batches are written in input
//! order, so memory stays flat and the output is the same for any number of threads. A row with a null in a column the template
//! reads is skipped and counted.

pub mod bpe;
pub mod encoder;
pub mod function;
pub mod template;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, ListArray, RecordBatch, StringArray, UInt32Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use self::encoder::{Encoded, Encoder, Engine, TokenizerInfo};
pub use self::template::Template;
use crate::error::{Error, Result};
use crate::lake::engine::Engine as SqlEngine;
use crate::lake::incremental::{self, Update};
use crate::lake::{
    CommitMode, Lake, Location, Output, SessionOptions, Target, literal, quote, register_source, register_table,
    require_text_columns, validate_name,
};
use crate::text::texts;

const INPUT: &str = "tokenize_input";

/// The settings of one tokenization, as `mathlake tokenize` flags and as a job's
/// `kind = "tokenize"` stage: one definition, so both accept the same things. Paths may
/// use `{lake}`, the lake's URL.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizeSpec {
    /// In a job file: the stage's name in logs and summaries.
    #[arg(skip)]
    #[serde(default)]
    pub name: Option<String>,
    /// Documents or problems: a lake table, a table's URL, or Parquet files.
    #[arg(long)]
    pub input: String,
    /// SQL over the input's columns: only the rows it keeps are tokenized (for example
    /// `status = 'accepted'` over synthetic records).
    #[arg(long = "where", id = "where", value_name = "SQL")]
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// A Hugging Face tokenizer.json: a path or URL.
    #[arg(long)]
    pub tokenizer: String,
    /// The EOS token [default: the first of <|endoftext|>, </s>, <|end_of_text|>, <eos> in the vocabulary].
    #[arg(long)]
    #[serde(default)]
    pub eos: Option<String>,
    /// Which encoder: auto (the fast byte-level BPE encoder where the file is of its shape,
    /// else Hugging Face tokenizers), fast, or hf. Both give the same ids.
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub encoder: Engine,
    /// Where the tokenized rows go: a lake table (replaced) or a .parquet URL.
    #[arg(long)]
    pub to: String,
    /// The layout: text ("{text}") or problem ("Question: {question}\nAnswer:" + " {solution}")
    /// [default: problem if the input has a question column, else text].
    #[arg(long, value_parser = ["text", "problem"], conflicts_with_all = ["prompt", "response"])]
    #[serde(default)]
    pub template: Option<String>,
    /// A custom prompt ({column} placeholders): its tokens are out of the SFT loss.
    #[arg(long, requires = "response")]
    #[serde(default)]
    pub prompt: Option<String>,
    /// A custom response ({column} placeholders): trained on in SFT, followed by EOS.
    #[arg(long)]
    #[serde(default)]
    pub response: Option<String>,
    /// Input columns to copy to the output beside id and source, comma-separated.
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub keep: Vec<String>,
    /// Where records are encoded: local, standalone (Ballista in this process) or
    /// ballista://HOST:PORT (both need the `distributed` build; executors read the
    /// tokenizer by its URL); the output is written here [default: local].
    #[arg(long)]
    #[serde(default)]
    pub engine: Option<String>,
    /// Memory DataFusion's operators may hold before they spill (e.g. 512M, 4G).
    #[arg(long, value_name = "SIZE")]
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// Where spill files go [default: the system temp folder].
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub spill_dir: Option<PathBuf>,
    /// When the input table only gained rows since the version the output was made from
    /// (same tokenizer and template), tokenize those rows and append them.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incremental: bool,
}

impl TokenizeSpec {
    pub fn to_options(&self, lake: &Lake, threads: usize) -> Result<TokenizeOptions> {
        Ok(TokenizeOptions {
            input: self.input.clone(),
            filter: self.filter.clone(),
            to: Target::parse(&lake.expand(&self.to))?,
            tokenizer: lake.expand(&self.tokenizer),
            eos: self.eos.clone(),
            engine: self.encoder,
            template: Template::choose(self.template.as_deref(), self.prompt.as_deref(), self.response.as_deref())?,
            keep: self.keep.clone(),
            threads,
            session: SessionOptions::from_settings(self.memory_limit.as_deref(), self.spill_dir.as_deref())?
                .on_engine(self.engine.as_deref())?,
            incremental: self.incremental,
        })
    }
}

#[derive(Debug, Clone)]
pub struct TokenizeOptions {
    /// A lake table, a table's URL, or Parquet files.
    pub input: String,
    /// SQL over the input's columns selecting the rows to tokenize.
    pub filter: Option<String>,
    pub to: Target,
    /// A tokenizer.json: a path or URL.
    pub tokenizer: String,
    /// The EOS token; found in the vocabulary when not given.
    pub eos: Option<String>,
    pub engine: Engine,
    /// `None`: the problem layout when the input has a `question` column, else the text.
    pub template: Option<Template>,
    /// Input columns copied to the output beside id and source (e.g. split, level).
    pub keep: Vec<String>,
    pub threads: usize,
    pub session: SessionOptions,
    /// Append the input's new rows when that is all that changed (see TokenizeSpec).
    pub incremental: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenizeReport {
    pub input: String,
    pub to: String,
    pub tokenizer: TokenizerInfo,
    /// The engine that encoded: `fast` or `hf`.
    pub encoder: Engine,
    /// Why `--encoder auto` did not use the fast encoder, where it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder_fallback: Option<String>,
    pub template: Template,
    pub input_rows: u64,
    pub output_rows: u64,
    /// Rows with a null in a column the template reads.
    pub skipped_null: u64,
    /// Bytes of rendered text.
    pub text_bytes: u64,
    /// Tokens written, EOS included.
    pub tokens: u64,
    /// Of which in the SFT loss (response and EOS).
    pub loss_tokens: u64,
    pub threads: usize,
    pub seconds: f64,
    /// An incremental run: how the output was brought up to date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
}

/// What must be as it was for an incremental tokenize to append to its output.
const SAME_SETTINGS: &[&str] = &["input", "where", "tokenizer", "encoder", "template", "keep"];

pub async fn tokenize(lake: &Lake, options: &TokenizeOptions, progress: &ProgressBar) -> Result<TokenizeReport> {
    let started = Instant::now();
    let encoder = Arc::new(Encoder::load(&options.tokenizer, options.eos.as_deref(), options.engine).await?);
    // Only the encoding runs on the SQL engine (see `encode_on_engine`).
    let mut session = options.session.clone();
    let sql_engine = std::mem::take(&mut session.engine);
    let ctx = crate::lake::session(lake, &session).await?;
    let read = register_source(&ctx, lake, INPUT, &options.input).await?;
    let input_schema = ctx.table(INPUT).await?.schema().as_arrow().clone();
    let template = match &options.template {
        Some(t) => t.clone(),
        None if input_schema.field_with_name("question").is_ok() => Template::problem(),
        None => Template::text(),
    };
    let mut details = serde_json::json!({
        "input": options.input,
        "where": options.filter,
        "tokenizer": encoder.info,
        "encoder": encoder.engine(),
        "template": template,
        "keep": options.keep,
        "read": read.as_ref().map(|v| serde_json::json!({ &options.input: v.version })),
    });
    let mut mode = CommitMode::Replace;
    let mut update = None;
    if let (true, Target::Table(name), Some(_)) = (options.incremental, &options.to, &read)
        && validate_name(&options.input).is_ok()
    {
        let decided = incremental::update(lake, name, &details, SAME_SETTINGS, Some(&options.input)).await?;
        update = Some(decided.describe());
        match decided {
            Update::Unchanged => return Ok(TokenizeReport::unchanged(options, &encoder, template, update, started)),
            Update::Append { delta, .. } => {
                ctx.deregister_table(INPUT)?;
                register_table(&ctx, INPUT, &lake.table(&options.input)?, &delta)?;
                mode = CommitMode::Append;
            }
            Update::Full(_) => {}
        }
    }
    let frame = match &options.filter {
        None => ctx.table(INPUT).await?,
        Some(filter) => ctx.sql(&format!("SELECT * FROM {INPUT} WHERE {filter}")).await.map_err(|e| {
            Error::user(format!("cannot select rows of `{}` with `where = {filter}`: {e}", options.input))
                .hint("`where` is SQL over the input's columns (`mathlake inspect TABLE` shows them)")
        })?,
    };
    let input_schema = frame.schema().as_arrow().clone();
    let columns = template.columns();
    let mut required: Vec<&str> = columns.iter().map(String::as_str).collect();
    required.push("id");
    require_text_columns(&ctx, INPUT, &options.input, &required, "--template").await?;
    for name in &options.keep {
        if input_schema.field_with_name(name).is_err() || ["id", "source"].contains(&name.as_str()) {
            return Err(Error::user(format!("cannot keep column `{name}` of `{}`", options.input))
                .hint("--keep names input columns other than id and source, which are always kept"));
        }
    }

    let layout = Arc::new(Layout {
        id: input_schema.index_of("id")?,
        source: input_schema.index_of("source").ok(),
        default_source: options.input.clone(),
        keep: options.keep.iter().map(|k| input_schema.index_of(k)).collect::<Result<_, _>>()?,
        fields: columns.iter().map(|c| input_schema.index_of(c)).collect::<Result<_, _>>()?,
        columns,
        schema: output_schema(&input_schema, &options.keep)?,
    });
    let threads = options.threads.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("tokenize-{i}"))
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the tokenizer threads: {e}")))?;

    let mut output = Output::open_with(lake, &options.to, layout.schema.clone(), mode).await?;
    let mut totals = Counts::default();
    if sql_engine != SqlEngine::Local {
        let mut stream = encode_on_engine(&ctx, &sql_engine, options, &template, &layout.columns).await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let encoded = function::decode(batch.column(batch.num_columns() - 1))?;
            write_tokenized(&mut output, &mut totals, progress, assemble(&batch, encoded, &layout)?).await?;
        }
    } else {
        let mut stream = frame.execute_stream().await?;
        let mut in_flight = VecDeque::new();
        let mut input_done = false;
        loop {
            while !input_done && in_flight.len() < 2 * threads {
                let Some(batch) = stream.next().await else {
                    input_done = true;
                    break;
                };
                let batch = batch?;
                let (sender, receiver) = tokio::sync::oneshot::channel();
                let (encoder, layout, template) = (encoder.clone(), layout.clone(), template.clone());
                pool.spawn(move || {
                    // The receiver is gone only when the run already failed.
                    let _ = sender.send(tokenize_batch(&batch, &encoder, &template, &layout));
                });
                in_flight.push_back(receiver);
            }
            let Some(next) = in_flight.pop_front() else { break };
            let batch = next.await.map_err(|_| Error::Internal("a tokenizer thread stopped".into()))??;
            write_tokenized(&mut output, &mut totals, progress, batch).await?;
        }
    }
    if let Some(object) = details.as_object_mut() {
        object.insert("tokens".into(), totals.tokens.into());
        object.insert("loss_tokens".into(), totals.loss_tokens.into());
        object.insert("skipped_null".into(), (totals.input_rows - totals.rows).into());
    }
    let written = output.finish("tokenize", details).await?;
    Ok(TokenizeReport {
        input: options.input.clone(),
        to: options.to.describe(),
        tokenizer: encoder.info.clone(),
        encoder: encoder.engine(),
        encoder_fallback: encoder.fallback().map(str::to_owned),
        template,
        input_rows: totals.input_rows,
        output_rows: written.rows,
        skipped_null: totals.input_rows - totals.rows,
        text_bytes: totals.text_bytes,
        tokens: totals.tokens,
        loss_tokens: totals.loss_tokens,
        threads,
        seconds: started.elapsed().as_secs_f64(),
        update,
    })
}

impl TokenizeReport {
    /// An incremental run whose input did not change: nothing read, nothing written.
    fn unchanged(
        options: &TokenizeOptions,
        encoder: &Encoder,
        template: Template,
        update: Option<String>,
        started: Instant,
    ) -> Self {
        TokenizeReport {
            input: options.input.clone(),
            to: options.to.describe(),
            tokenizer: encoder.info.clone(),
            encoder: encoder.engine(),
            encoder_fallback: encoder.fallback().map(str::to_owned),
            template,
            input_rows: 0,
            output_rows: 0,
            skipped_null: 0,
            text_bytes: 0,
            tokens: 0,
            loss_tokens: 0,
            threads: options.threads.max(1),
            seconds: started.elapsed().as_secs_f64(),
            update,
        }
    }
}

async fn write_tokenized(
    output: &mut Output,
    totals: &mut Counts,
    progress: &ProgressBar,
    batch: Tokenized,
) -> Result<()> {
    progress.inc(batch.counts.input_rows);
    if batch.batch.num_rows() > 0 {
        output.write(&batch.batch).await?;
    }
    totals.add(&batch.counts);
    Ok(())
}

/// The input's rows (after `where`) with each one's encoding last, from `tokenize_record`
/// run by `engine`'s executors, which load the tokenizer by its URL.
async fn encode_on_engine(
    ctx: &SessionContext,
    engine: &SqlEngine,
    options: &TokenizeOptions,
    template: &Template,
    columns: &[String],
) -> Result<SendableRecordBatchStream> {
    let encoder = match options.engine {
        Engine::Auto => "auto",
        Engine::Fast => "fast",
        Engine::Hf => "hf",
    };
    let tokenizer = Location::parse(&options.tokenizer)?.url();
    let columns: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let call = format!(
        "{}({}, {}, '{encoder}', {}, {}, {})",
        function::NAME,
        literal(&tokenizer),
        options.eos.as_deref().map_or("NULL".into(), literal),
        literal(&template.prompt),
        literal(&template.response),
        columns.join(", "),
    );
    let filter = options.filter.as_ref().map(|f| format!(" WHERE {f}")).unwrap_or_default();
    ctx.register_udf(function::udf());
    let distributed = crate::lake::engine::connect(ctx.clone(), engine).await?;
    Ok(distributed.sql(&format!("SELECT *, {call} AS encoded__ FROM {INPUT}{filter}")).await?.execute_stream().await?)
}

/// Where each input column is, and the output's schema.
struct Layout {
    id: usize,
    source: Option<usize>,
    /// The source of every row when the input has no `source` column: the input's name.
    default_source: String,
    keep: Vec<usize>,
    /// The template's columns and their indices.
    columns: Vec<String>,
    fields: Vec<usize>,
    schema: SchemaRef,
}

fn output_schema(input: &Schema, keep: &[String]) -> Result<SchemaRef> {
    let mut fields = vec![Field::new("id", DataType::Utf8, false), Field::new("source", DataType::Utf8, false)];
    for name in keep {
        fields.push(input.field_with_name(name)?.clone());
    }
    fields.extend([
        Field::new("tokens", DataType::List(Arc::new(Field::new_list_field(DataType::UInt32, false))), false),
        Field::new("prompt_tokens", DataType::Int64, false),
        Field::new("token_count", DataType::Int64, false),
    ]);
    Ok(Arc::new(Schema::new(fields)))
}

/// One output batch and what went into it.
struct Tokenized {
    batch: RecordBatch,
    counts: Counts,
}

#[derive(Default)]
struct Counts {
    input_rows: u64,
    rows: u64,
    text_bytes: u64,
    tokens: u64,
    loss_tokens: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.input_rows += other.input_rows;
        self.rows += other.rows;
        self.text_bytes += other.text_bytes;
        self.tokens += other.tokens;
        self.loss_tokens += other.loss_tokens;
    }
}

/// Runs on the tokenizer pool: renders and encodes every row of `batch` in parallel.
fn tokenize_batch(batch: &RecordBatch, encoder: &Encoder, template: &Template, layout: &Layout) -> Result<Tokenized> {
    let values: Vec<Vec<Option<&str>>> =
        layout.fields.iter().map(|&f| texts(batch.column(f)).map(Iterator::collect)).collect::<Result<_, _>>()?;
    let encoded = encode_rows(&layout.columns, &values, batch.num_rows(), encoder, template)?;
    assemble(batch, encoded, layout)
}

/// Each row rendered by `template` from `values` (one list per template column, in
/// `columns`' order) and encoded, with its text's length; `None` where a column the
/// template reads is NULL.
fn encode_rows(
    columns: &[String],
    values: &[Vec<Option<&str>>],
    rows: usize,
    encoder: &Encoder,
    template: &Template,
) -> Result<Vec<Option<(Encoded, usize)>>> {
    (0..rows)
        .into_par_iter()
        .map(|row| {
            let value = |column: &str| columns.iter().position(|c| c == column).and_then(|i| values[i][row]);
            template
                .render(value)
                .map(|r| encoder.encode(&r.text, r.prompt_bytes).map(|e| (e, r.text.len())))
                .transpose()
        })
        .collect()
}

/// The output rows of `batch` (the input's columns, at `layout`'s places) given each
/// row's encoding.
fn assemble(batch: &RecordBatch, encoded: Vec<Option<(Encoded, usize)>>, layout: &Layout) -> Result<Tokenized> {
    let present: BooleanArray = encoded.iter().map(|e| Some(e.is_some())).collect();
    let rows = filter_record_batch(batch, &present)?;
    let ids: StringArray = texts(rows.column(layout.id))?.collect();
    let sources: StringArray = match layout.source {
        Some(s) => texts(rows.column(s))?.map(|s| Some(s.unwrap_or(&layout.default_source))).collect(),
        None => std::iter::repeat_n(Some(layout.default_source.as_str()), rows.num_rows()).collect(),
    };
    if ids.null_count() > 0 {
        return Err(Error::user("a row has a null id").hint("every row needs an id; ingested tables always have one"));
    }
    let (mut offsets, mut counts) = (vec![0i32], Vec::with_capacity(rows.num_rows()));
    let mut prompts = Vec::with_capacity(rows.num_rows());
    let total: usize = encoded.iter().flatten().map(|(e, _)| e.ids.len()).sum();
    let mut tokens = Vec::with_capacity(total);
    let mut out = Counts { input_rows: batch.num_rows() as u64, ..Default::default() };
    for (e, text_bytes) in encoded.into_iter().flatten() {
        tokens.extend_from_slice(&e.ids);
        let end = i32::try_from(tokens.len())
            .map_err(|_| Error::user("a batch has over 2^31 tokens").hint("lower the input's batch size"))?;
        offsets.push(end);
        counts.push(e.ids.len() as i64);
        prompts.push(e.prompt_tokens as i64);
        out.loss_tokens += (e.ids.len() - e.prompt_tokens) as u64;
        out.text_bytes += text_bytes as u64;
    }
    out.rows = counts.len() as u64;
    out.tokens = tokens.len() as u64;
    let offsets = OffsetBuffer::new(offsets.into());
    let token_field = Arc::new(Field::new_list_field(DataType::UInt32, false));
    let mut columns: Vec<ArrayRef> = vec![Arc::new(ids), Arc::new(sources)];
    columns.extend(layout.keep.iter().map(|&k| rows.column(k).clone()));
    columns.extend([
        Arc::new(ListArray::new(token_field, offsets, Arc::new(UInt32Array::from(tokens)), None)) as ArrayRef,
        Arc::new(Int64Array::from(prompts)),
        Arc::new(Int64Array::from(counts)),
    ]);
    Ok(Tokenized { batch: RecordBatch::try_new(layout.schema.clone(), columns)?, counts: out })
}

/// The settings of `mathlake tokenizer train` and of a job's `kind = "tokenizer"` stage.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainTokenizerSpec {
    /// In a job file: the stage's name in logs and summaries.
    #[arg(skip)]
    #[serde(default)]
    pub name: Option<String>,
    /// A SQL query whose first column is text, or a table / URL with a text column.
    #[arg(long)]
    pub input: String,
    /// Tokens in the vocabulary, the 256 bytes and EOS included.
    #[arg(long)]
    pub vocab_size: usize,
    /// A pair merges only if seen at least this often [default: 2].
    #[arg(long)]
    #[serde(default)]
    pub min_frequency: Option<u64>,
    /// Where the tokenizer.json goes: a path or URL (`{lake}`: the lake's URL).
    #[arg(long)]
    pub to: String,
    /// Memory DataFusion's operators may hold before they spill (e.g. 512M, 4G).
    #[arg(long, value_name = "SIZE")]
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// Where spill files go [default: the system temp folder].
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub spill_dir: Option<PathBuf>,
}

impl TrainTokenizerSpec {
    pub fn to_options(&self, lake: &Lake) -> Result<TrainTokenizerOptions> {
        Ok(TrainTokenizerOptions {
            input: self.input.clone(),
            vocab_size: self.vocab_size,
            min_frequency: self.min_frequency.unwrap_or(2),
            to: lake.expand(&self.to),
            session: SessionOptions::from_settings(self.memory_limit.as_deref(), self.spill_dir.as_deref())?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct TrainTokenizerOptions {
    /// A SQL query whose first column is the text to learn from, e.g.
    /// `SELECT text FROM documents`; or a table / URL whose `text` column is used.
    pub input: String,
    pub vocab_size: usize,
    /// Pairs seen fewer times than this never merge.
    pub min_frequency: u64,
    /// Where the tokenizer.json goes: a path or URL.
    pub to: String,
    pub session: SessionOptions,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainTokenizerReport {
    pub to: String,
    pub texts: u64,
    pub text_bytes: u64,
    pub tokenizer: TokenizerInfo,
    pub seconds: f64,
}

/// `mathlake tokenizer train`: a byte-level BPE learnt from lake text, streamed into the
/// trainer (which keeps only word counts, not the texts).
pub async fn train_tokenizer(
    lake: &Lake,
    options: &TrainTokenizerOptions,
    progress: &ProgressBar,
) -> Result<TrainTokenizerReport> {
    let started = Instant::now();
    let ctx = crate::lake::session(lake, &options.session).await?;
    let query = if options.input.trim_start().get(..6).is_some_and(|w| w.eq_ignore_ascii_case("select")) {
        options.input.clone()
    } else {
        register_source(&ctx, lake, INPUT, &options.input).await?;
        require_text_columns(&ctx, INPUT, &options.input, &["text"], "--input").await?;
        format!("SELECT text FROM {INPUT}")
    };
    let mut stream = ctx.sql(&query).await?.execute_stream().await?;
    let (sender, receiver) = std::sync::mpsc::sync_channel::<String>(4096);
    let (vocab_size, min_frequency) = (options.vocab_size, options.min_frequency);
    let trainer =
        tokio::task::spawn_blocking(move || encoder::train_bpe(receiver.into_iter(), vocab_size, min_frequency));
    let (mut count, mut bytes) = (0u64, 0u64);
    'feed: while let Some(batch) = stream.next().await {
        let batch = batch?;
        progress.inc(batch.num_rows() as u64);
        let column = texts(batch.column(0)).map_err(|_| {
            Error::user(format!("the first column of `{query}` is {}, not text", batch.schema().field(0).data_type()))
        })?;
        for text in column.flatten() {
            (count, bytes) = (count + 1, bytes + text.len() as u64);
            // A closed channel means the trainer failed; its error is the one to show.
            if sender.send(text.to_owned()).is_err() {
                break 'feed;
            }
        }
    }
    drop(sender);
    let json = trainer.await.map_err(|e| Error::Internal(format!("the BPE trainer panicked: {e}")))??;
    if count == 0 {
        return Err(Error::user(format!("`{}` gave no text to learn from", options.input)));
    }
    let encoder = Encoder::from_bytes(&options.to, json.as_bytes(), Some(encoder::TRAINED_EOS), Engine::Hf)?;
    encoder::save(json, &options.to).await?;
    Ok(TrainTokenizerReport {
        to: options.to.clone(),
        texts: count,
        text_bytes: bytes,
        tokenizer: encoder.info,
        seconds: started.elapsed().as_secs_f64(),
    })
}
