//! Mixture files: one experimental arm, in TOML.
//!
//! ```toml
//! name = "test1"
//! mode = "cpt"                 # or "sft"
//! seed = 1
//! sequence_length = 512
//! total_tokens = 2_000_000     # the training budget
//! validation_fraction = 0.05   # of each source's records, held out by id
//!
//! [[source]]
//! name = "general"
//! input = "general_tokens"     # a tokenized lake table (or a table's URL)
//! weight = 0.77                # a share of total_tokens ...
//!
//! [[source]]
//! name = "problems"
//! input = "problem_tokens"
//! where = "split = 'train'"    # SQL over the table's columns
//! tokens = 300_000             # ... or a token budget of its own, or `epochs = 1`:
//!                              # every record once (the same problems in CPT and SFT)
//! max_epochs = 4               # how far it may be upsampled (default 10)
//! hold_out_by = "problem_id"   # the column that decides validation vs training (default id)
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{Error, Result};
use crate::lake::parse_size;

/// Upsampling beyond this many passes over a source is an error unless the source says.
pub const DEFAULT_MAX_EPOCHS: f64 = 10.0;

/// Shards stay under this size unless the mixture says.
pub const DEFAULT_MAX_SHARD_BYTES: &str = "64M";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Continued pre-training: records joined with EOS, cut into sequences, every token in
    /// the loss.
    Cpt,
    /// Supervised fine-tuning: whole records best-fit into padded sequences, the loss only
    /// on the tokens the template put in it (the response and EOS).
    Sft,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mixture {
    pub name: String,
    pub mode: Mode,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Tokens a model sees per sequence; each shard row holds one more (the last target).
    pub sequence_length: usize,
    /// The training budget that weights share out.
    #[serde(default)]
    pub total_tokens: Option<u64>,
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    #[serde(default = "default_max_shard_bytes")]
    pub max_shard_bytes: String,
    #[serde(rename = "source")]
    pub sources: Vec<MixtureSource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixtureSource {
    pub name: String,
    /// A tokenized lake table, or a table's URL.
    pub input: String,
    /// A SQL condition on the table's rows.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    #[serde(default)]
    pub weight: Option<f64>,
    #[serde(default)]
    pub tokens: Option<u64>,
    /// Passes over the source's training records, as a budget: 1 takes each exactly once.
    #[serde(default)]
    pub epochs: Option<f64>,
    #[serde(default = "default_max_epochs")]
    pub max_epochs: f64,
    /// The column whose value decides a record's split instead of its id: records made
    /// from one problem (`problem_id` of synthetic records) fall on the same side as the
    /// problem itself does in a source of problems.
    #[serde(default)]
    pub hold_out_by: Option<String>,
}

fn default_seed() -> u64 {
    1
}

fn default_validation_fraction() -> f64 {
    0.05
}

fn default_max_shard_bytes() -> String {
    DEFAULT_MAX_SHARD_BYTES.into()
}

fn default_max_epochs() -> f64 {
    DEFAULT_MAX_EPOCHS
}

impl Mixture {
    /// Reads and checks a mixture file; returns it with the xxh3-128 of its bytes.
    pub fn load(path: &Path) -> Result<(Mixture, String)> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::user(format!("cannot read mixture file {}: {e}", path.display())))?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| Error::user(format!("mixture file {} is not UTF-8", path.display())))?;
        let mixture: Mixture = toml::from_str(&text)
            .map_err(|e| Error::user(format!("{}: {}", path.display(), e.to_string().trim_end())))?;
        mixture.check().map_err(|e| Error::user(format!("{}: {e}", path.display())))?;
        Ok((mixture, format!("{:032x}", xxh3_128(&bytes))))
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.sources.is_empty() {
            return Err("a mixture needs at least one [[source]]".into());
        }
        if !(1..=1 << 20).contains(&self.sequence_length) {
            return Err(format!("sequence_length must be 1 to 1048576, not {}", self.sequence_length));
        }
        if !(0.0..0.5).contains(&self.validation_fraction) {
            return Err(format!(
                "validation_fraction must be at least 0 and under 0.5, not {}",
                self.validation_fraction
            ));
        }
        self.max_shard_bytes()?;
        let mut names = std::collections::HashSet::new();
        for s in &self.sources {
            if !names.insert(&s.name) {
                return Err(format!("source `{}` appears twice", s.name));
            }
            let budgets = [s.weight.is_some(), s.tokens.is_some(), s.epochs.is_some()];
            match budgets.iter().filter(|b| **b).count() {
                0 => return Err(format!("source `{}` needs a weight, a token budget or epochs", s.name)),
                1 => {}
                _ => return Err(format!("source `{}`: give one of weight, tokens and epochs, not both", s.name)),
            }
            if s.weight.is_some_and(|w| !(w > 0.0 && w.is_finite()))
                || s.tokens == Some(0)
                || s.epochs.is_some_and(|e| !(e > 0.0 && e.is_finite()))
            {
                return Err(format!("source `{}`: weight, tokens and epochs must be positive", s.name));
            }
            if s.weight.is_some() && self.total_tokens.is_none() {
                return Err(format!("source `{}` has a weight, so the mixture needs total_tokens", s.name));
            }
            if s.max_epochs.is_nan() || s.max_epochs < 1.0 {
                return Err(format!("source `{}`: max_epochs must be at least 1", s.name));
            }
            if s.hold_out_by.as_deref().is_some_and(|c| c.is_empty() || c.contains('"')) {
                return Err(format!("source `{}`: hold_out_by must name a column", s.name));
            }
        }
        Ok(())
    }

    /// The mixture with `total_tokens` and every source's `tokens` multiplied by `factor`
    /// (weights and epochs are shares, unchanged), and `hash` made to tell it apart: a run
    /// cannot resume on shards of another scale.
    pub fn scaled(mut self, factor: f64, hash: String) -> Result<(Mixture, String)> {
        if factor == 1.0 {
            return Ok((self, hash));
        }
        if !(factor > 0.0 && factor.is_finite()) {
            return Err(Error::user(format!("scale must be a positive number, not {factor}")));
        }
        let scale = |tokens: u64| ((tokens as f64 * factor).round() as u64).max(1);
        self.total_tokens = self.total_tokens.map(scale);
        for source in &mut self.sources {
            source.tokens = source.tokens.map(scale);
        }
        let hash = format!("{:032x}", xxh3_128(format!("{hash} scaled by {factor}").as_bytes()));
        Ok((self, hash))
    }

    pub fn max_shard_bytes(&self) -> std::result::Result<usize, String> {
        parse_size(&self.max_shard_bytes).map_err(|e| format!("max_shard_bytes: {e}"))
    }

    /// Training tokens each source is asked for: its own budget, its passes over the
    /// `available` training tokens it has, or its weight's share of what `total_tokens`
    /// leaves after the others.
    pub fn requested_tokens(&self, available: &[u64]) -> Result<Vec<u64>> {
        let budget = |s: &MixtureSource, available: u64| match (s.tokens, s.epochs) {
            (Some(t), _) => Some(t),
            (None, Some(e)) => Some((available as f64 * e).round() as u64),
            (None, None) => None,
        };
        let fixed: u64 = self.sources.iter().zip(available).filter_map(|(s, &a)| budget(s, a)).sum();
        let weights: f64 = self.sources.iter().filter_map(|s| s.weight).sum();
        let left = match self.total_tokens {
            Some(total) if weights > 0.0 && total <= fixed => {
                return Err(Error::user(format!(
                    "mixture `{}`: total_tokens {total} leaves nothing for the weighted sources after {fixed} budgeted tokens",
                    self.name
                )));
            }
            Some(total) => total.saturating_sub(fixed),
            None => 0,
        };
        Ok(self
            .sources
            .iter()
            .zip(available)
            .map(|(s, &a)| match (budget(s, a), s.weight) {
                (Some(t), _) => t,
                (None, Some(w)) => (left as f64 * w / weights).round() as u64,
                (None, None) => 0,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<Mixture, String> {
        let m: Mixture = toml::from_str(text).map_err(|e| e.to_string())?;
        m.check()?;
        Ok(m)
    }

    const ARM: &str = "name = \"t\"\nmode = \"cpt\"\nsequence_length = 64\ntotal_tokens = 1000\n\
        [[source]]\nname = \"a\"\ninput = \"x\"\nweight = 3\n\
        [[source]]\nname = \"b\"\ninput = \"y\"\nweight = 1\n\
        [[source]]\nname = \"c\"\ninput = \"z\"\ntokens = 200\n";

    #[test]
    fn weights_share_what_budgets_leave() {
        let m = parse(ARM).unwrap();
        assert_eq!(m.requested_tokens(&[5000, 5000, 5000]).unwrap(), [600, 200, 200]);
        // Passes over what a source has are a budget too: 1.5 of 100 tokens.
        let m = parse(&ARM.replace("tokens = 200", "epochs = 1.5")).unwrap();
        assert_eq!(m.requested_tokens(&[5000, 5000, 100]).unwrap(), [638, 213, 150]);
        assert_eq!((m.seed, m.validation_fraction, m.max_shard_bytes().unwrap()), (1, 0.05, 64 << 20));
    }

    #[test]
    fn a_scaled_mixture_multiplies_its_budgets_and_changes_its_hash() {
        let m = parse(ARM).unwrap();
        let (same, hash) = m.clone().scaled(1.0, "h".into()).unwrap();
        assert_eq!((same, hash.as_str()), (m.clone(), "h"));
        let (big, big_hash) = m.clone().scaled(16.0, "h".into()).unwrap();
        assert_eq!(big.requested_tokens(&[1 << 20; 3]).unwrap(), [9600, 3200, 3200]);
        assert_ne!(big_hash, "h");
        assert_eq!(big.sources[0].weight, Some(3.0));
        assert!(m.scaled(0.0, "h".into()).unwrap_err().to_string().contains("positive"));
    }

    #[test]
    fn bad_mixtures_say_what_is_wrong() {
        let err = parse(&ARM.replace("weight = 1", "weight = 1\ntokens = 5")).unwrap_err();
        assert!(err.contains("not both"), "{err}");
        let err = parse(&ARM.replace("tokens = 200", "epochs = 0")).unwrap_err();
        assert!(err.contains("must be positive"), "{err}");
        let err = parse(&ARM.replace("total_tokens = 1000\n", "")).unwrap_err();
        assert!(err.contains("needs total_tokens"), "{err}");
        let err = parse(&ARM.replace("name = \"b\"", "name = \"a\"")).unwrap_err();
        assert!(err.contains("twice"), "{err}");
        let err = parse(&ARM.replace("mode = \"cpt\"", "mode = \"dpo\"")).unwrap_err();
        assert!(err.contains("unknown variant"), "{err}");
        let err = parse(&ARM.replace("weight = 3", "wieght = 3")).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let m = parse(&ARM.replace("total_tokens = 1000", "total_tokens = 150")).unwrap();
        assert!(m.requested_tokens(&[5000, 5000, 5000]).is_err());
    }
}
