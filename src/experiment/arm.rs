//! One arm of an experiment: its mixture packed once, a model trained on it with each
//! seed, and each seed's model evaluated, laid out as `mathlake report` reads them:
//!
//! ```text
//! {experiment}/{arm}/shards/            the arm's shard set (one, whatever the seed)
//! {experiment}/{arm}/seed-{s}/run/      the training run of seed s (checkpoints, log.jsonl)
//! {experiment}/{arm}/seed-{s}/eval/     its evaluation (report.json, report.md, items.jsonl)
//! ```
//!
//! The seed changes the model's initial weights and the order the loader reads the shards
//! in, nothing else: the shards (and so which records and how many tokens of each source)
//! are the same for every seed. An arm `from` another arm of the experiment starts each
//! seed from that arm's model of the same seed (its best checkpoint), as SFT after CPT.
//!
//! ```toml
//! [[stage]]
//! kind = "arm"
//! arm = "sft"
//! experiment = "{lake}/experiments/rq3"
//! mixture = "jobs/experiments/rq3/sft.toml"
//! train = "jobs/experiments/train-sft-tiny.toml"   # without shards, out or seed
//! seeds = 3                                         # seeds 1, 2 and 3
//! from = "base1"
//! eval = { benchmarks = ["problems"], shots = 2 }   # `mathlake eval` settings, without
//!                                                   # checkpoint or report (or a file)
//! ```

use std::path::PathBuf;

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::eval::report::GroupResult;
use crate::eval::{self, EvalSpec};
use crate::job::log::remove_folder;
use crate::lake::{Lake, Location, get_optional};
use crate::shards::{self, BuildSpec};
use crate::train::{self, LogRecord, TrainConfig, TrainOptions, checkpoint};

/// The settings of a job's `kind = "arm"` stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmSpec {
    /// The stage's name in logs and summaries [default: the arm's].
    #[serde(default)]
    pub name: Option<String>,
    /// The arm's name: its folder under the experiment's, its label in the report.
    pub arm: String,
    /// The experiment's folder (a path or URL; `{lake}` allowed).
    pub experiment: String,
    /// The arm's mixture file.
    pub mixture: PathBuf,
    /// A factor on the mixture's token budgets (`mathlake shards build --scale`): the
    /// tiny arms' files serve the larger presets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// A training file without `shards`, `out` or `seed`: the stage sets them per seed.
    /// `{experiment}` in its [[eval]] paths is the experiment's folder.
    pub train: PathBuf,
    /// Seeds 1 to this many.
    #[serde(default = "default_seeds")]
    pub seeds: u64,
    /// Another arm of the experiment (trained earlier in the job) whose model of the same
    /// seed each run starts from.
    #[serde(default)]
    pub from: Option<String>,
    /// The evaluation of each seed's best checkpoint: `mathlake eval`'s settings without
    /// `checkpoint` and `report`, which the stage sets; inline, or a TOML file of them
    /// that every arm of an experiment can share.
    pub eval: EvalSettings,
    /// Memory DataFusion's operators may hold while packing the shards (e.g. 512M, 4G).
    #[serde(default)]
    pub memory_limit: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EvalSettings {
    File(PathBuf),
    Inline(toml::Table),
}

fn default_seeds() -> u64 {
    3
}

/// What an arm stage did, seed by seed.
#[derive(Debug, Clone, Serialize)]
pub struct ArmReport {
    pub arm: String,
    /// The arm's folder.
    pub folder: String,
    /// False when the shards of an interrupted run of the stage were kept.
    pub packed: bool,
    pub seeds: Vec<SeedReport>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeedReport {
    pub seed: u64,
    /// False when an interrupted run of the stage had evaluated it already.
    pub ran: bool,
    pub steps: u64,
    pub tokens_seen: u64,
    pub validation_loss: Option<f64>,
    /// Each benchmark's loss and accuracy over all its items.
    pub benchmarks: Vec<(String, Option<f64>, Option<f64>)>,
    pub seconds: f64,
}

impl ArmSpec {
    /// The experiment's folder.
    fn experiment(&self, lake: &Lake) -> Result<Location> {
        Location::parse(&lake.expand(&self.experiment))
    }

    /// The arm's folder.
    pub fn folder(&self, lake: &Lake) -> Result<Location> {
        Ok(self.experiment(lake)?.join(&self.arm))
    }

    /// Seed `seed`'s training file: the arm's with the stage's shards, out and seed, and
    /// `[model] from` the same seed's run of the `from` arm.
    pub fn train_config(&self, lake: &Lake, seed: u64) -> Result<TrainConfig> {
        let text = std::fs::read_to_string(&self.train)
            .map_err(|e| Error::user(format!("cannot read training file {}: {e}", self.train.display())))?;
        let mut table: toml::Table =
            toml::from_str(&text).map_err(|e| Error::user(format!("{}: {e}", self.train.display())))?;
        let experiment = self.experiment(lake)?;
        let own = seed_folder(&experiment, &self.arm, seed);
        set_keys(
            &mut table,
            &[
                ("shards", experiment.join(&self.arm).join("shards").url().into()),
                ("out", own.join("run").url().into()),
                ("seed", toml::Value::Integer(seed as i64)),
            ],
            &format!("{} (the arm stage sets it per seed)", self.train.display()),
        )?;
        if let Some(from) = &self.from {
            let model = table.entry("model").or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(model) = model.as_table_mut() else {
                return Err(Error::user(format!("{}: `model` is not a table", self.train.display())));
            };
            let base = seed_folder(&experiment, from, seed).join("run");
            let what = format!("{}'s [model] (the arm starts `from` arm {from})", self.train.display());
            set_keys(model, &[("from", base.url().into())], &what)?;
        }
        let mut config: TrainConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e| Error::user(format!("{}: {}", self.train.display(), e.to_string().trim_end())))?;
        config.check().map_err(|e| Error::user(format!("{}: {e}", self.train.display())))?;
        for set in &mut config.evals {
            set.shards = lake.expand(&set.shards).replace("{experiment}", &experiment.url());
        }
        Ok(config)
    }

    /// Seed `seed`'s evaluation settings.
    pub fn eval_spec(&self, lake: &Lake, seed: u64) -> Result<EvalSpec> {
        let own = seed_folder(&self.experiment(lake)?, &self.arm, seed);
        let (mut table, what) = match &self.eval {
            EvalSettings::Inline(table) => (table.clone(), "the arm's `eval`".to_string()),
            EvalSettings::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::user(format!("cannot read evaluation settings {}: {e}", path.display())))?;
                let table = toml::from_str(&text).map_err(|e| Error::user(format!("{}: {e}", path.display())))?;
                (table, path.display().to_string())
            }
        };
        set_keys(
            &mut table,
            &[("checkpoint", own.join("run").url().into()), ("report", own.join("eval").url().into())],
            &format!("{what} (the arm stage sets it per seed)"),
        )?;
        toml::Value::Table(table).try_into().map_err(|e| Error::user(format!("{what}: {}", e.to_string().trim_end())))
    }

    /// Everything the stage would run, checked without running it: the mixture, each
    /// seed's training file and evaluation settings.
    pub fn check(&self, lake: &Lake) -> Result<()> {
        if self.seeds == 0 {
            return Err(Error::user("seeds must be at least 1"));
        }
        if self.arm.is_empty() || self.arm.contains('/') || self.from.as_deref() == Some(self.arm.as_str()) {
            return Err(Error::user(format!("`{}` cannot name an arm (or be its own `from`)", self.arm)));
        }
        let (mixture, hash) = shards::mixture::Mixture::load(&self.mixture)?;
        mixture.scaled(self.scale.unwrap_or(1.0), hash)?;
        for seed in 1..=self.seeds {
            self.train_config(lake, seed)?;
            self.eval_spec(lake, seed)?.to_options(lake)?;
        }
        Ok(())
    }
}

/// The folder of `arm`'s seed `seed` in the experiment at `experiment`: `run` and `eval`.
fn seed_folder(experiment: &Location, arm: &str, seed: u64) -> Location {
    experiment.join(arm).join(&format!("seed-{seed}"))
}

/// Sets `keys` in `table`; a key the file already sets is an error, named after `what`.
fn set_keys(table: &mut toml::Table, keys: &[(&str, toml::Value)], what: &str) -> Result<()> {
    for (key, value) in keys {
        if table.contains_key(*key) {
            return Err(Error::user(format!("{what}: `{key}` is set there; leave it out")));
        }
        table.insert(key.to_string(), value.clone());
    }
    Ok(())
}

/// Packs, trains and evaluates the arm. `resume`: an interrupted run of this same stage is
/// continued (its shards, finished seeds and partial runs kept); otherwise the arm's folder
/// is replaced when this job made it (`made_before`), and any other content is an error.
pub async fn run(
    lake: &Lake,
    spec: &ArmSpec,
    quiet: bool,
    resume: bool,
    made_before: bool,
    rows: &dyn Fn(&str) -> ProgressBar,
    items: &dyn Fn(&str) -> ProgressBar,
) -> Result<ArmReport> {
    let started = std::time::Instant::now();
    let folder = spec.folder(lake)?;
    let say = |line: String| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    if let Some(from) = &spec.from {
        let experiment = spec.experiment(lake)?;
        for seed in 1..=spec.seeds {
            let run = seed_folder(&experiment, from, seed).join("run");
            if !checkpoint::run_exists(&run).await? {
                return Err(Error::user(format!("arm `{from}` has no run of seed {seed} to start from ({run})"))
                    .hint(format!("put the stage of arm `{from}`, with as many seeds, before this one")));
            }
        }
    }
    let store = folder.store()?;
    let exists = {
        use futures::StreamExt;
        store.list(Some(folder.path())).next().await.is_some()
    };
    if exists && !resume {
        if !made_before {
            return Err(Error::user(format!("{} holds an arm that this job did not make", folder.url()))
                .hint("choose another `experiment` folder or arm name, or delete that folder"));
        }
        remove_folder(&folder).await?;
    }
    let shard_folder = folder.join("shards");
    let packed = !(resume && get_optional(&shard_folder.join(shards::manifest::MANIFEST)).await?.is_some());
    if packed {
        say(format!("arm {}: packing {}", spec.arm, spec.mixture.display()));
        let build = BuildSpec {
            name: None,
            mixture: spec.mixture.clone(),
            to: shard_folder.url(),
            scale: spec.scale,
            memory_limit: spec.memory_limit.clone(),
            spill_dir: None,
            engine: None,
        };
        let bar = rows(&spec.arm);
        shards::build(lake, &build.to_options(lake)?, &bar).await?;
        bar.finish_and_clear();
    }
    let mut seeds = Vec::new();
    for seed in 1..=spec.seeds {
        let seed_started = std::time::Instant::now();
        let eval_spec = spec.eval_spec(lake, seed)?;
        let eval_options = eval_spec.to_options(lake)?;
        let evaluated = Location::parse(&eval_options.report)?.join("report.json");
        let config = spec.train_config(lake, seed)?;
        let out = Location::parse(&config.out)?;
        if resume && let Some(bytes) = get_optional(&evaluated).await? {
            let done: Evaluated = serde_json::from_slice(&bytes)
                .map_err(|e| Error::user(format!("{evaluated} is not an evaluation report: {e}")))?;
            seeds.push(SeedReport::new(seed, false, &train::read_log(&out, u64::MAX).await?, &done.groups, 0.0));
            continue;
        }
        let continued = resume && checkpoint::run_exists(&out).await?;
        let how = if continued { " (continued)" } else { "" };
        say(format!("arm {}: seed {seed} of {}, training{how}", spec.arm, spec.seeds));
        train::train(&config, TrainOptions { resume: continued, stop_after: None, quiet }).await?;
        say(format!("arm {}: seed {seed} of {}, evaluating", spec.arm, spec.seeds));
        let bar = items(&spec.arm);
        let evaluation = eval::eval(lake, &eval_options, &bar).await?;
        bar.finish_and_clear();
        let log = train::read_log(&out, u64::MAX).await?;
        seeds.push(SeedReport::new(seed, true, &log, &evaluation.groups, seed_started.elapsed().as_secs_f64()));
    }
    Ok(ArmReport {
        arm: spec.arm.clone(),
        folder: folder.url(),
        packed,
        seeds,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The part of an evaluation's report.json a resumed arm reads back.
#[derive(Debug, Deserialize)]
struct Evaluated {
    groups: Vec<GroupResult>,
}

impl SeedReport {
    /// A seed's figures from its run's log and its evaluation's groups.
    fn new(seed: u64, ran: bool, log: &[LogRecord], groups: &[GroupResult], seconds: f64) -> SeedReport {
        let last = log.iter().rev().find(|r| r.split == "train");
        let best = log.iter().filter(|r| r.split == "validation").map(|r| r.loss).min_by(f64::total_cmp);
        SeedReport {
            seed,
            ran,
            steps: last.map_or(0, |r| r.step),
            tokens_seen: last.map_or(0, |r| r.tokens_seen),
            validation_loss: best,
            benchmarks: groups
                .iter()
                .filter(|g| g.group == "all")
                .map(|g| (g.benchmark.clone(), g.loss, g.accuracy))
                .collect(),
            seconds,
        }
    }
}
