//! Dedup keys: exact-duplicate hashes, document handles, MinHash signatures and their LSH
//! bands, as `mathlake dedup` computes them, and exact Jaccard similarity to check them.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, ListBuilder, UInt32Builder, UInt64Array, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, UInt32Type};
use datafusion::common::{Result as DFResult, exec_err};
use datafusion::logical_expr::{Signature, TypeSignature, Volatility};
use xxhash_rust::xxh3::xxh3_64;

use super::{Function, doc, int_arg, map_text, section};
use crate::text::minhash::{self, MinHashConfig, MinHashScratch, MinHasher};
use crate::text::{self, texts};

pub(super) fn functions() -> Vec<Function> {
    let mut functions = Vec::new();
    let dedup = section("Dedup", "exact and MinHash near-duplicate keys, as `mathlake dedup` uses them");
    functions.push(Function {
        name: "text_hash",
        signature: Signature::string(1, Volatility::Immutable),
        returns: DataType::UInt64,
        doc: doc(&dedup, "64-bit hash of normalize_text(text): equal for exact duplicates", "text_hash(text)"),
        eval: Box::new(|args| {
            map_text::<_, UInt64Array>(&args[0], |t| Some(xxh3_64(text::normalize_text(t).as_bytes())))
        }),
    });
    functions.push(Function {
        name: "document_handle",
        signature: Signature::string(1, Volatility::Immutable),
        returns: DataType::UInt64,
        doc: doc(&dedup, "64-bit hash of a document id, as dedup sorts and joins documents", "document_handle(id)"),
        eval: Box::new(|args| map_text::<_, UInt64Array>(&args[0], |id| Some(text::minhash::document(id)))),
    });
    functions.push(Function {
        name: "minhash",
        signature: Signature::one_of(vec![TypeSignature::String(1), TypeSignature::Any(4)], Volatility::Immutable),
        returns: DataType::List(Arc::new(Field::new_list_field(DataType::UInt32, false))),
        doc: doc(
            &dedup,
            "MinHash signature of the text's word n-gram shingles (default 5-grams, 112 permutations, seed 1); NULL when it has no words",
            "minhash(text [, ngram, permutations, seed])",
        ),
        eval: Box::new(minhash),
    });
    functions.push(Function {
        name: "minhash_bands",
        signature: Signature::any(3, Volatility::Immutable),
        returns: DataType::List(Arc::new(Field::new_list_field(DataType::UInt64, false))),
        doc: doc(
            &dedup,
            "one hash per LSH band of a signature: texts sharing any band are near-duplicate candidates",
            "minhash_bands(minhash(text), bands, rows)",
        ),
        eval: Box::new(minhash_bands),
    });
    functions.push(Function {
        name: "jaccard",
        signature: Signature::one_of(vec![TypeSignature::String(2), TypeSignature::Any(3)], Volatility::Immutable),
        returns: DataType::Float64,
        doc: doc(
            &dedup,
            "exact Jaccard similarity of two texts' word n-gram shingle sets (default 5-grams)",
            "jaccard(a, b [, ngram])",
        ),
        eval: Box::new(|args| {
            let ngram = match args.get(2) {
                Some(n) => int_arg(n, "ngram")?,
                None => 5,
            };
            let ngram = usize::try_from(ngram).ok().filter(|n| (1..=64).contains(n));
            let Some(ngram) = ngram else { return exec_err!("jaccard: ngram must be 1 to 64") };
            Ok(Arc::new(
                texts(&args[0])?
                    .zip(texts(&args[1])?)
                    .map(|(a, b)| Some(minhash::jaccard(a?, b?, ngram)))
                    .collect::<Float64Array>(),
            ))
        }),
    });
    functions
}

fn minhash(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    let config = match args {
        [_, ngram, permutations, seed] => {
            let config = MinHashConfig {
                ngram: usize::try_from(int_arg(ngram, "ngram")?).unwrap_or(0),
                bands: usize::try_from(int_arg(permutations, "permutations")?).unwrap_or(0),
                rows: 1,
                seed: int_arg(seed, "seed")? as u64,
            };
            if let Err(e) = config.validate() {
                return exec_err!("minhash: {e}");
            }
            config
        }
        _ => MinHashConfig::default(),
    };
    let hasher = MinHasher::from_config(&config);
    let mut scratch = MinHashScratch::default();
    let mut signature = Vec::new();
    let mut out = ListBuilder::new(UInt32Builder::new()).with_field(Field::new_list_field(DataType::UInt32, false));
    for text in texts(&args[0])? {
        if text.is_some_and(|t| hasher.signature(t, &mut scratch, &mut signature)) {
            out.values().append_slice(&signature);
            out.append(true);
        } else {
            out.append_null();
        }
    }
    Ok(Arc::new(out.finish()))
}

fn minhash_bands(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    let (bands, rows) = (int_arg(&args[1], "bands")?, int_arg(&args[2], "rows")?);
    let (Ok(bands @ 1..), Ok(rows @ 1..)) = (usize::try_from(bands), usize::try_from(rows)) else {
        return exec_err!("minhash_bands: bands and rows must be positive, not {bands} and {rows}");
    };
    let Some(signatures) = args[0].as_list_opt::<i32>() else {
        return exec_err!("minhash_bands takes a signature from minhash(), not {}", args[0].data_type());
    };
    let mut out = ListBuilder::new(UInt64Builder::new()).with_field(Field::new_list_field(DataType::UInt64, false));
    for signature in signatures.iter() {
        let Some(signature) = signature else {
            out.append_null();
            continue;
        };
        let Some(values) = signature.as_primitive_opt::<UInt32Type>() else {
            return exec_err!(
                "minhash_bands takes a signature from minhash(), not a list of {}",
                signature.data_type()
            );
        };
        if values.len() < bands * rows {
            return exec_err!(
                "minhash_bands: {bands} bands x {rows} rows need {} values, the signature has {}",
                bands * rows,
                values.len()
            );
        }
        out.values().extend(minhash::band_hashes(values.values(), bands, rows).map(Some));
        out.append(true);
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};

    use super::*;
    use crate::functions::call;

    #[test]
    fn keys_agree_with_what_they_stand_for() {
        let a = "the cat sat on the mat and looked at the dog for a while";
        let texts: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(vec![
            Some(a.to_string()),
            Some(format!("  {}  ", a.replace(' ', "   "))),
            Some("something else entirely, with other words in it".to_string()),
        ]));
        let hashes = call("text_hash", vec![texts.clone()]);
        let hashes = hashes.as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
        assert_eq!(hashes.value(0), hashes.value(1), "spacing does not matter");
        assert_ne!(hashes.value(0), hashes.value(2));
        let signatures = call("minhash", vec![texts.clone()]);
        assert_eq!(signatures.as_list::<i32>().value(0).len(), 112);
        let ints = |n: i64| Arc::new(datafusion::arrow::array::Int64Array::from(vec![n; 3])) as ArrayRef;
        let bands = call("minhash_bands", vec![signatures, ints(14), ints(8)]);
        let bands = bands.as_list::<i32>();
        assert_eq!(bands.value(0).len(), 14);
        assert_eq!(bands.value(0).as_ref(), bands.value(1).as_ref(), "equal texts share every band");
        let similarity = call("jaccard", vec![texts.clone(), texts]);
        let similarity = similarity.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        assert!((0..3).all(|i| similarity.value(i) == 1.0));
        let too_few = call_err("minhash_bands", vec![call("minhash", vec![texts_of(a)]), ints(20), ints(8)]);
        assert!(too_few.contains("need 160 values, the signature has 112"), "{too_few}");
    }

    fn texts_of(text: &str) -> ArrayRef {
        Arc::new(datafusion::arrow::array::StringArray::from(vec![text; 3]))
    }

    fn call_err(name: &str, args: Vec<ArrayRef>) -> String {
        let function = crate::functions::library().into_iter().find(|f| f.name() == name).unwrap();
        (function.eval)(&args).unwrap_err().to_string()
    }
}
