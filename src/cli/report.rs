//! `mathlake report`.

use super::{Cli, print_json};
use crate::error::Result;
use crate::experiment::report::{self, ReportSpec};

pub async fn run(cli: &Cli, spec: &ReportSpec) -> Result<()> {
    let lake = cli.open_lake(None)?;
    let report = report::report(&lake, spec).await?;
    if cli.json {
        return print_json(&report);
    }
    for (arm, seeds) in &report.arms {
        println!("{arm}: {} seeds", seeds.len());
    }
    if !report.missing.is_empty() {
        println!("not evaluated yet: {}", report.missing.join(", "));
    }
    for finding in &report.findings {
        println!("{}\n  {}", finding.claim, finding.sentence);
    }
    println!("tables per benchmark, level and difficulty in {}", report.report);
    Ok(())
}
