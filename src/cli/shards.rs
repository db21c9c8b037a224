//! `mathlake shards build` and `mathlake shards inspect`.

use super::{Cli, peak_rss_bytes, print_json};
use crate::error::Result;
use crate::shards::manifest::Manifest;
use crate::shards::mixture::Mode;
use crate::shards::{self, BuildReport, BuildSpec};
use crate::terminal;

pub async fn build(cli: &Cli, spec: &BuildSpec) -> Result<()> {
    let lake = cli.open_lake(None)?;
    let options = spec.to_options(&lake)?;
    let bar = terminal::row_spinner("shards build", cli.quiet);
    let report = shards::build(&lake, &options, &bar).await;
    bar.finish_and_clear();
    let report = report?;
    if cli.json {
        return print_json(&serde_json::json!({ "shards": report, "peak_rss_bytes": peak_rss_bytes() }));
    }
    print_shards(&report);
    Ok(())
}

pub async fn inspect(cli: &Cli, url: &str, rows: usize, tokenizer: Option<&str>, max_width: usize) -> Result<()> {
    let inspection = shards::inspect(url, rows, tokenizer).await?;
    if cli.json {
        return print_json(&inspection);
    }
    print_shard_manifest(&inspection.manifest, url);
    for (i, sample) in inspection.samples.iter().enumerate() {
        let cut = if max_width > 0 && sample.chars().count() > max_width {
            format!("{}…", sample.chars().take(max_width).collect::<String>())
        } else {
            sample.clone()
        };
        println!("\n-- train row {i} --\n{cut}");
    }
    Ok(())
}

pub(super) fn print_shards(report: &BuildReport) {
    print_shard_manifest(&report.manifest, &report.to);
    println!("built in {:.1} s", report.seconds);
}

/// The manifest in short, and each source's share of the training tokens, asked for and got.
fn print_shard_manifest(m: &Manifest, url: &str) {
    let mode = match m.mixture.mode {
        Mode::Cpt => "cpt",
        Mode::Sft => "sft",
    };
    println!(
        "{url}: mixture {} ({mode}, seed {}, sequence length {}), tokenizer {} (EOS {}), {}-byte tokens",
        m.mixture.name, m.mixture.seed, m.mixture.sequence_length, m.tokenizer.source, m.tokenizer.eos, m.token_width
    );
    for (name, split) in [("train", &m.train), ("validation", &m.validation)] {
        println!(
            "{name}: {} rows, {} tokens ({} in the loss) in {} shards",
            terminal::count(split.rows),
            terminal::count(split.tokens),
            terminal::count(split.loss_tokens),
            split.shards.len()
        );
    }
    let requested: u64 = m.sources.iter().map(|s| s.train.requested_tokens).sum::<u64>().max(1);
    let emitted: u64 = m.sources.iter().map(|s| s.train.emitted_tokens).sum::<u64>().max(1);
    println!(
        "{:<16} {:>12} {:>12} {:>9} {:>9} {:>7} {:>12}",
        "source", "requested", "emitted", "share", "asked", "epochs", "validation"
    );
    for s in &m.sources {
        println!(
            "{:<16} {:>12} {:>12} {:>8.2}% {:>8.2}% {:>7.2} {:>12}",
            s.name,
            terminal::count(s.train.requested_tokens),
            terminal::count(s.train.emitted_tokens),
            100.0 * s.train.emitted_tokens as f64 / emitted as f64,
            100.0 * s.train.requested_tokens as f64 / requested as f64,
            s.train.epochs,
            terminal::count(s.validation.emitted_tokens)
        );
    }
}
