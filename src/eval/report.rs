//! The evaluation report: per-item results, their aggregates per benchmark and per level,
//! subject and difficulty, written as `report.md`, `report.json` and `items.jsonl`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::EvalOptions;
use crate::error::Result;
use crate::lake::Location;
use crate::lake::put;

/// One benchmark item: its loss, and its generation where it was generated.
#[derive(Debug, Clone, Serialize)]
pub struct ItemResult {
    pub benchmark: String,
    pub id: String,
    pub level: Option<String>,
    pub subject: Option<String>,
    pub difficulty: String,
    pub question: String,
    pub gold: String,
    /// Mean NLL per solution token.
    pub loss: Option<f64>,
    pub loss_tokens: usize,
    #[serde(skip)]
    pub nll: f64,
    /// The item was longer than the context: its loss covers the tokens that fitted.
    pub truncated: bool,
    pub generation: Option<String>,
    pub extracted: Option<String>,
    pub correct: Option<bool>,
    /// Exemplars in the prompt (fewer than asked when they did not fit).
    pub shots: usize,
}

/// The aggregate of a set of items: `group` is `all`, `level`, `subject` or `difficulty`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupResult {
    pub benchmark: String,
    pub group: String,
    pub value: String,
    pub items: usize,
    /// Mean NLL per solution token over the group's tokens (items weigh by length).
    pub loss: Option<f64>,
    pub loss_tokens: usize,
    pub generated: usize,
    pub correct: usize,
    pub accuracy: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    pub loss_seconds: f64,
    pub generation_seconds: f64,
    pub generated_tokens: usize,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub checkpoint: String,
    pub tokenizer: String,
    pub report: String,
    pub shots: usize,
    pub max_new_tokens: usize,
    pub limit: Option<usize>,
    pub context: usize,
    pub stop: Vec<String>,
    /// Each benchmark's exemplar questions, in prompt order.
    pub exemplars: BTreeMap<String, Vec<String>>,
    /// Per benchmark: `all` first, then by level, subject and difficulty.
    pub groups: Vec<GroupResult>,
    pub timings: Timings,
    #[serde(skip)]
    pub items: Vec<ItemResult>,
}

impl EvalReport {
    pub(super) fn new(
        checkpoint: String,
        tokenizer: String,
        options: &EvalOptions,
        context: usize,
        exemplars: &BTreeMap<String, Vec<(String, String)>>,
        items: Vec<ItemResult>,
        timings: Timings,
    ) -> EvalReport {
        EvalReport {
            checkpoint,
            tokenizer,
            report: options.report.clone(),
            shots: options.shots,
            max_new_tokens: options.max_new_tokens,
            limit: options.limit,
            context,
            stop: options.stop.clone(),
            exemplars: exemplars.iter().map(|(b, e)| (b.clone(), e.iter().map(|(q, _)| q.clone()).collect())).collect(),
            groups: aggregate(&items),
            timings,
            items,
        }
    }

    /// The `all` row of each benchmark.
    pub fn overall(&self) -> impl Iterator<Item = &GroupResult> {
        self.groups.iter().filter(|g| g.group == "all")
    }

    pub async fn write(&self, folder: &Location) -> Result<()> {
        let mut jsonl = Vec::new();
        for item in &self.items {
            serde_json::to_writer(&mut jsonl, item)?;
            jsonl.push(b'\n');
        }
        put(&folder.join("items.jsonl"), jsonl).await?;
        put(&folder.join("report.json"), serde_json::to_vec_pretty(self)?).await?;
        put(&folder.join("report.md"), self.markdown().into_bytes()).await
    }

    pub fn markdown(&self) -> String {
        let mut md = String::from("# Evaluation\n\n");
        let _ = writeln!(md, "- checkpoint: `{}`", self.checkpoint);
        let _ = writeln!(md, "- tokenizer: `{}`", self.tokenizer);
        let shots = if self.shots == 0 { "zero-shot".to_string() } else { format!("{}-shot", self.shots) };
        let limit = self.limit.map_or("every item".to_string(), |n| format!("the first {n} items by id"));
        let _ = writeln!(
            md,
            "- generation: greedy, {shots}, at most {} new tokens, {limit} of each benchmark; loss: every item",
            self.max_new_tokens
        );
        let _ = writeln!(
            md,
            "- time: {:.1} s (loss {:.1} s, generation {:.1} s for {} tokens)\n",
            self.timings.seconds,
            self.timings.loss_seconds,
            self.timings.generation_seconds,
            self.timings.generated_tokens
        );
        md.push_str("| benchmark | group | value | items | loss (nats/token) | generated | correct | accuracy |\n");
        md.push_str("|---|---|---|---:|---:|---:|---:|---:|\n");
        for g in &self.groups {
            let loss = g.loss.map_or("-".into(), |l| format!("{l:.4}"));
            let accuracy = g.accuracy.map_or("-".into(), |a| format!("{:.1}%", 100.0 * a));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {loss} | {} | {} | {accuracy} |",
                g.benchmark, g.group, g.value, g.items, g.generated, g.correct
            );
        }
        md
    }
}

/// Per benchmark, the `all` group then one per level, subject and difficulty value, each
/// in sorted order (difficulty easy to hard).
fn aggregate(items: &[ItemResult]) -> Vec<GroupResult> {
    let mut groups: BTreeMap<(String, u8, String), GroupResult> = BTreeMap::new();
    for item in items {
        let difficulty_rank = crate::text::DIFFICULTY
            .iter()
            .position(|(name, _)| *name == item.difficulty)
            .unwrap_or(crate::text::DIFFICULTY.len());
        let keys = [
            Some((0, "all", String::new())),
            item.level.clone().map(|l| (1, "level", l)),
            item.subject.clone().map(|s| (2, "subject", s)),
            Some((3, "difficulty", format!("{difficulty_rank}{}", item.difficulty))),
        ];
        for (rank, group, value) in keys.into_iter().flatten() {
            let entry = groups.entry((item.benchmark.clone(), rank, value.clone())).or_insert_with(|| GroupResult {
                benchmark: item.benchmark.clone(),
                group: group.into(),
                value: if group == "difficulty" { item.difficulty.clone() } else { value },
                items: 0,
                loss: None,
                loss_tokens: 0,
                generated: 0,
                correct: 0,
                accuracy: None,
            });
            entry.items += 1;
            let total = entry.loss.unwrap_or(0.0) * entry.loss_tokens as f64 + item.nll;
            entry.loss_tokens += item.loss_tokens;
            entry.loss = (entry.loss_tokens > 0).then(|| total / entry.loss_tokens as f64);
            if let Some(correct) = item.correct {
                entry.generated += 1;
                entry.correct += usize::from(correct);
                entry.accuracy = Some(entry.correct as f64 / entry.generated as f64);
            }
        }
    }
    groups.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(
        benchmark: &str,
        level: Option<&str>,
        difficulty: &str,
        nll: f64,
        tokens: usize,
        correct: Option<bool>,
    ) -> ItemResult {
        ItemResult {
            benchmark: benchmark.into(),
            id: String::new(),
            level: level.map(str::to_string),
            subject: None,
            difficulty: difficulty.into(),
            question: String::new(),
            gold: String::new(),
            loss: Some(nll / tokens as f64),
            loss_tokens: tokens,
            nll,
            truncated: false,
            generation: None,
            extracted: None,
            correct,
            shots: 0,
        }
    }

    /// Losses weigh items by their token counts; accuracy counts only generated items.
    #[test]
    fn groups_weigh_tokens_and_count_generated_items() {
        let items = [
            item("gsm8k", None, "easy", 10.0, 10, Some(true)),
            item("gsm8k", None, "hard", 30.0, 10, Some(false)),
            item("gsm8k", None, "easy", 40.0, 20, None),
            item("math", Some("Level 1"), "medium", 4.0, 2, Some(true)),
        ];
        let groups = aggregate(&items);
        let find = |b: &str, g: &str, v: &str| {
            groups.iter().find(|r| r.benchmark == b && r.group == g && r.value == v).unwrap()
        };
        let all = find("gsm8k", "all", "");
        assert_eq!((all.items, all.loss_tokens, all.generated, all.correct), (3, 40, 2, 1));
        assert!((all.loss.unwrap() - 2.0).abs() < 1e-12, "80 nats over 40 tokens");
        assert_eq!(all.accuracy, Some(0.5));
        let easy = find("gsm8k", "difficulty", "easy");
        assert_eq!((easy.items, easy.generated, easy.accuracy), (2, 1, Some(1.0)));
        assert!(groups.iter().all(|g| g.benchmark != "gsm8k" || g.group != "level"), "GSM8K has no levels");
        assert_eq!(find("math", "level", "Level 1").accuracy, Some(1.0));
        // Difficulty rows run easy, medium, hard.
        let order: Vec<&str> = groups
            .iter()
            .filter(|g| g.benchmark == "gsm8k" && g.group == "difficulty")
            .map(|g| g.value.as_str())
            .collect();
        assert_eq!(order, ["easy", "hard"]);
    }
}
