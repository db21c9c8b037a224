//! `mathlake synthesize`.

use super::{Cli, print_json};
use crate::error::Result;
use crate::synthesize::{self, SynthesizeReport, SynthesizeSpec};
use crate::terminal;

pub async fn run(cli: &Cli, spec: &SynthesizeSpec) -> Result<()> {
    let lake = cli.open_lake(None)?;
    let options = spec.to_options()?;
    let bar = terminal::row_spinner("synthesize", cli.quiet);
    let report = synthesize::synthesize(&lake, &options, &bar).await;
    bar.finish_and_clear();
    let report = report?;
    if cli.json {
        return print_json(&serde_json::json!({ "synthesize": report }));
    }
    print_synthesis(&report);
    Ok(())
}

pub(super) fn print_synthesis(report: &SynthesizeReport) {
    println!(
        "{}: {} problems of {} x {} rollout(s) -> {} records in {}: {} accepted ({:.1}%), {} rejected, {} failed ({:.1} s)",
        report.method,
        terminal::count(report.problems),
        report.input,
        report.rollouts,
        terminal::count(report.records),
        report.to,
        terminal::count(report.accepted),
        100.0 * report.acceptance_rate(),
        terminal::count(report.rejected),
        terminal::count(report.failed),
        report.seconds
    );
    for (reason, n) in &report.reasons {
        println!("  {reason}: {}", terminal::count(*n));
    }
    if let Some(cache) = &report.cache {
        println!(
            "  requests: {} sent ({} retries), {} answered from the cache; tokens: {} in, {} out; {} replies stored",
            terminal::count(report.requests),
            terminal::count(report.retries),
            terminal::count(report.cache_hits),
            terminal::count(report.tokens_in),
            terminal::count(report.tokens_out),
            terminal::count(cache.stored),
        );
    }
}
