//! Bringing a table that a statement wrote up to date without reading everything again.
//! The statement's last version records what it read (`details.read`: table -> version);
//! when exactly one of those tables has changed since, only by appends (every file of the
//! version read is still listed), the statement runs over the appended files alone and its
//! rows are appended. That is right for statements that treat each row on its own
//! (filters, projections, per-row functions, lookups in tables that did not change), which
//! is what the user asserts by asking for it; anything else is rebuilt in full. Only lake
//! tables are tracked: files a statement reads by URL are not.

use std::collections::{BTreeMap, HashSet};

use super::{Lake, Version};
use crate::error::Result;

/// What a rerun of a statement that writes `target` needs to do.
#[derive(Debug)]
pub enum Update {
    /// Nothing it reads changed: its table stands.
    Unchanged,
    /// Run it over `delta` (the files of `table` added between versions `since` and
    /// `now`) and append; then `table` is at `now` again.
    Append { table: String, since: u64, now: Box<Version>, delta: Box<Version> },
    /// Run it over everything and replace the table, for this reason.
    Full(String),
}

impl Update {
    /// What a report says of it.
    pub fn describe(&self) -> String {
        match self {
            Update::Unchanged => "unchanged: nothing it reads changed".into(),
            Update::Append { table, since, now, .. } => {
                format!("appended: the rows `{table}` gained from version {since} to {}", now.version)
            }
            Update::Full(reason) => format!("rebuilt: {reason}"),
        }
    }
}

/// Decides from the target's latest version and the `details` the next version would
/// record: `read` (table -> version) and the settings named in `same` (a statement and its
/// parameters; a tokenizer and template), which must be what made the table. `input`: the
/// one table whose new rows can be treated alone (a stage's input; what it reads beside,
/// such as benchmarks, must meet every row again when it changes); `None` for a SQL
/// statement, whose author vouches for every table it reads.
pub async fn update(
    lake: &Lake,
    target: &str,
    details: &serde_json::Value,
    same: &[&str],
    input: Option<&str>,
) -> Result<Update> {
    let Some(last) = lake.table(target)?.latest().await? else {
        return Ok(Update::Full(format!("`{target}` does not exist yet")));
    };
    if let Some(key) = same.iter().find(|key| last.details.get(**key) != details.get(**key)) {
        return Ok(Update::Full(format!("`{target}` was made with another {key}")));
    }
    let versions = |d: &serde_json::Value| -> BTreeMap<String, u64> {
        serde_json::from_value(d.get("read").cloned().unwrap_or_default()).unwrap_or_default()
    };
    let (before, now) = (versions(&last.details), versions(details));
    if now.is_empty() {
        return Ok(Update::Full("it reads no lake table, so what it reads is not tracked".into()));
    }
    if before.keys().ne(now.keys()) || before.contains_key(target) {
        return Ok(Update::Full("it reads other tables than before".into()));
    }
    let changed: Vec<(&String, u64, u64)> =
        now.iter().filter(|(t, v)| before[*t] != **v).map(|(t, v)| (t, before[t], *v)).collect();
    let (table, since, current) = match changed.as_slice() {
        [] => return Ok(Update::Unchanged),
        [one] => *one,
        _ => return Ok(Update::Full("more than one table it reads changed".into())),
    };
    if input.is_some_and(|input| input != table) {
        return Ok(Update::Full(format!("`{table}`, which it reads beside its input, changed")));
    }
    let table_handle = lake.table(table)?;
    let Ok(old) = table_handle.version(since).await else {
        return Ok(Update::Full(format!("version {since} of `{table}` it read last is vacuumed")));
    };
    let now = table_handle.version(current).await?;
    let listed: HashSet<&str> = now.files.iter().map(|f| f.path.as_str()).collect();
    if !old.files.iter().all(|f| listed.contains(f.path.as_str())) {
        return Ok(Update::Full(format!("`{table}` lost rows since version {since}")));
    }
    let old: HashSet<&str> = old.files.iter().map(|f| f.path.as_str()).collect();
    let delta = Version {
        files: now.files.iter().filter(|f| !old.contains(f.path.as_str())).cloned().collect(),
        ..now.clone()
    };
    Ok(Update::Append { table: table.clone(), since, now: Box::new(now), delta: Box::new(delta) })
}
