//! `mathlake dedup` and `mathlake decontaminate`.

use super::{Cli, peak_rss_bytes, print_json};
use crate::decontaminate::{self, DecontamReport, DecontamSpec};
use crate::dedup::{self, DedupReport, DedupSpec};
use crate::error::Result;
use crate::terminal;

pub async fn dedup(cli: &Cli, spec: &DedupSpec) -> Result<()> {
    let lake = cli.open_lake(None)?;
    let options = spec.to_options()?;
    let bar = terminal::row_spinner("dedup", cli.quiet);
    let report = dedup::dedup(&lake, &options, &bar).await;
    bar.finish_and_clear();
    let report = report?;
    if cli.json {
        return print_json(&serde_json::json!({ "dedup": report, "peak_rss_bytes": peak_rss_bytes() }));
    }
    print_dedup(&report);
    Ok(())
}

pub async fn decontaminate(cli: &Cli, spec: &DecontamSpec) -> Result<()> {
    let lake = cli.open_lake(None)?;
    let options = spec.to_options()?;
    let bar = terminal::row_spinner("decontaminate", cli.quiet);
    let report = decontaminate::decontaminate(&lake, &options, &bar).await;
    bar.finish_and_clear();
    let report = report?;
    if cli.json {
        return print_json(&serde_json::json!({ "decontaminate": report, "peak_rss_bytes": peak_rss_bytes() }));
    }
    print_decontamination(&report);
    Ok(())
}

pub(super) fn print_dedup(report: &DedupReport) {
    println!(
        "{} rows -> {} kept in {}, {} removed as duplicates (clusters: {}; candidate pairs: {}, turned down by verification: {}) in {:.1} s",
        terminal::count(report.input_rows),
        terminal::count(report.output_rows),
        report.to,
        terminal::count(report.removed),
        terminal::count(report.clusters),
        terminal::count(report.candidate_pairs),
        terminal::count(report.rejected_pairs),
        report.seconds
    );
    if let Some(clusters) = &report.clusters_to {
        println!("clusters: {clusters}");
    }
    if let Some(update) = &report.update {
        println!("  {update}");
    }
}

pub(super) fn print_decontamination(report: &DecontamReport) {
    println!(
        "{} rows ({}) compared on {}-grams of {}: {} removed, {} kept in {}; overlaps in {} ({:.1} s)",
        terminal::count(report.input_rows),
        terminal::bytes(report.text_bytes),
        report.ngram,
        report.columns.join(", "),
        terminal::count(report.removed),
        terminal::count(report.output_rows),
        report.to,
        report.report,
        report.seconds
    );
    if let Some(update) = &report.update {
        println!("  {update}");
    }
    println!(
        "{:<16} {:>8} {:>10} {:>16} {:>16}",
        "benchmark", "items", "items hit", "records flagged", "records removed"
    );
    for b in &report.benchmarks {
        println!(
            "{:<16} {:>8} {:>10} {:>16} {:>16}",
            b.name,
            terminal::count(b.items),
            terminal::count(b.items_hit),
            terminal::count(b.records_flagged),
            terminal::count(b.records_removed)
        );
    }
}
