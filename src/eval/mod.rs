//! `mathlake eval`: a checkpoint scored on benchmarks, by held-out solution loss and by
//! the accuracy of greedy generations.
//!
//! At the scale one machine trains, accuracy stays near zero and the loss of the gold
//! solution is the signal that moves, so both are reported, per benchmark and per level,
//! subject and difficulty bucket (reasoning steps, as the curation functions count them).
//!
//! - Loss: the mean negative log-likelihood per token of `" {solution}"` and EOS given
//!   `"Question: {question}\nAnswer:"`, the problem template tokenize trains on.
//! - Generation: `shots` worked exemplars in the same template, each followed by a blank
//!   line, then the item's prompt; greedy decoding with a KV cache until EOS, a stop
//!   sequence or `max_new_tokens`. The answer is extracted and graded by [`grade`].
//! - Exemplars are fixed: the benchmark's training rows (split `train`) of the same source
//!   (`math500` falls back to `math`: a subset takes its parent's exemplars), the `shots`
//!   of them with the smallest ids whose question and solution fit in 600 bytes. Ids are
//!   content hashes, so the set does not depend on file order.

pub mod grade;
pub mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use datafusion::prelude::SessionContext;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

pub use self::report::{EvalReport, GroupResult, ItemResult};
use crate::decontaminate::BenchmarkSpec;
use crate::error::{Error, Result};
use crate::lake::{Lake, Location, SessionOptions, literal, register_source, require_text_columns};
use crate::text::texts;
use crate::text::{difficulty, final_answer, reasoning_steps};
use crate::tokenize::{Encoder, Template};
use crate::train::checkpoint;
use crate::train::config::DeviceKind;
use crate::train::model::{Context, KvCache, Llama, token_nll};

/// Exemplars longer than this (question and solution, bytes) are passed over: a few-shot
/// prompt must leave room for the item and its answer in a small model's context.
const MAX_EXEMPLAR_BYTES: usize = 600;

/// Tokens per loss batch (rows times padded length).
const LOSS_BATCH_TOKENS: usize = 16_384;

/// The settings of `mathlake eval` and of a job's `kind = "eval"` stage: one definition,
/// so both accept the same things. Paths may use `{lake}`, the lake's URL.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// In a job file: the stage's name in logs and summaries.
    #[arg(skip)]
    #[serde(default)]
    pub name: Option<String>,
    /// A run folder (its best checkpoint) or a checkpoint folder.
    #[arg(long)]
    pub checkpoint: String,
    /// Benchmarks, comma-separated: [NAME=]TABLE-OR-URL; without a name, items are named
    /// by their source column.
    #[arg(long, required = true, value_delimiter = ',')]
    pub benchmarks: Vec<String>,
    /// Which benchmark rows are items, as SQL [default: split = 'test' where there is a split column].
    #[arg(long, value_name = "SQL")]
    #[serde(default)]
    pub benchmark_where: Option<String>,
    /// The folder the report goes to (a path or URL).
    #[arg(long)]
    pub report: String,
    /// The tokenizer.json [default: the checkpoint's own].
    #[arg(long)]
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// The EOS token [default: the usual names, as tokenize finds them].
    #[arg(long)]
    #[serde(default)]
    pub eos: Option<String>,
    /// Worked exemplars before each question; 0 for zero-shot [default: 4].
    #[arg(long)]
    #[serde(default)]
    pub shots: Option<usize>,
    /// The most tokens generated per item [default: 256].
    #[arg(long)]
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
    /// Generation stops at this text, cut there (repeatable) [default: "\nQuestion:"].
    #[arg(long, value_name = "TEXT")]
    #[serde(default)]
    pub stop: Vec<String>,
    /// Generate for the first N items (by id) of each benchmark; the loss covers all.
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub limit: Option<usize>,
    /// The longest sequence given to the model [default: its max_position_embeddings].
    #[arg(long, value_name = "TOKENS")]
    #[serde(default)]
    pub context: Option<usize>,
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub device: DeviceKind,
    /// Memory DataFusion's operators may hold before they spill (e.g. 512M, 4G).
    #[arg(long, value_name = "SIZE")]
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// Where spill files go [default: the system temp folder].
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub spill_dir: Option<PathBuf>,
}

impl EvalSpec {
    pub fn to_options(&self, lake: &Lake) -> Result<EvalOptions> {
        Ok(EvalOptions {
            checkpoint: lake.expand(&self.checkpoint),
            tokenizer: self.tokenizer.as_deref().map(|t| lake.expand(t)),
            eos: self.eos.clone(),
            benchmarks: self.benchmarks.iter().map(|b| BenchmarkSpec::parse(b)).collect::<Result<_>>()?,
            benchmark_where: self.benchmark_where.clone(),
            shots: self.shots.unwrap_or(DEFAULT_SHOTS),
            max_new_tokens: self.max_new_tokens.unwrap_or(DEFAULT_MAX_NEW_TOKENS),
            stop: if self.stop.is_empty() { default_stop() } else { self.stop.clone() },
            limit: self.limit,
            context: self.context,
            report: lake.expand(&self.report),
            device: self.device,
            session: SessionOptions::from_settings(self.memory_limit.as_deref(), self.spill_dir.as_deref())?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// A run folder (its best checkpoint) or a checkpoint folder.
    pub checkpoint: String,
    /// The tokenizer.json; by default the checkpoint folder's own.
    pub tokenizer: Option<String>,
    pub eos: Option<String>,
    pub benchmarks: Vec<BenchmarkSpec>,
    /// Which benchmark rows are items [default: `split = 'test'` where there is a split
    /// column, else every row].
    pub benchmark_where: Option<String>,
    /// Few-shot exemplars per prompt; 0 for zero-shot.
    pub shots: usize,
    pub max_new_tokens: usize,
    /// Generation stops when the text generated so far contains one of these (cut there).
    pub stop: Vec<String>,
    /// Items generated per benchmark, the first by id; `None` for all. The loss covers
    /// every item.
    pub limit: Option<usize>,
    /// The longest sequence the model sees [default: its max_position_embeddings].
    pub context: Option<usize>,
    /// The report's folder: report.md, report.json and items.jsonl.
    pub report: String,
    pub device: DeviceKind,
    pub session: SessionOptions,
}

pub const DEFAULT_SHOTS: usize = 4;
pub const DEFAULT_MAX_NEW_TOKENS: usize = 256;

/// The default stop: the start of another question, as the exemplars lay them out.
pub fn default_stop() -> Vec<String> {
    vec!["\nQuestion:".into()]
}

/// One benchmark item as read from its table.
#[derive(Debug, Clone)]
struct Item {
    benchmark: String,
    id: String,
    question: String,
    solution: String,
    gold: String,
    level: Option<String>,
    subject: Option<String>,
    difficulty: &'static str,
}

/// What one item's tokens look like to the loss pass.
struct Scored {
    /// Negative log-likelihood summed over the solution's tokens, and their count.
    nll: f64,
    tokens: usize,
    truncated: bool,
}

pub async fn eval(lake: &Lake, options: &EvalOptions, progress: &ProgressBar) -> Result<EvalReport> {
    let started = Instant::now();
    if options.benchmarks.is_empty() {
        return Err(Error::user("no benchmarks to evaluate on").hint("--benchmarks problems, or gsm8k=TABLE-OR-URL"));
    }
    if options.max_new_tokens == 0 {
        return Err(Error::user("max_new_tokens must be at least 1"));
    }
    let device = options.device.open()?;
    progress.set_message("eval: loading the checkpoint");
    let (location, model, encoder) =
        checkpoint::open(&options.checkpoint, options.tokenizer.as_deref(), options.eos.as_deref(), &device).await?;
    let context =
        options.context.unwrap_or(model.config.max_position_embeddings).min(model.config.max_position_embeddings);
    if context <= options.max_new_tokens {
        return Err(Error::user(format!(
            "a context of {context} tokens leaves no room for a prompt before {} new tokens",
            options.max_new_tokens
        )));
    }

    progress.set_message("eval: reading benchmarks");
    let ctx = crate::lake::session(lake, &options.session).await?;
    let (items, exemplars) = load_items(&ctx, lake, options).await?;
    let template = Template::problem();

    progress.set_length(items.len() as u64);
    progress.set_message("eval: solution loss");
    let loss_started = Instant::now();
    let scored = score(&model, &encoder, &template, &items, context, &device, progress)?;
    let loss_seconds = loss_started.elapsed().as_secs_f64();

    progress.set_position(0);
    progress.set_message("eval: generating");
    let generation_started = Instant::now();
    let mut per_benchmark: BTreeMap<&str, usize> = BTreeMap::new();
    let mut results = Vec::with_capacity(items.len());
    let mut generated_tokens = 0;
    for (item, scored) in items.iter().zip(&scored) {
        let count = per_benchmark.entry(&item.benchmark).or_default();
        let generate = options.limit.is_none_or(|limit| *count < limit);
        *count += 1;
        let mut result = ItemResult {
            benchmark: item.benchmark.clone(),
            id: item.id.clone(),
            level: item.level.clone(),
            subject: item.subject.clone(),
            difficulty: item.difficulty.to_string(),
            question: item.question.clone(),
            gold: item.gold.clone(),
            loss: (scored.tokens > 0).then(|| scored.nll / scored.tokens as f64),
            loss_tokens: scored.tokens,
            nll: scored.nll,
            truncated: scored.truncated,
            generation: None,
            extracted: None,
            correct: None,
            shots: 0,
        };
        if generate {
            let shots = exemplars.get(&item.benchmark).map(Vec::as_slice).unwrap_or_default();
            let prompt = few_shot_prompt(&template, shots, item)?;
            let generation = generate_answer(&model, &encoder, &prompt, options, context)?;
            generated_tokens += generation.tokens;
            let extracted = grade::extract_answer(&generation.text);
            result.correct = Some(extracted.as_deref().is_some_and(|answer| grade::equivalent(answer, &item.gold)));
            result.extracted = extracted;
            result.generation = Some(generation.text);
            result.shots = generation.shots;
        }
        progress.inc(1);
        results.push(result);
    }
    let generation_seconds = generation_started.elapsed().as_secs_f64();

    let report = EvalReport::new(
        location.url(),
        encoder.info.source.clone(),
        options,
        context,
        &exemplars,
        results,
        report::Timings {
            loss_seconds,
            generation_seconds,
            generated_tokens,
            seconds: started.elapsed().as_secs_f64(),
        },
    );
    report.write(&Location::parse(&options.report)?).await?;
    Ok(report)
}

/// The items of every benchmark, sorted by benchmark and id, and each benchmark's
/// exemplars as (question, solution).
async fn load_items(
    ctx: &SessionContext,
    lake: &Lake,
    options: &EvalOptions,
) -> Result<(Vec<Item>, BTreeMap<String, Vec<(String, String)>>)> {
    let mut items = Vec::new();
    let mut exemplars = BTreeMap::new();
    for (i, spec) in options.benchmarks.iter().enumerate() {
        let alias = format!("benchmark_{i}");
        register_source(ctx, lake, &alias, &spec.source).await?;
        require_text_columns(ctx, &alias, &spec.source, &["id", "question", "solution"], "--benchmarks").await?;
        let columns = ctx.table(alias.as_str()).await?.schema().as_arrow().clone();
        let has = |name: &str| columns.field_with_name(name).is_ok();
        let optional = |name: &str| if has(name) { format!("CAST({name} AS VARCHAR)") } else { "NULL".into() };
        let name = match &spec.name {
            Some(name) => literal(name),
            None if has("source") => "CAST(source AS VARCHAR)".into(),
            None => literal(&spec.source),
        };
        let filter = match &options.benchmark_where {
            Some(filter) => filter.clone(),
            None if has("split") => "split = 'test'".into(),
            None => "TRUE".into(),
        };
        let select = format!(
            "SELECT {name}, id, question, solution, {}, {}, {} FROM {alias}",
            optional("final_answer"),
            optional("level"),
            optional("subject")
        );
        let frame = ctx.sql(&format!("{select} WHERE {filter}")).await.map_err(|e| {
            Error::user(format!("benchmark `{}` with filter `{filter}`: {e}", spec.source))
                .hint("--benchmark-where takes a SQL condition over the benchmark's columns")
        })?;
        let before = items.len();
        for batch in frame.collect().await? {
            let columns: Vec<Vec<Option<&str>>> =
                (0..7).map(|c| Ok(texts(batch.column(c))?.collect())).collect::<Result<_>>()?;
            #[allow(clippy::needless_range_loop)] // row r across several column vectors
            for r in 0..batch.num_rows() {
                let (Some(id), Some(question), Some(solution)) = (columns[1][r], columns[2][r], columns[3][r]) else {
                    continue;
                };
                // The dataset's answer field, else the one the solution marks.
                let Some(gold) = columns[4][r].map(str::to_string).or_else(|| final_answer(solution)) else {
                    continue;
                };
                items.push(Item {
                    benchmark: columns[0][r].unwrap_or(&spec.source).to_string(),
                    id: id.into(),
                    question: question.into(),
                    solution: solution.into(),
                    gold,
                    level: columns[5][r].map(str::to_string),
                    subject: columns[6][r].map(str::to_string),
                    difficulty: difficulty(reasoning_steps(solution)),
                });
            }
        }
        if items.len() == before {
            return Err(Error::user(format!("benchmark `{}` has no items where {filter}", spec.source))
                .hint("check --benchmark-where, or that the benchmark was ingested"));
        }
        if options.shots > 0 {
            let names: Vec<String> = items[before..]
                .iter()
                .map(|i| i.benchmark.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let pool = if has("split") {
                let frame = ctx
                    .sql(&format!(
                        "SELECT {name}, id, question, solution FROM {alias} WHERE split = 'train' \
                         AND length(question) + length(solution) <= {MAX_EXEMPLAR_BYTES} ORDER BY id"
                    ))
                    .await?;
                let mut pool = Vec::new();
                for batch in frame.collect().await? {
                    let columns: Vec<Vec<Option<&str>>> =
                        (0..4).map(|c| Ok(texts(batch.column(c))?.collect())).collect::<Result<_>>()?;
                    #[allow(clippy::needless_range_loop)] // row r across several column vectors
                    for r in 0..batch.num_rows() {
                        if let (Some(source), Some(q), Some(s)) = (columns[0][r], columns[2][r], columns[3][r]) {
                            pool.push((source.to_string(), q.to_string(), s.to_string()));
                        }
                    }
                }
                pool
            } else {
                Vec::new()
            };
            for benchmark in names {
                let parent = benchmark.trim_end_matches(|c: char| c.is_ascii_digit());
                let chosen = [benchmark.as_str(), parent]
                    .iter()
                    .map(|source| {
                        pool.iter()
                            .filter(|(s, _, _)| s == source)
                            .take(options.shots)
                            .map(|(_, q, s)| (q.clone(), s.clone()))
                            .collect::<Vec<_>>()
                    })
                    .find(|chosen| !chosen.is_empty())
                    .unwrap_or_default();
                exemplars.insert(benchmark, chosen);
            }
        }
    }
    items.sort_by(|a, b| (&a.benchmark, &a.id).cmp(&(&b.benchmark, &b.id)));
    Ok((items, exemplars))
}

/// The summed NLL of each item's solution tokens given its question, in batches of
/// similar lengths padded at the end (the padding is a document of its own, so no real
/// token attends to it).
fn score(
    model: &Llama,
    encoder: &Encoder,
    template: &Template,
    items: &[Item],
    context: usize,
    device: &Device,
    progress: &ProgressBar,
) -> Result<Vec<Scored>> {
    let mut encoded = Vec::with_capacity(items.len());
    for item in items {
        let rendered = render(template, &item.question, &item.solution)?;
        let mut e = encoder.encode(&rendered.text, rendered.prompt_bytes)?;
        // Inputs are all tokens but the last; targets all but the first.
        let truncated = e.ids.len() > context + 1;
        e.ids.truncate(context + 1);
        encoded.push((e, truncated));
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| encoded[i].0.ids.len());
    let mut scored: Vec<Option<Scored>> = (0..items.len()).map(|_| None).collect();
    let mut start = 0;
    while start < order.len() {
        let longest = |end: usize| encoded[order[end - 1]].0.ids.len() - 1;
        let mut end = start + 1;
        while end < order.len() && (end + 1 - start) * longest(end + 1) <= LOSS_BATCH_TOKENS {
            end += 1;
        }
        let (rows, length) = (end - start, longest(end).max(1));
        let mut inputs = vec![encoder.info.eos_id; rows * length];
        let mut targets = vec![encoder.info.eos_id; rows * length];
        let mut mask = vec![0f32; rows * length];
        let mut positions = vec![0u32; rows * length];
        let mut segments = vec![1u32; rows * length];
        for (r, &i) in order[start..end].iter().enumerate() {
            let ids = &encoded[i].0.ids;
            let n = ids.len() - 1;
            let row = r * length;
            inputs[row..row + n].copy_from_slice(&ids[..n]);
            targets[row..row + n].copy_from_slice(&ids[1..]);
            for t in 0..n {
                mask[row + t] = if encoded[i].0.in_loss(t + 1) { 1.0 } else { 0.0 };
                positions[row + t] = t as u32;
                segments[row + t] = 0;
            }
        }
        let context = Context::new(&model.config, &positions, &segments, rows, length, model.dtype(), device)?;
        let logits = model.forward(&Tensor::from_vec(inputs, (rows, length), device)?, &context)?;
        let nll = token_nll(&logits, &Tensor::from_vec(targets, rows * length, device)?)?;
        let nll: Vec<f32> = nll.detach().to_dtype(DType::F32)?.to_vec1()?;
        for (r, &i) in order[start..end].iter().enumerate() {
            let row = r * length;
            let (mut sum, mut tokens) = (0f64, 0);
            for t in 0..length {
                if mask[row + t] > 0.0 {
                    sum += f64::from(nll[row + t]);
                    tokens += 1;
                }
            }
            scored[i] = Some(Scored { nll: sum, tokens, truncated: encoded[i].1 });
        }
        progress.inc((end - start) as u64);
        start = end;
    }
    scored.into_iter().map(|s| s.ok_or_else(|| Error::Internal("an item was not scored".into()))).collect()
}

fn render<'a>(
    template: &Template,
    question: &'a str,
    solution: &'a str,
) -> Result<crate::tokenize::template::Rendered<'a>> {
    template
        .render(|column| match column {
            "question" => Some(question),
            "solution" => Some(solution),
            _ => None,
        })
        .ok_or_else(|| Error::Internal("the problem template reads only question and solution".into()))
}

/// The exemplars, each a whole worked example followed by a blank line, then the item's
/// prompt.
struct Prompt {
    exemplars: Vec<String>,
    question: String,
}

fn few_shot_prompt(template: &Template, shots: &[(String, String)], item: &Item) -> Result<Prompt> {
    let exemplars =
        shots.iter().map(|(q, s)| Ok(format!("{}\n\n", render(template, q, s)?.text))).collect::<Result<_>>()?;
    let rendered = render(template, &item.question, "")?;
    Ok(Prompt { exemplars, question: rendered.text[..rendered.prompt_bytes].to_string() })
}

struct Generation {
    text: String,
    tokens: usize,
    /// Exemplars that fitted in the context.
    shots: usize,
}

/// Greedy decoding with a KV cache. Exemplars are dropped from the first until prompt and
/// answer fit in `context`; a question that alone does not fit keeps its last tokens.
fn generate_answer(
    model: &Llama,
    encoder: &Encoder,
    prompt: &Prompt,
    options: &EvalOptions,
    context: usize,
) -> Result<Generation> {
    let budget = context - options.max_new_tokens;
    let mut shots = prompt.exemplars.len();
    let mut ids = loop {
        let text: String = prompt.exemplars[prompt.exemplars.len() - shots..].concat() + &prompt.question;
        let mut ids = encoder.encode(&text, 0)?.ids;
        ids.pop(); // the EOS that encode appends
        if ids.len() <= budget || shots == 0 {
            break ids;
        }
        shots -= 1;
    };
    if ids.len() > budget {
        ids.drain(..ids.len() - budget);
    }
    let mut cache = KvCache::new(&model.config);
    let mut logits = model.decode(&ids, &mut cache)?;
    let mut generated: Vec<u32> = Vec::with_capacity(options.max_new_tokens);
    let mut text = String::new();
    while generated.len() < options.max_new_tokens {
        let next = logits.argmax(0)?.to_scalar::<u32>()?;
        if next == encoder.info.eos_id {
            break;
        }
        generated.push(next);
        text = encoder.decode(&generated)?;
        if let Some(cut) = options.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
            text.truncate(cut);
            break;
        }
        if generated.len() < options.max_new_tokens {
            logits = model.decode(&[next], &mut cache)?;
        }
    }
    Ok(Generation { text: text.trim().to_string(), tokens: generated.len(), shots })
}
