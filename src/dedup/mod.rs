//! `mathlake dedup`: exact and near-duplicate removal.
//!
//! 1. Keys: every row gets `text_hash(text)` (exact duplicates after `normalize_text`)
//!    and, unless exact-only, one key per MinHash LSH band (`minhash_bands(minhash(text))`),
//!    and a place in ingest order: its input object and position there (`input`,
//!    `position`, as ingest writes them), or only its handle when the input lacks them.
//! 2. Candidate pairs: each row pairs with the earliest row sharing a key with it. The
//!    (key, place, document handle) rows go to a local Parquet file once and come back in
//!    slices of the key space sized to the memory limit (1 GiB unless set), each sorted in
//!    memory, so no index of the whole corpus is held.
//! 3. Verification (optional, on by default): a candidate pair merges only when the Jaccard
//!    similarity estimated from the low bytes of all 112 signature values is at least
//!    `min_similarity`. LSH alone merges 5% of pairs at similarity 0.5 with 14 x 8 bands.
//!    The candidate documents' ids and signature bytes go to a second local Parquet file,
//!    read back in slices of the handle space sized to the memory limit.
//! 4. Clusters (`clusters.rs`): each document that passed joins the cluster of the
//!    earliest document it was paired with, so each cluster keeps its earliest member. The
//!    output is the input minus the other members, streamed; the cluster table lists every
//!    member of every cluster: (id, cluster_id, kept); `cluster` alone is a SQL keyword
//!    (CLUSTER BY).
//!
//! Incremental runs (`incremental.rs`) check only the rows the input gained against the
//! signature index (`index.rs`) a full run leaves, and reach the same tables as a full
//! run: pairs and clusters go to earlier documents, so later documents never change what
//! earlier ones were paired with or which copy a cluster kept.
//!
//! What stays in memory whatever the limit: 16 bytes a candidate pair, 16 a candidate
//! document, the clusters of the merged ones and the handles of removed documents.

pub mod clusters;
pub mod incremental;
pub mod index;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, RecordBatch, StringArray, UInt64Array,
};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, UInt32Type, UInt64Type};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use self::clusters::Forest;
use self::index::{IndexRows, Place, Seen};
use crate::error::{Error, Result};
use crate::lake::engine::Engine;
use crate::lake::incremental::Update;
use crate::lake::{
    CommitMode, Lake, Location, Output, ParquetFileWriter, SessionOptions, Target, TempFile, drain, quote,
    register_source, register_table, require_text_columns, validate_name,
};
use crate::text::minhash::{
    MinHashConfig, MinHashScratch, MinHasher, band_hashes, document, estimated_jaccard, low_bytes,
};
use crate::text::texts;

const INPUT: &str = "dedup_input";
const KEYS: &str = "dedup_keys";
const CANDIDATES: &str = "dedup_candidates";

/// The memory dedup works within unless `--memory-limit` says: the slices of keys and of
/// signatures are sized to it, and DataFusion's operators spill beyond it (without a
/// limit they would keep every key in memory, 15 per document).
pub const DEFAULT_MEMORY_LIMIT: usize = 1 << 30;

/// Candidate pairs whose estimated similarity is below this do not merge: LSH with
/// 14 x 8 bands lets through 5% of pairs at similarity 0.5, and in math text such pairs
/// are often different problems in the same template.
pub const DEFAULT_MIN_SIMILARITY: f64 = 0.7;

/// The settings of one dedup, as `mathlake dedup` flags and as a job's `kind = "dedup"`
/// stage: one definition, so both accept the same names with the same defaults.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupSpec {
    /// In a job file: the stage's name in logs and summaries.
    #[arg(skip)]
    #[serde(default)]
    pub name: Option<String>,
    /// Documents: a lake table, a table's URL, or Parquet files.
    #[arg(long)]
    pub input: String,
    /// Where the unique rows go: a lake table (replaced) or a .parquet URL.
    #[arg(long)]
    pub to: String,
    /// Where the cluster table (id, cluster_id, kept) goes, one row per member of each cluster.
    #[arg(long)]
    #[serde(default)]
    pub clusters: Option<String>,
    /// The text column [default: text].
    #[arg(long)]
    #[serde(default)]
    pub column: Option<String>,
    /// Only exact duplicates (same normalize_text), no MinHash.
    #[arg(long)]
    #[serde(default)]
    pub exact_only: bool,
    /// Words per shingle [default: 5].
    #[arg(long)]
    #[serde(default)]
    pub ngram: Option<usize>,
    /// LSH bands [default: 14].
    #[arg(long)]
    #[serde(default)]
    pub bands: Option<usize>,
    /// Signature values per band [default: 8].
    #[arg(long)]
    #[serde(default)]
    pub rows: Option<usize>,
    /// Seeds the permutations: signatures compare only under the same seed [default: 1].
    #[arg(long)]
    #[serde(default)]
    pub seed: Option<u64>,
    /// Estimated Jaccard similarity a candidate pair needs to merge (0: every candidate)
    /// [default: 0.7].
    #[arg(long)]
    #[serde(default)]
    pub min_similarity: Option<f64>,
    /// Memory DataFusion's operators may hold before they spill (e.g. 512M, 4G) [default: 1G].
    #[arg(long, value_name = "SIZE")]
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// Where spill files go [default: the system temp folder].
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub spill_dir: Option<PathBuf>,
    /// When the input table only gained rows since the version the output was made from
    /// (same settings), check those rows against the signature index and append what is
    /// new; the tables equal a full run's.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incremental: bool,
    /// The lake table of every document's keys and signature that incremental runs check
    /// new rows against [default with --incremental: TO_signatures].
    #[arg(long, value_name = "TABLE")]
    #[serde(default)]
    pub index: Option<String>,
    /// Where each document's MinHash signature and exact hash are computed: local,
    /// standalone (Ballista in this process) or ballista://HOST:PORT (both need the
    /// `distributed` build); grouping keys, verifying pairs and clustering stay in this
    /// process [default: local].
    #[arg(long)]
    #[serde(default)]
    pub engine: Option<String>,
}

impl DedupSpec {
    pub fn to_options(&self) -> Result<DedupOptions> {
        let defaults = MinHashConfig::default();
        let near = MinHashConfig {
            ngram: self.ngram.unwrap_or(defaults.ngram),
            bands: self.bands.unwrap_or(defaults.bands),
            rows: self.rows.unwrap_or(defaults.rows),
            seed: self.seed.unwrap_or(defaults.seed),
        };
        let to = Target::parse(&self.to)?;
        let mut clusters = self.clusters.as_deref().map(Target::parse).transpose()?;
        let mut index = self.index.clone();
        if self.incremental {
            let (Target::Table(name), true) = (&to, validate_name(&self.input).is_ok()) else {
                return Err(Error::user("incremental dedup reads a lake table and writes one")
                    .hint("name tables in --input and --to, not files"));
            };
            clusters.get_or_insert_with(|| Target::Table(format!("{name}_clusters")));
            index.get_or_insert_with(|| format!("{name}_signatures"));
            if !matches!(clusters, Some(Target::Table(_))) {
                return Err(Error::user("incremental dedup keeps its clusters in a lake table")
                    .hint("name a table in --clusters, or leave it out for TO_clusters"));
            }
        }
        if let Some(index) = &index {
            validate_name(index)?;
        }
        let options = DedupOptions {
            input: self.input.clone(),
            to,
            clusters,
            index,
            incremental: self.incremental,
            column: self.column.clone().unwrap_or_else(|| "text".into()),
            near: (!self.exact_only).then_some(near),
            min_similarity: self.min_similarity.unwrap_or(DEFAULT_MIN_SIMILARITY),
            session: SessionOptions::from_settings(self.memory_limit.as_deref(), self.spill_dir.as_deref())?
                .on_engine(self.engine.as_deref())?,
        };
        options.validate()?;
        Ok(options)
    }
}

#[derive(Debug, Clone)]
pub struct DedupOptions {
    /// A lake table, a table's URL, or Parquet files.
    pub input: String,
    pub to: Target,
    pub clusters: Option<Target>,
    /// The lake table of the signature index, when one is kept.
    pub index: Option<String>,
    /// Append the input's new rows when that is all that changed (see DedupSpec).
    pub incremental: bool,
    /// The text column; rows also need a string `id`.
    pub column: String,
    /// MinHash LSH settings; `None` removes exact duplicates only.
    pub near: Option<MinHashConfig>,
    /// The estimated Jaccard similarity a candidate pair needs to merge; 0 merges every
    /// candidate pair (FineWeb's way).
    pub min_similarity: f64,
    pub session: SessionOptions,
}

impl DedupOptions {
    /// Refuses settings that cannot work, before any work is done.
    fn validate(&self) -> Result<()> {
        if let Some(config) = &self.near {
            config.validate().map_err(Error::user)?;
        }
        if !(0.0..=1.0).contains(&self.min_similarity) {
            return Err(Error::user(format!("min similarity must be 0 to 1, not {}", self.min_similarity)));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DedupReport {
    pub input: String,
    pub to: String,
    pub clusters_to: Option<String>,
    pub near: Option<MinHashConfig>,
    pub min_similarity: f64,
    pub input_rows: u64,
    pub output_rows: u64,
    pub removed: u64,
    /// Clusters of two or more documents.
    pub clusters: u64,
    pub candidate_pairs: u64,
    /// Candidate pairs verification turned down.
    pub rejected_pairs: u64,
    pub seconds: f64,
    /// An incremental run: how the output was brought up to date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
}

/// What must be as it was for an incremental dedup to add to its output.
const SAME_SETTINGS: &[&str] = &["input", "column", "near", "min_similarity", "index", "clusters"];

pub async fn dedup(lake: &Lake, options: &DedupOptions, progress: &ProgressBar) -> Result<DedupReport> {
    let started = Instant::now();
    options.validate()?;
    let mut session = options.session.clone();
    let limit = *session.memory_limit.get_or_insert(DEFAULT_MEMORY_LIMIT) as u64;
    // Only the scan runs on the engine (see `scan`): the rest reads this process's files.
    let engine = std::mem::take(&mut session.engine);
    let ctx = crate::lake::session(lake, &session).await?;
    session.engine = engine;
    let read = register_source(&ctx, lake, INPUT, &options.input).await?;
    require_text_columns(&ctx, INPUT, &options.input, &["id", &options.column], "--column").await?;
    let column = quote(&options.column);
    let details = serde_json::json!({
        "input": options.input,
        "column": options.column,
        "near": options.near,
        "min_similarity": options.min_similarity,
        "index": options.index,
        "clusters": options.clusters.as_ref().map(Target::describe),
        "read": read.as_ref().map(|v| serde_json::json!({ &options.input: v.version })),
    });
    let mut update = None;
    if options.incremental {
        if !has_provenance(&ctx).await? {
            return Err(Error::user(format!(
                "incremental dedup keeps the copy ingested first, and `{}` has no input and position columns to tell",
                options.input
            ))
            .hint("keep `input` and `position` (as ingest writes them) in the table dedup reads"));
        }
        let decided = incremental::decide(lake, options, &details).await?;
        update = Some(decided.0.describe());
        match decided {
            (Update::Unchanged, _) => {
                return Ok(DedupReport {
                    update,
                    seconds: started.elapsed().as_secs_f64(),
                    ..DedupReport::of(options)
                });
            }
            (Update::Append { delta, .. }, Some(recorded)) => {
                ctx.deregister_table(INPUT)?;
                register_table(&ctx, INPUT, &lake.table(&options.input)?, &delta)?;
                let run = incremental::Run { ctx: &ctx, lake, options, column: &column, progress };
                match run.append(recorded, details.clone(), started).await? {
                    incremental::Outcome::Appended(mut report) => {
                        report.update = update;
                        return Ok(*report);
                    }
                    incremental::Outcome::Rebuild(reason) => {
                        update = Some(format!("rebuilt: {reason}"));
                        ctx.deregister_table(INPUT)?;
                        register_source(&ctx, lake, INPUT, &options.input).await?;
                    }
                }
            }
            _ => {}
        }
    }
    let mut report = full(&ctx, lake, options, &column, &session, limit, details, progress).await?;
    report.update = update;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Deduplicates the whole input, replacing the output (and the clusters and index).
#[allow(clippy::too_many_arguments)]
async fn full(
    ctx: &SessionContext,
    lake: &Lake,
    options: &DedupOptions,
    column: &str,
    session: &SessionOptions,
    limit: u64,
    mut details: serde_json::Value,
    progress: &ProgressBar,
) -> Result<DedupReport> {
    progress.set_message("dedup: grouping keys");
    let mut index = match &options.index {
        Some(name) => Some(Output::open(lake, &Target::Table(name.clone()), index::schema()).await?),
        None => None,
    };
    let (pairs, ordinals, last) =
        candidate_pairs(ctx, column, options.near.as_ref(), session, limit, index.as_mut(), progress).await?;
    let candidate_count = pairs.len() as u64;
    let index_version = match index {
        Some(index) => index.finish("dedup index", serde_json::json!({})).await?.version.map(|v| v.version),
        None => None,
    };

    progress.set_message("dedup: verifying candidates");
    let verify = options.near.filter(|_| options.min_similarity > 0.0);
    let candidates = write_candidates(ctx, column, verify.as_ref(), &pairs, session, progress).await?;
    let min_similarity = verify.map(|_| options.min_similarity);
    let (forest, rejected_pairs) = merge_similar(ctx, pairs, &ordinals, candidates.rows, min_similarity, limit).await?;

    progress.set_message("dedup: clusters");
    let (removed, clusters, clusters_version) =
        settle_clusters(ctx, lake, options.clusters.as_ref(), forest.clusters()).await?;
    drop(candidates);

    progress.set_message("dedup: writing");
    if let Some(object) = details.as_object_mut() {
        object.insert("index_version".into(), index_version.into());
        object.insert("clusters_version".into(), clusters_version.into());
        object.insert("last".into(), serde_json::to_value(&last)?);
    }
    let (input_rows, output_rows) =
        write_kept(ctx, lake, &options.to, CommitMode::Replace, &removed, details, progress).await?;
    Ok(DedupReport {
        input_rows,
        output_rows,
        removed: removed.len() as u64,
        clusters,
        candidate_pairs: candidate_count,
        rejected_pairs,
        ..DedupReport::of(options)
    })
}

impl DedupReport {
    /// A report of nothing read and nothing written yet, for `options`.
    fn of(options: &DedupOptions) -> DedupReport {
        DedupReport {
            input: options.input.clone(),
            to: options.to.describe(),
            clusters_to: options.clusters.as_ref().map(Target::describe),
            near: options.near,
            min_similarity: options.min_similarity,
            input_rows: 0,
            output_rows: 0,
            removed: 0,
            clusters: 0,
            candidate_pairs: 0,
            rejected_pairs: 0,
            seconds: 0.0,
            update: None,
        }
    }
}

/// Reads every document of `INPUT` once: its keys (exact hash, and with `near` one per
/// LSH band), its signature's low bytes (with `near`) and its place in ingest order; hands
/// each to `each`, writes its index row to `index` and its (key, ordinal, doc) rows to
/// `keys`, when given. Returns the documents read.
///
/// The signatures are the per-document work, so this one query runs on `engine`; its
/// session shares `ctx`'s tables.
#[allow(clippy::too_many_arguments)]
async fn scan(
    ctx: &SessionContext,
    engine: &Engine,
    column: &str,
    near: Option<&MinHashConfig>,
    mut index: Option<&mut Output>,
    mut keys: Option<&mut ParquetFileWriter>,
    progress: &ProgressBar,
    mut each: impl FnMut(&Seen),
) -> Result<u64> {
    let ctx = &crate::lake::engine::connect(ctx.clone(), engine).await?;
    let provenance = has_provenance(ctx).await?;
    // Ranks of the input objects' URLs, so that a place is one number in the key sort.
    let mut ranks: HashMap<String, u64> = HashMap::new();
    if provenance {
        let mut inputs = Vec::new();
        let mut stream = ctx.sql(&format!("SELECT DISTINCT input FROM {INPUT}")).await?.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            inputs.extend(texts(batch?.column(0))?.flatten().map(String::from));
        }
        inputs.sort_unstable();
        ranks = inputs.into_iter().enumerate().map(|(rank, input)| (input, rank as u64)).collect();
    }
    let signature = match near {
        Some(c) => format!("minhash({column}, {}, {}, {})", c.ngram, c.permutations(), c.seed),
        None => "NULL".into(),
    };
    let place =
        if provenance { "input, position" } else { "CAST(NULL AS VARCHAR) AS input, CAST(NULL AS BIGINT) AS position" };
    let sql = format!(
        "SELECT id, text_hash({column}) AS exact, {signature} AS signature, {place} FROM {INPUT} WHERE id IS NOT NULL"
    );
    let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
    let mut rows = IndexRows::default();
    let mut read = 0;
    let mut signature = Vec::new();
    let (mut key_rows, mut ordinals, mut docs) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        progress.inc(batch.num_rows() as u64);
        read += batch.num_rows() as u64;
        let exact = batch.column(1).as_primitive_opt::<UInt64Type>();
        let signatures = batch.column(2).as_list_opt::<i32>();
        let positions = datafusion::arrow::compute::cast(batch.column(4), &DataType::Int64)?;
        let positions = positions.as_primitive::<Int64Type>();
        for (row, (id, input)) in texts(batch.column(0))?.zip(texts(batch.column(3))?).enumerate() {
            let Some(id) = id else { continue };
            let mut own = Vec::with_capacity(1 + near.map_or(0, |c| c.bands));
            own.extend(exact.filter(|e| e.is_valid(row)).map(|e| e.value(row)));
            let mut low = None;
            if let (Some(c), Some(list)) = (near, signatures)
                && list.is_valid(row)
            {
                let values = list.value(row);
                signature.clear();
                signature.extend_from_slice(values.as_primitive::<UInt32Type>().values());
                own.extend(band_hashes(&signature, c.bands, c.rows));
                low = Some(low_bytes(&signature));
            }
            let input = input.unwrap_or_default();
            let position = if positions.is_valid(row) { positions.value(row) } else { 0 };
            let seen = Seen {
                id: id.to_string(),
                ordinal: ranks.get(input).copied().unwrap_or(0) << 40 | position.clamp(0, (1 << 40) - 1) as u64,
                place: Place { input: input.to_string(), position, doc: document(id) },
                keys: own,
                signature: low,
            };
            each(&seen);
            if index.is_some() {
                rows.push(&seen);
            }
            if keys.is_some() {
                key_rows.extend_from_slice(&seen.keys);
                ordinals.extend(std::iter::repeat_n(seen.ordinal, seen.keys.len()));
                docs.extend(std::iter::repeat_n(seen.place.doc, seen.keys.len()));
            }
        }
        if let Some(index) = index.as_deref_mut() {
            index.write(&rows.take()?).await?;
        }
        if let Some(keys) = keys.as_deref_mut() {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(UInt64Array::from(std::mem::take(&mut key_rows))),
                Arc::new(UInt64Array::from(std::mem::take(&mut ordinals))),
                Arc::new(UInt64Array::from(std::mem::take(&mut docs))),
            ];
            keys.write(&RecordBatch::try_new(key_schema(), columns)?).await?;
        }
    }
    Ok(read)
}

/// The rows of the keys file: (key, ordinal, doc).
fn key_schema() -> SchemaRef {
    static SCHEMA: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::UInt64, false),
            Field::new("ordinal", DataType::UInt64, false),
            Field::new("doc", DataType::UInt64, false),
        ]))
    });
    SCHEMA.clone()
}

/// Whether the input says where each row was ingested from (`input` and `position`, as
/// ingested tables and curation that keeps them do): then each cluster keeps the copy
/// ingested first; without them, a fixed one (the lowest handle).
async fn has_provenance(ctx: &SessionContext) -> Result<bool> {
    let frame = ctx.table(INPUT).await?;
    let schema = frame.schema();
    let is = |name: &str, types: &[DataType]| {
        schema.field_with_unqualified_name(name).is_ok_and(|f| types.contains(f.data_type()))
    };
    Ok(is("input", &[DataType::Utf8, DataType::Utf8View, DataType::LargeUtf8])
        && is("position", &[DataType::Int64, DataType::Int32, DataType::UInt32, DataType::UInt64]))
}

/// Pairs (document, first document in ingest order sharing a key with it), each once,
/// with the ordinal of every document in a pair. The first in ingest order, so that
/// documents added later never change the pairs of those before them: an incremental run
/// finds the same pairs as a full one.
///
/// Every (key, ordinal, document) row is written once to a local Parquet file (24 bytes
/// a row) as the documents are read, then read back in slices of the key space (`key % slices`) sized to fit the
/// memory limit, each sorted in memory. DataFusion's external sort of all keys spilled
/// thousands of small runs at 4 GB of text and failed to merge them within the pool, and
/// so did its sort of one slice at times, holding several times the rows' bytes; a window
/// function over the keys buffered all of them.
async fn candidate_pairs(
    ctx: &SessionContext,
    column: &str,
    near: Option<&MinHashConfig>,
    session: &SessionOptions,
    memory_limit: u64,
    index: Option<&mut Output>,
    progress: &ProgressBar,
) -> Result<(Vec<(u64, u64)>, HashMap<u64, u64>, Option<Place>)> {
    let file = session.temp_file("dedup-keys", "parquet");
    let location = Location::parse(&file.0.to_string_lossy())?;
    let mut writer = ParquetFileWriter::new(&location, key_schema())?;
    let mut rows = 0u64;
    let mut last: Option<(u64, Place)> = None;
    scan(ctx, &session.engine, column, near, index, Some(&mut writer), progress, |seen| {
        rows += seen.keys.len() as u64;
        if last.as_ref().is_none_or(|(ordinal, place)| (seen.ordinal, seen.place.doc) > (*ordinal, place.doc)) {
            last = Some((seen.ordinal, seen.place.clone()));
        }
    })
    .await?;
    writer.finish().await?;
    ctx.register_parquet(KEYS, location.url(), ParquetReadOptions::default()).await?;

    // Each slice is sorted in memory: 24 bytes a row, with room for the slice's share of
    // rows to come out uneven; a slice gets half the limit.
    let slices = (rows * 32).div_ceil((memory_limit / 2).max(1)).max(1);
    tracing::debug!(rows, slices, "dedup keys");
    let mut pairs = Vec::new();
    let mut ordinals = HashMap::new();
    for slice in 0..slices {
        let sql = format!("SELECT key, ordinal, doc FROM {KEYS} WHERE key % {slices} = {slice}");
        let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
        let mut keys = Vec::with_capacity((rows / slices + rows / slices / 8) as usize);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            progress.inc(batch.num_rows() as u64);
            let (key, ordinal, doc) = (u64_column(&batch, 0)?, u64_column(&batch, 1)?, u64_column(&batch, 2)?);
            keys.extend(key.iter().zip(ordinal).zip(doc).map(|((&k, &o), &d)| (k, o, d)));
        }
        keys.sort_unstable();
        collect_pairs(&keys, &mut pairs, &mut ordinals);
    }
    pairs.sort_unstable();
    pairs.dedup();
    Ok((pairs, ordinals, last.map(|(_, place)| place)))
}

/// Appends (document, first document of its key) for (key, ordinal, document) rows in
/// order, and notes the ordinal of each document paired.
fn collect_pairs(keys: &[(u64, u64, u64)], pairs: &mut Vec<(u64, u64)>, ordinals: &mut HashMap<u64, u64>) {
    for group in keys.chunk_by(|x, y| x.0 == y.0) {
        let (_, first_ordinal, first) = group[0];
        for &(_, ordinal, doc) in &group[1..] {
            if doc != first {
                pairs.push((doc, first));
                ordinals.insert(doc, ordinal);
                ordinals.insert(first, first_ordinal);
            }
        }
    }
}

/// Bytes a candidate loaded for verification takes: its handle, signature bytes and map entry.
const CANDIDATE_BYTES: u64 = 160;

/// The local Parquet file of the candidate documents: (doc, id, signature), one row each.
struct Candidates {
    rows: u64,
    /// Removes the file when dropped.
    _file: TempFile,
}

/// Writes every document of a pair, once, to the `CANDIDATES` table: its handle, id and,
/// with `verify`, the low bytes of its signature (NULL for a text without words).
async fn write_candidates(
    ctx: &SessionContext,
    column: &str,
    verify: Option<&MinHashConfig>,
    pairs: &[(u64, u64)],
    session: &SessionOptions,
    progress: &ProgressBar,
) -> Result<Candidates> {
    let mut wanted: Vec<u64> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
    wanted.sort_unstable();
    wanted.dedup();
    // An id can repeat in the input; its first row stands for it, as in the keys.
    let mut written = vec![false; wanted.len()];
    let hasher = verify.map(MinHasher::from_config);
    let mut scratch = MinHashScratch::default();
    let mut signature = Vec::new();
    let schema = Arc::new(Schema::new(vec![
        Field::new("doc", DataType::UInt64, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("signature", DataType::Binary, true),
    ]));
    let file = session.temp_file("dedup-candidates", "parquet");
    let location = Location::parse(&file.0.to_string_lossy())?;
    let mut writer = ParquetFileWriter::new(&location, schema.clone())?;
    let sql = match verify {
        Some(_) => format!("SELECT id, {column} FROM {INPUT}"),
        None => format!("SELECT id, NULL AS text FROM {INPUT}"),
    };
    let mut rows = 0;
    let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        progress.inc(batch.num_rows() as u64);
        let (mut docs, mut ids, mut signatures) = (Vec::new(), Vec::new(), Vec::new());
        for (id, text) in texts(batch.column(0))?.zip(texts(batch.column(1))?) {
            let Some(id) = id else { continue };
            let doc = document(id);
            let Ok(n) = wanted.binary_search(&doc) else { continue };
            if std::mem::replace(&mut written[n], true) {
                continue;
            }
            let low = hasher.as_ref().zip(text).and_then(|(hasher, text)| {
                hasher.signature(text, &mut scratch, &mut signature).then(|| low_bytes(&signature))
            });
            docs.push(doc);
            ids.push(id);
            signatures.push(low);
        }
        if docs.is_empty() {
            continue;
        }
        rows += docs.len() as u64;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(docs)),
            Arc::new(StringArray::from(ids)),
            Arc::new(signatures.iter().map(|s| s.as_deref()).collect::<BinaryArray>()),
        ];
        writer.write(&RecordBatch::try_new(schema.clone(), columns)?).await?;
    }
    writer.finish().await?;
    ctx.register_parquet(CANDIDATES, location.url(), ParquetReadOptions::default()).await?;
    Ok(Candidates { rows, _file: file })
}

/// Joins the pairs whose estimated similarity reaches `min_similarity` (every pair when
/// `None`) into clusters; returns them with the number of pairs turned down.
///
/// Signatures come from the candidates file in slices of the handle space (`doc % slices`),
/// two slices at a time, each sized to a quarter of the memory limit: the pairs are
/// grouped by the slices of their two documents, so each group needs just those two.
async fn merge_similar(
    ctx: &SessionContext,
    mut pairs: Vec<(u64, u64)>,
    ordinals: &HashMap<u64, u64>,
    candidates: u64,
    min_similarity: Option<f64>,
    memory_limit: u64,
) -> Result<(Forest, u64)> {
    let mut forest = Forest::default();
    let rank = |doc: u64| (ordinals.get(&doc).copied().unwrap_or(0), doc);
    let Some(min_similarity) = min_similarity else {
        for (a, b) in pairs {
            forest.link(a, rank(b));
        }
        return Ok((forest, 0));
    };
    let slices = (candidates * CANDIDATE_BYTES).div_ceil((memory_limit / 4).max(1)).max(1);
    tracing::debug!(candidates, slices, "dedup signatures");
    pairs.sort_unstable_by_key(|&(a, b)| (a % slices, b % slices));
    let mut rejected = 0;
    for group in pairs.chunk_by(|x, y| x.0 % slices == y.0 % slices) {
        let left_slice = group[0].0 % slices;
        let left = signatures(ctx, slices, left_slice).await?;
        for part in group.chunk_by(|x, y| x.1 % slices == y.1 % slices) {
            let right_slice = part[0].1 % slices;
            let loaded;
            let right = if right_slice == left_slice {
                &left
            } else {
                loaded = signatures(ctx, slices, right_slice).await?;
                &loaded
            };
            for &(a, b) in part {
                let (Some(x), Some(y)) = (left.get(&a), right.get(&b)) else {
                    return Err(Error::Internal(format!("dedup candidate {a:x} or {b:x} was not written")));
                };
                // A text without words has no signature: its pair came from the exact key.
                let similar = match (x, y) {
                    (Some(x), Some(y)) => estimated_jaccard(x, y) >= min_similarity,
                    _ => true,
                };
                if similar {
                    forest.link(a, rank(b));
                } else {
                    rejected += 1;
                }
            }
        }
    }
    Ok((forest, rejected))
}

/// The signatures of the candidates in one slice of the handle space.
async fn signatures(ctx: &SessionContext, slices: u64, slice: u64) -> Result<HashMap<u64, Option<Box<[u8]>>>> {
    let sql = format!("SELECT doc, signature FROM {CANDIDATES} WHERE doc % {slices} = {slice}");
    let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
    let mut map = HashMap::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let docs = u64_column(&batch, 0)?;
        // DataFusion reads Parquet's binary as a view type.
        let column = batch.column(1);
        let signatures: Box<dyn Iterator<Item = Option<&[u8]>>> = match column.data_type() {
            DataType::BinaryView => Box::new(column.as_binary_view().iter()),
            DataType::Binary => Box::new(column.as_binary::<i32>().iter()),
            other => return Err(Error::Internal(format!("dedup signatures are {other}, not binary"))),
        };
        for (doc, signature) in docs.iter().zip(signatures) {
            map.insert(*doc, signature.map(Box::from));
        }
    }
    Ok(map)
}

/// Writes the cluster table to `target` from `clusters` (member -> root, the copy kept)
/// and returns the handles of the documents to remove, the number of clusters and the
/// cluster table's new version.
///
/// Two passes over the candidates, in no order (a sort of them ran out of a small memory
/// limit): the first finds the ids of the roots, the second writes every member.
async fn settle_clusters(
    ctx: &SessionContext,
    lake: &Lake,
    target: Option<&Target>,
    clusters: HashMap<u64, u64>,
) -> Result<(HashSet<u64>, u64, Option<u64>)> {
    let sql = format!("SELECT doc, id FROM {CANDIDATES}");
    let mut kept: HashMap<u64, String> = HashMap::new();
    let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        for (&doc, id) in u64_column(&batch, 0)?.iter().zip(texts(batch.column(1))?) {
            if let (Some(&root), Some(id)) = (clusters.get(&doc), id)
                && root == doc
            {
                kept.insert(root, id.to_string());
            }
        }
    }

    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("cluster_id", DataType::Utf8, false),
        Field::new("kept", DataType::Boolean, false),
    ]));
    let mut output = match target {
        Some(target) => Some(Output::open(lake, target, schema.clone()).await?),
        None => None,
    };
    let mut removed = HashSet::new();
    let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let (mut ids, mut reps) = (Vec::new(), Vec::new());
        for (&doc, id) in u64_column(&batch, 0)?.iter().zip(texts(batch.column(1))?) {
            let (Some(&root), Some(id)) = (clusters.get(&doc), id) else { continue };
            let Some(rep) = kept.get(&root) else {
                return Err(Error::Internal(format!("dedup cluster {root:x} has no kept member")));
            };
            if root != doc {
                removed.insert(doc);
            }
            ids.push(id);
            reps.push(rep.as_str());
        }
        if let Some(output) = &mut output
            && !ids.is_empty()
        {
            let is_kept: BooleanArray = ids.iter().zip(&reps).map(|(id, rep)| Some(id == rep)).collect();
            let columns: Vec<ArrayRef> =
                vec![Arc::new(StringArray::from(ids)), Arc::new(StringArray::from(reps)), Arc::new(is_kept)];
            output.write(&RecordBatch::try_new(schema.clone(), columns)?).await?;
        }
    }
    let version = match output {
        Some(output) => output.finish("dedup clusters", serde_json::json!({})).await?.version.map(|v| v.version),
        None => None,
    };
    Ok((removed, kept.len() as u64, version))
}

/// The values of a key or handle column (UInt64, no NULLs: the queries filter them out).
fn u64_column(batch: &RecordBatch, index: usize) -> Result<&[u64]> {
    match batch.column(index).as_primitive_opt::<UInt64Type>() {
        Some(values) => Ok(values.values()),
        None => {
            Err(Error::Internal(format!("dedup column {index} is {}, not UInt64", batch.column(index).data_type())))
        }
    }
}

/// Streams the input minus `removed` to `target` (replacing its rows, or with
/// `CommitMode::Append` adding to them), its version recording `details`; returns rows
/// read and written.
async fn write_kept(
    ctx: &SessionContext,
    lake: &Lake,
    target: &Target,
    mode: CommitMode,
    removed: &HashSet<u64>,
    mut details: serde_json::Value,
    progress: &ProgressBar,
) -> Result<(u64, u64)> {
    let frame = ctx.table(INPUT).await?;
    let schema = SchemaRef::new(frame.schema().as_arrow().clone());
    let id_index = schema.index_of("id")?;
    let mut output = Output::open_with(lake, target, schema, mode).await?;
    let read = drain(frame, progress, async |batch| {
        let keep: BooleanArray = texts(batch.column(id_index))?
            .map(|id| Some(!id.is_some_and(|id| removed.contains(&document(id)))))
            .collect();
        output.write(&filter_record_batch(batch, &keep)?).await
    })
    .await?;
    if let Some(object) = details.as_object_mut() {
        object.insert("removed".into(), removed.len().into());
    }
    let written = output.finish("dedup", details).await?;
    Ok((read, written.rows))
}
