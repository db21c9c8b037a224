//! Crawled pages: their personal data (e-mail addresses, public IP addresses and, when
//! asked for, phone numbers; `text::pii`) to count or redact, and their URLs' domains and
//! block or allow lists (`text::url`) to filter on.

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DFResult, exec_err};
use datafusion::logical_expr::{Signature, TypeSignature, Volatility};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Cached, Function, doc, map_text, read_cached, section};
use crate::error::Error;
use crate::lake::Lake;
use crate::text::pii::{self, Kinds};
use crate::text::texts;
use crate::text::url::{self, UrlList};

pub(super) fn functions() -> Vec<Function> {
    let web = section("Web text", "personal data and URLs of crawled pages");
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
        Function {
            name: "url_domain",
            signature: Signature::string(1, Volatility::Immutable),
            returns: DataType::Utf8,
            doc: doc(&web, "the URL's host in lower case without `www.`; NULL when it has none", "url_domain(url)"),
            eval: Box::new(|args| map_text::<_, StringArray>(&args[0], url::domain)),
        },
        url_in_list(None),
    ]
}

/// `url_in_list`; with a lake, a list argument that names one of its tables reads that
/// table (once per session: a session reads one version of each table).
pub(super) fn url_in_list(lake: Option<Lake>) -> Function {
    let tables: Mutex<HashMap<String, Arc<UrlList>>> = Mutex::default();
    let eval = move |args: &[ArrayRef]| -> DFResult<ArrayRef> {
        let mut listed = Vec::with_capacity(args[0].len());
        let mut current: Option<(&str, Arc<UrlList>)> = None;
        for (url, list) in texts(&args[0])?.zip(texts(&args[1])?) {
            let (Some(url), Some(list)) = (url, list) else {
                listed.push(None);
                continue;
            };
            if current.as_ref().is_none_or(|(l, _)| *l != list) {
                let read = match lake.as_ref().filter(|_| is_table_name(list)) {
                    Some(lake) => table_list(lake, list, &tables),
                    None => url_list(list),
                };
                current = Some((list, read.map_err(|e| datafusion::error::DataFusionError::External(e.into()))?));
            }
            listed.push(current.as_ref().map(|(_, l)| l.contains(url)));
        }
        Ok(Arc::new(BooleanArray::from(listed)))
    };
    Function {
        name: "url_in_list",
        signature: Signature::string(2, Volatility::Immutable),
        returns: DataType::Boolean,
        doc: doc(
            &section("Web text", "personal data and URLs of crawled pages"),
            "whether the URL is on the list `list`: a lake table (its `entry`, `domain`, `text` or `url` column, the first it has) or a text file (a path, file:// or s3:// URL), one domain or URL an entry, # comments; on it means its exact URL, its host or a domain above it",
            "url_in_list(url, list)",
        ),
        eval: Box::new(eval),
    }
}

/// A bare table name (`blocklist`), not a path or URL (`lists/block.txt`).
fn is_table_name(list: &str) -> bool {
    crate::lake::validate_name(list).is_ok()
}

/// The entries of lake table `name`, one list entry a row.
fn table_list(lake: &Lake, name: &str, read: &Mutex<HashMap<String, Arc<UrlList>>>) -> crate::Result<Arc<UrlList>> {
    let mut read = read.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(list) = read.get(name) {
        return Ok(list.clone());
    }
    let table = lake.table(name)?;
    let lines = crate::location::block_on_own_thread(table.text_values(LIST_COLUMNS))?;
    let location = format!("table `{name}`");
    let list = Arc::new(parse_list(&lines.join("\n"), &location)?);
    read.insert(name.to_string(), list.clone());
    Ok(list)
}

/// The columns a list table's entries can be in, in order of preference.
const LIST_COLUMNS: &[&str] = &["entry", "domain", "text", "url"];

/// The list at `location`, read once per process. A line that is neither a domain nor a
/// URL fails the query with its number: a typo must not let a blocked site through.
fn url_list(location: &str) -> crate::Result<Arc<UrlList>> {
    static LISTS: Cached<UrlList> = std::sync::Mutex::new(Vec::new());
    read_cached(&LISTS, location, |bytes| {
        let hint =
            "url_in_list's second argument is a text file (a path, file:// or s3:// URL), one domain or URL a line";
        let bytes = bytes.ok_or_else(|| Error::user(format!("no URL list at {location}")).hint(hint))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Error::user(format!("the URL list {location} is not UTF-8 text")).hint(hint))?;
        parse_list(text, location)
    })
}

/// A typo must not let a blocked site through: a bad entry fails the query.
fn parse_list(text: &str, location: &str) -> crate::Result<UrlList> {
    let (list, bad) = UrlList::parse(text);
    if let Some((line, entry)) = bad.first() {
        return Err(Error::user(format!("{location}:{line}: `{entry}` is neither a domain nor a URL"))
            .hint("one domain (example.com) or URL (https://example.com/page) an entry; # starts a comment"));
    }
    Ok(list)
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
    fn url_lists_are_read_from_files_and_bad_lines_fail_with_their_number() {
        let dir = tempfile::tempdir().expect("a temp folder");
        let good = dir.path().join("block.txt");
        std::fs::write(
            &good,
            "# spam farms
example.com
https://wiki.org/Bad_page
",
        )
        .expect("written");
        let urls: ArrayRef = Arc::new(StringArray::from(vec![
            Some("https://www.example.com/a"),
            Some("https://wiki.org/Good_page"),
            Some("https://wiki.org/Bad_page"),
            None,
        ]));
        let list: ArrayRef = Arc::new(StringArray::from(vec![good.to_str().expect("a UTF-8 path"); 4]));
        let listed = call("url_in_list", vec![urls.clone(), list]);
        let listed = listed.as_boolean();
        assert_eq!((listed.value(0), listed.value(1), listed.value(2)), (true, false, true));
        assert!(listed.is_null(3));
        let domains = call("url_domain", vec![urls]);
        assert_eq!(domains.as_string::<i32>().value(0), "example.com");

        let function = crate::functions::library().into_iter().find(|f| f.name == "url_in_list").expect("registered");
        let bad = dir.path().join("bad.txt");
        std::fs::write(
            &bad,
            "example.com
example com
",
        )
        .expect("written");
        let url: ArrayRef = Arc::new(StringArray::from(vec!["https://example.com"]));
        for (path, says) in
            [(bad, "bad.txt:2: `example com` is neither"), (dir.path().join("none.txt"), "no URL list at")]
        {
            let list: ArrayRef = Arc::new(StringArray::from(vec![path.to_str().expect("a UTF-8 path")]));
            let error = (function.eval)(&[url.clone(), list]).expect_err("a clear error").to_string();
            assert!(error.contains(says), "{error}");
        }
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
