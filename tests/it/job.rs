//! `mathlake run`: the run log, skipping unchanged stages, rerunning from a changed one,
//! `--force`, `--dry-run`, a failing stage that leaves earlier outputs committed, and the
//! main job skipped whole when run again.

use std::path::Path;

use crate::common::*;
use crate::ingest_shared_data::quickstart;

/// A four-stage job in `dir`, with its SQL file: ingest GSM8K test, a SQL file, a tokenizer
/// learnt from its output into the lake, and tokenize with that tokenizer (a file a stage
/// reads that an earlier stage writes).
fn write_job(dir: &Path, max_words: u32) -> std::path::PathBuf {
    let sql = dir.join("short.sql");
    std::fs::write(
        &sql,
        format!(
            "COPY (SELECT id, question, solution FROM problems WHERE word_count(question) <= {max_words}) TO 'short_problems';\n"
        ),
    )
    .unwrap();
    let job = dir.join("small.toml");
    std::fs::write(
        &job,
        format!(
            r#"
[[stage]]
kind = "ingest"
name = "gsm8k"
inputs = ["{gsm8k}"]
preset = "gsm8k"

[[stage]]
kind = "sql"
name = "short"
file = "{sql}"

[[stage]]
kind = "tokenizer"
name = "vocab"
input = "SELECT question || ' ' || solution FROM short_problems"
vocab_size = 600
to = "{{lake}}/tokenizers/short.json"

[[stage]]
kind = "tokenize"
name = "tokens"
input = "short_problems"
tokenizer = "{{lake}}/tokenizers/short.json"
to = "short_tokens"
"#,
            gsm8k = shared_data("problems/gsm8k_test.jsonl").display(),
            sql = sql.display(),
        ),
    )
    .unwrap();
    job
}

fn run(job: &Path, lake: &str, extra: &[&str]) -> Vec<(String, String)> {
    let out = ok(&mut mathlake(&[&["run", job.to_str().unwrap(), "--json", "--lake", lake][..], extra].concat()));
    json(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r["kind"].as_str().unwrap().to_string()))
        .collect()
}

fn kinds(reports: &[(String, String)]) -> Vec<&str> {
    reports.iter().map(|(_, kind)| kind.as_str()).collect()
}

fn rows(lake: &str, table: &str) -> u64 {
    query(lake, &format!("SELECT count(*) AS n FROM {table}"), &[])[0]["n"].as_u64().unwrap()
}

#[test]
fn unchanged_stages_are_skipped_and_a_change_reruns_from_its_stage_on() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let job = write_job(dir.path(), 30);

    assert_eq!(kinds(&run(&job, &lake, &[])), ["ingest", "sql", "tokenizer", "tokenize"]);
    let short = rows(&lake, "short_problems");
    assert!(short > 50 && short < 1319, "{short}");
    assert_eq!(rows(&lake, "short_tokens"), short);

    // The run log: each stage succeeded, with what it wrote and the files it read.
    let log_file = Path::new(&lake).join("_jobs/small.json");
    let log = json(&std::fs::read_to_string(&log_file).unwrap());
    let stages = log["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 4);
    assert!(stages.iter().all(|s| s["status"] == "succeeded" && s["seconds"].as_f64().unwrap() > 0.0));
    assert_eq!(stages[1]["wrote"].as_object().unwrap().keys().collect::<Vec<_>>(), ["short_problems"]);
    assert!(stages[0]["files"][0]["size"].as_u64().unwrap() > 0, "ingest inputs are stamped");
    assert!(stages[1]["files"][0]["xxh3_128"].is_string(), "the SQL file is hashed");
    assert!(stages[3]["files"][0]["xxh3_128"].is_string(), "the tokenizer, stamped once it was written");
    assert_eq!(stages[3]["report"]["report"]["output_rows"].as_u64(), Some(short));

    // Run again: nothing changed, nothing runs; --dry-run says so.
    assert_eq!(kinds(&run(&job, &lake, &[])), ["skipped"; 4]);
    let plan = ok(&mut mathlake(&["run", job.to_str().unwrap(), "--dry-run", "--lake", &lake]));
    assert_eq!(plan.matches("skipped (its last run stands)").count(), 4, "{plan}");

    // Edit the SQL file: the ingest stays, the SQL stage and everything after it rerun.
    write_job(dir.path(), 15);
    let plan = ok(&mut mathlake(&["run", job.to_str().unwrap(), "--dry-run", "--lake", &lake]));
    assert!(plan.contains("stage short: runs (its settings, files or an earlier stage changed)"), "{plan}");
    assert!(plan.contains("stage tokens: runs (an earlier stage runs)"), "{plan}");
    assert_eq!(kinds(&run(&job, &lake, &[])), ["skipped", "sql", "tokenizer", "tokenize"]);
    let shorter = rows(&lake, "short_problems");
    assert!(shorter < short && rows(&lake, "short_tokens") == shorter);

    // A table a stage wrote, changed behind the job's back: that stage reruns.
    let tamper = dir.path().join("tamper.sql");
    std::fs::write(&tamper, "COPY (SELECT * FROM short_problems LIMIT 3) TO 'short_problems';\n").unwrap();
    ok(&mut mathlake(&["sql", tamper.to_str().unwrap(), "--lake", &lake]));
    assert_eq!(kinds(&run(&job, &lake, &[])), ["skipped", "sql", "tokenizer", "tokenize"]);
    assert_eq!(rows(&lake, "short_problems"), shorter);

    // --force runs everything.
    assert_eq!(kinds(&run(&job, &lake, &["--force"])), ["ingest", "sql", "tokenizer", "tokenize"]);

    // Every run kept its own record, in SQL: what ran, what was skipped, what it wrote.
    let runs = query(&lake, "SELECT job, status, stages_run, stages_skipped FROM mathlake_runs ORDER BY run_id", &[]);
    let runs: Vec<(i64, i64)> = runs
        .iter()
        .map(|r| {
            assert_eq!((r["job"].as_str(), r["status"].as_str()), (Some("small"), Some("succeeded")));
            (r["stages_run"].as_i64().unwrap(), r["stages_skipped"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(runs, [(4, 0), (0, 4), (3, 1), (3, 1), (4, 0)]);
    let sql = "SELECT tables_written FROM mathlake_run_stages WHERE stage = 'short' ORDER BY started_at, run_id";
    let written: Vec<String> =
        query(&lake, sql, &[]).iter().map(|r| r["tables_written"].as_str().unwrap().to_string()).collect();
    let versions: Vec<&str> =
        vec!["{\"short_problems\":1}", "{\"short_problems\":2}", "{\"short_problems\":4}", "{\"short_problems\":5}"];
    assert_eq!(written, versions, "the tampering commit (version 3) was no run's");
    // Every version of the table, each with what made it: the job's SQL stage or the hand edit.
    let sql =
        "SELECT version, operation, rows FROM mathlake_versions WHERE table_name = 'short_problems' ORDER BY version";
    let made: Vec<(i64, String, i64)> = query(&lake, sql, &[])
        .iter()
        .map(|r| (r["version"].as_i64().unwrap(), r["operation"].as_str().unwrap().into(), r["rows"].as_i64().unwrap()))
        .collect();
    assert_eq!(made.iter().map(|m| m.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert!(made.iter().all(|m| m.1 == "sql"), "{made:?}");
    assert_eq!((made[0].2, made[1].2, made[2].2), (short as i64, shorter as i64, shorter.min(3) as i64));
}

#[test]
fn a_failing_stage_stops_the_job_and_keeps_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let job = write_job(dir.path(), 30);
    std::fs::write(dir.path().join("short.sql"), "COPY (SELECT no_such_column FROM problems) TO 'short_problems';\n")
        .unwrap();
    let err = fails(&mut mathlake(&["run", job.to_str().unwrap(), "--lake", &lake]));
    assert!(err.contains("stage `short`") && err.contains("no_such_column"), "{err}");
    assert_eq!(rows(&lake, "problems"), 1319, "the ingest stage's table stays committed");
    let log = json(&std::fs::read_to_string(Path::new(&lake).join("_jobs/small.json")).unwrap());
    assert_eq!(log["stages"][1]["status"], "failed");
    assert!(log["stages"][1]["error"].as_str().unwrap().contains("no_such_column"));
    let runs = query(&lake, "SELECT status, error, stages_run FROM mathlake_runs", &[]);
    assert_eq!((runs.len(), runs[0]["status"].as_str(), runs[0]["stages_run"].as_i64()), (1, Some("failed"), Some(2)));
    assert!(runs[0]["error"].as_str().unwrap().contains("no_such_column"), "{runs:?}");

    // Fixed, the job goes on from the failed stage.
    write_job(dir.path(), 30);
    assert_eq!(kinds(&run(&job, &lake, &[])), ["skipped", "sql", "tokenizer", "tokenize"]);

    // Two stages of one name cannot be told apart in the log.
    let twice = dir.path().join("twice.toml");
    std::fs::write(
        &twice,
        "[[stage]]\nkind = \"sql\"\nfile = \"a.sql\"\n\n[[stage]]\nkind = \"sql\"\nfile = \"b/a.sql\"\n",
    )
    .unwrap();
    let err = fails(&mut mathlake(&["run", twice.to_str().unwrap(), "--lake", &lake]));
    assert!(err.contains("two stages are named `a`"), "{err}");
}

/// The main job, run again on the lake it made: all of its stages, training and
/// evaluation included, are skipped as unchanged.
#[test]
fn the_quickstart_run_again_skips_every_stage() {
    let (_, lake, first) = quickstart();
    let stages = first.as_array().unwrap().len();
    assert!(stages >= 10, "{first}");
    let again = run(Path::new("jobs/quickstart.toml"), lake, &[]);
    assert_eq!(kinds(&again), vec!["skipped"; stages]);
}

/// A lease object as another run would have left it: renewed `age_seconds` ago.
fn lease(holder: &str, age_seconds: i64, ttl_seconds: u64) -> String {
    let renewed = chrono::Utc::now() - chrono::Duration::seconds(age_seconds);
    serde_json::json!({
        "holder": holder, "acquired_at": renewed, "renewed_at": renewed, "ttl_seconds": ttl_seconds, "released": false,
    })
    .to_string()
}

#[test]
fn a_run_while_another_holds_the_lease_exits_75_and_an_expired_lease_is_taken_over() {
    create_bucket("mathlake-lease");
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("leased.toml");
    std::fs::write(&job, "[[stage]]\nkind = \"sql\"\nname = \"one\"\nfile = \"one.sql\"\n").unwrap();
    std::fs::write(dir.path().join("one.sql"), "COPY (SELECT 1 AS x) TO 'one';\n").unwrap();
    let local = lake_in(&dir);
    let env = s3_env();
    for lake in [local.as_str(), "s3://mathlake-lease/lake"] {
        let plant = |number: u32, body: String| {
            let key = format!("_jobs/leased.lease/{number:010}.json");
            match lake.strip_prefix("s3://mathlake-lease/") {
                Some(prefix) => put_object("mathlake-lease", &format!("{prefix}/{key}"), &body),
                None => {
                    let path = Path::new(lake).join(key);
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(path, body).unwrap();
                }
            }
        };
        let run = || {
            let mut command = mathlake(&["run", job.to_str().unwrap(), "--lake", lake]);
            command.current_dir(dir.path()).envs(env.iter().map(|(k, v)| (*k, v.as_str())));
            command.output().unwrap()
        };

        // Held by a live run elsewhere: this one stops at once, says who, and exits 75.
        plant(7, lease("builder-2 pid 4242", 5, 600));
        let out = run();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(75), "{lake}: {stderr}");
        assert!(
            stderr.contains("job `leased` is running") && stderr.contains("held by builder-2 pid 4242"),
            "{stderr}"
        );
        let tables =
            json(&ok(mathlake(&["tables", "--json", "--lake", lake]).envs(env.iter().map(|(k, v)| (*k, v.as_str())))));
        assert_eq!(tables.as_array().map(Vec::len), Some(0), "{lake}: nothing was run: {tables}");

        // Its holder was killed: once the lease has expired, the next run takes it over, and
        // releases it when done, so the run after needs no wait.
        plant(8, lease("builder-2 pid 4242", 120, 60));
        for _ in 0..2 {
            let out = run();
            assert!(out.status.success(), "{lake}: {}", String::from_utf8_lossy(&out.stderr));
        }
        assert_eq!(query(lake, "SELECT x FROM one", &env)[0]["x"], 1);
    }
}

#[test]
fn two_runs_started_together_one_runs_and_the_other_exits_75() {
    let dir = tempfile::tempdir().unwrap();
    // An ingest that lasts about a second, so that the two runs overlap.
    let corpus = bench_corpus(dir.path(), 20);
    let job = dir.path().join("together.toml");
    std::fs::write(
        &job,
        format!(
            "[[stage]]\nkind = \"ingest\"\ninputs = [\"{}\"]\ntable = \"documents\"\nmap = [\"text=text\"]\nsource = \"bench\"\n",
            corpus.display()
        ),
    )
    .unwrap();
    let lake = lake_in(&dir);
    let start = || {
        mathlake(&["run", job.to_str().unwrap(), "--lake", &lake]).stderr(std::process::Stdio::piped()).spawn().unwrap()
    };
    let (first, second) = (start(), start());
    let outcomes: Vec<_> = [first, second].into_iter().map(|child| child.wait_with_output().unwrap()).collect();
    let mut codes: Vec<_> = outcomes.iter().map(|o| o.status.code()).collect();
    codes.sort();
    assert_eq!(codes, [Some(0), Some(75)], "{outcomes:?}");
    let busy = outcomes.iter().find(|o| o.status.code() == Some(75)).unwrap();
    let stderr = String::from_utf8_lossy(&busy.stderr);
    assert!(stderr.contains("job `together` is running"), "{stderr}");
    let tables = json(&ok(&mut mathlake(&["tables", "--json", "--lake", &lake])));
    assert_eq!(tables[0]["version"], 1, "one ingest committed: {tables}");
    let runs = query(&lake, "SELECT status FROM mathlake_runs WHERE job = 'together'", &[]);
    assert_eq!(runs, [serde_json::json!({"status": "succeeded"})], "the refused run left no record");
}
