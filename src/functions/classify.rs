//! Classification: the language of a text and how mathematical it is.

use std::path::Path;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, StringArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::{Signature, TypeSignature, Volatility};

use super::{BatchMemo, Function, doc, map_text, section};
use crate::text::classifier::MathClassifier;
use crate::text::texts;

/// Bytes of a text that language identification reads: about 80 words, which trigram
/// detection needs to be reliable. Measured on the benchmark corpus, whatlang on the first
/// 2 KB cost more than every other signal together.
pub const LANGUAGE_PREFIX: usize = 512;

pub(super) fn functions() -> Vec<Function> {
    let mut functions = Vec::new();
    let classify = section("Classification", "language and math content");
    functions.push(Function {
        name: "language",
        signature: Signature::string(1, Volatility::Immutable),
        returns: DataType::Struct(language_fields()),
        doc: doc(
            &classify,
            "language of the text's first 512 bytes: {code (ISO 639-3, like 'eng'), confidence 0..1}; code NULL when no language shows",
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
            "0..1, how mathematical the text is (linear model over hashed n-grams and LaTeX features); a second argument names a model file",
            "math_score(text [, 'model_file'])",
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
        let info = text.and_then(|t| whatlang::detect(&t[..t.floor_char_boundary(LANGUAGE_PREFIX)]));
        codes.push(info.as_ref().map(|i| i.lang().code()));
        confidences.push(info.as_ref().map(|i| i.confidence()));
    }
    let columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(codes)), Arc::new(Float64Array::from(confidences))];
    Ok(Arc::new(StructArray::try_new(language_fields(), columns, Some(present.into()))?))
}

thread_local! {
    static LANGUAGE_MEMO: BatchMemo = const { BatchMemo::new() };
}

/// Models named by a second argument, loaded once per process.
static MODELS: Mutex<Vec<(String, Arc<MathClassifier>)>> = Mutex::new(Vec::new());

fn model(path: &str) -> DFResult<Arc<MathClassifier>> {
    let mut models = MODELS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, model)) = models.iter().find(|(p, _)| p == path) {
        return Ok(model.clone());
    }
    let model = Arc::new(
        MathClassifier::load(Path::new(path)).map_err(|e| datafusion::error::DataFusionError::External(e.into()))?,
    );
    models.push((path.to_string(), model.clone()));
    Ok(model)
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
            current = Some((path, model(path)?));
        }
        scores.push(current.as_ref().map(|(_, m)| m.score(text)));
    }
    Ok(Arc::new(Float64Array::from(scores)))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};

    use super::*;
    use crate::functions::call;

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
        let scores = scores.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        assert!(scores.value(1) > 0.5 && scores.value(0) < 0.5, "{scores:?}");
        let missing: ArrayRef = Arc::new(StringArray::from(vec![Some("no/such.model"); 3]));
        let function = crate::functions::library().into_iter().find(|f| f.name() == "math_score").unwrap();
        let err = (function.eval)(&[texts, missing]).unwrap_err().to_string();
        assert!(err.contains("no/such.model"), "{err}");
    }
}
