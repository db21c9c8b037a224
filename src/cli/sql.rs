//! `mathlake sql FILE` and `mathlake functions`.

use super::{Cli, peak_rss_bytes, print_json};
use crate::curate::script::{self, SqlSpec, StatementReport};
use crate::error::{Error, Result};
use crate::functions;
use crate::terminal;

pub async fn run(cli: &Cli, spec: &SqlSpec) -> Result<()> {
    let lake = cli.open_lake(None)?;
    let file = &spec.file;
    let sql = std::fs::read_to_string(file).map_err(|e| Error::user(format!("cannot read {}: {e}", file.display())))?;
    let options = spec.to_options()?;
    let bar = terminal::row_spinner("sql", cli.quiet);
    let reports = script::run(&lake, &file.display().to_string(), &sql, &options, &bar).await;
    bar.finish_and_clear();
    let reports = reports?;
    if cli.json {
        return print_json(&serde_json::json!({ "statements": reports, "peak_rss_bytes": peak_rss_bytes() }));
    }
    for r in &reports {
        print_statement(r, options.show_rows, spec.max_width())?;
    }
    Ok(())
}

pub fn list_functions(cli: &Cli) -> Result<()> {
    let functions = functions::library();
    if cli.json {
        let list: Vec<_> = functions
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name(), "section": f.doc().doc_section.label,
                    "syntax": f.doc().syntax_example, "description": f.doc().description,
                })
            })
            .collect();
        return print_json(&list);
    }
    let mut section = "";
    for f in &functions {
        if f.doc().doc_section.label != section {
            section = f.doc().doc_section.label;
            println!("{section}:");
        }
        println!("  {:<40} {}", f.doc().syntax_example, f.doc().description);
    }
    Ok(())
}

pub(super) fn print_statement(r: &StatementReport, show: usize, max_width: usize) -> Result<()> {
    let target = r.target.as_deref().map(|t| format!(" -> {t}")).unwrap_or_default();
    println!(
        "[{}] line {:<4} {:<24} {:>12} rows  {:.2}s",
        r.index,
        r.line,
        format!("{}{target}", r.kind),
        terminal::count(r.rows),
        r.seconds
    );
    if let Some(update) = &r.update {
        println!("    {update}");
    }
    if let Some((_, batches)) = &r.shown
        && r.rows > 0
        && show > 0
    {
        print!("{}", terminal::table(batches, show, max_width)?);
    }
    Ok(())
}
