//! Curation: the SQL files of `sql/` over the bundled data, on a local lake and on S3;
//! parameters and errors of `mathlake sql`; the shipped math classifier; final answers
//! against the gold answers of GSM8K, MATH and MATH500.

use std::collections::BTreeMap;

use crate::common::*;
use crate::ingest_shared_data::quickstart;

fn with_env(mut command: std::process::Command, env: &[(&str, String)]) -> std::process::Command {
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command
}

fn count(lake: &str, sql: &str, env: &[(&str, String)]) -> u64 {
    query(lake, sql, env)[0]["n"].as_u64().unwrap()
}

/// The stages of the quickstart that run on S3 here: everything up to the last
/// decontamination (tokenizer, training and evaluation read the same tables locally).
const LAST_SQL_STAGE: &str = "decontaminate_problems";

#[test]
fn curation_files_run_on_local_and_s3_lakes_alike() {
    let (_, local, reports) = quickstart();
    let local = local.as_str();
    create_bucket("mathlake-curate");
    let s3 = "s3://mathlake-curate/lake";
    let env = s3_env();
    let mut command = with_env(mathlake(&["run", "jobs/quickstart.toml", "--json", "--lake", s3]), &env);
    let s3_reports = json(&ok(command.args(["--until", LAST_SQL_STAGE])));
    let kinds: Vec<_> = s3_reports.as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.last(), Some(&"decontaminate"), "{kinds:?}");
    assert!(!kinds.contains(&"tokenize") && !kinds.contains(&"train"), "--until stops the job: {kinds:?}");
    for sql in [
        "SELECT id, source FROM math_documents ORDER BY id",
        "SELECT id, source FROM general_documents ORDER BY id",
        "SELECT id, answer, steps, difficulty FROM training_problems ORDER BY id",
        "SELECT id, language, math_score, word_count, top_2gram_fraction FROM document_signals ORDER BY id",
        // The quickstart's dedup and decontamination stages, on S3 as on a local folder.
        "SELECT id FROM math_documents_clean ORDER BY id",
        "SELECT id, cluster_id, kept FROM math_documents_clusters ORDER BY id",
        "SELECT * FROM training_problems_contamination ORDER BY training_id, item_id",
    ] {
        let (a, b) = (query(local, sql, &env), query(s3, sql, &env));
        assert!(!a.is_empty(), "{sql}");
        assert_eq!(a, b, "{sql}");
    }
    // Each statement's report, without its timing.
    let curation = |reports: &serde_json::Value| {
        let stage = reports.as_array().unwrap().iter().find(|r| r["file"] == "sql/curate_documents.sql");
        let mut statements = stage.expect("the job curates documents")["statements"].clone();
        for statement in statements.as_array_mut().unwrap() {
            statement.as_object_mut().unwrap().remove("seconds");
        }
        statements
    };
    assert_eq!(curation(reports), curation(&s3_reports), "the same statements and results on S3");

    // Every document has its signals, and ends in one corpus or with a reason.
    let documents = count(local, "SELECT count(*) AS n FROM documents", &[]);
    assert_eq!(count(local, "SELECT count(*) AS n FROM document_signals", &[]), documents);
    let statements = curation(reports);
    let outcomes = statements.as_array().unwrap().last().unwrap()["result"].as_array().unwrap().clone();
    let mut by_outcome: BTreeMap<(String, String), u64> = BTreeMap::new();
    for row in &outcomes {
        let key = (row["source"].as_str().unwrap().to_string(), row["outcome"].as_str().unwrap().to_string());
        by_outcome.insert(key, row["documents"].as_u64().unwrap());
    }
    assert_eq!(by_outcome.values().sum::<u64>(), documents, "{by_outcome:?}");
    let math = count(local, "SELECT count(*) AS n FROM math_documents", &[]);
    let general = count(local, "SELECT count(*) AS n FROM general_documents", &[]);
    let outcome = |name: &str| by_outcome.iter().filter(|((_, o), _)| o == name).map(|(_, n)| n).sum::<u64>();
    assert_eq!((outcome("math"), outcome("general")), (math, general));

    // The split follows the data: web math in the math corpus, general text in the other.
    let math_share = count(
        local,
        "SELECT count(*) AS n FROM math_documents WHERE source IN ('stackmathqa', 'hott_book', 'whitehead')",
        &[],
    ) as f64
        / math as f64;
    let general_share =
        count(local, "SELECT count(*) AS n FROM general_documents WHERE source IN ('cc', 'wikitext')", &[]) as f64
            / general as f64;
    assert!(math_share >= 0.95 && general_share >= 0.95, "{math_share} {general_share} {by_outcome:?}");
    assert!(math >= 900 && general >= 200, "math {math}, general {general}");

    // Problems: all analysed; training excludes evaluation splits and incomplete records.
    let problems = count(local, "SELECT count(*) AS n FROM problems", &[]);
    assert_eq!(count(local, "SELECT count(*) AS n FROM problem_signals", &[]), problems);
    assert_eq!(count(local, "SELECT count(*) AS n FROM training_problems WHERE split = 'test'", &[]), 0);
    let train = count(local, "SELECT count(*) AS n FROM problems WHERE split = 'train'", &[]);
    let training = count(local, "SELECT count(*) AS n FROM training_problems", &[]);
    assert!(training as f64 >= 0.99 * train as f64 && training <= train, "{training} of {train}");
    let buckets = query(local, "SELECT difficulty, count(*) AS n FROM training_problems GROUP BY 1 ORDER BY 1", &[]);
    assert_eq!(buckets.len(), 3, "{buckets:?}");
}

#[test]
fn parameters_bind_and_errors_point_into_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let gsm8k = shared_data("problems/gsm8k_test.jsonl");
    ok(&mut mathlake(&["ingest", gsm8k.to_str().unwrap(), "--preset", "gsm8k", "--lake", &lake]));
    let file = dir.path().join("steps.sql");
    std::fs::write(
        &file,
        "-- @param min_steps = 3  -- at least three steps\n\
         COPY (SELECT id, question, reasoning_steps(solution) AS steps FROM problems\n      WHERE reasoning_steps(solution) >= $min_steps) TO 'long_problems';\n\
         SELECT count(*) AS n FROM long_problems WHERE question = $text;\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let run = |set: &[&str]| {
        let mut args = vec!["sql", file, "--lake", &lake, "--json", "--set", "text=it's; DROP TABLE problems"];
        for s in set {
            args.extend(["--set", s]);
        }
        json(&ok(&mut mathlake(&args)))
    };
    let defaults = run(&[]);
    let at_least_3 = defaults["statements"][0]["rows"].as_u64().unwrap();
    let direct = count(&lake, "SELECT count(*) AS n FROM problems WHERE reasoning_steps(solution) >= 3", &[]);
    assert_eq!(at_least_3, direct);
    let overridden = run(&["min_steps=5"]);
    let at_least_5 = overridden["statements"][0]["rows"].as_u64().unwrap();
    assert!(0 < at_least_5 && at_least_5 < at_least_3, "{at_least_5} {at_least_3}");
    // A value is data, never SQL: the quote and the DROP are just text that matches nothing.
    assert_eq!(overridden["statements"][1]["result"][0]["n"], 0);
    assert_eq!(count(&lake, "SELECT count(*) AS n FROM problems", &[]), 1319);

    let unknown = fails(&mut mathlake(&["sql", file, "--lake", &lake, "--set", "min_step=4", "--set", "text=x"]));
    assert!(unknown.contains("no parameter `min_step`") && unknown.contains("min_steps"), "{unknown}");
    let missing = fails(&mut mathlake(&["sql", file, "--lake", &lake]));
    assert!(missing.contains(":4: statement 2 uses $text, which has no value"), "{missing}");

    let broken = dir.path().join("broken.sql");
    std::fs::write(&broken, "SELECT 1;\n\nSELECT id\n  FROM problems WHERE;\n").unwrap();
    let error = fails(&mut mathlake(&["sql", broken.to_str().unwrap(), "--lake", &lake]));
    assert!(error.contains("broken.sql:4:") && error.contains("statement 2 (SELECT)"), "{error}");
    let missing_table = dir.path().join("missing.sql");
    std::fs::write(&missing_table, "SELECT * FROM problem;\n").unwrap();
    let error = fails(&mut mathlake(&["sql", missing_table.to_str().unwrap(), "--lake", &lake]));
    assert!(error.contains("missing.sql:1:1: statement 1 (SELECT)") && error.contains("problem"), "{error}");
    let bad_target = dir.path().join("target.sql");
    std::fs::write(&bad_target, "COPY (SELECT 1 AS x) TO 'some/folder/';\n").unwrap();
    let error = fails(&mut mathlake(&["sql", bad_target.to_str().unwrap(), "--lake", &lake]));
    assert!(error.contains("cannot write to `some/folder/`"), "{error}");
}

#[test]
fn copy_writes_one_parquet_file_and_external_tables_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let gsm8k = shared_data("problems/gsm8k_test.jsonl");
    ok(&mut mathlake(&["ingest", gsm8k.to_str().unwrap(), "--preset", "gsm8k", "--lake", &lake]));
    let out = dir.path().join("export/answers.parquet");
    let file = dir.path().join("export.sql");
    std::fs::write(
        &file,
        format!(
            "COPY (SELECT id, final_answer(solution) AS answer FROM problems) TO '{out}';\n\
             CREATE EXTERNAL TABLE answers STORED AS PARQUET LOCATION '{out}';\n\
             SELECT count(*) AS n, count(DISTINCT answer) AS answers FROM answers;\n",
            out = out.display()
        ),
    )
    .unwrap();
    let report = json(&ok(&mut mathlake(&["sql", file.to_str().unwrap(), "--lake", &lake, "--json"])));
    assert_eq!(report["statements"][0]["rows"], 1319);
    assert_eq!(report["statements"][2]["result"][0]["n"], 1319);
    assert!(out.is_file());
    let folder: Vec<_> = std::fs::read_dir(out.parent().unwrap()).unwrap().collect();
    assert_eq!(folder.len(), 1, "only the finished file: {folder:?}");
}

#[test]
fn the_shipped_classifier_is_reproducible_and_separates_math_from_general_text() {
    let (_, lake, _) = quickstart();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("math_score.model");
    let readme = std::fs::read_to_string("README.md").unwrap();
    // The training command as README.md gives it, with the output moved into the temp folder.
    let start = readme.find("mathlake classifier train").expect("README shows the training command");
    let command = &readme[start..start + readme[start..].find("\n```").unwrap()];
    let mut args = shell_words(command);
    args.remove(0);
    let out = args.iter().position(|a| a == "--out").unwrap();
    args[out + 1] = model.to_str().unwrap().to_string();
    args.extend(["--lake".to_string(), lake.clone(), "--json".to_string()]);
    let info = json(&ok(&mut mathlake(&args.iter().map(String::as_str).collect::<Vec<_>>())));
    assert!(info["heldout"]["auc"].as_f64().unwrap() >= 0.98, "{info}");
    assert!(info["heldout"]["precision"].as_f64().unwrap() >= 0.95, "{info}");
    let shipped = std::fs::read("src/text/math_score.model").unwrap();
    assert!(std::fs::read(&model).unwrap() == shipped, "retraining by the README command gives the shipped model");

    // The shipped model, as `math_score(text)` in SQL, on every document and problem.
    let scores = query(
        lake,
        "SELECT source, avg(math_score(text)) AS mean FROM documents GROUP BY source \
         UNION ALL SELECT source, avg(math_score(question || ' ' || solution)) FROM problems GROUP BY source",
        &[],
    );
    for row in &scores {
        let (source, mean) = (row["source"].as_str().unwrap(), row["mean"].as_f64().unwrap());
        if matches!(source, "cc" | "wikitext") {
            assert!(mean < 0.3, "{source}: {mean}");
        } else {
            assert!(mean > 0.7, "{source}: {mean}");
        }
    }
}

/// Splits a shell command written with single or double quotes and `\` line continuations.
fn shell_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\\') if chars.peek() == Some(&'\n') => {
                chars.next();
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The gold answer of a MATH solution, found independently of mathlake: the content of the
/// last `\boxed{`, matched brace by brace.
fn gold_boxed(solution: &str) -> Option<String> {
    let start = solution.rfind("\\boxed{")? + "\\boxed{".len();
    let mut depth = 1;
    let mut out = String::new();
    for c in solution[start..].chars() {
        depth += match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        };
        if depth == 0 {
            return Some(out.trim().to_string());
        }
        out.push(c);
    }
    None
}

fn records(relative: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(shared_data(relative)).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn final_answers_match_the_gold_answers() {
    use mathlake::text::{final_answer, normalize_answer};
    let rate = |hits: usize, all: usize| hits as f64 / all as f64;

    let gsm8k = records("problems/gsm8k_train.jsonl");
    let hits = gsm8k
        .iter()
        .filter(|r| {
            let answer = r["answer"].as_str().unwrap();
            let gold = answer.rsplit("####").next().unwrap().trim();
            final_answer(answer).as_deref() == Some(gold)
        })
        .count();
    assert!(rate(hits, gsm8k.len()) >= 0.995, "GSM8K train: {hits} of {}", gsm8k.len());
    // Without the `####` line, the last number of the solution is still the answer.
    let unmarked = gsm8k
        .iter()
        .filter(|r| {
            let answer = r["answer"].as_str().unwrap();
            let (worked, gold) = answer.rsplit_once("####").unwrap();
            final_answer(worked).map(|a| normalize_answer(&a)) == Some(normalize_answer(gold))
        })
        .count();
    assert!(rate(unmarked, gsm8k.len()) >= 0.95, "GSM8K train without ####: {unmarked} of {}", gsm8k.len());

    let math = records("problems/math_train.jsonl");
    let hits = math
        .iter()
        .filter(|r| {
            let solution = r["solution"].as_str().unwrap();
            gold_boxed(solution).is_some_and(|gold| final_answer(solution) == Some(gold))
        })
        .count();
    assert!(rate(hits, math.len()) >= 0.995, "MATH train: {hits} of {}", math.len());

    // MATH500 gives the answer separately: compare after normalization, as graders do.
    let math500 = records("problems/math500_test.jsonl");
    let hits = math500
        .iter()
        .filter(|r| {
            let found = final_answer(r["solution"].as_str().unwrap()).map(|a| normalize_answer(&a));
            found == Some(normalize_answer(r["answer"].as_str().unwrap()))
        })
        .count();
    assert!(rate(hits, math500.len()) >= 0.99, "MATH500: {hits} of {}", math500.len());
}

/// `text_mb` of benchmark text curated with `--memory-limit {limit_mb}M`: the pass
/// completes and every document gets its signals. Returns the bytes of text and the whole
/// process's peak (not only DataFusion's operators). The scan, the functions and COPY
/// stream; one 16 MiB row group is buffered on each side.
fn curated_under_limit(text_mb: u32, limit_mb: u64) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake").to_str().unwrap().to_string();
    let corpus = bench_corpus(dir.path(), text_mb);
    let ingest = ["ingest", corpus.to_str().unwrap(), "--table", "documents", "--map", "text=text"];
    ok(&mut mathlake(&[&ingest[..], &["--source", "bench", "--lake", &lake]].concat()));
    std::fs::remove_file(&corpus).unwrap();
    let flag = format!("{limit_mb}M");
    let args = ["sql", "sql/curate_documents.sql", "--lake", &lake, "--json", "--memory-limit", &flag];
    let report = json(&ok(&mut mathlake(&args)));
    let documents = count(&lake, "SELECT count(*) AS n FROM documents", &[]);
    assert_eq!(report["statements"][0]["rows"].as_u64(), Some(documents));
    let text_bytes = count(&lake, "SELECT sum(octet_length(text)) AS n FROM documents", &[]);
    let peak = report["peak_rss_bytes"].as_u64().unwrap();
    eprintln!("{text_bytes} bytes of text curated under --memory-limit {flag} with a peak of {peak} bytes");
    (text_bytes, peak)
}

/// The process holds about 0.3-0.4 GB at a gigabyte whatever the limit (BENCHMARKS.md,
/// "Memory under a limit"), more than a table small enough for every test run, so the small
/// version compares two tables, both over a 64M limit: a pass that buffered the table would
/// peak at least the difference higher on the larger one. A streaming pass grows by what
/// the allocator keeps (73 MB for 150 MB more text, measured), well under three quarters.
#[test]
fn curation_memory_does_not_grow_with_the_table() {
    let (small_text, small_peak) = curated_under_limit(40, 64);
    let (large_text, large_peak) = curated_under_limit(200, 64);
    assert!(large_text > 2 * (64 << 20), "the table is well over the limit: {large_text}");
    let grown = large_peak.saturating_sub(small_peak);
    assert!(
        grown < (large_text - small_text) * 3 / 4,
        "the peak grew by {grown} bytes ({small_peak} -> {large_peak}) for {} more bytes of text",
        large_text - small_text
    );
}

#[test]
#[ignore = "scale test: scripts/test.sh -- --ignored (BENCHMARKS.md, \"Scale tests\")"]
fn scale_curation_of_a_gigabyte_stays_within_512m() {
    let (text, peak) = curated_under_limit(1200, 512);
    assert!(text > 2 * (512 << 20), "the table is well over the limit: {text}");
    assert!(peak < 512 << 20, "peak {peak} over the 512M limit");
}
