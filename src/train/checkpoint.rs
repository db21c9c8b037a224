//! Checkpoints in a run folder on any lake location.
//!
//! ```text
//! RUN/checkpoints/step-000200/model.safetensors      weights, Hugging Face Llama names
//!                            config.json            a LlamaForCausalLM config
//!                            tokenizer.json         the shards' tokenizer, when readable
//!                            optimizer.safetensors  AdamW moments (PyTorch's names)
//!                            state.json             step, data position, best so far
//! RUN/latest.json, RUN/best.json                    which checkpoint, written last
//! ```
//!
//! A checkpoint's files are written before the pointer that names it, so a run stopped
//! mid-write resumes from the previous one. Only the latest and the best (by validation
//! loss) checkpoints are kept.

use std::collections::{BTreeSet, HashMap};

use candle_core::{DType, Device, Tensor};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use super::model::{Llama, ModelConfig};
use crate::error::{Context, Error, Result};
use crate::lake::{Location, get_optional, put};
use crate::tokenize::encoder::{Encoder, Engine};

pub const FORMAT: &str = "mathlake-checkpoint/1";
const CHECKPOINTS: &str = "checkpoints";
pub const LATEST: &str = "latest.json";
pub const BEST: &str = "best.json";

/// Where a run stands after a step: everything besides the tensors that an exact resume
/// needs. The data order and the initial weights are pure functions of the seed, so the
/// seed and the sample counter are the whole random state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub format: String,
    /// Optimizer updates done.
    pub step: u64,
    /// The train loader's sample counter.
    pub next_sample: u64,
    pub seed: u64,
    pub tokens_seen: u64,
    /// Loss tokens seen per mixture source, in manifest order.
    pub source_tokens: Vec<u64>,
    pub best: Option<BestCheckpoint>,
    /// What the run trains on: a resume refuses other shards or another batch shape.
    pub shards_mixture_hash: String,
    pub micro_batch: usize,
    pub grad_accum: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BestCheckpoint {
    pub step: u64,
    pub validation_loss: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pointer {
    step: u64,
    /// Relative to the run folder.
    path: String,
}

/// A checkpoint as read back.
pub struct Checkpoint {
    pub location: Location,
    pub config: ModelConfig,
    pub tensors: HashMap<String, Tensor>,
    pub state: Option<TrainerState>,
}

pub fn step_folder(step: u64) -> String {
    format!("{CHECKPOINTS}/step-{step:06}")
}

/// What a checkpoint says about its tokenizer: the EOS id, and the tokenizer.json itself
/// so that the checkpoint is a whole Hugging Face model folder that eval can use alone.
pub struct TokenizerFile<'a> {
    pub eos_id: u32,
    pub json: Option<&'a [u8]>,
}

/// Writes a checkpoint of `model` and points `latest` (and `best` when `is_best`) at it.
pub async fn save(
    run: &Location,
    model: &Llama,
    tokenizer: &TokenizerFile<'_>,
    optimizer: HashMap<String, Tensor>,
    state: &TrainerState,
    is_best: bool,
) -> Result<()> {
    let folder = step_folder(state.step);
    let dir = run.join(&folder);
    let weights: Vec<(String, Tensor)> =
        model.parameters().into_iter().map(|(name, var)| (name, var.as_tensor().clone())).collect();
    put(&dir.join("model.safetensors"), serialize(weights)?).await?;
    put(&dir.join("config.json"), serde_json::to_vec_pretty(&model.config.hf_config(tokenizer.eos_id))?).await?;
    if let Some(json) = tokenizer.json {
        put(&dir.join("tokenizer.json"), json.to_vec()).await?;
    }
    put(&dir.join("optimizer.safetensors"), serialize(optimizer.into_iter().collect())?).await?;
    put(&dir.join("state.json"), serde_json::to_vec_pretty(state)?).await?;
    let pointer = serde_json::to_vec_pretty(&Pointer { step: state.step, path: folder.clone() })?;
    put(&run.join(LATEST), pointer.clone()).await?;
    if is_best {
        put(&run.join(BEST), pointer).await?;
    }
    prune(run).await
}

/// Deletes the checkpoints that neither pointer names.
async fn prune(run: &Location) -> Result<()> {
    let mut keep = BTreeSet::new();
    for name in [LATEST, BEST] {
        if let Some(p) = read_pointer(run, name).await? {
            keep.insert(p.path);
        }
    }
    let store = run.store()?;
    let prefix = run.join(CHECKPOINTS);
    let objects: Vec<_> = store.list(Some(prefix.path())).try_collect().await.context(prefix.url())?;
    let mut emptied = BTreeSet::new();
    for object in objects {
        let relative = object.location.as_ref().strip_prefix(run.path().as_ref()).unwrap_or_default();
        let folder = relative.trim_start_matches('/').rsplit_once('/').map(|(dir, _)| dir).unwrap_or_default();
        if !keep.contains(folder) {
            store.delete(&object.location).await.context(run.with_path(object.location.clone()).url())?;
            emptied.insert(folder.to_string());
        }
    }
    // A local folder outlives its files; an object store has no folders to remove.
    if run.is_local() {
        for folder in emptied {
            let _ = std::fs::remove_dir(format!("/{}", run.join(&folder).path()));
        }
    }
    Ok(())
}

async fn read_pointer(run: &Location, name: &str) -> Result<Option<Pointer>> {
    let Some(bytes) = get_optional(&run.join(name)).await? else { return Ok(None) };
    let pointer = serde_json::from_slice(&bytes)
        .map_err(|e| Error::user(format!("{} is not a checkpoint pointer: {e}", run.join(name).url())))?;
    Ok(Some(pointer))
}

/// Whether `run` already holds a run (a `latest.json`).
pub async fn run_exists(run: &Location) -> Result<bool> {
    Ok(read_pointer(run, LATEST).await?.is_some())
}

/// The checkpoint folder a URL names: a checkpoint folder itself, or a run folder (its
/// best checkpoint, else its latest; `prefer_latest` the other way round).
pub async fn resolve(url: &str, prefer_latest: bool) -> Result<Location> {
    let location = Location::parse(url)?;
    if get_optional(&location.join("config.json")).await?.is_some() {
        return Ok(location);
    }
    let order = if prefer_latest { [LATEST, BEST] } else { [BEST, LATEST] };
    for name in order {
        if let Some(p) = read_pointer(&location, name).await? {
            return Ok(location.join(&p.path));
        }
    }
    Err(Error::user(format!("{url} holds no checkpoint (no config.json, {LATEST} or {BEST})"))
        .hint("give a run folder that `mathlake train` wrote, or a Hugging Face Llama checkpoint folder"))
}

/// Reads a checkpoint folder: ours, or a Hugging Face Llama one (`model.safetensors` or
/// a sharded `model.safetensors.index.json`).
pub async fn load(location: &Location, device: &Device) -> Result<Checkpoint> {
    let config_url = location.join("config.json");
    let config_bytes =
        get_optional(&config_url).await?.ok_or_else(|| Error::user(format!("{} is missing", config_url.url())))?;
    let config = ModelConfig::from_hf_config(&config_bytes).context(config_url.url())?;
    let mut tensors = HashMap::new();
    let files = match get_optional(&location.join("model.safetensors.index.json")).await? {
        Some(index) => {
            #[derive(Deserialize)]
            struct Index {
                weight_map: HashMap<String, String>,
            }
            let index: Index = serde_json::from_slice(&index)
                .map_err(|e| Error::user(format!("{}: {e}", location.join("model.safetensors.index.json").url())))?;
            index.weight_map.into_values().collect::<BTreeSet<_>>().into_iter().collect()
        }
        None => vec!["model.safetensors".to_string()],
    };
    for file in files {
        let url = location.join(&file);
        let bytes = get_optional(&url).await?.ok_or_else(|| Error::user(format!("{} is missing", url.url())))?;
        let read = candle_core::safetensors::load_buffer(&bytes, device)
            .map_err(|e| Error::user(format!("{} is not a safetensors file: {e}", url.url())))?;
        tensors.extend(read);
    }
    let state = match get_optional(&location.join("state.json")).await? {
        Some(bytes) => {
            let state: TrainerState = serde_json::from_slice(&bytes)
                .map_err(|e| Error::user(format!("{}: {e}", location.join("state.json").url())))?;
            if state.format != FORMAT {
                return Err(Error::user(format!(
                    "{}: format {} (this mathlake reads {FORMAT})",
                    location.url(),
                    state.format
                )));
            }
            Some(state)
        }
        None => None,
    };
    Ok(Checkpoint { location: location.clone(), config, tensors, state })
}

/// A checkpoint ready to generate with: its folder, the model (f32 weights) and its
/// tokenizer (`tokenizer`, else the folder's own tokenizer.json; `eos` names the EOS token).
pub async fn open(
    url: &str,
    tokenizer: Option<&str>,
    eos: Option<&str>,
    device: &Device,
) -> Result<(Location, Llama, Encoder)> {
    let location = resolve(url, false).await?;
    let saved = load(&location, device).await?;
    let model = Llama::from_tensors(saved.config, saved.tensors, DType::F32).context(location.url())?;
    let source = tokenizer.map_or_else(|| location.join("tokenizer.json").url(), str::to_string);
    let encoder = Encoder::load(&source, eos, Engine::Auto).await.map_err(|e| {
        if tokenizer.is_none() {
            Error::user(format!("{} has no tokenizer.json: {e}", location.url()))
                .hint("name the tokenizer the model was trained with: --tokenizer URL")
        } else {
            e
        }
    })?;
    if encoder.info.vocab_size as usize > model.config.vocab_size {
        return Err(Error::user(format!(
            "{source} has {} tokens, the model's vocabulary {}",
            encoder.info.vocab_size, model.config.vocab_size
        ))
        .hint("use the tokenizer the model was trained with"));
    }
    Ok((location, model, encoder))
}

/// The optimizer moments of a checkpoint of ours.
pub async fn load_optimizer(location: &Location, device: &Device) -> Result<HashMap<String, Tensor>> {
    let url = location.join("optimizer.safetensors");
    let bytes = get_optional(&url).await?.ok_or_else(|| Error::user(format!("{} is missing", url.url())))?;
    candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| Error::user(format!("{} is not a safetensors file: {e}", url.url())))
}

/// Safetensors bytes, tensors in name order, with the `format: pt` metadata that
/// transformers' `from_pretrained` requires.
fn serialize(mut tensors: Vec<(String, Tensor)>) -> Result<Vec<u8>> {
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(tensors, Some(metadata)).map_err(|e| Error::Internal(format!("writing safetensors: {e}")))
}
