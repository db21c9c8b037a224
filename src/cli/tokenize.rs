//! `mathlake tokenize` and `mathlake tokenizer train`.

use super::{Cli, peak_rss_bytes, print_json};
use crate::error::Result;
use crate::terminal;
use crate::tokenize::{self, TokenizeReport, TokenizeSpec, TrainTokenizerReport, TrainTokenizerSpec};

pub async fn tokenize(cli: &Cli, spec: &TokenizeSpec) -> Result<()> {
    let lake = cli.open_lake(None)?;
    let options = spec.to_options(&lake, cli.threads())?;
    let bar = terminal::row_spinner("tokenize", cli.quiet);
    let report = tokenize::tokenize(&lake, &options, &bar).await;
    bar.finish_and_clear();
    let report = report?;
    if cli.json {
        return print_json(&serde_json::json!({ "tokenize": report, "peak_rss_bytes": peak_rss_bytes() }));
    }
    print_tokenize(&report);
    Ok(())
}

pub async fn train_tokenizer(cli: &Cli, spec: &TrainTokenizerSpec) -> Result<()> {
    let lake = cli.open_lake(None)?;
    let options = spec.to_options(&lake)?;
    let bar = terminal::row_spinner("tokenizer train", cli.quiet);
    let report = tokenize::train_tokenizer(&lake, &options, &bar).await;
    bar.finish_and_clear();
    let report = report?;
    if cli.json {
        return print_json(&report);
    }
    print_trained_tokenizer(&report);
    Ok(())
}

pub(super) fn print_tokenize(report: &TokenizeReport) {
    let per_core = report.text_bytes as f64 / report.seconds.max(1e-9) / report.threads as f64;
    println!(
        "{} rows ({}) -> {} rows, {} tokens ({} in the SFT loss) in {}; {} skipped for a null in {}; {:.1} s, {}/s per thread ({} encoder)",
        terminal::count(report.input_rows),
        terminal::bytes(report.text_bytes),
        terminal::count(report.output_rows),
        terminal::count(report.tokens),
        terminal::count(report.loss_tokens),
        report.to,
        terminal::count(report.skipped_null),
        report.template.columns().join(", "),
        report.seconds,
        terminal::bytes(per_core as u64),
        if report.encoder == tokenize::Engine::Fast { "fast" } else { "Hugging Face" },
    );
    if let Some(update) = &report.update {
        println!("  {update}");
    }
    if let Some(why) = &report.encoder_fallback {
        eprintln!(
            "note: the fast encoder cannot encode with {}: {why}; Hugging Face tokenizers encoded instead",
            report.tokenizer.source
        );
    }
}

pub(super) fn print_trained_tokenizer(report: &TrainTokenizerReport) {
    println!(
        "trained a byte-level BPE of {} tokens (EOS {} = {}) on {} texts ({}) in {:.1} s: {}",
        terminal::count(report.tokenizer.vocab_size as u64),
        report.tokenizer.eos,
        report.tokenizer.eos_id,
        terminal::count(report.texts),
        terminal::bytes(report.text_bytes),
        report.seconds,
        report.to
    );
}
