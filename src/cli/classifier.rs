//! `mathlake classifier train` and `mathlake classifier eval`.

use super::{ClassifierCommand, Cli, print_json};
use crate::curate;
use crate::error::Result;
use crate::functions;
use crate::lake;
use crate::terminal;
use crate::text::classifier::{self, MathClassifier, TrainOptions};

pub async fn run(cli: &Cli, command: &ClassifierCommand) -> Result<()> {
    let lake = cli.open_lake(None)?;
    match command {
        ClassifierCommand::Train { positive, negative, out, holdout, epochs, bits } => {
            let options = TrainOptions { holdout: *holdout, epochs: *epochs, bits: *bits, ..TrainOptions::default() };
            let started = std::time::Instant::now();
            let model = curate::train_classifier(&lake, positive, negative, options).await?;
            lake::put(&lake::Location::parse(out)?, model.to_bytes()?).await?;
            if cli.json {
                return print_json(&model.info);
            }
            let t = &model.info.training;
            println!(
                "trained on {} math and {} other texts in {:.1}s; wrote {}",
                terminal::count(t.positive as u64),
                terminal::count(t.negative as u64),
                started.elapsed().as_secs_f64(),
                out
            );
            print_metrics("held out", &model.info.heldout);
            Ok(())
        }
        ClassifierCommand::Eval { model, positive, negative } => {
            let loaded;
            let model = match model {
                Some(url) => {
                    loaded = functions::math_score_model(url)?;
                    &*loaded
                }
                None => MathClassifier::builtin(),
            };
            let metrics = curate::evaluate_classifier(&lake, model, positive, negative).await?;
            if cli.json {
                return print_json(&metrics);
            }
            print_metrics("evaluated", &metrics);
            Ok(())
        }
    }
}

fn print_metrics(label: &str, m: &classifier::Metrics) {
    println!(
        "{label}: {} math, {} other: AUC {:.4}, precision {:.4}, recall {:.4}, accuracy {:.4} (threshold 0.5)",
        terminal::count(m.examples.positive as u64),
        terminal::count(m.examples.negative as u64),
        m.auc,
        m.precision,
        m.recall,
        m.accuracy
    );
}
