//! `mathlake synthesize`: new problem-solving records made from the training problems, the
//! study's second question (DESIGN.md section 1, RQ2).
//!
//! Every (problem, rollout) becomes one row of the `synthetic` table (schemas/synthetic.json)
//! whatever became of it: `accepted`, `rejected` by verification with its reason, or
//! `failed`; mixtures take `status = 'accepted'` by SQL, so nothing is dropped unseen and
//! the counts add up. Each row carries its lineage: the source problem and the table
//! version it was read from, the method, rollout, seed and template.
//!
//! Only the training split is ever read (`split = 'train'`, whatever `where` adds):
//! records made from evaluation items would leak them into training.
//!
//! Methods: [`retrospective`] (rule-based, no model), and in [`model`] the three that ask
//! OpenAI-compatible endpoints through [`client`]: `response_diversity`, `query_expansion`
//! and `tutorship`. Their requests and replies are kept in the [`cache`] table, and each
//! record lists the keys of its requests there (`request_ids`).

pub mod cache;
pub mod client;
mod model;
pub mod replies;
pub mod retrospective;
pub mod templates;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray};
use futures::{StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lake::{Lake, Output, SessionOptions, Target, register_source, require_text_columns, schema};
use crate::text::{IdScratch, content_id, marked_answer, normalize_answer, texts};
use cache::{CacheReport, ResponseCache};
use client::{EndpointOptions, Sampling};
pub use model::ModelSettings;
use model::Models;

const INPUT: &str = "synthesis_input";

/// Records per batch written to the output table.
const ROWS_PER_WRITE: usize = 4096;

/// The table synthesis writes unless told otherwise.
pub const DEFAULT_TABLE: &str = "synthetic";

/// A way of making problem-solving records (the study's four; see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Method {
    /// Another solution per rollout, different from the gold one, self-checked by the model
    /// that wrote it; kept when it reaches the gold answer.
    ResponseDiversity,
    /// The problem restated as a fact, then a new problem with its solution, self-checked.
    QueryExpansion,
    /// A later step written too early, `[back]`, then the correct continuation (no model).
    Retrospective,
    /// A student's attempt, a teacher's verdict and, after the first wrong step, `[back]`
    /// and the teacher's correction; kept when it reaches the gold answer.
    Tutorship,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::ResponseDiversity => "response_diversity",
            Method::QueryExpansion => "query_expansion",
            Method::Retrospective => "retrospective",
            Method::Tutorship => "tutorship",
        }
    }

    fn calls_a_model(self) -> bool {
        self != Method::Retrospective
    }
}

/// The settings of one synthesis run, as `mathlake synthesize` flags and as a job's
/// `kind = "synthesize"` stage.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthesizeSpec {
    /// In a job file: the stage's name in logs and summaries.
    #[arg(skip)]
    #[serde(default)]
    pub name: Option<String>,
    /// How to make the records.
    #[arg(long, value_enum)]
    pub method: Method,
    /// Problems to start from: a lake table, a table's URL, or Parquet files with id, source,
    /// split, question, solution and final_answer columns [default: problems].
    #[arg(long)]
    #[serde(default)]
    pub input: Option<String>,
    /// Which training problems, as SQL over the input's columns (the split is always
    /// 'train').
    #[arg(long = "where", id = "where", value_name = "SQL")]
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// Where the records go: a lake table (replaced) or a .parquet URL [default: synthetic].
    #[arg(long)]
    #[serde(default)]
    pub to: Option<String>,
    /// Records to make per problem [default: 1].
    #[arg(long)]
    #[serde(default)]
    pub rollouts: Option<u32>,
    /// The seed of every draw, or the sampling seed sent with rollout 0 (rollout r sends
    /// seed + r) [default: 1].
    #[arg(long)]
    #[serde(default)]
    pub seed: Option<u64>,
    /// The endpoint that writes (tutorship: the student's), up to and including `/v1`, such
    /// as http://127.0.0.1:8000/v1. Every method but retrospective needs one.
    #[arg(long, value_name = "URL")]
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The model its requests name.
    #[arg(long)]
    #[serde(default)]
    pub model: Option<String>,
    /// The environment variable that holds the endpoint's API key (sent as a bearer token,
    /// never printed or stored).
    #[arg(long, value_name = "VAR")]
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Tutorship's teacher endpoint [default: the endpoint].
    #[arg(long, value_name = "URL")]
    #[serde(default)]
    pub teacher_endpoint: Option<String>,
    /// Tutorship's teacher model [default: the model].
    #[arg(long)]
    #[serde(default)]
    pub teacher_model: Option<String>,
    /// The variable with the teacher endpoint's API key [default: api_key_env].
    #[arg(long, value_name = "VAR")]
    #[serde(default)]
    pub teacher_api_key_env: Option<String>,
    /// Requests in flight at once, per endpoint [default: 256].
    #[arg(long)]
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Seconds one try of a request may take [default: 300].
    #[arg(long, value_name = "SECONDS")]
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Tries after the first, on 429, 5xx, timeouts, dropped connections and garbled
    /// replies, with exponential backoff from 1 s to 60 s [default: 5].
    #[arg(long)]
    #[serde(default)]
    pub retries: Option<u32>,
    /// Sampling temperature [default: 0.7].
    #[arg(long)]
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling's probability mass [default: 0.95].
    #[arg(long)]
    #[serde(default)]
    pub top_p: Option<f64>,
    /// The most tokens a reply may have; a reply cut there is rejected [default: 1024].
    #[arg(long)]
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// A folder of prompt templates (`{name}.txt`) that replace the bundled ones of
    /// jobs/synthesis/.
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub templates: Option<std::path::PathBuf>,
    /// Memory DataFusion's operators may hold before they spill (e.g. 512M, 4G).
    #[arg(long, value_name = "SIZE")]
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// Where spill files go [default: the system temp folder].
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub spill_dir: Option<std::path::PathBuf>,
}

impl SynthesizeSpec {
    pub fn to_options(&self) -> Result<SynthesizeOptions> {
        let rollouts = self.rollouts.unwrap_or(1);
        if rollouts == 0 {
            return Err(Error::user("rollouts must be at least 1"));
        }
        Ok(SynthesizeOptions {
            method: self.method,
            input: self.input.clone().unwrap_or_else(|| "problems".into()),
            filter: self.filter.clone(),
            to: Target::parse(self.to.as_deref().unwrap_or(DEFAULT_TABLE))?,
            rollouts,
            seed: self.seed.unwrap_or(1),
            models: self.model_settings()?,
            session: SessionOptions::from_settings(self.memory_limit.as_deref(), self.spill_dir.as_deref())?,
        })
    }

    /// The endpoints of a model-based method; `None` for retrospective, which refuses them.
    fn model_settings(&self) -> Result<Option<ModelSettings>> {
        let endpoint_settings = [
            ("endpoint", self.endpoint.is_some()),
            ("model", self.model.is_some()),
            ("teacher_endpoint", self.teacher_endpoint.is_some()),
            ("teacher_model", self.teacher_model.is_some()),
            ("templates", self.templates.is_some()),
        ];
        if !self.method.calls_a_model() {
            if let Some((name, _)) = endpoint_settings.iter().find(|(_, set)| *set) {
                return Err(Error::user(format!("{name} is set, but {} calls no model", self.method.name()))
                    .hint("retrospective enhancement is rule-based: leave the endpoint settings out"));
            }
            return Ok(None);
        }
        if self.teacher_endpoint.is_some() && self.method != Method::Tutorship {
            return Err(Error::user(format!("teacher_endpoint is set, but {} has no teacher", self.method.name())));
        }
        let method = self.method.name();
        let endpoint = self.endpoint.clone().ok_or_else(|| {
            Error::user(format!("{method} asks a model, and no endpoint is set"))
                .hint("set endpoint (an OpenAI-compatible URL up to /v1: a vLLM, SGLang or llama.cpp server, or a hosted API) and model")
        })?;
        let model =
            self.model.clone().ok_or_else(|| Error::user(format!("{method} needs the model to ask (model)")))?;
        let timeout = self.timeout.unwrap_or(300.0);
        if !(timeout.is_finite() && timeout > 0.0) {
            return Err(Error::user(format!("timeout must be a positive number of seconds, not {timeout}")));
        }
        let temperature = self.temperature.unwrap_or(0.7);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(Error::user(format!("temperature must be between 0 and 2, not {temperature}")));
        }
        let top_p = self.top_p.unwrap_or(0.95);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(Error::user(format!("top_p must be in (0, 1], not {top_p}")));
        }
        let max_tokens = self.max_tokens.unwrap_or(1024);
        if max_tokens == 0 {
            return Err(Error::user("max_tokens must be at least 1"));
        }
        let options = |base_url: String, model: String, key_env: Option<&str>| -> Result<EndpointOptions> {
            Ok(EndpointOptions {
                base_url,
                model,
                api_key: key_env.map(api_key).transpose()?,
                concurrency: self.concurrency.unwrap_or(256),
                timeout: Duration::from_secs_f64(timeout),
                max_retries: self.retries.unwrap_or(5),
                backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(60),
            })
        };
        let key_env = self.api_key_env.as_deref();
        let writer = options(endpoint.clone(), model.clone(), key_env)?;
        let teacher = options(
            self.teacher_endpoint.clone().unwrap_or(endpoint),
            self.teacher_model.clone().unwrap_or(model),
            self.teacher_api_key_env.as_deref().or(key_env),
        )?;
        let sampling = Sampling { temperature, top_p, max_tokens, seed: None, stop: Vec::new() };
        Ok(Some(ModelSettings { writer, teacher, sampling, templates: self.templates.clone() }))
    }
}

/// The API key in the variable `name`: a variable named but unset is an error, not a run
/// that fails on every request.
fn api_key(name: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(key) if !key.trim().is_empty() => Ok(key.trim().to_string()),
        _ => Err(Error::user(format!("the API key variable {name} is not set"))
            .hint("export it, or leave api_key_env out for an endpoint that needs no key")),
    }
}

#[derive(Debug, Clone)]
pub struct SynthesizeOptions {
    pub method: Method,
    pub input: String,
    /// SQL over the input's columns, ANDed with `split = 'train'`.
    pub filter: Option<String>,
    pub to: Target,
    pub rollouts: u32,
    pub seed: u64,
    /// The endpoints, sampling and templates of a model-based method.
    pub models: Option<ModelSettings>,
    pub session: SessionOptions,
}

/// What a run made, per outcome: problems x rollouts = accepted + rejected + failed.
#[derive(Debug, Clone, Serialize)]
pub struct SynthesizeReport {
    pub method: &'static str,
    /// The table and version (or URL) the problems came from.
    pub input: String,
    pub to: String,
    pub problems: u64,
    pub rollouts: u32,
    pub records: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Records without a usable reply (the request failed after its retries).
    pub failed: u64,
    /// Rejected and failed records by reason.
    pub reasons: BTreeMap<String, u64>,
    /// What the endpoints were asked by this run (retries included) and answered with;
    /// zero for a rule-based method. Cached replies cost nothing and count as hits.
    pub requests: u64,
    pub retries: u64,
    pub cache_hits: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// The response cache: entries before the run, and those this run stored.
    pub cache: Option<CacheReport>,
    pub seconds: f64,
}

impl SynthesizeReport {
    pub fn acceptance_rate(&self) -> f64 {
        if self.records == 0 { 0.0 } else { self.accepted as f64 / self.records as f64 }
    }

    fn count(&mut self, record: &Record) {
        self.records += 1;
        match &record.outcome {
            Outcome::Accepted => self.accepted += 1,
            Outcome::Rejected(reason) => {
                self.rejected += 1;
                *self.reasons.entry(reason.to_string()).or_default() += 1;
            }
            Outcome::Failed(reason) => {
                self.failed += 1;
                *self.reasons.entry(reason.clone()).or_default() += 1;
            }
        }
    }
}

pub async fn synthesize(lake: &Lake, options: &SynthesizeOptions, progress: &ProgressBar) -> Result<SynthesizeReport> {
    let started = Instant::now();
    let ctx = crate::lake::session(lake, &options.session).await?;
    let version = register_source(&ctx, lake, INPUT, &options.input).await?;
    let input = match &version {
        Some(v) => format!("{}@{}", options.input, v.version),
        None => options.input.clone(),
    };
    let columns = ["id", "source", "split", "question", "solution", "final_answer"];
    require_text_columns(&ctx, INPUT, &options.input, &columns, "--input")
        .await
        .map_err(|e| e.hint("synthesis reads problem records: ingest them with a problems preset first"))?;
    let filter = options.filter.as_deref().map(|f| format!(" AND ({f})")).unwrap_or_default();
    let sql = format!("SELECT id, source, question, solution, final_answer FROM {INPUT} WHERE split = 'train'{filter}");
    let stream = ctx.sql(&sql).await.map_err(|e| where_error(e, options))?.execute_stream().await?;

    let models = match &options.models {
        Some(settings) => Some(Models::new(options.method, settings, ResponseCache::open(lake, &ctx).await?)?),
        None => None,
    };
    let cached_at_start = models.as_ref().map_or(0, |m| m.cache.entries() as u64);
    let in_flight = options.models.as_ref().map_or(1, ModelSettings::in_flight);

    let table = schema::builtin(DEFAULT_TABLE)?.arrow()?;
    let mut output = Output::open(lake, &options.to, table.clone()).await?;
    let mut report = SynthesizeReport {
        method: options.method.name(),
        input: input.clone(),
        to: options.to.describe(),
        problems: 0,
        rollouts: options.rollouts,
        records: 0,
        accepted: 0,
        rejected: 0,
        failed: 0,
        reasons: BTreeMap::new(),
        requests: 0,
        retries: 0,
        cache_hits: 0,
        tokens_in: 0,
        tokens_out: 0,
        cache: None,
        seconds: 0.0,
    };
    // One stream of problems across the input's batches, `in_flight` of them being made at
    // a time and taken in input order (so that a rerun writes the same table): the endpoint
    // is kept busy through batch boundaries instead of draining at each.
    {
        let problems = stream
            .map(|batch| Problem::all(&batch?))
            .map_ok(|problems| futures::stream::iter(problems.into_iter().map(Ok::<_, Error>)))
            .try_flatten();
        let makers = models.as_ref();
        let made = problems
            .map_ok(|problem| async move {
                let records = match makers {
                    None => (0..options.rollouts).map(|r| retrospective_record(&problem, options.seed, r)).collect(),
                    Some(models) => models.records(&problem, options.rollouts, options.seed).await?,
                };
                Ok((problem, records))
            })
            .try_buffered(in_flight);
        let mut made = std::pin::pin!(made);
        let mut scratch = IdScratch::default();
        let mut rows = Rows::default();
        while let Some((problem, records)) = made.try_next().await? {
            report.problems += 1;
            for (rollout, record) in (0..).zip(records) {
                report.count(&record);
                rows.push(&problem, &input, options, rollout, record, &mut scratch);
            }
            progress.inc(1);
            if rows.id.len() >= ROWS_PER_WRITE {
                output.write(&std::mem::take(&mut rows).batch(table.clone())?).await?;
                if let Some(models) = makers {
                    let [requests, _, failures, _, tokens_out] = models.spent();
                    let seconds = started.elapsed().as_secs_f64().max(1e-3);
                    progress.set_message(format!(
                        "{:.1} requests/s, {:.0} tokens/s out, {} cached, {failures} failed",
                        requests as f64 / seconds,
                        tokens_out as f64 / seconds,
                        models.cache.hits.load(std::sync::atomic::Ordering::Relaxed),
                    ));
                }
            }
        }
        if !rows.id.is_empty() {
            output.write(&rows.batch(table.clone())?).await?;
        }
    }
    let details = serde_json::json!({
        "method": report.method, "input": input, "rollouts": options.rollouts, "seed": options.seed,
        "accepted": report.accepted, "rejected": report.rejected, "failed": report.failed,
    });
    output.finish("synthesize", details).await?;
    if let Some(models) = models {
        [report.requests, report.retries, _, report.tokens_in, report.tokens_out] = models.spent();
        let cache = models.cache.compact(cached_at_start).await?;
        report.cache_hits = cache.hits;
        report.cache = Some(cache);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A `where` that does not parse or names a missing column, said as the user wrote it.
fn where_error(error: datafusion::error::DataFusionError, options: &SynthesizeOptions) -> Error {
    match &options.filter {
        Some(filter) => Error::user(format!("cannot select training problems with `where = {filter}`: {error}"))
            .hint("`where` is SQL over the input's columns (`mathlake inspect problems` shows them), ANDed with split = 'train'"),
        None => error.into(),
    }
}

/// One training problem as read.
struct Problem {
    id: String,
    source: String,
    question: String,
    solution: String,
    final_answer: Option<String>,
}

impl Problem {
    /// The problems of a batch of the input query's columns, owned so that they outlive it
    /// while their records are made.
    fn all(batch: &RecordBatch) -> Result<Vec<Problem>> {
        let column = |i: usize| texts(batch.column(i)).map(Iterator::collect::<Vec<_>>);
        let (ids, sources, questions, solutions, answers) =
            (column(0)?, column(1)?, column(2)?, column(3)?, column(4)?);
        Ok((0..batch.num_rows())
            .map(|row| Problem {
                id: ids[row].unwrap_or_default().to_string(),
                source: sources[row].unwrap_or_default().to_string(),
                question: questions[row].unwrap_or_default().to_string(),
                solution: solutions[row].unwrap_or_default().to_string(),
                final_answer: answers[row].map(str::to_string),
            })
            .collect())
    }
}

/// What a method made of one (problem, rollout).
struct Record {
    question: Option<String>,
    solution: Option<String>,
    /// The solution's marked final answer, and whether it equals the gold one.
    final_answer: Option<String>,
    answer_matches: Option<bool>,
    verdict: Option<String>,
    outcome: Outcome,
    template: &'static str,
    template_hash: String,
    /// The models by role (JSON); `None` for a rule-based method.
    models: Option<String>,
    /// Prompt and completion tokens of the replies behind the record.
    tokens: [u64; 2],
    /// The cache keys of its requests.
    request_ids: Vec<String>,
}

/// Accepted; rejected by verification, with the reason; or failed: no usable reply.
enum Outcome {
    Accepted,
    Rejected(&'static str),
    Failed(String),
}

impl Outcome {
    fn status(&self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Rejected(_) => "rejected",
            Outcome::Failed(_) => "failed",
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Accepted => None,
            Outcome::Rejected(reason) => Some(reason),
            Outcome::Failed(reason) => Some(reason),
        }
    }
}

/// The rule and its settings, hashed into `template_hash`: records made under another
/// rule are another lineage.
const RETROSPECTIVE_RULE: &str = "retrospective/v1: a later step before an earlier one (not the first), \
                                  then ' [back] ' and the solution from the earlier step on";

fn retrospective_record(problem: &Problem, seed: u64, rollout: u32) -> Record {
    static RULE_HASH: LazyLock<String> =
        LazyLock::new(|| format!("{:016x}", xxhash_rust::xxh3::xxh3_64(RETROSPECTIVE_RULE.as_bytes())));
    let (solution, outcome) = match retrospective::enhance(&problem.solution, seed, &problem.id, rollout) {
        Err(refusal) => (None, Outcome::Rejected(refusal.reason())),
        // Verified, not assumed: taking the misplaced step and marker out gives the source
        // solution back (the answer is checked below).
        Ok(b) if retrospective::undo(&b.solution).as_deref() != Some(problem.solution.as_str()) => {
            (Some(b.solution), Outcome::Rejected("not_reversible"))
        }
        Ok(b) => (Some(b.solution), Outcome::Accepted),
    };
    let final_answer = solution.as_deref().and_then(marked_answer);
    let answer_matches = answer_matches(final_answer.as_deref(), problem.final_answer.as_deref());
    let outcome = match (outcome, answer_matches) {
        (Outcome::Accepted, Some(false)) => Outcome::Rejected("answer_differs_from_gold"),
        (Outcome::Accepted, None) => Outcome::Rejected("no_final_answer"),
        (outcome, _) => outcome,
    };
    Record {
        question: Some(problem.question.to_string()),
        solution,
        final_answer,
        answer_matches,
        verdict: None,
        outcome,
        template: "retrospective",
        template_hash: RULE_HASH.clone(),
        models: None,
        tokens: [0, 0],
        request_ids: Vec::new(),
    }
}

/// Whether a produced answer equals the gold after `normalize_answer`; `None` when either
/// is missing.
fn answer_matches(produced: Option<&str>, gold: Option<&str>) -> Option<bool> {
    Some(normalize_answer(produced?) == normalize_answer(gold?))
}

/// The columns of schemas/synthetic.json, filled row by row.
#[derive(Default)]
struct Rows {
    id: Vec<String>,
    problem_id: Vec<String>,
    source: Vec<String>,
    input: Vec<String>,
    method: Vec<&'static str>,
    rollout: Vec<i32>,
    seed: Vec<Option<i64>>,
    models: Vec<Option<String>>,
    template: Vec<&'static str>,
    template_hash: Vec<String>,
    question: Vec<Option<String>>,
    solution: Vec<Option<String>>,
    final_answer: Vec<Option<String>>,
    verdict: Vec<Option<String>>,
    answer_matches: Vec<Option<bool>>,
    status: Vec<&'static str>,
    reason: Vec<Option<String>>,
    tokens_in: Vec<i64>,
    tokens_out: Vec<i64>,
    request_ids: Vec<Option<String>>,
}

impl Rows {
    fn push(
        &mut self,
        problem: &Problem,
        input: &str,
        options: &SynthesizeOptions,
        rollout: u32,
        record: Record,
        scratch: &mut IdScratch,
    ) {
        let method = options.method.name();
        let rollout_text = rollout.to_string();
        let id_parts = [
            problem.id.as_str(),
            method,
            rollout_text.as_str(),
            record.question.as_deref().unwrap_or_default(),
            record.solution.as_deref().unwrap_or_default(),
        ];
        self.id.push(content_id(&id_parts, scratch));
        self.problem_id.push(problem.id.to_string());
        self.source.push(problem.source.to_string());
        self.input.push(input.to_string());
        self.method.push(method);
        self.rollout.push(rollout as i32);
        // A model-based rollout r was sampled with seed + r.
        let seed = if record.models.is_some() { options.seed.wrapping_add(u64::from(rollout)) } else { options.seed };
        self.seed.push(Some(seed as i64));
        self.template.push(record.template);
        self.template_hash.push(record.template_hash);
        self.answer_matches.push(record.answer_matches);
        self.final_answer.push(record.final_answer);
        self.question.push(record.question);
        self.solution.push(record.solution);
        self.verdict.push(record.verdict);
        self.status.push(record.outcome.status());
        self.reason.push(record.outcome.reason().map(str::to_string));
        self.tokens_in.push(record.tokens[0] as i64);
        self.tokens_out.push(record.tokens[1] as i64);
        self.request_ids
            .push((!record.request_ids.is_empty()).then(|| serde_json::json!(record.request_ids).to_string()));
        self.models.push(record.models);
    }

    fn batch(self, schema: datafusion::arrow::datatypes::SchemaRef) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(self.id)),
            Arc::new(StringArray::from(self.problem_id)),
            Arc::new(StringArray::from(self.source)),
            Arc::new(StringArray::from(self.input)),
            Arc::new(StringArray::from(self.method)),
            Arc::new(Int32Array::from(self.rollout)),
            Arc::new(Int64Array::from(self.seed)),
            Arc::new(StringArray::from(self.models)),
            Arc::new(StringArray::from(self.template)),
            Arc::new(StringArray::from(self.template_hash)),
            Arc::new(StringArray::from(self.question)),
            Arc::new(StringArray::from(self.solution)),
            Arc::new(StringArray::from(self.final_answer)),
            Arc::new(StringArray::from(self.verdict)),
            Arc::new(BooleanArray::from(self.answer_matches)),
            Arc::new(StringArray::from(self.status)),
            Arc::new(StringArray::from(self.reason)),
            Arc::new(Int64Array::from(self.tokens_in)),
            Arc::new(Int64Array::from(self.tokens_out)),
            Arc::new(StringArray::from(self.request_ids)),
        ];
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}
