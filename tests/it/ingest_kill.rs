//! `kill -9` in the middle of a large incremental ingest, then a rerun: the table is
//! identical to the one an uninterrupted run writes, and nothing of the killed run is
//! visible before that.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;

fn ingest_args<'a>(input: &'a str, lake: &'a str, max_file_bytes: &'a str) -> Vec<&'a str> {
    // Small files, so that the killed run has written some before it dies; one thread,
    // so that the run lasts long enough to be killed in the middle.
    vec![
        "ingest",
        input,
        "--table",
        "documents",
        "--map",
        "text=text",
        "--source",
        "bench",
        "--lake",
        lake,
        "--max-file-bytes",
        max_file_bytes,
        "--threads",
        "1",
    ]
}

fn table_dump(lake: &str) -> Vec<serde_json::Value> {
    query(lake, "SELECT id, input, position, length(text) AS chars, metadata FROM documents ORDER BY id", &[])
}

#[test]
fn a_killed_ingest_leaves_nothing_and_a_rerun_completes_it() {
    killed_ingest_leaves_nothing(40, "1000000");
}

#[test]
#[ignore = "scale test: scripts/test.sh -- --ignored (BENCHMARKS.md, \"Scale tests\")"]
fn scale_a_killed_ingest_of_150_mb_leaves_nothing() {
    killed_ingest_leaves_nothing(150, "4000000");
}

/// Ingests a first object of 1,000 records of a `corpus_mb` corpus, then the corpus itself
/// as a second object in the same folder: that run is killed once it has written two data
/// files of at most `max_file_bytes` (several batches in), then run again. The rerun reads
/// only the second object, and the table equals one run over both.
fn killed_ingest_leaves_nothing(corpus_mb: u32, max_file_bytes: &str) {
    let dir = tempfile::tempdir().unwrap();
    let corpus = bench_corpus(dir.path(), corpus_mb);
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let text = std::fs::read_to_string(&corpus).unwrap();
    let first: Vec<&str> = text.lines().take(1000).collect();
    std::fs::write(inbox.join("a-first.jsonl"), first.join("\n") + "\n").unwrap();
    let input = inbox.to_str().unwrap();
    let killed_lake = dir.path().join("killed").to_string_lossy().into_owned();
    let first_run =
        json(&ok(&mut mathlake(&[&ingest_args(input, &killed_lake, max_file_bytes)[..], &["--json"]].concat())));
    let first_rows = first_run["written"].as_u64().unwrap();
    std::fs::rename(&corpus, inbox.join("b-corpus.jsonl")).unwrap();

    let mut child = mathlake(&ingest_args(input, &killed_lake, max_file_bytes)).spawn().unwrap();
    let data = Path::new(&killed_lake).join("documents/data");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // The first object's one file, and two of the killed run's.
        let written = std::fs::read_dir(&data).map(|d| d.count()).unwrap_or(0);
        if written >= 3 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the ingest ended before it could be killed: make the corpus larger"
        );
        assert!(Instant::now() < deadline, "no data file appeared");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let log = Path::new(&killed_lake).join("documents/_log");
    assert_eq!(std::fs::read_dir(&log).unwrap().count(), 1, "a killed run commits nothing");
    let tables = json(&ok(&mut mathlake(&["tables", "--json", "--lake", &killed_lake])));
    assert_eq!((tables[0]["version"].as_u64(), tables[0]["rows"].as_u64()), (Some(1), Some(first_rows)));

    let rerun =
        json(&ok(&mut mathlake(&[&ingest_args(input, &killed_lake, max_file_bytes)[..], &["--json"]].concat())));
    assert_eq!(rerun["skipped_objects"], 1, "the rerun reads only the object the killed run was reading");
    assert_eq!(rerun["read"].as_u64().unwrap() as usize, text.lines().count());
    let clean_lake = dir.path().join("clean").to_string_lossy().into_owned();
    let clean = json(&ok(&mut mathlake(&[&ingest_args(input, &clean_lake, max_file_bytes)[..], &["--json"]].concat())));
    assert_eq!(clean["read"].as_u64().unwrap() as usize, text.lines().count() + 1000);
    assert_eq!(
        rerun["written"].as_u64().unwrap() + first_rows,
        clean["written"].as_u64().unwrap(),
        "no row lost or twice"
    );
    assert!(clean["duplicates"].as_u64().unwrap() > 1000, "the corpus plants exact duplicates");
    assert_eq!(table_dump(&killed_lake), table_dump(&clean_lake));
    // The killed run's files are gone once the rerun commits.
    let files = json(&ok(&mut mathlake(&["tables", "--json", "--lake", &killed_lake])));
    let listed = std::fs::read_dir(&data).unwrap().count();
    assert_eq!(files[0]["files"].as_u64().unwrap() as usize, listed, "orphan files were removed");
}
