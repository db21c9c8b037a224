//! `manifest.json`: what a shard set holds and how it was made. It is written after every
//! shard, so a set with a manifest is complete; readers trust nothing else in the folder.

use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::mixture::Mixture;
use super::plan::Drawn;
use super::records::RecordIndexFile;
use crate::error::{Context, Error, Result};
use crate::lake::Location;
use crate::tokenize::TokenizerInfo;

pub const FORMAT: &str = "mathlake-shards/1";
pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub mixture: Mixture,
    /// xxh3-128 of the mixture file's bytes.
    pub mixture_hash: String,
    pub tokenizer: TokenizerInfo,
    /// Bytes per token in the shards: 2 or 4.
    pub token_width: u8,
    /// Tokens per row: the sequence length plus one (the last target).
    pub row_tokens: usize,
    pub sources: Vec<SourceManifest>,
    pub train: SplitManifest,
    pub validation: SplitManifest,
    /// The record behind every segment of every row (`records.rs`); sets built before it
    /// existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<RecordIndexFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceManifest {
    pub name: String,
    pub input: String,
    #[serde(rename = "where")]
    pub filter: Option<String>,
    /// The version of the tokenized table that was read, and when it was committed.
    pub table_version: u64,
    pub table_committed_at: String,
    pub train: Drawn,
    pub validation: Drawn,
    /// Of the emitted tokens, those in the loss.
    pub train_loss_tokens: u64,
    pub validation_loss_tokens: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitManifest {
    pub rows: u64,
    /// Real tokens (padding excluded).
    pub tokens: u64,
    pub loss_tokens: u64,
    pub shards: Vec<ShardFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardFile {
    /// Relative to the shard set's folder.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    /// xxh3-128 of the file, hex.
    pub xxh3_128: String,
}

impl Manifest {
    pub async fn read(set: &Location) -> Result<Manifest> {
        let location = set.join(MANIFEST);
        let bytes = match location.store()?.get(location.path()).await {
            Ok(got) => got.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::user(format!(
                    "{} has no {MANIFEST}: not a shard set, or its build did not finish",
                    set.url()
                ))
                .hint("`mathlake shards build --mixture FILE --to URL` makes one"));
            }
            Err(e) => return Err(e).context(location.url()),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::user(format!("{} is not a shard manifest: {e}", location.url())))?;
        if manifest.format != FORMAT {
            return Err(Error::user(format!(
                "{}: format {} (this mathlake reads {FORMAT})",
                location.url(),
                manifest.format
            )));
        }
        Ok(manifest)
    }

    pub async fn write(&self, set: &Location) -> Result<()> {
        let location = set.join(MANIFEST);
        let bytes = serde_json::to_vec_pretty(self)?;
        location.store()?.put(location.path(), PutPayload::from(bytes)).await.context(location.url())?;
        Ok(())
    }
}
