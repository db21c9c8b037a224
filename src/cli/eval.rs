//! `mathlake eval`.

use super::{Cli, print_json};
use crate::error::Result;
use crate::eval::{self, EvalReport, EvalSpec};
use crate::terminal;

pub async fn run(cli: &Cli, spec: &EvalSpec) -> Result<()> {
    let lake = cli.open_lake(None)?;
    let options = spec.to_options(&lake)?;
    let bar = terminal::item_bar("eval", cli.quiet);
    let report = eval::eval(&lake, &options, &bar).await;
    bar.finish_and_clear();
    let report = report?;
    if cli.json {
        return print_json(&report);
    }
    print_eval(&report);
    Ok(())
}

pub(super) fn print_eval(report: &EvalReport) {
    println!("{:<12} {:>6} {:>10} {:>10} {:>9}", "benchmark", "items", "loss", "generated", "accuracy");
    for g in report.overall() {
        println!(
            "{:<12} {:>6} {:>10} {:>10} {:>9}",
            g.benchmark,
            g.items,
            g.loss.map_or("-".into(), |l| format!("{l:.4}")),
            g.generated,
            g.accuracy.map_or("-".into(), |a| format!("{:.1}%", 100.0 * a)),
        );
    }
    println!(
        "{:.1} s; per level, subject and difficulty in {}/report.md, every item in {}/items.jsonl",
        report.timings.seconds, report.report, report.report
    );
}
