//! The response cache: every request a model endpoint answered, kept in the lake so that a
//! rerun, or a run after kill -9, sends only the requests not yet answered.
//!
//! A reply is made durable before anything uses it, in the cache table's journal
//! (`synthesis_cache/_journal/{run}-{n}.jsonl`, one entry per line): a process killed a
//! second later has lost nothing it paid for. The journal is written by group commit: the
//! replies that arrive while one object is being written go together into the next, so a
//! run at a concurrency of hundreds writes tens of objects a second, not one per reply
//! (one file per reply spent most of the client's CPU in the kernel, creating and renaming
//! files in one folder). At the end of a run the journal is compacted into the table
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
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Context, Error, Result};
use crate::lake::{Commit, CommitMode, FileLimits, Lake, Location, Table, TableWriter, put, run_id, schema};
use crate::text::{IdScratch, content_id, texts};

/// The cache table's name in every lake.
pub const TABLE: &str = "synthesis_cache";
const JOURNAL: &str = "_journal";
/// The most entries one journal object holds.
const ENTRIES_PER_OBJECT: usize = 4096;

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
    /// Keys in the journal, found at open or stored since.
    journaled: Mutex<Vec<String>>,
    /// Objects in the journal folder at open, deleted once compacted.
    found: Vec<Path>,
    /// The journal writer's queue, and the writer, which ends with the objects it wrote.
    queue: mpsc::UnboundedSender<Pending>,
    writer: JoinHandle<Vec<Path>>,
    pub hits: AtomicU64,
    pub stored: AtomicU64,
}

/// A reply waiting for the journal, and who to tell once it is durable.
type Pending = (Arc<Entry>, oneshot::Sender<std::result::Result<(), String>>);

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
        let found: Vec<Path> = listed.into_iter().map(|meta| meta.location).collect();
        let read: Vec<Vec<Entry>> = futures::stream::iter(found.iter().cloned())
            .map(|path| journal_entries(&store, path))
            .buffer_unordered(16)
            .try_collect()
            .await?;
        let mut journaled = Vec::new();
        for entry in read.into_iter().flatten() {
            journaled.push(entry.key.clone());
            entries.entry(entry.key.clone()).or_insert_with(|| Arc::new(entry));
        }
        let (queue, pending) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_journal(journal.clone(), run_id(chrono::Utc::now()), pending));
        Ok(ResponseCache {
            table,
            journal,
            entries: Mutex::new(entries),
            committed,
            journaled: Mutex::new(journaled),
            found,
            queue,
            writer,
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

    /// Makes `entry` durable (in a journal object) before anyone relies on it.
    pub async fn store(&self, entry: Entry) -> Result<Arc<Entry>> {
        let entry = Arc::new(entry);
        let (done, durable) = oneshot::channel();
        let stopped = || Error::Internal("the response journal's writer stopped".into());
        self.queue.send((entry.clone(), done)).map_err(|_| stopped())?;
        durable.await.map_err(|_| stopped())?.map_err(|e| {
            Error::user(e).hint("check that the lake is writable (folder permissions, S3 credentials); replies already journaled are kept for the next run")
        })?;
        self.stored.fetch_add(1, Ordering::Relaxed);
        self.journaled.lock().map_err(poisoned)?.push(entry.key.clone());
        self.lock_entries().insert(entry.key.clone(), entry.clone());
        Ok(entry)
    }

    /// Appends the journal's entries that the table lacks in one commit, then deletes the
    /// journal objects.
    pub async fn compact(self, entries_at_start: u64) -> Result<CacheReport> {
        let ResponseCache { table, journal, entries, committed, journaled, found, queue, writer, hits, stored } = self;
        drop(queue);
        let written =
            writer.await.map_err(|e| Error::Internal(format!("the response journal's writer failed: {e}")))?;
        let journaled = journaled.into_inner().map_err(poisoned)?;
        let entries = entries.into_inner().map_err(poisoned)?;
        let mut fresh: Vec<&Arc<Entry>> =
            journaled.iter().filter(|key| !committed.contains(*key)).filter_map(|key| entries.get(key)).collect();
        fresh.sort_by(|a, b| a.key.cmp(&b.key));
        fresh.dedup_by(|a, b| a.key == b.key);
        if !fresh.is_empty() {
            let table_schema = schema::builtin(TABLE)?;
            let arrow = table_schema.arrow()?;
            let started = chrono::Utc::now();
            let mut writer = TableWriter::new(table.clone(), &run_id(started), arrow.clone(), FileLimits::default());
            for chunk in fresh.chunks(4096) {
                writer.write(&batch_of(chunk, arrow.clone())?).await?;
            }
            let files = writer.finish().await?;
            let details = serde_json::json!({ "entries": fresh.len() });
            let commit = Commit { details, ..Commit::new(CommitMode::Append, "synthesize", table_schema, files) };
            // Runs beside this one (other methods over the same lake) append to the cache too.
            table.append(commit).await?;
        }
        // In bulk: S3 deletes up to 1,000 objects per request.
        let paths: Vec<object_store::Result<Path>> = found.into_iter().chain(written).map(Ok).collect();
        let mut deleted = journal.store()?.delete_stream(futures::stream::iter(paths).boxed());
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e).with_context(|| format!("deleting the compacted journal at {journal}")),
            }
        }
        Ok(CacheReport {
            entries_at_start,
            hits: hits.load(Ordering::Relaxed),
            stored: stored.load(Ordering::Relaxed),
            compacted: fresh.len() as u64,
        })
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        // A panic elsewhere cannot leave the map half-updated: inserts are single calls.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Writes the replies queued in `pending` to the journal, all that arrived while the last
/// object was being written in the next object, and tells each once it is durable. Ends
/// when the queue closes, with the objects it wrote.
async fn write_journal(journal: Location, run: String, mut pending: mpsc::UnboundedReceiver<Pending>) -> Vec<Path> {
    let mut written = Vec::new();
    let mut objects = 0;
    while let Some(first) = pending.recv().await {
        let mut group = vec![first];
        while group.len() < ENTRIES_PER_OBJECT {
            let Ok(next) = pending.try_recv() else { break };
            group.push(next);
        }
        let object = journal.join(&format!("{run}-{objects:06}.jsonl"));
        objects += 1;
        let mut lines = Vec::new();
        let result = match group.iter().try_for_each(|(entry, _)| {
            serde_json::to_writer(&mut lines, &**entry)?;
            lines.push(b'\n');
            Ok::<_, serde_json::Error>(())
        }) {
            Ok(()) => put(&object, lines).await.map_err(|e| format!("cannot write the response journal: {e}")),
            Err(e) => Err(format!("cannot write the response journal: {e}")),
        };
        if result.is_ok() {
            written.push(object.path().clone());
        }
        for (_, done) in group {
            // A request whose run was stopped no longer waits: nothing to tell.
            let _ = done.send(result.clone());
        }
    }
    written
}

/// The entries of a journal object. Anything else in the folder (the staging file of a
/// local write cut short by a crash) has none: a request whose reply is not readable is
/// sent again.
async fn journal_entries(store: &Arc<dyn ObjectStore>, path: Path) -> Result<Vec<Entry>> {
    if !path.filename().is_some_and(|name| name.ends_with(".jsonl")) {
        return Ok(Vec::new());
    }
    let bytes = store.get(&path).await?.bytes().await?;
    Ok(bytes.split(|&b| b == b'\n').filter_map(|line| serde_json::from_slice::<Entry>(line).ok()).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> Entry {
        Entry {
            key: format!("key{n:04}"),
            problem_id: format!("p{n}"),
            method: "tutorship".into(),
            rollout: 0,
            role: "student".into(),
            request_hash: format!("{n:032x}"),
            model: "tiny".into(),
            request: format!("{{\"n\": {n}}}"),
            response: "{\"choices\": []}\nwith a line break".into(),
            tokens_in: n as u64,
            tokens_out: 1,
            attempts: 1,
            answered_at: "2026-12-06T00:00:00.000Z".into(),
        }
    }

    fn journal_objects(lake: &std::path::Path) -> Vec<String> {
        std::fs::read_dir(lake.join(TABLE).join(JOURNAL))
            .map(|dir| dir.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replies_stored_together_share_journal_objects_and_survive_a_crash() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let lake = Lake::open(dir.path().to_str().ok_or_else(|| Error::Internal("path".into()))?)?;
        let ctx = SessionContext::new();
        let cache = ResponseCache::open(&lake, &ctx).await?;
        let stored: Vec<Arc<Entry>> = futures::future::try_join_all((0..500).map(|n| cache.store(entry(n)))).await?;
        assert_eq!(stored.len(), 500);
        let objects = journal_objects(dir.path());
        assert!(objects.iter().all(|name| name.ends_with(".jsonl")), "{objects:?}");
        assert!(objects.len() < 100, "500 replies at once went into {} objects", objects.len());
        // The process dies here: no compaction. A local write it cut short left a staging file.
        drop(cache);
        std::fs::write(dir.path().join(TABLE).join(JOURNAL).join("x.jsonl#1"), b"{\"key\": \"tor")?;

        let reopened = ResponseCache::open(&lake, &ctx).await?;
        assert_eq!(reopened.entries(), 500);
        let found = reopened.get("key0123").ok_or_else(|| Error::Internal("key0123 lost".into()))?;
        assert_eq!(*found, entry(123));
        reopened.store(entry(500)).await?;
        let report = reopened.compact(500).await?;
        assert_eq!((report.entries_at_start, report.stored, report.compacted), (500, 1, 501));
        // The staging file stays: the local store lists no names with a `#`.
        assert_eq!(journal_objects(dir.path()), ["x.jsonl#1"]);
        Ok(())
    }
}
