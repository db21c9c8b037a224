//! The part of `mathlake report` that turns evaluations into findings: each arm's metric
//! over its seeds (mean and spread), its difference to the baseline arm with a 95%
//! interval, and one sentence per finding saying whether the expected direction held here
//! and whether the difference is larger than what the seeds alone move.

use std::fmt::Write;

use serde::Deserialize;

use super::stats::{Difference, Spread};
use crate::error::{Error, Result};
use crate::eval::report::GroupResult;

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
    #[serde(default = "loss")]
    pub metric: Metric,
}

fn loss() -> Metric {
    Metric::Loss
}

/// What the seeds say about a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    let slice = Slice::all(&finding.benchmark);
    let metric = finding.metric;
    let (a, b) =
        (arm(arms, &finding.arm)?.spread(&slice, metric), arm(arms, &finding.baseline)?.spread(&slice, metric));
    let what = format!("{}'s {} {}", finding.arm, finding.benchmark, metric.name());
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
    out.push_str("\n`*`: the interval leaves out zero (the arms differ by more than their seeds do).\n");
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
        ArmResults { arm: arm.into(), seeds: (1..).zip(seeds).collect() }
    }

    fn finding(arm: &str) -> Finding {
        Finding {
            claim: "problem-solving data helps more than web text".into(),
            arm: arm.into(),
            baseline: "base1".into(),
            benchmark: "gsm8k".into(),
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
