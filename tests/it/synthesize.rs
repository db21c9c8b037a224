//! Synthesis: retrospective enhancement of all of GSM8K train, each record checked here on
//! its own terms against its source solution; the same seed gives the same table; the
//! evaluation split is never read; bad settings fail clearly. Tutorship through a stand-in
//! endpoint (tests/it/endpoint.rs): faults retried, a killed run resumed from the response
//! cache without asking twice, a changed template missing the cache.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::common::*;
use crate::endpoint::{Endpoint, Fault};

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

/// Question -> gold answer of the training problems, for the stand-in student.
fn gold_answers(lake: &str) -> HashMap<String, String> {
    let rows = query(lake, "SELECT question, final_answer FROM problems WHERE split = 'train'", &[]);
    rows.iter()
        .map(|r| (r["question"].as_str().unwrap().trim().to_string(), r["final_answer"].as_str().unwrap().to_string()))
        .collect()
}

/// About 120 GSM8K training problems (ids are uniform hex), two rollouts each.
const TUTORSHIP: [&str; 14] = [
    "synthesize",
    "--method",
    "tutorship",
    "--model",
    "stand-in",
    "--where",
    "id < '04'",
    "--rollouts",
    "2",
    "--concurrency",
    "8",
    "--timeout",
    "1",
    "--json",
];

fn tutorship(lake: &str, endpoint: &Endpoint, args: &[&str]) -> serde_json::Value {
    let base = [&TUTORSHIP[..], &["--endpoint", &endpoint.url, "--lake", lake]].concat();
    json(&ok(&mut mathlake(&[&base[..], args].concat())))["synthesize"].clone()
}

#[test]
fn tutorship_through_an_endpoint_survives_faults_and_a_kill_without_asking_twice() {
    let dir = tempfile::tempdir().unwrap();
    let lake = gsm8k_lake(&dir);
    let gold = gold_answers(&lake);

    // Uninterrupted, through an endpoint that fails on a fixed schedule: every fault is
    // retried once and then answered, so retries equal the faults served.
    let schedule = [
        (3, Fault::TooMany),
        (9, Fault::ServerError),
        (15, Fault::Garbled),
        (21, Fault::Hang),
        (27, Fault::Drop),
        (33, Fault::TooMany),
        (40, Fault::ServerError),
    ];
    let faulty = Endpoint::start(gold.clone(), schedule.into_iter().collect());
    let other = tempfile::tempdir().unwrap();
    let reference_lake = lake_in(&other);
    let train = shared_data("problems/gsm8k_train.jsonl");
    ok(&mut mathlake(&["ingest", train.to_str().unwrap(), "--preset", "gsm8k", "--lake", &reference_lake]));
    let report = tutorship(&reference_lake, &faulty, &[]);
    let problems = report["problems"].as_u64().unwrap();
    assert!((80..200).contains(&problems), "{report}");
    let count = |key: &str| report[key].as_u64().unwrap();
    assert_eq!(count("records"), 2 * problems);
    assert_eq!(count("accepted") + count("rejected") + count("failed"), 2 * problems, "{report}");
    assert_eq!(count("failed"), 0, "every fault was retried: {report}");
    assert_eq!(faulty.faulted(), schedule.len());
    assert_eq!(count("retries"), schedule.len() as u64, "{report}");
    assert_eq!(count("requests"), faulty.arrivals() as u64, "{report}");
    assert_eq!(count("cache_hits"), 0);
    // Each record asked the student, and the teacher unless the attempt had no steps.
    assert_eq!(faulty.answered().len() as u64, 4 * problems, "{report}");
    for reason in ["no_verdict", "bad_step_number"] {
        assert!(count_of(&report, reason) > 0, "the stand-in teacher's {reason} replies are rejected: {report}");
    }

    let rows = query(
        &reference_lake,
        "SELECT s.*, p.final_answer AS gold FROM synthetic s JOIN problems p ON s.problem_id = p.id ORDER BY s.id",
        &[],
    );
    assert_eq!(rows.len() as u64, 2 * problems);
    for row in &rows {
        assert_eq!(row["method"], "tutorship");
        assert_eq!(row["models"], r#"{"student":"stand-in","teacher":"stand-in"}"#);
        let ids: Vec<String> = serde_json::from_str(row["request_ids"].as_str().unwrap()).unwrap();
        assert_eq!(ids.len(), 2, "a student and a teacher request: {row}");
        assert!(row["tokens_in"].as_i64().unwrap() > 20 && row["tokens_out"].as_i64().unwrap() > 5, "{row}");
        assert_eq!(row["template_hash"].as_str().unwrap().len(), 33, "student+teacher template hashes: {row}");
        let solution = row["solution"].as_str().unwrap();
        match (row["status"].as_str().unwrap(), row["verdict"].as_str()) {
            ("accepted", Some("correct")) => assert!(!solution.contains("[back]"), "{row}"),
            ("accepted", Some("wrong")) => assert_eq!(solution.matches(" [back] ").count(), 1, "{row}"),
            ("accepted", _) => panic!("an accepted record has the teacher's verdict: {row}"),
            (_, _) => assert!(row["reason"].is_string(), "{row}"),
        }
        if row["status"] == "accepted" {
            assert_eq!(row["final_answer"], row["gold"], "{row}");
        }
    }
    // Every request is in the cache table, under the keys the records list.
    let cached = query(&reference_lake, "SELECT count(*) AS n, count(DISTINCT id) AS keys FROM synthesis_cache", &[]);
    assert_eq!(cached[0]["n"], 4 * problems);
    assert_eq!(cached[0]["keys"], 4 * problems);

    // Killed with 60 replies made durable and more requests in flight, then rerun against
    // a fresh server: no request answered before is sent again, and the table is the one
    // the uninterrupted run made.
    let stopping = Endpoint::start(gold.clone(), HashMap::new());
    stopping.answer_at_most(60);
    let journal = std::path::Path::new(&lake).join("synthesis_cache/_journal");
    let base = [&TUTORSHIP[..], &["--endpoint", &stopping.url, "--lake", &lake]].concat();
    let mut child = mathlake(&base).stdout(std::process::Stdio::null()).spawn().unwrap();
    let started = std::time::Instant::now();
    // Replies in the journal, one per line of its objects. Whole objects only: a local
    // store writes `{name}.jsonl#N` and renames it.
    let stored = || {
        std::fs::read_dir(&journal).map_or(0, |d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap().lines().count())
                .sum::<usize>()
        })
    };
    while stored() < 60 {
        assert!(started.elapsed().as_secs() < 120, "the run never stored 60 replies");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it was killed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(stopping.arrivals() > 60, "requests were in flight at the kill");
    assert_eq!(
        query(&lake, "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'synthetic'", &[])[0]["n"],
        0
    );

    let resumed = Endpoint::start(gold.clone(), HashMap::new());
    let report = tutorship(&lake, &resumed, &[]);
    assert_eq!(report["cache"]["entries_at_start"], 60, "{report}");
    assert_eq!(report["cache_hits"], 60, "{report}");
    assert_eq!(report["requests"], 4 * problems - 60, "{report}");
    let before: HashSet<String> = stopping.answered().into_iter().collect();
    let after = resumed.answered();
    assert_eq!(before.len(), 60);
    assert!(after.iter().all(|body| !before.contains(body)), "a request answered before the kill was sent again");
    assert_eq!(records(&lake, "synthetic"), records(&reference_lake, "synthetic"));
    assert_eq!(stored(), 0, "the journal is deleted once compacted into the table");

    // Once compacted, a rerun asks nothing; a changed teacher template misses the cache
    // for the teacher's requests only.
    let report = tutorship(&lake, &resumed, &["--to", "again"]);
    assert_eq!((report["requests"].as_u64(), report["cache_hits"].as_u64()), (Some(0), Some(4 * problems)), "{report}");
    assert_eq!(records(&lake, "again"), records(&lake, "synthetic"));
    let templates = tempfile::tempdir().unwrap();
    for name in ["tutorship_student", "tutorship_teacher"] {
        let text =
            std::fs::read_to_string(format!("{}/jobs/synthesis/{name}.txt", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let text = if name == "tutorship_teacher" { format!("Be strict.\n{text}") } else { text };
        std::fs::write(templates.path().join(format!("{name}.txt")), text).unwrap();
    }
    let answered = resumed.answered().len() as u64;
    let report = tutorship(&lake, &resumed, &["--to", "strict", "--templates", templates.path().to_str().unwrap()]);
    assert_eq!(report["requests"], 2 * problems, "{report}");
    assert_eq!(resumed.answered().len() as u64, answered + 2 * problems);
    assert!(resumed.answered()[answered as usize..].iter().all(|body| body.contains("Be strict.")));
}

fn count_of(report: &serde_json::Value, reason: &str) -> u64 {
    report["reasons"][reason].as_u64().unwrap_or(0)
}

#[test]
fn model_settings_are_checked_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let path = shared_data("problems/gsm8k_test.jsonl");
    ok(&mut mathlake(&["ingest", path.to_str().unwrap(), "--preset", "gsm8k", "--lake", &lake]));
    let run = |args: &[&str]| fails(&mut mathlake(&[&["synthesize", "--lake", &lake][..], args].concat()));
    let err = run(&["--method", "tutorship", "--model", "m"]);
    assert!(
        err.contains("tutorship asks a model, and no endpoint is set") && err.contains("OpenAI-compatible URL"),
        "{err}"
    );
    let err = run(&["--method", "response_diversity", "--endpoint", "http://127.0.0.1:9/v1"]);
    assert!(err.contains("needs the model to ask"), "{err}");
    let err = run(&["--method", "retrospective", "--endpoint", "http://127.0.0.1:9/v1"]);
    assert!(err.contains("endpoint is set, but retrospective calls no model"), "{err}");
    let err = run(&[
        "--method",
        "query_expansion",
        "--endpoint",
        "http://127.0.0.1:9/v1",
        "--model",
        "m",
        "--teacher-endpoint",
        "http://x/v1",
    ]);
    assert!(err.contains("query_expansion has no teacher"), "{err}");
    // Tutorship towards an endpoint that is never reached: each setting fails first.
    let tutorship = |args: &[&str]| {
        let base = ["--method", "tutorship", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m"];
        run(&[&base[..], args].concat())
    };
    let err = tutorship(&["--api-key-env", "MATHLAKE_TEST_NO_SUCH_KEY"]);
    assert!(err.contains("MATHLAKE_TEST_NO_SUCH_KEY is not set"), "{err}");
    for (flag, value, says) in [
        ("--temperature", "3", "temperature must be between 0 and 2"),
        ("--top-p", "0", "top_p must be in (0, 1]"),
        ("--timeout", "0", "timeout must be a positive number"),
        ("--max-tokens", "0", "max_tokens must be at least 1"),
    ] {
        let err = tutorship(&[flag, value]);
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
    // A template folder without the method's files names the file it wanted.
    let empty = tempfile::tempdir().unwrap();
    let err = tutorship(&["--templates", empty.path().to_str().unwrap()]);
    assert!(err.contains("tutorship_student.txt"), "{err}");
}

/// The three model methods at once against a real `mathlake serve` of SmolLM2-135M-Instruct
/// (student and teacher alike), on a few GSM8K training problems: every problem gets its
/// record, accepted or rejected with a reason (a 135M model rarely follows the format), with
/// its lineage; every request the runs report reached the server once.
#[test]
fn each_model_method_runs_end_to_end_against_mathlake_serve() {
    let server = crate::serve::Server::start(&["--model", &crate::serve::smollm2(), "--max-batch", "32"]);
    let endpoint = format!("http://{}/v1", server.address);
    let dir = tempfile::tempdir().unwrap();
    let lake = gsm8k_lake(&dir);
    let gold = gold_answers(&lake);
    let model = "SmolLM2-135M-Instruct.Q4_1";
    let methods = ["response_diversity", "query_expansion", "tutorship"];
    let children: Vec<_> = methods
        .iter()
        .map(|method| {
            let args = [
                "synthesize",
                "--method",
                method,
                "--endpoint",
                &endpoint,
                "--model",
                model,
                "--where",
                "id < '003'",
                "--max-tokens",
                "96",
                "--temperature",
                "0.7",
                "--to",
                method,
                "--json",
                "--lake",
                &lake,
            ];
            mathlake(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let mut requests = 0;
    for (method, child) in methods.iter().zip(children) {
        let output = child.wait_with_output().unwrap();
        assert_success(&output);
        let report = json(&String::from_utf8(output.stdout).unwrap())["synthesize"].clone();
        eprintln!("{method}: {report}");
        let count = |key: &str| report[key].as_u64().unwrap();
        let problems = count("problems");
        assert!((3..12).contains(&problems), "{report}");
        assert_eq!(count("records"), problems);
        assert_eq!(count("accepted") + count("rejected") + count("failed"), problems, "{report}");
        assert_eq!(count("failed"), 0, "the server answered every request: {report}");
        requests += count("requests");

        let sql = format!(
            "SELECT s.*, p.question AS source_question FROM {method} s JOIN problems p ON s.problem_id = p.id ORDER BY s.id"
        );
        let rows = query(&lake, &sql, &[]);
        assert_eq!(rows.len() as u64, problems);
        for row in &rows {
            assert_eq!(row["method"], *method, "{row}");
            let models: BTreeMap<String, String> = serde_json::from_str(row["models"].as_str().unwrap()).unwrap();
            let roles = if *method == "tutorship" { vec!["student", "teacher"] } else { vec!["writer"] };
            assert_eq!(models.keys().map(String::as_str).collect::<Vec<_>>(), roles, "{row}");
            assert!(models.values().all(|m| m == model), "{row}");
            let ids: Vec<String> = serde_json::from_str(row["request_ids"].as_str().unwrap()).unwrap();
            assert!(
                !ids.is_empty() && row["tokens_in"].as_i64() > Some(50) && row["tokens_out"].as_i64() > Some(0),
                "{row}"
            );
            match row["status"].as_str().unwrap() {
                "accepted" if *method != "query_expansion" => {
                    let question = row["source_question"].as_str().unwrap().trim();
                    assert_eq!(row["final_answer"].as_str(), gold.get(question).map(String::as_str), "{row}");
                }
                "accepted" => assert!(row["final_answer"].is_string() && row["question"].is_string(), "{row}"),
                _ => assert!(row["reason"].as_str().is_some_and(|r| !r.is_empty()), "{row}"),
            }
        }
    }
    let health = server.call("GET", "/health", None).1;
    assert_eq!(health["completions"].as_u64(), Some(requests), "{health}");
    assert!(health["largest_batch"].as_u64() > Some(3), "the three runs shared steps: {health}");
}
