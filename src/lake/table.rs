//! Lake tables and their commit log.
//!
//! A table is a folder: immutable Parquet files under `data/`, and a log of versions under
//! `_log/` (`00000000000000000001.json`, ...). Each version lists every file of the table
//! at that version. A writer uploads its files first and then creates the next version
//! file with put-if-absent: that one object is the commit. Readers only trust the log, so
//! a killed run leaves files nobody references and the table exactly as it was, on a local
//! folder and on S3 alike (S3 has no atomic rename of many objects, but has conditional put).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use datafusion::arrow::array::AsArray;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::async_reader::{ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder};

use super::parquet_reader::ParquetReader;
use super::schema::TableSchema;
use crate::error::{Context, Error, Result};
use crate::location::{Location, put_if_absent};

const LOG_DIR: &str = "_log";
const DATA_DIR: &str = "data";

/// One committed state of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    pub version: u64,
    pub committed_at: DateTime<Utc>,
    /// What made this version: `ingest`, `sql`, ...
    pub operation: String,
    pub schema: TableSchema,
    /// Every file of the table at this version, in read order.
    pub files: Vec<DataFile>,
    /// What the operation reports about itself (inputs, counts, settings).
    #[serde(default)]
    pub details: serde_json::Value,
    /// Every input object whose rows this version holds (ingested tables): what a later
    /// ingest skips as already read, the way `files` lists every data file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<SourceObject>,
}

/// An input object as ingest read it: enough to tell a new object, one already read and
/// one changed since.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceObject {
    /// The dataset name it was ingested as: one file ingested as two sources is two objects.
    pub source: String,
    pub url: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    pub modified: DateTime<Utc>,
}

impl SourceObject {
    /// Whether `other` names the same object (source and URL).
    pub fn same_object(&self, other: &SourceObject) -> bool {
        self.url == other.url && self.source == other.source
    }

    /// Whether the same object still has the content this one was read with: by ETag where
    /// the store gives one (S3; a local file's covers inode, size and modification time),
    /// else by size and modification time.
    pub fn unchanged(&self, other: &SourceObject) -> bool {
        match (&self.e_tag, &other.e_tag) {
            (Some(a), Some(b)) => a == b,
            _ => self.size == other.size && self.modified == other.modified,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFile {
    /// Relative to the table folder, e.g. `data/20261125T2110-ab12cd-00000.parquet`.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

impl Version {
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// What a writer hands to [`Table::commit`]: files to add to the base version's, or to
/// take their place.
#[derive(Debug, Clone)]
pub struct Commit {
    pub mode: CommitMode,
    pub operation: String,
    pub schema: TableSchema,
    pub files: Vec<DataFile>,
    pub details: serde_json::Value,
    /// Appending: paths of the base's files this commit drops (rewritten without some rows).
    pub removed: Vec<String>,
    /// The input objects read; one the base lists already (same source and URL) is replaced.
    pub objects: Vec<SourceObject>,
}

impl Commit {
    pub fn new(mode: CommitMode, operation: &str, schema: TableSchema, files: Vec<DataFile>) -> Commit {
        Commit {
            mode,
            operation: operation.into(),
            schema,
            files,
            details: serde_json::Value::Null,
            removed: Vec::new(),
            objects: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitMode {
    /// Ingest: the new files join the table's.
    Append,
    /// `COPY ... TO 'table'`: the new files are the table.
    Replace,
}

/// A named table in a lake.
#[derive(Debug, Clone)]
pub struct Table {
    name: String,
    location: Location,
    store: Arc<dyn ObjectStore>,
}

impl Table {
    pub fn new(lake: &Location, name: &str) -> Result<Table> {
        validate_name(name)?;
        let location = lake.join(name);
        let store = location.store()?;
        Ok(Table { name: name.to_string(), location, store })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The latest committed version, or `None` for a table that was never written.
    pub async fn latest(&self) -> Result<Option<Version>> {
        match self.version_numbers().await?.last() {
            None => Ok(None),
            Some(&version) => self.read_version(version).await.map(Some),
        }
    }

    /// One committed version; a clear error for one never made or since vacuumed.
    pub async fn version(&self, number: u64) -> Result<Version> {
        let numbers = self.version_numbers().await?;
        if !numbers.contains(&number) {
            let kept = match (numbers.first(), numbers.last()) {
                (Some(first), Some(last)) => format!("it has versions {first} to {last}"),
                _ => "it has no version".to_string(),
            };
            return Err(Error::user(format!("table `{}` has no version {number}: {kept}", self.name))
                .hint("mathlake sql \"SELECT * FROM mathlake_versions\" lists every version kept"));
        }
        self.read_version(number).await
    }

    /// Every committed version, oldest first.
    pub async fn versions(&self) -> Result<Vec<Version>> {
        let mut versions = Vec::new();
        for number in self.version_numbers().await? {
            versions.push(self.read_version(number).await?);
        }
        Ok(versions)
    }

    /// The numbers of the committed versions, ascending.
    async fn version_numbers(&self) -> Result<Vec<u64>> {
        let log = self.location.path().clone().join(LOG_DIR);
        let listed: Vec<_> = self
            .store
            .list(Some(&log))
            .try_collect()
            .await
            .with_context(|| format!("listing the log of table `{}` at {}", self.name, self.location))?;
        let mut numbers: Vec<u64> = listed
            .iter()
            .filter_map(|meta| meta.location.filename()?.strip_suffix(".json")?.parse::<u64>().ok())
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    async fn read_version(&self, version: u64) -> Result<Version> {
        let path = self.version_path(version);
        let bytes = self
            .store
            .get(&path)
            .await
            .with_context(|| format!("reading {}", self.location.with_path(path.clone())))?
            .bytes()
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::user(format!("table `{}`: version file {} is corrupt: {e}", self.name, path))
                .hint("restore it from a backup, or delete it to fall back to the previous version")
        })
    }

    fn version_path(&self, version: u64) -> Path {
        self.location.path().clone().join(LOG_DIR).join(format!("{version:020}.json"))
    }

    /// Where a writer puts a new data file; nobody reads it until a commit lists it.
    pub fn data_file_path(&self, run_id: &str, seq: usize) -> (Path, String) {
        let relative = format!("{DATA_DIR}/{run_id}-{seq:05}.parquet");
        (self.location.path().clone().join(DATA_DIR).join(format!("{run_id}-{seq:05}.parquet")), relative)
    }

    /// Where other processes (a Ballista engine's executors) write a run's data files:
    /// the folder `data/{run_id}`, as a location and relative to the table.
    pub fn run_folder(&self, run_id: &str) -> (Location, String) {
        let relative = format!("{DATA_DIR}/{run_id}");
        (self.location.join(&relative), relative)
    }

    /// Absolute object path of a file listed in a version.
    pub fn file_path(&self, file: &DataFile) -> Path {
        let mut path = self.location.path().clone();
        for part in file.path.split('/') {
            path = path.join(part);
        }
        path
    }

    /// The rows of one of the table's data files, only `columns` when given.
    pub async fn read_file(
        &self,
        file: &DataFile,
        columns: Option<&[&str]>,
    ) -> Result<ParquetRecordBatchStream<ParquetReader>> {
        let path = self.file_path(file);
        let reader = ParquetReader::new(self.store().clone(), path.clone(), file.bytes);
        let builder = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .with_context(|| format!("reading {}", self.location().with_path(path.clone())))?;
        let builder = match columns {
            Some(columns) => {
                let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
                builder.with_projection(mask)
            }
            None => builder,
        };
        Ok(builder.build()?)
    }

    /// The non-NULL values of the first of `columns` that the latest version has as text,
    /// in file order: a list kept as a table (URL block lists).
    pub async fn text_values(&self, columns: &[&str]) -> Result<Vec<String>> {
        let Some(version) = self.latest().await? else {
            return Err(Error::user(format!("the lake has no table `{}`", self.name())));
        };
        let text_column = |name: &&str| version.schema.fields.iter().find(|f| f.name == *name && f.data_type == "utf8");
        let Some(field) = columns.iter().find_map(text_column) else {
            return Err(Error::user(format!(
                "table `{}` has no text column named {}",
                self.name(),
                columns.join(", ")
            )));
        };
        let mut values = Vec::new();
        for file in &version.files {
            let mut stream = self.read_file(file, Some(&[field.name.as_str()])).await?;
            while let Some(batch) = stream.try_next().await? {
                let column =
                    datafusion::arrow::compute::cast(batch.column(0), &datafusion::arrow::datatypes::DataType::Utf8)?;
                values.extend(column.as_string::<i32>().iter().flatten().map(str::to_string));
            }
        }
        Ok(values)
    }

    /// Commits on top of `base` (the version the writer started from). If another writer
    /// committed since, nothing changes and the error says to rerun.
    pub async fn commit(&self, base: Option<&Version>, commit: Commit) -> Result<Version> {
        let number = base.map_or(1, |b| b.version + 1);
        match self.try_commit(base, commit).await? {
            Some(version) => Ok(version),
            None => Err(Error::user(format!(
                "table `{}` changed while this run was writing (another writer committed version {number})",
                self.name
            ))
            .hint("nothing was committed by this run; run it again")),
        }
    }

    /// Appends `commit`'s files to whatever version is latest, again on top of the newer
    /// one when another writer commits first: for tables whose rows do not depend on what
    /// was there before (a cache of answers), where concurrent writers need not fail.
    pub async fn append(&self, commit: Commit) -> Result<Version> {
        for _ in 0..16 {
            let base = self.latest().await?;
            if let Some(version) =
                self.try_commit(base.as_ref(), Commit { mode: CommitMode::Append, ..commit.clone() }).await?
            {
                return Ok(version);
            }
        }
        Err(Error::user(format!("table `{}` kept changing while this run tried to append to it", self.name))
            .hint("nothing was committed by this run; run it again"))
    }

    /// The commit, or `None` when another writer committed `base`'s successor first.
    async fn try_commit(&self, base: Option<&Version>, commit: Commit) -> Result<Option<Version>> {
        let (mut files, mut objects) = match (commit.mode, base) {
            (CommitMode::Append, Some(base)) => (
                base.files.iter().filter(|f| !commit.removed.contains(&f.path)).cloned().collect(),
                base.objects.iter().filter(|o| !commit.objects.iter().any(|n| n.same_object(o))).cloned().collect(),
            ),
            _ => (Vec::new(), Vec::new()),
        };
        files.extend(commit.files);
        objects.extend(commit.objects);
        let version = Version {
            version: base.map_or(1, |b| b.version + 1),
            committed_at: Utc::now(),
            operation: commit.operation,
            schema: commit.schema,
            files,
            details: commit.details,
            objects,
        };
        let body = serde_json::to_vec_pretty(&version)?;
        let location = self.location.with_path(self.version_path(version.version));
        let committed = put_if_absent(&location, body)
            .await
            .with_context(|| format!("committing version {} of table `{}`", version.version, self.name))?;
        Ok(committed.then_some(version))
    }

    /// Deletes a version's log entry (vacuum: oldest first, never the latest).
    pub async fn remove_version(&self, version: u64) -> Result<()> {
        let path = self.version_path(version);
        self.store.delete(&path).await.with_context(|| format!("removing {}", self.location.with_path(path.clone())))
    }

    /// Deletes a data file (vacuum: one no kept version lists).
    pub async fn remove_file(&self, file: &DataFile) -> Result<()> {
        let path = self.file_path(file);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", self.location.with_path(path.clone()))),
        }
    }

    /// Deletes data files that no version lists and that are older than `before` (left by
    /// killed runs). Files newer than `before` may belong to a run still in progress. Files
    /// of earlier versions stay for reading the table as of them, until `vacuum` expires
    /// those versions.
    pub async fn remove_orphans(&self, before: DateTime<Utc>) -> Result<usize> {
        let versions = self.versions().await?;
        let live: std::collections::HashSet<Path> =
            versions.iter().flat_map(|v| &v.files).map(|f| self.file_path(f)).collect();
        let data = self.location.path().clone().join(DATA_DIR);
        let orphans: Vec<Path> = self
            .store
            .list(Some(&data))
            .try_filter(|meta| futures::future::ready(!live.contains(&meta.location) && meta.last_modified < before))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        for path in &orphans {
            self.store.delete(path).await?;
        }
        let staged = if self.location.is_local() { self.remove_staged_uploads(before)? } else { 0 };
        Ok(orphans.len() + staged)
    }

    /// A local store uploads `x.parquet` through a staging file `x.parquet#N` that a killed
    /// process leaves behind and that listings do not show. (On S3 an unfinished multipart
    /// upload is invisible, and bucket lifecycle rules expire it.)
    fn remove_staged_uploads(&self, before: DateTime<Utc>) -> Result<usize> {
        let folder = std::path::PathBuf::from(format!("/{}", self.location.path().clone().join(DATA_DIR)));
        let Ok(entries) = std::fs::read_dir(&folder) else { return Ok(0) };
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            let staged = entry.file_name().to_string_lossy().contains('#');
            let old = entry.metadata()?.modified().map(DateTime::<Utc>::from).is_ok_and(|m| m < before);
            if staged && old {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Table names are SQL identifiers without quoting.
/// A name for one writing run, unique enough that two runs never share data file names:
/// the start time and 32 bits from the clock's nanoseconds and the process id.
pub fn run_id(started: DateTime<Utc>) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}-{:08x}", started.format("%Y%m%dT%H%M%S"), nanos ^ std::process::id().rotate_left(16))
}

pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && !name.starts_with('_');
    if ok {
        Ok(())
    } else {
        Err(Error::user(format!("`{name}` is not a valid table name"))
            .hint("use lower-case letters, digits and `_`, starting with a letter"))
    }
}

#[cfg(test)]
mod tests {
    use object_store::PutPayload;

    use super::*;
    use crate::lake::schema;

    fn commit(files: &[&str]) -> Commit {
        let files = files.iter().map(|p| DataFile { path: p.to_string(), rows: 2, bytes: 10 }).collect();
        Commit::new(CommitMode::Append, "test", schema::builtin("documents").unwrap(), files)
    }

    #[tokio::test]
    async fn an_append_that_loses_the_race_lands_on_the_newer_version() {
        let lake = Location::parse("memory://table-test/append").unwrap();
        let table = Table::new(&lake, "synthesis_cache").unwrap();
        let v1 = table.commit(None, commit(&["data/a.parquet"])).await.unwrap();
        // Another writer commits while this one was writing from v1.
        table.commit(Some(&v1), commit(&["data/b.parquet"])).await.unwrap();
        let v3 = table.append(commit(&["data/c.parquet"])).await.unwrap();
        let files: Vec<&str> = v3.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!((v3.version, files), (3, vec!["data/a.parquet", "data/b.parquet", "data/c.parquet"]));
    }

    #[tokio::test]
    async fn versions_append_and_conflicts_fail() {
        let lake = Location::parse("memory://table-test/lake").unwrap();
        let table = Table::new(&lake, "documents").unwrap();
        assert!(table.latest().await.unwrap().is_none());
        let v1 = table.commit(None, commit(&["data/a.parquet"])).await.unwrap();
        let v2 = table.commit(Some(&v1), commit(&["data/b.parquet"])).await.unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!(v2.rows(), 4);
        assert_eq!(table.latest().await.unwrap().unwrap(), v2);
        // A writer that started from v1 must not overwrite v2.
        let err = table.commit(Some(&v1), commit(&["data/c.parquet"])).await.unwrap_err();
        assert!(err.to_string().contains("changed while this run was writing"), "{err}");
        assert_eq!(table.latest().await.unwrap().unwrap().files.len(), 2);
        // A replacing commit makes its files the whole table.
        let replace = Commit { mode: CommitMode::Replace, ..commit(&["data/d.parquet"]) };
        let v3 = table.commit(Some(&v2), replace).await.unwrap();
        assert_eq!(v3.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["data/d.parquet"]);
    }

    #[tokio::test]
    async fn an_append_can_drop_files_and_replaces_the_objects_it_read_again() {
        let lake = Location::parse("memory://objects-test/lake").unwrap();
        let table = Table::new(&lake, "documents").unwrap();
        let object = |url: &str, e_tag: &str| SourceObject {
            source: "web".into(),
            url: url.into(),
            size: 5,
            e_tag: Some(e_tag.into()),
            modified: DateTime::<Utc>::UNIX_EPOCH,
        };
        let first = Commit { objects: vec![object("a", "1"), object("b", "1")], ..commit(&["data/a", "data/b"]) };
        let v1 = table.commit(None, first).await.unwrap();
        let second = Commit {
            removed: vec!["data/b".into()],
            objects: vec![object("b", "2"), object("c", "1")],
            ..commit(&["data/b2"])
        };
        let v2 = table.commit(Some(&v1), second).await.unwrap();
        assert_eq!(v2.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["data/a", "data/b2"]);
        let objects: Vec<_> = v2.objects.iter().map(|o| (o.url.as_str(), o.e_tag.as_deref().unwrap())).collect();
        assert_eq!(objects, [("a", "1"), ("b", "2"), ("c", "1")]);
        assert_eq!(table.latest().await.unwrap().unwrap(), v2, "objects survive the version file");
        assert!(object("a", "1").unchanged(&object("a", "1")) && !object("a", "1").unchanged(&object("a", "2")));
        let other_source = SourceObject { source: "cc".into(), ..object("a", "1") };
        assert!(!other_source.same_object(&object("a", "1")));
    }

    #[tokio::test]
    async fn orphans_are_removed_but_live_files_stay() {
        let lake = Location::parse("memory://orphan-test/lake").unwrap();
        let table = Table::new(&lake, "documents").unwrap();
        for name in ["live", "orphan"] {
            let (path, _) = table.data_file_path(name, 0);
            table.store().put(&path, PutPayload::from_static(b"x")).await.unwrap();
        }
        let (_, live) = table.data_file_path("live", 0);
        let v1 = table.commit(None, commit(&[&live])).await.unwrap();
        let removed = table.remove_orphans(Utc::now() + chrono::Duration::seconds(1)).await.unwrap();
        assert_eq!(removed, 1);
        assert!(table.store().head(&table.file_path(&v1.files[0])).await.is_ok());
    }

    #[test]
    fn table_names_are_identifiers() {
        assert!(validate_name("math_corpus2").is_ok());
        for bad in ["", "Docs", "2x", "_log", "a-b", "a/b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
