//! mathlake: a streaming data-lake processor for math pre-training corpora.
//!
//! ```text
//! inputs (JSONL/.gz/.zst, Parquet, .txt/.tex, WARC/WET/HTML; local or s3://)
//!   -> ingest      -> lake tables: documents, problems, quarantine     [ingest]
//!   -> curate SQL  -> quality signals, math score, answers, steps      [curate]
//!   -> dedup       -> near-duplicates and benchmark overlaps removed   [dedup, decontaminate]
//!   -> synthesize  -> verified problem-solving records, with lineage   [synthesize]
//!   -> tokenize    -> tokens and loss mask per record                  [tokenize]
//!   -> mix + pack  -> training shards, manifest and loader             [shards]
//!   -> train, eval -> checkpoints, held-out loss, graded answers       [train, eval]
//!   -> report      -> arms over seeds: means, intervals, findings      [experiment]
//! ```
//!
//! Dependencies point one way, from the bottom up:
//! - [`text`]: the text algorithms every stage shares (normalization, words, answers and
//!   steps, quality signals, the math classifier, MinHash, web pages to text with their
//!   formulas), and [`random`], the seeded
//!   streams behind every shuffle and the model's initial weights;
//! - [`location`]: a path or URL (a local folder, S3 or memory) as an object store and a
//!   path in it, and reading and writing whole objects there;
//! - [`functions`]: those algorithms as SQL functions (a model named by URL read through
//!   [`location`]);
//! - [`lake`]: a root location holding tables committed atomically
//!   through their logs, and the DataFusion session over them with the functions;
//! - the stages, each with its settings type: [`ingest`], [`curate`] (SQL files),
//!   [`dedup`], [`decontaminate`], [`synthesize`], [`tokenize`], [`shards`], [`train`],
//!   [`eval`], [`experiment`] (arms over seeds, and what their differences show), and
//!   [`query`] to look at the result;
//! - [`cluster`] (feature `distributed`), the Ballista scheduler and executor processes
//!   with every function above in them;
//! - [`job`], which chains stages from a TOML file; [`cli`], the thin command line over
//!   all of it, and [`terminal`], how results and progress look there (the trainer's
//!   step bar too). Nothing below [`cli`] uses it (a unit test here checks).

pub mod cli;
#[cfg(feature = "distributed")]
pub mod cluster;
pub mod curate;
pub mod decontaminate;
pub mod dedup;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod functions;
pub mod ingest;
pub mod job;
pub mod lake;
pub mod location;
pub mod malloc;
pub mod plot;
pub mod query;
pub mod random;
pub mod serve;
pub mod shards;
mod suggest;
pub mod synthesize;
pub mod terminal;
pub mod text;
pub mod tokenize;
pub mod train;

pub use error::{Error, Result};

#[cfg(test)]
mod tests {
    /// Dependencies point one way: no module below the command line uses it (src/main.rs,
    /// its caller, reaches it as `mathlake::cli`).
    #[test]
    fn nothing_below_the_command_line_uses_it() {
        let needle = concat!("crate", "::cli");
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut folders = vec![src.clone()];
        let mut offenders = Vec::new();
        let mut files = 0;
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if path != src.join("cli") {
                        folders.push(path);
                    }
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files += 1;
                    if std::fs::read_to_string(&path).unwrap().contains(needle) {
                        offenders.push(path.display().to_string());
                    }
                }
            }
        }
        assert!(files > 50, "read only {files} files under {}", src.display());
        assert!(offenders.is_empty(), "{offenders:?} use {needle}: move what they need below src/cli");
    }
}
