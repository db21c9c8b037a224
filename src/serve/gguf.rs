//! GGUF Llama models (llama.cpp's format): the config, the weights under Hugging Face
//! names and the tokenizer, so that the same [`Llama`](crate::train::model::Llama) and
//! [`Encoder`](crate::tokenize::encoder::Encoder) serve them as serve a checkpoint of ours.
//!
//! Weights are dequantized to f32 when loaded. candle's quantized matmul (the weights kept
//! as Q4_1, activations quantized to 8 bits as llama.cpp does) was measured on
//! SmolLM2-135M-Instruct.Q4_1.gguf on 2 cores: no faster alone (64 greedy tokens in 3.8 s
//! against 3.2 s), three times slower for 8 concurrent requests (33 s against 12 s), and its
//! rounding flipped the first token of a near-tie ("The capital of France is Paris."
//! became "L'Étoile, ..."). llama.cpp's converter permutes the rows of the query and key
//! projections for its interleaved rotary layout; they are permuted back here, so the
//! model keeps Hugging Face's half-split rotation.

use std::collections::HashMap;
use std::io::Cursor;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use serde_json::json;

use crate::error::{Error, Result};
use crate::train::model::ModelConfig;

/// What a GGUF file holds, in the shapes the rest of mathlake reads.
pub struct Gguf {
    pub config: ModelConfig,
    /// f32, under Hugging Face Llama tensor names.
    pub tensors: HashMap<String, Tensor>,
    /// A Hugging Face `tokenizer.json` built from the file's vocabulary and merges.
    pub tokenizer_json: String,
    pub eos: String,
    /// Prepended to every prompt when the file asks for it.
    pub bos: Option<u32>,
    /// The Jinja chat template, when the file has one.
    pub chat_template: Option<String>,
}

/// Reads a GGUF file's bytes; `source` names it in errors.
pub fn read(source: &str, bytes: &[u8], device: &Device) -> Result<Gguf> {
    let mut reader = Cursor::new(bytes);
    let content = Content::read(&mut reader).map_err(|e| Error::user(format!("{source} is not a GGUF file: {e}")))?;
    let meta = Metadata { source, values: &content.metadata };
    let architecture = meta.string("general.architecture")?;
    if architecture != "llama" {
        return Err(Error::user(format!("{source} is a `{architecture}` model; mathlake serves Llama models")));
    }
    for key in ["llama.rope.scaling.type", "llama.rope.scaling.factor"] {
        if content.metadata.contains_key(key) {
            return Err(Error::user(format!(
                "{source} uses rotary scaling ({key}), which mathlake does not implement"
            )));
        }
    }
    let heads = meta.usize("llama.attention.head_count")?;
    let hidden = meta.usize("llama.embedding_length")?;
    let tied = !content.tensor_infos.contains_key("output.weight");
    let tokens = meta.strings("tokenizer.ggml.tokens")?;
    let config = ModelConfig {
        vocab_size: tokens.len(),
        hidden_size: hidden,
        intermediate_size: meta.usize("llama.feed_forward_length")?,
        num_hidden_layers: meta.usize("llama.block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: meta
            .optional("llama.attention.head_count_kv")
            .map_or(Ok(heads), |_| meta.usize("llama.attention.head_count_kv"))?,
        rope_theta: meta.optional("llama.rope.freq_base").map_or(Ok(10_000.0), |_| meta.f64("llama.rope.freq_base"))?,
        rms_norm_eps: meta.f64("llama.attention.layer_norm_rms_epsilon")?,
        max_position_embeddings: meta.usize("llama.context_length")?,
        tie_word_embeddings: tied,
    };
    config.validate().map_err(|e| Error::user(format!("{source}: {e}")))?;
    if let Some(dims) = meta.optional("llama.rope.dimension_count")
        && dims.to_u32().ok() != Some(config.head_dim() as u32)
    {
        return Err(Error::user(format!("{source}: rotary embeddings over part of a head are not supported")));
    }

    let mut tensors = HashMap::new();
    for name in content.tensor_infos.keys() {
        let hf = hf_name(name).ok_or_else(|| {
            Error::user(format!("{source} holds tensor `{name}`, which a Llama model has no place for"))
        })?;
        let weight = content
            .tensor(&mut reader, name, device)
            .and_then(|q| q.dequantize(device))
            .map_err(|e| Error::user(format!("{source}: tensor `{name}`: {e}")))?;
        let weight = if name.ends_with("attn_q.weight") {
            unpermute(&weight, config.num_attention_heads)?
        } else if name.ends_with("attn_k.weight") {
            unpermute(&weight, config.num_key_value_heads)?
        } else {
            weight
        };
        tensors.insert(hf, weight);
    }

    let token_id = |key: &str| -> Result<Option<u32>> {
        meta.optional(key).map(|v| v.to_u32().map_err(|e| Error::user(format!("{source}: {key}: {e}")))).transpose()
    };
    let eos_id = token_id("tokenizer.ggml.eos_token_id")?
        .ok_or_else(|| Error::user(format!("{source} names no EOS token (tokenizer.ggml.eos_token_id)")))?;
    let eos = tokens
        .get(eos_id as usize)
        .cloned()
        .ok_or_else(|| Error::user(format!("{source}: the EOS id {eos_id} is outside the vocabulary")))?;
    let add_bos = meta.optional("tokenizer.ggml.add_bos_token").map(|v| v.to_bool().unwrap_or(false)).unwrap_or(true);
    let bos = if add_bos { token_id("tokenizer.ggml.bos_token_id")? } else { None };
    let chat_template = meta.optional("tokenizer.chat_template").and_then(|v| v.to_string().ok().cloned());
    let tokenizer_json = tokenizer_json(&meta, &tokens)?;
    Ok(Gguf { config, tensors, tokenizer_json, eos, bos, chat_template })
}

/// Typed access to the metadata, with errors that name the file and the key.
struct Metadata<'a> {
    source: &'a str,
    values: &'a HashMap<String, Value>,
}

impl Metadata<'_> {
    fn optional(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    fn get(&self, key: &str) -> Result<&Value> {
        self.values.get(key).ok_or_else(|| Error::user(format!("{} has no `{key}` in its metadata", self.source)))
    }

    fn bad(&self, key: &str, e: impl std::fmt::Display) -> Error {
        Error::user(format!("{}: metadata `{key}`: {e}", self.source))
    }

    fn string(&self, key: &str) -> Result<String> {
        self.get(key)?.to_string().cloned().map_err(|e| self.bad(key, e))
    }

    fn usize(&self, key: &str) -> Result<usize> {
        let v = self.get(key)?;
        v.to_u32().map(|n| n as usize).or_else(|_| v.to_u64().map(|n| n as usize)).map_err(|e| self.bad(key, e))
    }

    fn f64(&self, key: &str) -> Result<f64> {
        let v = self.get(key)?;
        v.to_f32().map(f64::from).or_else(|_| v.to_f64()).map_err(|e| self.bad(key, e))
    }

    fn strings(&self, key: &str) -> Result<Vec<String>> {
        let values = self.get(key)?.to_vec().map_err(|e| self.bad(key, e))?;
        values.iter().map(|v| v.to_string().cloned().map_err(|e| self.bad(key, e))).collect()
    }
}

/// The Hugging Face name of a llama.cpp tensor name.
fn hf_name(name: &str) -> Option<String> {
    let top = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(top) = top {
        return Some(top.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let part = match part {
        "attn_norm.weight" => "input_layernorm.weight",
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{part}"))
}

/// Undoes llama.cpp's permutation of a query or key projection `[heads * head_dim, in]`:
/// within each head it stores the rows of pair i of the rotation together (rows i and
/// i + head_dim/2 of Hugging Face's layout become rows 2i and 2i + 1).
fn unpermute(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    let half = rows / heads / 2;
    Ok(w.reshape((heads, half, 2, cols))?.transpose(1, 2)?.contiguous()?.reshape((rows, cols))?)
}

/// A `tokenizer.json` for the file's byte-level BPE (`tokenizer.ggml.model = gpt2`), with
/// the pre-tokenizer its `tokenizer.ggml.pre` names and its control tokens as added
/// tokens, so that a chat template's `<|im_start|>` is one token, as in llama.cpp.
fn tokenizer_json(meta: &Metadata, tokens: &[String]) -> Result<String> {
    let model = meta.string("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(Error::user(format!(
            "{}: tokenizer `{model}` is not supported; mathlake reads byte-level BPE (`gpt2`) GGUF tokenizers",
            meta.source
        )));
    }
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let pre = meta.optional("tokenizer.ggml.pre").and_then(|v| v.to_string().ok().cloned()).unwrap_or_default();
    let pre_tokenizer = match pre.as_str() {
        "" | "default" | "gpt-2" | "gpt2" => byte_level,
        // llama.cpp splits digits one by one, then GPT-2's pattern.
        "smollm" | "starcoder" | "refact" | "codeshell" => json!({
            "type": "Sequence",
            "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level],
        }),
        "llama3" | "llama-bpe" => json!({
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
            ],
        }),
        other => {
            return Err(Error::user(format!(
                "{}: pre-tokenizer `{other}` is not supported (gpt2, smollm, starcoder, refact, codeshell, llama3 are)",
                meta.source
            )));
        }
    };
    let merges = meta.strings("tokenizer.ggml.merges")?;
    let types: Vec<i64> = match meta.optional("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|e| meta.bad("tokenizer.ggml.token_type", e))?
            .iter()
            .map(|t| t.to_i32().map(i64::from).map_err(|e| meta.bad("tokenizer.ggml.token_type", e)))
            .collect::<Result<_>>()?,
        None => vec![1; tokens.len()],
    };
    let vocab: serde_json::Map<String, serde_json::Value> =
        tokens.iter().enumerate().map(|(id, t)| (t.clone(), json!(id))).collect();
    // llama.cpp's token types: 3 is a control token, 4 user-defined; both match whole.
    let added: Vec<serde_json::Value> = tokens
        .iter()
        .zip(&types)
        .enumerate()
        .filter(|(_, (_, t))| **t == 3 || **t == 4)
        .map(|(id, (content, t))| {
            json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": *t == 3})
        })
        .collect();
    let json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges},
    });
    Ok(json.to_string())
}

/// Llama 3's split pattern (its tokenizer.json, and llama.cpp's `llama3`).
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_cpp_names_map_to_hugging_face_names() {
        assert_eq!(hf_name("token_embd.weight").as_deref(), Some("model.embed_tokens.weight"));
        assert_eq!(hf_name("blk.12.ffn_down.weight").as_deref(), Some("model.layers.12.mlp.down_proj.weight"));
        assert_eq!(hf_name("blk.0.attn_k.weight").as_deref(), Some("model.layers.0.self_attn.k_proj.weight"));
        assert_eq!(hf_name("blk.x.attn_k.weight"), None);
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }

    /// llama.cpp's converter: `w.reshape(heads, 2, half, in).swapaxes(1, 2)`; undoing it
    /// gives back the original rows.
    #[test]
    fn unpermute_undoes_the_converters_permutation() -> Result<()> {
        let (heads, head_dim, cols) = (3, 4, 2);
        let rows = heads * head_dim;
        let hf = Tensor::arange(0f32, (rows * cols) as f32, &Device::Cpu)?.reshape((rows, cols))?;
        let permuted =
            hf.reshape((heads, 2, head_dim / 2, cols))?.transpose(1, 2)?.contiguous()?.reshape((rows, cols))?;
        // Row 1 of the file is the second row of pair 0: Hugging Face row head_dim / 2.
        assert_eq!(permuted.get(1)?.to_vec1::<f32>()?, hf.get(head_dim / 2)?.to_vec1::<f32>()?);
        let back = unpermute(&permuted, heads)?;
        assert_eq!(back.to_vec2::<f32>()?, hf.to_vec2::<f32>()?);
        Ok(())
    }

    #[test]
    fn other_files_are_clear_errors() {
        let err = read("notes.txt", b"hello, not a model", &Device::Cpu).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("notes.txt is not a GGUF file")));
    }
}
