//! `mathlake shards build`: a mixture of tokenized tables packed into training shards.
//!
//! 1. Plan (`plan.rs`): each source's (id, token_count) rows, sorted by id, are split into
//!    training and held-out validation records by a hash of the id, and drawn to the
//!    source's budget; then every piece gets its place in one seeded order.
//! 2. Scatter: the sources' token rows stream once; each drawn piece is appended to the
//!    spill file of its bucket (a range of places), so memory holds one bucket, never the
//!    corpus.
//! 3. Pack (`pack.rs`): bucket by bucket, pieces in place order become rows of
//!    `sequence_length + 1` tokens, and rows become Arrow IPC shards under the target
//!    folder (`train-00000.arrow`, ..., `validation-00000.arrow`), then `manifest.json`.
//!
//! The same tables, mixture file and seed give byte-identical shards: every order comes
//! from the seed and the ids, never from how the tables' files are laid out.

pub mod loader;
pub mod manifest;
pub mod mixture;
pub mod pack;
pub mod plan;
pub mod records;

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type, UInt32Type};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use indicatif::ProgressBar;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use self::manifest::{FORMAT, Manifest, ShardFile, SourceManifest, SplitManifest};
use self::mixture::{Mixture, MixtureSource};
use self::pack::{Packer, shard_bytes, shard_schema, token_width};
use self::plan::{Drawn, Piece, Record, SplitMix, draw, held_out, order, streams, usable_tokens};
use self::records::RecordIndex;
use crate::error::{Context, Error, Result};
use crate::lake::{Lake, Location, SessionOptions, TempFile, register_source};
use crate::text::texts;
use crate::tokenize::TokenizerInfo;

/// Bytes of pieces one bucket may hold in memory while it is packed, without a memory
/// limit. With one, a bucket takes half of it (the other half is the shard being filled
/// and the scan of the tokens), so memory stays flat however many tokens the arm asks for.
const DEFAULT_BUCKET_BYTES: usize = 256 << 20;

fn bucket_bytes(session: &SessionOptions) -> usize {
    session.memory_limit.map_or(DEFAULT_BUCKET_BYTES, |limit| (limit / 2).max(64 << 10))
}

/// The settings of `mathlake shards build` and of a job's `kind = "shards"` stage.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    /// In a job file: the stage's name in logs and summaries.
    #[arg(skip)]
    #[serde(default)]
    pub name: Option<String>,
    /// The mixture file (TOML).
    #[arg(long)]
    pub mixture: PathBuf,
    /// The shard set's folder: a path or URL (`{lake}`: the lake's URL).
    #[arg(long)]
    pub to: String,
    /// Multiplies every token budget of the mixture (total_tokens and each source's
    /// tokens), so one mixture file serves a tiny and a larger run [default: 1].
    #[arg(long)]
    #[serde(default)]
    pub scale: Option<f64>,
    /// Memory DataFusion's operators may hold before they spill (e.g. 512M, 4G).
    #[arg(long, value_name = "SIZE")]
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// Where spill files go [default: the system temp folder].
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub spill_dir: Option<PathBuf>,
    /// Where the sources' SQL runs (each `where`, the record lists and the token reads):
    /// local, standalone (Ballista in this process) or ballista://HOST:PORT (both need the
    /// `distributed` build); packing and writing the shards stay here [default: local].
    #[arg(long)]
    #[serde(default)]
    pub engine: Option<String>,
}

impl BuildSpec {
    pub fn to_options(&self, lake: &Lake) -> Result<BuildOptions> {
        Ok(BuildOptions {
            mixture: self.mixture.clone(),
            scale: self.scale.unwrap_or(1.0),
            to: lake.expand(&self.to),
            session: SessionOptions::from_settings(self.memory_limit.as_deref(), self.spill_dir.as_deref())?
                .on_engine(self.engine.as_deref())?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub mixture: PathBuf,
    /// The factor on the mixture's token budgets.
    pub scale: f64,
    /// The shard set's folder: a path or URL.
    pub to: String,
    /// Spill files go to the session's spill folder; its memory limit sizes the buckets.
    pub session: SessionOptions,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub to: String,
    pub manifest: Manifest,
    pub seconds: f64,
}

/// A mixture source as read: its table alias, version and records per split.
struct Source {
    alias: String,
    filter: String,
    version: crate::lake::Version,
    train: Vec<Record>,
    validation: Vec<Record>,
}

/// Per record handle, where its pieces go: (split, place, tokens).
type Places = HashMap<u64, Vec<(Split, u64, u32)>>;

/// A spill file and its writer.
type Bucket = (TempFile, BufWriter<std::fs::File>);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Split {
    Train = 0,
    Validation = 1,
}

pub async fn build(lake: &Lake, options: &BuildOptions, progress: &ProgressBar) -> Result<BuildReport> {
    let started = Instant::now();
    let (mixture, mixture_hash) = Mixture::load(&options.mixture)?;
    let (mixture, mixture_hash) = mixture.scaled(options.scale, mixture_hash)?;
    let max_shard_bytes = mixture.max_shard_bytes().map_err(Error::user)?;
    let row_tokens = mixture.sequence_length + 1;
    let ctx = crate::lake::session(lake, &options.session).await?;

    progress.set_message("shards: planning");
    let mut sources = Vec::new();
    let mut tokenizer: Option<TokenizerInfo> = None;
    for (i, spec) in mixture.sources.iter().enumerate() {
        let alias = format!("mixture_source_{i}");
        let version = register_source(&ctx, lake, &alias, &spec.input).await?.ok_or_else(|| {
            Error::user(format!("source `{}`: `{}` is not a lake table", spec.name, spec.input))
                .hint("mixture sources are tables written by `mathlake tokenize`, whose versions record the tokenizer")
        })?;
        let info: TokenizerInfo = serde_json::from_value(version.details["tokenizer"].clone()).map_err(|_| {
            Error::user(format!(
                "source `{}`: table `{}` was not written by `mathlake tokenize`",
                spec.name, spec.input
            ))
        })?;
        match &tokenizer {
            Some(first) if first.hash != info.hash || first.eos_id != info.eos_id => {
                return Err(Error::user(format!(
                    "source `{}` was tokenized with {} (EOS {}), `{}` with {} (EOS {}): one mixture, one tokenizer",
                    spec.name, info.source, info.eos, mixture.sources[0].name, first.source, first.eos
                )));
            }
            Some(_) => {}
            None => tokenizer = Some(info),
        }
        let filter = spec.filter.as_deref().map(|f| format!(" WHERE {f}")).unwrap_or_default();
        let records = read_records(&ctx, &alias, &filter, spec).await?;
        let (validation, train): (Vec<_>, Vec<_>) =
            records.into_iter().partition(|(_, key)| held_out(mixture.seed, *key, mixture.validation_fraction));
        let (validation, train) =
            (validation.into_iter().map(|r| r.0).collect(), train.into_iter().map(|r| r.0).collect());
        sources.push(Source { alias, filter, version, train, validation });
    }
    let tokenizer = tokenizer.ok_or_else(|| Error::Internal("a checked mixture has a source".into()))?;
    let available: Vec<u64> = sources.iter().map(|s| usable_tokens(&s.train, mixture.mode, row_tokens)).collect();
    let requested = mixture.requested_tokens(&available)?;
    let width = token_width(tokenizer.vocab_size);

    let validation_seed = SplitMix::new(mixture.seed, &[streams::VALIDATION]).next_u64();
    let mut drawn: Vec<(Drawn, Drawn)> = Vec::new();
    let (mut train_pieces, mut validation_pieces) = (Vec::new(), Vec::new());
    for (i, (source, spec)) in sources.iter().zip(&mixture.sources).enumerate() {
        let available = usable_tokens(&source.train, mixture.mode, row_tokens);
        if requested[i] as f64 > available as f64 * spec.max_epochs {
            return Err(Error::user(format!(
                "source `{}` has {available} training tokens; {} asks for {:.2} passes over them (max_epochs = {})",
                spec.name,
                requested[i],
                requested[i] as f64 / available.max(1) as f64,
                spec.max_epochs
            ))
            .hint("lower its weight or budget, raise its max_epochs, or give it more data"));
        }
        let (pieces, train) = draw(&source.train, requested[i], i as u16, mixture.mode, row_tokens, mixture.seed);
        train_pieces.extend(pieces);
        // Validation takes the same shares of a budget of validation_fraction / (1 -
        // validation_fraction) of the training tokens, never more than one pass.
        let fraction = mixture.validation_fraction / (1.0 - mixture.validation_fraction);
        let available = usable_tokens(&source.validation, mixture.mode, row_tokens);
        let wanted = ((requested[i] as f64 * fraction).round() as u64).min(available);
        let (pieces, validation) =
            draw(&source.validation, wanted, i as u16, mixture.mode, row_tokens, validation_seed);
        validation_pieces.extend(pieces);
        drawn.push((train, validation));
    }
    let train_pieces = order(train_pieces, mixture.mode, row_tokens, mixture.seed);
    let validation_pieces = order(validation_pieces, mixture.mode, row_tokens, validation_seed);

    let mut places: Vec<Places> = vec![HashMap::new(); sources.len()];
    for (split, pieces) in [(Split::Train, &train_pieces), (Split::Validation, &validation_pieces)] {
        for (place, p) in pieces.iter().enumerate() {
            places[p.source as usize].entry(p.handle).or_default().push((split, place as u64, p.tokens));
        }
    }
    let bucket_bytes = bucket_bytes(&options.session) as u64;
    let buckets = |pieces: &[Piece]| {
        let bytes: u64 = pieces.iter().map(|p| p.tokens as u64 * 4 + 16).sum();
        bytes.div_ceil(bucket_bytes).max(1)
    };
    let mut scatter = Scatter::new(
        &options.session,
        [buckets(&train_pieces), buckets(&validation_pieces)],
        [train_pieces.len() as u64, validation_pieces.len() as u64],
    )?;

    progress.set_message("shards: reading tokens");
    for (i, source) in sources.iter().enumerate() {
        let sql = format!("SELECT id, tokens, prompt_tokens FROM {}{}", source.alias, source.filter);
        let frame = ctx.sql(&sql).await.map_err(|e| {
            Error::user(format!("source `{}`: {e}", mixture.sources[i].name)).hint(
                "a source needs a tokenized table's tokens and prompt_tokens columns \
                 (a table with loss_mask instead comes from an older mathlake: tokenize it again)",
            )
        })?;
        let mut stream = frame.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            progress.inc(batch.num_rows() as u64);
            let ids: Vec<Option<&str>> = texts(batch.column(0))?.collect();
            let tokens = batch.column(1).as_list_opt::<i32>().ok_or_else(|| bad_column(&mixture, i, "tokens", LIST))?;
            let prompts = batch
                .column(2)
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| bad_column(&mixture, i, "prompt_tokens", "Int64"))?;
            for (row, id) in ids.iter().enumerate() {
                let Some(targets) = id.and_then(|id| places[i].get(&xxh3_64(id.as_bytes()))) else { continue };
                let row_tokens = tokens.value(row);
                let row_tokens = row_tokens
                    .as_primitive_opt::<UInt32Type>()
                    .ok_or_else(|| bad_column(&mixture, i, "tokens", LIST))?;
                if let Some(&t) = row_tokens.values().iter().find(|&&t| t >= tokenizer.vocab_size) {
                    return Err(Error::user(format!(
                        "source `{}`: record {} has token {t}, outside the tokenizer's {} ids",
                        mixture.sources[i].name,
                        id.unwrap_or_default(),
                        tokenizer.vocab_size
                    )));
                }
                // A damaged table could hold any number here: a bad one is refused, not
                // read as "no prompt".
                let prompt = match prompts.is_valid(row).then(|| prompts.value(row)) {
                    Some(p) if (0..=row_tokens.len() as i64).contains(&p) => p as usize,
                    other => {
                        return Err(Error::user(format!(
                            "source `{}`: record {} has prompt_tokens {}, not a count from 0 to its {} tokens",
                            mixture.sources[i].name,
                            id.unwrap_or_default(),
                            other.map_or("null".to_string(), |p| p.to_string()),
                            row_tokens.len()
                        ))
                        .hint("make the source with `mathlake tokenize`"));
                    }
                };
                for &(split, place, n) in targets {
                    let id = id.unwrap_or_default();
                    scatter.write(split, place, id, &row_tokens.values()[..n as usize], prompt.min(n as usize))?;
                }
            }
        }
    }

    progress.set_message("shards: packing");
    let to = Location::parse(&options.to)?;
    let schema = shard_schema(width, row_tokens);
    let rows_per_shard = (max_shard_bytes / (row_tokens * width as usize + row_tokens / 8 + 64)).max(1);
    let mut splits = Vec::new();
    let mut loss = Vec::new();
    let mut records = RecordIndex::create(&to, mixture.sources.iter().map(|s| s.name.clone()).collect())?;
    for (split, pieces) in [(Split::Train, &train_pieces), (Split::Validation, &validation_pieces)] {
        let name = if split == Split::Train { "train" } else { "validation" };
        let mut packer = Packer::new(mixture.mode, row_tokens, tokenizer.eos_id, sources.len());
        let mut manifest = SplitManifest::default();
        let mut shard = async |packer: &mut Packer, manifest: &mut SplitManifest| -> Result<()> {
            let (batch, segments) = packer.rows.take(rows_per_shard, &schema, row_tokens)?;
            records.write(name, manifest.shards.len(), segments).await?;
            manifest.shards.push(put_shard(&to, name, manifest.shards.len(), &batch).await?);
            Ok(())
        };
        for file in scatter.finish(split)? {
            for spilled in read_bucket(&file)? {
                packer.add(&pieces[spilled.place as usize], &spilled.id, &spilled.tokens, spilled.prompt);
            }
            while packer.rows.len() >= rows_per_shard {
                shard(&mut packer, &mut manifest).await?;
            }
        }
        packer.finish();
        while !packer.rows.is_empty() {
            shard(&mut packer, &mut manifest).await?;
        }
        manifest.rows = manifest.shards.iter().map(|s| s.rows).sum();
        manifest.tokens = packer.source_tokens.iter().sum();
        manifest.loss_tokens = packer.source_loss_tokens.iter().sum();
        for (i, (train, validation)) in drawn.iter().enumerate() {
            let planned = if split == Split::Train { train.emitted_tokens } else { validation.emitted_tokens };
            if packer.source_tokens[i] != planned {
                return Err(Error::user(format!(
                    "source `{}` changed while the shards were built: {planned} tokens planned, {} read",
                    mixture.sources[i].name, packer.source_tokens[i]
                )));
            }
        }
        loss.push(packer.source_loss_tokens);
        splits.push(manifest);
    }

    let validation = splits.pop().unwrap_or_default();
    let train = splits.pop().unwrap_or_default();
    let manifest = Manifest {
        format: FORMAT.into(),
        sources: mixture
            .sources
            .iter()
            .zip(&sources)
            .zip(drawn)
            .enumerate()
            .map(|(i, ((spec, source), (train, validation)))| SourceManifest {
                name: spec.name.clone(),
                input: spec.input.clone(),
                filter: spec.filter.clone(),
                table_version: source.version.version,
                table_committed_at: source.version.committed_at.to_rfc3339(),
                train,
                validation,
                train_loss_tokens: loss[0][i],
                validation_loss_tokens: loss[1][i],
            })
            .collect(),
        mixture,
        mixture_hash,
        tokenizer,
        token_width: width,
        row_tokens,
        train,
        validation,
        records: Some(records.finish().await?),
    };
    manifest.write(&to).await?;
    Ok(BuildReport { to: to.url(), manifest, seconds: started.elapsed().as_secs_f64() })
}

/// The type of a tokenized table's `tokens`.
const LIST: &str = "List(UInt32)";

fn bad_column(mixture: &Mixture, source: usize, column: &str, expected: &str) -> Error {
    Error::user(format!(
        "source `{}`: column `{column}` is not the {expected} a tokenized table has",
        mixture.sources[source].name
    ))
    .hint("make the source with `mathlake tokenize`")
}

/// (id handle, token_count) of a source's rows in id order; a repeated id is an error,
/// since pieces find their record by id.
/// A source's records in id order, each with the xxh3-64 of the column that decides its
/// split (`hold_out_by`, else the id).
async fn read_records(
    ctx: &SessionContext,
    alias: &str,
    filter: &str,
    spec: &MixtureSource,
) -> Result<Vec<(Record, u64)>> {
    let name = &spec.name;
    // Only a source that holds out by another column reads one more: the sort by id
    // carries every selected column, under the memory limit.
    let key =
        spec.hold_out_by.as_deref().map(|c| format!(", CAST(\"{c}\" AS VARCHAR) AS hold_out_key")).unwrap_or_default();
    let sql = format!("SELECT id, token_count{key} FROM {alias}{filter} ORDER BY id");
    let frame = ctx.sql(&sql).await.map_err(|e| {
        Error::user(format!("source `{name}`: {e}"))
            .hint("a source needs a tokenized table's id and token_count columns (and its hold_out_by column)")
    })?;
    let mut stream = frame.execute_stream().await?;
    let mut records = Vec::new();
    let mut last: Option<String> = None;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let counts = datafusion::arrow::compute::cast(batch.column(1), &DataType::Int64)?;
        let counts = counts.as_primitive::<Int64Type>();
        let groups: Vec<Option<&str>> = match spec.hold_out_by {
            Some(_) => texts(batch.column(2))?.collect(),
            None => Vec::new(),
        };
        for (row, id) in texts(batch.column(0))?.enumerate() {
            let Some(id) = id else { continue };
            if last.as_deref() == Some(id) {
                return Err(Error::user(format!("source `{name}`: id `{id}` appears twice")));
            }
            let handle = xxh3_64(id.as_bytes());
            let key = match (&spec.hold_out_by, groups.get(row)) {
                (None, _) => handle,
                (Some(_), Some(Some(group))) => xxh3_64(group.as_bytes()),
                (Some(column), _) => {
                    return Err(Error::user(format!("source `{name}`: record `{id}` has no {column} to hold out by")));
                }
            };
            if counts.is_valid(row) && counts.value(row) > 0 {
                records.push((Record { handle, tokens: counts.value(row) as u32 }, key));
            }
            last = Some(id.to_string());
        }
    }
    Ok(records)
}

/// Writes one shard; returns its manifest entry.
async fn put_shard(
    to: &Location,
    split: &str,
    index: usize,
    batch: &datafusion::arrow::array::RecordBatch,
) -> Result<ShardFile> {
    let bytes = shard_bytes(batch)?;
    let path = format!("{split}-{index:05}.arrow");
    let location = to.join(&path);
    if location.is_local() {
        let folder = std::path::PathBuf::from(format!("/{}", to.path()));
        std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    }
    let file = ShardFile {
        path,
        rows: batch.num_rows() as u64,
        bytes: bytes.len() as u64,
        xxh3_128: format!("{:032x}", xxh3_128(&bytes)),
    };
    location.store()?.put(location.path(), PutPayload::from(bytes)).await.context(location.url())?;
    Ok(file)
}

/// Spill files of pieces, one per bucket of places, per split. A piece is written as
/// its place (u64), length (u32), prompt tokens (u32) and id length (u32), then its
/// record's id and its tokens (u32 each).
struct Scatter {
    /// Per split: the bucket files with their writers, and how many places there are.
    splits: [(Vec<Bucket>, u64); 2],
}

impl Scatter {
    /// `buckets` and `places` per split.
    fn new(session: &SessionOptions, buckets: [u64; 2], places: [u64; 2]) -> Result<Scatter> {
        let open = |n: u64| -> Result<Vec<Bucket>> {
            (0..n)
                .map(|_| {
                    let file = session.temp_file("shard-bucket", "bin");
                    let handle =
                        std::fs::File::create(&file.0).with_context(|| format!("creating {}", file.0.display()))?;
                    Ok((file, BufWriter::new(handle)))
                })
                .collect()
        };
        Ok(Scatter { splits: [(open(buckets[0])?, places[0].max(1)), (open(buckets[1])?, places[1].max(1))] })
    }

    fn write(&mut self, split: Split, place: u64, id: &str, tokens: &[u32], prompt: usize) -> Result<()> {
        let (buckets, places) = &mut self.splits[split as usize];
        let bucket = (place as u128 * buckets.len() as u128 / *places as u128) as usize;
        let out = &mut buckets[bucket].1;
        out.write_all(&place.to_le_bytes())?;
        out.write_all(&(tokens.len() as u32).to_le_bytes())?;
        out.write_all(&(prompt as u32).to_le_bytes())?;
        out.write_all(&(id.len() as u32).to_le_bytes())?;
        out.write_all(id.as_bytes())?;
        for t in tokens {
            out.write_all(&t.to_le_bytes())?;
        }
        Ok(())
    }

    /// Closes the buckets of `split`; returns their files, in place order.
    fn finish(&mut self, split: Split) -> Result<Vec<TempFile>> {
        std::mem::take(&mut self.splits[split as usize].0)
            .into_iter()
            .map(|(file, mut writer)| {
                writer.flush().with_context(|| format!("writing {}", file.0.display()))?;
                Ok(file)
            })
            .collect()
    }
}

/// A piece as read back from its bucket.
struct Spilled {
    place: u64,
    id: String,
    tokens: Vec<u32>,
    /// How many of `tokens`, from the start, are prompt.
    prompt: usize,
}

/// A bucket's pieces in place order.
fn read_bucket(file: &TempFile) -> Result<Vec<Spilled>> {
    let mut bytes = Vec::new();
    std::fs::File::open(&file.0)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .with_context(|| format!("reading {}", file.0.display()))?;
    let short = || Error::Internal(format!("{} ends inside a piece", file.0.display()));
    let mut pieces = Vec::new();
    let mut at = 0;
    let mut take = |n: usize| -> Result<&[u8]> {
        let slice = bytes.get(at..at + n).ok_or_else(short)?;
        at += n;
        Ok(slice)
    };
    while let Ok(head) = take(20) {
        let place = u64::from_le_bytes(head[..8].try_into().map_err(|_| short())?);
        let word = |at: usize| head[at..at + 4].try_into().map(u32::from_le_bytes).map_err(|_| short());
        let (n, prompt, id_len) = (word(8)? as usize, word(12)? as usize, word(16)? as usize);
        let id = String::from_utf8_lossy(take(id_len)?).into_owned();
        let tokens = take(4 * n)?.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        pieces.push(Spilled { place, id, tokens, prompt });
    }
    pieces.sort_unstable_by_key(|p| p.place);
    Ok(pieces)
}

/// What `mathlake shards inspect` shows: the manifest and a few rows, decoded.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub manifest: Manifest,
    /// Each source's share of the training tokens: (requested, emitted).
    pub shares: Vec<(String, f64, f64)>,
    pub samples: Vec<String>,
}

/// Reads a shard set's manifest and decodes the first `rows` training rows: segments
/// are marked `‖ source ‖`, and text outside the loss is in `⟦ ⟧`. `tokenizer` overrides
/// the path the manifest recorded (it must be the same file).
pub async fn inspect(url: &str, rows: usize, tokenizer: Option<&str>) -> Result<Inspection> {
    let set = loader::ShardSet::open(url).await?;
    let manifest = (*set.manifest).clone();
    let requested: u64 = manifest.sources.iter().map(|s| s.train.requested_tokens).sum();
    let emitted: u64 = manifest.sources.iter().map(|s| s.train.emitted_tokens).sum();
    let shares = manifest
        .sources
        .iter()
        .map(|s| {
            let share = |n: u64, of: u64| if of == 0 { 0.0 } else { n as f64 / of as f64 };
            (s.name.clone(), share(s.train.requested_tokens, requested), share(s.train.emitted_tokens, emitted))
        })
        .collect();
    let mut samples = Vec::new();
    if rows > 0 && !manifest.train.shards.is_empty() {
        let encoder = crate::tokenize::Encoder::load(
            tokenizer.unwrap_or(&manifest.tokenizer.source),
            Some(&manifest.tokenizer.eos),
            crate::tokenize::Engine::Hf,
        )
        .await?;
        if encoder.info.hash != manifest.tokenizer.hash {
            return Err(Error::user(format!(
                "{} is not the tokenizer these shards were built with (hash {}, not {})",
                encoder.info.source, encoder.info.hash, manifest.tokenizer.hash
            ))
            .hint("--tokenizer names the file the shards were tokenized with"));
        }
        let shard = set.read(loader::Split::Train, 0).await?;
        for r in 0..rows.min(shard.rows()) {
            samples.push(render_row(&shard, r, &manifest, &encoder)?);
        }
    }
    Ok(Inspection { manifest, shares, samples })
}

fn render_row(
    shard: &loader::Shard,
    r: usize,
    manifest: &Manifest,
    encoder: &crate::tokenize::Encoder,
) -> Result<String> {
    let (tokens, mask) = shard.row(r);
    let starts = &shard.doc_starts[r];
    let mut out = String::new();
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(tokens.len(), |&e| e as usize);
        let source = &manifest.sources[shard.doc_sources[r][k] as usize].name;
        out += &format!("‖ {source} ‖");
        // Runs of tokens with the same mask, decoded together.
        let mut at = start as usize;
        while at < end {
            let run = mask[at..end].iter().take_while(|&&m| m == mask[at]).count();
            let text = encoder.decode(&tokens[at..at + run])?;
            if mask[at] {
                out += &text
            } else {
                out += &format!("⟦{text}⟧")
            }
            at += run;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;

    use super::*;

    #[tokio::test]
    async fn records_made_from_one_problem_are_held_out_by_the_problem() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("token_count", DataType::Int64, false),
            Field::new("problem_id", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["s1", "s2", "s3"])),
                Arc::new(Int64Array::from(vec![5, 0, 7])),
                Arc::new(StringArray::from(vec![Some("p1"), Some("p1"), None])),
            ],
        )
        .unwrap();
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())).unwrap();
        let source: MixtureSource =
            toml::from_str("name = \"synthetic\"\ninput = \"t\"\nepochs = 1\nhold_out_by = \"problem_id\"").unwrap();

        // By id when the source does not say; a record without tokens is left out.
        let by_id = MixtureSource { hold_out_by: None, ..source.clone() };
        let records = read_records(&ctx, "t", "", &by_id).await.unwrap();
        let keys: Vec<u64> = records.iter().map(|r| r.1).collect();
        assert_eq!(keys, [xxh3_64(b"s1"), xxh3_64(b"s3")]);
        assert_eq!(records[0].0, Record { handle: xxh3_64(b"s1"), tokens: 5 });

        // By the problem: the key is the problem's, as its own record's handle would be;
        // a record without one is an error, not a silent guess.
        let err = read_records(&ctx, "t", "", &source).await.unwrap_err().to_string();
        assert!(err.contains("record `s3` has no problem_id"), "{err}");
        let records = read_records(&ctx, "t", " WHERE id <> 's3'", &source).await.unwrap();
        assert_eq!(records, [(Record { handle: xxh3_64(b"s1"), tokens: 5 }, xxh3_64(b"p1"))]);
    }
}
