//! `mathlake run JOB`: a job file's stages in order, each reported as it ends.

use std::collections::HashMap;
use std::path::Path;

use super::dedup::{print_decontamination, print_dedup};
use super::eval::print_eval;
use super::ingest::print_ingest;
use super::shards::print_shards;
use super::sql::print_statement;
use super::synthesize::print_synthesis;
use super::tokenize::{print_tokenize, print_trained_tokenizer};
use super::train::print_train;
use super::{Cli, print_json};
use crate::error::Result;
use crate::experiment::arm::ArmReport;
use crate::job::log::RunLog;
use crate::job::schedule::Stop;
use crate::job::{Job, ProgressUnit, Stage, StageReport};
use crate::lake::Lake;
use crate::terminal;

pub async fn run(cli: &Cli, job: &Path, dry_run: bool, force: bool, until: Option<&str>) -> Result<()> {
    let mut loaded = Job::load(job)?;
    if let Some(last) = until {
        loaded.until(last)?;
    }
    let lake = cli.open_lake(loaded.lake.as_deref())?;
    let stages = run_with_needs(cli, &loaded, &lake, dry_run, force, &Stop::never()).await?;
    if cli.json {
        return print_json(&stages);
    }
    Ok(())
}

/// The jobs that make this one's tables first, on the same lake, then this one; `force`
/// is for this job alone. With --json, their stages come first in the one array.
pub(super) async fn run_with_needs(
    cli: &Cli,
    loaded: &Job,
    lake: &Lake,
    dry_run: bool,
    force: bool,
    stop: &Stop,
) -> Result<Vec<serde_json::Value>> {
    let mut stages = Vec::new();
    for needed in loaded.needed()? {
        if !dry_run && !cli.json {
            println!("== job {} first: this job needs its tables", needed.label);
        }
        stages.extend(run_job(cli, &needed, lake, dry_run, false, stop).await?);
    }
    stages.extend(run_job(cli, loaded, lake, dry_run, force, stop).await?);
    Ok(stages)
}

/// Runs (or with `dry_run` plans) one job, printing as it goes unless --json; returns
/// its stages' reports (or decisions) for --json.
async fn run_job(
    cli: &Cli,
    loaded: &Job,
    lake: &Lake,
    dry_run: bool,
    force: bool,
    stop: &Stop,
) -> Result<Vec<serde_json::Value>> {
    let threads = cli.threads();
    let lake = lake.clone();
    let log_location = RunLog::location(&lake, &loaded.label);
    if dry_run {
        let log = RunLog::read(&log_location, &loaded.label).await?;
        let decisions = loaded.decide(&lake, threads, force, &log).await?;
        if cli.json {
            return decisions.iter().map(|d| Ok(serde_json::to_value(d)?)).collect();
        }
        println!("job {}\nlake: {}\nrun log: {}", loaded.label, lake.root(), log_location.url());
        for d in decisions {
            let verdict = match &d.reason {
                Some(reason) => format!("runs ({reason})"),
                None => "skipped (its last run stands)".into(),
            };
            println!("stage {}: {verdict}\n{}", d.name, serde_json::to_string_pretty(&d.settings)?);
        }
        return Ok(Vec::new());
    }
    // SQL stages show their results cut as their own settings say.
    let widths: HashMap<String, usize> = loaded
        .stages
        .iter()
        .enumerate()
        .filter_map(|(i, stage)| match stage {
            Stage::Sql(spec) => Some((stage.name(i), spec.max_width())),
            _ => None,
        })
        .collect();
    let quiet = cli.quiet;
    let json = cli.json;
    let reports = loaded
        .run(
            &lake,
            threads,
            quiet,
            force,
            stop,
            &log_location,
            |name, unit| match unit {
                ProgressUnit::Bytes => terminal::byte_bar(name, quiet),
                ProgressUnit::Rows => terminal::row_spinner(name, quiet),
                ProgressUnit::Items => terminal::item_bar(name, quiet),
            },
            |report| {
                if !json {
                    print_stage(report, &widths);
                }
            },
        )
        .await?;
    if json {
        return reports.iter().map(|r| Ok(serde_json::to_value(r)?)).collect();
    }
    let skipped = reports.iter().filter(|r| matches!(r, StageReport::Skipped { .. })).count();
    println!(
        "job {} done: {} stages run, {skipped} skipped as unchanged; run log {}",
        loaded.label,
        reports.len() - skipped,
        log_location.url()
    );
    for (what, url) in loaded.results(&lake)? {
        println!("{what}: {url}");
    }
    println!("`mathlake tables --lake {}` lists the tables", lake.root());
    Ok(Vec::new())
}

/// One stage's report as its own command prints it, under the stage's name.
fn print_stage(report: &StageReport, widths: &HashMap<String, usize>) {
    let name = report.name();
    if let StageReport::Skipped { since, .. } = report {
        println!("== stage {name}: skipped, unchanged since its run of {since} (--force reruns)");
        return;
    }
    println!("== stage {name}");
    match report {
        StageReport::Ingest { summary, .. } => {
            let _ = print_ingest(summary);
        }
        StageReport::Sql { statements, .. } => {
            let width = widths.get(name).copied().unwrap_or(60);
            for statement in statements {
                // The stage kept as many rows as its `show` setting asks for.
                let _ = print_statement(statement, usize::MAX, width);
            }
        }
        StageReport::Dedup { report, .. } => print_dedup(report),
        StageReport::Decontaminate { report, .. } => print_decontamination(report),
        StageReport::Synthesize { report, .. } => print_synthesis(report),
        StageReport::Tokenizer { report, .. } => print_trained_tokenizer(report),
        StageReport::Tokenize { report, .. } => print_tokenize(report),
        StageReport::Shards { report, .. } => print_shards(report),
        StageReport::Train { report, .. } => print_train(report),
        StageReport::Eval { report, .. } => print_eval(report),
        StageReport::Arm { report, .. } => print_arm(report),
        StageReport::Report { report, .. } => println!("experiment report: {}", report.report),
        StageReport::Skipped { .. } => {}
    }
}

/// An arm's seeds: steps, best validation loss and each benchmark's loss and accuracy.
fn print_arm(report: &ArmReport) {
    let packed = if report.packed { "" } else { " (shards kept from the interrupted run)" };
    println!("arm {} in {}{packed}, {:.0} s", report.arm, report.folder, report.seconds);
    for seed in &report.seeds {
        let benchmarks: Vec<String> = seed
            .benchmarks
            .iter()
            .map(|(name, loss, accuracy)| {
                let loss = loss.map_or("-".into(), |l| format!("{l:.4}"));
                let accuracy = accuracy.map_or("-".into(), |a| format!("{:.1}%", 100.0 * a));
                format!("{name} loss {loss} accuracy {accuracy}")
            })
            .collect();
        let ran = if seed.ran { format!("{:.0} s", seed.seconds) } else { "kept".into() };
        println!(
            "seed {}: {} steps, {} tokens, validation {} · {} ({ran})",
            seed.seed,
            seed.steps,
            terminal::count(seed.tokens_seen),
            seed.validation_loss.map_or("-".into(), |v| format!("{v:.4}")),
            benchmarks.join(" · ")
        );
    }
}
