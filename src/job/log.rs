//! The run log of a job: `{lake}/_jobs/{job file stem}.json`, rewritten as each stage
//! starts and ends. It records what each stage read (settings, the files it reads, the
//! lake's table versions before it ran), what it wrote (tables at their new versions,
//! files such as a shard set's manifest), its report and its time.
//!
//! A stage is skipped when its last run succeeded, its fingerprint is unchanged and what it
//! wrote is still there as it left it. The fingerprint hashes the stage's resolved
//! settings, the files it reads (SQL, mixture and training files and tokenizers by
//! content; ingest inputs by size, modification time and ETag) and the previous stage's
//! fingerprint, so a change anywhere reruns that stage; once one stage runs, every later
//! stage runs too, since its inputs may have changed. Lake tables that no stage of the job
//! writes are not tracked: after changing one by hand, `--force` reruns the job.

use std::collections::BTreeMap;

use chrono::Utc;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::lake::{Lake, Location, get_optional, put};
use crate::tokenize::encoder::file_hash;

pub const FORMAT: &str = "mathlake-job-log/1";
const FOLDER: &str = "_jobs";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunLog {
    pub format: String,
    pub job: String,
    pub stages: Vec<StageRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    /// A run asked to stop, ended between stages (run history only).
    Stopped,
}

impl Status {
    /// The name the run log and the run history tables give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord {
    pub name: String,
    pub kind: String,
    pub status: Status,
    pub fingerprint: String,
    pub started_at: String,
    pub seconds: f64,
    /// The files the stage reads, as they were.
    pub files: Vec<FileStamp>,
    /// Every lake table's version when the stage started.
    pub tables_before: BTreeMap<String, u64>,
    /// The tables the stage committed, at the versions it left them.
    pub wrote: BTreeMap<String, u64>,
    /// Files beside the tables that hold the stage's output (URLs).
    pub artifacts: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
    /// The stage's report, as `mathlake run --json` prints it.
    #[serde(default)]
    pub report: serde_json::Value,
}

/// A file as a stage read it: small files by content hash, data files by their metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileStamp {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub xxh3_128: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub modified: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub e_tag: Option<String>,
}

impl FileStamp {
    /// A small file (SQL, TOML, tokenizer.json) by its content; one that does not exist
    /// yet (made by an earlier stage) has no hash.
    pub async fn content(url: &str) -> Result<FileStamp> {
        let location = Location::parse(url)?;
        let hash = get_optional(&location).await?.map(|bytes| file_hash(&bytes));
        Ok(FileStamp { url: location.url(), xxh3_128: hash, size: None, modified: None, e_tag: None })
    }

    /// A data file by size, modification time and ETag (not read: inputs may be large).
    pub async fn metadata(location: &Location) -> Result<FileStamp> {
        let meta = location.store()?.head(location.path()).await.context(location.url())?;
        Ok(FileStamp {
            url: location.url(),
            xxh3_128: None,
            size: Some(meta.size),
            modified: Some(meta.last_modified.to_rfc3339()),
            e_tag: meta.e_tag,
        })
    }
}

/// The stage's fingerprint: its kind and resolved settings, the files it reads and the
/// previous stage's fingerprint.
pub fn fingerprint(settings: &serde_json::Value, files: &[FileStamp], previous: &str) -> Result<String> {
    let mut bytes = serde_json::to_vec(settings)?;
    bytes.extend(serde_json::to_vec(files)?);
    bytes.extend(previous.as_bytes());
    Ok(file_hash(&bytes))
}

/// Why a stage must run, or `None` when its last run still stands.
pub async fn must_run(
    record: Option<&StageRecord>,
    fingerprint: &str,
    later_writers: &BTreeMap<String, u64>,
    current: &BTreeMap<String, u64>,
) -> Result<Option<String>> {
    let Some(record) = record else { return Ok(Some("no earlier run".into())) };
    if record.status != Status::Succeeded {
        return Ok(Some(format!(
            "its last run {}",
            if record.status == Status::Failed { "failed" } else { "stopped" }
        )));
    }
    if record.fingerprint != fingerprint {
        return Ok(Some("its settings, files or an earlier stage changed".into()));
    }
    for (table, version) in &record.wrote {
        // A table a later stage rewrites is that stage's to check.
        if later_writers.contains_key(table) {
            continue;
        }
        match current.get(table) {
            Some(v) if v == version => {}
            Some(v) => return Ok(Some(format!("table {table} is at version {v}, not the {version} it wrote"))),
            None => return Ok(Some(format!("table {table} is gone"))),
        }
    }
    for url in &record.artifacts {
        if get_optional(&Location::parse(url)?).await?.is_none() {
            return Ok(Some(format!("{url} is gone")));
        }
    }
    Ok(None)
}

/// The latest version of every table of the lake.
pub async fn table_versions(lake: &Lake) -> Result<BTreeMap<String, u64>> {
    let mut versions = BTreeMap::new();
    for name in lake.table_names().await? {
        if let Some(version) = lake.table(&name)?.latest().await? {
            versions.insert(name, version.version);
        }
    }
    Ok(versions)
}

/// The tables whose version changed between two snapshots, at their new versions.
pub fn written(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after.iter().filter(|(name, version)| before.get(*name) != Some(version)).map(|(n, v)| (n.clone(), *v)).collect()
}

pub fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl RunLog {
    pub fn location(lake: &Lake, job_stem: &str) -> Location {
        lake.root().join(FOLDER).join(&format!("{job_stem}.json"))
    }

    pub async fn read(location: &Location, job: &str) -> Result<RunLog> {
        match get_optional(location).await? {
            Some(bytes) => {
                let log: RunLog = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::user(format!("{} is not a job run log: {e}", location.url()))
                        .hint("delete it to start the job's record afresh (every stage then runs)")
                })?;
                if log.format != FORMAT {
                    return Err(Error::user(format!(
                        "{}: format {} (this mathlake reads {FORMAT})",
                        location.url(),
                        log.format
                    )));
                }
                Ok(log)
            }
            None => Ok(RunLog { format: FORMAT.into(), job: job.into(), stages: Vec::new() }),
        }
    }

    pub async fn write(&self, location: &Location) -> Result<()> {
        put(location, serde_json::to_vec_pretty(self)?).await
    }

    pub fn get(&self, name: &str) -> Option<&StageRecord> {
        self.stages.iter().find(|r| r.name == name)
    }

    /// Puts `record` in the place of the stage's old one (or at the end).
    pub fn set(&mut self, record: StageRecord) {
        match self.stages.iter_mut().find(|r| r.name == record.name) {
            Some(old) => *old = record,
            None => self.stages.push(record),
        }
    }
}

/// Deletes every object under `folder` (a training run the job replaces).
pub async fn remove_folder(folder: &Location) -> Result<usize> {
    let store = folder.store()?;
    let objects: Vec<_> = store.list(Some(folder.path())).try_collect().await.context(folder.url())?;
    for object in &objects {
        store.delete(&object.location).await.context(folder.url())?;
    }
    Ok(objects.len())
}
