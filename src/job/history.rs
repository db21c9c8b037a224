//! The history of a job's runs: one record per run of `mathlake run`, written when the run
//! ends to `{lake}/_jobs/{job}.runs/{run id}.json` and never rewritten, so that yesterday's
//! run is still there after today's (the run log `_jobs/{job}.json` holds only each
//! stage's latest record). SQL sees every job's history as two system tables, read when a
//! query scans them: `mathlake_runs` (one row per run) and `mathlake_run_stages` (one row
//! per stage a run ran), beside `mathlake_versions`, one row per committed version of every
//! lake table (what made it, when, its files and rows, the run that committed it), which
//! the stages' `tables_before` and `tables_written` name, and `mathlake_objects`, one row
//! per source object an ingested table holds rows of, with the version that first read it:
//! the step from a row's `input` to the run that ingested it.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use super::log::{StageRecord, Status};
use crate::error::{Context, Error, Result};
use crate::lake::{Lake, Location, SourceObject, Version, put_if_absent};

pub const FORMAT: &str = "mathlake-run/1";

/// One run of a job, as it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub format: String,
    /// Sortable by start time: `20261207T031500.123Z-9f86d081`.
    pub run_id: String,
    pub job: String,
    /// The host and process that ran it.
    pub holder: String,
    pub started_at: String,
    pub ended_at: String,
    pub seconds: f64,
    /// Succeeded, failed (with the error that stopped it) or stopped between stages.
    pub status: Status,
    pub error: Option<String>,
    /// The stages skipped as unchanged.
    pub skipped: Vec<String>,
    /// The stages it ran, as the run log recorded each: settings fingerprint, files read,
    /// table versions before, tables written, report or error.
    pub stages: Vec<StageRecord>,
}

impl RunRecord {
    /// A record for a run starting now.
    pub fn start(job: &str, holder: String) -> RunRecord {
        let now = Utc::now();
        let nanos = now.timestamp_nanos_opt().unwrap_or_default();
        let salt = xxh3_64(format!("{holder} {nanos}").as_bytes()) as u32;
        RunRecord {
            format: FORMAT.into(),
            run_id: format!("{}-{salt:08x}", now.format("%Y%m%dT%H%M%S%.3fZ")),
            job: job.into(),
            holder,
            started_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ended_at: String::new(),
            seconds: 0.0,
            status: Status::Running,
            error: None,
            skipped: Vec::new(),
            stages: Vec::new(),
        }
    }

    /// Ends the record with the run's outcome and writes it (once: an existing record of
    /// the same id is an error, never overwritten).
    pub async fn finish(mut self, lake: &Lake, error: Option<&Error>, started: std::time::Instant) -> Result<()> {
        self.ended_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.seconds = started.elapsed().as_secs_f64();
        self.status = match error {
            None => Status::Succeeded,
            Some(e) if e.is_stopped() => Status::Stopped,
            Some(_) => Status::Failed,
        };
        self.error = error.map(ToString::to_string);
        let object = folder(lake.root(), &self.job).join(&format!("{}.json", self.run_id));
        if !put_if_absent(&object, serde_json::to_vec_pretty(&self)?).await? {
            return Err(Error::Internal(format!("run record {} already exists", object.url())));
        }
        Ok(())
    }
}

fn folder(root: &Location, job: &str) -> Location {
    root.join("_jobs").join(&format!("{job}.runs"))
}

/// Registers the system tables over the lake.
pub fn register(ctx: &SessionContext, lake: &Lake) -> Result<()> {
    for table in [SystemTable::Runs, SystemTable::Stages, SystemTable::Versions, SystemTable::Objects] {
        let partition = Arc::new(History { lake: lake.clone(), table });
        let provider = StreamingTable::try_new(table.schema(), vec![partition])?;
        ctx.register_table(table.name(), Arc::new(provider))?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum SystemTable {
    Runs,
    Stages,
    Versions,
    Objects,
}

impl SystemTable {
    fn name(self) -> &'static str {
        match self {
            SystemTable::Runs => "mathlake_runs",
            SystemTable::Stages => "mathlake_run_stages",
            SystemTable::Versions => "mathlake_versions",
            SystemTable::Objects => "mathlake_objects",
        }
    }

    fn schema(self) -> SchemaRef {
        let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
        let fields = match self {
            SystemTable::Runs => vec![
                text("run_id", false),
                text("job", false),
                text("holder", false),
                text("started_at", false),
                text("ended_at", false),
                Field::new("seconds", DataType::Float64, false),
                text("status", false),
                text("error", true),
                Field::new("stages_run", DataType::Int64, false),
                Field::new("stages_skipped", DataType::Int64, false),
                // JSON: {table: version} of everything the run committed.
                text("tables_written", false),
            ],
            SystemTable::Stages => vec![
                text("run_id", false),
                text("job", false),
                text("stage", false),
                text("kind", false),
                text("status", false),
                text("fingerprint", false),
                text("started_at", false),
                Field::new("seconds", DataType::Float64, false),
                // JSON: {table: version} of the lake when the stage started, and of what it
                // committed.
                text("tables_before", false),
                text("tables_written", false),
                text("error", true),
            ],
            SystemTable::Versions => vec![
                text("table_name", false),
                Field::new("version", DataType::Int64, false),
                text("committed_at", false),
                text("operation", false),
                Field::new("files", DataType::Int64, false),
                Field::new("rows", DataType::Int64, false),
                Field::new("bytes", DataType::Int64, false),
                // JSON: what the operation reported about itself (inputs, counts, settings).
                text("details", false),
                // The job run that committed it; NULL for a command run on its own.
                text("run_id", true),
            ],
            SystemTable::Objects => vec![
                text("table_name", false),
                // The first version holding rows of the object (as it is now: a replaced
                // object counts from the version that read its new content).
                Field::new("version", DataType::Int64, false),
                text("source", false),
                text("url", false),
                Field::new("size", DataType::Int64, false),
                text("e_tag", true),
                text("modified", false),
            ],
        };
        Arc::new(Schema::new(fields))
    }

    /// The table's rows: from run records, or from (table, version) pairs and the runs that
    /// wrote them.
    fn batch(self, runs: &[RunRecord], versions: &[(String, Version)]) -> Result<RecordBatch> {
        let json = |v: &std::collections::BTreeMap<String, u64>| serde_json::to_string(v).unwrap_or_default();
        let strings = |values: Vec<Option<String>>| Arc::new(StringArray::from(values)) as ArrayRef;
        let columns: Vec<ArrayRef> = match self {
            SystemTable::Runs => {
                let written = |r: &RunRecord| {
                    let mut all = std::collections::BTreeMap::new();
                    for stage in &r.stages {
                        all.extend(stage.wrote.clone());
                    }
                    json(&all)
                };
                vec![
                    strings(runs.iter().map(|r| Some(r.run_id.clone())).collect()),
                    strings(runs.iter().map(|r| Some(r.job.clone())).collect()),
                    strings(runs.iter().map(|r| Some(r.holder.clone())).collect()),
                    strings(runs.iter().map(|r| Some(r.started_at.clone())).collect()),
                    strings(runs.iter().map(|r| Some(r.ended_at.clone())).collect()),
                    Arc::new(Float64Array::from_iter_values(runs.iter().map(|r| r.seconds))),
                    strings(runs.iter().map(|r| Some(r.status.as_str().into())).collect()),
                    strings(runs.iter().map(|r| r.error.clone()).collect()),
                    Arc::new(Int64Array::from_iter_values(runs.iter().map(|r| r.stages.len() as i64))),
                    Arc::new(Int64Array::from_iter_values(runs.iter().map(|r| r.skipped.len() as i64))),
                    strings(runs.iter().map(|r| Some(written(r))).collect()),
                ]
            }
            SystemTable::Stages => {
                let rows: Vec<(&RunRecord, &StageRecord)> =
                    runs.iter().flat_map(|r| r.stages.iter().map(move |s| (r, s))).collect();
                vec![
                    strings(rows.iter().map(|(r, _)| Some(r.run_id.clone())).collect()),
                    strings(rows.iter().map(|(r, _)| Some(r.job.clone())).collect()),
                    strings(rows.iter().map(|(_, s)| Some(s.name.clone())).collect()),
                    strings(rows.iter().map(|(_, s)| Some(s.kind.clone())).collect()),
                    strings(rows.iter().map(|(_, s)| Some(s.status.as_str().into())).collect()),
                    strings(rows.iter().map(|(_, s)| Some(s.fingerprint.clone())).collect()),
                    strings(rows.iter().map(|(_, s)| Some(s.started_at.clone())).collect()),
                    Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, s)| s.seconds))),
                    strings(rows.iter().map(|(_, s)| Some(json(&s.tables_before))).collect()),
                    strings(rows.iter().map(|(_, s)| Some(json(&s.wrote))).collect()),
                    strings(rows.iter().map(|(_, s)| s.error.clone()).collect()),
                ]
            }
            SystemTable::Versions => vec![
                strings(versions.iter().map(|(t, _)| Some(t.clone())).collect()),
                Arc::new(Int64Array::from_iter_values(versions.iter().map(|(_, v)| v.version as i64))),
                strings(
                    versions
                        .iter()
                        .map(|(_, v)| Some(v.committed_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
                        .collect(),
                ),
                strings(versions.iter().map(|(_, v)| Some(v.operation.clone())).collect()),
                Arc::new(Int64Array::from_iter_values(versions.iter().map(|(_, v)| v.files.len() as i64))),
                Arc::new(Int64Array::from_iter_values(versions.iter().map(|(_, v)| v.rows() as i64))),
                Arc::new(Int64Array::from_iter_values(versions.iter().map(|(_, v)| v.bytes() as i64))),
                strings(versions.iter().map(|(_, v)| Some(v.details.to_string())).collect()),
                strings({
                    let writers = writers(runs);
                    versions.iter().map(|(t, v)| writers.get(&(t.as_str(), v.version)).map(|r| r.to_string())).collect()
                }),
            ],
            SystemTable::Objects => {
                let objects = first_reads(versions);
                let time = |t: &chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                vec![
                    strings(objects.iter().map(|(t, _, _)| Some(t.to_string())).collect()),
                    Arc::new(Int64Array::from_iter_values(objects.iter().map(|(_, v, _)| *v as i64))),
                    strings(objects.iter().map(|(_, _, o)| Some(o.source.clone())).collect()),
                    strings(objects.iter().map(|(_, _, o)| Some(o.url.clone())).collect()),
                    Arc::new(Int64Array::from_iter_values(objects.iter().map(|(_, _, o)| o.size as i64))),
                    strings(objects.iter().map(|(_, _, o)| o.e_tag.clone()).collect()),
                    strings(objects.iter().map(|(_, _, o)| Some(time(&o.modified))).collect()),
                ]
            }
        };
        Ok(RecordBatch::try_new(self.schema(), columns)?)
    }
}

/// (table, version) -> the job run whose stages committed it.
fn writers(runs: &[RunRecord]) -> HashMap<(&str, u64), &str> {
    let mut writers = HashMap::new();
    for run in runs {
        for (table, &version) in run.stages.iter().flat_map(|s| &s.wrote) {
            writers.entry((table.as_str(), version)).or_insert(run.run_id.as_str());
        }
    }
    writers
}

/// Each table's source objects, as its latest version lists them, with the first version
/// that listed each unchanged: (table, version, object).
fn first_reads(versions: &[(String, Version)]) -> Vec<(&str, u64, &SourceObject)> {
    let mut objects = Vec::new();
    for (i, (table, latest)) in versions.iter().enumerate() {
        if versions.get(i + 1).is_some_and(|(next, _)| next == table) {
            continue;
        }
        let history: Vec<&Version> = versions.iter().filter(|(t, _)| t == table).map(|(_, v)| v).collect();
        for object in &latest.objects {
            let first = history
                .iter()
                .find(|v| v.objects.iter().any(|o| o.same_object(object) && o.unchanged(object)))
                .map_or(latest.version, |v| v.version);
            objects.push((table.as_str(), first, object));
        }
    }
    objects
}

/// The one partition of a system table, read from the lake when scanned.
#[derive(Debug)]
struct History {
    lake: Lake,
    table: SystemTable,
}

impl PartitionStream for History {
    fn schema(&self) -> &SchemaRef {
        // A static schema per table, so that the reference can outlive this call.
        static RUNS: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| SystemTable::Runs.schema());
        static STAGES: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| SystemTable::Stages.schema());
        static VERSIONS: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| SystemTable::Versions.schema());
        static OBJECTS: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| SystemTable::Objects.schema());
        match self.table {
            SystemTable::Runs => &RUNS,
            SystemTable::Stages => &STAGES,
            SystemTable::Versions => &VERSIONS,
            SystemTable::Objects => &OBJECTS,
        }
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (lake, table) = (self.lake.clone(), self.table);
        let batch = async move {
            let (runs, versions) = match table {
                SystemTable::Versions => (read_runs(lake.root()).await?, read_versions(&lake).await?),
                SystemTable::Objects => (Vec::new(), read_versions(&lake).await?),
                _ => (read_runs(lake.root()).await?, Vec::new()),
            };
            table.batch(&runs, &versions)
        };
        let batch =
            async move { batch.await.map_err(|e: Error| datafusion::error::DataFusionError::External(Box::new(e))) };
        Box::pin(RecordBatchStreamAdapter::new(table.schema(), futures::stream::once(batch)))
    }
}

/// Every run record under `{root}/_jobs/*.runs/`, oldest first.
async fn read_runs(root: &Location) -> Result<Vec<RunRecord>> {
    let jobs = root.join("_jobs");
    let store = jobs.store()?;
    let mut objects: Vec<_> = store.list(Some(jobs.path())).try_collect().await.context(jobs.url())?;
    objects.retain(|o| {
        let parts: Vec<_> = o.location.parts().collect();
        parts.len() >= 2
            && parts[parts.len() - 2].as_ref().ends_with(".runs")
            && o.location.filename().is_some_and(|f| f.ends_with(".json"))
    });
    let mut runs = Vec::with_capacity(objects.len());
    for object in objects {
        let location = root.with_path(object.location);
        let bytes = store.get(location.path()).await.context(location.url())?.bytes().await.context(location.url())?;
        let run: RunRecord = serde_json::from_slice(&bytes)
            .map_err(|e| Error::user(format!("{} is not a run record: {e}", location.url())))?;
        runs.push(run);
    }
    runs.sort_by(|a, b| (&a.started_at, &a.run_id).cmp(&(&b.started_at, &b.run_id)));
    Ok(runs)
}

/// Every version of every lake table, by table name and version.
async fn read_versions(lake: &Lake) -> Result<Vec<(String, Version)>> {
    let mut all = Vec::new();
    for name in lake.table_names().await? {
        for version in lake.table(&name)?.versions().await? {
            all.push((name.clone(), version));
        }
    }
    Ok(all)
}
