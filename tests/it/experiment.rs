//! Miniatures of the study's experiments on the quickstart's tokenized tables, a few
//! updates per run. RQ1 and RQ3: three arms (math web text only, with problem-solving data,
//! and SFT of the first arm's model on problems), two seeds each, each seed evaluated, then
//! the report, whose numbers are checked against the evaluations it was made from. RQ2: a
//! fixed problem sample, synthesis by rule (retrospective enhancement) and through a model
//! endpoint (tutorship, tests/it/endpoint.rs), the accepted records tokenized and added to
//! the base arm, and a control that adds as many tokens of the same problems again.

use std::path::Path;

use crate::common::{fails, json, mathlake, ok, query};
use crate::endpoint::Endpoint;
use crate::ingest_shared_data::quickstart;

const CPT_BASE: &str = "name = \"base\"\nmode = \"cpt\"\nsequence_length = 128\ntotal_tokens = 8192\n\n\
    [[source]]\nname = \"general\"\ninput = \"general_tokens\"\nweight = 0.77\n\n\
    [[source]]\nname = \"web_math\"\ninput = \"math_tokens\"\nweight = 0.23\n";

/// The problems come first, so that the CPT and SFT arms draw the same ones.
const CPT_PROBLEMS: &str = "name = \"problems\"\nmode = \"cpt\"\nsequence_length = 128\ntotal_tokens = 10240\n\n\
    [[source]]\nname = \"problems\"\ninput = \"problem_tokens\"\nwhere = \"token_count <= 128\"\ntokens = 2048\nmax_epochs = 1\n\n\
    [[source]]\nname = \"general\"\ninput = \"general_tokens\"\nweight = 0.77\n\n\
    [[source]]\nname = \"web_math\"\ninput = \"math_tokens\"\nweight = 0.23\n";

const SFT_PROBLEMS: &str = "name = \"sft\"\nmode = \"sft\"\nsequence_length = 128\n\n\
    [[source]]\nname = \"problems\"\ninput = \"problem_tokens\"\nwhere = \"token_count <= 128\"\ntokens = 2048\nmax_epochs = 1\n";

const TRAIN_CPT: &str = "steps = 3\nmicro_batch = 4\neval_every = 3\n\n[model]\npreset = \"tiny\"\nhidden_size = 64\n\
    intermediate_size = 128\nnum_hidden_layers = 2\n\n[optimizer]\nlr = 2e-3\nwarmup_steps = 1\n";

const TRAIN_SFT: &str = "epochs = 1\nmicro_batch = 4\neval_every = 2\n\n[optimizer]\nlr = 2e-4\nwarmup_steps = 1\n";

/// An arm stage of the miniature job.
fn arm(name: &str, mixture: &str, train: &str, from: Option<&str>) -> String {
    let from = from.map(|f| format!("from = \"{f}\"\n")).unwrap_or_default();
    format!(
        "[[stage]]\nkind = \"arm\"\narm = \"{name}\"\nexperiment = \"{{lake}}/experiments/mini\"\nmixture = \"{mixture}\"\n\
         train = \"{train}\"\nseeds = 2\n{from}eval = {{ benchmarks = [\"problems\"], benchmark_where = \
         \"split = 'test' AND source = 'gsm8k' AND id < '08'\", shots = 0, max_new_tokens = 4, limit = 2, context = 128 }}\n\n"
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The GSM8K loss each seed's evaluation of `arm` reported (the table the report reads).
fn seed_losses(folder: &Path, arm: &str, seeds: u64) -> Vec<f64> {
    (1..=seeds)
        .map(|seed| {
            let path = folder.join(format!("{arm}/seed-{seed}/eval/report.json"));
            let eval: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            let all = eval["groups"].as_array().unwrap().iter().find(|g| g["group"] == "all").unwrap().clone();
            assert_eq!(all["benchmark"], "gsm8k");
            assert!(all["items"].as_u64().unwrap() > 20, "{all}");
            all["loss"].as_f64().unwrap()
        })
        .collect()
}

/// Mean and sample standard deviation, as the report computes them.
fn mean_std(values: &[f64]) -> (f64, f64) {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64;
    (mean, var.sqrt())
}

#[test]
fn a_miniature_experiment_trains_every_arm_and_seed_and_reports_what_the_evaluations_say() {
    let (_, lake, _) = quickstart();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (base, problems, sft) =
        (write(d, "base.toml", CPT_BASE), write(d, "problems.toml", CPT_PROBLEMS), write(d, "sft.toml", SFT_PROBLEMS));
    let (cpt, sft_train) = (write(d, "cpt.toml", TRAIN_CPT), write(d, "sft-train.toml", TRAIN_SFT));
    let findings = write(
        d,
        "findings.toml",
        "[[finding]]\nclaim = \"problems in CPT lower the GSM8K loss\"\narm = \"problems\"\nbaseline = \"base\"\n\
         benchmark = \"gsm8k\"\n",
    );
    let job = format!(
        "{}{}{}[[stage]]\nkind = \"report\"\nexperiment = \"{{lake}}/experiments/mini\"\nbaseline = \"base\"\n\
         findings = \"{findings}\"\n",
        arm("base", &base, &cpt, None),
        arm("problems", &problems, &cpt, None),
        arm("sft", &sft, &sft_train, Some("base")),
    );
    let job = write(d, "mini.toml", &job);
    let reports = json(&ok(&mut mathlake(&["run", &job, "--json", "--lake", lake])));
    let kinds: Vec<&str> = reports.as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["arm", "arm", "arm", "report"]);
    let folder = Path::new(lake).join("experiments/mini");

    // Every seed of every arm trained and was evaluated; the seed changed the model.
    let mut losses = std::collections::BTreeMap::new();
    for (i, name) in ["base", "problems", "sft"].iter().enumerate() {
        let arm = &reports[i]["report"];
        let seeds: Vec<u64> = arm["seeds"].as_array().unwrap().iter().map(|s| s["seed"].as_u64().unwrap()).collect();
        assert_eq!(seeds, [1, 2], "{arm}");
        let values = seed_losses(&folder, name, 2);
        for (i, loss) in values.iter().enumerate() {
            assert_eq!(arm["seeds"][i]["benchmarks"][0][1].as_f64(), Some(*loss));
        }
        assert_ne!(values[0], values[1], "{name}: two seeds, two models");
        losses.insert(name.to_string(), values);
    }
    assert_eq!(reports[0]["report"]["seeds"][0]["steps"], 3);

    // SFT continued the base arm's model of the same seed, on the problems only (the
    // answer tokens), with its shape and tokenizer.
    let sft_log = std::fs::read_to_string(folder.join("sft/seed-1/run/log.jsonl")).unwrap();
    let first: serde_json::Value = json(sft_log.lines().next().unwrap());
    assert_eq!(first["source_tokens"].as_object().unwrap().keys().collect::<Vec<_>>(), ["problems"]);
    let config = |run: &str| -> serde_json::Value {
        let latest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join(run).join("latest.json")).unwrap()).unwrap();
        let checkpoint = folder.join(run).join(latest["path"].as_str().unwrap());
        serde_json::from_slice(&std::fs::read(checkpoint.join("config.json")).unwrap()).unwrap()
    };
    let (base_config, sft_config) = (config("base/seed-1/run"), config("sft/seed-1/run"));
    assert_eq!(sft_config["hidden_size"], 64);
    assert_eq!(sft_config, base_config);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("sft/shards/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["mixture"]["mode"], "sft");

    // The report's table holds each arm's mean and spread over the seeds' evaluations.
    let markdown = std::fs::read_to_string(folder.join("report.md")).unwrap();
    for (name, values) in &losses {
        let (mean, std) = mean_std(values);
        let row = format!("| {name} | 2 | {mean:.4} +- {std:.4} |");
        assert!(markdown.contains(&row), "{row} in:\n{markdown}");
    }
    let (problems_mean, _) = mean_std(&losses["problems"]);
    let (base_mean, _) = mean_std(&losses["base"]);
    let sentence = reports[3]["report"]["findings"][0]["sentence"].as_str().unwrap();
    let size = format!("gsm8k loss is {:.4} ", (problems_mean - base_mean).abs());
    assert!(sentence.contains(&size), "{size} in {sentence}");
    // The runs' logs: tokens per source, and held-out curves.
    assert!(markdown.contains("| problems | 1 | 3 | 1,536 | general "), "{markdown}");
    assert!(folder.join("curves-validation.png").exists());
    assert!(folder.join("gsm8k-loss.png").exists());

    // Run again: every stage stands.
    let again = json(&ok(&mut mathlake(&["run", &job, "--json", "--lake", lake])));
    let kinds: Vec<&str> = again.as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["skipped"; 4]);
}

#[test]
fn an_arm_refuses_settings_it_owns_and_an_arm_to_start_from_that_is_not_there() {
    let (_, lake, _) = quickstart();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = write(d, "base.toml", CPT_BASE);
    let owns_out = write(d, "cpt.toml", &format!("out = \"{{lake}}/runs/x\"\n{TRAIN_CPT}"));
    let job = write(d, "bad.toml", &arm("base", &base, &owns_out, None));
    let err = fails(&mut mathlake(&["run", &job, "--lake", lake]));
    assert!(err.contains("cpt.toml (the arm stage sets it per seed): `out` is set there; leave it out"), "{err}");

    let sft = write(d, "sft-train.toml", TRAIN_SFT);
    let job = write(d, "orphan.toml", &arm("orphan", &base, &sft, Some("nowhere")).replace("mini", "orphan"));
    let err = fails(&mut mathlake(&["run", &job, "--lake", lake]));
    assert!(err.contains("stage `orphan`: arm `nowhere` has no run of seed 1 to start from"), "{err}");
}

/// RQ2's arms in miniature: the problems of the sample once, general text for the rest; the
/// synthesis arms and the control add `ADDED` tokens each.
const RQ2_BASE: &str = "name = \"base\"\nmode = \"cpt\"\nsequence_length = 128\ntotal_tokens = 16384\n\n\
    [[source]]\nname = \"problems\"\ninput = \"problem_tokens\"\nwhere = \"id < '02' AND source = 'gsm8k'\"\nepochs = 1\n\n\
    [[source]]\nname = \"general\"\ninput = \"general_tokens\"\nweight = 1\n";
const ADDED: u64 = 1024;

fn rq2_arm(name: &str, input: &str, extra: &str) -> String {
    RQ2_BASE.replace("name = \"base\"", &format!("name = \"{name}\"")).replace("16384", &(16384 + ADDED).to_string())
        + &format!("\n[[source]]\nname = \"added\"\ninput = \"{input}\"\n{extra}tokens = {ADDED}\nmax_epochs = 1\n")
}

#[test]
fn a_miniature_of_rq2_adds_accepted_synthetic_records_and_a_token_matched_control() {
    let (_, lake, _) = quickstart();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gold = query(lake, "SELECT question, answer FROM training_problems_clean WHERE source = 'gsm8k'", &[]);
    let gold =
        gold.iter().map(|r| (r["question"].as_str().unwrap().trim().into(), r["answer"].as_str().unwrap().into()));
    let endpoint = Endpoint::start(gold.collect(), Default::default());

    let problems = write(
        d,
        "problems.sql",
        "COPY (SELECT id, source, split, question, solution, answer AS final_answer FROM training_problems_clean \
         WHERE id < '02' AND source = 'gsm8k') TO 'mini_rq2_problems';\n",
    );
    let base = write(d, "base.toml", RQ2_BASE);
    let retrospective =
        write(d, "retro.toml", &rq2_arm("retrospective", "mini_rq2_retro_tokens", "hold_out_by = \"problem_id\"\n"));
    let tutorship =
        write(d, "tutor.toml", &rq2_arm("tutorship", "mini_rq2_tutor_tokens", "hold_out_by = \"problem_id\"\n"));
    let control =
        write(d, "control.toml", &rq2_arm("control", "problem_tokens", "where = \"id < '02' AND source = 'gsm8k'\"\n"));
    let cpt = write(d, "cpt.toml", TRAIN_CPT);
    let tokenize = |method: &str| {
        format!(
            "[[stage]]\nkind = \"tokenize\"\ninput = \"mini_rq2_{method}\"\nwhere = \"status = 'accepted'\"\n\
             tokenizer = \"{{lake}}/tokenizers/bpe-8k.json\"\nto = \"mini_rq2_{method}_tokens\"\nkeep = [\"problem_id\"]\n\n"
        )
    };
    let job = format!(
        "[[stage]]\nkind = \"sql\"\nfile = \"{problems}\"\n\n\
         [[stage]]\nkind = \"synthesize\"\nmethod = \"retrospective\"\ninput = \"mini_rq2_problems\"\nto = \"mini_rq2_retro\"\n\n\
         [[stage]]\nkind = \"synthesize\"\nmethod = \"tutorship\"\ninput = \"mini_rq2_problems\"\nto = \"mini_rq2_tutor\"\n\
         endpoint = \"{}\"\nmodel = \"stand-in\"\nconcurrency = 8\n\n{}{}{}{}{}{}\
         [[stage]]\nkind = \"report\"\nexperiment = \"{{lake}}/experiments/mini-rq2\"\nbaseline = \"base\"\n",
        endpoint.url,
        tokenize("retro"),
        tokenize("tutor"),
        arm("base", &base, &cpt, None),
        // One seed for these two: the sources are what they show.
        arm("retrospective", &retrospective, &cpt, None).replace("seeds = 2", "seeds = 1"),
        arm("tutorship", &tutorship, &cpt, None),
        arm("control", &control, &cpt, None).replace("seeds = 2", "seeds = 1"),
    )
    .replace("experiments/mini\"", "experiments/mini-rq2\"");
    let job = write(d, "rq2.toml", &job);
    let reports = json(&ok(&mut mathlake(&["run", &job, "--json", "--lake", lake])));
    let kinds: Vec<&str> = reports.as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["sql", "synthesize", "synthesize", "tokenize", "tokenize", "arm", "arm", "arm", "arm", "report"]
    );

    // Only accepted records were tokenized, every one of them.
    for (synthesized, tokenized) in [(1, 3), (2, 4)] {
        let (synthesized, tokenized) = (&reports[synthesized]["report"], &reports[tokenized]["report"]);
        let accepted = synthesized["accepted"].as_u64().unwrap();
        assert!(accepted > 0 && accepted < synthesized["records"].as_u64().unwrap(), "{synthesized}");
        assert_eq!(tokenized["input_rows"].as_u64(), Some(accepted), "{tokenized}");
        assert_eq!(tokenized["output_rows"].as_u64(), Some(accepted), "{tokenized}");
    }

    // Each synthesis arm and the control draw exactly ADDED training tokens beyond the base
    // arm's sources, which keep theirs.
    let folder = Path::new(lake).join("experiments/mini-rq2");
    let manifest = |arm: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(folder.join(arm).join("shards/manifest.json")).unwrap()).unwrap()
    };
    let emitted = |manifest: &serde_json::Value, source: &str| {
        let sources = manifest["sources"].as_array().unwrap();
        let source = sources.iter().find(|s| s["name"] == source).unwrap();
        source["train"]["emitted_tokens"].as_u64().unwrap()
    };
    let base = manifest("base");
    for arm in ["retrospective", "tutorship", "control"] {
        let manifest = manifest(arm);
        assert_eq!(emitted(&manifest, "added"), ADDED, "{arm}");
        for source in ["problems", "general"] {
            assert_eq!(emitted(&manifest, source), emitted(&base, source), "{arm}: {source}");
        }
    }
    // The control's extra tokens are the base arm's problems again, never new ones.
    let control = manifest("control");
    let source =
        |name: &str| control["sources"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();
    assert_eq!(source("added")["where"], source("problems")["where"]);
    assert_eq!(source("added")["train"]["available_records"], source("problems")["train"]["available_records"]);

    let markdown = std::fs::read_to_string(folder.join("report.md")).unwrap();
    for arm in ["retrospective", "control"] {
        assert!(markdown.contains(&format!("| {arm} | 1 |")), "{arm} in:\n{markdown}");
    }
    // Base and tutorship, two seeds each: the report's rows are their evaluations' mean and spread.
    for arm in ["base", "tutorship"] {
        let (mean, std) = mean_std(&seed_losses(&folder, arm, 2));
        let row = format!("| {arm} | 2 | {mean:.4} +- {std:.4} |");
        assert!(markdown.contains(&row), "{row} in:\n{markdown}");
    }
}
