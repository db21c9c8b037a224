//! The training stage: continued pre-training or SFT of a Llama-style model straight from
//! a shard set.
//!
//! One update takes `grad_accum` micro-batches from the shard loader, sums their gradients
//! with each micro-batch's loss divided by the loss tokens of the whole update (so the
//! update is the same as one big batch, whatever the split), clips the global norm and
//! applies AdamW at the schedule's learning rate. Every `eval_every` updates the model is
//! scored on the validation split and a checkpoint is written; the log and the loss plot
//! are rewritten with it. A run resumes from its latest checkpoint exactly: the data order
//! and the initial weights are pure functions of the seed, and the checkpoint holds the
//! weights, the moments and the loader's sample counter.

pub mod checkpoint;
pub mod config;
#[cfg(feature = "cuda")]
mod cuda;
pub mod model;
pub mod ops;
pub mod optim;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use self::checkpoint::{BestCheckpoint, TrainerState};
pub use self::config::TrainConfig;
use self::model::{Context as ModelContext, Llama, ModelConfig, masked_cross_entropy, token_nll};
use self::optim::{AdamW, Schedule};
use crate::error::{Context, Error, Result};
use crate::lake::{Lake, Location};
use crate::shards::loader::{Batch, BatchTensors, Loader, LoaderOptions, ShardSet, Split};
use crate::shards::mixture::Mode;
use crate::terminal::{self, step_bar};
use crate::tokenize::TokenizerInfo;
use crate::tokenize::encoder::file_hash;
use object_store::ObjectStoreExt;

pub const LOG: &str = "log.jsonl";
pub const PLOT: &str = "loss.png";

/// The settings of `mathlake train` and of a job's `kind = "train"` stage. The training
/// file's `shards`, `out` and `[[eval]]` paths may use `{lake}`.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// In a job file: the stage's name in logs and summaries.
    #[arg(skip)]
    #[serde(default)]
    pub name: Option<String>,
    /// A training file (TOML): shards, out, steps or tokens, [model], [optimizer].
    #[arg(long)]
    pub config: PathBuf,
    /// Continue the run in `out` from its latest checkpoint, exactly, whoever started it
    /// (a job continues its own unfinished runs without it).
    #[arg(long)]
    #[serde(default)]
    pub resume: bool,
    /// Stop with a checkpoint once this many updates are done (resume later).
    #[arg(long, value_name = "STEPS")]
    #[serde(default)]
    pub stop_after: Option<u64>,
}

impl TrainSpec {
    /// The training file, its paths resolved against `lake`.
    pub fn config(&self, lake: &Lake) -> Result<TrainConfig> {
        let mut config = TrainConfig::load(&self.config)?;
        config.shards = lake.expand(&config.shards);
        config.out = lake.expand(&config.out);
        for eval in &mut config.evals {
            eval.shards = lake.expand(&eval.shards);
        }
        Ok(config)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct TrainOptions {
    /// Continue the run in `out` from its latest checkpoint.
    pub resume: bool,
    /// Stop (with a checkpoint) once this many updates are done, as if interrupted.
    pub stop_after: Option<u64>,
    pub quiet: bool,
}

/// One line of `log.jsonl`: a training step, or a validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub step: u64,
    /// "train", "validation", or the name of an [[eval]] set.
    pub split: String,
    pub loss: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    /// Input tokens of all updates so far.
    pub tokens_seen: u64,
    /// Loss tokens seen per mixture source so far (train), or scored (validation).
    pub source_tokens: BTreeMap<String, u64>,
    pub epoch: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub out: String,
    pub parameters: usize,
    pub steps_done: u64,
    pub total_steps: u64,
    pub tokens_seen: u64,
    /// Mean training loss of the last updates (up to 10).
    pub train_loss: f64,
    pub validation_loss: Option<f64>,
    /// The last score of each [[eval]] set.
    pub eval_losses: BTreeMap<String, f64>,
    pub best: Option<BestCheckpoint>,
    /// Entropy of the validation targets' unigram distribution, in nats: the loss of a
    /// model that knows only token frequencies.
    pub unigram_entropy: f64,
    pub tokens_per_s: f64,
    pub seconds: f64,
}

/// Validation: mean loss per loss token over the first `batches` validation batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub tokens: u64,
}

pub async fn train(config: &TrainConfig, options: TrainOptions) -> Result<TrainReport> {
    let started = Instant::now();
    crate::malloc::keep_freed_memory();
    let set = ShardSet::open(&config.shards).await?;
    let manifest = set.manifest.clone();
    let mode = manifest.mixture.mode;
    if config.mode.is_some_and(|m| m != mode) {
        let name = |m: Mode| format!("{m:?}").to_lowercase();
        return Err(Error::user(format!(
            "the run says mode {} but the shards at {} were packed for {}",
            name(config.mode.unwrap_or(mode)),
            config.shards,
            name(mode)
        ))
        .hint("build shards with a mixture of that mode, or drop `mode` from the training file"));
    }
    let device = config.device.open()?;
    let dtype = config.dtype.dtype();
    let sequence_length = manifest.row_tokens - 1;
    let out = Location::parse(&config.out)?;
    let total_steps = config.total_steps(sequence_length, manifest.train.rows);

    let (model, mut optimizer, mut state, mut log) = if options.resume {
        let location = checkpoint::resolve(&config.out, true)
            .await
            .map_err(|e| e.hint(format!("{} has no run to resume: start one without --resume", config.out)))?;
        let saved = checkpoint::load(&location, &device).await?;
        let state = saved
            .state
            .ok_or_else(|| Error::user(format!("{} has no state.json: not a mathlake checkpoint", location.url())))?;
        let vocab_size = manifest.tokenizer.vocab_size as usize;
        check_resumable(&state, config, &manifest.mixture_hash, &saved.config, vocab_size)?;
        let model = Llama::from_tensors(saved.config, saved.tensors, dtype)?;
        let params = model.parameters();
        let mut optimizer = AdamW::new(config.adamw(), &params)?;
        optimizer.restore(&params, checkpoint::load_optimizer(&location, &device).await?, state.step)?;
        let log = read_log(&out, state.step).await?;
        drop(params);
        (model, optimizer, state, log)
    } else {
        if checkpoint::run_exists(&out).await? {
            return Err(Error::user(format!("{} already holds a training run", config.out))
                .hint("continue it with --resume, or choose another `out`"));
        }
        let model = new_model(config, &manifest.tokenizer, dtype, &device).await?;
        let optimizer = AdamW::new(config.adamw(), &model.parameters())?;
        let state = TrainerState {
            format: checkpoint::FORMAT.into(),
            step: 0,
            next_sample: 0,
            seed: config.seed,
            tokens_seen: 0,
            source_tokens: vec![0; manifest.sources.len()],
            best: None,
            shards_mixture_hash: manifest.mixture_hash.clone(),
            micro_batch: config.micro_batch,
            grad_accum: config.grad_accum,
        };
        (model, optimizer, state, Vec::new())
    };
    check_fits(&model, manifest.tokenizer.vocab_size as usize, sequence_length)?;
    let tokenizer_json = tokenizer_file(&manifest.tokenizer).await;
    let params = model.parameters();
    let (peak, min) = config.learning_rates(mode);
    let schedule = Schedule { peak, min, warmup_steps: config.warmup_steps(total_steps), total_steps };
    let grad_clip = config.optimizer.grad_clip.unwrap_or(1.0);
    let source_names: Vec<String> = manifest.sources.iter().map(|s| s.name.clone()).collect();
    let validation = Validation::new("validation", &set, Split::Validation, config)?;
    let unigram_entropy = validation.unigram_entropy().await?;
    let mut evals = Vec::new();
    for e in &config.evals {
        let eval_set = ShardSet::open(&e.shards).await.context(format!("eval set {}", e.name))?;
        if eval_set.manifest.tokenizer.hash != manifest.tokenizer.hash {
            return Err(Error::user(format!(
                "eval set {} was tokenized with {}, the training shards with {}",
                e.name, eval_set.manifest.tokenizer.source, manifest.tokenizer.source
            )));
        }
        let split = match e.split {
            config::EvalSplit::Train => Split::Train,
            config::EvalSplit::Validation => Split::Validation,
        };
        evals.push(Validation::new(&e.name, &eval_set, split, config)?);
    }

    let mut loader = Loader::new(
        set.clone(),
        LoaderOptions {
            split: Split::Train,
            batch_size: config.micro_batch,
            seed: config.seed,
            rank: 0,
            world: 1,
            start: state.next_sample,
            prefetch: 2,
        },
    )?;
    let stop = options.stop_after.unwrap_or(total_steps).min(total_steps);
    let bar = step_bar(state.step, total_steps, options.quiet);
    let (mut tokens_this_run, run_started) = (0u64, Instant::now());
    let mut last_validation = None;
    let mut eval_losses = BTreeMap::new();
    while state.step < stop {
        let step_started = Instant::now();
        let mut batches = Vec::with_capacity(config.grad_accum);
        for _ in 0..config.grad_accum {
            batches.push(loader.next_batch().await?);
        }
        let lr = schedule.lr(state.step);
        let Update { loss, grad_norm } = update(&model, &mut optimizer, &batches, lr, grad_clip, &device)?;
        if !loss.is_finite() {
            return Err(Error::user(format!("the training loss is {loss} at step {}", state.step + 1))
                .hint("lower optimizer.lr, or check the shards with `mathlake shards inspect`"));
        }

        let last = batches.last().ok_or_else(|| Error::Internal("an update without micro-batches".into()))?;
        let step_tokens: u64 = batches.iter().map(|b| (b.rows * b.sequence_length) as u64).sum();
        for b in &batches {
            for (seen, n) in state.source_tokens.iter_mut().zip(&b.source_tokens) {
                *seen += n;
            }
        }
        state.step += 1;
        state.next_sample = last.next_sample;
        state.tokens_seen += step_tokens;
        tokens_this_run += step_tokens;
        let tokens_per_s = step_tokens as f64 / step_started.elapsed().as_secs_f64().max(1e-9);
        log.push(LogRecord {
            step: state.step,
            split: "train".into(),
            loss,
            lr: Some(lr),
            grad_norm: Some(grad_norm),
            tokens_per_s: Some(tokens_per_s),
            tokens_seen: state.tokens_seen,
            source_tokens: source_names.iter().cloned().zip(state.source_tokens.iter().copied()).collect(),
            epoch: last.epoch,
        });
        let run_rate = tokens_this_run as f64 / run_started.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(state.step);
        bar.set_message(format!("loss {loss:.3} · {} tok/s", terminal::count(run_rate as u64)));

        if state.step % config.eval_every == 0 || state.step == stop {
            let evaluation = validation.evaluate(&model, &device).await?;
            last_validation = Some(evaluation.loss);
            let is_best = state.best.is_none_or(|b| evaluation.loss < b.validation_loss);
            if is_best {
                state.best = Some(BestCheckpoint { step: state.step, validation_loss: evaluation.loss });
            }
            let mut scored = vec![(validation.name.clone(), evaluation)];
            for e in &evals {
                scored.push((e.name.clone(), e.evaluate(&model, &device).await?));
            }
            for (name, evaluation) in &scored {
                log.push(LogRecord {
                    step: state.step,
                    split: name.clone(),
                    loss: evaluation.loss,
                    lr: None,
                    grad_norm: None,
                    tokens_per_s: None,
                    tokens_seen: state.tokens_seen,
                    source_tokens: BTreeMap::from([("all".to_string(), evaluation.tokens)]),
                    epoch: last.epoch,
                });
            }
            eval_losses = scored.iter().skip(1).map(|(n, e)| (n.clone(), e.loss)).collect();
            if !options.quiet {
                let others: String = eval_losses.iter().map(|(n, l)| format!("  {n} {l:.4}")).collect();
                let line = format!(
                    "step {:>6}  train {loss:.4}  validation {:.4}{others}{}",
                    state.step,
                    evaluation.loss,
                    if is_best { "  (best)" } else { "" }
                );
                // Printed also when stderr is no terminal and the bar draws nothing.
                bar.suspend(|| eprintln!("{line}"));
            }
            let moments = optimizer.state_tensors(&params);
            let tokenizer =
                checkpoint::TokenizerFile { eos_id: manifest.tokenizer.eos_id, json: tokenizer_json.as_deref() };
            // The log first: a kill between the two leaves lines past the checkpoint, which
            // a resume drops and redoes; the other order would lose the lines up to it.
            write_log(&out, &log).await?;
            checkpoint::save(&out, &model, &tokenizer, moments, &state, is_best).await?;
        }
    }
    bar.finish_and_clear();
    let train_losses: Vec<f64> = log.iter().filter(|r| r.split == "train").map(|r| r.loss).collect();
    let recent = &train_losses[train_losses.len().saturating_sub(10)..];
    Ok(TrainReport {
        out: out.url(),
        parameters: model.config.parameter_count(),
        steps_done: state.step,
        total_steps,
        tokens_seen: state.tokens_seen,
        train_loss: recent.iter().sum::<f64>() / recent.len().max(1) as f64,
        validation_loss: last_validation,
        eval_losses,
        best: state.best,
        unigram_entropy,
        tokens_per_s: tokens_this_run as f64 / run_started.elapsed().as_secs_f64().max(1e-9),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What one update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Update {
    /// Mean loss per loss token over the update's micro-batches.
    pub loss: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
}

/// One optimizer update from `batches` (the micro-batches of one step): gradients summed
/// with each micro-batch's loss over the loss tokens of all, clipped to `grad_clip`, then
/// AdamW at `lr`. A non-finite loss is returned without touching the weights.
pub fn update(
    model: &Llama,
    optimizer: &mut AdamW,
    batches: &[Batch],
    lr: f64,
    grad_clip: f64,
    device: &Device,
) -> Result<Update> {
    let loss_tokens: u64 = batches.iter().map(|b| b.loss_mask.iter().filter(|&&m| m).count() as u64).sum();
    let mut grads: Option<Vec<Tensor>> = None;
    let mut loss = 0.0;
    for batch in batches {
        let (micro_loss, micro_grads) = micro_step(model, batch, loss_tokens as f64, device)?;
        loss += micro_loss;
        grads = Some(match grads {
            None => micro_grads,
            Some(sum) => sum.iter().zip(&micro_grads).map(|(a, b)| a + b).collect::<candle_core::Result<_>>()?,
        });
    }
    let grads = grads.ok_or_else(|| Error::Internal("an update without micro-batches".into()))?;
    if !loss.is_finite() {
        return Ok(Update { loss, grad_norm: f64::NAN });
    }
    let (grad_scale, grad_norm) = optim::clip(&grads, grad_clip)?;
    optimizer.update(&model.parameters(), &grads, grad_scale, lr)?;
    Ok(Update { loss, grad_norm })
}

/// Forward and backward of one micro-batch: its share of the update's loss and the
/// gradient of every parameter.
fn micro_step(model: &Llama, batch: &Batch, loss_tokens: f64, device: &Device) -> Result<(f64, Vec<Tensor>)> {
    let (logits, tensors) = forward(model, batch, device)?;
    let mask = tensors.loss_mask.flatten_all()?.to_dtype(model.master_dtype())?;
    let loss = masked_cross_entropy(&logits, &tensors.targets.flatten_all()?, &mask, loss_tokens)?;
    let grads = loss.backward()?;
    let grads = optim::gradients(&model.parameters(), &grads)?;
    Ok((loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?, grads))
}

/// The logits of a batch, with the batch's tensors on `device`.
fn forward(model: &Llama, batch: &Batch, device: &Device) -> Result<(Tensor, BatchTensors)> {
    let tensors = batch.tensors(device)?;
    let (positions, segments) = (&batch.positions, &batch.segments);
    let context = ModelContext::new(
        &model.config,
        positions,
        segments,
        batch.rows,
        batch.sequence_length,
        model.dtype(),
        device,
    )?;
    Ok((model.forward(&tensors.inputs, &context)?, tensors))
}

/// The tokenizer.json the shards were made with, for the checkpoints to carry: `None`
/// when it can no longer be read where tokenize read it, or has changed since (eval
/// then asks for `--tokenizer`).
async fn tokenizer_file(info: &TokenizerInfo) -> Option<Vec<u8>> {
    let location = Location::parse(&info.source).ok()?;
    let bytes = location.store().ok()?.get(location.path()).await.ok()?.bytes().await.ok()?;
    (file_hash(&bytes) == info.hash).then(|| bytes.to_vec())
}

/// The model a fresh run starts from: a Hugging Face checkpoint, or a seeded init. A
/// checkpoint that carries its tokenizer (as ours do) must carry the shards' own: SFT of a
/// CPT model on shards of another tokenizer would train on ids that mean other text.
async fn new_model(
    config: &TrainConfig,
    tokenizer: &TokenizerInfo,
    dtype: candle_core::DType,
    device: &Device,
) -> Result<Llama> {
    match &config.model.from {
        Some(from) => {
            if config.sets_shape() {
                return Err(Error::user(
                    "[model] sets shape fields and `from`: the checkpoint's config.json gives the shape",
                ));
            }
            let location = checkpoint::resolve(from, false).await?;
            if let Some(json) = crate::lake::get_optional(&location.join("tokenizer.json")).await?
                && file_hash(&json) != tokenizer.hash
            {
                return Err(Error::user(format!(
                    "{} was trained with another tokenizer than the shards' ({})",
                    location.url(),
                    tokenizer.source
                ))
                .hint("pack the shards with the tokenizer.json in the checkpoint folder"));
            }
            let saved = checkpoint::load(&location, device).await?;
            Llama::from_tensors(saved.config, saved.tensors, dtype).context(location.url())
        }
        None => Llama::init(config.model_config(tokenizer.vocab_size as usize), config.seed, dtype, device),
    }
}

fn check_fits(model: &Llama, vocab_size: usize, sequence_length: usize) -> Result<()> {
    if model.config.vocab_size < vocab_size {
        return Err(Error::user(format!(
            "the model has {} token embeddings but the shards' tokenizer has {vocab_size} ids",
            model.config.vocab_size
        ))
        .hint("train with the tokenizer the model was made for, or set [model] vocab_size"));
    }
    if model.config.max_position_embeddings < sequence_length {
        return Err(Error::user(format!(
            "the shards hold sequences of {sequence_length} tokens, longer than the model's {} positions",
            model.config.max_position_embeddings
        )));
    }
    Ok(())
}

fn check_resumable(
    state: &TrainerState,
    config: &TrainConfig,
    mixture_hash: &str,
    saved: &ModelConfig,
    vocab_size: usize,
) -> Result<()> {
    let mut differences = Vec::new();
    if state.shards_mixture_hash != mixture_hash {
        differences.push("the shards' mixture".to_string());
    }
    // A model initialised `from` a checkpoint has that checkpoint's shape, not [model]'s.
    let asked = config.model_config(vocab_size);
    if config.model.from.is_none() && asked != *saved {
        differences.push(format!("the model's shape: {}", model_changes(&asked, saved)));
    }
    if state.seed != config.seed {
        differences.push(format!("seed {} (was {})", config.seed, state.seed));
    }
    if (state.micro_batch, state.grad_accum) != (config.micro_batch, config.grad_accum) {
        differences.push(format!(
            "micro_batch x grad_accum {} x {} (was {} x {})",
            config.micro_batch, config.grad_accum, state.micro_batch, state.grad_accum
        ));
    }
    if differences.is_empty() {
        return Ok(());
    }
    Err(Error::user(format!("cannot resume exactly: the run changed {}", differences.join(", ")))
        .hint("resume with the training file and shards the run started with, or start a new run"))
}

/// The [model] fields of `asked` that differ from `saved`, as `name value (was value)`.
fn model_changes(asked: &ModelConfig, saved: &ModelConfig) -> String {
    let fields = |config: &ModelConfig| match serde_json::to_value(config) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    };
    let (asked, saved) = (fields(asked), fields(saved));
    let changes: Vec<String> = asked
        .iter()
        .filter(|(name, value)| saved.get(*name) != Some(value))
        .map(|(name, value)| format!("{name} {value} (was {})", saved.get(name).unwrap_or(&serde_json::Value::Null)))
        .collect();
    changes.join(", ")
}

/// A held-out split, scored the same way at every evaluation.
struct Validation {
    name: String,
    set: ShardSet,
    split: Split,
    batch_size: usize,
    batches: usize,
    seed: u64,
}

impl Validation {
    fn new(name: &str, set: &ShardSet, split: Split, config: &TrainConfig) -> Result<Validation> {
        let rows = set.rows(split) as usize;
        if rows == 0 {
            return Err(Error::user(format!("the shards at {} have no {split:?} rows to score", set.location.url()))
                .hint("the validation split needs a validation_fraction above 0; an [[eval]] set takes its train split unless told"));
        }
        let batch_size = config.micro_batch.min(rows);
        let all = rows / batch_size;
        Ok(Validation {
            name: name.to_string(),
            set: set.clone(),
            split,
            batch_size,
            batches: config.eval_batches.map_or(all, |b| b.clamp(1, all)),
            seed: config.seed,
        })
    }

    fn loader(&self) -> Result<Loader> {
        Loader::new(
            self.set.clone(),
            LoaderOptions {
                split: self.split,
                batch_size: self.batch_size,
                seed: self.seed,
                rank: 0,
                world: 1,
                start: 0,
                prefetch: 1,
            },
        )
    }

    async fn evaluate(&self, model: &Llama, device: &Device) -> Result<Evaluation> {
        let mut loader = self.loader()?;
        let (mut sum, mut tokens) = (0.0, 0u64);
        for _ in 0..self.batches {
            let batch = loader.next_batch().await?;
            let (logits, tensors) = forward(model, &batch, device)?;
            let nll = token_nll(&logits.detach(), &tensors.targets.flatten_all()?)?;
            let mask = tensors.loss_mask.flatten_all()?.to_dtype(nll.dtype())?;
            sum += (nll * mask)?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
            tokens += batch.loss_mask.iter().filter(|&&m| m).count() as u64;
        }
        Ok(Evaluation { loss: sum / tokens.max(1) as f64, tokens })
    }

    /// The entropy of the targets' unigram distribution over the evaluated batches.
    async fn unigram_entropy(&self) -> Result<f64> {
        let mut loader = self.loader()?;
        let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
        for _ in 0..self.batches {
            let batch = loader.next_batch().await?;
            for (&t, &m) in batch.targets.iter().zip(&batch.loss_mask) {
                if m {
                    *counts.entry(t).or_default() += 1;
                }
            }
        }
        let total: u64 = counts.values().sum();
        Ok(counts
            .values()
            .map(|&c| {
                let p = c as f64 / total as f64;
                -p * p.ln()
            })
            .sum())
    }
}

/// Writes `log.jsonl` and `loss.png` into the run folder.
async fn write_log(out: &Location, log: &[LogRecord]) -> Result<()> {
    let mut text = Vec::new();
    for record in log {
        serde_json::to_writer(&mut text, record)?;
        text.push(b'\n');
    }
    crate::lake::put(&out.join(LOG), text).await?;
    let points = |split: &str| -> Vec<(u64, f64)> {
        log.iter().filter(|r| r.split == split).map(|r| (r.step, r.loss)).collect()
    };
    let png = crate::plot::loss_png(&points("train"), &points("validation"))?;
    crate::lake::put(&out.join(PLOT), png).await
}

/// The log of a run up to `step` (a resume drops later lines, which belong to steps it
/// redoes; `u64::MAX` for all).
pub async fn read_log(out: &Location, step: u64) -> Result<Vec<LogRecord>> {
    let Some(bytes) = crate::lake::get_optional(&out.join(LOG)).await? else { return Ok(Vec::new()) };
    let mut records = Vec::new();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let record: LogRecord = serde_json::from_slice(line)
            .map_err(|e| Error::user(format!("{} has a line that is not a log record: {e}", out.join(LOG).url())))?;
        if record.step <= step {
            records.push(record);
        }
    }
    Ok(records)
}
