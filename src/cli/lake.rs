//! `mathlake tables`, `inspect` and `query`: looking at the lake.

use super::{Cli, print_json};
use crate::error::Result;
use crate::lake::SessionOptions;
use crate::lake::vacuum::{Retention, parse_age};
use crate::query;
use crate::terminal;

pub async fn tables(cli: &Cli) -> Result<()> {
    let lake = cli.open_lake(None)?;
    let tables = query::tables(&lake).await?;
    if cli.json {
        return print_json(&tables);
    }
    if tables.is_empty() {
        println!("no tables in {} yet; `mathlake ingest` fills one", lake.root());
    }
    for t in &tables {
        println!(
            "{:<16} {:>12} rows {:>5} files {:>10}  v{} {} {}",
            t.name,
            terminal::count(t.rows),
            t.files,
            terminal::bytes(t.bytes),
            t.version,
            t.operation,
            t.committed_at
        );
    }
    Ok(())
}

pub async fn vacuum(cli: &Cli, table: Option<&str>, older_than: &str, keep: usize, dry_run: bool) -> Result<()> {
    let lake = cli.open_lake(None)?;
    let retention = Retention { before: chrono::Utc::now() - parse_age(older_than)?, keep };
    let results = crate::lake::vacuum::vacuum(&lake, table, retention, dry_run).await?;
    if cli.json {
        return print_json(&results);
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    for r in &results {
        let kept = match (r.versions_kept.first(), r.versions_kept.last()) {
            (Some(first), Some(last)) if first != last => format!("keeps versions {first} to {last}"),
            (Some(only), _) => format!("keeps version {only}"),
            _ => "keeps no version".into(),
        };
        let uncommitted =
            if dry_run { String::new() } else { format!(", {} uncommitted files", r.uncommitted_removed) };
        println!(
            "{:<16} {verb} {} versions, {} data files ({}){uncommitted}; {kept}",
            r.table,
            r.versions_removed.len(),
            r.files_removed,
            terminal::bytes(r.bytes_removed),
        );
    }
    Ok(())
}

pub async fn inspect(cli: &Cli, target: &str, rows: usize, max_width: usize) -> Result<()> {
    let lake = cli.open_lake(None)?;
    let inspection = query::inspect(&lake, target, rows).await?;
    if cli.json {
        return print_json(&inspection);
    }
    print_inspection(&inspection, rows, max_width)
}

pub async fn query(
    cli: &Cli,
    sql: &str,
    limit: usize,
    max_width: usize,
    memory_limit: Option<&str>,
    engine: Option<&str>,
) -> Result<()> {
    let lake = cli.open_lake(None)?;
    let options = SessionOptions::from_settings(memory_limit, None)?.on_engine(engine)?;
    let (_, batches) = query::query(&lake, sql, &options).await?;
    if cli.json {
        let mut out = std::io::stdout().lock();
        let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
        for batch in &batches {
            writer.write(batch)?;
        }
        writer.finish()?;
        return Ok(());
    }
    print!("{}", terminal::table(&batches, limit, max_width)?);
    Ok(())
}

fn print_inspection(i: &query::Inspection, rows: usize, max_width: usize) -> Result<()> {
    println!("{}", i.target);
    match (i.version, i.files, i.bytes) {
        (Some(v), Some(f), Some(b)) => {
            println!("  version {v}, {} rows in {f} files, {}", terminal::count(i.rows), terminal::bytes(b))
        }
        _ => println!("  {} rows", terminal::count(i.rows)),
    }
    println!("schema:");
    for field in i.schema.fields() {
        let null = if field.is_nullable() { "" } else { " not null" };
        println!("  {:<14} {}{null}", field.name(), field.data_type());
    }
    println!("first {rows} rows:");
    print!("{}", terminal::table(&i.sample, rows, max_width)?);
    Ok(())
}
