//! mathlake: a streaming data-lake processor for math pre-training corpora.
//!
//! ```text
//! inputs (JSONL/.gz/.zst, Parquet, .txt/.tex; local or s3://)
//!   -> ingest      -> lake tables: documents, problems, quarantine     [ingest]
//!   -> curate SQL  -> quality signals, math score, answers, steps      [curate]
//!   -> dedup       -> near-duplicates and benchmark overlaps removed   [dedup, decontaminate]
//!   -> tokenize    -> tokens and loss mask per record                  [tokenize]
//!   -> mix + pack  -> training shards, manifest and loader             [shards]
//!   -> train, eval -> checkpoints, held-out loss, graded answers       [train, eval]
//! ```
//!
//! Dependencies point one way, from the bottom up:
//! - [`text`]: the text algorithms every stage shares (normalization, words, answers and
//!   steps, quality signals, the math classifier, MinHash), and [`random`], the seeded
//!   streams behind every shuffle and the model's initial weights;
//! - [`functions`]: those algorithms as SQL functions;
//! - [`lake`]: locations (a local folder, S3 or memory), tables committed atomically
//!   through their logs, and the DataFusion session over them with the functions;
//! - the stages, each with its settings type: [`ingest`], [`curate`] (SQL files),
//!   [`dedup`], [`decontaminate`], [`tokenize`], [`shards`], [`train`], [`eval`], and
//!   [`query`] to look at the result;
//! - [`job`], which chains stages from a TOML file; [`cli`], the thin command line over
//!   all of it, and [`terminal`], how results and progress look there (the trainer's
//!   step bar too). Nothing below [`cli`] uses it (`.ci/run` checks).

pub mod cli;
pub mod curate;
pub mod decontaminate;
pub mod dedup;
pub mod error;
pub mod eval;
pub mod functions;
pub mod ingest;
pub mod job;
pub mod lake;
pub mod malloc;
pub mod query;
pub mod random;
pub mod shards;
mod suggest;
pub mod terminal;
pub mod text;
pub mod tokenize;
pub mod train;

pub use error::{Error, Result};
