//! All of `../shared/data` through the quick-start job: the counts of SOURCES.md, every
//! record accounted for, text files reassembled byte for byte from their documents.

use std::collections::HashMap;

use crate::common::*;

/// Runs the quick-start job once per test process and returns (lake, stage reports).
pub(crate) fn quickstart() -> &'static (tempfile::TempDir, String, serde_json::Value) {
    static RUN: std::sync::OnceLock<(tempfile::TempDir, String, serde_json::Value)> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake_in(&dir);
        let out = ok(&mut mathlake(&["run", "jobs/quickstart.toml", "--json", "--lake", &lake]));
        (dir, lake, json(&out))
    })
}

fn stage_counts() -> HashMap<String, serde_json::Value> {
    let (_, _, reports) = quickstart();
    reports
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "ingest")
        .map(|r| (r["name"].as_str().unwrap().to_string(), r["summary"].clone()))
        .collect()
}

#[test]
fn every_record_of_the_shared_data_is_accounted_for() {
    let stages = stage_counts();
    // (stage, records read, written, duplicates, quarantined): SOURCES.md's row counts.
    let expected = [
        ("gsm8k", 7473 + 1319, 7473 + 1319, 0, 0),
        ("math", 7500 + 5000, 7500 + 5000, 0, 0),
        ("math500", 500, 500, 0, 0),
        ("stackmathqa", 987, 987, 0, 0),
        // 27 pages have empty text; 9 more repeat another page's text exactly.
        ("cc", 697, 661, 9, 27),
    ];
    for (stage, read, written, duplicates, quarantined) in expected {
        let s = &stages[stage];
        assert_eq!(
            (s["read"].as_u64(), s["written"].as_u64(), s["duplicates"].as_u64(), s["quarantined"].as_u64()),
            (Some(read), Some(written), Some(duplicates), Some(quarantined)),
            "{stage}: {s}"
        );
    }
    assert_eq!(stages["cc"]["reasons"], serde_json::json!({"empty_text": 27}));
    for (stage, s) in &stages {
        let sum =
            s["written"].as_u64().unwrap() + s["duplicates"].as_u64().unwrap() + s["quarantined"].as_u64().unwrap();
        assert_eq!(s["read"].as_u64().unwrap(), sum, "{stage}: read = written + duplicates + quarantined");
    }
    for text_stage in ["hott_book", "whitehead", "wikitext"] {
        assert_eq!(stages[text_stage]["quarantined"], 0, "{text_stage}");
    }
}

#[test]
fn problems_table_has_every_split_and_final_answers() {
    let (_, lake, _) = quickstart();
    let rows = query(
        lake,
        "SELECT source, split, count(*) AS n, count(final_answer) AS answered, count(level) AS levelled \
         FROM problems GROUP BY source, split ORDER BY source, split",
        &[],
    );
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r["source"].as_str().unwrap(), r["split"].as_str().unwrap(), r["n"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("gsm8k", "test", 1319),
            ("gsm8k", "train", 7473),
            ("math", "test", 5000),
            ("math", "train", 7500),
            ("math500", "test", 500)
        ]
    );
    for r in &rows {
        let n = r["n"].as_u64().unwrap();
        let answered = r["answered"].as_u64().unwrap();
        // GSM8K always ends with `#### N`; a handful of MATH solutions box nothing.
        assert!(answered as f64 >= 0.995 * n as f64, "{r}");
    }
    // MATH500 gives its answer as a field: it is taken as given.
    let rows = query(lake, "SELECT final_answer FROM problems WHERE source_id = 'test/precalculus/807.json'", &[]);
    assert_eq!(rows[0]["final_answer"], "\\left( 3, \\frac{\\pi}{2} \\right)");
}

#[test]
fn text_files_reassemble_from_their_documents() {
    let (_, lake, _) = quickstart();
    let cases = [
        ("web/hott_book/basics.tex", false),
        ("web/hott_book/reals.tex", false),
        ("web/whitehead_intro_math.tex", true),
        ("general/wikitext2_test.txt", false),
    ];
    for (file, latin1) in cases {
        let path = shared_data(file);
        let raw = std::fs::read(&path).unwrap();
        let original: String =
            if latin1 { raw.iter().map(|&b| b as char).collect() } else { String::from_utf8(raw).unwrap() };
        let original = original.replace("\r\n", "\n");
        // By the end of the input's URL: ../shared may be a link, and ingest keeps the path
        // as given, not resolved.
        let sql = format!("SELECT text, position FROM documents WHERE input LIKE '%/data/{file}' ORDER BY position");
        let rows = query(lake, &sql, &[]);
        assert!(rows.len() > 1, "{file} is cut into documents");
        let rebuilt: String = rows.iter().map(|r| r["text"].as_str().unwrap()).collect();
        // Only pieces that were nothing but white space are left out.
        let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(squash(&rebuilt), squash(&original), "{file}");
        for r in &rows {
            assert!(r["text"].as_str().unwrap().len() <= 65536, "{file}: a document over the size cap");
        }
        // Positions are the line each document starts on.
        let lines: Vec<&str> = original.lines().collect();
        for r in &rows {
            let line = r["position"].as_u64().unwrap() as usize;
            let first = r["text"].as_str().unwrap().lines().next().unwrap();
            assert_eq!(lines[line - 1], first, "{file}: document at line {line}");
        }
    }
    let articles = query(
        lake,
        "SELECT count(*) AS n, count(*) FILTER (WHERE starts_with(text, ' = ')) AS titled FROM documents WHERE source = 'wikitext'",
        &[],
    );
    // WikiText-2 test has 62 articles; one (American Beauty, 73 kB) is cut at a blank line.
    assert_eq!((articles[0]["n"].as_u64(), articles[0]["titled"].as_u64()), (Some(63), Some(62)));
}

#[test]
fn a_second_run_adds_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let input = shared_data("problems/gsm8k_test.jsonl");
    let input = input.to_str().unwrap();
    ok(&mut mathlake(&["ingest", input, "--preset", "gsm8k", "--lake", &lake]));
    let second = ok(&mut mathlake(&["ingest", input, "--preset", "gsm8k", "--lake", &lake]));
    assert!(second.contains("nothing new: `problems` is unchanged"), "{second}");
    assert!(second.contains("skipped 1 input objects read before and unchanged since"), "{second}");
    assert!(second.contains("read 0 = written 0 + duplicates 0 + quarantined 0"), "{second}");
    // The same records from another object are read, and are duplicates.
    let copy = dir.path().join("gsm8k_copy_test.jsonl");
    std::fs::copy(input, &copy).unwrap();
    let third = ok(&mut mathlake(&["ingest", copy.to_str().unwrap(), "--preset", "gsm8k", "--lake", &lake]));
    assert!(third.contains("read 1,319 = written 0 + duplicates 1,319 + quarantined 0"), "{third}");
    let tables = json(&ok(&mut mathlake(&["tables", "--json", "--lake", &lake])));
    assert_eq!(tables[0]["name"], "problems");
    // The copy is recorded as read (a version with no new file), so a fourth run skips both.
    assert_eq!((tables[0]["version"].as_u64(), tables[0]["rows"].as_u64()), (Some(2), Some(1319)));
}

#[test]
fn parquet_and_compressed_inputs_give_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = shared_data("problems/gsm8k_test.jsonl");
    let text = std::fs::read(&jsonl).unwrap();
    let gz = dir.path().join("gsm8k_test.jsonl.gz");
    let mut encoder = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, &text).unwrap();
    encoder.finish().unwrap();
    let zst = dir.path().join("gsm8k_test.jsonl.zst");
    std::fs::write(&zst, zstd::encode_all(&text[..], 3).unwrap()).unwrap();

    let ids = |lake: &str| -> Vec<serde_json::Value> {
        query(lake, "SELECT id, position, final_answer FROM problems ORDER BY id", &[])
    };
    let reference = lake_in(&dir) + "-jsonl";
    ok(&mut mathlake(&["ingest", jsonl.to_str().unwrap(), "--preset", "gsm8k", "--lake", &reference]));
    for compressed in [&gz, &zst] {
        let lake = format!("{}-{}", lake_in(&dir), compressed.extension().unwrap().to_str().unwrap());
        ok(&mut mathlake(&["ingest", compressed.to_str().unwrap(), "--preset", "gsm8k", "--lake", &lake]));
        assert_eq!(ids(&lake), ids(&reference), "{}", compressed.display());
    }
    // The lake's own Parquet file, read back through a generic mapping.
    let files = json(&ok(&mut mathlake(&["tables", "--json", "--lake", &reference])));
    assert_eq!(files[0]["files"], 1);
    let data = std::fs::read_dir(std::path::Path::new(&reference).join("problems/data"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let lake = lake_in(&dir) + "-parquet";
    let out = ok(&mut mathlake(&[
        "ingest",
        data.to_str().unwrap(),
        "--table",
        "problems",
        "--source",
        "gsm8k",
        "--split",
        "test",
        "--map",
        "question=question",
        "--map",
        "solution=solution",
        "--lake",
        &lake,
        "--json",
    ]));
    assert_eq!(json(&out)["written"], 1319);
    let parquet_ids = query(&lake, "SELECT id FROM problems ORDER BY id", &[]);
    let reference_ids = query(&reference, "SELECT id FROM problems ORDER BY id", &[]);
    assert_eq!(parquet_ids, reference_ids, "same source and text give the same ids");
}
