//! Shards: the study's four arms realise their mixtures; builds are byte-identical; SFT
//! packs whole examples with the prompt out of the loss; the loader resumes exactly and
//! splits ranks; pyarrow and `mathlake query` read the shards; bad input fails clearly.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use mathlake::shards::loader::{Loader, LoaderOptions, ShardSet, Split};
use mathlake::shards::manifest::Manifest;
use mathlake::tokenize::{Encoder, Engine};

use crate::common::*;
use crate::ingest_shared_data::quickstart;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn build(lake: &str, mixture: &Path, to: &Path) -> Manifest {
    build_with(lake, mixture, to, &[])
}

fn build_with(lake: &str, mixture: &Path, to: &Path, flags: &[&str]) -> Manifest {
    let mut args = vec![
        "shards",
        "build",
        "--json",
        "--lake",
        lake,
        "--mixture",
        mixture.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ];
    args.extend(flags);
    let out = ok(&mut mathlake(&args));
    serde_json::from_value(json(&out)["shards"]["manifest"].clone()).unwrap()
}

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Per source, the real tokens of every row of a split, from the shards themselves.
fn tokens_per_source(set: &ShardSet, split: Split) -> Vec<u64> {
    let rt = runtime();
    let mut counts = vec![0u64; set.manifest.sources.len()];
    for index in 0..set.shards(split).len() {
        let shard = rt.block_on(set.read(split, index)).unwrap();
        for r in 0..shard.rows() {
            let (_, mask) = shard.row(r);
            let starts = &shard.doc_starts[r];
            for (k, &start) in starts.iter().enumerate() {
                let end = starts.get(k + 1).map_or(mask.len(), |&e| e as usize);
                // CPT: every real token is in the loss, padding never.
                let real = mask[start as usize..end].iter().filter(|m| **m).count();
                counts[shard.doc_sources[r][k] as usize] += real as u64;
            }
        }
    }
    counts
}

#[test]
fn the_four_arms_realise_their_mixtures() {
    let (_, lake, _) = quickstart();
    let dir = tempfile::tempdir().unwrap();
    let tokenizer = std::fs::read(Path::new(lake).join("tokenizers/bpe-8k.json")).unwrap();
    let encoder = Encoder::from_bytes("bpe", &tokenizer, None, Engine::Auto).unwrap();
    // (arm, web math : problems within the math share)
    for (arm, web, problems) in [("base1", 1.0, 0.0), ("test1", 0.7, 0.3), ("test2", 0.5, 0.5), ("test3", 0.3, 0.7)] {
        let to = dir.path().join(arm);
        let manifest = build(lake, &repo(&format!("jobs/experiments/rq1/{arm}.toml")), &to);
        assert_eq!((manifest.row_tokens, manifest.token_width), (513, 2), "{arm}");
        assert_eq!(manifest.tokenizer.hash, encoder.info.hash, "{arm}: the manifest names the tokenizer");
        // Each weight's share is rounded to a whole token.
        let total: u64 = manifest.sources.iter().map(|s| s.train.emitted_tokens).sum();
        assert!(total.abs_diff(163_840) < manifest.sources.len() as u64, "{arm}: {total}");
        let share = |name: &str| {
            manifest
                .sources
                .iter()
                .find(|s| s.name == name)
                .map_or(0.0, |s| s.train.emitted_tokens as f64 / total as f64)
        };
        for (name, wanted) in [("general", 0.77), ("web_math", 0.23 * web), ("problems", 0.23 * problems)] {
            assert!(
                (share(name) - wanted).abs() <= 0.005 * wanted.max(1e-9),
                "{arm}: {name} {} vs {wanted}",
                share(name)
            );
        }
        for source in &manifest.sources {
            assert_eq!(source.train.emitted_tokens, source.train.requested_tokens, "{arm}: CPT meets budgets exactly");
            assert!(source.validation.emitted_tokens > 0, "{arm}: {} has validation tokens", source.name);
        }
        // The shards hold what the manifest says, checksums and all.
        let set = runtime().block_on(ShardSet::open(to.to_str().unwrap())).unwrap();
        let counted = tokens_per_source(&set, Split::Train);
        let emitted: Vec<u64> = manifest.sources.iter().map(|s| s.train.emitted_tokens).collect();
        assert_eq!(counted, emitted, "{arm}");
        assert_eq!(manifest.train.rows, total.div_ceil(513), "{arm}: only the last row is padded");
    }
}

#[test]
fn the_same_inputs_and_seed_give_byte_identical_shards() {
    let (_, lake, _) = quickstart();
    let dir = tempfile::tempdir().unwrap();
    let mixture = repo("jobs/experiments/rq1/test2.toml");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let first = build(lake, &mixture, &a);
    // Under a 4M limit a spill bucket holds 2 MiB, and the arm's pieces (5 bytes a token,
    // about 2.9 MB) take two of them instead of one.
    build_with(lake, &mixture, &b, &["--memory-limit", "4M"]);
    for file in first
        .train
        .shards
        .iter()
        .chain(&first.validation.shards)
        .map(|s| &s.path)
        .chain(&["manifest.json".to_string(), "records.parquet".to_string()])
    {
        assert!(std::fs::read(a.join(file)).unwrap() == std::fs::read(b.join(file)).unwrap(), "{file} differs");
    }
    let reseeded = dir.path().join("seed2.toml");
    std::fs::write(&reseeded, std::fs::read_to_string(&mixture).unwrap().replace("seed = 1", "seed = 2")).unwrap();
    let other = build(lake, &reseeded, &dir.path().join("c"));
    assert_ne!(other.train.shards[0].xxh3_128, first.train.shards[0].xxh3_128, "another seed, another order");
}

#[test]
fn sft_packs_whole_gsm8k_examples_with_the_prompt_out_of_the_loss() {
    let (_, lake, _) = quickstart();
    let dir = tempfile::tempdir().unwrap();
    let mixture = dir.path().join("sft.toml");
    std::fs::write(
        &mixture,
        "name = \"sft_gsm8k\"\nmode = \"sft\"\nsequence_length = 512\n\n[[source]]\nname = \"gsm8k\"\n\
         input = \"problem_tokens\"\nwhere = \"source = 'gsm8k'\"\ntokens = 200_000\n",
    )
    .unwrap();
    let to = dir.path().join("sft");
    let manifest = build(lake, &mixture, &to);
    let source = &manifest.sources[0];
    assert!(source.train.emitted_tokens <= 200_000 && source.train.emitted_tokens > 199_000, "{source:?}");
    assert_eq!(source.train.too_long_records, 0, "GSM8K examples fit 513 tokens");

    let tokenizer = std::fs::read(Path::new(lake).join("tokenizers/bpe-8k.json")).unwrap();
    let encoder = Encoder::from_bytes("bpe", &tokenizer, None, Engine::Auto).unwrap();
    let set = runtime().block_on(ShardSet::open(to.to_str().unwrap())).unwrap();
    let shard = runtime().block_on(set.read(Split::Train, 0)).unwrap();
    let (mut examples, mut real) = (0, 0);
    for r in 0..shard.rows() {
        let (tokens, mask) = shard.row(r);
        let starts = &shard.doc_starts[r];
        for (k, &start) in starts.iter().enumerate() {
            let end = starts.get(k + 1).map_or(tokens.len(), |&e| e as usize);
            let (tokens, mask) = (&tokens[start as usize..end], &mask[start as usize..end]);
            let eos = tokens.iter().position(|&t| t == encoder.info.eos_id).expect("an example ends with EOS");
            let prompt = mask.iter().take_while(|m| !**m).count();
            let text = encoder.decode(&tokens[..prompt]).unwrap();
            assert!(text.starts_with("Question: ") && text.ends_with("\nAnswer:"), "row {r}: prompt {text:?}");
            assert!(mask[prompt..=eos].iter().all(|m| *m), "row {r}: every response token and EOS in the loss");
            assert!(mask[eos + 1..].iter().all(|m| !*m), "row {r}: padding out of the loss");
            let response = encoder.decode(&tokens[prompt..eos]).unwrap();
            assert!(response.contains("####"), "row {r}: a whole GSM8K solution, never cut: {response:?}");
            examples += 1;
            real += eos + 1;
        }
    }
    assert!(examples > shard.rows(), "best-fit puts several examples in a row");
    let shown = ok(&mut mathlake(&["shards", "inspect", to.to_str().unwrap(), "--rows", "1", "--max-width", "0"]));
    assert!(shown.contains("gsm8k") && shown.contains("100.00%"), "{shown}");
    assert!(shown.contains("‖ gsm8k ‖⟦Question: ") && shown.contains("\nAnswer:⟧ "), "{shown}");
    assert!(real as f64 / (shard.rows() * 513) as f64 > 0.9, "best-fit fills rows: {real} of {}", shard.rows() * 513);
}

fn loader(set: &ShardSet, rank: usize, world: usize, start: u64) -> Loader {
    let options = LoaderOptions { split: Split::Train, batch_size: 4, seed: 9, rank, world, start, prefetch: 2 };
    Loader::new(set.clone(), options).unwrap()
}

#[test]
fn the_loader_resumes_exactly_and_ranks_split_the_epoch() {
    let (_, lake, _) = quickstart();
    let dir = tempfile::tempdir().unwrap();
    // Small shards, so batches cross shard and epoch boundaries.
    let mixture = dir.path().join("m.toml");
    let text = std::fs::read_to_string(repo("jobs/experiments/rq1/test1.toml")).unwrap();
    std::fs::write(
        &mixture,
        text.replace("validation_fraction = 0.05", "validation_fraction = 0.05\nmax_shard_bytes = \"16K\""),
    )
    .unwrap();
    let to = dir.path().join("s");
    let manifest = build(lake, &mixture, &to);
    assert!(manifest.train.shards.len() > 10, "{} shards", manifest.train.shards.len());
    let rt = runtime();
    let set = rt.block_on(ShardSet::open(to.to_str().unwrap())).unwrap();
    let rows = set.rows(Split::Train);

    rt.block_on(async {
        // 320 batches of 4 pass the end of the first epoch (1,170 rows).
        let mut whole = loader(&set, 0, 1, 0);
        let mut straight = Vec::new();
        for _ in 0..320 {
            straight.push(whole.next_batch().await.unwrap());
        }
        assert!(straight.last().unwrap().epoch >= 1);
        let mut first = loader(&set, 0, 1, 0);
        for expected in &straight[..137] {
            assert_eq!(&first.next_batch().await.unwrap(), expected, "the order is a function of the seed");
        }
        let counter = straight[136].next_sample;
        let mut resumed = loader(&set, 0, 1, counter);
        for expected in &straight[137..] {
            assert_eq!(&resumed.next_batch().await.unwrap(), expected, "a resumed loader gives the same batches");
        }

        // One epoch over two ranks: disjoint rows that together cover it (but the odd one out).
        let mut seen = Vec::new();
        for rank in 0..2 {
            let mut l = loader(&set, rank, 2, 0);
            let mut mine = HashSet::new();
            let per_epoch = l.samples_per_epoch();
            for _ in 0..per_epoch / 4 {
                let batch = l.next_batch().await.unwrap();
                for row in batch.inputs.chunks(512) {
                    mine.insert(row.to_vec());
                }
            }
            seen.push(mine);
        }
        assert!(seen[0].is_disjoint(&seen[1]), "ranks see disjoint samples");
        let covered = seen[0].len() + seen[1].len();
        assert!(covered as u64 >= rows - 2 * 4 - 1, "{covered} of {rows}");

        // Positions restart at each document; targets are the next inputs.
        let batch = &straight[0];
        let tensors = batch.tensors(&candle_core::Device::Cpu).unwrap();
        assert_eq!(tensors.inputs.dims(), [4, 512]);
        assert_eq!(tensors.targets.to_vec2::<u32>().unwrap()[3], batch.targets[3 * 512..]);
        let mask = tensors.loss_mask.sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(mask as usize, batch.loss_mask.iter().filter(|m| **m).count());
        assert_eq!(tensors.positions.to_vec2::<u32>().unwrap()[0], batch.positions[..512]);
        for r in 0..batch.rows {
            let row = r * 512..(r + 1) * 512;
            let (inputs, targets) = (&batch.inputs[row.clone()], &batch.targets[row.clone()]);
            assert_eq!(&inputs[1..], &targets[..511]);
            let (positions, segments) = (&batch.positions[row.clone()], &batch.segments[row]);
            assert_eq!(positions[0], 0);
            for t in 1..512 {
                if segments[t] == segments[t - 1] {
                    assert_eq!(positions[t], positions[t - 1] + 1);
                } else {
                    assert_eq!((positions[t], segments[t]), (0, segments[t - 1] + 1));
                    assert!(!batch.loss_mask[r * 512 + t - 1], "no loss on the target that opens a document");
                }
            }
        }
    });
}

#[test]
fn pyarrow_and_mathlake_query_read_the_shards() {
    let (_, lake, _) = quickstart();
    let shard = Path::new(lake).join("shards/test1/train-00000.arrow");
    let rows = query(lake, &format!("SELECT count(*) AS n FROM '{}'", shard.display()), &[]);
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(Path::new(lake).join("shards/test1/manifest.json")).unwrap()).unwrap();
    assert_eq!(rows[0]["n"].as_u64(), Some(manifest.train.shards[0].rows));
    let script = "import sys, pyarrow.ipc as ipc\n\
        t = ipc.open_file(sys.argv[1]).read_all()\n\
        print(t.num_rows, t.schema.field('tokens').type.list_size, t.column('tokens')[0].values.type)";
    let out = std::process::Command::new("python3").args(["-c", script, shard.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "pyarrow: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim(), format!("{} 513 uint16", manifest.train.shards[0].rows));
}

#[test]
fn a_shard_row_leads_to_its_records_source_objects_and_run() {
    let (_, lake, _) = quickstart();
    let set_folder = Path::new(lake).join("shards/test1");
    let records = format!("'{}'", set_folder.join("records.parquet").display());
    let set = runtime().block_on(ShardSet::open(set_folder.to_str().unwrap())).unwrap();

    // Every segment of every row is listed, with the tokens the manifest counts per source.
    let per_source = query(
        lake,
        &format!("SELECT source, sum(tokens) AS tokens FROM {records} WHERE split = 'train' GROUP BY source"),
        &[],
    );
    for source in &set.manifest.sources {
        let listed = per_source.iter().find(|r| r["source"] == source.name.as_str()).map(|r| r["tokens"].as_u64());
        assert_eq!(listed, Some(Some(source.train.emitted_tokens)), "{}", source.name);
    }
    let segments = query(lake, &format!("SELECT count(*) AS n FROM {records}"), &[])[0]["n"].as_u64();
    assert_eq!(segments, set.manifest.records.as_ref().map(|r| r.segments));

    // The segments of the first rows hold exactly their records' tokens, from the offset named.
    let shard = runtime().block_on(set.read(Split::Train, 0)).unwrap();
    let rows = format!(
        "SELECT shard_row, start, tokens, source, id, record_offset FROM {records} \
         WHERE split = 'train' AND shard = 0 AND shard_row < 4 ORDER BY shard_row, start"
    );
    let rows = query(lake, &rows, &[]);
    assert!(rows.len() >= 4, "{rows:?}");
    let table = |source: &str| match source {
        "general" => "general_tokens",
        "web_math" => "math_tokens",
        _ => "problem_tokens",
    };
    for segment in &rows {
        let (row, start) = (segment["shard_row"].as_u64().unwrap() as usize, segment["start"].as_u64().unwrap());
        let n = segment["tokens"].as_u64().unwrap() as usize;
        assert!(shard.doc_starts[row].contains(&(start as u32)), "{segment}: a segment the shard marks");
        let id = segment["id"].as_str().unwrap();
        let sql = format!("SELECT tokens FROM {} WHERE id = '{id}'", table(segment["source"].as_str().unwrap()));
        let record: Vec<u64> =
            query(lake, &sql, &[])[0]["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap()).collect();
        let offset = segment["record_offset"].as_u64().unwrap() as usize;
        let in_shard: Vec<u64> =
            shard.row(row).0[start as usize..start as usize + n].iter().map(|&t| t as u64).collect();
        assert_eq!(in_shard, record[offset..offset + n], "{segment}");
    }

    // One query from a shard row to each record's source object and the run that read it.
    let lineage = format!(
        "WITH provenance AS (SELECT id, input, 'documents' AS table_name FROM documents \
           UNION ALL SELECT id, input, 'problems' FROM problems) \
         SELECT r.id, p.input, o.version, v.run_id FROM {records} r \
         JOIN provenance p ON p.id = r.id \
         JOIN mathlake_objects o ON o.table_name = p.table_name AND o.url = p.input \
         JOIN mathlake_versions v ON v.table_name = o.table_name AND v.version = o.version \
         WHERE r.split = 'train' AND r.shard = 0 AND r.shard_row < 4 ORDER BY r.shard_row, r.start"
    );
    let lineage = query(lake, &lineage, &[]);
    assert_eq!(lineage.len(), rows.len(), "every segment reaches one source object: {lineage:?}");
    // Other tests run jobs over this lake too: the quick-start's first run ingested.
    let first = "SELECT run_id FROM mathlake_runs WHERE job = 'quickstart' ORDER BY started_at LIMIT 1";
    let runs = query(lake, first, &[]);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data").canonicalize().unwrap();
    for (step, segment) in lineage.iter().zip(&rows) {
        assert_eq!(step["id"], segment["id"]);
        let input = step["input"].as_str().unwrap();
        // `../shared` may be a link: compare where both lead.
        let file = Path::new(input.trim_start_matches("file://")).canonicalize().unwrap();
        assert!(file.starts_with(&shared), "{input}: a file of the shared data");
        assert_eq!(step["run_id"], runs[0]["run_id"], "{step}: ingested by the quick-start run");
    }
}

#[test]
fn shards_are_written_to_and_read_from_s3() {
    let (_, lake, _) = quickstart();
    create_bucket("mathlake-shards");
    let dir = tempfile::tempdir().unwrap();
    let url = "s3://mathlake-shards/arms/test1";
    let mixture = repo("jobs/experiments/rq1/test1.toml");
    let mut command =
        mathlake(&["shards", "build", "--json", "--lake", lake, "--mixture", mixture.to_str().unwrap(), "--to", url]);
    let on_s3: Manifest =
        serde_json::from_value(json(&ok(command.envs(s3_env())))["shards"]["manifest"].clone()).unwrap();
    let local = build(lake, &mixture, &dir.path().join("local"));
    assert_eq!(on_s3, local, "the same shards, wherever they go");
    // Reading a shard back checks its checksum; the rows decode.
    let mut command = mathlake(&["shards", "inspect", url, "--rows", "1"]);
    let shown = ok(command.envs(s3_env()));
    let names_a_source = ["general", "web_math", "problems"].iter().any(|s| shown.contains(&format!("‖ {s} ‖")));
    assert!(shown.contains("-- train row 0 --") && names_a_source, "{shown}");
}

#[test]
fn bad_mixtures_and_damaged_shards_fail_clearly() {
    let (_, lake, _) = quickstart();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let run = |mixture: &Path| {
        fails(&mut mathlake(&[
            "shards",
            "build",
            "--lake",
            lake,
            "--mixture",
            mixture.to_str().unwrap(),
            "--to",
            dir.path().join("x").to_str().unwrap(),
        ]))
    };
    let head = "name = \"bad\"\nmode = \"cpt\"\nsequence_length = 64\n";
    let err = run(&write("a.toml", &format!("{head}[[source]]\nname = \"p\"\ninput = \"problems\"\ntokens = 100\n")));
    assert!(err.contains("was not written by `mathlake tokenize`"), "{err}");
    let err = run(&write(
        "b.toml",
        &format!("{head}[[source]]\nname = \"g\"\ninput = \"general_tokens\"\ntokens = 100_000_000\n"),
    ));
    assert!(err.contains("passes over them (max_epochs = 10)"), "{err}");
    let err =
        run(&write("c.toml", &format!("{head}[[source]]\nname = \"g\"\ninput = \"general_tokens\"\nweight = 1\n")));
    assert!(err.contains("needs total_tokens"), "{err}");
    let err = run(&write("d.toml", &format!("{head}[[source]]\nname = \"g\"\ninput = \"nope_tokens\"\ntokens = 10\n")));
    assert!(err.contains("nope_tokens"), "{err}");

    // A shard set whose shard is damaged, or gone, names the shard.
    let to = dir.path().join("set");
    build(lake, &repo("jobs/experiments/rq1/test1.toml"), &to);
    let shard = to.join("train-00000.arrow");
    let mut bytes = std::fs::read(&shard).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&shard, &bytes).unwrap();
    let rt = runtime();
    let set = rt.block_on(ShardSet::open(to.to_str().unwrap())).unwrap();
    let err = rt.block_on(set.read(Split::Train, 0)).unwrap_err().to_string();
    assert!(err.contains("train-00000.arrow is corrupt"), "{err}");
    std::fs::remove_file(&shard).unwrap();
    let err = rt.block_on(async { loader(&set, 0, 1, 0).next_batch().await }).unwrap_err().to_string();
    assert!(err.contains("train-00000.arrow is missing"), "{err}");
    let err = rt.block_on(ShardSet::open(dir.path().to_str().unwrap())).unwrap_err().to_string();
    assert!(err.contains("has no manifest.json"), "{err}");
}
