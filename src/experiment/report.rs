//! The part of `mathlake report` that turns evaluations into findings: each arm's metric
//! over its seeds (mean and spread), its difference to the baseline arm with a 95%
//! interval, and one sentence per finding saying whether the expected direction held here
//! and whether the difference is larger than what the seeds alone move.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::stats::{Difference, Spread};
use crate::error::{Context, Error, Result};
use crate::eval::report::GroupResult;
use crate::lake::{Lake, Location, get_optional, put};
use crate::plot::{Bar, Series, bars_png, lines_png};
use crate::terminal::count;
use crate::train::{self, LogRecord};

/// The settings of `mathlake report` and of a job's `kind = "report"` stage.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    /// In a job file: the stage's name in logs and summaries.
    #[arg(skip)]
    #[serde(default)]
    pub name: Option<String>,
    /// The experiment's folder (a path or URL; `{lake}` allowed): a folder per arm, in
    /// it a `seed-N` folder per seed with that seed's evaluation in `eval/report.json`.
    /// report.md and report.json are written there.
    pub experiment: String,
    /// The arm every other arm is compared with.
    #[arg(long)]
    pub baseline: String,
    /// A TOML file of the claims to check, each a `[[finding]]` with `claim`, `arm`,
    /// `baseline`, `benchmark` and `metric` ("loss", the default, or "accuracy").
    #[arg(long)]
    #[serde(default)]
    pub findings: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingsFile {
    finding: Vec<Finding>,
}

/// What `mathlake report` found and wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentReport {
    pub experiment: String,
    pub baseline: String,
    /// Each arm with the seeds that have an evaluation.
    pub arms: Vec<(String, Vec<u64>)>,
    /// Seed folders without `eval/report.json` (a run not finished or not evaluated).
    pub missing: Vec<String>,
    pub findings: Vec<JudgedFinding>,
    /// report.md's location.
    pub report: String,
    /// The bar charts beside it, one per benchmark and metric.
    pub plots: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JudgedFinding {
    pub claim: String,
    pub verdict: Verdict,
    pub sentence: String,
}

/// Reads every arm's seeds under `spec.experiment`, writes report.md and report.json
/// beside them.
pub async fn report(lake: &Lake, spec: &ReportSpec) -> Result<ExperimentReport> {
    let folder = Location::parse(&lake.expand(&spec.experiment))?;
    let findings = match &spec.findings {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::user(format!("cannot read the findings file {}: {e}", path.display())))?;
            toml::from_str::<FindingsFile>(&text).map_err(|e| Error::user(format!("{}: {e}", path.display())))?.finding
        }
        None => Vec::new(),
    };
    let (arms, missing) = read_arms(&folder).await?;
    if arms.is_empty() {
        return Err(Error::user(format!("no evaluated seeds under {folder}"))
            .hint("expected {arm}/seed-{n}/eval/report.json below the experiment's folder"));
    }
    arm(&arms, &spec.baseline)?;
    let mut judged = Vec::with_capacity(findings.len());
    for finding in &findings {
        let (verdict, sentence) = judge(finding, &arms)?;
        judged.push(JudgedFinding { claim: finding.claim.clone(), verdict, sentence });
    }
    // The charts drawn, by file name beside report.md.
    let mut plots = Vec::new();
    for benchmark in benchmarks(&arms) {
        for metric in [Metric::Loss, Metric::Accuracy] {
            let slice = Slice::all(benchmark);
            let bars: Vec<Bar> = arms
                .iter()
                .map(|a| {
                    let spread = a.spread(&slice, metric);
                    Bar {
                        label: a.arm.clone(),
                        mean: spread.map_or(f64::NAN, |s| s.mean),
                        std: spread.map_or(f64::NAN, |s| s.std),
                        baseline: a.arm == spec.baseline,
                    }
                })
                .collect();
            if bars.iter().any(|b| b.mean.is_finite()) {
                let title = format!("{benchmark}: {}, mean +- std over seeds", metric.name());
                let name = plot_name(benchmark, metric);
                put(&folder.join(&name), bars_png(&title, &bars)?).await?;
                plots.push(name);
            }
        }
    }
    for split in held_out_splits(&arms) {
        let name = format!("curves-{split}.png");
        put(&folder.join(&name), curves_png(&arms, &split)?).await?;
        plots.push(name);
    }
    let markdown = markdown(&folder, &arms, &spec.baseline, &judged, &missing, &plots)?;
    put(&folder.join("report.md"), markdown.into_bytes()).await?;
    let report = ExperimentReport {
        experiment: folder.url(),
        baseline: spec.baseline.clone(),
        arms: arms.iter().map(|a| (a.arm.clone(), a.seeds.iter().map(|(seed, _)| *seed).collect())).collect(),
        missing,
        findings: judged,
        report: folder.join("report.md").url(),
        plots: plots.iter().map(|name| folder.join(name).url()).collect(),
    };
    put(&folder.join("report.json"), serde_json::to_vec_pretty(&report)?).await?;
    Ok(report)
}

/// The arms below `folder` (sorted by name) with their evaluated seeds (by seed), and the
/// seed folders that have no evaluation.
async fn read_arms(folder: &Location) -> Result<(Vec<ArmResults>, Vec<String>)> {
    let store = folder.store()?;
    let children = |location: Location| {
        let store = store.clone();
        async move {
            let listing = store
                .list_with_delimiter(Some(location.path()))
                .await
                .with_context(|| format!("listing {location}"))?;
            let mut names: Vec<String> =
                listing.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect();
            names.sort();
            Ok::<_, Error>(names)
        }
    };
    let (mut arms, mut missing) = (Vec::new(), Vec::new());
    for name in children(folder.clone()).await? {
        let (mut seeds, mut logs) = (Vec::new(), BTreeMap::new());
        for seed_folder in children(folder.join(&name)).await? {
            let Some(seed) = seed_folder.strip_prefix("seed-").and_then(|n| n.parse::<u64>().ok()) else { continue };
            let location = folder.join(&name).join(&seed_folder).join("eval/report.json");
            let Some(bytes) = get_optional(&location).await? else {
                missing.push(format!("{name}/{seed_folder}"));
                continue;
            };
            let groups: EvalGroups = serde_json::from_slice(&bytes)
                .map_err(|e| Error::user(format!("{location} is not an evaluation report: {e}")))?;
            seeds.push((seed, groups.groups));
            let log = train::read_log(&folder.join(&name).join(&seed_folder).join("run"), u64::MAX).await?;
            if !log.is_empty() {
                logs.insert(seed, log);
            }
        }
        seeds.sort_by_key(|(seed, _)| *seed);
        if !seeds.is_empty() {
            arms.push(ArmResults { arm: name, seeds, logs });
        }
    }
    Ok((arms, missing))
}

/// The held-out sets the runs were scored on as they trained (`validation`, each
/// `[[eval]]` set), sorted.
fn held_out_splits(arms: &[ArmResults]) -> BTreeSet<String> {
    arms.iter()
        .flat_map(|a| a.logs.values().flatten())
        .filter(|r| r.split != "train")
        .map(|r| r.split.clone())
        .collect()
}

/// The loss on held-out set `split` of every run against the tokens it had trained on,
/// one color per arm.
fn curves_png(arms: &[ArmResults], split: &str) -> Result<Vec<u8>> {
    let mut series = Vec::new();
    for (color, results) in arms.iter().enumerate() {
        for (i, log) in results.logs.values().enumerate() {
            let points = log.iter().filter(|r| r.split == split).map(|r| (r.tokens_seen as f64, r.loss)).collect();
            let label = (i == 0).then(|| results.arm.clone());
            series.push(Series { label, color, points, markers: true });
        }
    }
    lines_png(&format!("{split}, every seed"), "tokens seen", "loss", &series)
}

/// Per run: its updates, the tokens it trained on and the loss tokens of each mixture
/// source (so a reader can check the mixture), and its last loss on each held-out set.
fn training_table(arms: &[ArmResults]) -> String {
    let splits = held_out_splits(arms);
    let mut out = String::from("| arm | seed | steps | tokens | loss tokens per source |");
    for split in &splits {
        let _ = write!(out, " {split} |");
    }
    out.push_str(&format!("\n|---|---|---|---|---|{}\n", "---|".repeat(splits.len())));
    for results in arms {
        for (seed, log) in &results.logs {
            let Some(last) = log.iter().rev().find(|r| r.split == "train") else { continue };
            let sources: Vec<String> =
                last.source_tokens.iter().map(|(name, n)| format!("{name} {}", count(*n))).collect();
            let _ = write!(
                out,
                "| {} | {seed} | {} | {} | {} |",
                results.arm,
                last.step,
                count(last.tokens_seen),
                sources.join(", ")
            );
            for split in &splits {
                let loss =
                    log.iter().rev().find(|r| &r.split == split).map_or("-".into(), |r| format!("{:.4}", r.loss));
                let _ = write!(out, " {loss} |");
            }
            out.push('\n');
        }
    }
    out
}

/// The bar chart of `metric` on `benchmark`, beside report.md.
fn plot_name(benchmark: &str, metric: Metric) -> String {
    format!("{benchmark}-{}.png", metric.name())
}

/// Every benchmark some arm was evaluated on, sorted.
fn benchmarks(arms: &[ArmResults]) -> BTreeSet<&str> {
    arms.iter().flat_map(|a| a.seeds.iter().flat_map(|(_, g)| g.iter().map(|g| g.benchmark.as_str()))).collect()
}

/// The part of an evaluation's report.json that the report reads.
#[derive(Debug, Deserialize)]
struct EvalGroups {
    groups: Vec<GroupResult>,
}

fn markdown(
    folder: &Location,
    arms: &[ArmResults],
    baseline: &str,
    findings: &[JudgedFinding],
    missing: &[String],
    plots: &[String],
) -> Result<String> {
    let mut out = format!("# Experiment {}\n\n", folder.path().filename().unwrap_or("report"));
    for results in arms {
        let seeds: Vec<String> = results.seeds.iter().map(|(seed, _)| seed.to_string()).collect();
        let _ = writeln!(out, "- {}: seeds {}", results.arm, seeds.join(", "));
    }
    if !missing.is_empty() {
        let _ = writeln!(out, "- not evaluated yet: {}", missing.join(", "));
    }
    let _ = writeln!(
        out,
        "\nLoss is the held-out loss of the gold solution per token (lower is better); accuracy, of the \
         generated answers. Every difference is to {baseline}, with Welch's 95% interval over the seeds; \
         `*` marks one that leaves out zero (the arms differ by more than their seeds do)."
    );
    if !findings.is_empty() {
        out.push_str("\n## Findings\n\n");
        for finding in findings {
            let _ = writeln!(out, "- {}\n  {}", finding.claim, finding.sentence);
        }
    }
    if arms.iter().any(|a| !a.logs.is_empty()) {
        out.push_str("\n## Training\n\n");
        for name in plots.iter().filter(|p| p.starts_with("curves-")) {
            let _ = writeln!(out, "![{name}]({name})");
        }
        out.push('\n');
        out.push_str(&training_table(arms));
    }
    for benchmark in benchmarks(arms) {
        let _ = writeln!(out, "\n## {benchmark}\n");
        for metric in [Metric::Loss, Metric::Accuracy] {
            let name = plot_name(benchmark, metric);
            if plots.contains(&name) {
                let _ = writeln!(out, "![{benchmark} {}]({name})", metric.name());
            }
        }
        out.push('\n');
        out.push_str(&table(arms, baseline, &Slice::all(benchmark))?);
        let mut slices: Vec<Slice> = arms
            .iter()
            .flat_map(|a| a.seeds.iter().flat_map(|(_, groups)| groups.iter()))
            .filter(|g| g.benchmark == benchmark && (g.group == "difficulty" || g.group == "level"))
            .map(|g| Slice { benchmark: benchmark.to_string(), group: g.group.clone(), value: g.value.clone() })
            .collect();
        slices.sort_by(|a, b| (&a.group, &a.value).cmp(&(&b.group, &b.value)));
        slices.dedup();
        for slice in slices {
            out.push('\n');
            out.push_str(&table(arms, baseline, &slice)?);
        }
    }
    Ok(out)
}

/// A metric of an evaluation group, and which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Held-out loss of the gold solution given the question, per token: lower is better.
    Loss,
    /// Share of generated answers that match the gold: higher is better.
    Accuracy,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Loss => "loss",
            Metric::Accuracy => "accuracy",
        }
    }

    fn of(self, group: &GroupResult) -> Option<f64> {
        match self {
            Metric::Loss => group.loss,
            Metric::Accuracy => group.accuracy,
        }
    }

    /// How much better `difference` (arm minus baseline) is: positive when the arm is better.
    fn gain(self, difference: f64) -> f64 {
        match self {
            Metric::Loss => -difference,
            Metric::Accuracy => difference,
        }
    }
}

/// One arm's evaluations, a group list (report.json's `groups`) per seed.
#[derive(Debug, Clone)]
pub struct ArmResults {
    pub arm: String,
    pub seeds: Vec<(u64, Vec<GroupResult>)>,
    /// The training log of each seed that has one (`{seed}/run/log.jsonl`).
    pub logs: BTreeMap<u64, Vec<LogRecord>>,
}

/// Which evaluation group a comparison reads: a benchmark and one of its groups (`all`,
/// or `level` / `difficulty` with a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    pub benchmark: String,
    pub group: String,
    pub value: String,
}

impl Slice {
    pub fn all(benchmark: &str) -> Slice {
        Slice { benchmark: benchmark.to_string(), group: "all".into(), value: String::new() }
    }

    fn describe(&self) -> String {
        if self.group == "all" {
            self.benchmark.clone()
        } else {
            format!("{} {} {}", self.benchmark, self.group, self.value)
        }
    }
}

impl ArmResults {
    /// The metric of `slice` over the seeds that have it.
    pub fn spread(&self, slice: &Slice, metric: Metric) -> Option<Spread> {
        let values: Vec<f64> = self
            .seeds
            .iter()
            .filter_map(|(_, groups)| {
                groups
                    .iter()
                    .find(|g| g.benchmark == slice.benchmark && g.group == slice.group && g.value == slice.value)
                    .and_then(|g| metric.of(g))
            })
            .collect();
        Spread::of(&values)
    }
}

/// An expectation from the study, checked on this run: `arm` does better than `baseline`
/// on `metric` of `benchmark`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// The paper's claim in words, shown above the verdict.
    pub claim: String,
    pub arm: String,
    pub baseline: String,
    pub benchmark: String,
    /// A part of the benchmark: `group = "difficulty"` (or "level", "subject") and its
    /// `value`, e.g. "hard" [default: all its items].
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default = "loss")]
    pub metric: Metric,
}

fn loss() -> Metric {
    Metric::Loss
}

/// What the seeds say about a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Better, by more than the seeds move.
    Held,
    /// Worse, by more than the seeds move.
    Reversed,
    /// The interval of the difference includes zero.
    WithinSeedSpread,
    /// An arm has fewer than two seeds with the metric.
    Untestable,
}

fn arm<'a>(arms: &'a [ArmResults], name: &str) -> Result<&'a ArmResults> {
    arms.iter().find(|a| a.arm == name).ok_or_else(|| {
        let known: Vec<&str> = arms.iter().map(|a| a.arm.as_str()).collect();
        Error::user(format!("no arm `{name}` among the evaluated arms ({})", known.join(", ")))
    })
}

/// The verdict on `finding` and the sentence that says it.
pub fn judge(finding: &Finding, arms: &[ArmResults]) -> Result<(Verdict, String)> {
    let slice = match (&finding.group, &finding.value) {
        (None, None) => Slice::all(&finding.benchmark),
        (Some(group), Some(value)) => {
            Slice { benchmark: finding.benchmark.clone(), group: group.clone(), value: value.clone() }
        }
        _ => return Err(Error::user(format!("finding `{}`: give both group and value, or neither", finding.claim))),
    };
    let metric = finding.metric;
    let (a, b) =
        (arm(arms, &finding.arm)?.spread(&slice, metric), arm(arms, &finding.baseline)?.spread(&slice, metric));
    let what = format!("{}'s {} {}", finding.arm, slice.describe(), metric.name());
    let Some((a, b)) = a.zip(b) else {
        return Ok((Verdict::Untestable, format!("Untestable: {what} or {}'s is missing.", finding.baseline)));
    };
    let Some(d) = Difference::welch(&a, &b) else {
        return Ok((
            Verdict::Untestable,
            format!(
                "Untestable: {what} is {:.4} against {:.4} for {}, with {} and {} seeds; two or more each are needed.",
                a.mean, b.mean, finding.baseline, a.seeds, b.seeds
            ),
        ));
    };
    let direction = |gain: f64| match (metric, gain > 0.0) {
        (Metric::Loss, true) | (Metric::Accuracy, false) => "lower",
        _ => "higher",
    };
    let gain = metric.gain(d.estimate);
    let interval = format!("95% interval of the difference {:+.4} to {:+.4}", d.low, d.high);
    let size = format!("{:.4} {} than {}'s ({interval})", d.estimate.abs(), direction(gain), finding.baseline);
    Ok(if !d.clear() {
        (Verdict::WithinSeedSpread, format!("Not shown: {what} is {size}, within what the seeds alone move."))
    } else if gain > 0.0 {
        (Verdict::Held, format!("Held: {what} is {size}, beyond the seed spread."))
    } else {
        (Verdict::Reversed, format!("Reversed: {what} is {size}, beyond the seed spread."))
    })
}

/// The Markdown table of `slice`: per arm the seeds, loss and accuracy as mean +- std,
/// and each one's difference to `baseline` with its 95% interval.
pub fn table(arms: &[ArmResults], baseline: &str, slice: &Slice) -> Result<String> {
    let base = arm(arms, baseline)?;
    let mut out = format!(
        "| {} | seeds | loss | loss - {baseline} (95%) | accuracy | accuracy - {baseline} (95%) |\n|---|---|---|---|---|---|\n",
        slice.describe()
    );
    for results in arms {
        let mut cells = vec![results.arm.clone(), results.seeds.len().to_string()];
        for metric in [Metric::Loss, Metric::Accuracy] {
            let spread = results.spread(slice, metric);
            cells.push(spread.map_or("-".into(), |s| format!("{:.4} +- {:.4}", s.mean, s.std)));
            let difference = match (results.arm == baseline, spread, base.spread(slice, metric)) {
                (true, _, _) => "baseline".to_string(),
                (false, Some(a), Some(b)) => Difference::welch(&a, &b).map_or("-".into(), |d| {
                    let mark = if d.clear() { " *" } else { "" };
                    format!("{:+.4} ({:+.4} to {:+.4}){mark}", d.estimate, d.low, d.high)
                }),
                _ => "-".into(),
            };
            cells.push(difference);
        }
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(benchmark: &str, loss: f64, accuracy: f64) -> GroupResult {
        GroupResult {
            benchmark: benchmark.into(),
            group: "all".into(),
            value: String::new(),
            items: 100,
            loss: Some(loss),
            loss_tokens: 5000,
            generated: 20,
            correct: (accuracy * 20.0).round() as usize,
            accuracy: Some(accuracy),
        }
    }

    fn results(arm: &str, losses: &[f64]) -> ArmResults {
        with_accuracy(arm, losses, &vec![0.05; losses.len()])
    }

    fn with_accuracy(arm: &str, losses: &[f64], accuracies: &[f64]) -> ArmResults {
        let seeds = losses.iter().zip(accuracies).map(|(&loss, &accuracy)| vec![group("gsm8k", loss, accuracy)]);
        ArmResults { arm: arm.into(), seeds: (1..).zip(seeds).collect(), logs: BTreeMap::new() }
    }

    fn finding(arm: &str) -> Finding {
        Finding {
            claim: "problem-solving data helps more than web text".into(),
            arm: arm.into(),
            baseline: "base1".into(),
            benchmark: "gsm8k".into(),
            group: None,
            value: None,
            metric: Metric::Loss,
        }
    }

    #[test]
    fn a_difference_beyond_the_seed_spread_holds_or_reverses() -> Result<()> {
        let arms = vec![
            results("base1", &[1.40, 1.35, 1.50]),
            results("test2", &[1.10, 1.20, 1.15]),
            results("test3", &[1.60, 1.65, 1.70]),
            results("test1", &[1.30, 1.55, 1.42]),
        ];
        let (verdict, sentence) = judge(&finding("test2"), &arms)?;
        assert_eq!(verdict, Verdict::Held);
        assert_eq!(
            sentence,
            "Held: test2's gsm8k loss is 0.2667 lower than base1's (95% interval of the difference -0.4227 to \
             -0.1106), beyond the seed spread."
        );
        assert_eq!(judge(&finding("test3"), &arms)?.0, Verdict::Reversed);
        let (verdict, sentence) = judge(&finding("test1"), &arms)?;
        assert_eq!(verdict, Verdict::WithinSeedSpread, "{sentence}");
        assert!(sentence.starts_with("Not shown: test1's gsm8k loss is 0.0067 higher than base1's"), "{sentence}");
        Ok(())
    }

    #[test]
    fn one_seed_or_a_missing_arm_is_said_not_guessed() -> Result<()> {
        let arms = vec![results("base1", &[1.4]), results("test2", &[1.1, 1.2])];
        let (verdict, sentence) = judge(&finding("test2"), &arms)?;
        assert_eq!(verdict, Verdict::Untestable);
        assert!(sentence.contains("with 2 and 1 seeds"), "{sentence}");
        let error = judge(&finding("test9"), &arms).unwrap_err().to_string();
        assert!(error.contains("no arm `test9`") && error.contains("base1, test2"), "{error}");
        let other = Finding { benchmark: "math500".into(), ..finding("test2") };
        assert_eq!(judge(&other, &arms)?.0, Verdict::Untestable);
        let half = Finding { group: Some("difficulty".into()), ..finding("test2") };
        let error = judge(&half, &arms).unwrap_err().to_string();
        assert!(error.contains("give both group and value"), "{error}");
        Ok(())
    }

    /// An experiment folder as evaluations leave it: base1 and test2 with three seeds,
    /// one more seed of test2 not evaluated yet.
    async fn experiment_folder(dir: &std::path::Path) -> Result<Lake> {
        let lake = Lake::open(dir.to_str().ok_or_else(|| Error::Internal("path".into()))?)?;
        let arms = [
            with_accuracy("base1", &[1.40, 1.35, 1.50], &[0.05, 0.10, 0.05]),
            with_accuracy("test2", &[1.10, 1.20, 1.15], &[0.10, 0.15, 0.10]),
        ];
        for results in &arms {
            for (seed, groups) in &results.seeds {
                let mut groups = groups.clone();
                groups.push(GroupResult { group: "difficulty".into(), value: "hard".into(), ..groups[0].clone() });
                let json = serde_json::json!({ "checkpoint": "runs/x", "groups": groups });
                let location =
                    lake.root().join(&format!("experiments/rq1/{}/seed-{seed}/eval/report.json", results.arm));
                put(&location, serde_json::to_vec(&json)?).await?;
            }
        }
        put(&lake.root().join("experiments/rq1/test2/seed-4/run/log.jsonl"), b"{}".to_vec()).await?;
        // Two of base1's runs left their training logs: two updates and a validation each.
        for seed in [1u64, 2] {
            let record = |step: u64, split: &str, loss: f64, sources: &[(&str, u64)]| LogRecord {
                step,
                split: split.into(),
                loss,
                lr: None,
                grad_norm: None,
                tokens_per_s: None,
                tokens_seen: step * 4096,
                source_tokens: sources.iter().map(|(name, n)| (name.to_string(), *n)).collect(),
                epoch: 0,
            };
            let log = [
                record(1, "train", 9.0, &[("general", 3000), ("web_math", 1096)]),
                record(2, "train", 8.0, &[("general", 6100), ("web_math", 2092)]),
                record(2, "validation", 7.5 + seed as f64 / 10.0, &[("all", 900)]),
            ];
            let mut jsonl = Vec::new();
            for line in &log {
                serde_json::to_writer(&mut jsonl, line)?;
                jsonl.push(b'\n');
            }
            put(&lake.root().join(&format!("experiments/rq1/base1/seed-{seed}/run/log.jsonl")), jsonl).await?;
        }
        Ok(lake)
    }

    #[tokio::test]
    async fn the_report_reads_every_seed_and_judges_the_findings() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let lake = experiment_folder(dir.path()).await?;
        let findings = dir.path().join("findings.toml");
        std::fs::write(
            &findings,
            "[[finding]]\nclaim = \"Problem-solving data lowers GSM8K loss\"\narm = \"test2\"\nbaseline = \"base1\"\n\
             benchmark = \"gsm8k\"\n\n[[finding]]\nclaim = \"and raises accuracy\"\narm = \"test2\"\n\
             baseline = \"base1\"\nbenchmark = \"gsm8k\"\nmetric = \"accuracy\"\n\n[[finding]]\nclaim = \"on hard items\"\n\
             arm = \"test2\"\nbaseline = \"base1\"\nbenchmark = \"gsm8k\"\ngroup = \"difficulty\"\nvalue = \"hard\"\n",
        )?;
        let spec = ReportSpec {
            name: None,
            experiment: "{lake}/experiments/rq1".into(),
            baseline: "base1".into(),
            findings: Some(findings.clone()),
        };
        let report = report(&lake, &spec).await?;
        assert_eq!(report.arms, [("base1".to_string(), vec![1, 2, 3]), ("test2".to_string(), vec![1, 2, 3])]);
        assert_eq!(report.missing, ["test2/seed-4"]);
        let verdicts: Vec<Verdict> = report.findings.iter().map(|f| f.verdict).collect();
        assert_eq!(verdicts, [Verdict::Held, Verdict::WithinSeedSpread, Verdict::Held]);
        assert!(report.findings[2].sentence.starts_with("Held: test2's gsm8k difficulty hard loss is 0.2667 lower"));
        let markdown = std::fs::read_to_string(dir.path().join("experiments/rq1/report.md"))?;
        assert!(markdown.contains("- test2: seeds 1, 2, 3\n- not evaluated yet: test2/seed-4"), "{markdown}");
        assert!(markdown.contains("  Held: test2's gsm8k loss is 0.2667 lower than base1's"), "{markdown}");
        assert!(markdown.contains("| gsm8k difficulty hard | seeds |"), "{markdown}");
        assert_eq!(markdown.matches("| test2 | 3 | 1.1500 +- 0.0500 | -0.2667 (-0.4227 to -0.1106) * |").count(), 2);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("experiments/rq1/report.json"))?)?;
        assert_eq!(json["findings"][1]["verdict"], "within_seed_spread");
        assert!(
            markdown.contains("![gsm8k loss](gsm8k-loss.png)\n![gsm8k accuracy](gsm8k-accuracy.png)"),
            "{markdown}"
        );
        for plot in ["gsm8k-loss.png", "gsm8k-accuracy.png"] {
            let png = std::fs::read(dir.path().join("experiments/rq1").join(plot))?;
            assert!(png.starts_with(b"\x89PNG"), "{plot}");
        }
        // The runs' logs: a table of what each trained on, and their validation curves.
        assert!(markdown.contains("## Training\n\n![curves-validation.png](curves-validation.png)\n"), "{markdown}");
        assert!(
            markdown.contains("| arm | seed | steps | tokens | loss tokens per source | validation |"),
            "{markdown}"
        );
        assert!(markdown.contains("| base1 | 2 | 2 | 8,192 | general 6,100, web_math 2,092 | 7.7000 |"), "{markdown}");
        assert!(!markdown.contains("| test2 | 1 |"), "test2's runs have no logs: {markdown}");
        let curves = std::fs::read(dir.path().join("experiments/rq1/curves-validation.png"))?;
        assert!(curves.starts_with(b"\x89PNG"));
        assert_eq!(report.plots.len(), 3);
        Ok(())
    }

    #[tokio::test]
    async fn bad_experiments_and_findings_are_clear_errors() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let lake = experiment_folder(dir.path()).await?;
        let spec = |experiment: &str, baseline: &str, findings: Option<PathBuf>| ReportSpec {
            name: None,
            experiment: experiment.into(),
            baseline: baseline.into(),
            findings,
        };
        let error = |spec: ReportSpec| {
            let lake = lake.clone();
            async move {
                let error = report(&lake, &spec).await.expect_err("an error");
                format!("{error} {}", error.hint_text().unwrap_or_default())
            }
        };
        let message = error(spec("{lake}/experiments/none", "base1", None)).await;
        assert!(
            message.contains("no evaluated seeds under") && message.contains("seed-{n}/eval/report.json"),
            "{message}"
        );
        let message = error(spec("{lake}/experiments/rq1", "base9", None)).await;
        assert!(message.contains("no arm `base9` among the evaluated arms (base1, test2)"), "{message}");
        let findings = dir.path().join("findings.toml");
        std::fs::write(
            &findings,
            "[[finding]]\nclaim = \"x\"\narm = \"test2\"\nbaseline = \"base1\"\nbench = \"gsm8k\"\n",
        )?;
        let message = error(spec("{lake}/experiments/rq1", "base1", Some(findings))).await;
        assert!(message.contains("findings.toml") && message.contains("unknown field `bench`"), "{message}");
        put(&lake.root().join("experiments/rq1/base1/seed-9/eval/report.json"), b"{\"groups\": 3}".to_vec()).await?;
        let message = error(spec("{lake}/experiments/rq1", "base1", None)).await;
        assert!(message.contains("seed-9/eval/report.json is not an evaluation report"), "{message}");
        Ok(())
    }

    #[test]
    fn the_table_shows_each_arm_against_the_baseline() -> Result<()> {
        let arms = vec![
            with_accuracy("base1", &[1.40, 1.35, 1.50], &[0.05, 0.10, 0.05]),
            with_accuracy("test2", &[1.10, 1.20, 1.15], &[0.10, 0.15, 0.10]),
        ];
        let table = table(&arms, "base1", &Slice::all("gsm8k"))?;
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "| gsm8k | seeds | loss | loss - base1 (95%) | accuracy | accuracy - base1 (95%) |");
        assert_eq!(lines[2], "| base1 | 3 | 1.4167 +- 0.0764 | baseline | 0.0667 +- 0.0289 | baseline |");
        // Accuracy: Welch's df 4, t 2.7764, standard error 0.02357.
        assert_eq!(
            lines[3],
            "| test2 | 3 | 1.1500 +- 0.0500 | -0.2667 (-0.4227 to -0.1106) * | 0.1167 +- 0.0289 | +0.0500 (-0.0154 to +0.1154) |"
        );
        Ok(())
    }
}
