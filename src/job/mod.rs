//! Job files: an ordered list of stages with their settings, run by `mathlake run`.
//!
//! ```toml
//! lake = "./lake"            # optional; `--lake` overrides it
//!
//! [[stage]]
//! kind = "ingest"
//! name = "gsm8k"
//! inputs = ["../shared/data/problems/gsm8k_*.jsonl"]
//! preset = "gsm8k"
//!
//! [[stage]]
//! kind = "sql"
//! file = "sql/curate_documents.sql"
//! set = { min_math_score = 0.8 }
//! ```
//!
//! Every key is checked when the file loads: a misspelt key fails with its line and the
//! keys that exist. The stages this runner knows today are listed in [`Stage`].

pub mod history;
pub mod lease;
pub mod log;
pub mod schedule;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use self::log::{FileStamp, RunLog, StageRecord};
use crate::curate::script::{self, SqlSpec, StatementReport};
use crate::decontaminate::{self, DecontamReport, DecontamSpec};
use crate::dedup::{self, DedupReport, DedupSpec};
use crate::error::{Error, Result};
use crate::eval::{self, EvalReport, EvalSpec};
use crate::experiment::arm::{self, ArmReport, ArmSpec};
use crate::experiment::report::{self as experiment_report, ExperimentReport, ReportSpec};
use crate::ingest::{self, IngestSpec, IngestSummary};
use crate::lake::{Lake, Location, Target};
use crate::shards::mixture::Mixture;
use crate::shards::{self, BuildReport, BuildSpec};
use crate::synthesize::{self, SynthesizeReport, SynthesizeSpec};
use crate::tokenize::{self, TokenizeReport, TokenizeSpec, TrainTokenizerReport, TrainTokenizerSpec};
use crate::train::{self, TrainOptions, TrainReport, TrainSpec};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// The lake the job reads and writes, unless the command line names one.
    #[serde(default)]
    pub lake: Option<String>,
    /// A job that makes the tables this one reads (an experiment's tokenized tables):
    /// `mathlake run` runs its stages first, up to `until`, each skipped when unchanged.
    #[serde(default)]
    pub needs: Option<Needs>,
    /// How long the job's lease lives without renewal [default: 600]: a run killed without
    /// releasing it blocks the next run for at most this long (src/job/lease.rs).
    #[serde(default)]
    pub lease_seconds: Option<u64>,
    /// When `mathlake schedule` runs it: `[schedule]` with `cron`, `retries`, `backoff_seconds`.
    #[serde(default)]
    pub schedule: Option<schedule::ScheduleSpec>,
    #[serde(rename = "stage")]
    pub stages: Vec<Stage>,
    /// The job file's stem: its run log is `{lake}/_jobs/{label}.json`.
    #[serde(skip)]
    pub label: String,
}

/// `needs = { job = "jobs/quickstart.toml", until = "tokenize_problems" }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Needs {
    pub job: PathBuf,
    /// Its last stage to run [default: all of them].
    #[serde(default)]
    pub until: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Stage {
    /// `mathlake ingest`: the keys are its flags (`inputs`, `preset`, `map`, ...).
    Ingest(IngestSpec),
    /// `mathlake sql FILE`: a SQL file with parameter values.
    Sql(SqlSpec),
    /// `mathlake dedup`.
    Dedup(DedupSpec),
    /// `mathlake decontaminate`.
    Decontaminate(DecontamSpec),
    /// `mathlake synthesize`.
    Synthesize(SynthesizeSpec),
    /// `mathlake tokenizer train`.
    Tokenizer(TrainTokenizerSpec),
    /// `mathlake tokenize`.
    Tokenize(TokenizeSpec),
    /// `mathlake shards build`.
    Shards(BuildSpec),
    /// `mathlake train`: a run already in the file's `out` that this job started and did
    /// not finish is continued, so a job that is run again does not train again.
    Train(TrainSpec),
    /// `mathlake eval`.
    Eval(EvalSpec),
    /// One arm of an experiment: its shards, a training run per seed and each run's
    /// evaluation (no command of its own: `shards build`, `train` and `eval` in turn).
    Arm(ArmSpec),
    /// `mathlake report`: an experiment's arms compared over their seeds.
    Report(ReportSpec),
}

/// `error`, said to come from stage `name`.
fn in_stage(name: &str, error: Error) -> Error {
    Error::Context { context: format!("stage `{name}`"), source: Box::new(error) }
}

impl Stage {
    /// The files the stage reads besides lake tables, stamped for its fingerprint.
    async fn files(&self, lake: &Lake) -> Result<Vec<FileStamp>> {
        Ok(match self {
            Stage::Ingest(spec) => {
                let options = spec.to_options(1)?;
                let mut stamps = Vec::new();
                for input in &options.inputs {
                    for file in ingest::inputs::resolve(input, options.format).await? {
                        stamps.push(FileStamp::metadata(&file.location).await?);
                    }
                }
                stamps
            }
            Stage::Sql(stage) => vec![FileStamp::content(&stage.file.display().to_string()).await?],
            Stage::Shards(stage) => vec![FileStamp::content(&stage.mixture.display().to_string()).await?],
            Stage::Train(stage) => vec![FileStamp::content(&stage.config.display().to_string()).await?],
            Stage::Tokenize(stage) => vec![FileStamp::content(&lake.expand(&stage.tokenizer)).await?],
            Stage::Eval(stage) => match &stage.tokenizer {
                Some(t) => vec![FileStamp::content(&lake.expand(t)).await?],
                None => Vec::new(),
            },
            Stage::Arm(stage) => {
                let mut stamps = vec![
                    FileStamp::content(&stage.mixture.display().to_string()).await?,
                    FileStamp::content(&stage.train.display().to_string()).await?,
                ];
                if let arm::EvalSettings::File(path) = &stage.eval {
                    stamps.push(FileStamp::content(&path.display().to_string()).await?);
                }
                stamps
            }
            Stage::Report(stage) => match &stage.findings {
                Some(f) => vec![FileStamp::content(&f.display().to_string()).await?],
                None => Vec::new(),
            },
            Stage::Dedup(_) | Stage::Decontaminate(_) | Stage::Synthesize(_) | Stage::Tokenizer(_) => Vec::new(),
        })
    }

    /// The files beside the lake's tables that hold the stage's output: when one is gone,
    /// the stage runs again.
    fn artifacts(&self, lake: &Lake) -> Result<Vec<String>> {
        Ok(match self {
            Stage::Tokenizer(stage) => vec![Location::parse(&lake.expand(&stage.to))?.url()],
            Stage::Shards(stage) => {
                vec![Location::parse(&lake.expand(&stage.to))?.join(shards::manifest::MANIFEST).url()]
            }
            Stage::Train(stage) => {
                vec![Location::parse(&stage.config(lake)?.out)?.join(train::checkpoint::LATEST).url()]
            }
            Stage::Eval(stage) => vec![Location::parse(&lake.expand(&stage.report))?.join("report.json").url()],
            Stage::Arm(stage) => {
                let folder = stage.folder(lake)?;
                let mut artifacts = vec![folder.join("shards").join(shards::manifest::MANIFEST).url()];
                for seed in 1..=stage.seeds {
                    artifacts.push(folder.join(&format!("seed-{seed}/eval/report.json")).url());
                }
                artifacts
            }
            Stage::Report(stage) => vec![Location::parse(&lake.expand(&stage.experiment))?.join("report.md").url()],
            Stage::Ingest(_)
            | Stage::Sql(_)
            | Stage::Dedup(_)
            | Stage::Decontaminate(_)
            | Stage::Synthesize(_)
            | Stage::Tokenize(_) => Vec::new(),
        })
    }

    pub fn name(&self, index: usize) -> String {
        match self {
            Stage::Ingest(spec) => spec.name.clone().unwrap_or_else(|| format!("ingest-{}", index + 1)),
            Stage::Sql(stage) => stage.name.clone().unwrap_or_else(|| {
                let stem = stage.file.file_stem().map(|s| s.to_string_lossy().into_owned());
                stem.unwrap_or_else(|| format!("sql-{}", index + 1))
            }),
            Stage::Dedup(stage) => stage.name.clone().unwrap_or_else(|| format!("dedup-{}", index + 1)),
            Stage::Decontaminate(stage) => stage.name.clone().unwrap_or_else(|| format!("decontaminate-{}", index + 1)),
            Stage::Synthesize(stage) => stage.name.clone().unwrap_or_else(|| format!("synthesize-{}", index + 1)),
            Stage::Tokenizer(stage) => stage.name.clone().unwrap_or_else(|| format!("tokenizer-{}", index + 1)),
            Stage::Tokenize(stage) => stage.name.clone().unwrap_or_else(|| format!("tokenize-{}", index + 1)),
            Stage::Shards(stage) => stage.name.clone().unwrap_or_else(|| format!("shards-{}", index + 1)),
            Stage::Train(stage) => stage.name.clone().unwrap_or_else(|| format!("train-{}", index + 1)),
            Stage::Eval(stage) => stage.name.clone().unwrap_or_else(|| format!("eval-{}", index + 1)),
            Stage::Arm(stage) => stage.name.clone().unwrap_or_else(|| stage.arm.clone()),
            Stage::Report(stage) => stage.name.clone().unwrap_or_else(|| format!("report-{}", index + 1)),
        }
    }
}

/// What a stage's progress bar counts: input bytes (ingest), rows produced (SQL) or
/// items of known number (eval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressUnit {
    Bytes,
    Rows,
    Items,
}

/// What one stage did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StageReport {
    Ingest {
        name: String,
        summary: IngestSummary,
    },
    Sql {
        name: String,
        file: PathBuf,
        statements: Vec<StatementReport>,
    },
    Dedup {
        name: String,
        report: DedupReport,
    },
    Decontaminate {
        name: String,
        report: DecontamReport,
    },
    Synthesize {
        name: String,
        report: SynthesizeReport,
    },
    Tokenizer {
        name: String,
        report: TrainTokenizerReport,
    },
    Tokenize {
        name: String,
        report: TokenizeReport,
    },
    Shards {
        name: String,
        report: BuildReport,
    },
    Train {
        name: String,
        report: TrainReport,
    },
    Eval {
        name: String,
        report: EvalReport,
    },
    Arm {
        name: String,
        report: ArmReport,
    },
    Report {
        name: String,
        report: ExperimentReport,
    },
    /// Not run: its last run (started at `since`) stands.
    Skipped {
        name: String,
        since: String,
    },
}

impl StageReport {
    /// The stage's name in the job.
    pub fn name(&self) -> &str {
        match self {
            StageReport::Ingest { name, .. }
            | StageReport::Sql { name, .. }
            | StageReport::Dedup { name, .. }
            | StageReport::Decontaminate { name, .. }
            | StageReport::Synthesize { name, .. }
            | StageReport::Tokenizer { name, .. }
            | StageReport::Tokenize { name, .. }
            | StageReport::Shards { name, .. }
            | StageReport::Train { name, .. }
            | StageReport::Eval { name, .. }
            | StageReport::Arm { name, .. }
            | StageReport::Report { name, .. }
            | StageReport::Skipped { name, .. } => name,
        }
    }
}

impl Job {
    pub fn load(path: &Path) -> Result<Job> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::user(format!("cannot read job file {}: {e}", path.display()))
                .hint("the jobs/ folder holds the bundled jobs")
        })?;
        let mut job: Job = toml::from_str(&text).map_err(|e| {
            Error::user(format!("{}: {}", path.display(), e.to_string().trim_end()))
                .hint(format!("`mathlake run --dry-run {}` checks a job without running it", path.display()))
        })?;
        if job.stages.is_empty() {
            return Err(Error::user(format!("{} has no [[stage]]", path.display())));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, stage) in job.stages.iter().enumerate() {
            let name = stage.name(i);
            if !names.insert(name.clone()) {
                return Err(Error::user(format!("{}: two stages are named `{name}`", path.display()))
                    .hint("the run log tells stages apart by name: give each its own `name`"));
            }
        }
        job.label = path.file_stem().map_or_else(|| "job".into(), |s| s.to_string_lossy().into_owned());
        Ok(job)
    }

    /// The jobs this one needs, each with its stages cut at `until`, in the order they run:
    /// the job its `needs` names comes last, after the one that job needs, and so on.
    pub fn needed(&self) -> Result<Vec<Job>> {
        let (mut chain, mut seen) = (Vec::new(), Vec::new());
        let mut next = self.needs.clone();
        while let Some(needs) = next {
            let path = std::fs::canonicalize(&needs.job).unwrap_or_else(|_| needs.job.clone());
            if seen.contains(&path) {
                return Err(Error::user(format!("`needs` goes round in a circle through {}", needs.job.display())));
            }
            seen.push(path);
            let mut job = Job::load(&needs.job).map_err(|e| in_stage(&format!("needs {}", needs.job.display()), e))?;
            next = job.needs.take();
            if let Some(last) = &needs.until {
                job.until(last)?;
            }
            chain.push(job);
        }
        chain.reverse();
        Ok(chain)
    }

    /// Keeps the stages up to and including `last`: `mathlake run --until STAGE` runs (and
    /// checks) only the start of a job, as when the later stages need a GPU or much time.
    pub fn until(&mut self, last: &str) -> Result<()> {
        let names: Vec<String> = self.stages.iter().enumerate().map(|(i, stage)| stage.name(i)).collect();
        let Some(position) = names.iter().position(|n| n == last) else {
            let candidates: Vec<&str> = names.iter().map(String::as_str).collect();
            let error = Error::user(format!("--until {last}: the job has no stage named `{last}`"));
            return Err(match crate::suggest::nearest(last, &candidates) {
                Some(near) => error.hint(format!("did you mean `{near}`?")),
                None => error.hint(format!("its stages are {}", candidates.join(", "))),
            });
        };
        self.stages.truncate(position + 1);
        Ok(())
    }

    /// Checks every stage's settings, so a bad last stage fails before the first runs.
    pub fn plan(&self, lake: &Lake, threads: usize) -> Result<Vec<(String, serde_json::Value)>> {
        self.stages
            .iter()
            .enumerate()
            .map(|(i, stage)| {
                let name = stage.name(i);
                let resolved = match stage {
                    Stage::Ingest(spec) => {
                        let options = spec.to_options(threads).map_err(|e| Error::user(format!("stage `{name}`: {e}")))?;
                        serde_json::json!({
                            "kind": "ingest",
                            "inputs": options.inputs,
                            "table": options.table.clone().unwrap_or_else(|| options.mapping.target.table().to_string()),
                            "source": options.source,
                            "split": options.split,
                            "mapping": options.mapping,
                            "encoding": options.encoding,
                            "max_record_bytes": options.max_record_bytes,
                            "max_doc_bytes": options.max_doc_bytes,
                            "max_bad_fraction": options.max_bad_fraction,
                        })
                    }
                    Stage::Sql(stage) => {
                        if !stage.file.is_file() {
                            return Err(Error::user(format!(
                                "stage `{name}`: no SQL file at {}",
                                stage.file.display()
                            )));
                        }
                        let options = stage.to_options().map_err(|e| Error::user(format!("stage `{name}`: {e}")))?;
                        let set: BTreeMap<_, _> = options.set.into_iter().collect();
                        serde_json::json!({ "kind": "sql", "file": stage.file, "set": set })
                    }
                    Stage::Dedup(stage) => {
                        let options = stage.to_options().map_err(|e| Error::user(format!("stage `{name}`: {e}")))?;
                        serde_json::json!({
                            "kind": "dedup", "input": options.input, "to": options.to.describe(),
                            "clusters": options.clusters.as_ref().map(Target::describe), "column": options.column,
                            "minhash": options.near, "min_similarity": options.min_similarity,
                            "index": options.index,
                        })
                    }
                    Stage::Decontaminate(stage) => {
                        let options = stage.to_options().map_err(|e| Error::user(format!("stage `{name}`: {e}")))?;
                        serde_json::json!({
                            "kind": "decontaminate", "input": options.input, "benchmarks": stage.benchmarks,
                            "benchmark_where": options.benchmark_where, "columns": options.columns,
                            "to": options.to.describe(), "report": options.report.describe(),
                            "ngram": options.ngram, "min_overlap": options.min_overlap,
                        })
                    }
                    Stage::Synthesize(stage) => {
                        let options = stage.to_options().map_err(|e| Error::user(format!("stage `{name}`: {e}")))?;
                        serde_json::json!({
                            "kind": "synthesize", "method": options.method, "input": options.input,
                            "where": options.filter, "to": options.to.describe(), "rollouts": options.rollouts,
                            "seed": options.seed,
                        })
                    }
                    Stage::Tokenizer(stage) => {
                        let options = stage.to_options(lake).map_err(|e| Error::user(format!("stage `{name}`: {e}")))?;
                        serde_json::json!({
                            "kind": "tokenizer", "input": options.input, "vocab_size": options.vocab_size,
                            "min_frequency": options.min_frequency, "to": options.to,
                        })
                    }
                    Stage::Tokenize(stage) => {
                        let options =
                            stage.to_options(lake, threads).map_err(|e| Error::user(format!("stage `{name}`: {e}")))?;
                        serde_json::json!({
                            "kind": "tokenize", "input": options.input, "where": options.filter, "to": options.to.describe(),
                            "tokenizer": options.tokenizer, "eos": options.eos, "template": options.template,
                            "keep": options.keep,
                        })
                    }
                    Stage::Shards(stage) => {
                        let options = stage.to_options(lake).map_err(|e| Error::user(format!("stage `{name}`: {e}")))?;
                        Mixture::load(&options.mixture).map_err(|e| Error::user(format!("stage `{name}`: {e}")))?;
                        let mut settings =
                            serde_json::json!({ "kind": "shards", "mixture": options.mixture, "to": options.to });
                        // Only when set, so that the fingerprints of earlier runs stand.
                        if options.scale != 1.0 {
                            settings["scale"] = options.scale.into();
                        }
                        settings
                    }
                    Stage::Train(stage) => {
                        let config = stage.config(lake).map_err(|e| Error::user(format!("stage `{name}`: {e}")))?;
                        serde_json::json!({ "kind": "train", "config": stage.config, "resolved": config })
                    }
                    Stage::Eval(stage) => {
                        stage.to_options(lake).map_err(|e| Error::user(format!("stage `{name}`: {e}")))?;
                        let mut resolved = serde_json::to_value(stage)?;
                        for key in ["checkpoint", "report"] {
                            let path = lake.expand(resolved[key].as_str().unwrap_or_default());
                            resolved[key] = path.into();
                        }
                        resolved["kind"] = "eval".into();
                        resolved
                    }
                    Stage::Arm(stage) => {
                        stage.check(lake).map_err(|e| Error::user(format!("stage `{name}`: {e}")))?;
                        let mut resolved = serde_json::to_value(stage)?;
                        resolved["experiment"] = lake.expand(&stage.experiment).into();
                        resolved["kind"] = "arm".into();
                        resolved
                    }
                    Stage::Report(stage) => serde_json::json!({
                        "kind": "report", "experiment": lake.expand(&stage.experiment), "baseline": stage.baseline,
                        "findings": stage.findings,
                    }),
                };
                Ok((name, resolved))
            })
            .collect()
    }

    /// What a user looks at after the job: each training run's loss plot and each
    /// evaluation's report.
    pub fn results(&self, lake: &Lake) -> Result<Vec<(&'static str, String)>> {
        let mut results = Vec::new();
        for stage in &self.stages {
            match stage {
                Stage::Train(stage) => {
                    let out = Location::parse(&stage.config(lake)?.out)?;
                    results.push(("loss plot", out.join(train::PLOT).url()));
                }
                Stage::Eval(stage) => {
                    let report = Location::parse(&lake.expand(&stage.report))?;
                    results.push(("evaluation report", report.join("report.md").url()));
                }
                Stage::Arm(stage) => results.push(("arm (a run and evaluation per seed)", stage.folder(lake)?.url())),
                Stage::Report(stage) => {
                    let folder = Location::parse(&lake.expand(&stage.experiment))?;
                    results.push(("experiment report", folder.join("report.md").url()));
                }
                _ => {}
            }
        }
        Ok(results)
    }

    /// Each stage's name, resolved settings and fingerprint, and why it must run (`None`:
    /// its last run stands and it is skipped). Once one stage runs, every later one does.
    pub async fn decide(&self, lake: &Lake, threads: usize, force: bool, log: &RunLog) -> Result<Vec<Decision>> {
        let plan = self.plan(lake, threads)?;
        let current = log::table_versions(lake).await?;
        let mut previous = String::new();
        let mut earlier_runs = false;
        let mut decisions = Vec::with_capacity(plan.len());
        for (i, (stage, (name, settings))) in self.stages.iter().zip(plan).enumerate() {
            let files = stage.files(lake).await.map_err(|e| in_stage(&name, e))?;
            let fingerprint = log::fingerprint(&settings, &files, &previous)?;
            previous = fingerprint.clone();
            let later_writers: BTreeMap<String, u64> = self.stages[i + 1..]
                .iter()
                .enumerate()
                .filter_map(|(j, later)| log.get(&later.name(i + 1 + j)))
                .filter(|r| r.status == log::Status::Succeeded)
                .flat_map(|r| r.wrote.clone())
                .collect();
            let reason = if force {
                Some("--force".to_string())
            } else if earlier_runs {
                Some("an earlier stage runs".to_string())
            } else {
                log::must_run(log.get(&name), &fingerprint, &later_writers, &current).await?
            };
            earlier_runs |= reason.is_some();
            decisions.push(Decision { name, settings, files, fingerprint, reason });
        }
        Ok(decisions)
    }

    /// Runs the stages in order, skipping those whose last run stands (unless `force`);
    /// the first failure stops the job, and what earlier stages committed stays committed.
    /// The run log (`log`) is rewritten as each stage starts and ends; `on_stage` hears
    /// about each stage as it ends or is skipped. The run holds the job's lease throughout
    /// (src/job/lease.rs): while it lives, another run of the job stops with `Error::Busy`.
    /// A `stop` asked for ends the run before its next stage, with `Error::Stopped`.
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        &self,
        lake: &Lake,
        threads: usize,
        quiet: bool,
        force: bool,
        stop: &schedule::Stop,
        log_location: &Location,
        progress: impl Fn(&str, ProgressUnit) -> ProgressBar,
        on_stage: impl FnMut(&StageReport),
    ) -> Result<Vec<StageReport>> {
        let ttl = std::time::Duration::from_secs(self.lease_seconds.unwrap_or(lease::DEFAULT_LEASE_SECONDS));
        let lease = lease::Lease::acquire(lake, &self.label, ttl).await?;
        let started = std::time::Instant::now();
        let mut record = history::RunRecord::start(&self.label, lease::holder());
        let result = self
            .run_leased(lake, threads, quiet, force, stop, log_location, &lease, &mut record, progress, on_stage)
            .await;
        let recorded = record.finish(lake, result.as_ref().err(), started).await;
        let released = lease.release().await;
        let reports = result?;
        recorded?;
        released?;
        Ok(reports)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_leased(
        &self,
        lake: &Lake,
        threads: usize,
        quiet: bool,
        force: bool,
        stop: &schedule::Stop,
        log_location: &Location,
        lease: &lease::Lease,
        history: &mut history::RunRecord,
        progress: impl Fn(&str, ProgressUnit) -> ProgressBar,
        mut on_stage: impl FnMut(&StageReport),
    ) -> Result<Vec<StageReport>> {
        let mut log = RunLog::read(log_location, &self.label).await?;
        let decisions = self.decide(lake, threads, force, &log).await?;
        let mut current = log::table_versions(lake).await?;
        let mut reports = Vec::new();
        let mut earlier_runs = false;
        let mut previous = String::new();
        for (stage, decision) in self.stages.iter().zip(decisions) {
            let name = decision.name.clone();
            let prior = log.get(&name).cloned();
            if decision.reason.is_none() {
                previous = decision.fingerprint;
                let report = StageReport::Skipped {
                    name,
                    since: prior.as_ref().map(|r| r.started_at.clone()).unwrap_or_default(),
                };
                history.skipped.push(report.name().to_string());
                on_stage(&report);
                reports.push(report);
                continue;
            }
            if stop.requested() {
                return Err(Error::Stopped(format!("stopped before stage `{name}`, as asked")));
            }
            lease.check()?;
            // Stamped again now that the stages before have run: a file this stage reads may
            // be one of theirs (the tokenizer a tokenize stage reads), absent when the plan
            // was made.
            let files = stage.files(lake).await.map_err(|e| in_stage(&name, e))?;
            let fingerprint = log::fingerprint(&decision.settings, &files, &previous)?;
            previous = fingerprint.clone();
            let mut record = StageRecord {
                name: name.clone(),
                kind: decision.settings["kind"].as_str().unwrap_or_default().to_string(),
                status: log::Status::Running,
                fingerprint: fingerprint.clone(),
                started_at: log::now(),
                seconds: 0.0,
                files,
                tables_before: current.clone(),
                wrote: BTreeMap::new(),
                artifacts: Vec::new(),
                error: None,
                report: serde_json::Value::Null,
            };
            log.set(record.clone());
            log.write(log_location).await?;
            let started = std::time::Instant::now();
            // A training run continues only what this same stage started and did not finish.
            let resume = !earlier_runs
                && prior.as_ref().is_some_and(|r| r.status != log::Status::Succeeded && r.fingerprint == fingerprint);
            let result = self.run_stage(stage, &name, lake, threads, quiet, &progress, resume, prior.is_some()).await;
            let after = log::table_versions(lake).await?;
            record.wrote = log::written(&current, &after);
            current = after;
            record.seconds = started.elapsed().as_secs_f64();
            earlier_runs = true;
            match result {
                Ok(report) => {
                    record.status = log::Status::Succeeded;
                    record.report = serde_json::to_value(&report)?;
                    record.artifacts = stage.artifacts(lake)?;
                    history.stages.push(record.clone());
                    log.set(record);
                    log.write(log_location).await?;
                    on_stage(&report);
                    reports.push(report);
                }
                Err(error) => {
                    record.status = log::Status::Failed;
                    record.error = Some(error.to_string());
                    history.stages.push(record.clone());
                    log.set(record);
                    log.write(log_location).await?;
                    return Err(error);
                }
            }
        }
        Ok(reports)
    }

    /// One stage. `resume`: a training run in the stage's `out` is continued; else one
    /// that this job made (`made_before`) is replaced, and any other is an error.
    #[allow(clippy::too_many_arguments)]
    async fn run_stage(
        &self,
        stage: &Stage,
        name: &str,
        lake: &Lake,
        threads: usize,
        quiet: bool,
        progress: &impl Fn(&str, ProgressUnit) -> ProgressBar,
        resume: bool,
        made_before: bool,
    ) -> Result<StageReport> {
        let name = name.to_string();
        Ok(match stage {
            Stage::Ingest(spec) => {
                let options = spec.to_options(threads)?;
                let bar = progress(&name, ProgressUnit::Bytes);
                let summary = ingest::ingest(lake, &options, &bar).await.map_err(|e| in_stage(&name, e))?;
                bar.finish_and_clear();
                StageReport::Ingest { name, summary }
            }
            Stage::Sql(stage) => {
                let file = stage.file.display().to_string();
                let sql = std::fs::read_to_string(&stage.file)
                    .map_err(|e| Error::user(format!("stage `{name}`: cannot read {file}: {e}")))?;
                let bar = progress(&name, ProgressUnit::Rows);
                let statements =
                    script::run(lake, &file, &sql, &stage.to_options()?, &bar).await.map_err(|e| in_stage(&name, e))?;
                bar.finish_and_clear();
                StageReport::Sql { name, file: stage.file.clone(), statements }
            }
            Stage::Dedup(stage) => {
                let bar = progress(&name, ProgressUnit::Rows);
                let report = dedup::dedup(lake, &stage.to_options()?, &bar).await.map_err(|e| in_stage(&name, e))?;
                bar.finish_and_clear();
                StageReport::Dedup { name, report }
            }
            Stage::Decontaminate(stage) => {
                let bar = progress(&name, ProgressUnit::Rows);
                let report = decontaminate::decontaminate(lake, &stage.to_options()?, &bar)
                    .await
                    .map_err(|e| in_stage(&name, e))?;
                bar.finish_and_clear();
                StageReport::Decontaminate { name, report }
            }
            Stage::Synthesize(stage) => {
                let bar = progress(&name, ProgressUnit::Rows);
                let report =
                    synthesize::synthesize(lake, &stage.to_options()?, &bar).await.map_err(|e| in_stage(&name, e))?;
                bar.finish_and_clear();
                StageReport::Synthesize { name, report }
            }
            Stage::Tokenizer(stage) => {
                let bar = progress(&name, ProgressUnit::Rows);
                let report = tokenize::train_tokenizer(lake, &stage.to_options(lake)?, &bar)
                    .await
                    .map_err(|e| in_stage(&name, e))?;
                bar.finish_and_clear();
                StageReport::Tokenizer { name, report }
            }
            Stage::Tokenize(stage) => {
                let bar = progress(&name, ProgressUnit::Rows);
                let report = tokenize::tokenize(lake, &stage.to_options(lake, threads)?, &bar)
                    .await
                    .map_err(|e| in_stage(&name, e))?;
                bar.finish_and_clear();
                StageReport::Tokenize { name, report }
            }
            Stage::Shards(stage) => {
                let bar = progress(&name, ProgressUnit::Rows);
                let report =
                    shards::build(lake, &stage.to_options(lake)?, &bar).await.map_err(|e| in_stage(&name, e))?;
                bar.finish_and_clear();
                StageReport::Shards { name, report }
            }
            Stage::Train(stage) => {
                let config = stage.config(lake).map_err(|e| in_stage(&name, e))?;
                let out = Location::parse(&config.out)?;
                let exists = train::checkpoint::run_exists(&out).await?;
                let resume = resume || stage.resume;
                if exists && !resume {
                    if !made_before {
                        return Err(in_stage(
                            &name,
                            Error::user(format!("{} holds a training run that this job did not start", config.out))
                                .hint("choose another `out` in the training file, delete that run, or set `resume = true`"),
                        ));
                    }
                    log::remove_folder(&out).await?;
                }
                let options = TrainOptions { resume: exists && resume, stop_after: stage.stop_after, quiet };
                let report = train::train(&config, options).await.map_err(|e| in_stage(&name, e))?;
                StageReport::Train { name, report }
            }
            Stage::Eval(stage) => {
                let bar = progress(&name, ProgressUnit::Items);
                let report = eval::eval(lake, &stage.to_options(lake)?, &bar).await.map_err(|e| in_stage(&name, e))?;
                bar.finish_and_clear();
                StageReport::Eval { name, report }
            }
            Stage::Arm(stage) => {
                let rows = |label: &str| progress(label, ProgressUnit::Rows);
                let items = |label: &str| progress(label, ProgressUnit::Items);
                let report = arm::run(lake, stage, quiet, resume, made_before, &rows, &items)
                    .await
                    .map_err(|e| in_stage(&name, e))?;
                StageReport::Arm { name, report }
            }
            Stage::Report(stage) => {
                let report = experiment_report::report(lake, stage).await.map_err(|e| in_stage(&name, e))?;
                StageReport::Report { name, report }
            }
        })
    }
}

/// What `mathlake run` will do with a stage.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub name: String,
    pub settings: serde_json::Value,
    #[serde(skip)]
    pub files: Vec<FileStamp>,
    pub fingerprint: String,
    /// Why it runs; `None`: skipped, its last run stands.
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `.toml` files directly in `jobs/{folder}`, sorted.
    fn bundled(folder: &str) -> Vec<PathBuf> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs").join(folder);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        paths
    }

    /// The jobs and experiments load and plan, every arm's mixture, training file and
    /// evaluation included (paths are relative to the repository root, as in the README).
    #[test]
    fn bundled_jobs_load_and_plan() {
        std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
        let jobs = [bundled(""), bundled("experiments")].concat();
        for path in &jobs {
            let job = Job::load(path).unwrap();
            job.plan(&Lake::open("memory://jobs").unwrap(), 1).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for needed in job.needed().unwrap() {
                needed.plan(&Lake::open("memory://jobs").unwrap(), 1).unwrap();
            }
        }
        assert!(jobs.iter().any(|p| p.ends_with("experiments/rq1-tiny.toml")), "{jobs:?}");
    }

    /// Every training file and mixture under jobs/ loads: those the jobs above name, and
    /// those the README points at.
    #[test]
    fn every_bundled_training_file_and_mixture_loads() {
        let train = [bundled("train"), bundled("experiments/train")].concat();
        let mut mixtures = [
            bundled("mixtures"),
            bundled("experiments/rq1"),
            bundled("experiments/rq2"),
            bundled("experiments/rq2/small"),
            bundled("experiments/rq3"),
        ]
        .concat();
        mixtures.retain(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("findings")));
        mixtures.push(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/experiments/shared/general.toml"));
        for path in &train {
            // The experiments' training files leave shards and out to the arm stage.
            let mut table: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            for key in ["shards", "out"] {
                table.entry(key).or_insert_with(|| "somewhere".into());
            }
            let config: crate::train::TrainConfig =
                toml::Value::Table(table).try_into().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            config.check().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        for path in &mixtures {
            Mixture::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        assert!(train.len() >= 6 && mixtures.len() >= 17, "{train:?} {mixtures:?}");
    }

    #[test]
    fn needed_jobs_run_deepest_first_and_a_circle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| dir.path().join(name);
        let write = |name: &str, needs: &str| {
            let text = format!(
                "{needs}[[stage]]\nkind = \"sql\"\nname = \"{name}1\"\nfile = \"x.sql\"\n\n\
                                [[stage]]\nkind = \"sql\"\nname = \"{name}2\"\nfile = \"y.sql\"\n"
            );
            std::fs::write(file(name), text).unwrap();
        };
        write("c", "");
        write("b", &format!("needs = {{ job = {:?}, until = \"c1\" }}\n", file("c")));
        write("a", &format!("needs = {{ job = {:?} }}\n", file("b")));
        let chain = Job::load(&file("a")).unwrap().needed().unwrap();
        let stages: Vec<Vec<String>> =
            chain.iter().map(|j| j.stages.iter().enumerate().map(|(i, s)| s.name(i)).collect()).collect();
        assert_eq!(stages, [vec!["c1"], vec!["b1", "b2"]]);

        write("c", &format!("needs = {{ job = {:?} }}\n", file("a")));
        let err = Job::load(&file("a")).unwrap().needed().unwrap_err().to_string();
        assert!(err.contains("goes round in a circle"), "{err}");
    }

    #[test]
    fn until_keeps_the_stages_up_to_the_named_one() {
        let text = "[[stage]]\nkind = \"sql\"\nfile = \"a.sql\"\n\n[[stage]]\nkind = \"sql\"\nfile = \"b.sql\"\n\n\
                    [[stage]]\nkind = \"sql\"\nfile = \"c.sql\"\n";
        let job: Job = toml::from_str(text).unwrap();
        let mut first_two = job.clone();
        first_two.until("b").unwrap();
        assert_eq!(first_two.stages.iter().enumerate().map(|(i, s)| s.name(i)).collect::<Vec<_>>(), ["a", "b"]);
        let err = job.clone().until("bb").unwrap_err();
        assert!(err.to_string().contains("no stage named `bb`"), "{err}");
        assert_eq!(err.hint_text(), Some("did you mean `b`?"));
    }

    #[test]
    fn misspelt_keys_and_kinds_fail_with_their_stage() {
        // The error points at the `[[stage]]` that holds the key (line 3 here) and lists
        // the keys that exist.
        let bad_key = "lake = \"x\"\n\n[[stage]]\nkind = \"ingest\"\ninputs = [\"a.jsonl\"]\npreset = \"gsm8k\"\nsplt = \"test\"\n";
        let err = toml::from_str::<Job>(bad_key).unwrap_err().to_string();
        assert!(err.contains("unknown field `splt`") && err.contains("line 3") && err.contains("`split`"), "{err}");
        let bad_kind = "[[stage]]\nkind = \"ingset\"\n";
        let err = toml::from_str::<Job>(bad_kind).unwrap_err().to_string();
        assert!(err.contains("unknown variant `ingset`") && err.contains("ingest"), "{err}");
    }
}
