//! Web input: a crawl written with warcio (tests/data/web/pages.warc.gz, made by
//! scripts/make_web_fixtures.py from trafilatura's test pages and from MATH and GSM8K
//! solutions rendered by KaTeX and MathJax 4). warcio's own reading of the file
//! (pages.warc.json) is the reference: every record accounted for, pages at warcio's
//! offsets, every formula back as LaTeX, boilerplate gone.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::common::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/web").join(name)
}

fn manifest() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(fixture("pages.warc.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ingest(lake: &str, input: &Path) -> serde_json::Value {
    ingest_with(lake, input, &[])
}

fn ingest_with(lake: &str, input: &Path, options: &[&str]) -> serde_json::Value {
    let args = ["ingest", input.to_str().unwrap(), "--preset", "web", "--json", "--lake", lake];
    json(&ok(&mut mathlake(&[&args[..], options].concat())))
}

/// Documents by URL.
fn documents(lake: &str) -> HashMap<String, serde_json::Value> {
    let sql = "SELECT url, source_id, position, text, json_field(metadata, 'warc_date') AS warc_date FROM documents";
    query(lake, sql, &[]).into_iter().map(|row| (row["url"].as_str().unwrap().to_string(), row)).collect()
}

fn without_space(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// TeX without white space, braces, sizing and spacing commands, and with one spelling of
/// the commands that have two: what a conversion from MathML can be expected to match.
fn canonical(text: &str) -> String {
    let mut text = without_space(text);
    for (from, to) in [
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("\\left", ""),
        ("\\right", ""),
        ("\\displaystyle", ""),
        ("\\,", ""),
        ("\\!", ""),
        ("\\;", ""),
        ("\\leq", "\\le"),
        ("\\geq", "\\ge"),
        ("\\neq", "\\ne"),
        ("\\not=", "\\ne"),
        ("\\ldots", "\\dots"),
        ("\\ast", "*"),
        ("{", ""),
        ("}", ""),
    ] {
        text = text.replace(from, to);
    }
    text
}

#[test]
fn a_crawl_gives_its_pages_with_every_formula_and_counts_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let summary = ingest(&lake, &fixture("pages.warc.gz"));
    let records = manifest();
    let pages: Vec<_> = records.iter().filter(|r| r["expect"] == "document").collect();
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    for record in records.iter().filter(|r| r["expect"] != "document") {
        *skipped.entry(record["expect"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(summary["read"], records.len(), "{summary}");
    assert_eq!(summary["written"], pages.len(), "{summary}");
    assert_eq!((summary["duplicates"].as_u64(), summary["quarantined"].as_u64()), (Some(0), Some(0)));
    assert_eq!(summary["skipped"], skipped.values().sum::<u64>());
    assert_eq!(summary["skipped"], 13, "warcinfo, 6 requests, metadata, revisit, image, PDF, 301, 404");
    assert_eq!(serde_json::to_value(&skipped).unwrap(), summary["skipped_by_kind"]);

    let documents = documents(&lake);
    let mut recovered: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for page in &pages {
        let url = page["url"].as_str().unwrap();
        let document = &documents[url];
        assert_eq!(document["position"], page["offset"], "{url}: the record's offset, as warcio reads it");
        assert_eq!(document["source_id"], page["record_id"], "{url}");
        assert_eq!(document["warc_date"], page["date"], "{url}: the crawl date, read in SQL");
        let text = document["text"].as_str().unwrap();
        if let Some(expected) = page["text"].as_str() {
            assert_eq!(text, expected, "{url}");
        }
        let Some(renderer) = page["renderer"].as_str() else { continue };
        // Math pages: every formula as $...$ or $$...$$, compared without white space; the
        // MathML conversions up to the spellings TeX treats alike.
        let same: fn(&str) -> String = if renderer == "mathml" { canonical } else { without_space };
        let flat = same(text);
        let counts = recovered.entry(renderer).or_default();
        for formula in page["formulas"].as_array().unwrap() {
            counts.1 += 1;
            counts.0 += flat.contains(&format!("${}$", same(formula.as_str().unwrap()))) as usize;
        }
        for boilerplate in ["cookies", "All rights reserved", "Related problems", "Geometry", "About"] {
            assert!(!text.contains(boilerplate), "{url}: `{boilerplate}` is boilerplate:\n{text}");
        }
        assert!(text.contains("Solution"), "{url}");
    }
    for (renderer, (found, total)) in &recovered {
        eprintln!("{renderer}: {found} of {total} formulas recovered");
        assert!(*total > 400, "{renderer}: {total}");
        // KaTeX and MathJax 4 keep the source: all of it must come back. MathJax 3 keeps
        // MathML only: environments (align*, cases) come back as matrices, not as written.
        let share = if *renderer == "mathml" { 0.9 } else { 0.99 };
        assert!(*found as f64 >= share * *total as f64, "{renderer}: {found} of {total} formulas recovered");
    }

    // trafilatura's test pages: the content its own tests look for, without the page's
    // navigation, ads and tag list.
    let page = |name: &str| documents[&format!("https://trafilatura.example.org/{name}")]["text"].as_str().unwrap();
    let news = page("webpage.html");
    assert!(news.contains("Long story short, Manchin could switch parties"), "{news}");
    for boilerplate in ["Skip to main content", "Congress (507 posts)"] {
        assert!(!news.contains(boilerplate), "`{boilerplate}`:\n{news}");
    }
    assert!(page("apache.html").contains("localhost:80"), "the status table's rows are kept");
    assert!(page("mozilla.org.firefox.developer.html").contains("- WebIDE"), "list items keep their marker");
    assert!(page("utf8.html").contains("∀x∈ℝ: ⌈x⌉ = −⌊−x⌋"), "code blocks keep their characters and lines");
}

/// The crawl with the member at `offset` damaged, or cut inside its last member.
fn damaged(dir: &Path, offset: u64, cut: bool) -> PathBuf {
    let mut bytes = std::fs::read(fixture("pages.warc.gz")).unwrap();
    if cut {
        bytes.truncate(offset as usize + 30);
    } else {
        for i in 0..8 {
            bytes[offset as usize + 200 + i] ^= 0x5a;
        }
    }
    let path = dir.join(if cut { "cut.warc.gz" } else { "damaged.warc.gz" });
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_corrupt_record_is_quarantined_at_its_offset_and_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let records = manifest();
    let page = records.iter().find(|r| r["url"] == "https://mathhelp.example.org/mathjax/3").unwrap();
    let offset = page["offset"].as_u64().unwrap();
    let lake = lake_in(&dir);
    let summary = ingest(&lake, &damaged(dir.path(), offset, false));
    let pages = records.iter().filter(|r| r["expect"] == "document").count() as u64;
    assert_eq!(summary["read"], records.len(), "{summary}");
    assert_eq!((summary["written"].as_u64(), summary["quarantined"].as_u64()), (Some(pages - 1), Some(1)));
    let rows = query(&lake, "SELECT reason, position, detail FROM quarantine", &[]);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (&rows[0]["reason"], rows[0]["position"].as_u64()),
        (&serde_json::json!("corrupt_record"), Some(offset))
    );
    assert!(rows[0]["detail"].as_str().unwrap().contains("gzip"), "{}", rows[0]["detail"]);
    let after = documents(&lake);
    assert!(after.contains_key("https://mathhelp.example.org/mathjax/4"), "the next page is read");
    assert!(!after.contains_key("https://mathhelp.example.org/mathjax/3"));

    // Cut inside the last record: that record is quarantined, everything before it kept.
    let last = records.last().unwrap();
    let lake = dir.path().join("cut-lake").to_string_lossy().into_owned();
    let summary = ingest(&lake, &damaged(dir.path(), last["offset"].as_u64().unwrap(), true));
    assert_eq!((summary["read"].as_u64(), summary["quarantined"].as_u64()), (Some(records.len() as u64), Some(1)));
    let rows = query(&lake, "SELECT position FROM quarantine", &[]);
    assert_eq!(rows[0]["position"], last["offset"]);
}

#[test]
fn wet_text_and_html_files_are_documents_too() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    // trafilatura found no text in utf8.html: that record is quarantined, not dropped.
    let summary = ingest_with(&lake, &fixture("pages.warc.wet.gz"), &["--max-bad-fraction", "0.2"]);
    let counts = ["read", "written", "quarantined", "skipped"].map(|k| summary[k].as_u64());
    assert_eq!(counts, [Some(7), Some(5), Some(1), Some(1)], "{summary}");
    assert_eq!(summary["skipped_by_kind"], serde_json::json!({"warcinfo": 1}));
    assert_eq!(summary["reasons"], serde_json::json!({"empty_text": 1}));
    let documents = documents(&lake);
    let news = documents["https://trafilatura.example.org/webpage.html"]["text"].as_str().unwrap();
    assert!(news.contains("Long story short,"), "{news}");

    // A gzipped .html file: one document, without a URL.
    let summary = ingest(&lake, &fixture("webpage.html.gz"));
    assert_eq!((summary["read"].as_u64(), summary["written"].as_u64()), (Some(1), Some(1)), "{summary}");
    let rows = query(&lake, "SELECT text FROM documents WHERE url IS NULL", &[]);
    assert_eq!(rows[0]["text"].as_str().unwrap(), news_from_warc(&dir), "the file and the crawl give one text");
}

fn news_from_warc(dir: &tempfile::TempDir) -> String {
    let lake = dir.path().join("warc-lake").to_string_lossy().into_owned();
    ingest(&lake, &fixture("pages.warc.gz"));
    documents(&lake)["https://trafilatura.example.org/webpage.html"]["text"].as_str().unwrap().to_string()
}

#[test]
fn a_file_that_is_no_warc_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.warc");
    std::fs::write(&path, "these are my notes\nnot a crawl\n").unwrap();
    let lake = lake_in(&dir);
    let err = fails(&mut mathlake(&["ingest", path.to_str().unwrap(), "--preset", "web", "--lake", &lake]));
    assert!(err.contains("1 of 1 records (100.0%) went to quarantine"), "{err}");
    assert!(err.contains("corrupt_record: 1"), "{err}");
    let rows = query(&lake, "SELECT reason, position, detail FROM quarantine", &[]);
    assert_eq!(rows[0]["position"], 0);
    assert!(rows[0]["detail"].as_str().unwrap().contains("no WARC version line: `these are my notes`"));
}

#[test]
fn a_crawl_on_s3_reads_as_the_local_copy() {
    create_bucket("mathlake-web");
    put_object("mathlake-web", "crawl/pages.warc.gz", std::fs::read(fixture("pages.warc.gz")).unwrap());
    let env = s3_env();
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let mut command = mathlake(&["ingest", "s3://mathlake-web/crawl/", "--preset", "web", "--json", "--lake", &lake]);
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let summary = json(&ok(&mut command));
    assert_eq!((summary["read"].as_u64(), summary["written"].as_u64()), (Some(171), Some(158)), "{summary}");
    let local = tempfile::tempdir().unwrap();
    let local_lake = lake_in(&local);
    ingest(&local_lake, &fixture("pages.warc.gz"));
    let sql = "SELECT id, url, source_id, position FROM documents ORDER BY id";
    assert_eq!(query(&lake, sql, &[]), query(&local_lake, sql, &[]));
}

#[test]
fn a_block_list_can_be_a_lake_table() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    ingest(&lake, &fixture("pages.warc.gz"));
    let list = dir.path().join("blocklist.jsonl");
    std::fs::write(
        &list,
        "{\"entry\": \"mathhelp.example.org\"}\n{\"entry\": \"https://trafilatura.example.org/apache.html\"}\n",
    )
    .unwrap();
    let args = [
        "ingest",
        list.to_str().unwrap(),
        "--table",
        "documents",
        "--to",
        "blocklist",
        "--map",
        "text=entry",
        "--source",
        "lists",
    ];
    ok(&mut mathlake(&[&args[..], &["--lake", &lake]].concat()));
    let math_pages = manifest().iter().filter(|r| r["renderer"].is_string()).count();
    let sql = "SELECT count(*) AS n FROM documents WHERE url_in_list(url, 'blocklist')";
    assert_eq!(query(&lake, sql, &[])[0]["n"], math_pages + 1, "the site's pages and the one exact URL");

    // A typo in a list table fails the query, naming the table and the entry.
    let bad = dir.path().join("badlist.jsonl");
    std::fs::write(&bad, "{\"entry\": \"example.org\"}\n{\"entry\": \"not a domain\"}\n").unwrap();
    let args = [
        "ingest",
        bad.to_str().unwrap(),
        "--table",
        "documents",
        "--to",
        "badlist",
        "--map",
        "text=entry",
        "--source",
        "lists",
    ];
    ok(&mut mathlake(&[&args[..], &["--lake", &lake]].concat()));
    let err = fails(&mut mathlake(&[
        "query",
        "--lake",
        &lake,
        "SELECT count(*) FROM documents WHERE url_in_list(url, 'badlist')",
    ]));
    assert!(err.contains("table `badlist`:2: `not a domain` is neither a domain nor a URL"), "{err}");
}
