//! `mathlake serve`: an OpenAI-compatible endpoint over a checkpoint of ours, a Hugging
//! Face Llama folder or a GGUF Llama file, so that synthesis (and any OpenAI client) can
//! call a local model. Concurrent requests decode together ([`engine`]).

pub mod chat;
pub mod engine;
pub mod gguf;
pub mod http;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use candle_core::{DType, Device};
use tokio::net::TcpListener;

use self::chat::ChatTemplate;
use self::engine::Engine;
use self::http::App;
use crate::error::{Context, Error, Result};
use crate::lake::{Location, get_optional};
use crate::tokenize::encoder::{Encoder, Engine as EncoderEngine};
use crate::train::checkpoint;
use crate::train::model::Llama;

/// The settings of `mathlake serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeSpec {
    /// The model: a GGUF Llama file (`.gguf`), or a checkpoint (a run folder of `mathlake
    /// train`, or a Hugging Face Llama folder with its tokenizer.json); a path or URL.
    #[arg(long)]
    pub model: String,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port; 0 takes a free one (the address is printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// The model id clients name [default: the file or folder name].
    #[arg(long)]
    pub name: Option<String>,
    /// At most this many requests decode together; more wait for a place.
    #[arg(long, default_value_t = 16)]
    pub max_batch: usize,
    /// A Jinja chat template file to use instead of the model's own (checkpoints of ours
    /// have none: their messages' contents are joined by blank lines).
    #[arg(long)]
    pub chat_template: Option<String>,
    /// Tokens of prompt and completion together, at most the model's context.
    #[arg(long)]
    pub context: Option<usize>,
}

/// A model ready to serve.
pub struct Served {
    pub name: String,
    pub model: Llama,
    pub encoder: Encoder,
    pub template: ChatTemplate,
    pub bos: Option<u32>,
}

/// Loads what `spec.model` names.
pub async fn load(spec: &ServeSpec) -> Result<Served> {
    let device = Device::Cpu;
    let location = Location::parse(&spec.model)?;
    let file_name = spec.model.trim_end_matches('/').rsplit('/').next().unwrap_or(&spec.model).to_string();
    let (mut model, encoder, template, bos, name) = if spec.model.ends_with(".gguf") {
        let bytes =
            get_optional(&location).await?.ok_or_else(|| Error::user(format!("{} does not exist", spec.model)))?;
        let gguf = gguf::read(&spec.model, &bytes, &device)?;
        let model = Llama::from_tensors(gguf.config, gguf.tensors, DType::F32).context(spec.model.clone())?;
        let encoder =
            Encoder::from_bytes(&spec.model, gguf.tokenizer_json.as_bytes(), Some(&gguf.eos), EncoderEngine::Auto)?;
        let template = gguf.chat_template.unwrap_or_else(|| chat::PLAIN.to_string());
        (model, encoder, template, gguf.bos, file_name.trim_end_matches(".gguf").to_string())
    } else {
        let (folder, model, encoder) = checkpoint::open(&spec.model, None, None, &device).await?;
        let template = match get_optional(&folder.join("tokenizer_config.json")).await? {
            Some(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("chat_template").and_then(|t| t.as_str()).map(str::to_string)),
            None => None,
        };
        (model, encoder, template.unwrap_or_else(|| chat::PLAIN.to_string()), None, file_name)
    };
    let template = match &spec.chat_template {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading chat template {path}"))?,
        None => template,
    };
    let bos_text = bos.and_then(|id| encoder.decode(&[id]).ok()).unwrap_or_default();
    let template = ChatTemplate::new(template, &bos_text, &encoder.info.eos)?;
    if let Some(context) = spec.context {
        if context < 2 {
            return Err(Error::user("--context must be at least 2 tokens"));
        }
        let limit = &mut model.config.max_position_embeddings;
        *limit = context.min(*limit);
    }
    Ok(Served { name: spec.name.clone().unwrap_or(name), model, encoder, template, bos })
}

/// Binds the address and answers requests until the process ends; `ready` hears the
/// bound address first.
pub async fn serve(spec: &ServeSpec, served: Served, ready: impl FnOnce(std::net::SocketAddr)) -> Result<()> {
    let listener = TcpListener::bind((spec.host.as_str(), spec.port))
        .await
        .with_context(|| format!("listening on {}:{}", spec.host, spec.port))?;
    let encoder = Arc::new(served.encoder);
    let engine = Engine::start(served.model, encoder.clone(), spec.max_batch)?;
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let app = Arc::new(App {
        engine,
        encoder,
        template: served.template,
        name: served.name,
        bos: served.bos,
        created,
        requests: AtomicU64::new(0),
    });
    ready(listener.local_addr()?);
    http::serve(listener, app).await
}
