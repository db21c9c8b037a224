//! The lake on S3 (a local S3 server): ingest there, read back with `mathlake query`, and
//! get the same counts and ids as the local lake.

use crate::common::*;

#[test]
fn s3_lake_matches_the_local_lake() {
    create_bucket("mathlake-it");
    let env = s3_env();
    let s3_lake = "s3://mathlake-it/lakes/ingest";
    let dir = tempfile::tempdir().unwrap();
    let local_lake = lake_in(&dir);
    let inputs = [
        (shared_data("problems/gsm8k_test.jsonl"), "gsm8k"),
        (shared_data("web/stackmathqa_987.jsonl"), "stackmathqa"),
        (shared_data("general/cc_sample_697.jsonl.gz"), "dolma"),
    ];
    for (input, preset) in &inputs {
        for lake in [s3_lake, local_lake.as_str()] {
            let mut command = mathlake(&["ingest", input.to_str().unwrap(), "--preset", preset, "--lake", lake]);
            command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
            ok(&mut command);
        }
    }
    for sql in [
        "SELECT id, source, split, final_answer FROM problems ORDER BY id",
        "SELECT id, source, url FROM documents ORDER BY id",
        "SELECT reason, count(*) AS n FROM quarantine GROUP BY reason",
    ] {
        let remote = query(s3_lake, sql, &env);
        let local = query(&local_lake, sql, &env);
        assert!(!remote.is_empty(), "{sql}");
        assert_eq!(remote, local, "{sql}");
    }
    let counts = query(s3_lake, "SELECT count(*) AS n FROM documents", &env);
    assert_eq!(counts[0]["n"], 987 + 661);

    // Inputs can live on S3 too: the lake's own Parquet, read back as an input.
    let mut tables = mathlake(&["tables", "--json", "--lake", s3_lake]);
    tables.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let tables = json(&ok(&mut tables));
    let names: Vec<_> = tables.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["documents", "problems", "quarantine"]);
}

#[test]
fn s3_errors_name_the_location_and_hide_secrets() {
    let mut env = s3_env();
    env.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    env.push(("AWS_SECRET_ACCESS_KEY", "very-secret-value".into()));
    let mut command = mathlake(&[
        "ingest",
        "s3://mathlake-no-such-bucket/x/*.jsonl",
        "--preset",
        "gsm8k",
        "--lake",
        "s3://mathlake-no-such-bucket/lake",
    ]);
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let err = fails(&mut command);
    assert!(err.contains("mathlake-no-such-bucket"), "{err}");
    assert!(!err.contains("very-secret-value"), "{err}");
}
