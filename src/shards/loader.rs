//! Reading shard sets: the library API a trainer uses.
//!
//! The order of one epoch is a pure function of (seed, epoch): the shards in a seeded
//! shuffle, each shard's rows in a seeded shuffle of their own, so only the shards in use
//! (and the ones prefetched) are in memory. Rank `r` of `world` takes every `world`-th
//! sample of that order from the `r`-th on, and every rank gets `rows / world` samples an
//! epoch (the remainder is left out, as every rank must take the same number of steps).
//! A loader resumes from a sample counter: the samples this rank has taken since the
//! first epoch began.
//!
//! A batch holds, per row, `sequence_length` inputs and targets (the next tokens), the
//! loss mask of the targets, and per token its position in its document and the index
//! of its segment, so attention and positions restart at every document start. A target
//! that opens a new document is never in the loss: at the previous position the model
//! cannot see the new document.

use std::collections::VecDeque;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{UInt16Type, UInt32Type};
use datafusion::arrow::ipc::reader::FileReader;
use object_store::ObjectStoreExt;
use tokio::task::JoinHandle;
use xxhash_rust::xxh3::xxh3_128;

use super::manifest::{Manifest, ShardFile};
use super::plan::{SplitMix, streams};
use crate::error::{Context, Error, Result};
use crate::lake::Location;

/// A shard set: its folder and manifest.
#[derive(Debug, Clone)]
pub struct ShardSet {
    pub location: Location,
    pub manifest: Arc<Manifest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Validation,
}

/// One shard's rows, decoded.
#[derive(Debug, Clone)]
pub struct Shard {
    /// `rows * row_tokens` tokens.
    pub tokens: Vec<u32>,
    pub loss_mask: Vec<bool>,
    /// Per row, the document starts and their sources.
    pub doc_starts: Vec<Vec<u32>>,
    pub doc_sources: Vec<Vec<u16>>,
    pub row_tokens: usize,
}

impl Shard {
    pub fn rows(&self) -> usize {
        self.doc_starts.len()
    }

    pub fn row(&self, i: usize) -> (&[u32], &[bool]) {
        let span = i * self.row_tokens..(i + 1) * self.row_tokens;
        (&self.tokens[span.clone()], &self.loss_mask[span])
    }
}

impl ShardSet {
    pub async fn open(url: &str) -> Result<ShardSet> {
        let location = Location::parse(url)?;
        let manifest = Manifest::read(&location).await?;
        Ok(ShardSet { location, manifest: Arc::new(manifest) })
    }

    pub fn shards(&self, split: Split) -> &[ShardFile] {
        match split {
            Split::Train => &self.manifest.train.shards,
            Split::Validation => &self.manifest.validation.shards,
        }
    }

    pub fn rows(&self, split: Split) -> u64 {
        self.shards(split).iter().map(|s| s.rows).sum()
    }

    /// Reads one shard and checks its size and checksum against the manifest.
    pub async fn read(&self, split: Split, index: usize) -> Result<Shard> {
        let file = self
            .shards(split)
            .get(index)
            .ok_or_else(|| Error::Internal(format!("shard {index} of {split:?} is not in the manifest")))?;
        read_shard(&self.location, file, self.manifest.row_tokens).await
    }
}

async fn read_shard(set: &Location, file: &ShardFile, row_tokens: usize) -> Result<Shard> {
    let location = set.join(&file.path);
    let bytes = match location.store()?.get(location.path()).await {
        Ok(got) => got.bytes().await.context(location.url())?,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(Error::user(format!("shard {} is missing", location.url()))
                .hint("the manifest lists it: rebuild the shard set"));
        }
        Err(e) => return Err(e).context(location.url()),
    };
    let corrupt =
        |why: String| Error::user(format!("shard {} is corrupt: {why}", location.url())).hint("rebuild the shard set");
    if bytes.len() as u64 != file.bytes || format!("{:032x}", xxh3_128(&bytes)) != file.xxh3_128 {
        return Err(corrupt(format!(
            "{} bytes with checksum {:032x}, the manifest says {} bytes with {}",
            bytes.len(),
            xxh3_128(&bytes),
            file.bytes,
            file.xxh3_128
        )));
    }
    let reader = FileReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| corrupt(e.to_string()))?;
    let batches: Vec<RecordBatch> =
        reader.collect::<std::result::Result<_, _>>().map_err(|e| corrupt(e.to_string()))?;
    let mut shard = Shard {
        tokens: Vec::new(),
        loss_mask: Vec::new(),
        doc_starts: Vec::new(),
        doc_sources: Vec::new(),
        row_tokens,
    };
    for batch in batches {
        let columns = (|| {
            let tokens = batch.column_by_name("tokens")?.as_fixed_size_list_opt()?;
            let mask = batch.column_by_name("loss_mask")?.as_fixed_size_list_opt()?;
            let starts = batch.column_by_name("doc_starts")?.as_list_opt::<i32>()?;
            let sources = batch.column_by_name("doc_sources")?.as_list_opt::<i32>()?;
            Some((tokens, mask, starts, sources))
        })();
        let (tokens, mask, starts, sources) = columns.ok_or_else(|| corrupt("not a shard's columns".into()))?;
        if tokens.value_length() as usize != row_tokens {
            return Err(corrupt(format!("rows of {} tokens, not {row_tokens}", tokens.value_length())));
        }
        let values = tokens.values();
        if let Some(v) = values.as_primitive_opt::<UInt16Type>() {
            shard.tokens.extend(v.values().iter().map(|&t| t as u32));
        } else if let Some(v) = values.as_primitive_opt::<UInt32Type>() {
            shard.tokens.extend_from_slice(v.values());
        } else {
            return Err(corrupt(format!("tokens of type {}", values.data_type())));
        }
        shard.loss_mask.extend(mask.values().as_boolean().values().iter());
        for row in 0..batch.num_rows() {
            shard.doc_starts.push(starts.value(row).as_primitive::<UInt32Type>().values().to_vec());
            shard.doc_sources.push(sources.value(row).as_primitive::<UInt16Type>().values().to_vec());
        }
    }
    if shard.rows() as u64 != file.rows {
        return Err(corrupt(format!("{} rows, the manifest says {}", shard.rows(), file.rows)));
    }
    Ok(shard)
}

#[derive(Debug, Clone, Copy)]
pub struct LoaderOptions {
    pub split: Split,
    /// Rows per batch.
    pub batch_size: usize,
    pub seed: u64,
    pub rank: usize,
    pub world: usize,
    /// Samples this rank has already taken (0 for a fresh run).
    pub start: u64,
    /// Shards read ahead.
    pub prefetch: usize,
}

/// A batch: `rows x sequence_length` values each, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub rows: usize,
    pub sequence_length: usize,
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
    /// Whether each target counts in the loss.
    pub loss_mask: Vec<bool>,
    /// Each input token's position in its document.
    pub positions: Vec<u32>,
    /// Each input token's segment within its row (0, 1, ...): tokens attend only within
    /// their segment.
    pub segments: Vec<u32>,
    /// Loss tokens per mixture source.
    pub source_tokens: Vec<u64>,
    /// The sample counter after this batch: resume from it.
    pub next_sample: u64,
    pub epoch: u64,
}

/// A batch on a device, each `[rows, sequence_length]`.
#[derive(Debug, Clone)]
pub struct BatchTensors {
    /// u32 token ids.
    pub inputs: Tensor,
    /// u32 token ids.
    pub targets: Tensor,
    /// f32, 1 where the target counts in the loss.
    pub loss_mask: Tensor,
    /// u32, each token's position in its document (for rotary embeddings).
    pub positions: Tensor,
    /// u32, each token's segment in its row (for the attention mask).
    pub segments: Tensor,
}

impl Batch {
    /// A batch of `rows x sequence_length` to fill, its vectors allocated, with a loss-token
    /// count for each of `sources`.
    pub fn empty(rows: usize, sequence_length: usize, sources: usize) -> Batch {
        let n = rows * sequence_length;
        Batch {
            rows,
            sequence_length,
            inputs: Vec::with_capacity(n),
            targets: Vec::with_capacity(n),
            loss_mask: Vec::with_capacity(n),
            positions: Vec::with_capacity(n),
            segments: Vec::with_capacity(n),
            source_tokens: vec![0; sources],
            next_sample: 0,
            epoch: 0,
        }
    }

    /// Appends row `r` of `shard`: inputs are its first `sequence_length` tokens and targets
    /// the last; each document (segment) gets positions from 0 and its loss mask, except
    /// for the target that opens the next document. Filled a document at a time: the
    /// loader's time goes here.
    fn push_row(&mut self, shard: &Shard, r: usize) {
        let length = self.sequence_length;
        let (tokens, mask) = shard.row(r);
        self.inputs.extend_from_slice(&tokens[..length]);
        self.targets.extend_from_slice(&tokens[1..]);
        let (starts, sources) = (&shard.doc_starts[r], &shard.doc_sources[r]);
        for (segment, &start) in starts.iter().enumerate() {
            let start = start as usize;
            if start >= length {
                break;
            }
            let next = starts.get(segment + 1).map(|&s| s as usize);
            let end = next.map_or(length, |n| n.min(length));
            self.positions.extend(0..(end - start) as u32);
            self.segments.extend(std::iter::repeat_n(segment as u32, end - start));
            let from = self.loss_mask.len();
            self.loss_mask.extend_from_slice(&mask[start + 1..end + 1]);
            if next == Some(end) && end > start {
                self.loss_mask[from + end - start - 1] = false;
            }
            let counted = self.loss_mask[from..].iter().filter(|&&m| m).count() as u64;
            self.source_tokens[sources[segment] as usize] += counted;
        }
    }

    pub fn tensors(&self, device: &Device) -> Result<BatchTensors> {
        let shape = (self.rows, self.sequence_length);
        let ids = |v: &[u32]| Tensor::from_slice(v, shape, device);
        let mask: Vec<f32> = self.loss_mask.iter().map(|&m| f32::from(u8::from(m))).collect();
        Ok(BatchTensors {
            inputs: ids(&self.inputs)?,
            targets: ids(&self.targets)?,
            loss_mask: Tensor::from_vec(mask, shape, device)?,
            positions: ids(&self.positions)?,
            segments: ids(&self.segments)?,
        })
    }
}

/// Where sample `k` of an epoch is: (shard, row).
struct EpochOrder {
    shards: Vec<usize>,
    /// Rows of each shard in `shards` order, cumulative.
    ends: Vec<u64>,
}

type ShardRead = JoinHandle<Result<Shard>>;

pub struct Loader {
    set: ShardSet,
    options: LoaderOptions,
    files: Vec<ShardFile>,
    per_rank: u64,
    next: u64,
    /// The order of the epoch in use.
    order: Option<(u64, EpochOrder)>,
    /// The shard in use: (epoch, position in the epoch's shard order, rows order, shard).
    current: Option<(u64, usize, Vec<u32>, Shard)>,
    /// Reads in flight: (epoch, position) and the task.
    ahead: VecDeque<((u64, usize), ShardRead)>,
}

impl Loader {
    pub fn new(set: ShardSet, options: LoaderOptions) -> Result<Loader> {
        if options.world == 0 || options.rank >= options.world || options.batch_size == 0 {
            return Err(Error::user(format!(
                "rank {} of {} with batch size {}: ranks count from 0 below the world size, batches hold a row or more",
                options.rank, options.world, options.batch_size
            )));
        }
        let files = set.shards(options.split).to_vec();
        let rows: u64 = files.iter().map(|f| f.rows).sum();
        let per_rank = rows / options.world as u64;
        if per_rank == 0 {
            return Err(Error::user(format!(
                "{} has {rows} {:?} rows, fewer than the {} ranks",
                set.location.url(),
                options.split,
                options.world
            )));
        }
        Ok(Loader {
            set,
            options,
            files,
            per_rank,
            next: options.start,
            order: None,
            current: None,
            ahead: VecDeque::new(),
        })
    }

    /// Samples each rank takes per epoch.
    pub fn samples_per_epoch(&self) -> u64 {
        self.per_rank
    }

    fn epoch_order(&self, epoch: u64) -> EpochOrder {
        let mut shards: Vec<usize> = (0..self.files.len()).collect();
        SplitMix::new(self.options.seed, &[streams::SHARD_ORDER, epoch]).shuffle(&mut shards);
        let ends = shards
            .iter()
            .scan(0u64, |end, &s| {
                *end += self.files[s].rows;
                Some(*end)
            })
            .collect();
        EpochOrder { shards, ends }
    }

    fn row_order(&self, epoch: u64, shard: usize, rows: usize) -> Vec<u32> {
        let mut order: Vec<u32> = (0..rows as u32).collect();
        SplitMix::new(self.options.seed, &[streams::ROW_ORDER, epoch, shard as u64]).shuffle(&mut order);
        order
    }

    /// The order of `epoch`, computed once per epoch.
    fn order(&mut self, epoch: u64) -> &EpochOrder {
        if self.order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.order = Some((epoch, self.epoch_order(epoch)));
        }
        &self.order.as_ref().expect("set above").1
    }

    /// (epoch, position in the shard order, row within the shard) of a sample counter.
    fn locate(&mut self, sample: u64) -> (u64, usize, u64) {
        let epoch = sample / self.per_rank;
        let k = (sample % self.per_rank) * self.options.world as u64 + self.options.rank as u64;
        let order = self.order(epoch);
        let position = order.ends.partition_point(|&end| end <= k);
        let start = if position == 0 { 0 } else { order.ends[position - 1] };
        (epoch, position, k - start)
    }

    fn start_read(&self, epoch: u64, position: usize) -> JoinHandle<Result<Shard>> {
        let order = self.epoch_order(epoch);
        let file = self.files[order.shards[position]].clone();
        let (location, row_tokens) = (self.set.location.clone(), self.set.manifest.row_tokens);
        tokio::spawn(async move { read_shard(&location, &file, row_tokens).await })
    }

    /// The next shard positions after (epoch, position), for prefetching.
    fn following(&self, mut epoch: u64, mut position: usize, n: usize) -> Vec<(u64, usize)> {
        (0..n)
            .map(|_| {
                position += 1;
                if position == self.files.len() {
                    (epoch, position) = (epoch + 1, 0);
                }
                (epoch, position)
            })
            .collect()
    }

    async fn shard_at(&mut self, epoch: u64, position: usize) -> Result<()> {
        if matches!(&self.current, Some((e, p, _, _)) if *e == epoch && *p == position) {
            return Ok(());
        }
        while let Some(((e, p), _)) = self.ahead.front() {
            if (*e, *p) >= (epoch, position) {
                break;
            }
            if let Some((_, task)) = self.ahead.pop_front() {
                task.abort();
            }
        }
        let shard = match self.ahead.front() {
            Some((key, _)) if *key == (epoch, position) => {
                let (_, task) = self.ahead.pop_front().expect("front exists");
                task.await.map_err(|e| Error::Internal(format!("shard reader stopped: {e}")))??
            }
            _ => {
                self.ahead.clear();
                self.start_read(epoch, position)
                    .await
                    .map_err(|e| Error::Internal(format!("shard reader stopped: {e}")))??
            }
        };
        let shard_index = self.order(epoch).shards[position];
        let rows = self.row_order(epoch, shard_index, shard.rows());
        self.current = Some((epoch, position, rows, shard));
        let last = self.ahead.back().map(|(k, _)| *k).unwrap_or((epoch, position));
        let want = self.options.prefetch.saturating_sub(self.ahead.len());
        for (e, p) in self.following(last.0, last.1, want) {
            let task = self.start_read(e, p);
            self.ahead.push_back(((e, p), task));
        }
        Ok(())
    }

    /// The next batch; the loader never runs out (epochs follow each other).
    pub async fn next_batch(&mut self) -> Result<Batch> {
        let length = self.set.manifest.row_tokens - 1;
        let sources = self.set.manifest.sources.len();
        let b = self.options.batch_size;
        let mut batch = Batch::empty(b, length, sources);
        batch.epoch = self.next / self.per_rank;
        for _ in 0..b {
            let (epoch, position, row) = self.locate(self.next);
            self.shard_at(epoch, position).await?;
            let (_, _, rows, shard) = self.current.as_ref().expect("shard_at sets it");
            batch.push_row(shard, rows[row as usize] as usize);
            self.next += 1;
        }
        batch.next_sample = self.next;
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The batch fields of one row, token by token: what `push_row` computes a document at
    /// a time.
    fn reference(shard: &Shard, r: usize, length: usize, sources: usize) -> Batch {
        let mut batch = Batch::empty(1, length, sources);
        let (tokens, mask) = shard.row(r);
        batch.inputs.extend_from_slice(&tokens[..length]);
        batch.targets.extend_from_slice(&tokens[1..]);
        let starts = &shard.doc_starts[r];
        let mut segment = 0;
        for t in 0..length {
            if starts.get(segment + 1).is_some_and(|&s| s as usize == t) {
                segment += 1;
            }
            batch.positions.push(t as u32 - starts[segment]);
            batch.segments.push(segment as u32);
            let opens_document = starts.get(segment + 1).is_some_and(|&s| s as usize == t + 1);
            let counts = mask[t + 1] && !opens_document;
            batch.loss_mask.push(counts);
            if counts {
                batch.source_tokens[shard.doc_sources[r][segment] as usize] += 1;
            }
        }
        batch
    }

    #[test]
    fn rows_fill_a_document_at_a_time_as_token_by_token() {
        let length = 8;
        // Rows of 9 tokens: a document starting on the last token (a target only), one
        // document, a prompt out of the loss, and single-token documents.
        let doc_starts = vec![vec![0, 3, 8], vec![0], vec![0, 4], vec![0, 1, 2, 7]];
        let doc_sources = vec![vec![0, 1, 2], vec![1], vec![2, 0], vec![0, 1, 2, 1]];
        let rows = doc_starts.len();
        let tokens: Vec<u32> = (0..rows as u32 * 9).collect();
        let loss_mask: Vec<bool> = (0..rows * 9).map(|i| !matches!(i % 9, 1 | 2) || i / 9 != 2).collect();
        let shard = Shard { tokens, loss_mask, doc_starts, doc_sources, row_tokens: length + 1 };
        for r in 0..rows {
            let mut batch = Batch::empty(1, length, 3);
            batch.push_row(&shard, r);
            assert_eq!(batch, reference(&shard, r, length, 3), "row {r}");
        }
    }
}
