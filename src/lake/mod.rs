//! The lake: one root location (a local folder, `s3://bucket/prefix` or `memory://`)
//! holding tables. Every stage reads and writes through this module, so the same job
//! runs on a laptop folder and on S3; no stage is imported from here.

pub mod engine;
pub mod incremental;
mod output;
mod parquet_reader;
pub mod schema;
mod session;
mod source;
mod table;
pub mod vacuum;
mod writer;

pub use crate::location::{Location, block_on_own_thread, get_optional, put, put_if_absent};
pub use output::{Output, Target, Written, write_from_engine};
pub use parquet_reader::ParquetReader;
pub use schema::TableSchema;
pub use session::{
    SessionOptions, TempFile, drain, parse_size, register_location, register_table, runtime, scanning_version, session,
    versions_read,
};
pub use source::{literal, quote, register_source, require_text_columns};
pub use table::{Commit, CommitMode, DataFile, SourceObject, Table, Version, run_id, validate_name};
pub use writer::{FileLimits, ParquetFileWriter, TableWriter};

use futures::TryStreamExt;
use object_store::ObjectStore;

use crate::error::{Context, Error, Result};

/// The default lake: a folder in the current directory.
pub const DEFAULT_LAKE: &str = "./lake";

#[derive(Debug, Clone)]
pub struct Lake {
    root: Location,
}

impl Lake {
    pub fn open(url: &str) -> Result<Lake> {
        let root = Location::parse(url)?;
        root.store()?;
        Ok(Lake { root })
    }

    pub fn root(&self) -> &Location {
        &self.root
    }

    /// `{lake}` in a setting's path is the lake's URL, so the files a stage makes beside
    /// its tables (a tokenizer, shard sets, runs, reports) go wherever `--lake` points.
    pub fn expand(&self, path: &str) -> String {
        path.replace("{lake}", &self.root.url())
    }

    pub fn table(&self, name: &str) -> Result<Table> {
        Table::new(&self.root, name)
    }

    /// Names of the tables that have at least one committed version, sorted.
    /// A "table not found" error gets the list of tables that exist (or how to make one);
    /// other errors pass through.
    pub async fn explain_missing_table(&self, error: Error) -> Error {
        let text = error.to_string();
        if !text.contains("not found") {
            return error;
        }
        let names = self.table_names().await.unwrap_or_default();
        let hint = if names.is_empty() {
            format!("the lake at {} has no tables yet: `mathlake ingest` fills one", self.root())
        } else {
            format!("tables in {}: {}", self.root(), names.join(", "))
        };
        Error::user(text).hint(hint)
    }

    pub async fn table_names(&self) -> Result<Vec<String>> {
        let store = self.root.store()?;
        let listing = store
            .list_with_delimiter(Some(self.root.path()))
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => {
                    Ok(object_store::ListResult { common_prefixes: vec![], objects: vec![] })
                }
                e => Err(e),
            })
            .with_context(|| format!("listing the lake at {}", self.root))?;
        let mut names = Vec::new();
        for prefix in listing.common_prefixes {
            let Some(name) = prefix.filename() else { continue };
            if validate_name(name).is_err() {
                continue;
            }
            let log = prefix.clone().join("_log");
            let first: Option<_> = store.list(Some(&log)).try_next().await?;
            if first.is_some() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }
}
