//! A Hugging Face `tokenizer.json`, loaded from any lake location, with the EOS token the
//! file itself does not declare; and the byte-level BPE trainer behind
//! `mathlake tokenizer train`.
//!
//! Byte-level BPE files (GPT-2's family, and what `tokenizer train` writes) encode with
//! the project's fast encoder ([`super::bpe`]), which gives HF's ids; other files, and
//! decoding, use HF tokenizers.

use std::collections::HashSet;

use object_store::{ObjectStoreExt, PutPayload};
use serde::Serialize;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer, TokenizerImpl};
use xxhash_rust::xxh3::xxh3_128;

use super::bpe::FastBpe;
use crate::error::{Context, Error, Result};
use crate::lake::Location;

/// Tried in order when no EOS is given: GPT-2's, Llama's, and common others.
pub const EOS_CANDIDATES: &[&str] = &["<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|eos|>"];

/// The EOS of tokenizers that `mathlake tokenizer train` writes.
pub const TRAINED_EOS: &str = "<|endoftext|>";

/// What identifies a tokenizer in a table's details and a shard manifest.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TokenizerInfo {
    /// Where it was loaded from.
    pub source: String,
    /// xxh3-128 of the file's bytes, hex.
    pub hash: String,
    pub eos: String,
    pub eos_id: u32,
    /// Ids are below this (added tokens included).
    pub vocab_size: u32,
}

/// How [`TokenizerInfo::hash`] identifies a tokenizer file: xxh3-128 of its bytes, hex.
pub fn file_hash(bytes: &[u8]) -> String {
    format!("{:032x}", xxh3_128(bytes))
}

/// Which implementation encodes text; both give the same ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The fast encoder when the file is a byte-level BPE it supports, else HF tokenizers.
    #[default]
    Auto,
    /// The fast encoder; an error for a file it does not support.
    Fast,
    /// Hugging Face tokenizers.
    Hf,
}

pub struct Encoder {
    tokenizer: Tokenizer,
    fast: Option<FastBpe>,
    /// Why `auto` encodes with Hugging Face tokenizers: what the fast encoder does not
    /// support in the file.
    fallback: Option<String>,
    pub info: TokenizerInfo,
}

/// One record's tokens and how many of them, from the start, are prompt: out of the SFT
/// loss. The prompt is always a prefix (a template renders it first), so a count says
/// what a mask per token would.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub prompt_tokens: usize,
}

impl Encoded {
    /// Whether token `t` counts in the loss.
    pub fn in_loss(&self, t: usize) -> bool {
        t >= self.prompt_tokens
    }
}

impl Encoder {
    /// Loads `tokenizer.json` from a path or URL; `eos` names the EOS token, else the
    /// first of [`EOS_CANDIDATES`] in the vocabulary.
    pub async fn load(source: &str, eos: Option<&str>, engine: Engine) -> Result<Encoder> {
        let location = Location::parse(source)?;
        let bytes = location
            .store()?
            .get(location.path())
            .await
            .with_context(|| format!("reading tokenizer {source}"))?
            .bytes()
            .await?;
        Encoder::from_bytes(source, &bytes, eos, engine)
    }

    pub fn from_bytes(source: &str, bytes: &[u8], eos: Option<&str>, engine: Engine) -> Result<Encoder> {
        let tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| {
            Error::user(format!("{source} is not a tokenizer.json that Hugging Face tokenizers loads: {e}"))
        })?;
        let (eos, eos_id) = match eos {
            Some(name) => (
                name,
                tokenizer
                    .token_to_id(name)
                    .ok_or_else(|| Error::user(format!("EOS token `{name}` is not in the vocabulary of {source}")))?,
            ),
            None => EOS_CANDIDATES
                .iter()
                .find_map(|&name| tokenizer.token_to_id(name).map(|id| (name, id)))
                .ok_or_else(|| {
                    Error::user(format!("{source} has none of the usual EOS tokens ({})", EOS_CANDIDATES.join(" ")))
                        .hint("name it with --eos TOKEN")
                })?,
        };
        let info = TokenizerInfo {
            source: source.into(),
            hash: file_hash(bytes),
            eos: eos.into(),
            eos_id,
            vocab_size: tokenizer.get_vocab_size(true) as u32,
        };
        let (fast, fallback) = match engine {
            Engine::Hf => (None, None),
            Engine::Auto => match FastBpe::from_json(bytes) {
                Ok(fast) => (Some(fast), None),
                Err(why) => (None, Some(why)),
            },
            Engine::Fast => (
                Some(FastBpe::from_json(bytes).map_err(|why| {
                    Error::user(format!("the fast encoder cannot encode with {source}: {why}"))
                        .hint("--encoder auto uses Hugging Face tokenizers for such files")
                })?),
                None,
            ),
        };
        Ok(Encoder { tokenizer, fast, fallback, info })
    }

    /// The engine that encodes: `fast` or `hf`.
    pub fn engine(&self) -> Engine {
        if self.fast.is_some() { Engine::Fast } else { Engine::Hf }
    }

    /// Why `--encoder auto` chose Hugging Face tokenizers for this file, if it did.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Tokenizes `text` as one string, without the tokenizer's own special tokens, and
    /// appends EOS. The tokens before the first that ends past the first `prompt_bytes`
    /// bytes are prompt.
    pub fn encode(&self, text: &str, prompt_bytes: usize) -> Result<Encoded> {
        if let Some(fast) = &self.fast
            && (prompt_bytes == 0 || fast.exact_ends(text))
        {
            // Room for 2 bytes a token: GPT-2's ids run about 2.7 bytes a token on math text,
            // so growing from a third of the length copied most rows' ids once.
            let mut ids = Vec::with_capacity(text.len() / 2 + 2);
            let prompt_tokens = if prompt_bytes == 0 {
                fast.encode(text, &mut ids, None);
                0
            } else {
                let mut ends = Vec::with_capacity(ids.capacity());
                fast.encode(text, &mut ids, Some(&mut ends));
                ends.iter().take_while(|&&end| end <= prompt_bytes).count()
            };
            ids.push(self.info.eos_id);
            return Ok(Encoded { ids, prompt_tokens });
        }
        let encode = |text: &str, offsets: bool| {
            let result =
                if offsets { self.tokenizer.encode(text, false) } else { self.tokenizer.encode_fast(text, false) };
            result.map_err(|e| Error::Internal(format!("tokenizer failed: {e}")))
        };
        let encoding = encode(text, prompt_bytes > 0)?;
        let mut ids = Vec::with_capacity(encoding.get_ids().len() + 1);
        ids.extend_from_slice(encoding.get_ids());
        ids.push(self.info.eos_id);
        // Without a prompt the offsets were not computed (`encode_fast`).
        let prompt_tokens = match prompt_bytes {
            0 => 0,
            _ => encoding.get_offsets().iter().take_while(|&&(_, end)| end <= prompt_bytes).count(),
        };
        Ok(Encoded { ids, prompt_tokens })
    }

    /// The text of `ids`, special tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, false).map_err(|e| Error::Internal(format!("tokenizer failed to decode: {e}")))
    }
}

/// Trains a byte-level BPE (GPT-2's pre-tokenizer, decoder and 256-byte alphabet) of
/// `vocab_size` tokens, [`TRAINED_EOS`] included, on `texts`; returns the tokenizer.json.
pub fn train_bpe<I>(texts: I, vocab_size: usize, min_frequency: u64) -> Result<String>
where
    I: Iterator<Item = String> + Send,
{
    let alphabet = ByteLevel::alphabet();
    if vocab_size < alphabet.len() + 1 {
        return Err(Error::user(format!(
            "a byte-level BPE needs a vocabulary of at least {} (256 bytes and EOS), not {vocab_size}",
            alphabet.len() + 1
        )));
    }
    let mut trainer = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(min_frequency)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(TRAINED_EOS, true)])
        .initial_alphabet(alphabet.into_iter().collect::<HashSet<char>>())
        .build();
    let byte_level = ByteLevel::new(false, true, true);
    let mut tokenizer: TokenizerImpl<BPE, NormalizerWrapper, ByteLevel, ByteLevel, ByteLevel> =
        TokenizerImpl::new(BPE::default());
    tokenizer
        .with_pre_tokenizer(Some(byte_level))
        .with_post_processor(Some(ByteLevel::new(true, false, true)))
        .with_decoder(Some(byte_level));
    tokenizer.train(&mut trainer, texts).map_err(|e| Error::Internal(format!("BPE training failed: {e}")))?;
    tokenizer.to_string(false).map_err(|e| Error::Internal(format!("cannot serialize the tokenizer: {e}")))
}

/// Writes a tokenizer.json to a path or URL.
pub async fn save(json: String, to: &str) -> Result<()> {
    let location = Location::parse(to)?;
    if location.is_local()
        && let Some(parent) = std::path::Path::new(&format!("/{}", location.path())).parent()
    {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    location.store()?.put(location.path(), PutPayload::from(json.into_bytes())).await.context(to.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt2() -> Encoder {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/tokenizers/gpt2.json");
        Encoder::from_bytes(path, &std::fs::read(path).unwrap(), None, Engine::Auto).unwrap()
    }

    #[test]
    fn gpt2_eos_is_found_and_appended() {
        let encoder = gpt2();
        assert_eq!(
            (encoder.info.eos.as_str(), encoder.info.eos_id, encoder.info.vocab_size),
            ("<|endoftext|>", 50256, 50257)
        );
        let e = encoder.encode("Hello world", 0).unwrap();
        assert_eq!(e.ids, [15496, 995, 50256]);
        assert_eq!(e.prompt_tokens, 0);
        assert_eq!(encoder.decode(&e.ids).unwrap(), "Hello world<|endoftext|>");
    }

    #[test]
    fn prompt_tokens_leave_the_loss() {
        let encoder = gpt2();
        let text = "Question: What is 2+2?\nAnswer: 4";
        let prompt = text.find(" 4").unwrap();
        let e = encoder.encode(text, prompt).unwrap();
        assert_eq!(encoder.decode(&e.ids[..e.prompt_tokens]).unwrap(), &text[..prompt]);
        assert_eq!(encoder.decode(&e.ids[e.prompt_tokens..]).unwrap(), " 4<|endoftext|>");
        assert!(!e.in_loss(e.prompt_tokens - 1) && e.in_loss(e.prompt_tokens));
    }

    #[test]
    fn unknown_eos_and_bad_files_are_user_errors() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/tokenizers/gpt2.json");
        let bytes = std::fs::read(path).unwrap();
        let err = Encoder::from_bytes(path, &bytes, Some("</s>"), Engine::Auto).err().unwrap();
        assert!(err.to_string().contains("`</s>` is not in the vocabulary"), "{err}");
        let err = Encoder::from_bytes("x.json", b"{\"not\": 1}", None, Engine::Auto).err().unwrap();
        assert!(err.to_string().contains("not a tokenizer.json"), "{err}");
    }

    #[test]
    fn trained_bpe_round_trips_and_has_its_eos() {
        let texts: Vec<String> = (0..200)
            .map(|i| format!("Let x = {i}. Then x + 1 = {}. The answer is \\boxed{{{}}}.", i + 1, i + 1))
            .collect();
        let json = train_bpe(texts.clone().into_iter(), 300, 2).unwrap();
        let encoder = Encoder::from_bytes("trained", json.as_bytes(), None, Engine::Fast).unwrap();
        assert_eq!(encoder.info.eos, TRAINED_EOS);
        assert_eq!(encoder.info.vocab_size, 300);
        for text in &texts[..20] {
            let e = encoder.encode(text, 0).unwrap();
            assert!(e.ids.len() < text.len(), "merges shorten the text");
            assert_eq!(encoder.decode(&e.ids[..e.ids.len() - 1]).unwrap(), *text);
        }
        assert!(train_bpe(texts.into_iter(), 100, 2).is_err());
    }
}
