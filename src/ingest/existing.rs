//! What a table already holds, for the next ingest into it: the input objects it read (an
//! unchanged one is skipped, not read again), the ids of its rows (a record with one of
//! them is a duplicate), and, for an object that changed since it was read, the removal of
//! the rows its earlier content gave.

use std::collections::HashSet;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, StringArray};
use datafusion::arrow::compute::{filter_record_batch, not};
use datafusion::arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::inputs::Input;
use crate::error::{Error, Result};
use crate::lake::{DataFile, FileLimits, SourceObject, Table, TableWriter, Version};

/// What an ingest does with an input object that changed (another ETag, or size and
/// modification time) since an earlier ingest read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnChange {
    /// Stop before reading anything, naming the object.
    #[default]
    Error,
    /// Remove the rows of its earlier content and read it again, in one commit.
    Replace,
}

/// The inputs of a run sorted against the objects the table's latest version lists.
#[derive(Debug)]
pub struct Plan {
    /// New objects and, on `replace`, changed ones, in path order: what the run reads.
    pub read: Vec<Input>,
    /// The objects among `read` whose earlier rows go.
    pub replaced: Vec<SourceObject>,
    /// Objects read before and unchanged since.
    pub skipped: usize,
}

/// An input as the table records it once read.
pub fn source_object(input: &Input, source: &str) -> SourceObject {
    SourceObject {
        source: source.to_string(),
        url: input.location.url(),
        size: input.size,
        e_tag: input.e_tag.clone(),
        modified: input.modified,
    }
}

pub fn plan(
    table: &Table,
    base: Option<&Version>,
    inputs: Vec<Input>,
    source: &str,
    on_change: OnChange,
) -> Result<Plan> {
    let seen = base.map_or(&[][..], |v| &v.objects[..]);
    let mut plan = Plan { read: Vec::new(), replaced: Vec::new(), skipped: 0 };
    let mut changed = Vec::new();
    for input in inputs {
        let object = source_object(&input, source);
        match seen.iter().find(|o| o.same_object(&object)) {
            None => plan.read.push(input),
            Some(earlier) if earlier.unchanged(&object) => plan.skipped += 1,
            Some(earlier) => {
                changed.push((earlier.clone(), object));
                plan.read.push(input);
            }
        }
    }
    match (on_change, changed.first()) {
        (_, None) => {}
        (OnChange::Error, Some((earlier, now))) => {
            let others = match changed.len() - 1 {
                0 => String::new(),
                n => format!(" (and {n} more)"),
            };
            return Err(Error::user(format!(
                "`{}` changed since it was ingested into `{}` as `{source}` (size {} -> {}, modified {} -> {}){others}; nothing was read",
                now.url,
                table.name(),
                earlier.size,
                now.size,
                earlier.modified.to_rfc3339(),
                now.modified.to_rfc3339(),
            ))
            .hint("to drop the rows of its earlier content and read it again, set on_change = \"replace\" (--on-change replace); to keep both, ingest it under another --source"));
        }
        (OnChange::Replace, Some(_)) => plan.replaced = changed.into_iter().map(|(_, now)| now).collect(),
    }
    Ok(plan)
}

/// A table's rows once the rows of replaced objects are dropped.
#[derive(Debug, Default)]
pub struct Kept {
    /// The ids of the rows kept, as 128-bit keys (16 bytes each in memory).
    pub ids: HashSet<u128>,
    /// Paths of the version's files that held dropped rows.
    pub removed: Vec<String>,
    /// Those files written again without them.
    pub files: Vec<DataFile>,
    pub rows_removed: u64,
}

/// Which rows go: those whose `source` and `input` name a replaced object and, in the
/// quarantine table, whose `target` is the table being ingested.
pub struct Dropping<'a> {
    pub objects: &'a [SourceObject],
    pub target: Option<&'a str>,
}

/// Reads the ids of a version's rows; with objects to drop, rewrites each file that holds
/// some of their rows (files named after `run_id`, listed by no version until a commit).
pub async fn keep(table: &Table, version: Option<&Version>, dropping: &Dropping<'_>, run_id: &str) -> Result<Kept> {
    let mut kept = Kept::default();
    let Some(version) = version else { return Ok(kept) };
    let mut columns = vec!["id"];
    if !dropping.objects.is_empty() {
        columns.extend(["source", "input"]);
        columns.extend(dropping.target.map(|_| "target"));
    }
    let mut rewritten = Vec::new();
    for file in &version.files {
        let mut stream = table.read_file(file, Some(&columns)).await?;
        let mut dropped_here = 0;
        while let Some(batch) = stream.try_next().await? {
            let dropped = dropping.mask(&batch)?;
            let ids = string_column(&batch, "id")?;
            for i in 0..ids.len() {
                if dropped.as_ref().is_some_and(|d| d.value(i)) {
                    dropped_here += 1;
                } else {
                    kept.ids.insert(id_key(ids.value(i))?);
                }
            }
        }
        if dropped_here > 0 {
            kept.rows_removed += dropped_here;
            rewritten.push(file);
        }
    }
    if rewritten.is_empty() {
        return Ok(kept);
    }
    let schema = version.schema.arrow()?;
    let mut writer = TableWriter::new(table.clone(), &format!("{run_id}-kept"), schema, FileLimits::default());
    for file in rewritten {
        let mut stream = table.read_file(file, None).await?;
        while let Some(batch) = stream.try_next().await? {
            match dropping.mask(&batch)? {
                Some(dropped) => writer.write(&filter_record_batch(&batch, &not(&dropped)?)?).await?,
                None => writer.write(&batch).await?,
            }
        }
        kept.removed.push(file.path.clone());
    }
    kept.files = writer.finish().await?;
    Ok(kept)
}

impl Dropping<'_> {
    /// `None` when nothing is dropped at all.
    fn mask(&self, batch: &RecordBatch) -> Result<Option<BooleanArray>> {
        if self.objects.is_empty() {
            return Ok(None);
        }
        let (source, input) = (string_column(batch, "source")?, string_column(batch, "input")?);
        let target = self.target.map(|_| string_column(batch, "target")).transpose()?;
        let mask = (0..batch.num_rows())
            .map(|i| {
                let object = self.objects.iter().any(|o| o.url == input.value(i) && o.source == source.value(i));
                Some(object && target.zip(self.target).is_none_or(|(column, table)| column.value(i) == table))
            })
            .collect();
        Ok(Some(mask))
    }
}

fn string_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| Error::Internal(format!("the `{name}` column is missing or not utf8")))
}

pub fn id_key(id: &str) -> Result<u128> {
    u128::from_str_radix(id, 16).map_err(|_| Error::Internal(format!("`{id}` is not a content id")))
}
