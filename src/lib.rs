//! mathlake: a streaming data-lake processor for math pre-training corpora.
//!
//! ```text
//! inputs (JSONL/.gz/.zst, Parquet, .txt/.tex; local or s3://)
//!   -> ingest      -> lake tables: documents, problems, quarantine     [ingest]
//!   -> curate SQL  -> quality signals, math score, answers, steps      [curate]
//!   -> dedup       -> near-duplicates and benchmark overlaps removed   [dedup, decontaminate]
//!   -> tokenize    -> tokens and loss mask per record                  [tokenize]
//!   -> mix + pack  -> training shards, manifest and loader             [shards]
//!   -> train, eval (planned)
//! ```
//!
//! Every stage reads and writes lake locations through [`lake`] (a local folder, S3 or
//! memory) and commits atomically through a table's log; [`query`] looks at the result
//! with DataFusion SQL; [`curate`] runs SQL files with the function library; [`job`]
//! chains stages from a TOML file; [`cli`] is the thin command line over all of it, and
//! [`terminal`] how results and progress look there (also for the trainer's own bar).
//! [`text`] holds the normalization and problem analysis every stage shares.

pub mod cli;
pub mod curate;
pub mod decontaminate;
pub mod dedup;
pub mod error;
pub mod eval;
pub mod ingest;
pub mod job;
pub mod lake;
pub mod malloc;
pub mod query;
pub mod shards;
mod suggest;
pub mod terminal;
pub mod text;
pub mod tokenize;
pub mod train;

pub use error::{Error, Result};
