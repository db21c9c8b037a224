//! SQL on Ballista (feature `distributed`): a scheduler and an executor started in the
//! `mathlake` process (`--engine standalone`) give the rows the local engine gives, with
//! mathlake's functions running on the executor, on a local lake and on S3.

use crate::common::*;

/// Queries a curation, dedup and mixture lean on: per-row functions, an aggregation that
/// shuffles, the LSH band keys grouped in the cluster.
const QUERIES: &[&str] = &[
    "SELECT source, count(*) AS n, sum(word_count(text)) AS words FROM documents GROUP BY source ORDER BY source",
    "SELECT id, round(math_score(text), 6) AS math, language(text)['code'] AS language, \
     quality_signals(text)['stop_word_count'] AS stop_words FROM documents ORDER BY id",
    "SELECT key, count(*) AS n, min(id) AS first FROM (SELECT id, unnest(minhash_bands(minhash(text), 14, 8)) AS key \
     FROM documents) GROUP BY key HAVING count(*) > 1 ORDER BY key, first",
];

fn engines_agree(lake: &str, env: &[(&str, String)]) {
    for sql in QUERIES {
        let local = query(lake, sql, env);
        let mut command = mathlake(&["query", "--json", "--engine", "standalone", "--lake", lake, sql]);
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let distributed: Vec<serde_json::Value> = ok(&mut command).lines().map(json).collect();
        assert!(!local.is_empty(), "{sql}");
        assert_eq!(local, distributed, "{sql}");
    }
}

#[test]
fn ballista_in_process_gives_the_rows_of_the_local_engine() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let web = shared_data("web/stackmathqa_987.jsonl");
    ok(&mut mathlake(&["ingest", web.to_str().unwrap(), "--preset", "stackmathqa", "--lake", &lake]));
    engines_agree(&lake, &[]);

    // A function's error on one bad row reaches the user as it does locally.
    let bad = "SELECT minhash(text, 0, 112, 1) FROM documents";
    let local = mathlake(&["query", "--lake", &lake, bad]).output().unwrap();
    let distributed = mathlake(&["query", "--engine", "standalone", "--lake", &lake, bad]).output().unwrap();
    assert!(!local.status.success() && !distributed.status.success());
    let local = String::from_utf8_lossy(&local.stderr).into_owned();
    let message = local.lines().next().unwrap().trim_start_matches("error: Execution error: ");
    assert_eq!(message, "minhash: ngram must be 1 to 64 words, not 0", "{local}");
    let distributed = String::from_utf8_lossy(&distributed.stderr).into_owned();
    let error = distributed.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
    assert!(error.contains(message), "{distributed}");
    // And it failed on Ballista's executor, not in this process.
    assert!(error.contains("failed due to stage"), "{distributed}");
}

#[test]
fn ballista_in_process_reads_a_lake_on_s3() {
    create_bucket("mathlake-distributed");
    let env = s3_env();
    let lake = format!("s3://mathlake-distributed/{}/lake", std::process::id());
    let web = shared_data("web/stackmathqa_987.jsonl");
    let mut command = mathlake(&["ingest", web.to_str().unwrap(), "--preset", "stackmathqa", "--lake", &lake]);
    ok(command.envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
    engines_agree(&lake, &env);
}
