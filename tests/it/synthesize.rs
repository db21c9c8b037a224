//! Synthesis: retrospective enhancement of all of GSM8K train, each record checked here on
//! its own terms against its source solution; the same seed gives the same table; the
//! evaluation split is never read; bad settings fail clearly.

use std::collections::BTreeMap;

use crate::common::*;

fn gsm8k_lake(dir: &tempfile::TempDir) -> String {
    let lake = lake_in(dir);
    for file in ["problems/gsm8k_train.jsonl", "problems/gsm8k_test.jsonl"] {
        let path = shared_data(file);
        ok(&mut mathlake(&["ingest", path.to_str().unwrap(), "--preset", "gsm8k", "--lake", &lake]));
    }
    lake
}

fn synthesize(lake: &str, args: &[&str]) -> serde_json::Value {
    let base = ["synthesize", "--method", "retrospective", "--json", "--lake", lake];
    json(&ok(&mut mathlake(&[&base[..], args].concat())))["synthesize"].clone()
}

/// Sorted (id, status, solution) of a synthetic table.
fn records(lake: &str, table: &str) -> Vec<(String, String, Option<String>)> {
    let sql = format!("SELECT id, status, solution FROM {table} ORDER BY id");
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    query(lake, &sql, &[])
        .iter()
        .map(|r| (text(&r["id"]).unwrap(), text(&r["status"]).unwrap(), text(&r["solution"])))
        .collect()
}

#[test]
fn retrospective_enhancement_of_gsm8k_train_is_correct_after_the_back_and_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let lake = gsm8k_lake(&dir);
    let report = synthesize(&lake, &[]);
    assert_eq!(report["problems"], 7473, "every GSM8K train problem, no test item: {report}");
    assert_eq!(report["records"], 7473);
    let (accepted, rejected) = (report["accepted"].as_u64().unwrap(), report["rejected"].as_u64().unwrap());
    assert_eq!(accepted + rejected, 7473, "problems x rollouts = accepted + rejected");
    assert!(accepted > 4000, "{report}");

    let rows = query(
        &lake,
        "SELECT s.status, s.reason, s.solution, s.final_answer, s.answer_matches, s.input, s.template, \
         s.template_hash, s.seed, s.rollout, s.question = p.question AS same_question, p.split, \
         p.solution AS original, p.final_answer AS gold \
         FROM synthetic s JOIN problems p ON s.problem_id = p.id",
        &[],
    );
    assert_eq!(rows.len(), 7473, "every record names its source problem");
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for row in &rows {
        assert_eq!(row["split"], "train");
        assert_eq!(row["same_question"], true);
        assert_eq!(row["seed"], 1);
        assert_eq!(row["rollout"], 0);
        assert_eq!(row["template"], "retrospective");
        assert_eq!(row["template_hash"].as_str().unwrap().len(), 16);
        assert!(row["input"].as_str().unwrap().starts_with("problems@"), "lineage names the version: {row}");
        let original = row["original"].as_str().unwrap();
        if row["status"] != "accepted" {
            let reason = row["reason"].as_str().unwrap();
            *reasons.entry(reason.to_string()).or_default() += 1;
            // Fewer than three steps means fewer than three lines of work: a GSM8K step
            // is at most one line.
            let lines = original.lines().filter(|l| !l.starts_with("####") && !l.trim().is_empty()).count();
            assert!(reason == "fewer_than_3_steps" && lines < 3, "{row}");
            continue;
        }
        assert!(row["reason"].is_null());
        // Correct after the `[back]`: what follows the marker is the source solution from
        // some point on; before the marker stands the source up to that point, then one
        // step that the source takes only later.
        let solution = row["solution"].as_str().unwrap();
        assert_eq!(solution.matches(" [back] ").count(), 1, "{solution}");
        let marker = solution.find(" [back] ").unwrap();
        let (head, continuation) = (&solution[..marker], &solution[marker + 8..]);
        assert!(original.ends_with(continuation), "{solution}\n---\n{original}");
        let at = original.len() - continuation.len();
        assert!(at > 0, "the first step is never the one displaced: {solution}");
        assert_eq!(&head[..at], &original[..at]);
        let moved = &head[at..];
        let words = moved.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).count();
        assert!(words >= 2 && continuation[1..].contains(moved), "{moved:?} comes later in {continuation:?}");
        assert!(!continuation.starts_with(moved));
        assert_eq!(row["final_answer"], row["gold"]);
        assert_eq!(row["answer_matches"], true);
    }
    assert_eq!(reasons.values().sum::<u64>(), rejected);
    assert_eq!(report["reasons"]["fewer_than_3_steps"], rejected);

    // The same seed makes the same records; another seed moves other steps.
    let first = records(&lake, "synthetic");
    synthesize(&lake, &["--to", "again"]);
    assert_eq!(records(&lake, "again"), first);
    synthesize(&lake, &["--to", "reseeded", "--seed", "2", "--rollouts", "2"]);
    let reseeded = records(&lake, "reseeded");
    assert_eq!(reseeded.len(), 2 * 7473);
    let changed = first.iter().filter(|r| r.1 == "accepted" && !reseeded.contains(r)).count() as u64;
    assert!(changed > accepted / 3, "{changed} of {accepted} records differ under another seed");
}

#[test]
fn synthesis_never_reads_evaluation_items_and_refuses_bad_settings() {
    let dir = tempfile::tempdir().unwrap();
    let lake = gsm8k_lake(&dir);
    // `where` narrows the training split; it cannot widen it to the test split.
    let report = synthesize(&lake, &["--where", "split = 'test'", "--to", "leak"]);
    assert_eq!(report["problems"], 0);
    assert_eq!(query(&lake, "SELECT count(*) AS n FROM leak", &[])[0]["n"], 0);
    let report = synthesize(&lake, &["--where", "question LIKE '%apples%'", "--to", "apples"]);
    let apples =
        query(&lake, "SELECT count(*) AS n FROM problems WHERE split = 'train' AND question LIKE '%apples%'", &[]);
    assert_eq!(report["problems"], apples[0]["n"]);

    let run = |args: &[&str]| {
        let base = ["synthesize", "--method", "retrospective", "--lake", &lake];
        fails(&mut mathlake(&[&base[..], args].concat()))
    };
    let err = run(&["--where", "no_such_column > 1"]);
    assert!(err.contains("cannot select training problems with `where = no_such_column > 1`"), "{err}");
    let err = run(&["--rollouts", "0"]);
    assert!(err.contains("rollouts must be at least 1"), "{err}");
    // A table without a split cannot say which rows are evaluation items.
    let err = run(&["--input", "apples"]);
    assert!(err.contains("has no column `split`") && err.contains("problems preset"), "{err}");
    let err = run(&["--input", "nothing_here"]);
    assert!(err.contains("nothing_here"), "{err}");
    let err = fails(&mut mathlake(&["synthesize", "--method", "poetry", "--lake", &lake]));
    assert!(err.contains("retrospective"), "the methods are listed: {err}");
}
