//! `mathlake ingest`.

use super::{Cli, print_json};
use crate::error::Result;
use crate::ingest::mapping::PRESETS;
use crate::ingest::{self, IngestSpec, IngestSummary};
use crate::terminal;

pub async fn run(cli: &Cli, spec: &IngestSpec) -> Result<()> {
    if spec.list_presets {
        for preset in PRESETS {
            println!("{:<12} {:<9} {}", preset.name, preset.target().table(), preset.about);
        }
        return Ok(());
    }
    let lake = cli.open_lake(None)?;
    let options = spec.to_options(cli.threads())?;
    let bar = terminal::byte_bar("ingest", cli.quiet);
    let summary = ingest::ingest(&lake, &options, &bar).await;
    bar.finish_and_clear();
    let summary = summary?;
    if cli.json { print_json(&summary) } else { print_ingest(&summary) }
}

pub(super) fn print_ingest(s: &IngestSummary) -> Result<()> {
    use terminal::{bytes, count};
    let outcome = match s.version {
        Some(v) => format!("committed version {v} of `{}`", s.table),
        None => format!("nothing new: `{}` is unchanged", s.table),
    };
    println!("{outcome} in {}", s.lake);
    if s.skipped_objects > 0 {
        println!("  skipped {} input objects read before and unchanged since", count(s.skipped_objects as u64));
    }
    if !s.replaced_objects.is_empty() {
        println!(
            "  replaced {} changed objects: {} rows of their earlier content removed, the objects read again",
            count(s.replaced_objects.len() as u64),
            count(s.rows_removed)
        );
    }
    let skipped = if s.counts.skipped > 0 { format!(" + skipped {}", count(s.counts.skipped)) } else { String::new() };
    println!(
        "  read {} = written {} + duplicates {} + quarantined {}{skipped}",
        count(s.counts.read),
        count(s.counts.written),
        count(s.counts.duplicates),
        count(s.counts.quarantined)
    );
    if !s.skipped_by_kind.is_empty() {
        let kinds: Vec<_> = s.skipped_by_kind.iter().map(|(k, n)| format!("{k} {}", count(*n))).collect();
        println!("  skipped (no page): {}", kinds.join(", "));
    }
    let rate = s.input_bytes as f64 / s.seconds.max(1e-9) / 1e6;
    println!(
        "  {} in, {} of text written, {:.1}s ({rate:.1} MB/s)",
        bytes(s.input_bytes),
        bytes(s.text_bytes),
        s.seconds
    );
    if s.counts.read == 0 && s.inputs.iter().any(|i| i.bytes > 0) {
        eprintln!("warning: the inputs held no records (empty files, or only blank lines)");
    }
    if s.inputs.len() > 1 {
        for input in &s.inputs {
            let c = &input.counts;
            println!(
                "  {:>9} read {:>9} written {:>7} dup {:>7} quarantined  {}",
                count(c.read),
                count(c.written),
                count(c.duplicates),
                count(c.quarantined),
                input.input
            );
        }
    }
    if !s.reasons.is_empty() {
        let reasons: Vec<_> = s.reasons.iter().map(|(r, n)| format!("{r} {}", count(*n))).collect();
        println!("  quarantine: {}", reasons.join(", "));
        for e in &s.examples {
            println!("    {}:{}: {}: {}", e.input, e.position, e.reason, e.detail);
        }
        println!("  see all: mathlake query \"SELECT input, position, reason, detail FROM quarantine\"");
    }
    Ok(())
}
