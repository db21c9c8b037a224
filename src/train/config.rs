//! Training run files (TOML).
//!
//! ```toml
//! shards = "lake/shards/base1"      # a shard set (`mathlake shards build`)
//! out = "lake/runs/base1-tiny"      # checkpoints, log.jsonl and loss.png go here
//! seed = 1
//! steps = 600                       # or tokens = 5_000_000, or epochs = 3 (passes over
//!                                   # the shards' training rows, as SFT counts)
//! micro_batch = 8                   # rows per forward pass
//! grad_accum = 1                    # micro-batches per update
//! eval_every = 50                   # steps between validations (and checkpoints)
//! device = "cpu"                    # or "cuda" (built with --features cuda)
//! dtype = "f32"                     # or "bf16" (weights and moments stay f32)
//!
//! [model]
//! preset = "tiny"                   # or "small", or `from` a Hugging Face Llama folder
//! hidden_size = 384                 # any shape field overrides the preset's
//!
//! [optimizer]
//! lr = 1e-4                         # peak; default by mode (CPT 1e-4, SFT 1e-5)
//! min_lr = 1e-5                     # end of the cosine; default lr / 10
//! warmup_steps = 20
//! weight_decay = 0.1
//! grad_clip = 1.0
//!
//! [[eval]]                          # more held-out sets, scored with the validation
//! name = "gsm8k_test"
//! shards = "lake/shards/gsm8k-test" # its train split (build with validation_fraction = 0)
//! ```

use std::path::Path;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use super::model::{ModelConfig, Preset};
use super::optim::AdamWConfig;
use crate::error::{Error, Result};
use crate::shards::mixture::Mode;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub shards: String,
    pub out: String,
    /// The shards' mode when absent; stated, it must match them.
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub steps: Option<u64>,
    /// A token budget: steps = tokens / (micro_batch * grad_accum * sequence_length).
    #[serde(default)]
    pub tokens: Option<u64>,
    /// Passes over the shards' training rows: steps = epochs * rows / (micro_batch *
    /// grad_accum), rounded up.
    #[serde(default)]
    pub epochs: Option<f64>,
    pub micro_batch: usize,
    #[serde(default = "one")]
    pub grad_accum: usize,
    #[serde(default = "default_eval_every")]
    pub eval_every: u64,
    /// Validation batches per evaluation; default all of the validation split.
    #[serde(default)]
    pub eval_batches: Option<usize>,
    #[serde(default)]
    pub device: DeviceKind,
    #[serde(default)]
    pub dtype: Precision,
    /// Absent: the tiny preset.
    #[serde(default)]
    pub model: ModelSection,
    #[serde(default)]
    pub optimizer: OptimizerSection,
    /// More held-out sets scored at every validation (a benchmark packed as shards).
    #[serde(default, rename = "eval")]
    pub evals: Vec<EvalSet>,
}

/// A shard set scored beside the validation split, e.g. GSM8K test answers packed for SFT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSet {
    pub name: String,
    pub shards: String,
    /// Which split of it: "train" (default; build it with validation_fraction = 0) or
    /// "validation".
    #[serde(default)]
    pub split: EvalSplit,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalSplit {
    #[default]
    Train,
    Validation,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    pub preset: Option<Preset>,
    /// A Hugging Face Llama checkpoint folder (config.json + safetensors) to continue from.
    pub from: Option<String>,
    pub vocab_size: Option<usize>,
    pub hidden_size: Option<usize>,
    pub intermediate_size: Option<usize>,
    pub num_hidden_layers: Option<usize>,
    pub num_attention_heads: Option<usize>,
    pub num_key_value_heads: Option<usize>,
    pub rope_theta: Option<f64>,
    pub rms_norm_eps: Option<f64>,
    pub max_position_embeddings: Option<usize>,
    pub tie_word_embeddings: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSection {
    pub lr: Option<f64>,
    pub min_lr: Option<f64>,
    pub warmup_steps: Option<u64>,
    pub beta1: Option<f64>,
    pub beta2: Option<f64>,
    pub eps: Option<f64>,
    pub weight_decay: Option<f64>,
    /// The largest global gradient norm; 0 turns clipping off.
    pub grad_clip: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    #[default]
    Cpu,
    Cuda,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    /// For gradient checks.
    F64,
}

fn default_seed() -> u64 {
    1
}

fn one() -> usize {
    1
}

fn default_eval_every() -> u64 {
    100
}

impl TrainConfig {
    pub fn load(path: &Path) -> Result<TrainConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::user(format!("cannot read training file {}: {e}", path.display())))?;
        let config: TrainConfig = toml::from_str(&text)
            .map_err(|e| Error::user(format!("{}: {}", path.display(), e.to_string().trim_end())))?;
        config.check().map_err(|e| Error::user(format!("{}: {e}", path.display())))?;
        Ok(config)
    }

    pub fn check(&self) -> std::result::Result<(), String> {
        if self.micro_batch == 0 || self.grad_accum == 0 || self.eval_every == 0 {
            return Err("micro_batch, grad_accum and eval_every must be at least 1".into());
        }
        match (self.steps, self.tokens, self.epochs) {
            (Some(s), None, None) if s > 0 => {}
            (None, Some(t), None) if t > 0 => {}
            (None, None, Some(e)) if e > 0.0 && e.is_finite() => {}
            _ => return Err("give one of steps, tokens or epochs, above 0".into()),
        }
        let mut names = std::collections::HashSet::from(["train", "validation"]);
        for e in &self.evals {
            if !names.insert(e.name.as_str()) {
                return Err(format!(
                    "eval set name `{}` is taken (train, validation and each [[eval]] need their own)",
                    e.name
                ));
            }
        }
        if self.model.preset.is_some() && self.model.from.is_some() {
            return Err("[model] takes a preset or `from` a checkpoint, not both".into());
        }
        let o = &self.optimizer;
        for (name, value) in [("lr", o.lr), ("min_lr", o.min_lr), ("eps", o.eps)] {
            if value.is_some_and(|v| !(v >= 0.0 && v.is_finite())) {
                return Err(format!("optimizer.{name} must be a finite number at least 0"));
            }
        }
        for (name, value) in [("beta1", o.beta1), ("beta2", o.beta2)] {
            if value.is_some_and(|v| !(0.0..1.0).contains(&v)) {
                return Err(format!("optimizer.{name} must be at least 0 and under 1"));
            }
        }
        Ok(())
    }

    /// The number of updates: `steps`, the token budget over the tokens of one update, or
    /// the passes over the `rows` training rows over the rows of one update.
    pub fn total_steps(&self, sequence_length: usize, rows: u64) -> u64 {
        let per_step = (self.micro_batch * self.grad_accum) as u64;
        match (self.steps, self.tokens, self.epochs) {
            (Some(steps), _, _) => steps,
            (None, Some(tokens), _) => tokens.div_ceil((per_step * sequence_length as u64).max(1)),
            (None, None, Some(epochs)) => ((epochs * rows as f64) / per_step.max(1) as f64).ceil() as u64,
            (None, None, None) => 0,
        }
    }

    /// The model shape: a preset (tiny unless named) with the fields this file sets, for a
    /// tokenizer of `vocab_size` ids.
    pub fn model_config(&self, vocab_size: usize) -> ModelConfig {
        let m = &self.model;
        let mut c = m.preset.unwrap_or(Preset::Tiny).config(vocab_size);
        let set = |slot: &mut usize, v: Option<usize>| *slot = v.unwrap_or(*slot);
        set(&mut c.vocab_size, m.vocab_size);
        set(&mut c.hidden_size, m.hidden_size);
        set(&mut c.intermediate_size, m.intermediate_size);
        set(&mut c.num_hidden_layers, m.num_hidden_layers);
        set(&mut c.num_attention_heads, m.num_attention_heads);
        set(&mut c.num_key_value_heads, m.num_key_value_heads);
        set(&mut c.max_position_embeddings, m.max_position_embeddings);
        c.rope_theta = m.rope_theta.unwrap_or(c.rope_theta);
        c.rms_norm_eps = m.rms_norm_eps.unwrap_or(c.rms_norm_eps);
        c.tie_word_embeddings = m.tie_word_embeddings.unwrap_or(c.tie_word_embeddings);
        c
    }

    /// Whether [model] sets shape fields (not allowed with `from`).
    pub fn sets_shape(&self) -> bool {
        let m = &self.model;
        m.vocab_size.is_some()
            || m.hidden_size.is_some()
            || m.intermediate_size.is_some()
            || m.num_hidden_layers.is_some()
            || m.num_attention_heads.is_some()
            || m.num_key_value_heads.is_some()
            || m.rope_theta.is_some()
            || m.rms_norm_eps.is_some()
            || m.max_position_embeddings.is_some()
            || m.tie_word_embeddings.is_some()
    }

    pub fn adamw(&self) -> AdamWConfig {
        let d = AdamWConfig::default();
        let o = &self.optimizer;
        AdamWConfig {
            beta1: o.beta1.unwrap_or(d.beta1),
            beta2: o.beta2.unwrap_or(d.beta2),
            eps: o.eps.unwrap_or(d.eps),
            weight_decay: o.weight_decay.unwrap_or(d.weight_decay),
        }
    }

    /// Peak and minimum learning rate: the study's CPT 1e-4 -> 1e-5 and SFT 1e-5 -> 1e-6
    /// unless set.
    pub fn learning_rates(&self, mode: Mode) -> (f64, f64) {
        let peak = self.optimizer.lr.unwrap_or(match mode {
            Mode::Cpt => 1e-4,
            Mode::Sft => 1e-5,
        });
        (peak, self.optimizer.min_lr.unwrap_or(peak / 10.0))
    }

    /// Warmup: as set, else 5% of the steps (at most 200).
    pub fn warmup_steps(&self, total_steps: u64) -> u64 {
        self.optimizer.warmup_steps.unwrap_or((total_steps / 20).min(200))
    }
}

impl DeviceKind {
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceKind::Cpu => Ok(Device::Cpu),
            DeviceKind::Cuda if cfg!(feature = "cuda") => Ok(Device::new_cuda(0)?),
            DeviceKind::Cuda => Err(Error::user("device = \"cuda\" needs a mathlake built with --features cuda")
                .hint("cargo build --release --features cuda (needs nvcc)")),
        }
    }
}

impl Precision {
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::F64 => DType::F64,
        }
    }
}
