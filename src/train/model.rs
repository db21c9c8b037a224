//! A Llama-style decoder made of differentiable candle ops.
//!
//! candle's fused `softmax_last_dim`, `rms_norm` and `rope` kernels have no backward pass
//! and silently stop gradients, so every piece here is composed from ops that have one
//! (DESIGN.md §4). Parameters are f32 `Var`s under Hugging Face Llama tensor names (the
//! master weights); a forward pass in another dtype casts them, and the cast carries the
//! gradient back to f32.
//!
//! Packed rows hold several documents: positions restart at each document and a token
//! attends only to earlier tokens of its own document.

use std::collections::HashMap;

use candle_core::{D, DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::ops;
use crate::error::{Error, Result};
use crate::random::{SplitMix, streams};

/// The shape of a model, in the field names of a Hugging Face `LlamaConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
}

/// A named shape; `vocab_size` comes from the tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// About 5M parameters with an 8k vocabulary: CPU tests and quick experiments.
    Tiny,
    /// About 50M parameters with an 8k vocabulary (78M with GPT-2's 50,257): for a GPU.
    Small,
}

impl Preset {
    pub fn config(self, vocab_size: usize) -> ModelConfig {
        let (hidden, intermediate, layers, heads, kv_heads) = match self {
            Preset::Tiny => (256, 688, 4, 4, 2),
            Preset::Small => (640, 1728, 10, 10, 5),
        };
        ModelConfig {
            vocab_size,
            hidden_size: hidden,
            intermediate_size: intermediate,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-5,
            max_position_embeddings: 4096,
            tie_word_embeddings: true,
        }
    }
}

impl ModelConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    pub fn validate(&self) -> Result<()> {
        let c = self;
        let bad = |why: String| Err(Error::user(format!("model shape: {why}")));
        if [c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads].contains(&0)
            || c.num_key_value_heads == 0
        {
            return bad("every size must be at least 1".into());
        }
        if !c.hidden_size.is_multiple_of(c.num_attention_heads) || !c.head_dim().is_multiple_of(2) {
            return bad(format!(
                "hidden_size {} must split into {} heads of an even size",
                c.hidden_size, c.num_attention_heads
            ));
        }
        if !c.num_attention_heads.is_multiple_of(c.num_key_value_heads) {
            return bad(format!(
                "{} attention heads do not group evenly over {} key/value heads",
                c.num_attention_heads, c.num_key_value_heads
            ));
        }
        if !(c.rms_norm_eps > 0.0 && c.rope_theta > 0.0) {
            return bad("rms_norm_eps and rope_theta must be positive".into());
        }
        Ok(())
    }

    /// Every parameter's Hugging Face name and shape, in a fixed order.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (d, f, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let kv = self.num_key_value_heads * self.head_dim();
        let mut shapes = vec![("model.embed_tokens.weight".to_string(), vec![v, d])];
        for i in 0..self.num_hidden_layers {
            let p = format!("model.layers.{i}");
            shapes.extend([
                (format!("{p}.input_layernorm.weight"), vec![d]),
                (format!("{p}.self_attn.q_proj.weight"), vec![d, d]),
                (format!("{p}.self_attn.k_proj.weight"), vec![kv, d]),
                (format!("{p}.self_attn.v_proj.weight"), vec![kv, d]),
                (format!("{p}.self_attn.o_proj.weight"), vec![d, d]),
                (format!("{p}.post_attention_layernorm.weight"), vec![d]),
                (format!("{p}.mlp.gate_proj.weight"), vec![f, d]),
                (format!("{p}.mlp.up_proj.weight"), vec![f, d]),
                (format!("{p}.mlp.down_proj.weight"), vec![d, f]),
            ]);
        }
        shapes.push(("model.norm.weight".to_string(), vec![d]));
        if !self.tie_word_embeddings {
            shapes.push(("lm_head.weight".to_string(), vec![v, d]));
        }
        shapes
    }

    pub fn parameter_count(&self) -> usize {
        self.parameter_shapes().iter().map(|(_, s)| s.iter().product::<usize>()).sum()
    }

    /// A Hugging Face `config.json` for `LlamaForCausalLM`.
    pub fn hf_config(&self, eos_token_id: u32) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            for (key, v) in [
                ("architectures", serde_json::json!(["LlamaForCausalLM"])),
                ("model_type", "llama".into()),
                ("hidden_act", "silu".into()),
                ("head_dim", self.head_dim().into()),
                ("attention_bias", false.into()),
                ("mlp_bias", false.into()),
                ("initializer_range", INIT_STD.into()),
                ("torch_dtype", "float32".into()),
                ("bos_token_id", eos_token_id.into()),
                ("eos_token_id", eos_token_id.into()),
                ("use_cache", true.into()),
            ] {
                map.insert(key.to_string(), v);
            }
        }
        value
    }

    /// Reads the fields mathlake needs from a Hugging Face Llama `config.json`.
    pub fn from_hf_config(json: &[u8]) -> Result<ModelConfig> {
        #[derive(Deserialize)]
        struct Hf {
            model_type: Option<String>,
            vocab_size: usize,
            hidden_size: usize,
            intermediate_size: usize,
            num_hidden_layers: usize,
            num_attention_heads: usize,
            num_key_value_heads: Option<usize>,
            rope_theta: Option<f64>,
            rms_norm_eps: f64,
            max_position_embeddings: usize,
            tie_word_embeddings: Option<bool>,
            head_dim: Option<usize>,
            rope_scaling: Option<serde_json::Value>,
            hidden_act: Option<String>,
        }
        let hf: Hf = serde_json::from_slice(json).map_err(|e| Error::user(format!("not a Llama config.json: {e}")))?;
        if hf.model_type.as_deref().is_some_and(|t| t != "llama") {
            return Err(Error::user(format!(
                "config.json is a {} model; mathlake trains Llama-style models",
                hf.model_type.unwrap_or_default()
            )));
        }
        if hf.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(Error::user("config.json uses rope_scaling, which mathlake's model does not implement"));
        }
        if hf.hidden_act.as_deref().is_some_and(|a| a != "silu") {
            return Err(Error::user(format!("config.json uses {:?}; mathlake's MLP is SwiGLU (silu)", hf.hidden_act)));
        }
        if hf.head_dim.is_some_and(|h| h * hf.num_attention_heads != hf.hidden_size) {
            return Err(Error::user("config.json sets a head_dim other than hidden_size / num_attention_heads"));
        }
        let config = ModelConfig {
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_hidden_layers: hf.num_hidden_layers,
            num_attention_heads: hf.num_attention_heads,
            num_key_value_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
            rope_theta: hf.rope_theta.unwrap_or(10_000.0),
            rms_norm_eps: hf.rms_norm_eps,
            max_position_embeddings: hf.max_position_embeddings,
            tie_word_embeddings: hf.tie_word_embeddings.unwrap_or(false),
        };
        config.validate()?;
        Ok(config)
    }
}

/// The standard deviation of the initial weights (as Hugging Face's `initializer_range`).
const INIT_STD: f64 = 0.02;

struct Layer {
    input_norm: Var,
    q: Var,
    k: Var,
    v: Var,
    o: Var,
    post_norm: Var,
    gate: Var,
    up: Var,
    down: Var,
}

pub struct Llama {
    pub config: ModelConfig,
    embed: Var,
    layers: Vec<Layer>,
    norm: Var,
    lm_head: Option<Var>,
    /// The dtype of the forward pass.
    dtype: DType,
    /// The dtype of the weights, norms and logits: f32, or f64 for gradient checks.
    master: DType,
}

/// What attention and rotary embeddings need of a batch, built once for all layers.
pub struct Context {
    /// `[rows, 1, T, T]` in the master dtype: 0 where a token may attend, -inf elsewhere.
    mask: Tensor,
    /// `[rows, 1, T, head_dim]` each.
    cos: Tensor,
    sin: Tensor,
}

impl Context {
    /// From each token's position in its document and segment in its row (row-major
    /// `rows x length`), as the shard loader gives them.
    pub fn new(
        config: &ModelConfig,
        positions: &[u32],
        segments: &[u32],
        rows: usize,
        length: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Context> {
        if positions.len() != rows * length || segments.len() != rows * length {
            return Err(Error::Internal("positions and segments do not match the batch shape".into()));
        }
        let mut mask = vec![f32::NEG_INFINITY; rows * length * length];
        for r in 0..rows {
            let seg = &segments[r * length..(r + 1) * length];
            let mut start = 0;
            for i in 0..length {
                if i > 0 && seg[i] != seg[i - 1] {
                    start = i;
                }
                let row = &mut mask[(r * length + i) * length..(r * length + i + 1) * length];
                row[start..=i].fill(0.0);
            }
        }
        let mask = Tensor::from_vec(mask, (rows, 1, length, length), device)?.to_dtype(master_dtype(dtype))?;
        let (cos, sin) = rotary(config, positions, rows, length, dtype, device)?;
        Ok(Context { mask, cos, sin })
    }

    /// For `new` tokens of one sequence that follow `past` cached ones: each attends to
    /// every cached token and to the new ones up to itself.
    pub fn decoding(config: &ModelConfig, past: usize, new: usize, dtype: DType, device: &Device) -> Result<Context> {
        let total = past + new;
        let mut mask = vec![f32::NEG_INFINITY; new * total];
        for i in 0..new {
            mask[i * total..i * total + past + i + 1].fill(0.0);
        }
        let mask = Tensor::from_vec(mask, (1, 1, new, total), device)?.to_dtype(master_dtype(dtype))?;
        let positions: Vec<u32> = (past as u32..total as u32).collect();
        let (cos, sin) = rotary(config, &positions, 1, new, dtype, device)?;
        Ok(Context { mask, cos, sin })
    }
}

/// Rotary angles `[rows, 1, length, head_dim]` (cos, sin) for each token's position, in
/// Hugging Face's layout: the angle of pair i is pos / theta^(2i / head_dim), and the two
/// halves of a head take the same angles.
fn rotary(
    config: &ModelConfig,
    positions: &[u32],
    rows: usize,
    length: usize,
    dtype: DType,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let half = config.head_dim() / 2;
    let inv_freq: Vec<f32> =
        (0..half).map(|i| (1.0 / config.rope_theta.powf(2.0 * i as f64 / config.head_dim() as f64)) as f32).collect();
    let (mut cos, mut sin) = (Vec::with_capacity(rows * length * half * 2), Vec::new());
    sin.reserve(rows * length * half * 2);
    for &p in positions {
        for _ in 0..2 {
            for &f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
    }
    let shape = (rows, length, 1, half * 2);
    let cos = Tensor::from_vec(cos, shape, device)?.transpose(1, 2)?.contiguous()?.to_dtype(dtype)?;
    let sin = Tensor::from_vec(sin, shape, device)?.transpose(1, 2)?.contiguous()?.to_dtype(dtype)?;
    Ok((cos, sin))
}

/// Each layer's keys and values so far (after rotary, one per key-value head), so that
/// generating a token costs one token's forward pass. New tokens are written in place into
/// buffers that double when full: appending by concatenation copied the whole cache at
/// every step of every layer, which grows with the context.
pub struct KvCache {
    layers: Vec<Option<CachedLayer>>,
}

/// Keys and values `[1, kv_heads, capacity, head_dim]`, the first `len` positions filled.
struct CachedLayer {
    keys: Tensor,
    values: Tensor,
    len: usize,
}

impl CachedLayer {
    /// Appends `keys` and `values` `[1, kv_heads, new, head_dim]` (contiguous) and returns
    /// every position so far, as views of the buffers.
    fn append(slot: &mut Option<CachedLayer>, keys: &Tensor, values: &Tensor) -> Result<(Tensor, Tensor)> {
        let new = keys.dim(2)?;
        let layer = match slot.take() {
            Some(layer) if layer.len + new <= layer.keys.dim(2)? => layer,
            old => {
                let len = old.as_ref().map_or(0, |l| l.len);
                let capacity = (len + new).max(2 * len).max(64);
                let grow = |past: Option<&Tensor>, fresh: &Tensor| -> Result<Tensor> {
                    let (kv, head_dim) = (fresh.dim(1)?, fresh.dim(3)?);
                    let room = Tensor::zeros((1, kv, capacity - len, head_dim), fresh.dtype(), fresh.device())?;
                    Ok(match past {
                        Some(past) => Tensor::cat(&[&past.narrow(2, 0, len)?, &room], 2)?,
                        None => room,
                    })
                };
                CachedLayer {
                    keys: grow(old.as_ref().map(|l| &l.keys), keys)?,
                    values: grow(old.as_ref().map(|l| &l.values), values)?,
                    len,
                }
            }
        };
        layer.keys.slice_set(keys, 2, layer.len)?;
        layer.values.slice_set(values, 2, layer.len)?;
        let len = layer.len + new;
        let all = (layer.keys.narrow(2, 0, len)?, layer.values.narrow(2, 0, len)?);
        *slot = Some(CachedLayer { len, ..layer });
        Ok(all)
    }
}

impl KvCache {
    pub fn new(config: &ModelConfig) -> KvCache {
        KvCache { layers: (0..config.num_hidden_layers).map(|_| None).collect() }
    }

    /// Tokens cached.
    pub fn len(&self) -> usize {
        self.layers.first().and_then(|l| l.as_ref()).map_or(0, |l| l.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Llama {
    /// A model from scratch: every matrix drawn from N(0, 0.02²) by a seeded stream per
    /// parameter name (the same on every device), norm gains at 1.
    pub fn init(config: ModelConfig, seed: u64, dtype: DType, device: &Device) -> Result<Llama> {
        config.validate()?;
        let mut tensors = HashMap::new();
        for (name, shape) in config.parameter_shapes() {
            let n: usize = shape.iter().product();
            let values = if shape.len() == 1 {
                vec![1f64; n]
            } else {
                let mut rng = SplitMix::new(seed, &[streams::INIT, xxhash_rust::xxh3::xxh3_64(name.as_bytes())]);
                (0..n).map(|_| normal(&mut rng) * INIT_STD).collect()
            };
            // Drawn in f64 and rounded once, so f32 and f64 models start from the same values.
            let values = Tensor::from_vec(values, shape, device)?.to_dtype(DType::F32)?;
            tensors.insert(name, values);
        }
        Llama::from_tensors(config, tensors, dtype)
    }

    /// A model from named tensors (as read from safetensors), converted to f32 `Var`s.
    pub fn from_tensors(config: ModelConfig, mut tensors: HashMap<String, Tensor>, dtype: DType) -> Result<Llama> {
        config.validate()?;
        let master = master_dtype(dtype);
        let tied_in_file = config.tie_word_embeddings && tensors.contains_key("lm_head.weight");
        if tied_in_file {
            tensors.remove("lm_head.weight");
        }
        let mut take = |name: String, shape: &[usize]| -> Result<Var> {
            let t = tensors.remove(&name).ok_or_else(|| {
                Error::user(format!("the weights have no tensor {name}"))
                    .hint("a checkpoint is a Llama with Hugging Face tensor names beside its config.json")
            })?;
            if t.dims() != shape {
                return Err(Error::user(format!("tensor {name} has shape {:?}, the config says {shape:?}", t.dims()))
                    .hint("config.json and the safetensors files must come from the same checkpoint"));
            }
            Ok(Var::from_tensor(&t.to_dtype(master)?)?)
        };
        let shapes: HashMap<String, Vec<usize>> = config.parameter_shapes().into_iter().collect();
        let mut get = |name: String| {
            let shape = shapes.get(&name).cloned().unwrap_or_default();
            take(name, &shape)
        };
        let embed = get("model.embed_tokens.weight".into())?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("model.layers.{i}");
            layers.push(Layer {
                input_norm: get(format!("{p}.input_layernorm.weight"))?,
                q: get(format!("{p}.self_attn.q_proj.weight"))?,
                k: get(format!("{p}.self_attn.k_proj.weight"))?,
                v: get(format!("{p}.self_attn.v_proj.weight"))?,
                o: get(format!("{p}.self_attn.o_proj.weight"))?,
                post_norm: get(format!("{p}.post_attention_layernorm.weight"))?,
                gate: get(format!("{p}.mlp.gate_proj.weight"))?,
                up: get(format!("{p}.mlp.up_proj.weight"))?,
                down: get(format!("{p}.mlp.down_proj.weight"))?,
            });
        }
        let norm = get("model.norm.weight".into())?;
        let lm_head = if config.tie_word_embeddings { None } else { Some(get("lm_head.weight".into())?) };
        let unused: Vec<&String> = tensors.keys().filter(|k| !k.ends_with("rotary_emb.inv_freq")).collect();
        if !unused.is_empty() {
            let mut unused: Vec<String> = unused.into_iter().cloned().collect();
            unused.sort();
            return Err(Error::user(format!(
                "the weights hold tensors a Llama of this config has no place for: {unused:?}"
            )));
        }
        Ok(Llama { config, embed, layers, norm, lm_head, dtype, master })
    }

    /// Every parameter with its Hugging Face name, in `parameter_shapes` order.
    pub fn parameters(&self) -> Vec<(String, &Var)> {
        let mut out = vec![("model.embed_tokens.weight".to_string(), &self.embed)];
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            out.extend([
                (format!("{p}.input_layernorm.weight"), &l.input_norm),
                (format!("{p}.self_attn.q_proj.weight"), &l.q),
                (format!("{p}.self_attn.k_proj.weight"), &l.k),
                (format!("{p}.self_attn.v_proj.weight"), &l.v),
                (format!("{p}.self_attn.o_proj.weight"), &l.o),
                (format!("{p}.post_attention_layernorm.weight"), &l.post_norm),
                (format!("{p}.mlp.gate_proj.weight"), &l.gate),
                (format!("{p}.mlp.up_proj.weight"), &l.up),
                (format!("{p}.mlp.down_proj.weight"), &l.down),
            ]);
        }
        out.push(("model.norm.weight".to_string(), &self.norm));
        if let Some(head) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), head));
        }
        out
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn master_dtype(&self) -> DType {
        self.master
    }

    /// A parameter in the forward dtype; detached unless the pass is one that a backward
    /// pass follows (`track`): an inference pass that reads tracked weights keeps every
    /// intermediate of every layer alive until its end (gigabytes for a few thousand tokens).
    fn weight(&self, var: &Var, track: bool) -> Result<Tensor> {
        let t = if track { var.as_tensor().clone() } else { var.as_tensor().detach() };
        Ok(if t.dtype() == self.dtype { t } else { t.to_dtype(self.dtype)? })
    }

    /// Logits `[rows * length, vocab]` in the master dtype for inputs `[rows, length]` (u32).
    pub fn forward(&self, inputs: &Tensor, context: &Context) -> Result<Tensor> {
        let (rows, length) = inputs.dims2()?;
        let x = self.hidden(&inputs.flatten_all()?, &mut [Part { rows, length, context, cache: None }], true)?;
        let logits = self.logits(&x, true)?;
        debug_assert_eq!(logits.dims(), [rows * length, self.config.vocab_size]);
        Ok(logits)
    }

    /// Logits `[vocab]` of the token after `tokens`, which continue the sequence in
    /// `cache` (empty for a new one); the cache takes in their keys and values. A pure
    /// inference path: no graph is kept for a backward pass.
    pub fn decode(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        Ok(self.decode_batch(&mut [(tokens, cache)])?.squeeze(0)?)
    }

    /// [`Llama::decode`] for several sequences at once, each with its own new tokens and
    /// cache: logits `[sequences, vocab]`. The weight matrices multiply every sequence's
    /// tokens in one product, which is what makes serving concurrent requests cheaper
    /// than serving them one after another; attention stays per sequence.
    pub fn decode_batch(&self, sequences: &mut [(&[u32], &mut KvCache)]) -> Result<Tensor> {
        if sequences.is_empty() || sequences.iter().any(|(tokens, _)| tokens.is_empty()) {
            return Err(Error::Internal("decode needs at least one token per sequence".into()));
        }
        let device = self.embed.as_tensor().device();
        let contexts = sequences
            .iter()
            .map(|(tokens, cache)| Context::decoding(&self.config, cache.len(), tokens.len(), self.dtype, device))
            .collect::<Result<Vec<_>>>()?;
        let all: Vec<u32> = sequences.iter().flat_map(|(tokens, _)| tokens.iter().copied()).collect();
        let mut last = Vec::with_capacity(sequences.len());
        let mut parts = Vec::with_capacity(sequences.len());
        let mut end = 0;
        for ((tokens, cache), context) in sequences.iter_mut().zip(&contexts) {
            end += tokens.len();
            last.push(end as u32 - 1);
            parts.push(Part { rows: 1, length: tokens.len(), context, cache: Some(&mut **cache) });
        }
        let x = self.hidden(&Tensor::new(all, device)?, &mut parts, false)?;
        let last = x.index_select(&Tensor::new(last, device)?, 0)?;
        self.logits(&last, false)
    }

    /// The final hidden states `[tokens, hidden]` (normed) for `inputs` `[tokens]`, the
    /// parts' tokens one after another.
    fn hidden(&self, inputs: &Tensor, parts: &mut [Part], track: bool) -> Result<Tensor> {
        let mut x = self.weight(&self.embed, track)?.index_select(inputs, 0)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let h = self.rms_norm(&x, &layer.input_norm, track)?;
            x = (x + self.attention(&h, layer, i, parts, track)?)?;
            let h = self.rms_norm(&x, &layer.post_norm, track)?;
            let gate = linear(&h, &self.weight(&layer.gate, track)?)?;
            let up = linear(&h, &self.weight(&layer.up, track)?)?;
            x = (x + linear(&(gate.silu()? * up)?, &self.weight(&layer.down, track)?)?)?;
        }
        self.rms_norm(&x, &self.norm, track)
    }

    /// Logits in the master dtype of hidden states `[n, hidden]`.
    fn logits(&self, x: &Tensor, track: bool) -> Result<Tensor> {
        let head = self.weight(self.lm_head.as_ref().unwrap_or(&self.embed), track)?;
        Ok(linear(x, &head)?.to_dtype(self.master)?)
    }

    /// `x / sqrt(mean(x²) + eps) * weight`, over the last dimension, computed in the
    /// master dtype.
    fn rms_norm(&self, x: &Tensor, weight: &Var, track: bool) -> Result<Tensor> {
        let x32 = x.to_dtype(self.master)?;
        let scale = x32.sqr()?.mean_keepdim(D::Minus1)?.affine(1.0, self.config.rms_norm_eps)?.sqrt()?.recip()?;
        let normed = x32.broadcast_mul(&scale)?.to_dtype(self.dtype)?;
        Ok(normed.broadcast_mul(&self.weight(weight, track)?)?)
    }

    /// Grouped-query attention over `x` `[tokens, hidden]`, the parts' tokens one after
    /// another; each part attends within itself, and with a cache, the keys and values of
    /// its earlier tokens (layer `index` of the cache) come before this call's.
    fn attention(&self, x: &Tensor, layer: &Layer, index: usize, parts: &mut [Part], track: bool) -> Result<Tensor> {
        let c = &self.config;
        let (heads, kv_heads, head_dim) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim());
        let q_all = linear(x, &self.weight(&layer.q, track)?)?;
        let k_all = linear(x, &self.weight(&layer.k, track)?)?;
        let v_all = linear(x, &self.weight(&layer.v, track)?)?;
        let mut outs = Vec::with_capacity(parts.len());
        let mut offset = 0;
        for part in parts.iter_mut() {
            let (rows, length) = (part.rows, part.length);
            let split = |t: &Tensor, n: usize| -> Result<Tensor> {
                Ok(t.narrow(0, offset, rows * length)?
                    .reshape((rows, length, n, head_dim))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let q = rotate(&split(&q_all, heads)?, part.context)?;
            let mut k = rotate(&split(&k_all, kv_heads)?, part.context)?;
            let mut v = split(&v_all, kv_heads)?;
            offset += rows * length;
            if let Some(cache) = part.cache.as_deref_mut() {
                // Detached: the cache serves inference and must not keep each step's graph alive.
                (k, v) = CachedLayer::append(&mut cache.layers[index], &k.detach(), &v.detach())?;
            }
            // Grouped-query attention without repeating keys and values per head: the query
            // heads that share a key-value head are consecutive, so they become rows of one
            // product against it, `[rows, kv_heads, group * length, keys]`.
            let (group, keys) = (heads / kv_heads, k.dim(2)?);
            let grouped = q.reshape((rows, kv_heads, group * length, head_dim))?;
            let scores = grouped.matmul(&k.t()?)?.reshape((rows, heads, length, keys))?;
            // The softmax computes in f32 at least, as Hugging Face's eager attention does: in
            // bf16 its sums over long rows lose most of their digits. The fused kernels read
            // bf16 scores and write bf16 weights themselves.
            let scale = 1.0 / (head_dim as f64).sqrt();
            let attention = if ops::fused(&scores) {
                ops::attention_softmax(&scores, &part.context.mask, scale)?
            } else {
                let scores = scores.to_dtype(self.master)?;
                softmax_last_dim(&(scores * scale)?.broadcast_add(&part.context.mask)?)?.to_dtype(self.dtype)?
            };
            let attended = attention.reshape((rows, kv_heads, group * length, keys))?.matmul(&v)?;
            outs.push(
                attended
                    .reshape((rows, heads, length, head_dim))?
                    .transpose(1, 2)?
                    .reshape((rows * length, heads * head_dim))?,
            );
        }
        let out = if outs.len() == 1 { outs.swap_remove(0) } else { Tensor::cat(&outs, 0)? };
        linear(&out, &self.weight(&layer.o, track)?)
    }
}

/// Tokens that attend among themselves: the whole batch in training (packed rows, the
/// context's mask keeping documents apart), one sequence each when decoding several.
struct Part<'a> {
    rows: usize,
    length: usize,
    context: &'a Context,
    cache: Option<&'a mut KvCache>,
}

/// Weights stay f32 under a lower-precision forward pass; f64 runs all in f64.
fn master_dtype(dtype: DType) -> DType {
    if dtype == DType::F64 { DType::F64 } else { DType::F32 }
}

/// `x @ w.T` for `x` `[n, in]` and `w` `[out, in]`.
fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    Ok(x.matmul(&w.t()?)?)
}

/// Rotary embeddings, Hugging Face's layout: `x * cos + rotate_half(x) * sin`.
fn rotate(x: &Tensor, context: &Context) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    Ok((x.broadcast_mul(&context.cos)? + rotated.broadcast_mul(&context.sin)?)?)
}

/// Softmax over the last dimension, for the devices and dtypes the fused kernels do not
/// serve. The value comes from candle's ops outside the graph and the gradient from
/// [`ops::with_softmax_gradient`]: the ops' own backward passes took a dozen passes over
/// the attention weights, most of a GPU step.
pub(crate) fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let value = x.detach();
    let e = value.broadcast_sub(&value.max_keepdim(D::Minus1)?)?.exp()?;
    let softmax = e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?;
    Ok(ops::with_softmax_gradient(x, &softmax)?)
}

/// Mean cross-entropy of `logits` `[n, vocab]` (f32) against `targets` `[n]` (u32) over the
/// positions where `loss_mask` `[n]` (f32) is 1, divided by `denominator` rather than by
/// the mask's own sum, so that micro-batches of one step add up to the step's mean.
pub fn masked_cross_entropy(logits: &Tensor, targets: &Tensor, loss_mask: &Tensor, denominator: f64) -> Result<Tensor> {
    let nll = token_nll(logits, targets)?;
    Ok(((nll * loss_mask)?.sum_all()? / denominator.max(1.0))?)
}

/// Negative log-likelihood `[n]` of each target.
pub fn token_nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if ops::fused(logits) {
        return Ok(ops::cross_entropy(logits, targets)?);
    }
    composed_nll(logits, targets)
}

/// [`token_nll`] from candle's differentiable ops, for the devices the fused kernel
/// does not serve.
pub(crate) fn composed_nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let picked = shifted.gather(&targets.unsqueeze(1)?, 1)?;
    Ok((log_sum - picked)?.squeeze(1)?)
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut SplitMix) -> f64 {
    let uniform = |rng: &mut SplitMix| ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (u1, u2) = (uniform(rng), uniform(rng));
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(tied: bool) -> ModelConfig {
        ModelConfig {
            vocab_size: 13,
            hidden_size: 8,
            intermediate_size: 12,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            num_key_value_heads: 1,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-5,
            max_position_embeddings: 64,
            tie_word_embeddings: tied,
        }
    }

    /// A model with weights large enough (std 0.3, gains around 1) that every gradient is
    /// well above the finite differences' rounding.
    fn model(tied: bool, dtype: DType) -> Result<Llama> {
        let config = shape(tied);
        let mut tensors = HashMap::new();
        for (i, (name, dims)) in config.parameter_shapes().into_iter().enumerate() {
            let mut rng = SplitMix::new(7, &[i as u64]);
            let n: usize = dims.iter().product();
            let values: Vec<f64> = (0..n)
                .map(|_| if dims.len() == 1 { 1.0 + 0.2 * normal(&mut rng) } else { 0.3 * normal(&mut rng) })
                .collect();
            tensors.insert(name, Tensor::from_vec(values, dims, &Device::Cpu)?);
        }
        Llama::from_tensors(config, tensors, dtype)
    }

    /// Two rows of six: the first packs two documents, the second holds one.
    struct Example {
        inputs: Vec<u32>,
        targets: Vec<u32>,
        mask: Vec<f64>,
        positions: Vec<u32>,
        segments: Vec<u32>,
    }

    fn example() -> Example {
        Example {
            inputs: vec![1, 5, 7, 2, 9, 4, 3, 3, 8, 12, 6, 0],
            targets: vec![5, 7, 0, 9, 4, 11, 3, 8, 12, 6, 0, 10],
            mask: vec![1., 1., 0., 1., 1., 1., 0., 1., 1., 1., 1., 1.],
            positions: vec![0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 4, 5],
            segments: vec![0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0],
        }
    }

    fn loss(model: &Llama, e: &Example) -> Result<Tensor> {
        let dev = Device::Cpu;
        let context = Context::new(&model.config, &e.positions, &e.segments, 2, 6, model.dtype(), &dev)?;
        let logits = model.forward(&Tensor::from_vec(e.inputs.clone(), (2, 6), &dev)?, &context)?;
        let targets = Tensor::new(e.targets.as_slice(), &dev)?;
        let mask = Tensor::new(e.mask.as_slice(), &dev)?.to_dtype(model.master_dtype())?;
        let denominator = e.mask.iter().sum();
        masked_cross_entropy(&logits, &targets, &mask, denominator)
    }

    #[test]
    fn gradients_match_central_finite_differences() -> Result<()> {
        for tied in [false, true] {
            let model = model(tied, DType::F64)?;
            let e = example();
            let grads = loss(&model, &e)?.backward()?;
            let mut worst: f64 = 0.0;
            for (name, var) in model.parameters() {
                let grad = grads.get(var.as_tensor()).expect("every parameter is in the graph");
                let grad = grad.flatten_all()?.to_vec1::<f64>()?;
                assert!(grad.iter().any(|g| g.abs() > 1e-6), "{name} gets no gradient (tied {tied})");
                let original = var.as_tensor().copy()?;
                let values = original.flatten_all()?.to_vec1::<f64>()?;
                // The coordinate with the largest gradient and two spread over the tensor.
                let largest = (0..grad.len()).max_by(|&a, &b| grad[a].abs().total_cmp(&grad[b].abs())).unwrap_or(0);
                for i in [largest, grad.len() / 3, grad.len() - 1] {
                    let h = 1e-5;
                    let at = |delta: f64| -> Result<f64> {
                        let mut v = values.clone();
                        v[i] += delta;
                        var.set(&Tensor::from_vec(v, original.dims(), &Device::Cpu)?)?;
                        Ok(loss(&model, &e)?.to_scalar::<f64>()?)
                    };
                    let numeric = (at(h)? - at(-h)?) / (2.0 * h);
                    var.set(&original)?;
                    let error = (numeric - grad[i]).abs() / numeric.abs().max(grad[i].abs()).max(1e-4);
                    assert!(error < 1e-4, "{name}[{i}]: analytic {} vs numeric {numeric} (tied {tied})", grad[i]);
                    worst = worst.max(error);
                }
            }
            eprintln!("largest relative error (tied {tied}): {worst:.2e}");
        }
        Ok(())
    }

    /// A document packed after another gets exactly the logits it gets alone: attention
    /// stops at the document boundary and positions restart.
    #[test]
    fn packed_documents_do_not_see_each_other() -> Result<()> {
        let model = model(false, DType::F64)?;
        let dev = Device::Cpu;
        let packed = Context::new(&model.config, &[0, 1, 2, 0, 1, 2], &[0, 0, 0, 1, 1, 1], 1, 6, DType::F64, &dev)?;
        let both = model.forward(&Tensor::new(&[[1u32, 5, 7, 2, 9, 4]], &dev)?, &packed)?;
        let alone_context = Context::new(&model.config, &[0, 1, 2], &[0, 0, 0], 1, 3, DType::F64, &dev)?;
        let alone = model.forward(&Tensor::new(&[[2u32, 9, 4]], &dev)?, &alone_context)?;
        let diff = (both.narrow(0, 3, 3)? - alone)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(diff < 1e-12, "the second document's logits changed by {diff}");
        // Without the boundary the same tokens do see the first document.
        let joined = Context::new(&model.config, &[0, 1, 2, 3, 4, 5], &[0; 6], 1, 6, DType::F64, &dev)?;
        let seen = model.forward(&Tensor::new(&[[1u32, 5, 7, 2, 9, 4]], &dev)?, &joined)?;
        assert!((seen.narrow(0, 3, 3)? - both.narrow(0, 3, 3)?)?.abs()?.max_all()?.to_scalar::<f64>()? > 1e-6);
        Ok(())
    }

    /// Changing a later token never changes an earlier position's logits.
    #[test]
    fn attention_is_causal() -> Result<()> {
        let model = model(true, DType::F64)?;
        let dev = Device::Cpu;
        let context = Context::new(&model.config, &[0, 1, 2, 3], &[0; 4], 1, 4, DType::F64, &dev)?;
        let a = model.forward(&Tensor::new(&[[1u32, 2, 3, 4]], &dev)?, &context)?;
        let b = model.forward(&Tensor::new(&[[1u32, 2, 3, 11]], &dev)?, &context)?;
        let diff = (a.narrow(0, 0, 3)? - b.narrow(0, 0, 3)?)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert_eq!(diff, 0.0);
        Ok(())
    }

    /// Decoding with the cache (a prompt, then one token at a time) gives the logits of
    /// the full forward pass at every position, with grouped-query attention on.
    #[test]
    fn cached_decoding_matches_the_full_forward_pass() -> Result<()> {
        for tied in [false, true] {
            let model = model(tied, DType::F64)?;
            assert!(model.config.num_key_value_heads < model.config.num_attention_heads);
            let dev = Device::Cpu;
            let tokens = [1u32, 5, 7, 2, 9, 4, 3];
            let context = Context::new(&model.config, &[0, 1, 2, 3, 4, 5, 6], &[0; 7], 1, 7, DType::F64, &dev)?;
            let full = model.forward(&Tensor::new(&[tokens], &dev)?, &context)?;
            let mut cache = KvCache::new(&model.config);
            let mut steps = vec![model.decode(&tokens[..4], &mut cache)?];
            for &t in &tokens[4..] {
                steps.push(model.decode(&[t], &mut cache)?);
            }
            assert_eq!(cache.len(), tokens.len());
            for (i, logits) in (3..7).zip(&steps) {
                let diff = (full.get(i)? - logits)?.abs()?.max_all()?.to_scalar::<f64>()?;
                assert!(diff < 1e-10, "position {i} differs by {diff} (tied {tied})");
            }
        }
        Ok(())
    }

    /// The cache's buffers grow (past 64 positions, then 128) under prompts and single
    /// tokens alike, and what was cached before stays where attention reads it.
    #[test]
    fn decoding_past_the_cache_capacity_matches_the_full_forward_pass() -> Result<()> {
        let model = model(false, DType::F64)?;
        let dev = Device::Cpu;
        let tokens: Vec<u32> = (0..140u32).map(|i| (i * 7 + i / 5) % 13).collect();
        let positions: Vec<u32> = (0..140).collect();
        let context = Context::new(&model.config, &positions, &[0; 140], 1, 140, DType::F64, &dev)?;
        let full = model.forward(&Tensor::new(&tokens[..], &dev)?.unsqueeze(0)?, &context)?;
        let mut cache = KvCache::new(&model.config);
        let mut end = 0;
        for chunk in [60].into_iter().chain([1; 10]).chain([50]).chain([1; 20]) {
            let logits = model.decode(&tokens[end..end + chunk], &mut cache)?;
            end += chunk;
            let diff = (full.get(end - 1)? - logits)?.abs()?.max_all()?.to_scalar::<f64>()?;
            assert!(diff < 1e-10, "position {} differs by {diff}", end - 1);
        }
        assert_eq!(cache.len(), 140);
        Ok(())
    }

    /// Sequences decoded together, at different lengths and stages (one starting, two
    /// continuing), get the logits each would get alone.
    #[test]
    fn batched_decoding_matches_decoding_each_sequence_alone() -> Result<()> {
        let model = model(false, DType::F64)?;
        let prompts: [&[u32]; 3] = [&[1, 5, 7], &[2, 9], &[4, 3, 8, 6, 1]];
        let news: [&[u32]; 3] = [&[11], &[3, 3, 0], &[12]];
        let (mut alone, mut together) = (Vec::new(), Vec::new());
        for (prompt, new) in prompts.iter().zip(&news) {
            let mut cache = KvCache::new(&model.config);
            model.decode(prompt, &mut cache)?;
            alone.push(model.decode(new, &mut cache)?);
            let mut cache = KvCache::new(&model.config);
            model.decode(prompt, &mut cache)?;
            together.push(cache);
        }
        // The first starts afresh with its prompt and token at once.
        together[0] = KvCache::new(&model.config);
        let first: Vec<u32> = [prompts[0], news[0]].concat();
        let (a, rest) = together.split_at_mut(1);
        let (b, c) = rest.split_at_mut(1);
        let batched = model.decode_batch(&mut [(&first, &mut a[0]), (news[1], &mut b[0]), (news[2], &mut c[0])])?;
        assert_eq!(batched.dims(), [3, model.config.vocab_size]);
        for (i, logits) in alone.iter().enumerate() {
            let diff = (batched.get(i)? - logits)?.abs()?.max_all()?.to_scalar::<f64>()?;
            assert!(diff < 1e-10, "sequence {i} differs by {diff}");
        }
        assert_eq!([a[0].len(), b[0].len(), c[0].len()], [4, 5, 6]);
        Ok(())
    }

    /// SFT: the targets under a zero loss mask (the prompt) do not change the loss.
    #[test]
    fn masked_targets_do_not_change_the_loss() -> Result<()> {
        let model = model(false, DType::F64)?;
        let mut e = example();
        let before = loss(&model, &e)?.to_scalar::<f64>()?;
        for (t, m) in e.targets.iter_mut().zip(&e.mask) {
            if *m == 0.0 {
                *t = (*t + 5) % 13;
            }
        }
        assert_eq!(loss(&model, &e)?.to_scalar::<f64>()?, before);
        e.targets[1] = (e.targets[1] + 5) % 13;
        assert_ne!(loss(&model, &e)?.to_scalar::<f64>()?, before, "a target in the loss does change it");
        Ok(())
    }

    /// bf16 compute stays close to f32 and still sends gradients to the f32 weights.
    #[test]
    fn bf16_forward_keeps_f32_master_weights() -> Result<()> {
        let e = example();
        let f32_loss = loss(&model(false, DType::F32)?, &e)?.to_scalar::<f32>()?;
        let half = model(false, DType::BF16)?;
        let half_loss = loss(&half, &e)?;
        assert!((half_loss.to_scalar::<f32>()? - f32_loss).abs() < 0.05 * f32_loss);
        let grads = half_loss.backward()?;
        for (name, var) in half.parameters() {
            assert_eq!(var.dtype(), DType::F32, "{name}");
            let g = grads.get(var.as_tensor()).expect("in the graph");
            assert_eq!(g.dtype(), DType::F32);
        }
        Ok(())
    }

    #[test]
    fn presets_have_the_documented_sizes() {
        let tiny = Preset::Tiny.config(8192).parameter_count();
        let small = Preset::Small.config(8192).parameter_count();
        assert!((3_000_000..8_000_000).contains(&tiny), "tiny has {tiny}");
        assert!((30_000_000..100_000_000).contains(&small), "small has {small}");
    }

    #[test]
    fn hf_config_round_trips_and_rejects_other_models() -> Result<()> {
        let config = shape(true);
        let json = serde_json::to_vec(&config.hf_config(0))?;
        assert_eq!(ModelConfig::from_hf_config(&json)?, config);
        let gpt2 = br#"{"model_type": "gpt2", "vocab_size": 5, "hidden_size": 8, "intermediate_size": 8,
            "num_hidden_layers": 1, "num_attention_heads": 2, "rms_norm_eps": 1e-5, "max_position_embeddings": 8}"#;
        assert!(ModelConfig::from_hf_config(gpt2).unwrap_err().to_string().contains("gpt2"));
        let uneven = ModelConfig { num_key_value_heads: 3, num_attention_heads: 4, ..shape(false) };
        assert!(uneven.validate().unwrap_err().to_string().contains("group"));
        Ok(())
    }
}
