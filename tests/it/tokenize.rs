//! Tokenize: every record of ../shared/data round-trips through GPT-2's tokenizer; the
//! SFT loss mask on real GSM8K; a trained BPE; the same output on any thread count; bad
//! input.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::UInt32Type;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use mathlake::tokenize::{Encoder, Engine};

use crate::common::*;
use crate::ingest_shared_data::quickstart;

fn gpt2_path() -> String {
    shared_data("tokenizers/gpt2.json").to_string_lossy().into_owned()
}

fn gpt2() -> Encoder {
    let path = gpt2_path();
    Encoder::from_bytes(&path, &std::fs::read(&path).unwrap(), None, Engine::Auto).unwrap()
}

fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap().map(Result::unwrap).collect()
}

/// A tokenized row: tokens, how many are prompt, token count.
struct Row {
    tokens: Vec<u32>,
    prompt: usize,
    count: i64,
}

fn tokenized(path: &Path) -> HashMap<String, Row> {
    let mut rows = HashMap::new();
    for batch in read_parquet(path) {
        let ids = batch.column_by_name("id").unwrap().as_string::<i32>().clone();
        let tokens = batch.column_by_name("tokens").unwrap().as_list::<i32>().clone();
        let int64 = |name: &str| {
            batch.column_by_name(name).unwrap().as_primitive::<datafusion::arrow::datatypes::Int64Type>().clone()
        };
        let (prompts, counts) = (int64("prompt_tokens"), int64("token_count"));
        for i in 0..batch.num_rows() {
            let row = Row {
                tokens: tokens.value(i).as_primitive::<UInt32Type>().values().to_vec(),
                prompt: usize::try_from(prompts.value(i)).unwrap(),
                count: counts.value(i),
            };
            rows.insert(ids.value(i).to_string(), row);
        }
    }
    rows
}

/// Columns of a lake query, written to Parquet by `mathlake sql` and read back as strings.
fn export(lake: &str, dir: &Path, name: &str, select: &str) -> Vec<HashMap<String, Option<String>>> {
    let out = dir.join(format!("{name}.parquet"));
    let script = dir.join(format!("{name}.sql"));
    std::fs::write(&script, format!("COPY ({select}) TO '{}';\n", out.display())).unwrap();
    ok(&mut mathlake(&["sql", script.to_str().unwrap(), "--lake", lake]));
    let mut rows = Vec::new();
    for batch in read_parquet(&out) {
        for i in 0..batch.num_rows() {
            let row = batch
                .schema()
                .fields()
                .iter()
                .enumerate()
                .map(|(c, field)| {
                    let column = datafusion::arrow::compute::cast(
                        batch.column(c),
                        &datafusion::arrow::datatypes::DataType::Utf8,
                    )
                    .unwrap();
                    let column = column.as_string::<i32>();
                    (field.name().clone(), column.is_valid(i).then(|| column.value(i).to_string()))
                })
                .collect();
            rows.push(row);
        }
    }
    rows
}

fn tokenize(lake: &str, args: &[&str]) -> serde_json::Value {
    let out = ok(&mut mathlake(&[&["tokenize", "--json", "--lake", lake], args].concat()));
    json(&out)["tokenize"].clone()
}

#[test]
fn every_document_and_problem_of_the_shared_data_round_trips() {
    let (_, lake, _) = quickstart();
    let dir = tempfile::tempdir().unwrap();
    let encoder = gpt2();
    let eos = encoder.info.eos_id;

    let out = dir.path().join("documents_tokens.parquet");
    let report = tokenize(lake, &["--input", "documents", "--tokenizer", &gpt2_path(), "--to", out.to_str().unwrap()]);
    let documents = export(lake, dir.path(), "documents", "SELECT id, text FROM documents");
    assert_eq!(report["template"]["response"], "{text}");
    assert_eq!(report["input_rows"].as_u64(), Some(documents.len() as u64));
    assert_eq!(report["skipped_null"], 0);
    let tokens = tokenized(&out);
    assert_eq!(tokens.len(), documents.len());
    let mut total = 0;
    for doc in &documents {
        let (id, text) = (doc["id"].as_deref().unwrap(), doc["text"].as_deref().unwrap());
        let row = &tokens[id];
        assert_eq!(row.count as usize, row.tokens.len());
        assert_eq!(row.tokens.last(), Some(&eos), "{id} ends with EOS");
        assert_eq!(row.prompt, 0, "{id}: documents train on every token");
        assert_eq!(encoder.decode(&row.tokens[..row.tokens.len() - 1]).unwrap(), text, "{id} round-trips");
        total += row.tokens.len() as u64;
    }
    assert_eq!(report["tokens"].as_u64(), Some(total));
    assert_eq!(report["loss_tokens"].as_u64(), Some(total));

    // Problems: the problem layout, prompt out of the loss. Every problem has a question
    // and a solution, so none is skipped.
    let out = dir.path().join("problem_tokens.parquet");
    let report = tokenize(
        lake,
        &["--input", "problems", "--tokenizer", &gpt2_path(), "--to", out.to_str().unwrap(), "--keep", "split"],
    );
    let problems = export(lake, dir.path(), "problems", "SELECT id, source, question, solution FROM problems");
    assert_eq!(report["template"]["prompt"], "Question: {question}\nAnswer:");
    assert_eq!(
        (report["input_rows"].as_u64(), report["skipped_null"].as_u64()),
        (Some(problems.len() as u64), Some(0))
    );
    let tokens = tokenized(&out);
    let mut gsm8k = 0;
    for problem in &problems {
        let id = problem["id"].as_deref().unwrap();
        let (question, solution) = (problem["question"].as_deref().unwrap(), problem["solution"].as_deref().unwrap());
        let row = &tokens[id];
        let prompt_len = row.prompt;
        assert_eq!(
            encoder.decode(&row.tokens[..prompt_len]).unwrap(),
            format!("Question: {question}\nAnswer:"),
            "{id}"
        );
        assert_eq!(
            encoder.decode(&row.tokens[prompt_len..]).unwrap(),
            format!(" {solution}<|endoftext|>"),
            "{id}: every response token and EOS are in the loss"
        );
        gsm8k += usize::from(problem["source"].as_deref() == Some("gsm8k"));
    }
    assert_eq!(gsm8k, 7473 + 1319);
    let masked: u64 = tokens.values().map(|r| (r.tokens.len() - r.prompt) as u64).sum();
    assert_eq!(report["loss_tokens"].as_u64(), Some(masked));
}

#[test]
fn output_is_the_same_on_one_and_two_threads() {
    let (_, lake, _) = quickstart();
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("t{threads}.parquet"));
        let args = ["--input", "math_documents", "--tokenizer", &gpt2_path(), "--to", out.to_str().unwrap()];
        ok(&mut mathlake(&[&["tokenize", "--lake", lake, "--threads", threads], &args[..]].concat()));
        outputs.push(std::fs::read(&out).unwrap());
    }
    assert!(outputs[0].len() > 100_000);
    assert!(outputs[0] == outputs[1], "the same bytes on 1 and 2 threads");
}

#[test]
fn a_trained_bpe_tokenizes_and_round_trips() {
    let (_, lake, _) = quickstart();
    let dir = tempfile::tempdir().unwrap();
    let tokenizer = dir.path().join("tok/bpe.json");
    let out = ok(&mut mathlake(&[
        "tokenizer",
        "train",
        "--json",
        "--lake",
        lake,
        "--input",
        "SELECT text FROM documents WHERE source = 'stackmathqa'",
        "--vocab-size",
        "2000",
        "--to",
        tokenizer.to_str().unwrap(),
    ]));
    let report = json(&out);
    assert_eq!((report["texts"].as_u64(), report["tokenizer"]["vocab_size"].as_u64()), (Some(987), Some(2000)));
    let encoder = Encoder::from_bytes("bpe", &std::fs::read(&tokenizer).unwrap(), None, Engine::Auto).unwrap();
    assert_eq!(encoder.info.eos, "<|endoftext|>");

    let to = dir.path().join("t.parquet");
    let report = tokenize(
        lake,
        &["--input", "math_documents", "--tokenizer", tokenizer.to_str().unwrap(), "--to", to.to_str().unwrap()],
    );
    let texts = export(lake, dir.path(), "math", "SELECT id, text FROM math_documents");
    let tokens = tokenized(&to);
    for doc in &texts {
        let row = &tokens[doc["id"].as_deref().unwrap()];
        assert!(row.tokens.iter().all(|&t| t < 2000));
        assert_eq!(encoder.decode(&row.tokens[..row.tokens.len() - 1]).unwrap(), doc["text"].as_deref().unwrap());
    }
    // A 2,000-token vocabulary learnt on math text needs fewer tokens than bytes.
    assert!(report["tokens"].as_u64().unwrap() * 2 < report["text_bytes"].as_u64().unwrap(), "{report}");
}

#[test]
fn bad_input_fails_clearly_and_null_rows_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let rows = dir.path().join("rows.parquet");
    let script = dir.path().join("rows.sql");
    std::fs::write(
        &script,
        format!(
            "COPY (SELECT * FROM (VALUES ('a', 'one two'), ('b', NULL), ('c', 'three')) AS t(id, text)) TO '{}';\n",
            rows.display()
        ),
    )
    .unwrap();
    ok(&mut mathlake(&["sql", script.to_str().unwrap(), "--lake", &lake]));
    let rows = rows.to_str().unwrap();

    let report = tokenize(&lake, &["--input", rows, "--tokenizer", &gpt2_path(), "--to", "tokens"]);
    assert_eq!((report["input_rows"].as_u64(), report["output_rows"].as_u64()), (Some(3), Some(2)));
    assert_eq!(report["skipped_null"], 1);
    let sources = query(&lake, "SELECT DISTINCT source FROM tokens", &[]);
    assert_eq!(sources[0]["source"], rows, "without a source column, rows are named by the input");

    // `--where` tokenizes only the rows it keeps; a condition on a missing column says so.
    let report =
        tokenize(&lake, &["--input", rows, "--where", "id <> 'c'", "--tokenizer", &gpt2_path(), "--to", "kept"]);
    assert_eq!((report["input_rows"].as_u64(), report["output_rows"].as_u64()), (Some(2), Some(1)));
    let kept = query(&lake, "SELECT id FROM kept", &[]);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["id"], "a");
    let err = fails(&mut mathlake(&[
        "tokenize",
        "--lake",
        &lake,
        "--input",
        rows,
        "--where",
        "status = 'accepted'",
        "--tokenizer",
        &gpt2_path(),
        "--to",
        "t",
    ]));
    assert!(err.contains("cannot select rows of") && err.contains("status"), "{err}");

    // A file the fast encoder does not support: `auto` encodes with Hugging Face
    // tokenizers, and says so and why, on stderr and in the JSON report.
    let mut lowercase: serde_json::Value = serde_json::from_slice(&std::fs::read(gpt2_path()).unwrap()).unwrap();
    lowercase["normalizer"] = serde_json::json!({ "type": "Lowercase" });
    let lowercase_path = dir.path().join("lowercase.json");
    std::fs::write(&lowercase_path, serde_json::to_vec(&lowercase).unwrap()).unwrap();
    let lowercase = lowercase_path.to_str().unwrap();
    let output = mathlake(&["tokenize", "--lake", &lake, "--input", rows, "--tokenizer", lowercase, "--to", "lower"])
        .output()
        .unwrap();
    assert_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let note = format!("note: the fast encoder cannot encode with {lowercase}: its normalizer is");
    assert!(stderr.contains(&note) && stderr.contains("Hugging Face tokenizers encoded instead"), "{stderr}");
    let report = tokenize(&lake, &["--input", rows, "--tokenizer", lowercase, "--to", "lower_json"]);
    assert_eq!(report["encoder"], "hf");
    assert!(report["encoder_fallback"].as_str().unwrap().starts_with("its normalizer is"), "{report}");
    let report = tokenize(&lake, &["--input", rows, "--tokenizer", &gpt2_path(), "--to", "fast"]);
    assert_eq!(
        (&report["encoder"], &report["encoder_fallback"]),
        (&serde_json::json!("fast"), &serde_json::Value::Null)
    );

    // (tokenizer, more flags, what the error says)
    let not_json = dir.path().join("bad.json");
    std::fs::write(&not_json, "{\"model\": 3}").unwrap();
    let gpt2 = gpt2_path();
    let cases: [(&str, &[&str], &str); 5] = [
        ("nope.json", &[], "nope.json"),
        (not_json.to_str().unwrap(), &[], "not a tokenizer.json"),
        (&gpt2, &["--eos", "</s>"], "`</s>` is not in the vocabulary"),
        (&gpt2, &["--template", "problem"], "no column `question`"),
        (&gpt2, &["--response", "{text"], "not a column placeholder"),
    ];
    for (tokenizer, flags, says) in cases {
        let args =
            [&["tokenize", "--lake", &lake, "--input", rows, "--to", "t", "--tokenizer", tokenizer], flags].concat();
        let err = fails(&mut mathlake(&args));
        assert!(err.contains(says), "{flags:?}: {err}");
    }
    let err = fails(&mut mathlake(&[
        "tokenizer",
        "train",
        "--lake",
        &lake,
        "--input",
        rows,
        "--vocab-size",
        "100",
        "--to",
        dir.path().join("x.json").to_str().unwrap(),
    ]));
    assert!(err.contains("at least 257"), "{err}");
}
