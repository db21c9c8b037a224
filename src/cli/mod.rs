//! The command line: argument structs, one library call per subcommand, and how results
//! are shown (human text on stdout, progress and errors on stderr, `--json` for machines).

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::curate::classifier::{self, MathClassifier, TrainOptions};
use crate::curate::script::{self, ScriptOptions, StatementReport};
use crate::curate::{self, functions};
use crate::decontaminate::{self, BenchmarkSpec, DEFAULT_NGRAM, DecontamOptions, DecontamReport};
use crate::dedup::{self, DEFAULT_MIN_SIMILARITY, DedupOptions, DedupReport, minhash::MinHashConfig};
use crate::error::{Error, Result};
use crate::eval::{self, EvalOptions, EvalReport};
use crate::ingest::{self, IngestSpec, IngestSummary, mapping::PRESETS};
use crate::job::log::RunLog;
use crate::job::{Job, ProgressUnit, StageReport};
use crate::lake::{DEFAULT_LAKE, Lake, SessionOptions, Target, parse_size};
use crate::query;
use crate::shards::manifest::Manifest;
use crate::shards::mixture::Mode;
use crate::shards::{self, BuildOptions, BuildReport};
use crate::terminal;
use crate::tokenize::{self, Template, TokenizeOptions, TokenizeReport, TrainTokenizerOptions, TrainTokenizerReport};
use crate::train::config::DeviceKind;
use crate::train::{self, TrainConfig, TrainReport};

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
  mathlake tokenize --input training_problems_clean --tokenizer ../shared/data/tokenizers/gpt2.json --to problem_tokens
  mathlake shards build --mixture jobs/mixtures/test1.toml --to lake/shards/test1
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
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        memory_limit: Option<usize>,
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
    Sql {
        file: PathBuf,
        /// A parameter value, bound to `$NAME` (repeatable): --set min_words=100
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_assignment)]
        set: Vec<(String, String)>,
        /// Memory DataFusion's operators may hold before they spill (e.g. 512M, 4G).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        memory_limit: Option<usize>,
        /// Where spill files go [default: the system temp folder].
        #[arg(long, value_name = "DIR")]
        spill_dir: Option<PathBuf>,
        /// Rows of each query's result to show.
        #[arg(long, default_value_t = 10)]
        show: usize,
        /// Cut cells longer than this many characters.
        #[arg(long, default_value_t = 60)]
        max_width: usize,
    },
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
    Dedup(DedupArgs),
    /// Remove training records that share word n-grams with evaluation items, with a report.
    ///
    /// Benchmarks are lake tables, table URLs or Parquet files with id, question and
    /// solution (or final_answer) columns; items are the rows with split = 'test' where
    /// there is a split column. Each (record, item) overlap is a row of the --report table.
    #[command(
        after_help = "Examples:\n  mathlake decontaminate --input training_problems --benchmarks problems --to clean_problems --report contamination\n  mathlake decontaminate --input documents --benchmarks problems,aime=evals/aime.parquet --ngram 10 --to clean --report contamination"
    )]
    Decontaminate(DecontamArgs),
    /// Tokenize a table with a Hugging Face tokenizer.json: one row per record with its
    /// tokens (EOS last), how many of them are prompt, and token count.
    ///
    /// Documents render as their text; problems (a table with a question column) as
    /// "Question: {question}\nAnswer: {solution}", whose prompt is out of the SFT loss.
    /// Rows with a null in a column the template reads are skipped and counted.
    #[command(
        after_help = "Examples:\n  mathlake tokenize --input general_documents_clean --tokenizer ../shared/data/tokenizers/gpt2.json --to general_tokens\n  mathlake tokenize --input training_problems_clean --tokenizer tok.json --to problem_tokens --keep split,level\n  mathlake tokenize --input problems --tokenizer tok.json --to sft_tokens --prompt '<|user|>{question}<|assistant|>' --response '{solution}'"
    )]
    Tokenize(TokenizeArgs),
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
    Train {
        /// A training file (TOML): shards, out, steps or tokens, [model], [optimizer].
        #[arg(long)]
        config: PathBuf,
        /// Continue the run in `out` from its latest checkpoint, exactly.
        #[arg(long)]
        resume: bool,
        /// Stop with a checkpoint once this many updates are done (resume later).
        #[arg(long, value_name = "STEPS")]
        stop_after: Option<u64>,
    },
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
    Eval(EvalArgs),
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
        /// Where to write the model.
        #[arg(long)]
        out: PathBuf,
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
        #[arg(long)]
        model: Option<PathBuf>,
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
    Train {
        /// A SQL query whose first column is text, or a table / URL with a text column.
        #[arg(long)]
        input: String,
        /// Tokens in the vocabulary, the 256 bytes and EOS included.
        #[arg(long)]
        vocab_size: usize,
        /// A pair merges only if seen at least this often.
        #[arg(long, default_value_t = 2)]
        min_frequency: u64,
        /// Where the tokenizer.json goes: a path or URL.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        memory: MemoryArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ShardsCommand {
    /// Pack the tokenized tables of a mixture (one experimental arm) into shards.
    ///
    /// Each source gets its token budget exactly (CPT) or as near as whole records allow
    /// (SFT), upsampled where it must be; validation_fraction of each source's records is
    /// held out for the validation shards. Writes Arrow IPC shards and manifest.json.
    #[command(
        after_help = "Example:\n  mathlake shards build --mixture jobs/mixtures/test1.toml --to lake/shards/test1"
    )]
    Build {
        /// The mixture file (TOML).
        #[arg(long)]
        mixture: PathBuf,
        /// The shard set's folder: a path or URL.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        memory: MemoryArgs,
    },
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

#[derive(Debug, Clone, clap::Args)]
pub struct TokenizeArgs {
    /// Documents or problems: a lake table, a table's URL, or Parquet files.
    #[arg(long)]
    input: String,
    /// A Hugging Face tokenizer.json: a path or URL.
    #[arg(long)]
    tokenizer: String,
    /// The EOS token [default: the first of <|endoftext|>, </s>, <|end_of_text|>, <eos> in the vocabulary].
    #[arg(long)]
    eos: Option<String>,
    /// Which encoder: auto (the fast byte-level BPE encoder where the file is of its shape,
    /// else Hugging Face tokenizers), fast, or hf. Both give the same ids.
    #[arg(long, value_enum, default_value_t)]
    encoder: tokenize::Engine,
    /// Where the tokenized rows go: a lake table (replaced) or a .parquet URL.
    #[arg(long, value_parser = Target::parse)]
    to: Target,
    /// The layout: text ("{text}") or problem ("Question: {question}\nAnswer:" + " {solution}")
    /// [default: problem if the input has a question column, else text].
    #[arg(long, value_parser = ["text", "problem"], conflicts_with_all = ["prompt", "response"])]
    template: Option<String>,
    /// A custom prompt ({column} placeholders): its tokens are out of the SFT loss.
    #[arg(long, requires = "response")]
    prompt: Option<String>,
    /// A custom response ({column} placeholders): trained on in SFT, followed by EOS.
    #[arg(long)]
    response: Option<String>,
    /// Input columns to copy to the output beside id and source, comma-separated.
    #[arg(long, value_delimiter = ',')]
    keep: Vec<String>,
    #[command(flatten)]
    memory: MemoryArgs,
}

impl TokenizeArgs {
    fn template(&self) -> Result<Option<Template>> {
        Template::choose(self.template.as_deref(), self.prompt.as_deref(), self.response.as_deref())
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct DedupArgs {
    /// Documents: a lake table, a table's URL, or Parquet files.
    #[arg(long)]
    input: String,
    /// Where the unique rows go: a lake table (replaced) or a .parquet URL.
    #[arg(long, value_parser = Target::parse)]
    to: Target,
    /// Where the cluster table (id, cluster_id, kept) goes, one row per member of each cluster.
    #[arg(long, value_parser = Target::parse)]
    clusters: Option<Target>,
    /// The text column.
    #[arg(long, default_value = "text")]
    column: String,
    /// Only exact duplicates (same normalize_text), no MinHash.
    #[arg(long)]
    exact_only: bool,
    /// Words per shingle.
    #[arg(long, default_value_t = MinHashConfig::default().ngram)]
    ngram: usize,
    #[arg(long, default_value_t = MinHashConfig::default().bands)]
    bands: usize,
    /// Signature values per band.
    #[arg(long, default_value_t = MinHashConfig::default().rows)]
    rows: usize,
    #[arg(long, default_value_t = MinHashConfig::default().seed)]
    seed: u64,
    /// Estimated Jaccard similarity a candidate pair needs to merge (0: every candidate).
    #[arg(long, default_value_t = DEFAULT_MIN_SIMILARITY)]
    min_similarity: f64,
    #[command(flatten)]
    memory: MemoryArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DecontamArgs {
    /// Training records: a lake table, a table's URL, or Parquet files.
    #[arg(long)]
    input: String,
    /// Evaluation sets, comma-separated: [NAME=]TABLE-OR-URL.
    #[arg(long, required = true, value_delimiter = ',', value_parser = BenchmarkSpec::parse)]
    benchmarks: Vec<BenchmarkSpec>,
    /// Which benchmark rows are items, as SQL [default: split = 'test' where there is a split column].
    #[arg(long, value_name = "SQL")]
    benchmark_where: Option<String>,
    /// Text columns of a training record, comma-separated [default: question,solution if
    /// there is a question column, else text].
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// Where the kept rows go: a lake table (replaced) or a .parquet URL.
    #[arg(long, value_parser = Target::parse)]
    to: Target,
    /// Where the overlap report goes: a lake table (replaced) or a .parquet URL.
    #[arg(long, value_parser = Target::parse)]
    report: Target,
    /// Words per n-gram.
    #[arg(long, default_value_t = DEFAULT_NGRAM)]
    ngram: usize,
    /// Share of an item's n-grams a record must contain to be removed (0: any overlap).
    #[arg(long, default_value_t = 0.0)]
    min_overlap: f64,
    #[command(flatten)]
    memory: MemoryArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// A run folder (its best checkpoint) or a checkpoint folder.
    #[arg(long)]
    checkpoint: String,
    /// Benchmarks, comma-separated: [NAME=]TABLE-OR-URL; without a name, items are named
    /// by their source column.
    #[arg(long, required = true, value_delimiter = ',', value_parser = BenchmarkSpec::parse)]
    benchmarks: Vec<BenchmarkSpec>,
    /// Which benchmark rows are items, as SQL [default: split = 'test' where there is a split column].
    #[arg(long, value_name = "SQL")]
    benchmark_where: Option<String>,
    /// The folder the report goes to (a path or URL).
    #[arg(long)]
    report: String,
    /// The tokenizer.json [default: the checkpoint's own].
    #[arg(long)]
    tokenizer: Option<String>,
    /// The EOS token [default: the usual names, as tokenize finds them].
    #[arg(long)]
    eos: Option<String>,
    /// Worked exemplars before each question; 0 for zero-shot.
    #[arg(long, default_value_t = eval::DEFAULT_SHOTS)]
    shots: usize,
    /// The most tokens generated per item.
    #[arg(long, default_value_t = eval::DEFAULT_MAX_NEW_TOKENS)]
    max_new_tokens: usize,
    /// Generation stops at this text, cut there (repeatable) [default: "\nQuestion:"].
    #[arg(long, value_name = "TEXT")]
    stop: Vec<String>,
    /// Generate for the first N items (by id) of each benchmark; the loss covers all.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// The longest sequence given to the model [default: its max_position_embeddings].
    #[arg(long, value_name = "TOKENS")]
    context: Option<usize>,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    device: DeviceKind,
    #[command(flatten)]
    memory: MemoryArgs,
}

impl EvalArgs {
    fn options(&self) -> EvalOptions {
        EvalOptions {
            checkpoint: self.checkpoint.clone(),
            tokenizer: self.tokenizer.clone(),
            eos: self.eos.clone(),
            benchmarks: self.benchmarks.clone(),
            benchmark_where: self.benchmark_where.clone(),
            shots: self.shots,
            max_new_tokens: self.max_new_tokens,
            stop: if self.stop.is_empty() { eval::default_stop() } else { self.stop.clone() },
            limit: self.limit,
            context: self.context,
            report: self.report.clone(),
            device: self.device,
            session: self.memory.session(),
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct MemoryArgs {
    /// Memory DataFusion's operators may hold before they spill (e.g. 512M, 4G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_limit: Option<usize>,
    /// Where spill files go [default: the system temp folder].
    #[arg(long, value_name = "DIR")]
    spill_dir: Option<PathBuf>,
}

impl MemoryArgs {
    fn session(&self) -> SessionOptions {
        SessionOptions { memory_limit: self.memory_limit, spill_dir: self.spill_dir.clone() }
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

impl Cli {
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
    }

    fn open_lake(&self, job_lake: Option<&str>) -> Result<Lake> {
        Lake::open(self.lake.as_deref().or(job_lake).unwrap_or(DEFAULT_LAKE))
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let threads = cli.threads();
    match &cli.command {
        Command::Ingest(spec) if spec.list_presets => {
            for preset in PRESETS {
                println!("{:<12} {:<9} {}", preset.name, preset.target().table(), preset.about);
            }
            Ok(())
        }
        Command::Ingest(spec) => {
            let lake = cli.open_lake(None)?;
            let options = spec.to_options(threads)?;
            let bar = terminal::byte_bar("ingest", cli.quiet);
            let summary = ingest::ingest(&lake, &options, &bar).await;
            bar.finish_and_clear();
            let summary = summary?;
            if cli.json { print_json(&summary) } else { print_ingest(&summary) }
        }
        Command::Tables => {
            let lake = cli.open_lake(None)?;
            let tables = query::tables(&lake).await?;
            if cli.json {
                return print_json(&tables);
            }
            if tables.is_empty() {
                println!("no tables in {} yet; `mathlake ingest` fills one", lake.root());
            }
            for t in &tables {
                println!(
                    "{:<16} {:>12} rows {:>5} files {:>10}  v{} {} {}",
                    t.name,
                    terminal::count(t.rows),
                    t.files,
                    terminal::bytes(t.bytes),
                    t.version,
                    t.operation,
                    t.committed_at
                );
            }
            Ok(())
        }
        Command::Inspect { target, rows, max_width } => {
            let lake = cli.open_lake(None)?;
            let inspection = query::inspect(&lake, target, *rows).await?;
            if cli.json {
                return print_json(&inspection);
            }
            print_inspection(&inspection, *rows, *max_width)
        }
        Command::Query { sql, limit, max_width, memory_limit } => {
            let lake = cli.open_lake(None)?;
            let options = SessionOptions { memory_limit: *memory_limit, spill_dir: None };
            let (_, batches) = query::query(&lake, sql, &options).await?;
            if cli.json {
                let mut out = std::io::stdout().lock();
                let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
                for batch in &batches {
                    writer.write(batch)?;
                }
                writer.finish()?;
                return Ok(());
            }
            print!("{}", terminal::table(&batches, *limit, *max_width)?);
            Ok(())
        }
        Command::Sql { file, set, memory_limit, spill_dir, show, max_width } => {
            let lake = cli.open_lake(None)?;
            let sql = std::fs::read_to_string(file)
                .map_err(|e| Error::user(format!("cannot read {}: {e}", file.display())))?;
            let options = ScriptOptions {
                set: set.clone(),
                session: SessionOptions { memory_limit: *memory_limit, spill_dir: spill_dir.clone() },
                show_rows: *show,
            };
            let bar = terminal::row_spinner("sql", cli.quiet);
            let reports = script::run(&lake, &file.display().to_string(), &sql, &options, &bar).await;
            bar.finish_and_clear();
            let reports = reports?;
            if cli.json {
                return print_json(&serde_json::json!({ "statements": reports, "peak_rss_bytes": peak_rss_bytes() }));
            }
            for r in &reports {
                print_statement(r, *show, *max_width)?;
            }
            Ok(())
        }
        Command::Functions => {
            let functions = functions::library();
            if cli.json {
                let list: Vec<_> = functions
                    .iter()
                    .map(|f| {
                        serde_json::json!({
                            "name": f.name(), "section": f.doc().doc_section.label,
                            "syntax": f.doc().syntax_example, "description": f.doc().description,
                        })
                    })
                    .collect();
                return print_json(&list);
            }
            let mut section = "";
            for f in &functions {
                if f.doc().doc_section.label != section {
                    section = f.doc().doc_section.label;
                    println!("{section}:");
                }
                println!("  {:<40} {}", f.doc().syntax_example, f.doc().description);
            }
            Ok(())
        }
        Command::Classifier(ClassifierCommand::Train { positive, negative, out, holdout, epochs, bits }) => {
            let lake = cli.open_lake(None)?;
            let options = TrainOptions { holdout: *holdout, epochs: *epochs, bits: *bits, ..TrainOptions::default() };
            let started = std::time::Instant::now();
            let model = curate::train_classifier(&lake, positive, negative, options).await?;
            model.save(out)?;
            if cli.json {
                return print_json(&model.info);
            }
            let t = &model.info.training;
            println!(
                "trained on {} math and {} other texts in {:.1}s; wrote {}",
                terminal::count(t.positive as u64),
                terminal::count(t.negative as u64),
                started.elapsed().as_secs_f64(),
                out.display()
            );
            print_metrics("held out", &model.info.heldout);
            Ok(())
        }
        Command::Classifier(ClassifierCommand::Eval { model, positive, negative }) => {
            let lake = cli.open_lake(None)?;
            let loaded;
            let model = match model {
                Some(path) => {
                    loaded = MathClassifier::load(path)?;
                    &loaded
                }
                None => MathClassifier::builtin(),
            };
            let metrics = curate::evaluate_classifier(&lake, model, positive, negative).await?;
            if cli.json {
                return print_json(&metrics);
            }
            print_metrics("evaluated", &metrics);
            Ok(())
        }
        Command::Dedup(args) => {
            let lake = cli.open_lake(None)?;
            let options = DedupOptions {
                input: args.input.clone(),
                to: args.to.clone(),
                clusters: args.clusters.clone(),
                column: args.column.clone(),
                near: (!args.exact_only).then_some(MinHashConfig {
                    ngram: args.ngram,
                    bands: args.bands,
                    rows: args.rows,
                    seed: args.seed,
                }),
                min_similarity: args.min_similarity,
                session: args.memory.session(),
            };
            let bar = terminal::row_spinner("dedup", cli.quiet);
            let report = dedup::dedup(&lake, &options, &bar).await;
            bar.finish_and_clear();
            let report = report?;
            if cli.json {
                return print_json(&serde_json::json!({ "dedup": report, "peak_rss_bytes": peak_rss_bytes() }));
            }
            print_dedup(&report);
            Ok(())
        }
        Command::Decontaminate(args) => {
            let lake = cli.open_lake(None)?;
            let options = DecontamOptions {
                input: args.input.clone(),
                benchmarks: args.benchmarks.clone(),
                benchmark_where: args.benchmark_where.clone(),
                columns: args.columns.clone(),
                to: args.to.clone(),
                report: args.report.clone(),
                ngram: args.ngram,
                min_overlap: args.min_overlap,
                session: args.memory.session(),
            };
            let bar = terminal::row_spinner("decontaminate", cli.quiet);
            let report = decontaminate::decontaminate(&lake, &options, &bar).await;
            bar.finish_and_clear();
            let report = report?;
            if cli.json {
                return print_json(&serde_json::json!({ "decontaminate": report, "peak_rss_bytes": peak_rss_bytes() }));
            }
            print_decontamination(&report);
            Ok(())
        }
        Command::Tokenize(args) => {
            let lake = cli.open_lake(None)?;
            let options = TokenizeOptions {
                input: args.input.clone(),
                to: args.to.clone(),
                tokenizer: args.tokenizer.clone(),
                eos: args.eos.clone(),
                engine: args.encoder,
                template: args.template()?,
                keep: args.keep.clone(),
                threads,
                session: args.memory.session(),
            };
            let bar = terminal::row_spinner("tokenize", cli.quiet);
            let report = tokenize::tokenize(&lake, &options, &bar).await;
            bar.finish_and_clear();
            let report = report?;
            if cli.json {
                return print_json(&serde_json::json!({ "tokenize": report, "peak_rss_bytes": peak_rss_bytes() }));
            }
            print_tokenize(&report);
            Ok(())
        }
        Command::Tokenizer(TokenizerCommand::Train { input, vocab_size, min_frequency, to, memory }) => {
            let lake = cli.open_lake(None)?;
            let options = TrainTokenizerOptions {
                input: input.clone(),
                vocab_size: *vocab_size,
                min_frequency: *min_frequency,
                to: to.clone(),
                session: memory.session(),
            };
            let bar = terminal::row_spinner("tokenizer train", cli.quiet);
            let report = tokenize::train_tokenizer(&lake, &options, &bar).await;
            bar.finish_and_clear();
            let report = report?;
            if cli.json {
                return print_json(&report);
            }
            print_trained_tokenizer(&report);
            Ok(())
        }
        Command::Shards(ShardsCommand::Build { mixture, to, memory }) => {
            let lake = cli.open_lake(None)?;
            let options = BuildOptions { mixture: mixture.clone(), to: to.clone(), session: memory.session() };
            let bar = terminal::row_spinner("shards build", cli.quiet);
            let report = shards::build(&lake, &options, &bar).await;
            bar.finish_and_clear();
            let report = report?;
            if cli.json {
                return print_json(&serde_json::json!({ "shards": report, "peak_rss_bytes": peak_rss_bytes() }));
            }
            print_shards(&report);
            Ok(())
        }
        Command::Shards(ShardsCommand::Inspect { url, rows, tokenizer, max_width }) => {
            let inspection = shards::inspect(url, *rows, tokenizer.as_deref()).await?;
            if cli.json {
                return print_json(&inspection);
            }
            print_shard_manifest(&inspection.manifest, url);
            for (i, sample) in inspection.samples.iter().enumerate() {
                let cut = if *max_width > 0 && sample.chars().count() > *max_width {
                    format!("{}…", sample.chars().take(*max_width).collect::<String>())
                } else {
                    sample.clone()
                };
                println!("\n-- train row {i} --\n{cut}");
            }
            Ok(())
        }
        Command::Train { config, resume, stop_after } => {
            let config = TrainConfig::load(config)?;
            let options = train::TrainOptions { resume: *resume, stop_after: *stop_after, quiet: cli.quiet };
            let report = train::train(&config, options).await?;
            if cli.json {
                return print_json(&report);
            }
            print_train(&report);
            Ok(())
        }
        Command::Eval(args) => {
            let lake = cli.open_lake(None)?;
            let bar = terminal::item_bar("eval", cli.quiet);
            let report = eval::eval(&lake, &args.options(), &bar).await;
            bar.finish_and_clear();
            let report = report?;
            if cli.json {
                return print_json(&report);
            }
            print_eval(&report);
            Ok(())
        }
        Command::Run { job, dry_run, force, until } => {
            let mut loaded = Job::load(job)?;
            if let Some(last) = until {
                loaded.until(last)?;
            }
            let lake = cli.open_lake(loaded.lake.as_deref())?;
            let log_location = RunLog::location(&lake, &loaded.label);
            if *dry_run {
                let log = RunLog::read(&log_location, &loaded.label).await?;
                let decisions = loaded.decide(&lake, threads, *force, &log).await?;
                if cli.json {
                    return print_json(&decisions);
                }
                println!("lake: {}\nrun log: {}", lake.root(), log_location.url());
                for d in decisions {
                    let verdict = match &d.reason {
                        Some(reason) => format!("runs ({reason})"),
                        None => "skipped (its last run stands)".into(),
                    };
                    println!("stage {}: {verdict}\n{}", d.name, serde_json::to_string_pretty(&d.settings)?);
                }
                return Ok(());
            }
            let quiet = cli.quiet;
            let json = cli.json;
            let reports = loaded
                .run(
                    &lake,
                    threads,
                    quiet,
                    *force,
                    &log_location,
                    |name, unit| match unit {
                        ProgressUnit::Bytes => terminal::byte_bar(name, quiet),
                        ProgressUnit::Rows => terminal::row_spinner(name, quiet),
                        ProgressUnit::Items => terminal::item_bar(name, quiet),
                    },
                    |report| {
                        if json {
                            return;
                        }
                        match report {
                            StageReport::Ingest { name, summary } => {
                                println!("== stage {name}");
                                let _ = print_ingest(summary);
                            }
                            StageReport::Sql { name, statements, .. } => {
                                println!("== stage {name}");
                                for statement in statements {
                                    let _ = print_statement(statement, 50, 60);
                                }
                            }
                            StageReport::Dedup { name, report } => {
                                println!("== stage {name}");
                                print_dedup(report);
                            }
                            StageReport::Decontaminate { name, report } => {
                                println!("== stage {name}");
                                print_decontamination(report);
                            }
                            StageReport::Tokenizer { name, report } => {
                                println!("== stage {name}");
                                print_trained_tokenizer(report);
                            }
                            StageReport::Tokenize { name, report } => {
                                println!("== stage {name}");
                                print_tokenize(report);
                            }
                            StageReport::Shards { name, report } => {
                                println!("== stage {name}");
                                print_shards(report);
                            }
                            StageReport::Train { name, report } => {
                                println!("== stage {name}");
                                print_train(report);
                            }
                            StageReport::Eval { name, report } => {
                                println!("== stage {name}");
                                print_eval(report);
                            }
                            StageReport::Skipped { name, since } => {
                                println!(
                                    "== stage {name}: skipped, unchanged since its run of {since} (--force reruns)"
                                );
                            }
                        }
                    },
                )
                .await?;
            if json {
                return print_json(&reports);
            }
            let skipped = reports.iter().filter(|r| matches!(r, StageReport::Skipped { .. })).count();
            println!(
                "job {} done: {} stages run, {skipped} skipped as unchanged; run log {}",
                job.display(),
                reports.len() - skipped,
                log_location.url()
            );
            for (what, url) in loaded.results(&lake)? {
                println!("{what}: {url}");
            }
            println!("`mathlake tables --lake {}` lists the tables", lake.root());
            Ok(())
        }
    }
}

fn print_dedup(report: &DedupReport) {
    println!(
        "{} rows -> {} kept in {}, {} removed as duplicates (clusters: {}; candidate pairs: {}, turned down by verification: {}) in {:.1} s",
        terminal::count(report.input_rows),
        terminal::count(report.output_rows),
        report.to,
        terminal::count(report.removed),
        terminal::count(report.clusters),
        terminal::count(report.candidate_pairs),
        terminal::count(report.rejected_pairs),
        report.seconds
    );
    if let Some(clusters) = &report.clusters_to {
        println!("clusters: {clusters}");
    }
}

fn print_shards(report: &BuildReport) {
    print_shard_manifest(&report.manifest, &report.to);
    println!("built in {:.1} s", report.seconds);
}

/// The manifest in short, and each source's share of the training tokens, asked for and got.
fn print_shard_manifest(m: &Manifest, url: &str) {
    let mode = match m.mixture.mode {
        Mode::Cpt => "cpt",
        Mode::Sft => "sft",
    };
    println!(
        "{url}: mixture {} ({mode}, seed {}, sequence length {}), tokenizer {} (EOS {}), {}-byte tokens",
        m.mixture.name, m.mixture.seed, m.mixture.sequence_length, m.tokenizer.source, m.tokenizer.eos, m.token_width
    );
    for (name, split) in [("train", &m.train), ("validation", &m.validation)] {
        println!(
            "{name}: {} rows, {} tokens ({} in the loss) in {} shards",
            terminal::count(split.rows),
            terminal::count(split.tokens),
            terminal::count(split.loss_tokens),
            split.shards.len()
        );
    }
    let requested: u64 = m.sources.iter().map(|s| s.train.requested_tokens).sum::<u64>().max(1);
    let emitted: u64 = m.sources.iter().map(|s| s.train.emitted_tokens).sum::<u64>().max(1);
    println!(
        "{:<16} {:>12} {:>12} {:>9} {:>9} {:>7} {:>12}",
        "source", "requested", "emitted", "share", "asked", "epochs", "validation"
    );
    for s in &m.sources {
        println!(
            "{:<16} {:>12} {:>12} {:>8.2}% {:>8.2}% {:>7.2} {:>12}",
            s.name,
            terminal::count(s.train.requested_tokens),
            terminal::count(s.train.emitted_tokens),
            100.0 * s.train.emitted_tokens as f64 / emitted as f64,
            100.0 * s.train.requested_tokens as f64 / requested as f64,
            s.train.epochs,
            terminal::count(s.validation.emitted_tokens)
        );
    }
}

fn print_trained_tokenizer(report: &TrainTokenizerReport) {
    println!(
        "trained a byte-level BPE of {} tokens (EOS {} = {}) on {} texts ({}) in {:.1} s: {}",
        terminal::count(report.tokenizer.vocab_size as u64),
        report.tokenizer.eos,
        report.tokenizer.eos_id,
        terminal::count(report.texts),
        terminal::bytes(report.text_bytes),
        report.seconds,
        report.to
    );
}

fn print_tokenize(report: &TokenizeReport) {
    let per_core = report.text_bytes as f64 / report.seconds.max(1e-9) / report.threads as f64;
    println!(
        "{} rows ({}) -> {} rows, {} tokens ({} in the SFT loss) in {}; {} skipped for a null in {}; {:.1} s, {}/s per thread ({} encoder)",
        terminal::count(report.input_rows),
        terminal::bytes(report.text_bytes),
        terminal::count(report.output_rows),
        terminal::count(report.tokens),
        terminal::count(report.loss_tokens),
        report.to,
        terminal::count(report.skipped_null),
        report.template.columns().join(", "),
        report.seconds,
        terminal::bytes(per_core as u64),
        if report.encoder == tokenize::Engine::Fast { "fast" } else { "Hugging Face" },
    );
}

fn print_eval(report: &EvalReport) {
    println!("{:<12} {:>6} {:>10} {:>10} {:>9}", "benchmark", "items", "loss", "generated", "accuracy");
    for g in report.overall() {
        println!(
            "{:<12} {:>6} {:>10} {:>10} {:>9}",
            g.benchmark,
            g.items,
            g.loss.map_or("-".into(), |l| format!("{l:.4}")),
            g.generated,
            g.accuracy.map_or("-".into(), |a| format!("{:.1}%", 100.0 * a)),
        );
    }
    println!(
        "{:.1} s; per level, subject and difficulty in {}/report.md, every item in {}/items.jsonl",
        report.timings.seconds, report.report, report.report
    );
}

fn print_decontamination(report: &DecontamReport) {
    println!(
        "{} rows ({}) compared on {}-grams of {}: {} removed, {} kept in {}; overlaps in {} ({:.1} s)",
        terminal::count(report.input_rows),
        terminal::bytes(report.text_bytes),
        report.ngram,
        report.columns.join(", "),
        terminal::count(report.removed),
        terminal::count(report.output_rows),
        report.to,
        report.report,
        report.seconds
    );
    println!(
        "{:<16} {:>8} {:>10} {:>16} {:>16}",
        "benchmark", "items", "items hit", "records flagged", "records removed"
    );
    for b in &report.benchmarks {
        println!(
            "{:<16} {:>8} {:>10} {:>16} {:>16}",
            b.name,
            terminal::count(b.items),
            terminal::count(b.items_hit),
            terminal::count(b.records_flagged),
            terminal::count(b.records_removed)
        );
    }
}

fn print_statement(r: &StatementReport, show: usize, max_width: usize) -> Result<()> {
    let target = r.target.as_deref().map(|t| format!(" -> {t}")).unwrap_or_default();
    println!(
        "[{}] line {:<4} {:<24} {:>12} rows  {:.2}s",
        r.index,
        r.line,
        format!("{}{target}", r.kind),
        terminal::count(r.rows),
        r.seconds
    );
    if let Some((_, batches)) = &r.shown
        && r.rows > 0
        && show > 0
    {
        print!("{}", terminal::table(batches, show, max_width)?);
    }
    Ok(())
}

/// The process's peak resident memory (Linux `VmHWM`), for reports on memory limits.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn print_metrics(label: &str, m: &classifier::Metrics) {
    println!(
        "{label}: {} math, {} other: AUC {:.4}, precision {:.4}, recall {:.4}, accuracy {:.4} (threshold 0.5)",
        terminal::count(m.examples.positive as u64),
        terminal::count(m.examples.negative as u64),
        m.auc,
        m.precision,
        m.recall,
        m.accuracy
    );
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn print_ingest(s: &IngestSummary) -> Result<()> {
    use terminal::{bytes, count};
    let outcome = match s.version {
        Some(v) => format!("committed version {v} of `{}`", s.table),
        None => format!("nothing new: `{}` is unchanged", s.table),
    };
    println!("{outcome} in {}", s.lake);
    println!(
        "  read {} = written {} + duplicates {} + quarantined {}",
        count(s.counts.read),
        count(s.counts.written),
        count(s.counts.duplicates),
        count(s.counts.quarantined)
    );
    let rate = s.input_bytes as f64 / s.seconds.max(1e-9) / 1e6;
    println!(
        "  {} in, {} of text written, {:.1}s ({rate:.1} MB/s)",
        bytes(s.input_bytes),
        bytes(s.text_bytes),
        s.seconds
    );
    if s.counts.read == 0 {
        eprintln!("warning: the inputs held no records (empty files, or only blank lines)");
    }
    if s.inputs.len() > 1 {
        for input in &s.inputs {
            let c = &input.counts;
            println!(
                "  {:>9} read {:>9} written {:>7} dup {:>7} quarantined  {}",
                count(c.read),
                count(c.written),
                count(c.duplicates),
                count(c.quarantined),
                input.input
            );
        }
    }
    if !s.reasons.is_empty() {
        let reasons: Vec<_> = s.reasons.iter().map(|(r, n)| format!("{r} {}", count(*n))).collect();
        println!("  quarantine: {}", reasons.join(", "));
        for e in &s.examples {
            println!("    {}:{}: {}: {}", e.input, e.position, e.reason, e.detail);
        }
        println!("  see all: mathlake query \"SELECT input, position, reason, detail FROM quarantine\"");
    }
    Ok(())
}

fn print_inspection(i: &query::Inspection, rows: usize, max_width: usize) -> Result<()> {
    println!("{}", i.target);
    match (i.version, i.files, i.bytes) {
        (Some(v), Some(f), Some(b)) => {
            println!("  version {v}, {} rows in {f} files, {}", terminal::count(i.rows), terminal::bytes(b))
        }
        _ => println!("  {} rows", terminal::count(i.rows)),
    }
    println!("schema:");
    for field in i.schema.fields() {
        let null = if field.is_nullable() { "" } else { " not null" };
        println!("  {:<14} {}{null}", field.name(), field.data_type());
    }
    println!("first {rows} rows:");
    print!("{}", terminal::table(&i.sample, rows, max_width)?);
    Ok(())
}

/// Prints an error with its hint on its own line, as the rest of the CLI does.
pub fn report_error(error: &Error) {
    eprintln!("error: {error}");
    if let Some(hint) = error.hint_text() {
        for line in hint.lines() {
            eprintln!("  hint: {line}");
        }
    }
}

fn print_train(r: &TrainReport) {
    println!(
        "trained {} parameters for {}/{} steps ({} tokens) in {:.0} s, {} tokens/s",
        terminal::count(r.parameters as u64),
        r.steps_done,
        r.total_steps,
        terminal::count(r.tokens_seen),
        r.seconds,
        terminal::count(r.tokens_per_s as u64)
    );
    println!("train loss {:.4} (last steps)", r.train_loss);
    if let Some(v) = r.validation_loss {
        println!("validation loss {v:.4}, unigram entropy of the validation tokens {:.4}", r.unigram_entropy);
    }
    if let Some(b) = r.best {
        println!("best checkpoint: step {} (validation loss {:.4})", b.step, b.validation_loss);
    }
    println!("run folder: {} ({} and {} inside)", r.out, train::LOG, train::PLOT);
}
