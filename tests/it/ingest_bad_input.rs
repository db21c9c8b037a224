//! Bad input: every good record written, every bad one quarantined with its reason and
//! line, the counts adding up; too much bad input fails without touching the table; a
//! missing input is an error that names it.

use std::io::Write;

use crate::common::*;

/// Real GSM8K records with bad ones mixed in; returns the file and the bad lines' reasons.
fn corrupted_file(dir: &tempfile::TempDir) -> (std::path::PathBuf, Vec<(u64, &'static str)>, u64) {
    let good: Vec<String> = std::fs::read_to_string(shared_data("problems/gsm8k_train.jsonl"))
        .unwrap()
        .lines()
        .take(40)
        .map(str::to_string)
        .collect();
    let path = dir.path().join("gsm8k_corrupted_train.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    let bad: Vec<(&[u8], &str)> = vec![
        (br#"{"question": "unterminated"#, "malformed_json"),
        (b"{\"question\": \"caf\xe9?\", \"answer\": \"#### 1\"}", "not_utf8"),
        (br#"{"question": 42, "answer": "42"}"#, "wrong_type"),
        (br#"{"question": "Where is the answer?"}"#, "missing_field"),
        (br#"{"question": "   ", "answer": "0"}"#, "empty_text"),
        (br#"["a", "list"]"#, "not_an_object"),
    ];
    let oversize = format!(r#"{{"question": "{}", "answer": "1"}}"#, "x".repeat(200_000));
    let mut reasons = Vec::new();
    let mut line = 0u64;
    let mut good_written = 0;
    for (i, record) in good.iter().enumerate() {
        line += 1;
        writeln!(file, "{record}").unwrap();
        good_written += 1;
        if i % 5 == 4 && i / 5 < bad.len() {
            let (bytes, reason) = bad[i / 5];
            line += 1;
            file.write_all(bytes).unwrap();
            file.write_all(b"\n").unwrap();
            reasons.push((line, reason));
        }
        if i == 30 {
            line += 1;
            writeln!(file, "{oversize}").unwrap();
            reasons.push((line, "record_too_large"));
            line += 1;
            writeln!(file).unwrap(); // a blank line is no record
        }
    }
    (path, reasons, good_written)
}

/// `mathlake ingest` of the corrupted file, the oversize record over the limit.
fn ingest_corrupted(path: &std::path::Path, lake: &str, max_bad_fraction: &str) -> std::process::Command {
    let path = path.to_str().unwrap();
    let args = ["ingest", path, "--preset", "gsm8k", "--lake", lake, "--max-record-bytes", "100000"];
    let mut command = mathlake(&args);
    command.args(["--max-bad-fraction", max_bad_fraction]);
    command
}

#[test]
fn every_bad_record_is_quarantined_with_reason_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let (path, reasons, good) = corrupted_file(&dir);
    let out = ok(ingest_corrupted(&path, &lake, "0.5").arg("--json"));
    let summary = json(&out);
    let bad = reasons.len() as u64;
    assert_eq!(summary["read"], good + bad);
    assert_eq!(summary["written"], good);
    assert_eq!(summary["quarantined"], bad);
    assert_eq!(summary["duplicates"], 0);

    let rows = query(
        &lake,
        "SELECT position, reason, detail, raw_bytes, length(encode(raw, 'hex')) / 2 AS kept, target, source FROM quarantine ORDER BY position",
        &[],
    );
    let got: Vec<(u64, &str)> =
        rows.iter().map(|r| (r["position"].as_u64().unwrap(), r["reason"].as_str().unwrap())).collect();
    assert_eq!(got, reasons);
    for r in &rows {
        assert_eq!((r["target"].as_str(), r["source"].as_str()), (Some("problems"), Some("gsm8k")));
        assert!(!r["detail"].as_str().unwrap().is_empty());
    }
    let oversize = rows.iter().find(|r| r["reason"] == "record_too_large").unwrap();
    assert!(oversize["raw_bytes"].as_u64().unwrap() > 200_000);
    assert_eq!(oversize["kept"], 65536, "the first 64 KiB of an oversize record are kept");
    let missing = rows.iter().find(|r| r["reason"] == "missing_field").unwrap();
    assert!(missing["detail"].as_str().unwrap().contains("`answer`"), "{missing}");

    // The raw bytes of the invalid UTF-8 line are kept exactly.
    let raw = query(&lake, "SELECT encode(raw, 'hex') AS hex FROM quarantine WHERE reason = 'not_utf8'", &[]);
    assert!(raw[0]["hex"].as_str().unwrap().contains("e93f"), "{raw:?}");

    // Good records kept their line numbers.
    let positions = query(&lake, "SELECT min(position) AS first, count(*) AS n FROM problems", &[]);
    assert_eq!((positions[0]["first"].as_u64(), positions[0]["n"].as_u64()), (Some(1), Some(good)));

    // A rerun quarantines the same records again but adds no second quarantine row.
    ok(&mut ingest_corrupted(&path, &lake, "0.5"));
    let count = query(&lake, "SELECT count(*) AS n FROM quarantine", &[]);
    assert_eq!(count[0]["n"], bad);
}

#[test]
fn too_much_bad_input_fails_and_leaves_the_table_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let (path, reasons, _) = corrupted_file(&dir);
    let err = fails(&mut ingest_corrupted(&path, &lake, "0.01"));
    assert!(err.contains("went to quarantine, over --max-bad-fraction 0.01; table `problems` is unchanged"), "{err}");
    assert!(err.contains("hint: see why: mathlake query"), "{err}");
    let tables = json(&ok(&mut mathlake(&["tables", "--json", "--lake", &lake])));
    let names: Vec<_> = tables.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["quarantine"], "the bad records are there to look at; problems was never committed");
    assert_eq!(tables[0]["rows"], reasons.len());
}

#[test]
fn missing_and_unknown_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let err = fails(&mut mathlake(&["ingest", "/no/such/file.jsonl", "--preset", "gsm8k", "--lake", &lake]));
    assert!(err.contains("no input found at `/no/such/file.jsonl`"), "{err}");
    let odd = dir.path().join("notes.csv");
    std::fs::write(&odd, "a,b\n").unwrap();
    let err = fails(&mut mathlake(&["ingest", odd.to_str().unwrap(), "--preset", "gsm8k", "--lake", &lake]));
    assert!(err.contains("cannot tell the format") && err.contains("--format"), "{err}");
    let unnamed = dir.path().join("problems.jsonl");
    std::fs::write(&unnamed, "{}\n").unwrap();
    let err = fails(&mut mathlake(&["ingest", unnamed.to_str().unwrap(), "--preset", "gsm8k", "--lake", &lake]));
    assert!(err.contains("cannot tell the split") && err.contains("--split"), "{err}");
    let err = fails(&mut mathlake(&["ingest", unnamed.to_str().unwrap(), "--preset", "gsm8", "--lake", &lake]));
    assert!(err.contains("did you mean `gsm8k`"), "{err}");
    // A damaged archive stops the run before anything is committed.
    let gz = std::fs::read(shared_data("general/cc_sample_697.jsonl.gz")).unwrap();
    let truncated = dir.path().join("cut.jsonl.gz");
    std::fs::write(&truncated, &gz[..gz.len() / 2]).unwrap();
    let err = fails(&mut mathlake(&["ingest", truncated.to_str().unwrap(), "--preset", "dolma", "--lake", &lake]));
    assert!(err.contains("cut.jsonl.gz") && err.contains("nothing was committed"), "{err}");
    let err = fails(&mut mathlake(&["query", "SELECT * FROM problms", "--lake", &lake]));
    assert!(err.contains("no tables yet"), "{err}");
}

#[test]
fn latin1_text_without_the_flag_is_quarantined_not_garbled() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let input = shared_data("web/whitehead_intro_math.tex");
    let out = ok(&mut mathlake(&[
        "ingest",
        input.to_str().unwrap(),
        "--preset",
        "latex",
        "--lake",
        &lake,
        "--json",
        "--max-bad-fraction",
        "1",
    ]));
    let summary = json(&out);
    assert!(summary["quarantined"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["reasons"].as_object().unwrap().keys().collect::<Vec<_>>(), ["not_utf8"]);
    assert!(summary["examples"][0]["detail"].as_str().unwrap().contains("--encoding latin1"), "{summary}");
}

/// GSM8K rows as a Parquet file with an id, a level and a struct column beside the text,
/// and bad rows among them: a null question, a blank one, an oversize answer.
#[test]
fn bad_parquet_rows_are_quarantined_and_good_ones_match_their_jsonl() {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
    use datafusion::arrow::datatypes::{DataType, Field};

    let dir = tempfile::tempdir().unwrap();
    let records: Vec<serde_json::Value> = std::fs::read_to_string(shared_data("problems/gsm8k_train.jsonl"))
        .unwrap()
        .lines()
        .take(30)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut questions: Vec<Option<String>> =
        records.iter().map(|r| r["question"].as_str().map(str::to_string)).collect();
    let mut answers: Vec<String> = records.iter().map(|r| r["answer"].as_str().unwrap().to_string()).collect();
    questions[4] = None;
    questions[9] = Some("   ".into());
    answers[14] = "x".repeat(200_000);
    let bad = [(5u64, "missing_field"), (10, "empty_text"), (15, "record_too_large")];
    let n = records.len();
    let meta = StructArray::from(vec![
        (
            Arc::new(Field::new("origin", DataType::Utf8, true)),
            Arc::new(StringArray::from(vec!["openai/gsm8k"; n])) as ArrayRef,
        ),
        (
            Arc::new(Field::new("row", DataType::Int64, true)),
            Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
        ),
    ]);
    let batch = RecordBatch::try_from_iter(vec![
        ("question", Arc::new(StringArray::from(questions.clone())) as ArrayRef),
        ("answer", Arc::new(StringArray::from(answers.clone())) as ArrayRef),
        ("n", Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef),
        ("meta", Arc::new(meta) as ArrayRef),
    ])
    .unwrap();
    let parquet = dir.path().join("gsm8k_rows.parquet");
    let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&parquet).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    // The same rows as JSONL, the bad ones left out.
    let jsonl = dir.path().join("gsm8k_rows.jsonl");
    let lines: Vec<String> = (0..n)
        .filter(|i| !bad.iter().any(|(line, _)| *line == *i as u64 + 1))
        .map(|i| {
            serde_json::json!({"question": questions[i], "answer": answers[i], "n": i,
                "meta": {"origin": "openai/gsm8k", "row": i}})
            .to_string()
        })
        .collect();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();

    let ingest = |input: &std::path::Path, lake: &str| {
        let args = ["ingest", input.to_str().unwrap(), "--preset", "gsm8k", "--source", "gsm8k", "--lake", lake];
        let mut command = mathlake(&args);
        command.args(["--split", "train", "--max-record-bytes", "100000", "--max-bad-fraction", "0.5", "--json"]);
        json(&ok(&mut command))
    };
    let lake = lake_in(&dir);
    let summary = ingest(&parquet, &lake);
    assert_eq!((summary["read"].as_u64(), summary["written"].as_u64()), (Some(n as u64), Some((n - 3) as u64)));
    let rows = query(
        &lake,
        "SELECT position, reason, CAST(raw AS VARCHAR) AS raw, raw_bytes FROM quarantine ORDER BY position",
        &[],
    );
    let got: Vec<(u64, &str)> =
        rows.iter().map(|r| (r["position"].as_u64().unwrap(), r["reason"].as_str().unwrap())).collect();
    assert_eq!(got, bad);
    // A quarantined row keeps the row itself, as JSON.
    let raw: serde_json::Value = serde_json::from_str(rows[0]["raw"].as_str().unwrap()).unwrap();
    assert_eq!(raw["answer"], answers[4]);
    assert_eq!(raw["meta"]["row"], 4);
    assert!(raw.get("question").is_none(), "a null is no field: {raw}");
    assert_eq!(rows[2]["raw_bytes"].as_u64().map(|b| b > 200_000), Some(true));

    let reference = lake_in(&dir) + "-jsonl";
    assert_eq!(ingest(&jsonl, &reference)["written"], summary["written"]);
    let sql = "SELECT id, final_answer, metadata FROM problems ORDER BY id";
    let (from_parquet, from_jsonl) = (query(&lake, sql, &[]), query(&reference, sql, &[]));
    assert_eq!(from_parquet, from_jsonl, "same ids, answers and metadata from either format");
    assert!(from_parquet[0]["metadata"].as_str().unwrap().contains(r#""meta":{"origin":"openai/gsm8k""#));
}
