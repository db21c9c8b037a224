//! The SQL function library, registered in every session mathlake opens: quality
//! signals, language, math score, problem analysis and the shared text normalization.
//! `mathlake functions` lists them from the documentation each one carries.
//!
//! Functions never panic on input: a NULL text gives NULL; empty, huge or strange text
//! gives the value its definition implies (see `signals.rs` and `text/`).

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, ListBuilder, StringArray, StructArray, UInt32Builder,
    UInt64Array, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Int64Type, UInt32Type};
use datafusion::common::{Result as DFResult, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, DocSection, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use crate::text::classifier::MathClassifier;
use crate::text::minhash::{self, MinHashConfig, MinHashScratch, MinHasher};
use crate::text::signals::Signals;
use crate::text::{self, texts};
use xxhash_rust::xxh3::xxh3_64;

type Eval = Box<dyn Fn(&[ArrayRef]) -> DFResult<ArrayRef> + Send + Sync>;

/// One SQL function: its name, types, documentation and what it computes per batch.
pub struct Function {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    doc: Documentation,
    eval: Eval,
}

impl Function {
    pub fn name(&self) -> &str {
        self.name
    }

    pub fn doc(&self) -> &Documentation {
        &self.doc
    }
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function").field("name", &self.name).finish()
    }
}

// A function is known by its name: the session holds one of each.
impl PartialEq for Function {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for Function {}
impl Hash for Function {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for Function {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let constant = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out = (self.eval)(&arrays)?;
        if constant {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}

/// Registers every function of the library in `ctx`.
pub fn register(ctx: &SessionContext) {
    for function in library() {
        ctx.register_udf(ScalarUDF::new_from_impl(function));
    }
}

/// One quality signal: its name, what it measures, and how to read it off [`Signals`].
struct SignalColumn {
    name: &'static str,
    about: &'static str,
    integer: bool,
    get: fn(&Signals) -> f64,
}

const SIGNALS: [SignalColumn; 14] = [
    SignalColumn {
        name: "word_count",
        about: "words with a letter or digit (Gopher keeps 50 to 100,000)",
        integer: true,
        get: |s| s.word_count as f64,
    },
    SignalColumn {
        name: "mean_word_length",
        about: "mean characters per word (Gopher keeps 3 to 10)",
        integer: false,
        get: |s| s.mean_word_length,
    },
    SignalColumn {
        name: "symbol_word_ratio",
        about: "`#`, `...` and `…` per word (Gopher drops above 0.1)",
        integer: false,
        get: |s| s.symbol_word_ratio,
    },
    SignalColumn {
        name: "punct_line_fraction",
        about: "share of lines ending in terminal punctuation (C4, FineWeb)",
        integer: false,
        get: |s| s.punct_line_fraction,
    },
    SignalColumn {
        name: "alpha_word_fraction",
        about: "share of words with a letter (Gopher keeps 0.8 and up)",
        integer: false,
        get: |s| s.alpha_word_fraction,
    },
    SignalColumn {
        name: "dup_line_fraction",
        about: "share of lines repeating an earlier line (Gopher drops above 0.3)",
        integer: false,
        get: |s| s.dup_line_fraction,
    },
    SignalColumn {
        name: "dup_paragraph_fraction",
        about: "share of paragraphs repeating an earlier one (Gopher drops above 0.3)",
        integer: false,
        get: |s| s.dup_paragraph_fraction,
    },
    SignalColumn {
        name: "top_2gram_fraction",
        about: "share of the words' text in the most frequent word 2-gram (Gopher: 0.2)",
        integer: false,
        get: |s| s.top_ngram_fraction[0],
    },
    SignalColumn {
        name: "top_3gram_fraction",
        about: "same for 3-grams (Gopher drops above 0.18)",
        integer: false,
        get: |s| s.top_ngram_fraction[1],
    },
    SignalColumn {
        name: "top_4gram_fraction",
        about: "same for 4-grams (Gopher drops above 0.16)",
        integer: false,
        get: |s| s.top_ngram_fraction[2],
    },
    SignalColumn {
        name: "bullet_line_fraction",
        about: "share of lines starting with a bullet (Gopher drops above 0.9)",
        integer: false,
        get: |s| s.bullet_line_fraction,
    },
    SignalColumn {
        name: "ellipsis_line_fraction",
        about: "share of lines ending in an ellipsis (Gopher drops above 0.3)",
        integer: false,
        get: |s| s.ellipsis_line_fraction,
    },
    SignalColumn {
        name: "non_ascii_ratio",
        about: "share of characters outside ASCII",
        integer: false,
        get: |s| s.non_ascii_ratio,
    },
    SignalColumn {
        name: "stop_word_count",
        about: "English stop words: the, be, to, of, and, that, have, with (Gopher asks for 2)",
        integer: true,
        get: |s| s.stop_word_count as f64,
    },
];

/// Bytes of a text that language identification reads: about 80 words, which trigram
/// detection needs to be reliable. Measured on the benchmark corpus, whatlang on the first
/// 2 KB cost more than every other signal together.
pub const LANGUAGE_PREFIX: usize = 512;

/// Every function of the library, grouped as `mathlake functions` shows them.
pub fn library() -> Vec<Function> {
    let mut functions = Vec::new();
    let quality = section("Quality signals", "Gopher, C4 and FineWeb document signals");
    functions.push(Function {
        name: "quality_signals",
        signature: Signature::string(1, Volatility::Immutable),
        returns: DataType::Struct(signal_fields()),
        doc: doc(&quality, "every quality signal below in one pass, as a struct", "quality_signals(text)"),
        eval: Box::new(|args| QUALITY_MEMO.with(|memo| memo.get_or_compute(&args[0], quality_signals))),
    });
    for signal in &SIGNALS {
        let get = signal.get;
        let eval: Eval = if signal.integer {
            Box::new(move |args| map_text::<_, Int64Array>(&args[0], |t| Some(get(&Signals::of(t)) as i64)))
        } else {
            Box::new(move |args| map_text::<_, Float64Array>(&args[0], |t| Some(get(&Signals::of(t)))))
        };
        functions.push(Function {
            name: signal.name,
            signature: Signature::string(1, Volatility::Immutable),
            returns: if signal.integer { DataType::Int64 } else { DataType::Float64 },
            doc: doc(&quality, signal.about, &format!("{}(text)", signal.name)),
            eval,
        });
    }

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

    let problems = section("Problems", "analysis of problem-solving records");
    functions.push(Function {
        name: "final_answer",
        signature: Signature::string(1, Volatility::Immutable),
        returns: DataType::Utf8,
        doc: doc(
            &problems,
            "the answer a solution marks (`#### N`, the last `\\boxed{}` or `\\fbox{}`), else its last number",
            "final_answer(solution)",
        ),
        eval: Box::new(|args| map_text::<_, StringArray>(&args[0], text::final_answer)),
    });
    functions.push(Function {
        name: "normalize_answer",
        signature: Signature::string(1, Volatility::Immutable),
        returns: DataType::Utf8,
        doc: doc(
            &problems,
            "an answer as graders compare it (MATH's normalization, plain numbers: `\\dfrac12`, `1/2` agree)",
            "normalize_answer(answer)",
        ),
        eval: Box::new(|args| map_text::<_, StringArray>(&args[0], |t| Some(text::normalize_answer(t)))),
    });
    functions.push(Function {
        name: "reasoning_steps",
        signature: Signature::string(1, Volatility::Immutable),
        returns: DataType::Int64,
        doc: doc(
            &problems,
            "steps in a solution: its sentences and displayed-math rows, outside the `####` line",
            "reasoning_steps(solution)",
        ),
        eval: Box::new(|args| map_text::<_, Int64Array>(&args[0], |t| Some(text::reasoning_steps(t) as i64))),
    });
    functions.push(Function {
        name: "difficulty",
        signature: Signature::exact(vec![DataType::Int64], Volatility::Immutable),
        returns: DataType::Utf8,
        doc: doc(
            &problems,
            "difficulty bucket of a step count: 'easy' (up to 3), 'medium' (up to 6), 'hard'",
            "difficulty(reasoning_steps(solution))",
        ),
        eval: Box::new(|args| {
            let steps = args[0].as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            Ok(Arc::new(steps.iter().map(|s| s.map(|s| text::difficulty(s.max(0) as u64))).collect::<StringArray>()))
        }),
    });
    functions.push(Function {
        name: "completeness",
        signature: Signature::string(2, Volatility::Immutable),
        returns: DataType::Utf8,
        doc: doc(
            &problems,
            "'complete', or what a record lacks: 'missing_question', 'missing_solution', 'missing_final_answer'",
            "completeness(question, solution)",
        ),
        eval: Box::new(|args| {
            let questions = texts(&args[0])?;
            let solutions = texts(&args[1])?;
            Ok(Arc::new(
                questions
                    .zip(solutions)
                    .map(|(q, s)| Some(text::completeness(q.unwrap_or(""), s.unwrap_or(""))))
                    .collect::<StringArray>(),
            ))
        }),
    });

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

    let shared = section("Text", "shared with dedup and decontamination");
    functions.push(Function {
        name: "normalize_text",
        signature: Signature::string(1, Volatility::Immutable),
        returns: DataType::Utf8,
        doc: doc(
            &shared,
            "the one normalization of ids, dedup and decontamination: Unicode NFC, white space runs as one space, case and LaTeX kept",
            "normalize_text(text)",
        ),
        eval: Box::new(|args| map_text::<_, StringArray>(&args[0], |t| Some(text::normalize_text(t)))),
    });
    functions
}

fn section(label: &'static str, description: &'static str) -> DocSection {
    DocSection { include: true, label, description: Some(description) }
}

fn doc(section: &DocSection, description: &str, syntax: &str) -> Documentation {
    Documentation::builder(section.clone(), description, syntax).build()
}

/// Applies `f` to each non-NULL text; NULL stays NULL.
fn map_text<T, A>(array: &ArrayRef, f: impl Fn(&str) -> Option<T>) -> DFResult<ArrayRef>
where
    A: Array + FromIterator<Option<T>> + 'static,
{
    Ok(Arc::new(texts(array)?.map(|t| t.and_then(&f)).collect::<A>()))
}

/// The last result of a struct-valued function on this thread, with the column it came
/// from. DataFusion 55 pushes `q['field']` down as `get_field(quality_signals(text), ...)`,
/// one copy of the call per field (and common-subexpression elimination leaves field
/// access alone), so the same batch arrives once per field; the memo computes it once.
/// Holding the input keeps its buffers alive, so pointer equality means the same data.
struct BatchMemo(std::cell::RefCell<Option<(ArrayRef, ArrayRef)>>);

impl BatchMemo {
    const fn new() -> Self {
        BatchMemo(std::cell::RefCell::new(None))
    }

    fn get_or_compute(&self, input: &ArrayRef, f: fn(&ArrayRef) -> DFResult<ArrayRef>) -> DFResult<ArrayRef> {
        if let Some((seen, output)) = &*self.0.borrow()
            && seen.to_data().ptr_eq(&input.to_data())
        {
            return Ok(output.clone());
        }
        let output = f(input)?;
        *self.0.borrow_mut() = Some((input.clone(), output.clone()));
        Ok(output)
    }
}

thread_local! {
    static QUALITY_MEMO: BatchMemo = const { BatchMemo::new() };
    static LANGUAGE_MEMO: BatchMemo = const { BatchMemo::new() };
}

fn signal_fields() -> Fields {
    SIGNALS
        .iter()
        .map(|s| Field::new(s.name, if s.integer { DataType::Int64 } else { DataType::Float64 }, true))
        .collect()
}

fn quality_signals(array: &ArrayRef) -> DFResult<ArrayRef> {
    let all: Vec<Option<Signals>> = texts(array)?.map(|t| t.map(Signals::of)).collect();
    let columns: Vec<ArrayRef> = SIGNALS
        .iter()
        .map(|s| -> ArrayRef {
            let values = all.iter().map(|v| v.as_ref().map(s.get));
            if s.integer {
                Arc::new(values.map(|v| v.map(|v| v as i64)).collect::<Int64Array>())
            } else {
                Arc::new(values.collect::<Float64Array>())
            }
        })
        .collect();
    let nulls = all.iter().map(Option::is_some).collect();
    Ok(Arc::new(StructArray::try_new(signal_fields(), columns, Some(nulls))?))
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

/// Models named by a second argument, loaded once per process.
static MODELS: Mutex<Vec<(String, Arc<MathClassifier>)>> = Mutex::new(Vec::new());

/// The value of a constant integer argument (the first row's; SQL passes literals).
fn int_arg(array: &ArrayRef, name: &str) -> DFResult<i64> {
    let ints = datafusion::arrow::compute::cast(array, &DataType::Int64)?;
    match ints.as_primitive::<Int64Type>().iter().next() {
        Some(Some(value)) => Ok(value),
        _ => exec_err!("{name} must be an integer, not NULL"),
    }
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
    use super::*;
    use datafusion::arrow::array::StringViewArray;

    fn call(name: &str, args: Vec<ArrayRef>) -> ArrayRef {
        let function = library().into_iter().find(|f| f.name == name).unwrap();
        (function.eval)(&args).unwrap()
    }

    #[test]
    fn names_are_unique_and_documented() {
        let functions = library();
        let mut names: Vec<_> = functions.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), functions.len());
        assert!(functions.iter().all(|f| !f.doc.description.is_empty()));
    }

    #[test]
    fn null_empty_huge_and_garbage_text_give_values_not_panics() {
        let huge = "word ".repeat(2_000_000); // 10 MB
        let garbage: String =
            (0..100_000u32).filter_map(|i| char::from_u32(i.wrapping_mul(2_654_435_761) % 0x11_0000)).collect();
        let column: ArrayRef =
            Arc::new(StringViewArray::from(vec![None, Some(""), Some(huge.as_str()), Some(&garbage)]));
        for function in library() {
            let args = match function.name {
                "completeness" | "jaccard" => vec![column.clone(), column.clone()],
                "minhash_bands" => {
                    let ints = |n: i64| Arc::new(Int64Array::from(vec![n; 4])) as ArrayRef;
                    vec![call("minhash", vec![column.clone()]), ints(14), ints(8)]
                }
                "difficulty" => {
                    vec![Arc::new(Int64Array::from(vec![None, Some(-1), Some(0), Some(i64::MAX)])) as ArrayRef]
                }
                _ => vec![column.clone()],
            };
            let out = (function.eval)(&args).unwrap_or_else(|e| panic!("{}: {e}", function.name));
            assert_eq!(out.len(), 4, "{}", function.name);
            if !matches!(function.name, "completeness" | "difficulty") {
                assert!(out.is_null(0), "{} of NULL", function.name);
            }
        }
        let words = call("word_count", vec![column.clone()]);
        assert_eq!(words.as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(2), 2_000_000);
    }

    #[test]
    fn answers_and_steps_from_sql_types() {
        let solutions: ArrayRef =
            Arc::new(StringArray::from(vec![Some("x = 1.\nSo 2x = 2.\n#### 2"), Some("$\\boxed{\\dfrac12}$"), None]));
        let answers = call("final_answer", vec![solutions.clone()]);
        let answers = answers.as_string::<i32>();
        assert_eq!(answers.value(0), "2");
        assert_eq!(answers.value(1), "\\dfrac12");
        let normalized = call("normalize_answer", vec![Arc::new(answers.clone())]);
        assert_eq!(normalized.as_string::<i32>().value(1), "\\frac{1}{2}");
        let steps = call("reasoning_steps", vec![solutions]);
        assert_eq!(steps.as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(0), 2);
    }
}
