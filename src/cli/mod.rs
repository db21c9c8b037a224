//! The command line: the subcommands, one library call each, and how results are shown
//! (human text on stdout, progress and errors on stderr, `--json` for machines).
//!
//! One file per subcommand (or family of them), each parsing nothing itself: the settings
//! of every stage are one type in the stage's module, shared with job files.

mod classifier;
mod dedup;
mod eval;
mod ingest;
mod lake;
mod report;
mod run;
mod schedule;
mod serve;
mod shards;
mod sql;
mod synthesize;
mod tokenize;
mod train;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::curate::script::SqlSpec;
use crate::decontaminate::DecontamSpec;
use crate::dedup::DedupSpec;
use crate::error::{Error, Result};
use crate::eval::EvalSpec;
use crate::experiment::report::ReportSpec;
use crate::ingest::IngestSpec;
use crate::job::schedule::ScheduleSpec;
use crate::lake::{DEFAULT_LAKE, Lake};
use crate::serve::ServeSpec;
use crate::shards::BuildSpec;
use crate::synthesize::SynthesizeSpec;
use crate::text::classifier::TrainOptions;
use crate::tokenize::{TokenizeSpec, TrainTokenizerSpec};
use crate::train::TrainSpec;

const EXAMPLES: &str = "\
Examples:
  mathlake ingest ../shared/data/problems/gsm8k_train.jsonl --preset gsm8k
  mathlake ingest 's3://corpus/cc/*.jsonl.zst' --preset dolma --source cc --lake s3://lake/main
  mathlake ingest dump.parquet --table documents --map text=content --map url=meta.link --source forum
  mathlake tables
  mathlake query \"SELECT source, split, count(*) FROM problems GROUP BY 1, 2\"
  mathlake sql sql/curate_documents.sql --set min_math_score=0.8
  mathlake functions
  mathlake dedup --input math_documents --to math_documents_dedup --clusters math_dedup_clusters
  mathlake decontaminate --input training_problems --benchmarks problems --to clean_problems --report contamination
  mathlake synthesize --method retrospective --where \"source = 'gsm8k'\"
  mathlake tokenize --input training_problems_clean --tokenizer ../shared/data/tokenizers/gpt2.json --to problem_tokens
  mathlake shards build --mixture jobs/experiments/rq1/test1.toml --to lake/shards/test1
  mathlake run jobs/quickstart.toml";

/// A streaming data-lake processor for math pre-training corpora.
///
/// Tables live in a lake: a local folder (./lake by default), s3://bucket/prefix
/// (credentials from the standard AWS_* variables) or memory://. Every write commits
/// atomically; `mathlake query` reads tables by name with DataFusion SQL.
#[derive(Debug, Parser)]
#[command(name = "mathlake", version, after_help = EXAMPLES)]
pub struct Cli {
    /// The lake: a folder, file://, s3://bucket/prefix or memory:// [default: ./lake]
    #[arg(long, global = true, env = "MATHLAKE_LAKE", value_name = "URL")]
    pub lake: Option<String>,

    /// Print results as JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Worker threads [default: the number of cores].
    #[arg(long, global = true, env = "MATHLAKE_THREADS")]
    pub threads: Option<usize>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read JSONL (.gz, .zst), Parquet, .txt or .tex into the documents or problems table.
    ///
    /// Bad records (malformed JSON, invalid UTF-8, missing or mistyped fields, empty or
    /// oversize records) go to the `quarantine` table with their reason and line; records
    /// already in the table are counted as duplicates. The run commits once, at the end.
    Ingest(Box<IngestSpec>),
    /// List the lake's tables with their rows, files and size.
    Tables,
    /// Show the schema, counts and first rows of a table, or of Parquet files at a URL.
    Inspect {
        /// A table name, a table's URL, or a Parquet file or folder.
        target: String,
        /// Sample rows to show.
        #[arg(long, default_value_t = 5)]
        rows: usize,
        /// Cut cells longer than this many characters.
        #[arg(long, default_value_t = 60)]
        max_width: usize,
    },
    /// Expire old table versions and delete the data files that no kept version lists.
    ///
    /// A version expires once the version after it has been current for longer than
    /// --older-than, unless it is among the --keep newest (the latest is always kept).
    /// Until it expires, `table_at('name', version)` reads it in SQL. Files that no
    /// version lists (left by killed runs) go once they are over an hour old.
    #[command(
        after_help = "Examples:\n  mathlake vacuum --dry-run\n  mathlake vacuum --table documents --older-than 0s --keep 2"
    )]
    Vacuum {
        /// Only this table (default: every table of the lake).
        #[arg(long)]
        table: Option<String>,
        /// How long a replaced version stays readable: 7d, 36h, 30m, 0s.
        #[arg(long, default_value = "7d", value_name = "AGE")]
        older_than: String,
        /// The newest versions of each table kept whatever their age.
        #[arg(long, default_value_t = 1)]
        keep: usize,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run one SQL statement over the lake's tables, which are there by name.
    Query {
        sql: String,
        /// Rows to show (text output; --json prints all).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Cut cells longer than this many characters.
        #[arg(long, default_value_t = 60)]
        max_width: usize,
        /// Memory DataFusion's operators may hold before they spill (e.g. 512M, 4G).
        #[arg(long, value_name = "SIZE")]
        memory_limit: Option<String>,
        /// Where the query runs: local, standalone (Ballista in this process) or
        /// ballista://HOST:PORT (both need the `distributed` build) [default: local].
        #[arg(long)]
        engine: Option<String>,
    },
    /// Run a file of SQL statements over the lake, in order (the curation pipeline is sql/*.sql).
    ///
    /// Lake tables are there by name, with mathlake's functions (`mathlake functions`).
    /// `COPY (SELECT ...) TO 'name'` replaces lake table `name` in one atomic commit;
    /// `COPY ... TO 'path/or/s3/url.parquet'` writes one Parquet file. `$name` placeholders
    /// take their values from `-- @param name = value` lines in the file and from --set.
    #[command(
        after_help = "Examples:\n  mathlake sql sql/curate_documents.sql\n  mathlake sql sql/curate_documents.sql --set min_math_score=0.8 --memory-limit 2G"
    )]
    Sql(SqlSpec),
    /// List the SQL functions mathlake adds to every session, with what each computes.
    Functions,
    /// Train or evaluate the math_score classifier.
    #[command(subcommand)]
    Classifier(ClassifierCommand),
    /// Remove exact and near-duplicate documents (MinHash LSH), with a cluster table for lineage.
    ///
    /// Rows sharing normalize_text(text), or an LSH band of their MinHash signatures, are
    /// candidates; a candidate pair merges when the Jaccard similarity of their word n-gram
    /// sets, estimated from their signatures, is at least --min-similarity. Each cluster
    /// keeps its smallest id.
    #[command(
        after_help = "Examples:\n  mathlake dedup --input math_documents --to math_documents_dedup --clusters math_dedup_clusters\n  mathlake dedup --input s3://lake/main/documents --to out/unique.parquet --exact-only"
    )]
    Dedup(DedupSpec),
    /// Remove training records that share word n-grams with evaluation items, with a report.
    ///
    /// Benchmarks are lake tables, table URLs or Parquet files with id, question and
    /// solution (or final_answer) columns; items are the rows with split = 'test' where
    /// there is a split column. Each (record, item) overlap is a row of the --report table.
    #[command(
        after_help = "Examples:\n  mathlake decontaminate --input training_problems --benchmarks problems --to clean_problems --report contamination\n  mathlake decontaminate --input documents --benchmarks problems,aime=evals/aime.parquet --ngram 10 --to clean --report contamination"
    )]
    Decontaminate(DecontamSpec),
    /// Make problem-solving records from the training problems, one row per problem and
    /// rollout in the `synthetic` table, accepted or rejected with its reason.
    ///
    /// Only rows with split = 'train' are read. `retrospective` moves a later step of a
    /// solution too early, then writes `[back]` and the correct continuation; each record
    /// is verified (the source solution comes back when the step and marker are taken out,
    /// and the final answer is the gold one). Mixtures take status = 'accepted'.
    #[command(
        after_help = "Examples:\n  mathlake synthesize --method retrospective\n  mathlake synthesize --method retrospective --where \"source = 'gsm8k'\" --rollouts 2 --seed 7 --to retro_gsm8k"
    )]
    Synthesize(SynthesizeSpec),
    /// Tokenize a table with a Hugging Face tokenizer.json: one row per record with its
    /// tokens (EOS last), how many of them are prompt, and token count.
    ///
    /// Documents render as their text; problems (a table with a question column) as
    /// "Question: {question}\nAnswer: {solution}", whose prompt is out of the SFT loss.
    /// Rows with a null in a column the template reads are skipped and counted.
    #[command(
        after_help = "Examples:\n  mathlake tokenize --input general_documents_clean --tokenizer ../shared/data/tokenizers/gpt2.json --to general_tokens\n  mathlake tokenize --input training_problems_clean --tokenizer tok.json --to problem_tokens --keep split,level\n  mathlake tokenize --input problems --tokenizer tok.json --to sft_tokens --prompt '<|user|>{question}<|assistant|>' --response '{solution}'"
    )]
    Tokenize(TokenizeSpec),
    /// Train a tokenizer.
    #[command(subcommand)]
    Tokenizer(TokenizerCommand),
    /// Build training shards from a mixture file, or look into a shard set.
    #[command(subcommand)]
    Shards(ShardsCommand),
    /// Train a Llama-style model on a shard set (CPT or SFT, from the shards' mode).
    ///
    /// Checkpoints (Hugging Face safetensors + config.json, optimizer state, data
    /// position), log.jsonl and loss.png go to the file's `out`; the best checkpoint by
    /// validation loss is kept beside the latest.
    #[command(
        after_help = "Examples:\n  mathlake train --config jobs/train/base1-tiny.toml\n  mathlake train --config jobs/train/base1-tiny.toml --resume"
    )]
    Train(TrainSpec),
    /// Score a checkpoint on benchmarks: held-out solution loss on every item, greedy
    /// generation graded against the gold answer, per benchmark, level, subject and
    /// difficulty. Writes report.md, report.json and items.jsonl to --report.
    ///
    /// Benchmarks are tables with question and solution columns (final_answer, level and
    /// subject are used where present); items are the rows with split = 'test' where there
    /// is a split column. Few-shot exemplars are the benchmark table's train rows of the
    /// same source (math500 takes math's), the SHOTS with the smallest ids that are short.
    #[command(
        after_help = "Examples:\n  mathlake eval --checkpoint lake/runs/test1-tiny --benchmarks problems --benchmark-where \"split = 'test' AND source IN ('gsm8k', 'math500')\" --report lake/evals/test1-tiny\n  mathlake eval --checkpoint runs/x/checkpoints/step-000400 --tokenizer tok.json --benchmarks gsm8k=evals/gsm8k.parquet --shots 0 --limit 100 --report evals/x"
    )]
    Eval(EvalSpec),
    /// Compare the arms of an experiment over their seeds: per benchmark, level and
    /// difficulty, each arm's loss and accuracy (mean +- std over seeds) and its difference
    /// to the baseline arm with a 95% interval; with --findings, one verdict per claim (held,
    /// reversed, or within the seed spread). Writes report.md and report.json.
    #[command(
        after_help = "Example:\n  mathlake report lake/experiments/rq1-tiny --baseline base1 --findings jobs/experiments/rq1-findings.toml"
    )]
    Report(ReportSpec),
    /// Serve a model over an OpenAI-compatible HTTP API (`/v1/models`,
    /// `/v1/chat/completions`, `/v1/completions`), for synthesis or any OpenAI client.
    ///
    /// The model is a GGUF Llama file (weights dequantized to f32; its tokenizer and chat
    /// template come from the file) or a checkpoint folder. Concurrent requests decode
    /// together, up to --max-batch; replies are not streamed. Runs until stopped.
    #[command(
        after_help = "Examples:\n  mathlake serve --model SmolLM2-135M-Instruct.Q4_1.gguf --port 8000\n  mathlake serve --model lake/runs/test1-tiny --name tiny --port 0\n  curl -s localhost:8000/v1/chat/completions -d '{\"messages\": [{\"role\": \"user\", \"content\": \"What is 2+2?\"}], \"temperature\": 0}'"
    )]
    Serve(ServeSpec),
    /// Run a job file: its stages in order, stopping at the first failure.
    ///
    /// A stage whose settings, files and earlier stages are unchanged since its last
    /// successful run, and whose outputs are still as it left them, is skipped; once a
    /// stage runs, every later stage runs. The run log is {lake}/_jobs/{job file stem}.json.
    #[command(
        after_help = "Examples:\n  mathlake run jobs/quickstart.toml\n  mathlake run jobs/quickstart.toml --dry-run\n  mathlake run jobs/quickstart.toml --force"
    )]
    Run {
        job: PathBuf,
        /// Print each stage's resolved settings and whether it would run, and run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Run every stage, changed or not.
        #[arg(long)]
        force: bool,
        /// Stop after this stage: the stages after it are neither checked nor run.
        #[arg(long, value_name = "STAGE")]
        until: Option<String>,
    },
    /// Run a job file on a cron schedule, in one long-lived process.
    ///
    /// Each slot runs the job as `mathlake run` would (unchanged stages skipped, inputs
    /// already ingested not read again). Runs never overlap: the next slot is the first
    /// after a run ends, and a run that finds the job's lease held elsewhere gives up its
    /// slot. A failed run is tried again after --backoff-seconds, doubled each time, up to
    /// --retries times. SIGTERM or Ctrl-C stops the process between stages; a second
    /// signal stops it at once. Flags override the job file's [schedule] table.
    #[command(
        after_help = "Examples:\n  mathlake schedule jobs/quickstart.toml --cron \"0 * * * *\"\n  mathlake schedule jobs/nightly.toml                  # cron from its [schedule] table\n  mathlake schedule jobs/quickstart.toml --cron \"*/30 * * * * *\" --retries 3 --backoff-seconds 10"
    )]
    Schedule {
        job: PathBuf,
        #[command(flatten)]
        spec: ScheduleSpec,
    },
    /// Run a Ballista scheduler with mathlake's functions: drivers send it their SQL
    /// (`--engine ballista://HOST:PORT`), executors register with it. Runs until stopped.
    #[cfg(feature = "distributed")]
    #[command(
        after_help = "Example:\n  mathlake scheduler --bind 0.0.0.0 --port 50050\n\nDEPLOY.md: a scheduler and N executors."
    )]
    Scheduler(crate::cluster::SchedulerSpec),
    /// Run a Ballista executor with mathlake's functions and object stores: it registers
    /// with the scheduler and runs the tasks it is given. Runs until stopped.
    #[cfg(feature = "distributed")]
    #[command(
        after_help = "Example:\n  mathlake executor --scheduler 10.0.0.1:50050 --bind 0.0.0.0 --external-host 10.0.0.2 --slots 16 --memory-limit 48G --work-dir /mnt/shuffle\n\nDEPLOY.md: a scheduler and N executors."
    )]
    Executor(crate::cluster::ExecutorSpec),
}

#[derive(Debug, Subcommand)]
pub enum ClassifierCommand {
    /// Train a model on texts from lake queries; prints held-out precision, recall and AUC.
    #[command(after_help = "The shipped model was trained by the command in README.md, \"The math classifier\".")]
    Train {
        /// SQL whose first column is math text (repeatable).
        #[arg(long, required = true, value_name = "SQL")]
        positive: Vec<String>,
        /// SQL whose first column is other text (repeatable).
        #[arg(long, required = true, value_name = "SQL")]
        negative: Vec<String>,
        /// Where to write the model: a path or a URL (`s3://bucket/models/math.model`).
        #[arg(long, value_name = "URL")]
        out: String,
        /// Share of the examples held out for the metrics.
        #[arg(long, default_value_t = TrainOptions::default().holdout)]
        holdout: f64,
        #[arg(long, default_value_t = TrainOptions::default().epochs)]
        epochs: usize,
        /// The model has 2^BITS weights.
        #[arg(long, default_value_t = TrainOptions::default().bits)]
        bits: u32,
    },
    /// Score labelled texts with a model (the shipped one by default).
    Eval {
        /// The model's path or URL.
        #[arg(long, value_name = "URL")]
        model: Option<String>,
        #[arg(long, required = true, value_name = "SQL")]
        positive: Vec<String>,
        #[arg(long, required = true, value_name = "SQL")]
        negative: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenizerCommand {
    /// Train a byte-level BPE (GPT-2's pre-tokenizer and byte alphabet, EOS <|endoftext|>)
    /// of a chosen vocabulary size from lake text; writes a tokenizer.json.
    #[command(
        after_help = "Example:\n  mathlake tokenizer train --input \"SELECT text FROM documents\" --vocab-size 8192 --to lake/tokenizers/bpe8k.json"
    )]
    Train(TrainTokenizerSpec),
}

#[derive(Debug, Subcommand)]
pub enum ShardsCommand {
    /// Pack the tokenized tables of a mixture (one experimental arm) into shards.
    ///
    /// Each source gets its token budget exactly (CPT) or as near as whole records allow
    /// (SFT), upsampled where it must be; validation_fraction of each source's records is
    /// held out for the validation shards. Writes Arrow IPC shards and manifest.json.
    #[command(
        after_help = "Example:\n  mathlake shards build --mixture jobs/experiments/rq1/test1.toml --to lake/shards/test1"
    )]
    Build(BuildSpec),
    /// Show a shard set's manifest, the mixture achieved against the one asked for, and
    /// a few training rows decoded (text outside the loss in ⟦ ⟧).
    Inspect {
        /// The shard set's folder: a path or URL.
        url: String,
        /// Training rows to decode.
        #[arg(long, default_value_t = 2)]
        rows: usize,
        /// The tokenizer.json, if not at the path the manifest records.
        #[arg(long)]
        tokenizer: Option<String>,
        /// Cut each decoded row after this many characters (0: no cut).
        #[arg(long, default_value_t = 600)]
        max_width: usize,
    },
}

impl Cli {
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
    }

    fn open_lake(&self, job_lake: Option<&str>) -> Result<Lake> {
        Lake::open(self.lake.as_deref().or(job_lake).unwrap_or(DEFAULT_LAKE))
    }
}

/// The whole process: parses the command line, sets up logging, the allocator and the
/// async runtime, runs the command and reports its error.
///
/// It lives here rather than in src/main.rs because a binary compiles every async state
/// machine it polls: blocking on [`run`] there built the whole command tree a second time
/// (190 s of a cold build's CPU; BENCHMARKS.md, "Build and test time").
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Errors only, by default: a command reports its own. Ballista's components log the
    // failures they pass on to us as errors too, so those are left to MATHLAKE_LOG, except
    // in the cluster's own processes, whose log is what their operators read.
    let quiet = "error,ballista_core=off,ballista_executor=off,ballista_scheduler=off";
    let default_filter = match &cli.command {
        #[cfg(feature = "distributed")]
        Command::Scheduler(_) | Command::Executor(_) => "info",
        _ => quiet,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MATHLAKE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let threads = cli.threads();
    // Before any thread allocates: arenas are handed out on first use.
    crate::malloc::share_arenas(threads);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report_error(&error);
            if error.is_busy() { ExitCode::from(crate::job::lease::BUSY_EXIT_CODE) } else { ExitCode::FAILURE }
        }
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Ingest(spec) => ingest::run(&cli, spec).await,
        Command::Tables => lake::tables(&cli).await,
        Command::Vacuum { table, older_than, keep, dry_run } => {
            lake::vacuum(&cli, table.as_deref(), older_than, *keep, *dry_run).await
        }
        Command::Inspect { target, rows, max_width } => lake::inspect(&cli, target, *rows, *max_width).await,
        Command::Query { sql, limit, max_width, memory_limit, engine } => {
            lake::query(&cli, sql, *limit, *max_width, memory_limit.as_deref(), engine.as_deref()).await
        }
        Command::Sql(spec) => sql::run(&cli, spec).await,
        #[cfg(feature = "distributed")]
        Command::Scheduler(spec) => crate::cluster::scheduler(spec).await,
        #[cfg(feature = "distributed")]
        Command::Executor(spec) => crate::cluster::executor(spec).await,
        Command::Functions => sql::list_functions(&cli),
        Command::Classifier(command) => classifier::run(&cli, command).await,
        Command::Dedup(spec) => dedup::dedup(&cli, spec).await,
        Command::Decontaminate(spec) => dedup::decontaminate(&cli, spec).await,
        Command::Synthesize(spec) => synthesize::run(&cli, spec).await,
        Command::Tokenize(spec) => tokenize::tokenize(&cli, spec).await,
        Command::Tokenizer(TokenizerCommand::Train(spec)) => tokenize::train_tokenizer(&cli, spec).await,
        Command::Shards(ShardsCommand::Build(spec)) => shards::build(&cli, spec).await,
        Command::Shards(ShardsCommand::Inspect { url, rows, tokenizer, max_width }) => {
            shards::inspect(&cli, url, *rows, tokenizer.as_deref(), *max_width).await
        }
        Command::Train(spec) => train::run(&cli, spec).await,
        Command::Eval(spec) => eval::run(&cli, spec).await,
        Command::Report(spec) => report::run(&cli, spec).await,
        Command::Serve(spec) => serve::run(&cli, spec).await,
        Command::Run { job, dry_run, force, until } => run::run(&cli, job, *dry_run, *force, until.as_deref()).await,
        Command::Schedule { job, spec } => schedule::run(&cli, job, spec).await,
    }
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// The process's peak resident memory (Linux `VmHWM`), for reports on memory limits.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Prints an error with its hint on its own line, as the rest of the CLI does.
fn report_error(error: &Error) {
    eprintln!("error: {error}");
    if let Some(hint) = error.hint_text() {
        for line in hint.lines() {
            eprintln!("  hint: {line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::CommandFactory;

    use super::*;

    /// The keys a settings type takes in a job file, as its own refusal of an unknown key
    /// lists them.
    fn job_keys<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> BTreeSet<String> {
        let err = toml::from_str::<T>("not_a_setting = 1").unwrap_err().to_string();
        let listed = err.split("expected one of ").nth(1).unwrap_or_else(|| panic!("no key list in: {err}"));
        listed.lines().next().unwrap_or_default().split(", ").map(|k| k.trim_matches('`').to_string()).collect()
    }

    /// The flags (and positional arguments) of a subcommand, by the field they fill.
    fn flags(path: &[&str]) -> BTreeSet<String> {
        let mut command = Cli::command();
        for name in path {
            command = command.find_subcommand(name).unwrap_or_else(|| panic!("no subcommand {path:?}")).clone();
        }
        command.get_arguments().map(|a| a.get_id().to_string()).filter(|id| id != "help").collect()
    }

    /// Every stage's job keys are its command's flags: the one difference is `name`, which
    /// only a stage of a job has (and `list_presets`, which only the command has).
    #[test]
    fn each_stage_takes_the_same_settings_on_the_command_line_and_in_a_job() {
        let stages: [(&[&str], BTreeSet<String>); 11] = [
            (&["ingest"], job_keys::<IngestSpec>()),
            (&["sql"], job_keys::<SqlSpec>()),
            (&["dedup"], job_keys::<DedupSpec>()),
            (&["decontaminate"], job_keys::<DecontamSpec>()),
            (&["synthesize"], job_keys::<SynthesizeSpec>()),
            (&["tokenizer", "train"], job_keys::<TrainTokenizerSpec>()),
            (&["tokenize"], job_keys::<TokenizeSpec>()),
            (&["shards", "build"], job_keys::<BuildSpec>()),
            (&["train"], job_keys::<TrainSpec>()),
            (&["eval"], job_keys::<EvalSpec>()),
            (&["report"], job_keys::<ReportSpec>()),
        ];
        for (path, keys) in stages {
            let mut cli: BTreeSet<String> = flags(path);
            cli.remove("list_presets");
            let mut job = keys.clone();
            assert!(job.remove("name"), "{path:?}: a job stage has a name");
            assert_eq!(cli, job, "{path:?}: command-line flags and job keys differ");
            assert!(cli.len() >= 3, "{path:?}: {cli:?}");
        }
    }
}
