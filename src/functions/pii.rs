//! Personal data in web text: e-mail addresses, public IP addresses and, when asked for,
//! phone numbers (`text::pii`), for curation SQL to count or redact.

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DFResult, exec_err};
use datafusion::logical_expr::{Signature, TypeSignature, Volatility};

use super::{Function, doc, map_text, section};
use crate::text::pii::{self, Kinds};

pub(super) fn functions() -> Vec<Function> {
    let web = section("Web text", "personal data in crawled pages");
    let signature = || Signature::one_of(vec![TypeSignature::String(1), TypeSignature::Any(2)], Volatility::Immutable);
    vec![
        Function {
            name: "redact_pii",
            signature: signature(),
            returns: DataType::Utf8,
            doc: doc(
                &web,
                "the text with e-mail addresses as email@example.com and public IPv4 addresses as 22.214.171.124 (datatrove's placeholders), phone numbers as 555-0100 when `phones` is true; formulas are left alone",
                "redact_pii(text [, phones])",
            ),
            eval: Box::new(|args| {
                let kinds = kinds(args)?;
                map_text::<_, StringArray>(&args[0], |t| Some(pii::redact(t, kinds)))
            }),
        },
        Function {
            name: "pii_count",
            signature: signature(),
            returns: DataType::Int64,
            doc: doc(
                &web,
                "how many pieces of personal data redact_pii replaces in the text",
                "pii_count(text [, phones])",
            ),
            eval: Box::new(|args| {
                let kinds = kinds(args)?;
                map_text::<_, Int64Array>(&args[0], |t| Some(pii::find(t, kinds).len() as i64))
            }),
        },
    ]
}

/// The kinds the optional second argument asks for (a constant boolean).
fn kinds(args: &[ArrayRef]) -> DFResult<Kinds> {
    let Some(phones) = args.get(1) else { return Ok(Kinds { phones: false }) };
    let phones = datafusion::arrow::compute::cast(phones, &DataType::Boolean)?;
    match phones.as_boolean().iter().next() {
        Some(Some(phones)) => Ok(Kinds { phones }),
        _ => exec_err!("redact_pii and pii_count: phones must be true or false, not NULL"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, BooleanArray};

    use super::*;
    use crate::functions::call;

    #[test]
    fn redact_and_count_agree_and_phones_are_optional() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            Some("Mail ann@host.org from 8.8.4.4, call 555-123-4567; in $p@q.rs$ nothing."),
            None,
        ]));
        let redacted = call("redact_pii", vec![text.clone()]);
        assert_eq!(
            redacted.as_string::<i32>().value(0),
            "Mail email@example.com from 22.214.171.124, call 555-123-4567; in $p@q.rs$ nothing."
        );
        assert!(redacted.is_null(1));
        let counts = call("pii_count", vec![text.clone()]);
        assert_eq!(counts.as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(0), 2);
        let phones: ArrayRef = Arc::new(BooleanArray::from(vec![true, true]));
        let with_phones = call("pii_count", vec![text, phones]);
        assert_eq!(with_phones.as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(0), 3);
    }

    #[test]
    fn a_null_or_unreadable_phones_argument_is_an_error() {
        let function = crate::functions::library().into_iter().find(|f| f.name == "pii_count").expect("registered");
        let text: ArrayRef = Arc::new(StringArray::from(vec!["a@b.co"]));
        let null: ArrayRef = Arc::new(BooleanArray::from(vec![None]));
        let error = (function.eval)(&[text.clone(), null]).expect_err("NULL is no answer").to_string();
        assert!(error.contains("phones must be true or false"), "{error}");
        let word: ArrayRef = Arc::new(StringArray::from(vec!["maybe"]));
        assert!((function.eval)(&[text, word]).is_err());
    }
}
