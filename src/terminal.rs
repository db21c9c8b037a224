//! How results look on a terminal: aligned tables with long cells cut, sizes and counts
//! that read at a glance, progress bars that only draw on a terminal.

use std::time::Duration;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Result;

/// `1234567` as `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in decimal units, as throughput figures are quoted (1 MB = 1e6 bytes).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// A progress bar over `len` bytes on stderr; draws nothing unless stderr is a terminal.
pub fn byte_bar(label: &str, quiet: bool) -> ProgressBar {
    bar(label, quiet, None, "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}", 200)
}

/// A bar over items of known number (eval: benchmark items, once per pass), with the
/// pass in its message; draws nothing unless stderr is a terminal.
pub fn item_bar(label: &str, quiet: bool) -> ProgressBar {
    bar(label, quiet, None, "{prefix:>12} {msg} [{bar:30}] {human_pos}/{human_len} eta {eta}", 200)
}

/// A spinner counting rows on stderr (SQL statements, whose size is not known up front);
/// draws nothing unless stderr is a terminal.
pub fn row_spinner(label: &str, quiet: bool) -> ProgressBar {
    bar(label, quiet, None, "{prefix:>12} {spinner} {msg}: {human_pos} rows, {elapsed}", 200)
}

/// A bar over training steps, starting at `position` (a resumed run), with the loss and
/// throughput in its message; draws nothing unless stderr is a terminal.
pub fn step_bar(position: u64, total: u64, quiet: bool) -> ProgressBar {
    let bar = bar("train", quiet, Some(total), "{prefix:>12} [{bar:30}] {pos}/{len} steps · {msg} · eta {eta}", 500);
    bar.set_position(position);
    bar
}

/// The one way every bar is drawn: on stderr, labelled, ticking every `tick_ms`; hidden
/// when `quiet`.
fn bar(label: &str, quiet: bool, len: Option<u64>, template: &str, tick_ms: u64) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_prefix(label.to_string());
    bar.enable_steady_tick(Duration::from_millis(tick_ms));
    bar
}

/// Renders batches as an aligned text table, cutting cells at `max_width` characters and
/// showing at most `limit` rows.
pub fn table(batches: &[RecordBatch], limit: usize, max_width: usize) -> Result<String> {
    let Some(first) = batches.first() else { return Ok("(no rows)\n".into()) };
    let header: Vec<String> = first.schema().fields().iter().map(|f| f.name().clone()).collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let options = FormatOptions::default().with_null("NULL");
    'batches: for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            if rows.len() == limit {
                break 'batches;
            }
            rows.push(formatters.iter().map(|f| cell(&f.value(row).to_string(), max_width)).collect());
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].chars().count()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", padded.join(" | ").trim_end())
    };
    let mut out = line(&header);
    out.push_str(&format!("{}\n", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-")));
    for row in &rows {
        out.push_str(&line(row));
    }
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    if total > rows.len() {
        out.push_str(&format!("({} of {} rows shown; --limit shows more)\n", rows.len(), count(total as u64)));
    } else {
        out.push_str(&format!("({} row{})\n", count(total as u64), if total == 1 { "" } else { "s" }));
    }
    Ok(out)
}

/// One line per cell: newlines shown as `⏎`, cut with `…` past `max_width` characters.
fn cell(value: &str, max_width: usize) -> String {
    let flat: String = value
        .chars()
        .map(|c| {
            if c == '\n' {
                '⏎'
            } else if c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect();
    if flat.chars().count() <= max_width {
        flat
    } else {
        let mut cut: String = flat.chars().take(max_width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn numbers_read_at_a_glance() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(2_500_000), "2.5 MB");
    }

    #[test]
    fn tables_cut_long_cells_and_count_rows() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("text", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("a\nb"), None, Some("long text here")])),
            ],
        )
        .unwrap();
        let out = table(&[batch], 2, 6).unwrap();
        assert!(out.contains("a⏎b"), "{out}");
        assert!(out.contains("NULL"), "{out}");
        assert!(out.contains("(2 of 3 rows shown"), "{out}");
        assert!(!out.contains("long text"), "{out}");
    }
}
