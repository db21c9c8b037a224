//! `mathlake inspect` on a table name, a table URL and a plain Parquet file.

use crate::common::*;

#[test]
fn inspect_shows_schema_counts_and_rows() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let input = shared_data("problems/math500_test.jsonl");
    ok(&mut mathlake(&["ingest", input.to_str().unwrap(), "--preset", "math500", "--lake", &lake]));
    let by_name = ok(&mut mathlake(&["inspect", "problems", "--lake", &lake, "--rows", "3"]));
    assert!(by_name.contains("version 1, 500 rows in 1 files"), "{by_name}");
    assert!(
        by_name.contains("final_answer") && by_name.contains("first 3 rows") && by_name.contains("(3 rows)"),
        "{by_name}"
    );
    let table_url = format!("{lake}/problems");
    let by_url = json(&ok(&mut mathlake(&["inspect", &table_url, "--json", "--lake", &lake])));
    assert_eq!((by_url["rows"].as_u64(), by_url["version"].as_u64()), (Some(500), Some(1)));
    let data = std::fs::read_dir(format!("{lake}/problems/data")).unwrap().next().unwrap().unwrap().path();
    let by_file = json(&ok(&mut mathlake(&["inspect", data.to_str().unwrap(), "--json", "--lake", &lake])));
    assert_eq!(by_file["rows"], 500);
    let err = fails(&mut mathlake(&["inspect", "nothing_here", "--lake", &lake]));
    assert!(err.contains("neither a table") && err.contains("mathlake tables"), "{err}");
}
