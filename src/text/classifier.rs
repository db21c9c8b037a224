//! `math_score`: how mathematical a text is, from 0 to 1. The idea of the OpenWebMath and
//! DeepSeekMath page classifiers: a linear model (logistic regression) over hashed word
//! unigrams and bigrams, where LaTeX commands (`\frac`), math symbols (`=`, `^`, `$`) and
//! number shapes are tokens too. Scoring is one pass over the text and a few thousand
//! multiply-adds, fast enough to score every document of a crawl.
//!
//! A model file is `MAGIC`, a little-endian u32 header length, a JSON [`ModelInfo`] header
//! (settings, training data, held-out metrics) and the zstd-compressed f32 weights.
//! Training is deterministic: the same examples give the same bytes.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"MLMATH01";

/// The model that ships with mathlake, trained by the command in its header (README,
/// "The math classifier").
const DEFAULT_MODEL: &[u8] = include_bytes!("math_score.model");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// The weight table has 2^bits entries.
    pub bits: u32,
    pub bias: f32,
    pub options: TrainOptions,
    /// What it was trained on: the SQL of the positive and negative examples.
    pub positive: Vec<String>,
    pub negative: Vec<String>,
    pub training: Counts,
    pub heldout: Metrics,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainOptions {
    /// Share of the examples held out for the metrics (chosen by a hash of the text).
    pub holdout: f64,
    pub epochs: usize,
    pub bits: u32,
    /// AdaGrad's learning rate.
    pub learning_rate: f32,
    pub l2: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { holdout: 0.2, epochs: 5, bits: 16, learning_rate: 0.2, l2: 1e-6 }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub positive: usize,
    pub negative: usize,
}

/// How well scores separate positives from negatives (threshold 0.5 for the rates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    pub examples: Counts,
    pub auc: f64,
    pub precision: f64,
    pub recall: f64,
    pub accuracy: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MathClassifier {
    pub info: ModelInfo,
    weights: Vec<f32>,
}

/// A text as features: (weight index, value) pairs in order of first appearance, L2-normalized.
type Features = Vec<(u32, f32)>;

impl MathClassifier {
    /// The model that ships with mathlake.
    pub fn builtin() -> &'static MathClassifier {
        static MODEL: std::sync::OnceLock<MathClassifier> = std::sync::OnceLock::new();
        MODEL.get_or_init(|| MathClassifier::from_bytes(DEFAULT_MODEL).expect("the shipped model is valid"))
    }

    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<MathClassifier, String> {
        let rest = bytes.strip_prefix(MAGIC).ok_or("it does not start with the model marker")?;
        let (len, rest) = rest.split_first_chunk::<4>().ok_or("the header is cut")?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err("the header is cut".into());
        }
        let info: ModelInfo = serde_json::from_slice(&rest[..len]).map_err(|e| format!("bad header: {e}"))?;
        let raw = zstd::decode_all(&rest[len..]).map_err(|e| format!("bad weights: {e}"))?;
        if info.bits > 26 || raw.len() != 4 << info.bits {
            return Err(format!("expected 2^{} weights, found {} bytes", info.bits, raw.len()));
        }
        let weights = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(MathClassifier { info, weights })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = serde_json::to_vec_pretty(&self.info)?;
        let raw: Vec<u8> = self.weights.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&zstd::encode_all(raw.as_slice(), 19)?);
        Ok(out)
    }

    /// The probability that `text` is mathematical.
    pub fn score(&self, text: &str) -> f64 {
        let mut features = Vec::new();
        extract(text, self.info.bits, &mut features);
        self.score_features(&features)
    }

    fn score_features(&self, features: &Features) -> f64 {
        let z = self.info.bias + features.iter().map(|(i, v)| self.weights[*i as usize] * v).sum::<f32>();
        sigmoid(z) as f64
    }

    /// Scores labelled texts.
    pub fn evaluate(&self, positive: &[String], negative: &[String]) -> Metrics {
        let scored = |texts: &[String]| texts.par_iter().map(|t| self.score(t)).collect::<Vec<_>>();
        metrics(&scored(positive), &scored(negative))
    }
}

/// Trains a model on labelled texts: `holdout` of them (by a hash of the text, so the split
/// does not depend on order) are kept out of training and measured.
pub fn train(
    positive: &[String],
    negative: &[String],
    options: TrainOptions,
    sources: (Vec<String>, Vec<String>),
) -> Result<MathClassifier> {
    if !(0.0..1.0).contains(&options.holdout) || !(8..=26).contains(&options.bits) || options.epochs == 0 {
        return Err(Error::user("training needs 0 <= holdout < 1, 8 <= bits <= 26 and at least one epoch"));
    }
    let heldout = |text: &String| (xxh3_64(text.as_bytes()) % 10_000) as f64 / 10_000.0 < options.holdout;
    let split = |texts: &[String]| -> (Vec<String>, Vec<String>) {
        let mut texts: Vec<String> = texts.to_vec();
        // Order and repeats must not change the model: sort by content, drop repeats.
        texts.sort_unstable_by(|a, b| xxh3_64(a.as_bytes()).cmp(&xxh3_64(b.as_bytes())).then(a.cmp(b)));
        texts.dedup();
        texts.into_iter().partition(|t| !heldout(t))
    };
    let (train_pos, test_pos) = split(positive);
    let (train_neg, test_neg) = split(negative);
    if train_pos.is_empty() || train_neg.is_empty() {
        return Err(Error::user(format!(
            "training needs positive and negative examples; found {} positive and {} negative",
            train_pos.len(),
            train_neg.len()
        ))
        .hint("check that the --positive and --negative queries return rows"));
    }
    let examples: Vec<(Features, bool)> = train_pos
        .par_iter()
        .map(|t| (t, true))
        .chain(train_neg.par_iter().map(|t| (t, false)))
        .map(|(text, label)| {
            let mut features = Vec::new();
            extract(text, options.bits, &mut features);
            (features, label)
        })
        .collect();

    // Balanced classes: each class weighs half of the loss, whatever its size.
    let n = examples.len() as f32;
    let class_weight = [n / (2.0 * train_neg.len() as f32), n / (2.0 * train_pos.len() as f32)];
    let size = 1usize << options.bits;
    let (mut weights, mut squares) = (vec![0f32; size], vec![0f32; size]);
    let (mut bias, mut bias_square) = (0f32, 0f32);
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..options.epochs {
        shuffle(&mut order, &mut rng);
        for &k in &order {
            let (features, label) = &examples[k];
            let z = bias + features.iter().map(|(i, v)| weights[*i as usize] * v).sum::<f32>();
            let gradient = (sigmoid(z) - *label as u8 as f32) * class_weight[*label as usize];
            for (i, v) in features {
                let i = *i as usize;
                let g = gradient * v + options.l2 * weights[i];
                squares[i] += g * g;
                weights[i] -= options.learning_rate * g / (squares[i].sqrt() + 1e-8);
            }
            bias_square += gradient * gradient;
            bias -= options.learning_rate * gradient / (bias_square.sqrt() + 1e-8);
        }
    }
    let mut model = MathClassifier {
        info: ModelInfo {
            bits: options.bits,
            bias,
            options,
            positive: sources.0,
            negative: sources.1,
            training: Counts { positive: train_pos.len(), negative: train_neg.len() },
            heldout: Metrics::default(),
        },
        weights,
    };
    model.info.heldout = model.evaluate(&test_pos, &test_neg);
    Ok(model)
}

/// Fisher-Yates with a xorshift generator: the same order on every machine.
fn shuffle(order: &mut [usize], state: &mut u64) {
    for i in (1..order.len()).rev() {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        order.swap(i, (*state % (i as u64 + 1)) as usize);
    }
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// AUC (the chance that a random positive outscores a random negative, ties counting half)
/// and the rates at threshold 0.5.
pub fn metrics(positive: &[f64], negative: &[f64]) -> Metrics {
    let examples = Counts { positive: positive.len(), negative: negative.len() };
    let mut all: Vec<(f64, bool)> =
        positive.iter().map(|s| (*s, true)).chain(negative.iter().map(|s| (*s, false))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mann-Whitney: sum of the (tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let mean_rank = (i + j + 1) as f64 / 2.0; // ranks i+1 ..= j
        rank_sum += mean_rank * all[i..j].iter().filter(|(_, p)| *p).count() as f64;
        i = j;
    }
    let (p, q) = (positive.len() as f64, negative.len() as f64);
    let auc = if p > 0.0 && q > 0.0 { (rank_sum - p * (p + 1.0) / 2.0) / (p * q) } else { f64::NAN };
    let true_pos = positive.iter().filter(|s| **s >= 0.5).count() as f64;
    let false_pos = negative.iter().filter(|s| **s >= 0.5).count() as f64;
    let true_neg = q - false_pos;
    Metrics {
        examples,
        auc,
        precision: true_pos / (true_pos + false_pos),
        recall: true_pos / p,
        accuracy: (true_pos + true_neg) / (p + q),
    }
}

/// The features of `text`: tokens are lower-cased words, digit runs by length (`<3>`),
/// LaTeX commands (`\frac`) and every other non-space character on its own; each token
/// and each pair of neighbours is hashed into 2^bits slots; values are 1 + ln(count),
/// L2-normalized, so that length does not decide the score.
fn extract(text: &str, bits: u32, out: &mut Features) {
    SLOT_COUNTS.with_borrow_mut(|counts| {
        counts.resize(1 << bits, 0);
        let mask = (1u64 << bits) - 1;
        let mut touched: Vec<u32> = Vec::with_capacity(text.len() / 2);
        let mut count = |slot: u64| {
            let slot = (slot & mask) as usize;
            if counts[slot] == 0 {
                touched.push(slot as u32);
            }
            counts[slot] = counts[slot].saturating_add(1);
        };
        let mut previous: Option<u64> = None;
        let mut word = String::new();
        // Bytes, not `chars()`: ASCII (most of any corpus) takes no decoding; a non-ASCII
        // character is decoded where it starts.
        let bytes = text.as_bytes();
        let mut at = 0;
        while let Some(c) = char_at(text, at) {
            at += c.len_utf8();
            if c.is_whitespace() {
                continue;
            }
            word.clear();
            if c.is_alphabetic() {
                push_lowercase(&mut word, c);
                loop {
                    match bytes.get(at) {
                        Some(b) if b.is_ascii_alphabetic() => {
                            word.push(b.to_ascii_lowercase() as char);
                            at += 1;
                        }
                        Some(b) if !b.is_ascii() => match char_at(text, at) {
                            Some(next) if next.is_alphabetic() => {
                                push_lowercase(&mut word, next);
                                at += next.len_utf8();
                            }
                            _ => break,
                        },
                        _ => break,
                    }
                }
            } else if c.is_ascii_digit() {
                let digits = 1 + bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
                at += digits - 1;
                word.push_str(["<1>", "<2>", "<3>", "<4+>"][digits.min(4) - 1]);
            } else if c == '\\' && bytes.get(at).is_some_and(u8::is_ascii_alphabetic) {
                let letters = bytes[at..].iter().take_while(|b| b.is_ascii_alphabetic()).count();
                word.push('\\');
                word.push_str(&text[at..at + letters]);
                at += letters;
            } else {
                word.push(c);
            }
            let token = xxh3_64(word.as_bytes());
            count(token);
            if let Some(p) = previous {
                // A pair's slot: the two hashes mixed; the high bits of the product are the best mixed.
                count((p.rotate_left(23) ^ token).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits));
            }
            previous = Some(token);
        }
        out.clear();
        out.extend(touched.iter().map(|slot| {
            let n = std::mem::take(&mut counts[*slot as usize]);
            // Most slots are touched once, and ln(1) is 0.
            (*slot, if n == 1 { 1.0 } else { 1.0 + (n as f32).ln() })
        }));
    });
    let norm = out.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        out.iter_mut().for_each(|(_, v)| *v /= norm);
    }
}

thread_local! {
    /// Per-slot token counts, all zero between calls (only touched slots are used and reset).
    static SLOT_COUNTS: std::cell::RefCell<Vec<u16>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The character starting at byte `at` of `text` (a character boundary), if any.
#[inline(always)]
fn char_at(text: &str, at: usize) -> Option<char> {
    match text.as_bytes().get(at) {
        Some(&b) if b.is_ascii() => Some(b as char),
        Some(_) => text[at..].chars().next(),
        None => None,
    }
}

fn push_lowercase(word: &mut String, c: char) {
    if c.is_ascii() {
        word.push(c.to_ascii_lowercase());
    } else {
        word.extend(c.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_words_digit_runs_commands_and_symbols() {
        let features = |text: &str| {
            let mut out = Vec::new();
            extract(text, 16, &mut out);
            out.sort_by_key(|(slot, _)| *slot);
            out
        };
        // Words are lower-cased letter runs, ASCII or not; any Unicode space separates.
        assert_eq!(features("Été ΣΑΣ naïve"), features("été σασ naïve"));
        assert_eq!(features("a\u{0B}b\u{85}c\u{3000}d"), features("a b c d"));
        assert_ne!(features("naïve"), features("na ïve"));
        // Digit runs count by length, up to 4+.
        assert_eq!(features("x12345y"), features("x 9999 y"));
        assert_ne!(features("x 123 y"), features("x 1234 y"));
        // Commands keep their case and end at the first non-letter.
        assert_eq!(features("\\Frac12"), features("\\Frac 12"));
        assert_ne!(features("\\Frac 12"), features("\\frac 12"));
        assert_eq!(features("\\ 1"), features("\\1"));
    }

    #[test]
    fn auc_counts_ties_as_half() {
        let m = metrics(&[0.9, 0.8, 0.4], &[0.1, 0.4]);
        // Pairs: 0.9 and 0.8 beat both (4), 0.4 beats 0.1 and ties 0.4 (1.5): 5.5 of 6.
        assert!((m.auc - 5.5 / 6.0).abs() < 1e-12);
        assert_eq!(m.recall, 2.0 / 3.0);
        assert_eq!(m.precision, 1.0);
    }

    #[test]
    fn features_are_normalized_and_length_free() {
        let mut a = Vec::new();
        extract("Let $x^2 = 4$. Then \\frac{x}{2} = 1.", 16, &mut a);
        let norm: f32 = a.iter().map(|(_, v)| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        let mut empty = Vec::new();
        extract("", 16, &mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn training_is_deterministic_and_separates() {
        let math: Vec<String> = (0..200).map(|i| format!("Solve $x^{i} + {i}x = 0$ and \\frac{{1}}{{{i}}}.")).collect();
        let prose: Vec<String> = (0..200).map(|i| format!("The weather on day {i} was sunny and warm.")).collect();
        let options = TrainOptions { bits: 12, ..TrainOptions::default() };
        let a = train(&math, &prose, options, (vec![], vec![])).unwrap();
        let mut reversed = math.clone();
        reversed.reverse();
        let b = train(&reversed, &prose, options, (vec![], vec![])).unwrap();
        assert_eq!(a.to_bytes().unwrap(), b.to_bytes().unwrap());
        assert!(a.info.heldout.auc > 0.99, "{:?}", a.info.heldout);
        assert!(a.score("We solve $y^2 = 9$.") > 0.5);
        assert!(a.score("It was a sunny day.") < 0.5);
        let loaded = MathClassifier::from_bytes(&a.to_bytes().unwrap()).unwrap();
        assert_eq!(loaded, a);
    }

    #[test]
    fn damaged_model_files_are_refused() {
        assert!(MathClassifier::from_bytes(b"nonsense").is_err());
        let mut bytes = MathClassifier::builtin().to_bytes().unwrap();
        bytes.truncate(bytes.len() / 2);
        assert!(MathClassifier::from_bytes(&bytes).is_err());
    }
}
