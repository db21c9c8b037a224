//! `mathlake dedup`: exact and near-duplicate removal.
//!
//! 1. Keys: every row gets `text_hash(text)` (exact duplicates after `normalize_text`)
//!    and, unless exact-only, one key per MinHash LSH band (`minhash_bands(minhash(text))`).
//! 2. Candidate pairs: rows sharing a key pair up. The (key, document handle) rows go to
//!    a local Parquet file once, and DataFusion sorts them in slices of the key space
//!    sized to the memory limit (1 GiB unless set), so no in-memory index of the corpus
//!    is ever built.
//! 3. Verification (optional, on by default): a candidate pair merges only when the Jaccard
//!    similarity estimated from the low bytes of all 112 signature values is at least
//!    `min_similarity`. LSH alone merges 5% of pairs at similarity 0.5 with 14 x 8 bands.
//!    Only candidate documents' ids and signature bytes are held.
//! 4. Connected components of the merged pairs (`components.rs`); each keeps its smallest
//!    id. The output is the input minus the other members, streamed; the cluster table
//!    lists every member of every component: (id, cluster_id, kept); `cluster` alone is
//!    a SQL keyword (CLUSTER BY).

pub mod components;
pub mod minhash;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use indicatif::ProgressBar;
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use self::components::Components;
use self::minhash::{MinHashConfig, MinHashScratch, MinHasher, estimated_jaccard, low_bytes};
use crate::curate::functions::texts;
use crate::curate::script::drain;
use crate::error::{Error, Result};
use crate::lake::{Lake, Location, Output, ParquetFileWriter, SessionOptions, Target, register_source};

const INPUT: &str = "dedup_input";
const KEYS: &str = "dedup_keys";

/// What the sort of the keys may hold before it spills, unless `--memory-limit` says:
/// without a limit DataFusion keeps every key in memory (15 per document).
pub const DEFAULT_MEMORY_LIMIT: usize = 1 << 30;

/// Candidate pairs whose estimated similarity is below this do not merge: LSH with
/// 14 x 8 bands lets through 5% of pairs at similarity 0.5, and in math text such pairs
/// are often different problems in the same template.
pub const DEFAULT_MIN_SIMILARITY: f64 = 0.7;

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
    if let Some(config) = &options.near {
        config.validate().map_err(Error::user)?;
    }
    if !(0.0..=1.0).contains(&options.min_similarity) {
        return Err(Error::user(format!("min similarity must be 0 to 1, not {}", options.min_similarity)));
    }
    let mut session = options.session.clone();
    session.memory_limit.get_or_insert(DEFAULT_MEMORY_LIMIT);
    let ctx = crate::curate::session(lake, &session).await?;
    register_source(&ctx, lake, INPUT, &options.input).await?;
    require_text_columns(&ctx, INPUT, &options.input, &["id", &options.column], "--column").await?;
    let column = quote(&options.column);

    progress.set_message("dedup: grouping keys");
    let pairs = candidate_pairs(&ctx, &column, options.near.as_ref(), &session, progress).await?;
    let candidate_count = pairs.len() as u64;

    // One pass over the candidates' rows: their ids, and their signatures to verify with.
    progress.set_message("dedup: verifying candidates");
    let wanted: HashSet<u64> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
    let verify = options.near.filter(|_| options.min_similarity > 0.0);
    let candidates = candidates_of(&ctx, &column, verify.as_ref(), &wanted, progress).await?;
    let mut rejected_pairs = 0;
    let mut components = Components::default();
    for &(a, b) in &pairs {
        // A text without words has no signature: its pair came from the exact key.
        let similar = match (&candidates[&a].signature, &candidates[&b].signature) {
            (Some(x), Some(y)) => estimated_jaccard(x, y) >= options.min_similarity,
            _ => true,
        };
        if similar {
            components.union(a, b);
        } else {
            rejected_pairs += 1;
        }
    }
    // Each cluster keeps its smallest id.
    let mut members: Vec<(&str, u64)> =
        components.members().into_iter().map(|(doc, root)| (candidates[&doc].id.as_str(), root)).collect();
    let mut kept: HashMap<u64, &str> = HashMap::new();
    for &(id, root) in &members {
        let rep = kept.entry(root).or_insert(id);
        *rep = (*rep).min(id);
    }
    members.sort_unstable();
    let members: Vec<(&str, &str)> = members.into_iter().map(|(id, root)| (id, kept[&root])).collect();
    let removed: HashSet<u64> = members.iter().filter(|(id, rep)| id != rep).map(|(id, _)| document(id)).collect();

    progress.set_message("dedup: writing");
    let (input_rows, output_rows) = write_kept(&ctx, lake, &options.to, &removed, progress).await?;
    if let Some(target) = &options.clusters {
        write_clusters(lake, target, &members).await?;
    }
    Ok(DedupReport {
        input: options.input.clone(),
        to: options.to.describe(),
        clusters_to: options.clusters.as_ref().map(Target::describe),
        near: options.near,
        min_similarity: options.min_similarity,
        input_rows,
        output_rows,
        removed: removed.len() as u64,
        clusters: kept.len() as u64,
        candidate_pairs: candidate_count,
        rejected_pairs,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A document's 64-bit handle: the hash of its id. Keys sort with handles, not ids: 16
/// bytes a row instead of an id string (and string views that pin their source buffers).
/// Two ids share a handle with odds of about 3 in 10^8 at a million documents (n^2 / 2^65).
pub fn document(id: &str) -> u64 {
    xxh3_64(id.as_bytes())
}

/// Pairs (document, first document sharing a key with it), each once.
///
/// Every (key, document) row is written once to a local Parquet file (16 bytes a row),
/// then DataFusion sorts it in slices of the key space (`key % slices`) sized to fit the
/// memory limit, and the rows stream past in order. One sort of all keys made
/// DataFusion's external sort spill thousands of small runs at 4 GB of text and fail to
/// merge them within the pool; a window function over the keys buffered all of them.
async fn candidate_pairs(
    ctx: &SessionContext,
    column: &str,
    near: Option<&MinHashConfig>,
    session: &SessionOptions,
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

    // Assume a sort holds about 64 bytes a row (16 of data, buffers and copies besides);
    // give it half the pool.
    let limit = session.memory_limit.unwrap_or(DEFAULT_MEMORY_LIMIT) as u64;
    let slices = (rows * 64).div_ceil((limit / 2).max(1)).max(1);
    let mut pairs = Vec::new();
    for slice in 0..slices {
        let sql = format!("SELECT key, doc FROM {KEYS} WHERE key % {slices} = {slice} ORDER BY key, doc");
        let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
        collect_pairs(&mut stream, &mut pairs, progress).await?;
    }
    pairs.sort_unstable();
    pairs.dedup();
    Ok(pairs)
}

/// Appends (document, first document of its key) for rows sorted by key, then document.
async fn collect_pairs(
    stream: &mut SendableRecordBatchStream,
    pairs: &mut Vec<(u64, u64)>,
    progress: &ProgressBar,
) -> Result<()> {
    let mut current: Option<(u64, u64)> = None;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        progress.inc(batch.num_rows() as u64);
        let (Some(keys), Some(docs)) =
            (batch.column(0).as_primitive_opt::<UInt64Type>(), batch.column(1).as_primitive_opt::<UInt64Type>())
        else {
            return Err(Error::Internal("dedup keys and handles are not UInt64".into()));
        };
        for (&key, &doc) in keys.values().iter().zip(docs.values()) {
            match current {
                Some((k, first)) if k == key => {
                    if first != doc {
                        pairs.push((doc, first));
                    }
                }
                _ => current = Some((key, doc)),
            }
        }
    }
    Ok(())
}

/// A document in a candidate pair.
struct Candidate {
    id: String,
    /// The low bytes of its signature, when verifying and it has words.
    signature: Option<Box<[u8]>>,
}

/// The ids (and, with `verify`, the signatures) of the `wanted` documents, in one pass.
async fn candidates_of(
    ctx: &SessionContext,
    column: &str,
    verify: Option<&MinHashConfig>,
    wanted: &HashSet<u64>,
    progress: &ProgressBar,
) -> Result<HashMap<u64, Candidate>> {
    let mut candidates = HashMap::with_capacity(wanted.len());
    if wanted.is_empty() {
        return Ok(candidates);
    }
    let hasher = verify.map(MinHasher::from_config);
    let mut scratch = MinHashScratch::default();
    let sql = match verify {
        Some(_) => format!("SELECT id, {column} FROM {INPUT}"),
        None => format!("SELECT id, NULL AS text FROM {INPUT}"),
    };
    let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        progress.inc(batch.num_rows() as u64);
        for (id, text) in texts(batch.column(0))?.zip(texts(batch.column(1))?) {
            let Some(id) = id else { continue };
            let doc = document(id);
            if !wanted.contains(&doc) || candidates.contains_key(&doc) {
                continue;
            }
            let signature = hasher.as_ref().zip(text).and_then(|(hasher, text)| {
                let mut signature = Vec::new();
                hasher.signature(text, &mut scratch, &mut signature).then(|| low_bytes(&signature))
            });
            candidates.insert(doc, Candidate { id: id.to_string(), signature });
        }
    }
    Ok(candidates)
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

async fn write_clusters(lake: &Lake, target: &Target, members: &[(&str, &str)]) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("cluster_id", DataType::Utf8, false),
        Field::new("kept", DataType::Boolean, false),
    ]));
    let mut output = Output::open(lake, target, schema.clone()).await?;
    for chunk in members.chunks(8192) {
        let ids: ArrayRef = Arc::new(chunk.iter().map(|(id, _)| Some(*id)).collect::<StringArray>());
        let reps: ArrayRef = Arc::new(chunk.iter().map(|(_, rep)| Some(*rep)).collect::<StringArray>());
        let kept: ArrayRef = Arc::new(chunk.iter().map(|(id, rep)| Some(id == rep)).collect::<BooleanArray>());
        output.write(&RecordBatch::try_new(schema.clone(), vec![ids, reps, kept])?).await?;
    }
    output.finish("dedup clusters", serde_json::json!({})).await?;
    Ok(())
}

/// Fails with the columns `source` has unless it has every one of `required` as text.
pub(crate) async fn require_text_columns(
    ctx: &SessionContext,
    alias: &str,
    source: &str,
    required: &[&str],
    option: &str,
) -> Result<()> {
    let frame = ctx.table(alias).await?;
    let schema = frame.schema().as_arrow();
    for name in required {
        match schema.field_with_name(name) {
            Ok(field) if matches!(field.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) => {}
            Ok(field) => {
                return Err(Error::user(format!("column `{name}` of `{source}` is {}, not text", field.data_type())));
            }
            Err(_) => {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(Error::user(format!("`{source}` has no column `{name}` (it has {})", names.join(", ")))
                    .hint(format!("{option} names the text column(s); rows need a string `id` too")));
            }
        }
    }
    Ok(())
}

/// `name` as a SQL identifier.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
