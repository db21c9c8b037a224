//! `mathlake dedup`: exact and near-duplicate removal.
//!
//! 1. Keys: every row gets `text_hash(text)` (exact duplicates after `normalize_text`)
//!    and, unless exact-only, one key per MinHash LSH band (`minhash_bands(minhash(text))`).
//! 2. Candidate pairs: rows sharing a key pair up. The (key, document handle) rows go to
//!    a local Parquet file once and come back in slices of the key space sized to the
//!    memory limit (1 GiB unless set), each sorted in memory, so no index of the whole
//!    corpus is ever built.
//! 3. Verification (optional, on by default): a candidate pair merges only when the Jaccard
//!    similarity estimated from the low bytes of all 112 signature values is at least
//!    `min_similarity`. LSH alone merges 5% of pairs at similarity 0.5 with 14 x 8 bands.
//!    The candidate documents' ids and signature bytes go to a second local Parquet file,
//!    read back in slices of the handle space sized to the memory limit.
//! 4. Connected components of the merged pairs (`components.rs`); each keeps its smallest
//!    id. The output is the input minus the other members, streamed; the cluster table
//!    lists every member of every component in id order: (id, cluster_id, kept);
//!    `cluster` alone is a SQL keyword (CLUSTER BY).
//!
//! What stays in memory whatever the limit: 16 bytes a candidate pair, 8 a candidate
//! document, the components of the merged ones and the handles of removed documents.

pub mod components;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, AsArray, BinaryArray, BooleanArray, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use self::components::Components;
use crate::error::{Error, Result};
use crate::lake::{
    Lake, Location, Output, ParquetFileWriter, SessionOptions, Target, TempFile, drain, quote, register_source,
    require_text_columns,
};
use crate::text::minhash::{MinHashConfig, MinHashScratch, MinHasher, document, estimated_jaccard, low_bytes};
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
        let options = DedupOptions {
            input: self.input.clone(),
            to: Target::parse(&self.to)?,
            clusters: self.clusters.as_deref().map(Target::parse).transpose()?,
            column: self.column.clone().unwrap_or_else(|| "text".into()),
            near: (!self.exact_only).then_some(near),
            min_similarity: self.min_similarity.unwrap_or(DEFAULT_MIN_SIMILARITY),
            session: SessionOptions::from_settings(self.memory_limit.as_deref(), self.spill_dir.as_deref())?,
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
    /// Components of two or more documents.
    pub clusters: u64,
    pub candidate_pairs: u64,
    /// Candidate pairs verification turned down.
    pub rejected_pairs: u64,
    pub seconds: f64,
}

pub async fn dedup(lake: &Lake, options: &DedupOptions, progress: &ProgressBar) -> Result<DedupReport> {
    let started = Instant::now();
    options.validate()?;
    let mut session = options.session.clone();
    let limit = *session.memory_limit.get_or_insert(DEFAULT_MEMORY_LIMIT) as u64;
    let ctx = crate::lake::session(lake, &session).await?;
    register_source(&ctx, lake, INPUT, &options.input).await?;
    require_text_columns(&ctx, INPUT, &options.input, &["id", &options.column], "--column").await?;
    let column = quote(&options.column);

    progress.set_message("dedup: grouping keys");
    let pairs = candidate_pairs(&ctx, &column, options.near.as_ref(), &session, limit, progress).await?;
    let candidate_count = pairs.len() as u64;

    progress.set_message("dedup: verifying candidates");
    let verify = options.near.filter(|_| options.min_similarity > 0.0);
    let candidates = write_candidates(&ctx, &column, verify.as_ref(), &pairs, &session, progress).await?;
    let min_similarity = verify.map(|_| options.min_similarity);
    let (components, rejected_pairs) = merge_similar(&ctx, pairs, candidates.rows, min_similarity, limit).await?;

    progress.set_message("dedup: clusters");
    let (removed, clusters) = settle_clusters(&ctx, lake, options.clusters.as_ref(), components).await?;
    drop(candidates);

    progress.set_message("dedup: writing");
    let (input_rows, output_rows) = write_kept(&ctx, lake, &options.to, &removed, progress).await?;
    Ok(DedupReport {
        input: options.input.clone(),
        to: options.to.describe(),
        clusters_to: options.clusters.as_ref().map(Target::describe),
        near: options.near,
        min_similarity: options.min_similarity,
        input_rows,
        output_rows,
        removed: removed.len() as u64,
        clusters,
        candidate_pairs: candidate_count,
        rejected_pairs,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Pairs (document, first document sharing a key with it), each once.
///
/// Every (key, document) row is written once to a local Parquet file (16 bytes a row),
/// then read back in slices of the key space (`key % slices`) sized to fit the memory
/// limit, each sorted in memory. DataFusion's external sort of all keys spilled thousands
/// of small runs at 4 GB of text and failed to merge them within the pool, and so did its
/// sort of one slice at times, holding several times the rows' 16 bytes; a window
/// function over the keys buffered all of them.
async fn candidate_pairs(
    ctx: &SessionContext,
    column: &str,
    near: Option<&MinHashConfig>,
    session: &SessionOptions,
    memory_limit: u64,
    progress: &ProgressBar,
) -> Result<Vec<(u64, u64)>> {
    let mut keys = format!("SELECT text_hash({column}) AS key, document_handle(id) AS doc FROM {INPUT}");
    if let Some(c) = near {
        keys += &format!(
            " UNION ALL SELECT unnest(minhash_bands(minhash({column}, {}, {}, {}), {}, {})), document_handle(id) FROM {INPUT}",
            c.ngram,
            c.permutations(),
            c.seed,
            c.bands,
            c.rows
        );
    }
    let file = session.temp_file("dedup-keys", "parquet");
    let location = Location::parse(&file.0.to_string_lossy())?;
    let frame = ctx.sql(&format!("SELECT key, doc FROM ({keys}) WHERE key IS NOT NULL AND doc IS NOT NULL")).await?;
    let mut writer = ParquetFileWriter::new(&location, SchemaRef::new(frame.schema().as_arrow().clone()))?;
    let mut rows = 0u64;
    let mut stream = frame.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        writer.write(&batch).await?;
    }
    writer.finish().await?;
    ctx.register_parquet(KEYS, location.url(), ParquetReadOptions::default()).await?;

    // Each slice is sorted in memory: 16 bytes a row, with room for the slice's share of
    // rows to come out uneven; a slice gets half the limit.
    let slices = (rows * 24).div_ceil((memory_limit / 2).max(1)).max(1);
    tracing::debug!(rows, slices, "dedup keys");
    let mut pairs = Vec::new();
    for slice in 0..slices {
        let sql = format!("SELECT key, doc FROM {KEYS} WHERE key % {slices} = {slice}");
        let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
        let mut keys = Vec::with_capacity((rows / slices + rows / slices / 8) as usize);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            progress.inc(batch.num_rows() as u64);
            let (key, doc) = (u64_column(&batch, 0)?, u64_column(&batch, 1)?);
            keys.extend(key.iter().copied().zip(doc.iter().copied()));
        }
        keys.sort_unstable();
        collect_pairs(&keys, &mut pairs);
    }
    pairs.sort_unstable();
    pairs.dedup();
    Ok(pairs)
}

/// Appends (document, first document of its key) for (key, document) rows in order.
fn collect_pairs(keys: &[(u64, u64)], pairs: &mut Vec<(u64, u64)>) {
    for group in keys.chunk_by(|x, y| x.0 == y.0) {
        let first = group[0].1;
        pairs.extend(group[1..].iter().filter(|&&(_, doc)| doc != first).map(|&(_, doc)| (doc, first)));
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
/// `None`) into components; returns them with the number of pairs turned down.
///
/// Signatures come from the candidates file in slices of the handle space (`doc % slices`),
/// two slices at a time, each sized to a quarter of the memory limit: the pairs are
/// grouped by the slices of their two documents, so each group needs just those two.
async fn merge_similar(
    ctx: &SessionContext,
    mut pairs: Vec<(u64, u64)>,
    candidates: u64,
    min_similarity: Option<f64>,
    memory_limit: u64,
) -> Result<(Components, u64)> {
    let mut components = Components::default();
    let Some(min_similarity) = min_similarity else {
        for (a, b) in pairs {
            components.union(a, b);
        }
        return Ok((components, 0));
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
                    components.union(a, b);
                } else {
                    rejected += 1;
                }
            }
        }
    }
    Ok((components, rejected))
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

/// Each component keeps its smallest id. Writes the cluster table to `target` (members
/// in id order) and returns the handles of the documents to remove and the number of
/// components.
///
/// One pass over the candidates in id order: the first member of a component to come by
/// is the one it keeps.
async fn settle_clusters(
    ctx: &SessionContext,
    lake: &Lake,
    target: Option<&Target>,
    mut components: Components,
) -> Result<(HashSet<u64>, u64)> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("cluster_id", DataType::Utf8, false),
        Field::new("kept", DataType::Boolean, false),
    ]));
    let mut output = match target {
        Some(target) => Some(Output::open(lake, target, schema.clone()).await?),
        None => None,
    };
    // Sorted as plain strings: DataFusion reads Parquet text as views of whole pages and
    // counts those pages against the pool, so sorting the views ran out of it at 4 GB.
    let sql = format!("SELECT doc, arrow_cast(id, 'Utf8') AS id FROM {CANDIDATES} ORDER BY id");
    let mut kept: HashMap<u64, String> = HashMap::new();
    let mut removed = HashSet::new();
    let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let (mut ids, mut roots) = (Vec::new(), Vec::new());
        for (&doc, id) in u64_column(&batch, 0)?.iter().zip(texts(batch.column(1))?) {
            let (Some(root), Some(id)) = (components.component(doc), id) else { continue };
            if kept.entry(root).or_insert_with(|| id.to_string()) != id {
                removed.insert(doc);
            }
            ids.push(id);
            roots.push(root);
        }
        if let Some(output) = &mut output
            && !ids.is_empty()
        {
            let reps: Vec<&str> = roots.iter().map(|root| kept[root].as_str()).collect();
            let is_kept: BooleanArray = ids.iter().zip(&reps).map(|(id, rep)| Some(id == rep)).collect();
            let columns: Vec<ArrayRef> =
                vec![Arc::new(StringArray::from(ids)), Arc::new(StringArray::from(reps)), Arc::new(is_kept)];
            output.write(&RecordBatch::try_new(schema.clone(), columns)?).await?;
        }
    }
    if let Some(output) = output {
        output.finish("dedup clusters", serde_json::json!({})).await?;
    }
    Ok((removed, kept.len() as u64))
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

/// Streams the input minus `removed` to `target`; returns rows read and written.
async fn write_kept(
    ctx: &SessionContext,
    lake: &Lake,
    target: &Target,
    removed: &HashSet<u64>,
    progress: &ProgressBar,
) -> Result<(u64, u64)> {
    let frame = ctx.table(INPUT).await?;
    let schema = SchemaRef::new(frame.schema().as_arrow().clone());
    let id_index = schema.index_of("id")?;
    let mut output = Output::open(lake, target, schema).await?;
    let read = drain(frame, progress, async |batch| {
        let keep: BooleanArray = texts(batch.column(id_index))?
            .map(|id| Some(!id.is_some_and(|id| removed.contains(&document(id)))))
            .collect();
        output.write(&filter_record_batch(batch, &keep)?).await
    })
    .await?;
    let written = output.finish("dedup", serde_json::json!({ "removed": removed.len() })).await?;
    Ok((read, written.rows))
}
