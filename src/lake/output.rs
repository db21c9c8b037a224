//! Where a stage writes its rows: a lake table, given by its bare name, whose contents the
//! run replaces in one commit; or one Parquet object at a URL, written through a
//! multipart upload. Either way readers see all of the output or none of it.

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::{DataFrame, DataFrameWriteOptions};
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use futures::TryStreamExt;

use super::{
    Commit, CommitMode, DataFile, FileLimits, Lake, Location, ParquetFileWriter, ParquetReader, Table, TableSchema,
    TableWriter, Version, run_id, validate_name,
};
use crate::error::{Error, Result};

/// A place to write, as a user names it.
#[derive(Debug, Clone)]
pub enum Target {
    /// A lake table: `math_documents`.
    Table(String),
    /// One Parquet object: `out/x.parquet`, `s3://bucket/x.parquet`.
    File(Location),
}

impl Target {
    pub fn parse(text: &str) -> Result<Target> {
        if validate_name(text).is_ok() {
            Ok(Target::Table(text.to_string()))
        } else if text.ends_with(".parquet") {
            Ok(Target::File(Location::parse(text)?))
        } else {
            Err(Error::user(format!("cannot write to `{text}`")).hint(
                "name a lake table (a bare name such as 'math_documents') or one Parquet file ('out/x.parquet', 's3://bucket/x.parquet')",
            ))
        }
    }

    /// The table name or the file's URL.
    pub fn describe(&self) -> String {
        match self {
            Target::Table(name) => name.clone(),
            Target::File(location) => location.url(),
        }
    }
}

/// Streams batches to a [`Target`]; nothing is visible until [`Output::finish`].
pub struct Output {
    sink: Sink,
    rows: u64,
}

// Boxed: each writer holds a row group's buffers and is hundreds of bytes.
enum Sink {
    Table(Box<TableSink>),
    File(Box<ParquetFileWriter>),
}

struct TableSink {
    table: Table,
    mode: CommitMode,
    base: Option<Version>,
    schema: TableSchema,
    writer: TableWriter,
    run_id: String,
    started: DateTime<Utc>,
}

/// What an [`Output`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub rows: u64,
    /// The table's new version; `None` for a file.
    pub version: Option<Version>,
}

impl Output {
    /// An output that replaces a table's rows (or writes a file).
    pub async fn open(lake: &Lake, target: &Target, schema: SchemaRef) -> Result<Output> {
        Output::open_with(lake, target, schema, CommitMode::Replace).await
    }

    /// `CommitMode::Append`: the rows join the table's (an incremental update).
    pub async fn open_with(lake: &Lake, target: &Target, schema: SchemaRef, mode: CommitMode) -> Result<Output> {
        let sink = match target {
            Target::Table(name) => {
                let started = Utc::now();
                let table = lake.table(name)?;
                let base = table.latest().await?;
                let table_schema = TableSchema::from_arrow(name, &schema)?;
                let run_id = run_id(started);
                let writer = TableWriter::new(table.clone(), &run_id, schema, FileLimits::default());
                Sink::Table(Box::new(TableSink { table, mode, base, schema: table_schema, writer, run_id, started }))
            }
            Target::File(location) => Sink::File(Box::new(ParquetFileWriter::new(location, schema)?)),
        };
        Ok(Output { sink, rows: 0 })
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        match &mut self.sink {
            Sink::Table(sink) => sink.writer.write(batch).await,
            Sink::File(writer) => writer.write(batch).await,
        }
    }

    /// Makes the output visible: commits the table (recording `operation` and `details`)
    /// or completes the upload.
    pub async fn finish(self, operation: &str, details: serde_json::Value) -> Result<Written> {
        let rows = self.rows;
        match self.sink {
            Sink::Table(sink) => {
                let TableSink { table, mode, base, schema, writer, run_id, started } = *sink;
                let files = writer.finish().await?;
                let mut details = details;
                if let Some(object) = details.as_object_mut() {
                    object.insert("run".into(), run_id.into());
                    object.insert("rows".into(), rows.into());
                }
                let commit = Commit { details, ..Commit::new(mode, operation, schema, files) };
                let version = table.commit(base.as_ref(), commit).await?;
                table.remove_orphans(started).await?;
                Ok(Written { rows, version: Some(version) })
            }
            Sink::File(writer) => {
                writer.finish().await?;
                Ok(Written { rows, version: None })
            }
        }
    }
}

/// Rows per row group in files an engine's executors write: DataFusion's writer bounds row
/// groups by rows only, and at a few kilobytes a document this keeps one near the 16 MiB
/// of the lake's own writer.
const ENGINE_ROW_GROUP_ROWS: usize = 8192;

/// Writes `frame`'s rows into lake table `name` from where its plan runs: on a Ballista
/// engine each executor writes its partitions as Parquet files under the run's folder
/// (`data/{run_id}/`), and no row passes through this process. Then, as
/// [`Output::finish`] does, it commits them, recording `operation` and `details`. A query
/// that fails commits nothing; the files it left, listed by no version, go with the
/// table's next commit or `mathlake vacuum`.
pub async fn write_from_engine(
    lake: &Lake,
    name: &str,
    frame: DataFrame,
    mode: CommitMode,
    operation: &str,
    details: serde_json::Value,
) -> Result<Written> {
    let started = Utc::now();
    let table = lake.table(name)?;
    let base = table.latest().await?;
    let schema = TableSchema::from_arrow(name, frame.schema().as_arrow())?;
    let run_id = run_id(started);
    let (folder, relative) = table.run_folder(&run_id);
    let mut options = TableParquetOptions::default();
    options.global.compression = Some("zstd(1)".into());
    options.global.max_row_group_size = ENGINE_ROW_GROUP_ROWS;
    options.global.statistics_truncate_length = Some(64);
    frame.write_parquet(&format!("{}/", folder.url()), DataFrameWriteOptions::new(), Some(options)).await?;

    // What the executors wrote: each file's rows from its footer.
    let store = folder.store()?;
    let written: Vec<object_store::ObjectMeta> = store.list(Some(folder.path())).try_collect().await?;
    let mut files = Vec::with_capacity(written.len());
    for meta in written {
        let Some(file_name) = meta.location.filename() else { continue };
        let reader = ParquetReader::new(store.clone(), meta.location.clone(), meta.size);
        let footer = ParquetRecordBatchStreamBuilder::new(reader).await?;
        let rows = footer.metadata().file_metadata().num_rows() as u64;
        files.push(DataFile { path: format!("{relative}/{file_name}"), rows, bytes: meta.size });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let rows = files.iter().map(|f| f.rows).sum::<u64>();
    let mut details = details;
    if let Some(object) = details.as_object_mut() {
        object.insert("run".into(), run_id.into());
        object.insert("rows".into(), rows.into());
        object.insert("written_by".into(), "engine".into());
    }
    let commit = Commit { details, ..Commit::new(mode, operation, schema, files) };
    let version = table.commit(base.as_ref(), commit).await?;
    table.remove_orphans(started).await?;
    Ok(Written { rows, version: Some(version) })
}
