//! Classification: the language of a text and how mathematical it is.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, StringArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::Result as DFResult;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Signature, TypeSignature, Volatility};

use super::{BatchMemo, Cached, Function, doc, map_text, read_cached, section};
use crate::error::{Error, Result};
use crate::text::classifier::MathClassifier;
use crate::text::language::identify;
use crate::text::texts;

pub(super) fn functions() -> Vec<Function> {
    let mut functions = Vec::new();
    let classify = section("Classification", "language and math content");
    functions.push(Function {
        name: "language",
        signature: Signature::string(1, Volatility::Immutable),
        returns: DataType::Struct(language_fields()),
        doc: doc(
            &classify,
            "language of the text's first 384 bytes: {code (ISO 639-3, like 'eng'), confidence 0..1}; code NULL when no language shows",
            "language(text)['code']",
        ),
        eval: Box::new(|args| LANGUAGE_MEMO.with(|memo| memo.get_or_compute(&args[0], language))),
    });
    functions.push(Function {
        name: "math_score",
        signature: Signature::one_of(vec![TypeSignature::String(1), TypeSignature::String(2)], Volatility::Immutable),
        returns: DataType::Float64,
        doc: doc(
            &classify,
            "0..1, how mathematical the text is (linear model over hashed n-grams and LaTeX features); a second argument names a model by path or URL",
            "math_score(text [, 'model_url'])",
        ),
        eval: Box::new(math_score),
    });
    functions
}

fn language_fields() -> Fields {
    Fields::from(vec![Field::new("code", DataType::Utf8, true), Field::new("confidence", DataType::Float64, true)])
}

fn language(array: &ArrayRef) -> DFResult<ArrayRef> {
    let mut present = Vec::with_capacity(array.len());
    let (mut codes, mut confidences) = (Vec::with_capacity(array.len()), Vec::with_capacity(array.len()));
    for text in texts(array)? {
        present.push(text.is_some());
        let language = text.and_then(identify);
        codes.push(language.map(|l| l.code));
        confidences.push(language.map(|l| l.confidence));
    }
    let columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(codes)), Arc::new(Float64Array::from(confidences))];
    Ok(Arc::new(StructArray::try_new(language_fields(), columns, Some(present.into()))?))
}

thread_local! {
    static LANGUAGE_MEMO: BatchMemo = const { BatchMemo::new() };
}

/// The `math_score` model at `url` (a path, `file://` or `s3://`), read once per process:
/// on a cluster every executor reads it from where the URL points, so the driver's local
/// paths mean nothing there and a shared store does.
pub fn model(url: &str) -> Result<Arc<MathClassifier>> {
    static MODELS: Cached<MathClassifier> = Mutex::new(Vec::new());
    read_cached(&MODELS, url, |bytes| {
        let hint = "`mathlake classifier train --out URL` writes one";
        let bytes = bytes.ok_or_else(|| Error::user(format!("no math_score model at {url}")).hint(hint))?;
        MathClassifier::from_bytes(&bytes)
            .map_err(|e| Error::user(format!("{url} is not a math_score model: {e}")).hint(hint))
    })
}

fn math_score(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    let Some(paths) = args.get(1) else {
        let builtin = MathClassifier::builtin();
        return map_text::<_, Float64Array>(&args[0], |t| Some(builtin.score(t)));
    };
    let mut scores = Vec::with_capacity(args[0].len());
    let mut current: Option<(&str, Arc<MathClassifier>)> = None;
    for (text, path) in texts(&args[0])?.zip(texts(paths)?) {
        let (Some(text), Some(path)) = (text, path) else {
            scores.push(None);
            continue;
        };
        if current.as_ref().is_none_or(|(p, _)| *p != path) {
            current = Some((path, model(path).map_err(|e| DataFusionError::External(e.into()))?));
        }
        scores.push(current.as_ref().map(|(_, m)| m.score(text)));
    }
    Ok(Arc::new(Float64Array::from(scores)))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Float64Type;

    use super::*;
    use crate::functions::call;
    use crate::location::{Location, block_on_own_thread};

    #[test]
    fn language_reads_the_prefix_and_math_score_separates_math_from_prose() {
        let texts: ArrayRef = Arc::new(StringArray::from(vec![
            Some("The quick brown fox jumps over the lazy dog while the farmer watches from the field."),
            Some("Let $x^2 + 3x - 4 = 0$. Then $(x+4)(x-1) = 0$, so $x = 1$ or $x = -4$. \\boxed{1}"),
            None,
        ]));
        let language = call("language", vec![texts.clone()]);
        let codes = language.as_struct().column_by_name("code").unwrap().clone();
        assert_eq!(codes.as_string::<i32>().value(0), "eng");
        assert!(language.is_null(2));
        let scores = call("math_score", vec![texts.clone()]);
        let scores = scores.as_primitive::<Float64Type>();
        assert!(scores.value(1) > 0.5 && scores.value(0) < 0.5, "{scores:?}");
    }

    /// A model named by URL is the one that scores: one trained the other way round (prose as
    /// the positive class) reverses the builtin's verdicts, read from a file path and from a
    /// store URL alike; a missing or damaged model is an error naming it.
    #[test]
    fn math_score_reads_the_model_its_second_argument_names() {
        let math: Vec<String> = (0..100).map(|i| format!("Solve $x^{i} + {i}x = 0$ and \\frac{{1}}{{{i}}}.")).collect();
        let prose: Vec<String> = (0..100).map(|i| format!("The weather on day {i} was sunny and warm.")).collect();
        let options = crate::text::classifier::TrainOptions { bits: 12, ..Default::default() };
        let reversed = crate::text::classifier::train(&prose, &math, options, (vec![], vec![])).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("reversed.model");
        std::fs::write(&file, reversed.to_bytes().unwrap()).unwrap();
        let url = "memory://models/reversed.model";
        block_on_own_thread(crate::location::put(&Location::parse(url).unwrap(), reversed.to_bytes().unwrap()))
            .unwrap();

        let texts: ArrayRef =
            Arc::new(StringArray::from(vec!["It was a sunny day on the farm.", "We solve $y^2 = 9$, so $y = 3$."]));
        let builtin = call("math_score", vec![texts.clone()]);
        let builtin = builtin.as_primitive::<Float64Type>();
        assert!(builtin.value(0) < 0.5 && builtin.value(1) > 0.5, "{builtin:?}");
        for name in [file.to_str().unwrap(), url] {
            let names: ArrayRef = Arc::new(StringArray::from(vec![name; 2]));
            let scores = call("math_score", vec![texts.clone(), names]);
            let scores = scores.as_primitive::<Float64Type>();
            assert!(scores.value(0) > 0.5 && scores.value(1) < 0.5, "{name}: {scores:?}");
        }

        let damaged = dir.path().join("damaged.model");
        std::fs::write(&damaged, b"not a model").unwrap();
        let function = crate::functions::library().into_iter().find(|f| f.name() == "math_score").unwrap();
        for (name, expected) in [
            ("memory://models/missing.model".to_string(), "no math_score model at memory://models/missing.model"),
            (damaged.display().to_string(), "is not a math_score model: it does not start with the model marker"),
        ] {
            let names: ArrayRef = Arc::new(StringArray::from(vec![name.as_str(); 2]));
            let err = (function.eval)(&[texts.clone(), names]).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }
}
