//! Decontamination: every GSM8K test and MATH test item planted whole and as a fragment
//! into real general documents is flagged; what the clean shared data overlaps; the real
//! overlaps of GSM8K and MATH train with their test sets; bad input.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use crate::common::*;

fn ingest(lake: &str, file: &str, preset: &str) {
    let path = shared_data(file);
    ok(&mut mathlake(&["ingest", path.to_str().unwrap(), "--preset", preset, "--source", preset, "--lake", lake]));
}

fn words(text: &str) -> usize {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).count()
}

/// `text` without `[asy]...[/asy]` figure code, which decontamination does not compare.
fn without_figures(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("[asy]") {
        out.push_str(&rest[..start]);
        out.push(' ');
        rest = rest[start..].find("[/asy]").map_or("", |end| &rest[start + end + 6..]);
    }
    out + rest
}

/// About 20 consecutive words of `text` (all of it when shorter), starting at token `seed`.
fn fragment(text: &str, seed: usize) -> String {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    // The latest start that still leaves 20 words.
    let mut suffix_words = 0;
    let mut last_start = 0;
    for (i, token) in tokens.iter().enumerate().rev() {
        suffix_words += words(token);
        if suffix_words >= 20 {
            last_start = i;
            break;
        }
    }
    let start = seed % (last_start + 1);
    let mut taken = Vec::new();
    let mut count = 0;
    for token in &tokens[start..] {
        taken.push(*token);
        count += words(token);
        if count >= 20 {
            break;
        }
    }
    taken.join(" ")
}

fn count(lake: &str, sql: &str) -> u64 {
    query(lake, sql, &[])[0]["n"].as_u64().unwrap()
}

#[test]
fn planted_items_are_flagged_and_real_overlaps_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    ingest(&lake, "problems/gsm8k_train.jsonl", "gsm8k");
    ingest(&lake, "problems/gsm8k_test.jsonl", "gsm8k");
    ingest(&lake, "problems/math_train.jsonl", "math");
    ingest(&lake, "problems/math_test.jsonl", "math");
    ingest(&lake, "general/wikitext2_test.txt", "wikitext");
    ingest(&lake, "general/cc_sample_697.jsonl.gz", "dolma");

    // Plant every test item twice into real general documents: whole (question and
    // solution) and as a fragment of about 20 words.
    let items = query(&lake, "SELECT id, question, solution FROM problems WHERE split = 'test' ORDER BY id", &[]);
    let hosts: Vec<String> = query(&lake, "SELECT text FROM documents ORDER BY id", &[])
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(items.len(), 1319 + 5000);
    let planted = dir.path().join("planted.jsonl");
    let mut file = std::fs::File::create(&planted).unwrap();
    // Fragments whose every 13 words are bare numbers: a computation copied without a
    // word of its problem, which counts only with --numeric-ngrams.
    let mut numbers_only = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let (id, question, solution) =
            (item["id"].as_str().unwrap(), item["question"].as_str().unwrap(), item["solution"].as_str().unwrap());
        // Each in the middle of a different host (a short item's fragment is all of it).
        let plant = |host: &str, text: &str| {
            let half = host.char_indices().map(|(at, _)| at).find(|&at| at >= host.len() / 2).unwrap_or(host.len());
            let (before, after) = host.split_at(host[..half].rfind(char::is_whitespace).unwrap_or(0));
            format!("{before}\n\n{text}\n\n{after}")
        };
        let whole = plant(&hosts[i % hosts.len()], &format!("{question}\n\n{solution}"));
        let piece = fragment(&without_figures(&format!("{question} {solution}")), i * 7919);
        let part = plant(&hosts[(i + 1) % hosts.len()], &piece);
        let lettered: Vec<bool> = piece
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| w.chars().any(char::is_alphabetic))
            .collect();
        if lettered.len() >= 13 && lettered.windows(13).all(|gram| !gram.contains(&true)) {
            numbers_only.insert(format!("fragment:{id}"));
        }
        for (kind, text) in [("whole", whole), ("fragment", part)] {
            writeln!(file, "{}", serde_json::json!({ "key": format!("{kind}:{id}"), "text": text })).unwrap();
        }
    }
    drop(file);
    ingest_keyed(&lake, &planted, "planted");
    assert_eq!(count(&lake, "SELECT count(*) AS n FROM documents WHERE source = 'planted'"), 2 * 6319);

    let out = ok(&mut mathlake(&[
        "decontaminate",
        "--input",
        "documents",
        "--benchmarks",
        "problems",
        "--to",
        "clean_documents",
        "--report",
        "document_overlaps",
        "--lake",
        &lake,
        "--json",
    ]));
    let report = json(&out)["decontaminate"].clone();
    let by_name: HashMap<&str, &serde_json::Value> =
        report["benchmarks"].as_array().unwrap().iter().map(|b| (b["name"].as_str().unwrap(), b)).collect();
    assert_eq!(by_name["gsm8k"]["items"], 1319);
    assert_eq!(by_name["math"]["items"], 5000);

    // Every planted document is flagged for its own item, and removed.
    let flagged: HashSet<(String, String)> = query(
        &lake,
        "SELECT d.source_id AS key, r.item_id FROM document_overlaps r JOIN documents d ON d.id = r.training_id
         WHERE d.source = 'planted' AND r.removed",
        &[],
    )
    .iter()
    .map(|r| (r["key"].as_str().unwrap().to_string(), r["item_id"].as_str().unwrap().to_string()))
    .collect();
    let mut missed = Vec::new();
    for item in &items {
        let id = item["id"].as_str().unwrap();
        for kind in ["whole", "fragment"] {
            if !flagged.contains(&(format!("{kind}:{id}"), id.to_string())) {
                missed.push(format!("{kind}:{id}"));
            }
        }
    }
    // Every item is found whole, and every fragment but those of bare numbers.
    let missed: HashSet<String> = missed.into_iter().collect();
    assert!(missed == numbers_only, "planted documents not flagged: {missed:?}; of numbers only: {numbers_only:?}");
    assert!(numbers_only.len() < 10, "{numbers_only:?}");
    let planted_left = "SELECT count(*) AS n FROM clean_documents WHERE source = 'planted'";
    assert!(count(&lake, planted_left) <= numbers_only.len() as u64, "only those can be left");
    // With --numeric-ngrams those are flagged too (the rule, not a gap in the index).
    let mut command = mathlake(&[
        "decontaminate",
        "--input",
        "documents",
        "--benchmarks",
        "problems",
        "--numeric-ngrams",
        "--to",
        "clean_numeric",
        "--report",
        "numeric_overlaps",
        "--lake",
        &lake,
    ]);
    ok(&mut command);
    let numeric_flagged: HashSet<String> = query(
        &lake,
        "SELECT d.source_id AS key FROM numeric_overlaps r JOIN documents d ON d.id = r.training_id
         WHERE d.source = 'planted' AND r.removed AND d.source_id LIKE concat('%', r.item_id)",
        &[],
    )
    .iter()
    .map(|r| r["key"].as_str().unwrap().to_string())
    .collect();
    assert_eq!(numeric_flagged.len(), 2 * items.len(), "with --numeric-ngrams every planted document is flagged");
    assert_eq!(count(&lake, "SELECT count(*) AS n FROM clean_numeric WHERE source = 'planted'"), 0);

    // The clean shared documents: what they overlap, for the record.
    let clean = query(
        &lake,
        "SELECT d.source, r.benchmark, r.matched_ngrams, r.item_ngrams, r.example FROM document_overlaps r
         JOIN documents d ON d.id = r.training_id WHERE d.source <> 'planted' ORDER BY 1, 2, 5",
        &[],
    );
    for row in &clean {
        eprintln!("clean document overlap: {row}");
        // Runs of bare numbers do not count by default (`--numeric-ngrams`).
        let example = row["example"].as_str().unwrap();
        assert!(example.chars().any(char::is_alphabetic), "an n-gram of numbers alone: {row}");
    }
    let clean_rows = count(&lake, "SELECT count(*) AS n FROM documents WHERE source <> 'planted'");
    let clean_kept = count(&lake, "SELECT count(*) AS n FROM clean_documents WHERE source <> 'planted'");
    assert_eq!(clean_kept, clean_rows - clean.len() as u64);

    // GSM8K train and MATH train against their test sets.
    let sql = dir.path().join("train.sql");
    std::fs::write(&sql, "COPY (SELECT * FROM problems WHERE split = 'train') TO 'train_problems';").unwrap();
    ok(&mut mathlake(&["sql", sql.to_str().unwrap(), "--lake", &lake]));
    let out = ok(&mut mathlake(&[
        "decontaminate",
        "--input",
        "train_problems",
        "--benchmarks",
        "problems",
        "--to",
        "clean_train",
        "--report",
        "train_overlaps",
        "--lake",
        &lake,
        "--json",
    ]));
    let report = json(&out)["decontaminate"].clone();
    eprintln!("train vs test: {report}");
    assert_eq!(report["columns"], serde_json::json!(["question", "solution"]));
    let by_name: HashMap<&str, &serde_json::Value> =
        report["benchmarks"].as_array().unwrap().iter().map(|b| (b["name"].as_str().unwrap(), b)).collect();
    let gsm8k = by_name["gsm8k"]["records_removed"].as_u64().unwrap();
    let math = by_name["math"]["records_removed"].as_u64().unwrap();
    assert!((1..100).contains(&gsm8k), "GSM8K train records overlapping GSM8K test: {gsm8k}");
    assert!((100..3000).contains(&math), "MATH train records overlapping MATH test: {math}");
    // Same-question pairs are there, and every one is removed.
    assert!(count(&lake, "SELECT count(*) AS n FROM train_overlaps WHERE question_match") > 0);
    let same_question = count(&lake, "SELECT count(*) AS n FROM train_overlaps WHERE question_match AND NOT removed");
    assert_eq!(same_question, 0);

    // Bad input: clear errors.
    let base = ["decontaminate", "--to", "x", "--report", "y", "--lake", &lake];
    let run = |extra: &[&str]| fails(&mut mathlake(&[&base[..], extra].concat()));
    let no_question = run(&["--input", "documents", "--benchmarks", "documents"]);
    assert!(no_question.contains("has no column `question`"), "{no_question}");
    let no_items = run(&["--input", "documents", "--benchmarks", "problems", "--benchmark-where", "split = 'dev'"]);
    assert!(no_items.contains("has no items where split = 'dev'"), "{no_items}");
    let bad_filter = run(&["--input", "documents", "--benchmarks", "problems", "--benchmark-where", "splt = 1"]);
    assert!(bad_filter.contains("--benchmark-where"), "{bad_filter}");
    let no_column = run(&["--input", "documents", "--benchmarks", "problems", "--columns", "body"]);
    assert!(no_column.contains("has no column `body`"), "{no_column}");
    let ngram = run(&["--input", "documents", "--benchmarks", "problems", "--ngram", "0"]);
    assert!(ngram.contains("ngram must be"), "{ngram}");
    let overlap = run(&["--input", "documents", "--benchmarks", "problems", "--min-overlap", "1.5"]);
    assert!(overlap.contains("min overlap must be 0 to 1"), "{overlap}");
    let missing = run(&["--input", "nowhere", "--benchmarks", "problems"]);
    assert!(missing.contains("`nowhere` is neither a table"), "{missing}");
}
