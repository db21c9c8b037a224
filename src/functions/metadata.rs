//! The `metadata` column: the JSON object of what no other column took (the fields of a
//! record nobody mapped; a page's crawl date, title and charset), read in SQL by key.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::{Signature, Volatility};
use serde_json::Value;

use super::{Function, doc, section};
use crate::text::texts;

pub(super) fn functions() -> Vec<Function> {
    let metadata = section("Metadata", "the JSON object of fields no column took");
    vec![Function {
        name: "json_field",
        signature: Signature::string(2, Volatility::Immutable),
        returns: DataType::Utf8,
        doc: doc(
            &metadata,
            "the value at `key` of a JSON object, as text: a string without its quotes, a number or boolean as written, an object or array as JSON; NULL when the key is missing or null, or the text is not a JSON object. E.g. json_field(metadata, 'warc_date') is a crawled page's date",
            "json_field(json, key)",
        ),
        eval: Box::new(json_field),
    }]
}

fn json_field(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    let values = texts(&args[0])?.zip(texts(&args[1])?).map(|(json, key)| {
        let (json, key) = (json?, key?);
        // Most rows' metadata is small; parsing the whole object is simpler than a
        // streaming scan, and the key's value is the only part kept.
        let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(json) else { return None };
        match object.remove(key)? {
            Value::Null => None,
            Value::String(s) => Some(s),
            other => Some(other.to_string()),
        }
    });
    Ok(Arc::new(values.collect::<StringArray>()))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray, StringViewArray};

    use super::*;
    use crate::functions::call;

    #[test]
    fn values_by_key_and_null_for_everything_else() {
        let json: ArrayRef = Arc::new(StringViewArray::from(vec![
            Some(r#"{"warc_date": "2024-05-01T10:00:00Z", "formulas": 12, "tags": ["a"], "none": null}"#),
            Some(r#"{"warc_date": "2024-05-01T10:00:00Z", "formulas": 12, "tags": ["a"], "none": null}"#),
            Some(r#"{"warc_date": "2024-05-01T10:00:00Z", "formulas": 12, "tags": ["a"], "none": null}"#),
            Some(r#"{"warc_date": "2024-05-01T10:00:00Z", "formulas": 12, "tags": ["a"], "none": null}"#),
            Some(r#"{"warc_date": "2024-05-01T10:00:00Z", "formulas": 12, "tags": ["a"], "none": null}"#),
            Some("not json"),
            Some("[1, 2]"),
            None,
        ]));
        let keys: ArrayRef = Arc::new(StringArray::from(vec![
            Some("warc_date"),
            Some("formulas"),
            Some("tags"),
            Some("none"),
            Some("missing"),
            Some("warc_date"),
            Some("0"),
            Some("warc_date"),
        ]));
        let out = call("json_field", vec![json, keys]);
        let out = out.as_string::<i32>();
        assert_eq!((out.value(0), out.value(1), out.value(2)), ("2024-05-01T10:00:00Z", "12", r#"["a"]"#));
        assert!((3..8).all(|i| out.is_null(i)), "{out:?}");
    }
}
