//! Dedup: near-duplicate quality on real documents with controlled random edits at known
//! Jaccard similarity; exact duplicates; the cluster table; bad input.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use crate::common::*;

/// Real documents of ../shared/data with at least `min_words` words, distinct.
fn real_documents(dir: &tempfile::TempDir, min_words: u64) -> Vec<String> {
    let lake = dir.path().join("source-lake").to_string_lossy().into_owned();
    for (file, preset) in [
        ("general/cc_sample_697.jsonl.gz", "dolma"),
        ("web/stackmathqa_987.jsonl", "stackmathqa"),
        ("general/wikitext2_test.txt", "wikitext"),
    ] {
        let path = shared_data(file);
        ok(&mut mathlake(&["ingest", path.to_str().unwrap(), "--preset", preset, "--source", preset, "--lake", &lake]));
    }
    let rows =
        query(&lake, &format!("SELECT text FROM documents WHERE word_count(text) >= {min_words} ORDER BY id"), &[]);
    rows.iter().map(|r| r["text"].as_str().unwrap().to_string()).collect()
}

/// An independent reference: 5-word shingles of lower-cased letter and digit runs.
fn shingles(text: &str) -> HashSet<String> {
    let words: Vec<String> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    words.windows(5).map(|w| w.join(" ")).collect()
}

fn jaccard(a: &HashSet<String>, b: &HashSet<String>) -> f64 {
    let shared = a.intersection(b).count();
    shared as f64 / (a.len() + b.len() - shared) as f64
}

/// A deterministic generator (splitmix64), so the edited corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `text` edited by random word replacements, deletions and insertions: for a `high`
/// target, as many edits as keep the similarity at or above it; else until it is at or
/// below. Returns the edited text and its exact similarity to `text`.
fn edit_to(text: &str, target: f64, high: bool, rng: &mut Rng) -> (String, f64) {
    let original = shingles(text);
    let mut tokens: Vec<String> = text.split_whitespace().map(String::from).collect();
    // Far from the target, edit a few words at a time.
    let step = if high { 1 } else { (tokens.len() / 40).max(1) };
    loop {
        let mut next = tokens.clone();
        for _ in 0..step {
            let at = rng.below(next.len());
            let fresh = format!("zq{}", rng.next() % 1_000_000);
            match rng.below(3) {
                0 => next[at] = fresh,
                1 if next.len() > 10 => {
                    next.remove(at);
                }
                _ => next.insert(at, fresh),
            }
        }
        let similarity = jaccard(&original, &shingles(&next.join(" ")));
        if high && similarity < target {
            let current = jaccard(&original, &shingles(&tokens.join(" ")));
            return (tokens.join(" "), current);
        }
        tokens = next;
        if !high && similarity <= target {
            return (tokens.join(" "), similarity);
        }
    }
}

#[test]
fn near_duplicates_at_known_similarity_merge_and_distinct_texts_do_not() {
    let dir = tempfile::tempdir().unwrap();
    // 150 words or more: one edited word takes 5 of 150 shingles, so every high-similarity
    // variant gets at least one edit.
    let documents = real_documents(&dir, 150);
    let levels = [(0.92, true), (0.88, true), (0.85, true), (0.5, false), (0.4, false), (0.3, false)];
    let per_level = 100;
    assert!(documents.len() >= levels.len() * per_level, "{} real documents", documents.len());

    // One base document per pair, so pairs cannot merge through each other.
    let corpus = dir.path().join("pairs.jsonl");
    let mut file = std::fs::File::create(&corpus).unwrap();
    let mut rng = Rng(2026);
    let mut pairs = Vec::new();
    for (level, &(target, high)) in levels.iter().enumerate() {
        for i in 0..per_level {
            let n = level * per_level + i;
            let base = &documents[n];
            let (variant, similarity) = edit_to(base, target, high, &mut rng);
            assert_ne!(&variant, base);
            writeln!(file, "{}", serde_json::json!({ "key": format!("{n}-base"), "text": base })).unwrap();
            writeln!(file, "{}", serde_json::json!({ "key": format!("{n}-variant"), "text": variant })).unwrap();
            pairs.push((n, similarity));
        }
    }
    drop(file);
    let lake = lake_in(&dir);
    ingest_keyed(&lake, &corpus, "pairs");
    assert_eq!(query(&lake, "SELECT count(*) AS n FROM documents", &[])[0]["n"], 2 * pairs.len());

    // Default settings (verified), then LSH alone.
    for (min_similarity, suffix) in [("0.7", "verified"), ("0", "lsh")] {
        let out = ok(&mut mathlake(&[
            "dedup",
            "--input",
            "documents",
            "--to",
            &format!("unique_{suffix}"),
            "--clusters",
            &format!("clusters_{suffix}"),
            "--min-similarity",
            min_similarity,
            "--lake",
            &lake,
            "--json",
        ]));
        let report = json(&out)["dedup"].clone();
        let rows = query(
            &lake,
            &format!(
                "SELECT d.source_id AS key, c.cluster_id FROM documents d LEFT JOIN clusters_{suffix} c ON c.id = d.id"
            ),
            &[],
        );
        let cluster: HashMap<String, Option<String>> = rows
            .iter()
            .map(|r| (r["key"].as_str().unwrap().to_string(), r["cluster_id"].as_str().map(String::from)))
            .collect();
        let merged = |n: usize| {
            let (base, variant) = (&cluster[&format!("{n}-base")], &cluster[&format!("{n}-variant")]);
            base.is_some() && base == variant
        };
        let high: Vec<bool> = pairs.iter().filter(|(_, s)| *s >= 0.85).map(|&(n, _)| merged(n)).collect();
        let low: Vec<bool> = pairs.iter().filter(|(_, s)| *s <= 0.5).map(|&(n, _)| merged(n)).collect();
        let recall = high.iter().filter(|m| **m).count() as f64 / high.len() as f64;
        let false_merges = low.iter().filter(|m| **m).count() as f64 / low.len() as f64;
        eprintln!(
            "dedup {suffix}: recall {recall:.3} over {} pairs at J >= 0.85; false merges {false_merges:.3} over {} pairs at J <= 0.5; report {report}",
            high.len(),
            low.len()
        );
        assert!(high.len() >= 250 && low.len() >= 250, "{} high, {} low pairs", high.len(), low.len());
        assert!(recall >= 0.95, "{suffix}: recall {recall}");
        if suffix == "verified" {
            assert!(false_merges <= 0.01, "{suffix}: false merges {false_merges}");
        }

        // The output is the input minus every cluster member that is not kept, and each
        // cluster keeps exactly its earliest member: the one on the first line.
        let input = report["input_rows"].as_u64().unwrap();
        let removed = query(&lake, &format!("SELECT count(*) AS n FROM clusters_{suffix} WHERE NOT kept"), &[]);
        assert_eq!(report["output_rows"].as_u64().unwrap(), input - removed[0]["n"].as_u64().unwrap());
        let bad_clusters = query(
            &lake,
            &format!(
                "SELECT c.cluster_id FROM clusters_{suffix} c JOIN documents d ON d.id = c.id
                 JOIN documents k ON k.id = c.cluster_id GROUP BY c.cluster_id, k.position
                 HAVING sum(CASE WHEN c.kept THEN 1 ELSE 0 END) <> 1 OR min(d.position) <> k.position"
            ),
            &[],
        );
        assert!(bad_clusters.is_empty(), "{bad_clusters:?}");
        let lost = query(
            &lake,
            &format!(
                "SELECT count(*) AS n FROM documents d WHERE d.id NOT IN (SELECT id FROM unique_{suffix})
                 AND d.id NOT IN (SELECT id FROM clusters_{suffix} WHERE NOT kept)"
            ),
            &[],
        );
        assert_eq!(lost[0]["n"], 0, "every missing row is a removed duplicate");
    }

    // Under a tiny memory limit the keys and the signatures come back in several slices
    // each (keys: 15 rows a document at 24 bytes against 32 KB): the clusters are the
    // same, row for row.
    ok(&mut mathlake(&[
        "dedup",
        "--input",
        "documents",
        "--to",
        "unique_sliced",
        "--clusters",
        "clusters_sliced",
        "--memory-limit",
        "64K",
        "--lake",
        &lake,
    ]));
    let rows = |table: &str| query(&lake, &format!("SELECT id, cluster_id, kept FROM {table} ORDER BY id"), &[]);
    let (whole, sliced) = (rows("clusters_verified"), rows("clusters_sliced"));
    assert!(whole.len() > 500, "{} cluster rows", whole.len());
    assert_eq!(whole, sliced);
    let count = |table: &str| query(&lake, &format!("SELECT count(*) AS n FROM {table}"), &[])[0]["n"].clone();
    assert_eq!(count("unique_verified"), count("unique_sliced"));
}

#[test]
fn exact_duplicates_ignore_spacing_and_bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let documents = real_documents(&dir, 50);
    let lake = lake_in(&dir);
    // Each kind of copy under its own source: ids include the source, so ingest keeps them.
    for kind in ["original", "respaced", "lower"] {
        let path = dir.path().join(format!("{kind}.jsonl"));
        let mut file = std::fs::File::create(&path).unwrap();
        for (i, text) in documents.iter().take(30).enumerate() {
            let copy = match kind {
                "original" => text.clone(),
                "respaced" => text.replace(' ', "  \n"),
                _ => text.to_lowercase(),
            };
            writeln!(file, "{}", serde_json::json!({ "key": format!("{i}-{kind}"), "text": copy })).unwrap();
        }
        drop(file);
        ingest_keyed(&lake, &path, kind);
    }
    let cluster_of = |table: &str| -> HashMap<String, Option<String>> {
        let sql =
            format!("SELECT d.source_id AS key, c.cluster_id FROM documents d LEFT JOIN {table} c ON c.id = d.id");
        query(&lake, &sql, &[])
            .iter()
            .map(|r| (r["key"].as_str().unwrap().to_string(), r["cluster_id"].as_str().map(String::from)))
            .collect()
    };

    // Exact only: normalize_text keeps case, so a lower-cased copy stays unless it equals
    // its original.
    let out = ok(&mut mathlake(&[
        "dedup",
        "--input",
        "documents",
        "--to",
        "exact",
        "--clusters",
        "exact_clusters",
        "--exact-only",
        "--lake",
        &lake,
        "--json",
    ]));
    let exact = json(&out)["dedup"].clone();
    let distinct =
        query(&lake, "SELECT count(DISTINCT normalize_text(text)) AS n FROM documents", &[])[0]["n"].as_u64().unwrap();
    assert_eq!(exact["input_rows"], 90);
    assert_eq!(exact["output_rows"].as_u64().unwrap(), distinct);
    let clusters = cluster_of("exact_clusters");
    let mut lower_apart = 0;
    for (i, text) in documents.iter().take(30).enumerate() {
        let original = &clusters[&format!("{i}-original")];
        assert!(original.is_some() && *original == clusters[&format!("{i}-respaced")], "{i}");
        if *text != text.to_lowercase() && *original != clusters[&format!("{i}-lower")] {
            lower_apart += 1;
        }
    }
    assert!(lower_apart >= 25, "{lower_apart} lower-cased copies kept apart");

    // Near dedup: a lower-cased copy has the same words, so it joins its original.
    let out = ok(&mut mathlake(&[
        "dedup",
        "--input",
        "documents",
        "--to",
        "near",
        "--clusters",
        "near_clusters",
        "--lake",
        &lake,
        "--json",
    ]));
    let near = json(&out)["dedup"].clone();
    let clusters = cluster_of("near_clusters");
    for i in 0..30 {
        let original = &clusters[&format!("{i}-original")];
        assert!(original.is_some(), "{i}");
        assert_eq!(*original, clusters[&format!("{i}-respaced")], "{i}");
        assert_eq!(*original, clusters[&format!("{i}-lower")], "{i}");
    }
    assert!(near["output_rows"].as_u64().unwrap() <= 30);

    // A table written with NULL texts: those rows pass through, never merged.
    let sql = dir.path().join("nulls.sql");
    std::fs::write(
        &sql,
        "COPY (SELECT id, CASE WHEN source_id LIKE '1%' THEN NULL ELSE text END AS text FROM documents) TO 'with_nulls';",
    )
    .unwrap();
    ok(&mut mathlake(&["sql", sql.to_str().unwrap(), "--lake", &lake]));
    let out = ok(&mut mathlake(&["dedup", "--input", "with_nulls", "--to", "no_nulls", "--lake", &lake, "--json"]));
    let nulls = query(&lake, "SELECT count(*) AS n FROM no_nulls WHERE text IS NULL", &[])[0]["n"].as_u64().unwrap();
    let input_nulls =
        query(&lake, "SELECT count(*) AS n FROM with_nulls WHERE text IS NULL", &[])[0]["n"].as_u64().unwrap();
    assert!(input_nulls > 0);
    assert_eq!(nulls, input_nulls, "{out}");

    // Bad input: clear errors, and nothing written.
    let missing = fails(&mut mathlake(&["dedup", "--input", "nowhere", "--to", "x", "--lake", &lake]));
    assert!(missing.contains("`nowhere` is neither a table"), "{missing}");
    let column =
        fails(&mut mathlake(&["dedup", "--input", "documents", "--to", "x", "--column", "body", "--lake", &lake]));
    assert!(column.contains("has no column `body`") && column.contains("text"), "{column}");
    let bands = fails(&mut mathlake(&["dedup", "--input", "documents", "--to", "x", "--bands", "0", "--lake", &lake]));
    assert!(bands.contains("bands x rows"), "{bands}");
    let target = fails(&mut mathlake(&["dedup", "--input", "documents", "--to", "some/folder/", "--lake", &lake]));
    assert!(target.contains("cannot write to `some/folder/`"), "{target}");
    let similarity =
        fails(&mut mathlake(&["dedup", "--input", "documents", "--to", "x", "--min-similarity", "2", "--lake", &lake]));
    assert!(similarity.contains("min similarity must be 0 to 1"), "{similarity}");
    assert!(
        query(&lake, "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'x'", &[])[0]["n"] == 0
    );
}
