//! Quality signals: Gopher, C4 and FineWeb's document statistics, one function each and
//! all of them in one pass as `quality_signals(text)`.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::{Signature, Volatility};

use super::{BatchMemo, Eval};
use super::{Function, doc, map_text, section};
use crate::text::signals::Signals;
use crate::text::texts;

/// One quality signal: its name, what it measures, and how to read it off [`Signals`].
struct SignalColumn {
    name: &'static str,
    about: &'static str,
    integer: bool,
    get: fn(&Signals) -> f64,
}

const SIGNALS: [SignalColumn; 24] = [
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
    SignalColumn {
        name: "dup_5gram_fraction",
        about: "share of the words' text in word 5-grams repeating an earlier one (Gopher drops above 0.15)",
        integer: false,
        get: |s| s.dup_ngram_fraction[0],
    },
    SignalColumn {
        name: "dup_6gram_fraction",
        about: "same for 6-grams (Gopher drops above 0.14)",
        integer: false,
        get: |s| s.dup_ngram_fraction[1],
    },
    SignalColumn {
        name: "dup_7gram_fraction",
        about: "same for 7-grams (Gopher drops above 0.13)",
        integer: false,
        get: |s| s.dup_ngram_fraction[2],
    },
    SignalColumn {
        name: "dup_8gram_fraction",
        about: "same for 8-grams (Gopher drops above 0.12)",
        integer: false,
        get: |s| s.dup_ngram_fraction[3],
    },
    SignalColumn {
        name: "dup_9gram_fraction",
        about: "same for 9-grams (Gopher drops above 0.11)",
        integer: false,
        get: |s| s.dup_ngram_fraction[4],
    },
    SignalColumn {
        name: "dup_10gram_fraction",
        about: "same for 10-grams (Gopher drops above 0.10)",
        integer: false,
        get: |s| s.dup_ngram_fraction[5],
    },
    SignalColumn {
        name: "javascript_line_fraction",
        about: "share of lines mentioning javascript (C4 drops those lines)",
        integer: false,
        get: |s| s.javascript_line_fraction,
    },
    SignalColumn {
        name: "policy_line_fraction",
        about: "share of lines with a cookie or terms-of-use notice (C4 drops those lines)",
        integer: false,
        get: |s| s.policy_line_fraction,
    },
    SignalColumn {
        name: "lorem_ipsum_count",
        about: "`lorem ipsum` placeholders (C4 drops a page with one)",
        integer: true,
        get: |s| s.lorem_ipsum_count as f64,
    },
    SignalColumn {
        name: "curly_brace_count",
        about: "`{` characters (C4 drops a page with one to drop code; LaTeX has many)",
        integer: true,
        get: |s| s.curly_brace_count as f64,
    },
];

pub(super) fn functions() -> Vec<Function> {
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
    functions
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

thread_local! {
    static QUALITY_MEMO: BatchMemo = const { BatchMemo::new() };
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray, StringArray};

    use super::*;
    use crate::functions::call;

    /// The struct holds every signal, each the value its own function gives.
    #[test]
    fn the_struct_holds_each_signal_as_its_own_function_gives_it() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            Some("The cat sat on the mat.\nThe cat sat on the mat.\n- and then it left..."),
            None,
        ]));
        let all = call("quality_signals", vec![text.clone()]);
        let all = all.as_struct();
        assert!(all.is_null(1));
        for signal in &SIGNALS {
            let alone = call(signal.name, vec![text.clone()]);
            let field = all.column_by_name(signal.name).unwrap();
            assert_eq!(field.as_ref(), alone.as_ref(), "{}", signal.name);
        }
        let words = call("word_count", vec![text]);
        assert_eq!(
            words.as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(0),
            16,
            "6 + 6 + 4: a bullet is no word"
        );
        let lines =
            call("dup_line_fraction", vec![Arc::new(StringArray::from(vec!["a b\na b\nc d\nc d"])) as ArrayRef]);
        assert_eq!(lines.as_primitive::<datafusion::arrow::datatypes::Float64Type>().value(0), 0.5);
    }
}
