//! The response cache: every request a model endpoint answered, kept in the lake so that a
//! rerun, or a run after kill -9, sends only the requests not yet answered.
//!
//! A reply is made durable the moment it arrives, as one small object in the cache table's
//! journal (`synthesis_cache/_journal/{key}.json`): a process killed a second later has
//! lost nothing it paid for. At the end of a run the journal is compacted into the table
//! `synthesis_cache` (schemas/synthesis_cache.json) in one append commit, and then
//! deleted; a run killed between the two reads both, and keys make the overlap harmless.
//!
//! The key is (problem id, method, rollout, hash of the request body), so a changed
//! template, model or sampling setting is a new request and misses the cache.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::lake::{Commit, CommitMode, FileLimits, Lake, Location, Table, TableWriter, put, run_id, schema};
use crate::text::{IdScratch, content_id, texts};

/// The cache table's name in every lake.
pub const TABLE: &str = "synthesis_cache";
const JOURNAL: &str = "_journal";

/// What identifies one request.
#[derive(Debug, Clone)]
pub struct RequestKey<'a> {
    pub problem_id: &'a str,
    pub method: &'a str,
    pub rollout: u32,
    /// Whose request it is in the method: writer, student or teacher.
    pub role: &'a str,
    pub body: &'a [u8],
}

impl RequestKey<'_> {
    /// The hash of the body and the cache key.
    pub fn key(&self) -> (String, String) {
        let request_hash = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(self.body));
        let rollout = self.rollout.to_string();
        let key = content_id(&[self.problem_id, self.method, &rollout, &request_hash], &mut IdScratch::default());
        (key, request_hash)
    }
}

/// One answered request: a row of `synthesis_cache`, and a journal object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub problem_id: String,
    pub method: String,
    pub rollout: u32,
    pub role: String,
    pub request_hash: String,
    pub model: String,
    pub request: String,
    pub response: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub attempts: u32,
    pub answered_at: String,
}

/// The answered requests of a lake, shared by a run's concurrent requests.
pub struct ResponseCache {
    table: Table,
    journal: Location,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    /// Keys already in the table: compaction appends only the others.
    committed: HashSet<String>,
    /// Journal objects found at open or written since, deleted once compacted.
    journaled: Mutex<Vec<String>>,
    pub hits: AtomicU64,
    pub stored: AtomicU64,
}

/// What a run's compaction did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CacheReport {
    /// Entries the cache held when the run began (table and journal).
    pub entries_at_start: u64,
    pub hits: u64,
    /// Replies stored by this run.
    pub stored: u64,
    /// Entries appended to the table by the compaction (this run's and a killed run's).
    pub compacted: u64,
}

impl ResponseCache {
    /// Loads the table `synthesis_cache` (as registered in `ctx`, if it exists) and what
    /// a killed run left in the journal.
    pub async fn open(lake: &Lake, ctx: &SessionContext) -> Result<ResponseCache> {
        let table = lake.table(TABLE)?;
        let journal = table.location().join(JOURNAL);
        let mut entries = HashMap::new();
        if ctx.table_exist(TABLE)? {
            let batches = ctx.sql(&format!("SELECT * FROM {TABLE}")).await?.collect().await?;
            for batch in &batches {
                for entry in entries_of(batch)? {
                    entries.insert(entry.key.clone(), Arc::new(entry));
                }
            }
        }
        let committed: HashSet<String> = entries.keys().cloned().collect();
        let store = journal.store()?;
        let listed: Vec<_> = store
            .list(Some(journal.path()))
            .try_collect()
            .await
            .with_context(|| format!("listing the response journal at {journal}"))?;
        // Many small objects after a long killed run: read them 64 at a time.
        let found: Vec<Option<Entry>> = futures::stream::iter(listed)
            .map(|meta| journal_entry(&store, meta.location))
            .buffer_unordered(64)
            .try_collect()
            .await?;
        let mut journaled = Vec::new();
        for entry in found.into_iter().flatten() {
            journaled.push(entry.key.clone());
            entries.entry(entry.key.clone()).or_insert_with(|| Arc::new(entry));
        }
        Ok(ResponseCache {
            table,
            journal,
            entries: Mutex::new(entries),
            committed,
            journaled: Mutex::new(journaled),
            hits: AtomicU64::new(0),
            stored: AtomicU64::new(0),
        })
    }

    /// How many replies it holds.
    pub fn entries(&self) -> usize {
        self.lock_entries().len()
    }

    /// The stored reply for `key`, counted as a hit.
    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let found = self.lock_entries().get(key).cloned();
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Makes `entry` durable (its journal object) before anyone relies on it.
    pub async fn store(&self, entry: Entry) -> Result<Arc<Entry>> {
        let object = self.journal.join(&format!("{}.json", entry.key));
        put(&object, serde_json::to_vec(&entry)?).await?;
        self.stored.fetch_add(1, Ordering::Relaxed);
        self.journaled.lock().map_err(poisoned)?.push(entry.key.clone());
        let entry = Arc::new(entry);
        self.lock_entries().insert(entry.key.clone(), entry.clone());
        Ok(entry)
    }

    /// Appends the journal's entries that the table lacks in one commit, then deletes the
    /// journal objects.
    pub async fn compact(self, entries_at_start: u64) -> Result<CacheReport> {
        let journaled = std::mem::take(&mut *self.journaled.lock().map_err(poisoned)?);
        let entries = self.entries.into_inner().map_err(poisoned)?;
        let mut fresh: Vec<&Arc<Entry>> =
            journaled.iter().filter(|key| !self.committed.contains(*key)).filter_map(|key| entries.get(key)).collect();
        fresh.sort_by(|a, b| a.key.cmp(&b.key));
        fresh.dedup_by(|a, b| a.key == b.key);
        if !fresh.is_empty() {
            let table_schema = schema::builtin(TABLE)?;
            let arrow = table_schema.arrow()?;
            let started = chrono::Utc::now();
            let mut writer =
                TableWriter::new(self.table.clone(), &run_id(started), arrow.clone(), FileLimits::default());
            for chunk in fresh.chunks(4096) {
                writer.write(&batch_of(chunk, arrow.clone())?).await?;
            }
            let files = writer.finish().await?;
            let base = self.table.latest().await?;
            let details = serde_json::json!({ "entries": fresh.len() });
            let commit = Commit {
                mode: CommitMode::Append,
                operation: "synthesize".into(),
                schema: table_schema,
                files,
                details,
            };
            self.table.commit(base.as_ref(), commit).await?;
        }
        // In bulk: S3 deletes up to 1,000 objects per request.
        let paths: Vec<object_store::Result<Path>> =
            journaled.iter().map(|key| Ok(self.journal.join(&format!("{key}.json")).path().clone())).collect();
        let mut deleted = self.journal.store()?.delete_stream(futures::stream::iter(paths).boxed());
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e).with_context(|| format!("deleting the compacted journal at {}", self.journal)),
            }
        }
        Ok(CacheReport {
            entries_at_start,
            hits: self.hits.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
            compacted: fresh.len() as u64,
        })
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        // A panic elsewhere cannot leave the map half-updated: inserts are single calls.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A journal object's entry; `None` for an object cut short by a crash on a local disk or
/// named for another key: that request is sent again.
async fn journal_entry(store: &Arc<dyn ObjectStore>, path: Path) -> Result<Option<Entry>> {
    let Some(key) = path.filename().and_then(|name| name.strip_suffix(".json")).map(str::to_string) else {
        return Ok(None);
    };
    let bytes = store.get(&path).await?.bytes().await?;
    Ok(serde_json::from_slice::<Entry>(&bytes).ok().filter(|entry| entry.key == key))
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> Error {
    Error::Internal("the response cache's lock was poisoned".into())
}

/// The rows of one batch of `synthesis_cache`.
fn entries_of(batch: &RecordBatch) -> Result<Vec<Entry>> {
    let text = |name: &str| -> Result<Vec<String>> {
        let column = batch.column_by_name(name).ok_or_else(|| missing(name))?;
        Ok(texts(column)?.map(|t| t.unwrap_or_default().to_string()).collect())
    };
    let int = |name: &str| -> Result<Vec<i64>> {
        let column = batch.column_by_name(name).ok_or_else(|| missing(name))?;
        let cast = datafusion::arrow::compute::cast(column, &datafusion::arrow::datatypes::DataType::Int64)?;
        let ints = cast.as_any().downcast_ref::<Int64Array>().ok_or_else(|| missing(name))?;
        Ok(ints.iter().map(Option::unwrap_or_default).collect())
    };
    let (keys, problems, methods, roles, hashes, models, requests, responses, times) = (
        text("id")?,
        text("problem_id")?,
        text("method")?,
        text("role")?,
        text("request_hash")?,
        text("model")?,
        text("request")?,
        text("response")?,
        text("answered_at")?,
    );
    let (rollouts, tokens_in, tokens_out, attempts) =
        (int("rollout")?, int("tokens_in")?, int("tokens_out")?, int("attempts")?);
    let mut entries = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        entries.push(Entry {
            key: keys[row].clone(),
            problem_id: problems[row].clone(),
            method: methods[row].clone(),
            rollout: rollouts[row] as u32,
            role: roles[row].clone(),
            request_hash: hashes[row].clone(),
            model: models[row].clone(),
            request: requests[row].clone(),
            response: responses[row].clone(),
            tokens_in: tokens_in[row] as u64,
            tokens_out: tokens_out[row] as u64,
            attempts: attempts[row] as u32,
            answered_at: times[row].clone(),
        });
    }
    Ok(entries)
}

fn missing(column: &str) -> Error {
    Error::user(format!("the table {TABLE} has no usable column `{column}`"))
        .hint(format!("it is mathlake's response cache (schemas/{TABLE}.json); drop it to start afresh"))
}

fn batch_of(entries: &[&Arc<Entry>], schema: datafusion::arrow::datatypes::SchemaRef) -> Result<RecordBatch> {
    let text =
        |f: fn(&Entry) -> &str| -> ArrayRef { Arc::new(StringArray::from_iter_values(entries.iter().map(|e| f(e)))) };
    let columns: Vec<ArrayRef> = vec![
        text(|e| &e.key),
        text(|e| &e.problem_id),
        text(|e| &e.method),
        Arc::new(Int32Array::from_iter_values(entries.iter().map(|e| e.rollout as i32))),
        text(|e| &e.role),
        text(|e| &e.request_hash),
        text(|e| &e.model),
        text(|e| &e.request),
        text(|e| &e.response),
        Arc::new(Int64Array::from_iter_values(entries.iter().map(|e| e.tokens_in as i64))),
        Arc::new(Int64Array::from_iter_values(entries.iter().map(|e| e.tokens_out as i64))),
        Arc::new(Int32Array::from_iter_values(entries.iter().map(|e| e.attempts as i32))),
        text(|e| &e.answered_at),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}
