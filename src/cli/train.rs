//! `mathlake train`.

use super::{Cli, print_json};
use crate::error::Result;
use crate::terminal;
use crate::train::{self, TrainReport, TrainSpec};

pub async fn run(cli: &Cli, spec: &TrainSpec) -> Result<()> {
    let lake = cli.open_lake(None)?;
    let config = spec.config(&lake)?;
    let options = train::TrainOptions { resume: spec.resume, stop_after: spec.stop_after, quiet: cli.quiet };
    let report = train::train(&config, options).await?;
    if cli.json {
        return print_json(&report);
    }
    print_train(&report);
    Ok(())
}

pub(super) fn print_train(r: &TrainReport) {
    println!(
        "trained {} parameters for {}/{} steps ({} tokens) in {:.0} s, {} tokens/s",
        terminal::count(r.parameters as u64),
        r.steps_done,
        r.total_steps,
        terminal::count(r.tokens_seen),
        r.seconds,
        terminal::count(r.tokens_per_s as u64)
    );
    println!("train loss {:.4} (last steps)", r.train_loss);
    if let Some(v) = r.validation_loss {
        println!("validation loss {v:.4}, unigram entropy of the validation tokens {:.4}", r.unigram_entropy);
    }
    if let Some(b) = r.best {
        println!("best checkpoint: step {} (validation loss {:.4})", b.step, b.validation_loss);
    }
    println!("run folder: {} ({} and {} inside)", r.out, train::LOG, train::PLOT);
}
