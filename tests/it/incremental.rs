//! Incremental runs on a local folder and on S3: batches of objects arrive in an inbox,
//! each ingest reads only the objects it has not read (and says how many it skipped), and
//! the table ends as one run over every object would leave it; a changed object is refused
//! by name, or its earlier rows are replaced. Downstream, curation, dedup, decontamination
//! and tokenize process only the rows added, and the tables and shards equal a full run's.

use std::path::PathBuf;

use crate::common::*;

/// Where batches arrive: a local folder or an S3 prefix.
enum Inbox {
    Local(PathBuf),
    S3 { bucket: &'static str, prefix: String },
}

impl Inbox {
    fn put(&self, name: &str, body: &str) {
        match self {
            Inbox::Local(folder) => {
                std::fs::create_dir_all(folder).unwrap();
                std::fs::write(folder.join(name), body).unwrap();
            }
            Inbox::S3 { bucket, prefix } => put_object(bucket, &format!("{prefix}/{name}"), body),
        }
    }

    fn url(&self) -> String {
        match self {
            Inbox::Local(folder) => folder.to_string_lossy().into_owned(),
            Inbox::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// StackMathQA in three batches. The second repeats a record of the first (the earlier
/// copy is kept) and holds a line that is not JSON (quarantined).
fn batches() -> Vec<String> {
    let text = std::fs::read_to_string(shared_data("web/stackmathqa_987.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut batches: Vec<String> = lines.chunks(329).map(|c| c.join("\n") + "\n").collect();
    assert_eq!(batches.len(), 3);
    batches[1].push_str(lines[5]);
    batches[1].push_str("\n{\"Q\": \"a cut line\n");
    batches
}

fn ingest(inbox: &Inbox, lake: &str, env: &[(&str, String)], extra: &[&str]) -> std::process::Command {
    let url = inbox.url();
    let mut command =
        mathlake(&[&["ingest", &url, "--preset", "stackmathqa", "--json", "--lake", lake][..], extra].concat());
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command
}

/// The table's rows, with each input object by its file name (the inboxes differ).
fn rows(lake: &str, env: &[(&str, String)]) -> Vec<serde_json::Value> {
    let sql = "SELECT id, source, source_id, url, text, metadata, position, regexp_replace(input, '^.*/', '') AS object \
               FROM documents ORDER BY id";
    query(lake, sql, env)
}

fn quarantined(lake: &str, env: &[(&str, String)]) -> Vec<serde_json::Value> {
    let sql = "SELECT reason, position, regexp_replace(input, '^.*/', '') AS object FROM quarantine ORDER BY object, position";
    query(lake, sql, env)
}

fn batches_one_run_each_equal_one_run_over_all(
    inbox: Inbox,
    full_inbox: Inbox,
    lake: &str,
    full_lake: &str,
    env: &[(&str, String)],
) {
    let batches = batches();
    for (i, batch) in batches.iter().enumerate() {
        let name = format!("batch-{}.jsonl", i + 1);
        inbox.put(&name, batch);
        full_inbox.put(&name, batch);
        let summary = json(&ok(&mut ingest(&inbox, lake, env, &[])));
        assert_eq!(summary["skipped_objects"], i, "run {}: the objects read before are skipped", i + 1);
        let read: Vec<_> = summary["inputs"].as_array().unwrap().iter().map(|i| i["input"].as_str().unwrap()).collect();
        assert_eq!(read.len(), 1, "run {} reads only the new object: {read:?}", i + 1);
        assert!(read[0].ends_with(&name), "{read:?}");
        assert_eq!(summary["read"], batch.lines().count(), "run {}", i + 1);
        assert_eq!(summary["version"], i + 1);
    }
    let full = json(&ok(&mut ingest(&full_inbox, full_lake, env, &[])));
    assert_eq!(
        (full["read"].as_u64(), full["duplicates"].as_u64(), full["quarantined"].as_u64()),
        (Some(989), Some(1), Some(1))
    );
    let incremental = rows(lake, env);
    assert_eq!(incremental.len(), 987);
    assert_eq!(incremental, rows(full_lake, env), "three runs give the rows of one");
    assert_eq!(quarantined(lake, env), quarantined(full_lake, env));

    // Nothing new: nothing read, no new version.
    let again = json(&ok(&mut ingest(&inbox, lake, env, &[])));
    assert_eq!((again["skipped_objects"].as_u64(), again["read"].as_u64()), (Some(3), Some(0)));
    assert!(again["version"].is_null(), "{again}");

    // The second batch is fixed: its cut line completed and two records edited.
    let mut lines: Vec<String> = batches[1].lines().map(str::to_string).collect();
    let cut = lines.pop().unwrap();
    lines.push(cut.replace("a cut line", "a completed line\", \"A\": \"now whole\"}"));
    for line in &mut lines[..2] {
        *line = line.replacen("\"Q\": \"", "\"Q\": \"(edited) ", 1);
    }
    let fixed = lines.join("\n") + "\n";
    inbox.put("batch-2.jsonl", &fixed);
    let refused = fails(&mut ingest(&inbox, lake, env, &[]));
    assert!(refused.contains("batch-2.jsonl` changed since it was ingested into `documents`"), "{refused}");
    assert!(refused.contains("on_change = \"replace\""), "{refused}");
    assert_eq!(rows(lake, env), incremental, "a refused change leaves the table as it was");

    let replaced = json(&ok(&mut ingest(&inbox, lake, env, &["--on-change", "replace"])));
    assert_eq!(replaced["replaced_objects"].as_array().unwrap().len(), 1, "{replaced}");
    assert!(replaced["replaced_objects"][0].as_str().unwrap().ends_with("batch-2.jsonl"));
    assert_eq!(replaced["rows_removed"], 329, "the second batch's own rows (its repeat was never written)");
    assert_eq!(replaced["skipped_objects"], 2);
    let fresh_inbox_lake = format!("{full_lake}-fixed");
    full_inbox.put("batch-2.jsonl", &fixed);
    ok(&mut ingest(&full_inbox, &fresh_inbox_lake, env, &[]));
    let after = rows(lake, env);
    assert_eq!(after.len(), 987 + 1, "the completed line is a record now");
    assert_eq!(after, rows(&fresh_inbox_lake, env), "replace gives the rows of a full run over the new content");
    assert!(quarantined(lake, env).is_empty(), "the cut line's quarantine row went with the old content");
}

#[test]
fn batches_on_a_local_folder_are_ingested_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let full_lake = dir.path().join("full").to_string_lossy().into_owned();
    let inbox = Inbox::Local(dir.path().join("inbox"));
    let full_inbox = Inbox::Local(dir.path().join("full-inbox"));
    batches_one_run_each_equal_one_run_over_all(inbox, full_inbox, &lake, &full_lake, &[]);
    earlier_versions_stay_readable_until_vacuumed(&lake);
}

/// The lake the local test leaves: `documents` versions 1 to 4, the fourth replacing the
/// second batch's rows (its file rewritten without them).
fn earlier_versions_stay_readable_until_vacuumed(lake: &str) {
    let rows_at = |version: u64| {
        let sql = format!("SELECT count(*) AS n FROM table_at('documents', {version})");
        query(lake, &sql, &[])[0]["n"].as_u64().unwrap()
    };
    assert_eq!([1, 2, 3, 4].map(rows_at), [329, 658, 987, 988]);
    let versions = query(
        lake,
        "SELECT version, operation, rows FROM mathlake_versions WHERE table_name = 'documents' ORDER BY version",
        &[],
    );
    assert_eq!(versions.iter().map(|v| v["rows"].as_u64().unwrap()).collect::<Vec<_>>(), [329, 658, 987, 988]);
    let data = std::path::Path::new(lake).join("documents/data");
    let files_on_disk = || std::fs::read_dir(&data).unwrap().count();
    assert_eq!(files_on_disk(), 4, "three batches' files and the second one's rewrite");

    let dry = ok(&mut mathlake(&["vacuum", "--older-than", "0s", "--keep", "2", "--dry-run", "--lake", lake]));
    assert!(dry.contains("would remove 2 versions, 0 data files"), "{dry}");
    let vacuumed = json(&ok(&mut mathlake(&["vacuum", "--older-than", "0s", "--keep", "2", "--json", "--lake", lake])));
    let documents = vacuumed.as_array().unwrap().iter().find(|t| t["table"] == "documents").unwrap();
    assert_eq!(documents["versions_removed"], serde_json::json!([1, 2]));
    assert_eq!(documents["files_removed"], 0, "version 3 still lists every file of versions 1 and 2");
    assert_eq!(rows_at(3), 987, "a kept version reads as before");
    let gone = fails(&mut mathlake(&["query", "--lake", lake, "SELECT count(*) FROM table_at('documents', 1)"]));
    assert!(gone.contains("table `documents` has no version 1: it has versions 3 to 4"), "{gone}");

    let vacuumed =
        json(&ok(&mut mathlake(&["vacuum", "--table", "documents", "--older-than", "0s", "--json", "--lake", lake])));
    assert_eq!(
        (vacuumed[0]["versions_removed"].clone(), vacuumed[0]["files_removed"].as_u64()),
        (serde_json::json!([3]), Some(1))
    );
    assert_eq!(files_on_disk(), 3, "the second batch's first file, listed by version 3 only, is gone");
    assert_eq!(rows_at(4), 988);
    assert_eq!(query(lake, "SELECT count(*) AS n FROM documents", &[])[0]["n"], 988);
}

#[test]
fn batches_on_s3_are_ingested_once_each() {
    create_bucket("mathlake-incremental");
    let env = s3_env();
    let run = format!("{}", std::process::id());
    let inbox = Inbox::S3 { bucket: "mathlake-incremental", prefix: format!("{run}/inbox") };
    let full_inbox = Inbox::S3 { bucket: "mathlake-incremental", prefix: format!("{run}/full-inbox") };
    let lake = format!("s3://mathlake-incremental/{run}/lake");
    let full_lake = format!("s3://mathlake-incremental/{run}/full");
    batches_one_run_each_equal_one_run_over_all(inbox, full_inbox, &lake, &full_lake, &env);
}

/// Runs `mathlake` over `lake` and returns stdout.
fn run(lake: &str, args: &[&str]) -> String {
    run_with(lake, &[], args)
}

/// Runs `mathlake` over `lake` with `env` (the S3 settings) and returns stdout.
fn run_with(lake: &str, env: &[(&str, String)], args: &[&str]) -> String {
    let mut command = mathlake(&[args, &["--lake", lake]].concat());
    ok(command.envs(env.iter().map(|(k, v)| (*k, v.as_str()))))
}

/// Three batches through ingest, curation, dedup, decontamination and tokenize, one
/// incremental run each into `lake`, against one full run into `full_lake`: the same
/// clusters, contamination and token rows, and shards with the same bytes.
fn batches_through_curation_give_the_shards_of_one_run(
    inbox: &Inbox,
    lake: &str,
    full_lake: &str,
    env: &[(&str, String)],
) {
    let dir = tempfile::tempdir().unwrap();
    let sql = dir.path().join("long.sql");
    // Through a view, as sql/curate_documents.sql reads its verdicts: a view holds the table
    // it was made over, so the appended rows must reach it too.
    std::fs::write(
        &sql,
        "CREATE VIEW long AS SELECT id, source, text, input, position FROM documents WHERE word_count(text) >= 100;\n\
         COPY (SELECT * FROM long) TO 'long_documents';\n",
    )
    .unwrap();
    let mixture = dir.path().join("web.toml");
    std::fs::write(
        &mixture,
        "name = \"web\"\nmode = \"cpt\"\nsequence_length = 128\ntotal_tokens = 40960\n\n\
         [[source]]\nname = \"web\"\ninput = \"long_tokens\"\nweight = 1.0\n",
    )
    .unwrap();
    let tokenizer = shared_data("tokenizers/gpt2.json");
    let (sql, mixture, tokenizer) = (sql.to_str().unwrap(), mixture.to_str().unwrap(), tokenizer.to_str().unwrap());
    let dedup = ["dedup", "--input", "long_documents", "--to", "unique_documents"];
    let decontaminate = [
        "decontaminate",
        "--input",
        "unique_documents",
        "--benchmarks",
        "problems",
        "--to",
        "clean_documents",
        "--report",
        "contamination",
    ];
    let tokenize = ["tokenize", "--input", "clean_documents", "--tokenizer", tokenizer, "--to", "long_tokens"];
    let gsm8k = shared_data("problems/gsm8k_test.jsonl");
    let run = |lake: &str, args: &[&str]| run_with(lake, env, args);
    let query = |lake: &str, sql: &str| query(lake, sql, env);
    let pipeline = |lake: &str, incremental: bool| -> [String; 5] {
        let flag: &[&str] = if incremental { &["--incremental"] } else { &[] };
        // An incremental dedup keeps its clusters in TO_clusters; a full one where told.
        let clusters: &[&str] = if incremental { &[] } else { &["--clusters", "unique_documents_clusters"] };
        let ingested = run(lake, &["ingest", &inbox.url(), "--preset", "stackmathqa", "--json"]);
        let curated = run(lake, &[&["sql", sql][..], flag].concat());
        let deduplicated = run(lake, &[&dedup[..], flag, clusters].concat());
        let decontaminated = run(lake, &[&decontaminate[..], flag].concat());
        let tokenized = run(lake, &[&tokenize[..], flag].concat());
        [ingested, curated, deduplicated, decontaminated, tokenized]
    };

    // The last batch carries a GSM8K test problem posted as a question, long enough to be
    // curated: decontamination must remove it in both runs.
    let item: serde_json::Value = json(std::fs::read_to_string(&gsm8k).unwrap().lines().next().unwrap());
    let padding = " I tried writing it as an equation but I am not sure where the numbers go.".repeat(8);
    let leaked =
        serde_json::json!({"Q": format!("{}{padding}", item["question"].as_str().unwrap()), "A": item["answer"]});
    let mut batches = batches();
    batches[2].push_str(&format!("{leaked}\n"));

    for lake in [lake, full_lake] {
        run(lake, &["ingest", gsm8k.to_str().unwrap(), "--preset", "gsm8k"]);
    }
    for (i, batch) in batches.iter().enumerate() {
        inbox.put(&format!("batch-{}.jsonl", i + 1), batch);
        let [ingested, curated, deduplicated, decontaminated, tokenized] = pipeline(lake, true);
        let ingested = json(&ingested);
        assert_eq!(ingested["skipped_objects"].as_u64(), Some(i as u64), "{ingested}");
        if i > 0 {
            let gained = format!("gained from version {} to {}", i, i + 1);
            assert!(curated.contains(&format!("appended: the rows `documents` {gained}")), "{curated}");
            let appended = format!("appended: the rows `long_documents` {gained}");
            assert!(deduplicated.contains(&appended), "{deduplicated}");
            let appended = format!("appended: the rows `unique_documents` {gained}");
            assert!(decontaminated.contains(&appended), "{decontaminated}");
            let appended = format!("appended: the rows `clean_documents` {gained}");
            assert!(tokenized.contains(&appended), "{tokenized}");
        }
    }
    pipeline(full_lake, false);

    let contamination = "SELECT training_id, benchmark, item_id FROM contamination ORDER BY 1, 2, 3";
    let found = query(lake, contamination);
    assert!(!found.is_empty(), "the leaked problem is found");
    let removed = "SELECT count(*) AS n FROM contamination WHERE removed AND benchmark = 'gsm8k'";
    assert!(query(lake, removed)[0]["n"].as_u64().unwrap() >= 1, "and removed");
    // New evaluation items must be looked for in every record: a benchmark that gained
    // rows rebuilds, and an input with nothing new then leaves the outputs as they are.
    let math500 = shared_data("problems/math500_test.jsonl");
    run(lake, &["ingest", math500.to_str().unwrap(), "--preset", "math500"]);
    let incremental_decontamination = [&decontaminate[..], &["--incremental"]].concat();
    let rebuilt = run(lake, &incremental_decontamination);
    assert!(rebuilt.contains("rebuilt: `problems`, which it reads beside its input, changed"), "{rebuilt}");
    let again = run(lake, &incremental_decontamination);
    assert!(again.contains("unchanged: nothing it reads changed"), "{again}");
    assert_eq!(found, query(full_lake, contamination));

    let clusters = "SELECT id, cluster_id, kept FROM unique_documents_clusters ORDER BY id";
    let found = query(lake, clusters);
    assert!(!found.is_empty(), "StackMathQA's own near-duplicates across batches");
    assert_eq!(found, query(full_lake, clusters), "the same clusters");

    let tokens = "SELECT id, source, tokens, token_count FROM long_tokens ORDER BY id";
    let incremental = query(lake, tokens);
    assert!(incremental.len() > 300, "{}", incremental.len());
    assert_eq!(incremental, query(full_lake, tokens), "the same token rows");
    let files = query(lake, "SELECT files FROM mathlake_versions WHERE table_name = 'long_tokens' ORDER BY version");
    assert_eq!(files.iter().map(|f| f["files"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3], "appended");

    // The manifests list every shard with its xxh3-128: equal lists are equal bytes.
    let shards = |lake: &str| {
        let to = format!("{lake}/shards");
        let built = json(&run(lake, &["shards", "build", "--json", "--mixture", mixture, "--to", &to]));
        let manifest = &built["shards"]["manifest"];
        (manifest["train"]["shards"].clone(), manifest["validation"]["shards"].clone(), manifest["records"].clone())
    };
    let (a, b) = (shards(lake), shards(full_lake));
    assert!(a.0.as_array().unwrap().len() + a.1.as_array().unwrap().len() >= 2, "train and validation shards");
    assert_eq!(a, b, "the same shard bytes from three incremental runs as from one full run");
}

#[test]
fn batches_through_curation_dedup_and_tokenize_give_the_shards_of_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::Local(dir.path().join("inbox"));
    let full_lake = dir.path().join("full").to_string_lossy().into_owned();
    batches_through_curation_give_the_shards_of_one_run(&inbox, &lake_in(&dir), &full_lake, &[]);
}

#[test]
fn batches_on_s3_through_curation_dedup_and_tokenize_give_the_shards_of_one_run() {
    create_bucket("mathlake-incremental");
    let run = format!("{}", std::process::id());
    let inbox = Inbox::S3 { bucket: "mathlake-incremental", prefix: format!("{run}/pipeline-inbox") };
    let lake = format!("s3://mathlake-incremental/{run}/pipeline");
    let full_lake = format!("s3://mathlake-incremental/{run}/pipeline-full");
    batches_through_curation_give_the_shards_of_one_run(&inbox, &lake, &full_lake, &s3_env());
}

/// `line` of StackMathQA with `tail` added to its question: a near-duplicate of it.
fn near_copy(line: &str, tail: &str) -> String {
    let mut record: serde_json::Value = json(line);
    let question = format!("{}{tail}", record["Q"].as_str().unwrap());
    record["Q"] = question.into();
    record.to_string()
}

/// `mathlake dedup` of `documents` into `unique`, incremental or not; returns its report.
fn dedup(lake: &str, incremental: bool) -> serde_json::Value {
    let mut args = vec!["dedup", "--input", "documents", "--to", "unique", "--json", "--lake", lake];
    if incremental {
        args.push("--incremental");
    } else {
        args.extend(["--clusters", "unique_clusters"]);
    }
    json(&ok(&mut mathlake(&args)))["dedup"].clone()
}

#[test]
fn batches_through_incremental_dedup_keep_the_earliest_copy_as_one_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(shared_data("web/stackmathqa_987.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut batches = batches();
    let (hint, stuck) =
        (" Any hints would be appreciated, thank you very much!", " I have been stuck on this for days.");
    // Near-copies of earlier records in later batches, a cluster of three across all
    // three, and two records that share 100 words, too few to be duplicates of each other.
    for line in [1, 3, 4] {
        batches[1].push_str(&(near_copy(lines[line], hint) + "\n"));
    }
    batches[2].push_str(&(near_copy(lines[1], stuck) + "\n"));
    batches[2].push_str(&(near_copy(lines[330], hint) + "\n"));
    let answer: serde_json::Value = json(lines[2]);
    let words: Vec<&str> = answer["A"].as_str().unwrap().split_whitespace().collect();
    let shared = words[..100].join(" ");
    let (x, y) = (words[200..220].join(" "), words[400..420].join(" "));
    let record = |q: String| serde_json::json!({"Q": q, "A": "See the working above."}).to_string() + "\n";
    batches[0].push_str(&record(format!("{shared} {x}")));
    batches[0].push_str(&record(format!("{shared} {y}")));

    let lake = lake_in(&dir);
    let full_lake = dir.path().join("full").to_string_lossy().into_owned();
    let inbox = Inbox::Local(dir.path().join("inbox"));
    let ingest = |lake: &str| run(lake, &["ingest", &inbox.url(), "--preset", "stackmathqa"]);
    let same_as_a_full_run = |step: &str| {
        ingest(&full_lake);
        let full = dedup(&full_lake, false);
        assert!(full["removed"].as_u64().unwrap() >= 1, "{step}: {full}");
        for sql in ["SELECT id FROM unique ORDER BY id", "SELECT id, cluster_id, kept FROM unique_clusters ORDER BY id"]
        {
            assert_eq!(query(&lake, sql, &[]), query(&full_lake, sql, &[]), "{step}: {sql}");
        }
        let indexed = query(&lake, "SELECT count(*) AS n FROM unique_signatures", &[]);
        let documents = query(&lake, "SELECT count(*) AS n FROM documents", &[]);
        assert_eq!(indexed, documents, "{step}: every document in the index");
    };

    for (i, batch) in batches.iter().enumerate() {
        inbox.put(&format!("batch-{}.jsonl", i + 1), batch);
        ingest(&lake);
        let report = dedup(&lake, true);
        let update = report["update"].as_str().unwrap();
        if i == 0 {
            assert_eq!(update, "rebuilt: `unique` does not exist yet");
        } else {
            assert_eq!(update, format!("appended: the rows `documents` gained from version {i} to {}", i + 1));
            let new = batches[i].lines().count() as u64;
            assert!(report["input_rows"].as_u64().unwrap() <= new, "only the new rows are read: {report}");
            // The near-copies made above, and StackMathQA's own across batches.
            assert!(report["removed"].as_u64().unwrap() >= if i == 1 { 3 } else { 2 }, "{report}");
        }
    }
    same_as_a_full_run("three batches");
    // The earliest copy is the one kept: the first batch's record, in a cluster with a
    // later copy in the same batch (StackMathQA's own) and the two made above.
    let kept = "SELECT regexp_replace(d.input, '^.*/', '') AS object, c.kept FROM unique_clusters c \
                JOIN documents d ON d.id = c.id WHERE c.cluster_id = (SELECT s.cluster_id FROM unique_clusters s \
                JOIN documents t ON t.id = s.id WHERE t.text LIKE '%stuck on this for days%') ORDER BY d.input, d.position";
    let kept: Vec<(String, bool)> = query(&lake, kept, &[])
        .iter()
        .map(|r| (r["object"].as_str().unwrap().to_string(), r["kept"].as_bool().unwrap()))
        .collect();
    let expected =
        [("batch-1.jsonl", true), ("batch-1.jsonl", false), ("batch-2.jsonl", false), ("batch-3.jsonl", false)];
    assert_eq!(kept, expected.map(|(o, k)| (o.to_string(), k)));
    let again = dedup(&lake, true);
    assert_eq!(again["update"], "unchanged: nothing it reads changed");

    // A record close to both records of the first batch that share 100 words joins the
    // earlier one's cluster; the later one, not like the earlier, stays: clusters never
    // merge through a third text, so this is an append, as a full run agrees.
    inbox.put("batch-4.jsonl", &record(shared.clone()));
    ingest(&lake);
    let bridged = dedup(&lake, true);
    assert_eq!(bridged["update"], "appended: the rows `documents` gained from version 3 to 4");
    assert_eq!((bridged["removed"].as_u64(), bridged["output_rows"].as_u64()), (Some(1), Some(0)), "{bridged}");
    let cluster = format!(
        "SELECT regexp_replace(d.input, '^.*/', '') AS object, d.text LIKE '%{x}%' AS first, c.kept \
         FROM unique_clusters c JOIN documents d ON d.id = c.id WHERE c.cluster_id = (SELECT cluster_id \
         FROM unique_clusters s JOIN documents t ON t.id = s.id WHERE t.input LIKE '%batch-4.jsonl') ORDER BY d.input"
    );
    let cluster: Vec<(String, bool, bool)> = query(&lake, &cluster, &[])
        .iter()
        .map(|r| (r["object"].as_str().unwrap().into(), r["first"].as_bool().unwrap(), r["kept"].as_bool().unwrap()))
        .collect();
    let expected = [("batch-1.jsonl".to_string(), true, true), ("batch-4.jsonl".to_string(), false, false)];
    assert_eq!(cluster, expected, "the earlier record keeps, the new one joins it");
    // An object whose name sorts first holds the earliest copy of a later record.
    inbox.put("batch-0.jsonl", &(near_copy(lines[700], hint) + "\n"));
    ingest(&lake);
    let earlier = dedup(&lake, true);
    let reason = earlier["update"].as_str().unwrap();
    assert!(reason.starts_with("rebuilt: a new row (") && reason.contains("batch-0.jsonl line 1"), "{reason}");
    same_as_a_full_run("five batches");
}
