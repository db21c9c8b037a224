//! `mathlake eval` on the quickstart's tiny model and the real GSM8K and MATH500 test sets:
//! the report's numbers, files and exemplars, its flags, and its errors on bad input.

use std::path::{Path, PathBuf};

use mathlake::eval::grade::{equivalent, extract_answer};

use crate::common::*;
use crate::ingest_shared_data::quickstart;

fn lake_path(lake: &str) -> PathBuf {
    PathBuf::from(lake.strip_prefix("file://").unwrap_or(lake))
}

fn group<'a>(report: &'a serde_json::Value, benchmark: &str, group: &str, value: &str) -> &'a serde_json::Value {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["benchmark"] == benchmark && g["group"] == group && g["value"] == value)
        .unwrap_or_else(|| panic!("no group {benchmark}/{group}/{value} in {}", report["groups"]))
}

#[test]
fn the_quickstart_evaluates_the_trained_model_on_gsm8k_and_math500() {
    let (_, lake, reports) = quickstart();
    let report = &reports.as_array().unwrap().iter().find(|r| r["kind"] == "eval").expect("an eval stage")["report"];
    // Every test item the job's filter keeps is scored for loss; 20 of each are generated.
    let job: toml::Value = toml::from_str(&std::fs::read_to_string("jobs/quickstart.toml").unwrap()).unwrap();
    let stages = job["stage"].as_array().unwrap();
    let filter =
        stages.iter().find(|s| s["kind"].as_str() == Some("eval")).unwrap()["benchmark_where"].as_str().unwrap();
    let counts =
        query(lake, &format!("SELECT source, count(*) AS n FROM problems WHERE {filter} GROUP BY source"), &[]);
    let expected = |source: &str| counts.iter().find(|r| r["source"] == source).unwrap()["n"].as_u64().unwrap();
    let (gsm8k_items, math500_items) = (expected("gsm8k"), expected("math500"));
    // A fixed quarter of each test set.
    assert!((250..400).contains(&gsm8k_items) && (90..160).contains(&math500_items), "{counts:?}");
    for (benchmark, items) in [("gsm8k", gsm8k_items), ("math500", math500_items)] {
        let all = group(report, benchmark, "all", "");
        assert_eq!((all["items"].as_u64(), all["generated"].as_u64()), (Some(items), Some(20)), "{all}");
        let loss = all["loss"].as_f64().unwrap();
        // 40 updates of the tiny model already beat the uniform distribution over its 8,192
        // tokens by more than a nat (GSM8K: 7.46 against ln 8192 = 9.01).
        assert!(loss > 0.5 && loss < 8192f64.ln() - 1.0, "{benchmark} loss {loss}");
        // Whole solutions are scored: about 100 tokens each for GSM8K with the 8k BPE.
        assert!(all["loss_tokens"].as_u64().unwrap() > 80 * items, "{all}");
        let correct = all["correct"].as_u64().unwrap();
        assert_eq!(all["accuracy"].as_f64(), Some(correct as f64 / 20.0));
    }
    // MATH500's five levels and seven subjects; difficulty buckets for both.
    let levels: Vec<&str> = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["benchmark"] == "math500" && g["group"] == "level")
        .map(|g| g["value"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["1", "2", "3", "4", "5"]);
    let subjects =
        report["groups"].as_array().unwrap().iter().filter(|g| g["benchmark"] == "math500" && g["group"] == "subject");
    assert_eq!(subjects.map(|g| g["items"].as_u64().unwrap()).sum::<u64>(), math500_items);
    for benchmark in ["gsm8k", "math500"] {
        let by_difficulty: u64 = report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["benchmark"] == benchmark && g["group"] == "difficulty")
            .map(|g| g["items"].as_u64().unwrap())
            .sum();
        assert_eq!(by_difficulty, group(report, benchmark, "all", "")["items"].as_u64().unwrap());
    }
    assert!(group(report, "gsm8k", "difficulty", "easy")["items"].as_u64().unwrap() > gsm8k_items / 5);

    // Exemplars: two short training problems of the benchmark's own source (MATH500's
    // from MATH), the same for every item.
    for (benchmark, source) in [("gsm8k", "gsm8k"), ("math500", "math")] {
        let questions = report["exemplars"][benchmark].as_array().unwrap();
        assert_eq!(questions.len(), 2, "{benchmark}");
        for q in questions {
            let q = q.as_str().unwrap().replace('\'', "''");
            let found = query(
                lake,
                &format!(
                    "SELECT count(*) AS n FROM problems WHERE split = 'train' AND source = '{source}' AND question = '{q}'"
                ),
                &[],
            );
            assert_eq!(found[0]["n"], 1, "{benchmark} exemplar {q}");
        }
    }

    // The files: Markdown, JSON and one JSONL line per item.
    let folder = lake_path(lake).join("evals/test1-tiny");
    let md = std::fs::read_to_string(folder.join("report.md")).unwrap();
    assert!(md.contains("| gsm8k | all |") && md.contains("| math500 | level | 5 |"), "{md}");
    let json_report = json(&std::fs::read_to_string(folder.join("report.json")).unwrap());
    assert_eq!(json_report["groups"], report["groups"]);
    let items: Vec<serde_json::Value> =
        std::fs::read_to_string(folder.join("items.jsonl")).unwrap().lines().map(json).collect();
    assert_eq!(items.len() as u64, gsm8k_items + math500_items);

    // Every group's figures are its items' figures: the loss is the token-weighted mean of
    // the items' losses, and the correct count is the items graded correct.
    for g in report["groups"].as_array().unwrap() {
        let members: Vec<&serde_json::Value> = items
            .iter()
            .filter(|i| i["benchmark"] == g["benchmark"])
            .filter(|i| match g["group"].as_str().unwrap() {
                "all" => true,
                field => i[field].as_str() == g["value"].as_str(),
            })
            .collect();
        assert_eq!(g["items"].as_u64(), Some(members.len() as u64), "{g}");
        let tokens: u64 = members.iter().map(|i| i["loss_tokens"].as_u64().unwrap()).sum();
        assert_eq!(g["loss_tokens"].as_u64(), Some(tokens), "{g}");
        let nll: f64 = members
            .iter()
            .filter(|i| !i["loss"].is_null())
            .map(|i| i["loss"].as_f64().unwrap() * i["loss_tokens"].as_u64().unwrap() as f64)
            .sum();
        let loss = g["loss"].as_f64().unwrap();
        assert!((loss - nll / tokens as f64).abs() < 1e-9 * loss, "{g}: items give {}", nll / tokens as f64);
        let generated = members.iter().filter(|i| !i["generation"].is_null()).count() as u64;
        let correct = members.iter().filter(|i| i["correct"] == true).count() as u64;
        assert_eq!((g["generated"].as_u64(), g["correct"].as_u64()), (Some(generated), Some(correct)), "{g}");
    }

    let generated: Vec<&serde_json::Value> = items.iter().filter(|i| !i["generation"].is_null()).collect();
    assert_eq!(generated.len(), 40);
    assert!(generated.iter().any(|i| i["shots"] == 2), "most prompts hold both exemplars");
    for item in &generated {
        // Exemplars drop from the first when prompt and 96 new tokens exceed 512 tokens.
        assert!(item["shots"].as_u64().unwrap() <= 2, "{item}");
        let generation = item["generation"].as_str().unwrap();
        assert!(!generation.contains("\nQuestion:"), "cut at the stop sequence");
        // The verdict is the grader's on the answer extracted from the generation.
        let extracted = extract_answer(generation);
        assert_eq!(item["extracted"].as_str(), extracted.as_deref(), "{item}");
        let gold = item["gold"].as_str().unwrap();
        assert_eq!(item["correct"].as_bool(), Some(extracted.is_some_and(|e| equivalent(&e, gold))), "{item}");
    }
    // Items not generated carry no verdict.
    assert!(items.iter().filter(|i| i["generation"].is_null()).all(|i| i["correct"].is_null()));
    // The gold answers are the datasets' own, GSM8K's `#### N` and MATH500's answer field:
    // checked on the first record of each file that the job's filter kept.
    let first_item = |relative: &str, benchmark: &str, field: &str| {
        let text = std::fs::read_to_string(shared_data(relative)).unwrap();
        text.lines()
            .map(json)
            .filter(|r| r[field].is_string())
            .find_map(|r| {
                let question = r[field].as_str().unwrap();
                let item = items.iter().find(|i| {
                    i["benchmark"] == benchmark && i["question"].as_str().is_some_and(|q| q.starts_with(question))
                })?;
                Some((r, item["gold"].as_str().unwrap().to_string()))
            })
            .unwrap_or_else(|| panic!("no {benchmark} item is a record of {relative}"))
    };
    let (gsm8k, gold) = first_item("problems/gsm8k_test.jsonl", "gsm8k", "question");
    assert_eq!(gold, gsm8k["answer"].as_str().unwrap().rsplit("#### ").next().unwrap().trim());
    let (math500, gold) = first_item("problems/math500_test.jsonl", "math500", "problem");
    assert_eq!(gold, math500["answer"].as_str().unwrap());
}

/// The flags: zero-shot, a token limit, another benchmark naming, a checkpoint folder
/// instead of a run, a row filter; the gold solutions of a benchmark given as its own test
/// reach 100% only through the grader, so here the counts are what is checked.
#[test]
fn eval_flags_change_what_is_generated() {
    let (_, lake, _) = quickstart();
    // Ids are content hashes: `id < '1'` is a fixed sixteenth of GSM8K test.
    let subset = "split = 'test' AND source = 'gsm8k' AND level IS NULL AND id < '1'";
    let expected =
        query(lake, &format!("SELECT count(*) AS n FROM problems WHERE {subset}"), &[])[0]["n"].as_u64().unwrap();
    assert!((40..=1319 / 8).contains(&expected), "{expected} items");
    let dir = tempfile::tempdir().unwrap();
    let report_dir = dir.path().join("zero-shot");
    let best = lake_path(lake).join("runs/test1-tiny");
    let out = ok(&mut mathlake(&[
        "eval",
        "--lake",
        lake,
        "--json",
        "--checkpoint",
        best.to_str().unwrap(),
        "--benchmarks",
        "gsm8k_test=problems",
        "--benchmark-where",
        subset,
        "--shots",
        "0",
        "--limit",
        "3",
        "--max-new-tokens",
        "5",
        "--report",
        report_dir.to_str().unwrap(),
    ]));
    let report = json(&out);
    let all = group(&report, "gsm8k_test", "all", "");
    assert_eq!((all["items"].as_u64(), all["generated"].as_u64()), (Some(expected), Some(3)));
    assert!(report["timings"]["generated_tokens"].as_u64().unwrap() <= 15);
    assert_eq!(report["exemplars"], serde_json::json!({}));
    let items = std::fs::read_to_string(report_dir.join("items.jsonl")).unwrap();
    assert!(items.lines().map(json).filter(|i| !i["generation"].is_null()).all(|i| i["shots"] == 0));
}

#[test]
fn eval_fails_clearly_on_bad_input() {
    let (_, lake, _) = quickstart();
    let run = lake_path(lake).join("runs/test1-tiny");
    let run = run.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r");
    let report = report.to_str().unwrap();
    let eval = |args: &[&str]| {
        let base = ["eval", "--lake", lake, "--report", report];
        fails(&mut mathlake(&[&base[..], args].concat()))
    };
    let missing = dir.path().join("no-run");
    let err = eval(&["--checkpoint", missing.to_str().unwrap(), "--benchmarks", "problems"]);
    assert!(err.contains("holds no checkpoint"), "{err}");
    let err = eval(&["--checkpoint", run, "--benchmarks", "documents"]);
    assert!(err.contains("`documents` has no column `question` (it has id, "), "{err}");
    let err = eval(&["--checkpoint", run, "--benchmarks", "problems", "--benchmark-where", "split = 'dev'"]);
    assert!(err.contains("has no items where split = 'dev'"), "{err}");
    let err = eval(&["--checkpoint", run, "--benchmarks", "problems", "--benchmark-where", "no_such_column = 1"]);
    assert!(err.contains("no_such_column"), "{err}");
    let gpt2 = shared_data("tokenizers/gpt2.json");
    let err = eval(&["--checkpoint", run, "--benchmarks", "problems", "--tokenizer", gpt2.to_str().unwrap()]);
    assert!(err.contains("50257 tokens") && err.contains("use the tokenizer the model was trained with"), "{err}");
    let err = eval(&["--checkpoint", run, "--benchmarks", "problems", "--context", "64", "--max-new-tokens", "64"]);
    assert!(err.contains("leaves no room"), "{err}");
    assert!(!Path::new(report).exists(), "a failed eval writes no report");
}
