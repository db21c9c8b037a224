//! `mathlake schedule`: a job run every second by one process while batches arrive in its
//! inbox (each read by exactly one run), a failing job retried with a doubling wait, and
//! SIGTERM ending the process cleanly.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A running `mathlake schedule`, killed if the test fails before it stops it.
struct Scheduler {
    child: Child,
    stderr: PathBuf,
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `mathlake schedule` with its stdout and stderr in files under `dir`.
fn start(dir: &Path, args: &[&str]) -> Scheduler {
    let stderr = dir.join("schedule.err");
    let mut command = mathlake(&[&["schedule"][..], args].concat());
    command.stdout(Stdio::from(std::fs::File::create(dir.join("schedule.out")).unwrap()));
    command.stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()));
    Scheduler { child: command.spawn().expect("mathlake starts"), stderr }
}

fn wait_for(what: &str, scheduler: &Scheduler, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        let log = || std::fs::read_to_string(&scheduler.stderr).unwrap_or_default();
        assert!(Instant::now() < deadline, "gave up waiting for {what}; the scheduler said:\n{}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends SIGTERM and waits for a clean exit.
fn terminate(mut scheduler: Scheduler) -> String {
    let pid = scheduler.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = scheduler.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the scheduler did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&scheduler.stderr).unwrap();
    assert!(status.success(), "the scheduler exits 0 after SIGTERM ({status}):\n{log}");
    assert!(log.contains("schedule: stopped"), "{log}");
    log
}

#[test]
fn a_scheduled_job_reads_each_batch_once_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    // Two statements, the second reading the first's table: both per row, so incremental.
    let sql = dir.path().join("words.sql");
    std::fs::write(
        &sql,
        "COPY (SELECT id, source, word_count(text) AS words FROM documents) TO 'document_words';\n\
         COPY (SELECT id, words FROM document_words WHERE words >= 100) TO 'long_documents';\n",
    )
    .unwrap();
    let job = dir.path().join("web.toml");
    std::fs::write(
        &job,
        format!(
            "[[stage]]\nkind = \"ingest\"\nname = \"web\"\ninputs = [\"{}\"]\npreset = \"stackmathqa\"\n\n\
             [[stage]]\nkind = \"sql\"\nname = \"words\"\nfile = \"{}\"\nincremental = true\n\n\
             [schedule]\ncron = \"* * * * * *\"\nretries = 0\n",
            inbox.display(),
            sql.display()
        ),
    )
    .unwrap();
    let text = std::fs::read_to_string(shared_data("web/stackmathqa_987.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let version = |n: u32| Path::new(&lake).join(format!("documents/_log/{n:020}.json"));

    std::fs::write(inbox.join("batch-1.jsonl"), lines[..329].join("\n") + "\n").unwrap();
    let scheduler = start(dir.path(), &[job.to_str().unwrap(), "--lake", &lake]);
    for (n, batch) in [(1, &lines[329..658]), (2, &lines[658..])] {
        wait_for(&format!("documents version {n}"), &scheduler, || version(n).exists());
        std::fs::write(inbox.join(format!("batch-{}.jsonl", n + 1)), batch.join("\n") + "\n").unwrap();
    }
    wait_for("documents version 3", &scheduler, || version(3).exists());
    // One more run after the last batch, with nothing new to read.
    let runs = || std::fs::read_dir(Path::new(&lake).join("_jobs/web.runs")).map_or(0, |d| d.count());
    let after_last = runs();
    wait_for("a run after the last batch", &scheduler, || runs() > after_last + 1);
    let log = terminate(scheduler);
    assert!(log.contains("scheduling job web on `* * * * * *` (UTC)"), "{log}");
    assert!(log.contains("run succeeded"), "{log}");

    assert!(!version(4).exists(), "runs with nothing new commit nothing");
    let documents = query(&lake, "SELECT count(*) AS n FROM documents", &[]);
    assert_eq!(documents[0]["n"], 987);
    // The SQL stage appended what each batch added, and its tables record what they read.
    let words = query(
        &lake,
        "SELECT version, rows, files, details FROM mathlake_versions WHERE table_name = 'document_words' ORDER BY version",
        &[],
    );
    let counts: Vec<_> = words.iter().map(|v| (v["rows"].as_u64().unwrap(), v["files"].as_u64().unwrap())).collect();
    assert_eq!(counts, [(329, 1), (658, 2), (987, 3)], "one appended file per batch");
    let details = json(words[2]["details"].as_str().unwrap());
    assert_eq!(
        details["statement"],
        "COPY (SELECT id, source, word_count(text) AS words FROM documents) TO 'document_words'"
    );
    assert_eq!(details["read"], serde_json::json!({"documents": 3}));
    let long = query(
        &lake,
        "SELECT details FROM mathlake_versions WHERE table_name = 'long_documents' ORDER BY version DESC LIMIT 1",
        &[],
    );
    assert_eq!(json(long[0]["details"].as_str().unwrap())["read"], serde_json::json!({"document_words": 3}));
    let stages = query(&lake, "SELECT count(*) AS n FROM mathlake_run_stages WHERE stage = 'words'", &[]);
    assert_eq!(stages[0]["n"], 3, "the SQL stage ran once per batch");

    // The same file run over everything at once gives the same rows.
    let snapshot = || {
        [
            query(&lake, "SELECT id, source, words FROM document_words ORDER BY id", &[]),
            query(&lake, "SELECT id, words FROM long_documents ORDER BY id", &[]),
        ]
    };
    let incremental = snapshot();
    assert!(incremental[1].len() > 100 && incremental[1].len() < 987, "{}", incremental[1].len());
    let rebuilt = ok(&mut mathlake(&["sql", sql.to_str().unwrap(), "--lake", &lake]));
    assert!(!rebuilt.contains("appended"), "{rebuilt}");
    assert_eq!(snapshot(), incremental, "three appends give the rows of one full run");
    let out = std::fs::read_to_string(dir.path().join("schedule.out")).unwrap();
    assert!(out.contains("appended: the rows `documents` gained from version 2 to 3"), "{out}");
    assert!(out.contains("appended: the rows `document_words` gained from version 2 to 3"), "{out}");
    let again = ok(&mut mathlake(&["sql", sql.to_str().unwrap(), "--incremental", "--lake", &lake]));
    assert_eq!(again.matches("unchanged: nothing it reads changed").count(), 2, "{again}");
    let stages = query(
        &lake,
        "SELECT count(*) AS n FROM mathlake_run_stages WHERE job = 'web' AND stage = 'web' AND status = 'succeeded'",
        &[],
    );
    assert_eq!(stages[0]["n"], 3, "the ingest stage ran once per batch, and was skipped otherwise");
    let runs = query(&lake, "SELECT status, count(*) AS n FROM mathlake_runs WHERE job = 'web' GROUP BY status", &[]);
    let succeeded = runs.iter().find(|r| r["status"] == "succeeded").map_or(0, |r| r["n"].as_u64().unwrap());
    assert!(succeeded >= 4, "{runs:?}");
    assert!(runs.iter().all(|r| r["status"] == "succeeded" || r["status"] == "stopped"), "{runs:?}");
}

#[test]
fn a_failing_run_is_retried_with_a_doubling_wait_then_waits_for_its_next_slot() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let job = dir.path().join("broken.toml");
    let missing = dir.path().join("not-there.jsonl");
    std::fs::write(
        &job,
        format!("[[stage]]\nkind = \"ingest\"\ninputs = [\"{}\"]\npreset = \"stackmathqa\"\n", missing.display()),
    )
    .unwrap();
    let args = [job.to_str().unwrap(), "--cron", "* * * * * *", "--retries", "2", "--backoff-seconds", "1"];
    let scheduler = start(dir.path(), &[&args[..], &["--lake", &lake]].concat());
    let read = || std::fs::read_to_string(&scheduler.stderr).unwrap_or_default();
    wait_for("three attempts", &scheduler, || read().contains("waiting for the next slot"));
    let log = terminate(scheduler);
    let attempts: Vec<&str> = log.lines().filter(|l| l.contains("run failed")).take(3).collect();
    assert_eq!(attempts.len(), 3, "{log}");
    assert!(attempts[0].contains("(attempt 1 of 3)") && attempts[0].ends_with("trying again in 1 s"), "{log}");
    assert!(attempts[1].contains("(attempt 2 of 3)") && attempts[1].ends_with("trying again in 2 s"), "{log}");
    assert!(attempts[2].contains("(attempt 3 of 3)") && attempts[2].ends_with("waiting for the next slot"), "{log}");
    assert!(attempts[0].contains("no input found"), "{log}");
    let runs = query(&lake, "SELECT status, error FROM mathlake_runs WHERE job = 'broken'", &[]);
    assert!(runs.len() >= 3, "{runs:?}");
    assert!(runs.iter().all(|r| r["status"] == "failed" && r["error"].as_str().unwrap().contains("no input found")));
}
