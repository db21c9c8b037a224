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
//! Methods: [`retrospective`] (rule-based). The model-based methods will call endpoints
//! through [`client`].

pub mod client;
pub mod retrospective;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray};
use futures::StreamExt;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lake::{Lake, Output, SessionOptions, Target, register_source, require_text_columns, schema};
use crate::text::{IdScratch, content_id, marked_answer, normalize_answer, texts};

const INPUT: &str = "synthesis_input";

/// The table synthesis writes unless told otherwise.
pub const DEFAULT_TABLE: &str = "synthetic";

/// A way of making problem-solving records (the study's four; see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A later step written too early, `[back]`, then the correct continuation (no model).
    Retrospective,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Retrospective => "retrospective",
        }
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
    /// The seed of every draw [default: 1].
    #[arg(long)]
    #[serde(default)]
    pub seed: Option<u64>,
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
            session: SessionOptions::from_settings(self.memory_limit.as_deref(), self.spill_dir.as_deref())?,
        })
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
    pub session: SessionOptions,
}

/// What a run made, per outcome: problems x rollouts = accepted + rejected.
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
    /// Rejected records by reason.
    pub reasons: BTreeMap<String, u64>,
    pub seconds: f64,
}

impl SynthesizeReport {
    pub fn acceptance_rate(&self) -> f64 {
        if self.records == 0 { 0.0 } else { self.accepted as f64 / self.records as f64 }
    }

    fn count(&mut self, record: &Record) {
        self.records += 1;
        match record.outcome {
            Outcome::Accepted => self.accepted += 1,
            Outcome::Rejected(reason) => {
                self.rejected += 1;
                *self.reasons.entry(reason.to_string()).or_default() += 1;
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
    let mut stream = ctx.sql(&sql).await.map_err(|e| where_error(e, options))?.execute_stream().await?;

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
        reasons: BTreeMap::new(),
        seconds: 0.0,
    };
    let mut scratch = IdScratch::default();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let mut rows = Rows::default();
        let column = |i: usize| texts(batch.column(i)).map(Iterator::collect::<Vec<_>>);
        let (ids, sources, questions, solutions, answers) =
            (column(0)?, column(1)?, column(2)?, column(3)?, column(4)?);
        for row in 0..batch.num_rows() {
            let problem = Problem {
                id: ids[row].unwrap_or_default(),
                source: sources[row].unwrap_or_default(),
                question: questions[row].unwrap_or_default(),
                solution: solutions[row].unwrap_or_default(),
                final_answer: answers[row],
            };
            report.problems += 1;
            for rollout in 0..options.rollouts {
                let record = match options.method {
                    Method::Retrospective => retrospective_record(&problem, options.seed, rollout),
                };
                report.count(&record);
                rows.push(&problem, &input, options, rollout, record, &mut scratch);
            }
        }
        progress.inc(batch.num_rows() as u64);
        output.write(&rows.batch(table.clone())?).await?;
    }
    let details = serde_json::json!({
        "method": report.method, "input": input, "rollouts": options.rollouts, "seed": options.seed,
        "accepted": report.accepted, "rejected": report.rejected,
    });
    output.finish("synthesize", details).await?;
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
struct Problem<'a> {
    id: &'a str,
    source: &'a str,
    question: &'a str,
    solution: &'a str,
    final_answer: Option<&'a str>,
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
    template_hash: &'static str,
}

/// Accepted, or rejected by verification with the reason.
enum Outcome {
    Accepted,
    Rejected(&'static str),
}

impl Outcome {
    fn status(&self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Rejected(_) => "rejected",
        }
    }

    fn reason(&self) -> Option<&'static str> {
        match self {
            Outcome::Accepted => None,
            Outcome::Rejected(reason) => Some(reason),
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
    let (solution, outcome) = match retrospective::enhance(problem.solution, seed, problem.id, rollout) {
        Err(refusal) => (None, Outcome::Rejected(refusal.reason())),
        // Verified, not assumed: taking the misplaced step and marker out gives the source
        // solution back (the answer is checked below).
        Ok(b) if retrospective::undo(&b.solution).as_deref() != Some(problem.solution) => {
            (Some(b.solution), Outcome::Rejected("not_reversible"))
        }
        Ok(b) => (Some(b.solution), Outcome::Accepted),
    };
    let final_answer = solution.as_deref().and_then(marked_answer);
    let answer_matches = answer_matches(final_answer.as_deref(), problem.final_answer);
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
        template_hash: &RULE_HASH,
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
    template_hash: Vec<&'static str>,
    question: Vec<Option<String>>,
    solution: Vec<Option<String>>,
    final_answer: Vec<Option<String>>,
    verdict: Vec<Option<String>>,
    answer_matches: Vec<Option<bool>>,
    status: Vec<&'static str>,
    reason: Vec<Option<&'static str>>,
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
            problem.id,
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
        self.seed.push(Some(options.seed as i64));
        self.models.push(None);
        self.template.push(record.template);
        self.template_hash.push(record.template_hash);
        self.answer_matches.push(record.answer_matches);
        self.final_answer.push(record.final_answer);
        self.question.push(record.question);
        self.solution.push(record.solution);
        self.verdict.push(record.verdict);
        self.status.push(record.outcome.status());
        self.reason.push(record.outcome.reason());
        self.tokens_in.push(0);
        self.tokens_out.push(0);
        self.request_ids.push(None);
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
