//! The one text normalization that ids, dedup and decontamination share.

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{Signature, Volatility};

use super::{Function, doc, map_text, section};
use crate::text;

pub(super) fn functions() -> Vec<Function> {
    let mut functions = Vec::new();
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, ArrayRef, AsArray};

    use super::*;
    use crate::functions::call;

    #[test]
    fn normalize_text_folds_spaces_and_composes_but_keeps_case_and_latex() {
        let texts: ArrayRef = Arc::new(StringArray::from(vec![Some("  A\u{30a}  \t$\\frac{1}{2}$\n\nB "), None]));
        let out = call("normalize_text", vec![texts]);
        assert_eq!(out.as_string::<i32>().value(0), "\u{c5} $\\frac{1}{2}$ B");
        assert!(out.is_null(1));
    }
}
