//! Retention: `mathlake vacuum` expires the versions of a table that stopped being current
//! longer ago than the retention, and deletes the data files that no kept version lists.
//! Until then every version stays readable (`table_at('documents', 3)`).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Lake, Table};
use crate::error::{Error, Result};

/// What to keep.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// A version replaced before this time expires ...
    pub before: DateTime<Utc>,
    /// ... unless it is among this many newest versions (the latest is always kept).
    pub keep: usize,
}

/// Data files that no version lists (a killed run's) are removed only when older than this:
/// a run in progress may still commit them.
const UNCOMMITTED_GRACE: chrono::Duration = chrono::Duration::hours(1);

#[derive(Debug, Clone, Default, Serialize)]
pub struct Vacuumed {
    pub table: String,
    pub versions_removed: Vec<u64>,
    pub versions_kept: Vec<u64>,
    pub files_removed: usize,
    pub bytes_removed: u64,
    /// Files that no version ever listed, left by killed runs.
    pub uncommitted_removed: usize,
}

/// Vacuums every table of the lake (or the one named), or with `dry_run` says what it would remove.
pub async fn vacuum(lake: &Lake, only: Option<&str>, retention: Retention, dry_run: bool) -> Result<Vec<Vacuumed>> {
    let names = match only {
        Some(name) => {
            let table = lake.table(name)?;
            if table.latest().await?.is_none() {
                return Err(Error::user(format!("no table `{name}` in {}", lake.root()))
                    .hint("`mathlake tables` lists the tables; without --table every table is vacuumed"));
            }
            vec![name.to_string()]
        }
        None => lake.table_names().await?,
    };
    let mut results = Vec::with_capacity(names.len());
    for name in names {
        results.push(vacuum_table(&lake.table(&name)?, retention, dry_run).await?);
    }
    Ok(results)
}

async fn vacuum_table(table: &Table, retention: Retention, dry_run: bool) -> Result<Vacuumed> {
    let versions = table.versions().await?;
    let mut result = Vacuumed { table: table.name().to_string(), ..Vacuumed::default() };
    // Version i stopped being current when version i + 1 was committed.
    let protected = versions.len().saturating_sub(retention.keep.max(1));
    let expired =
        versions.windows(2).take(protected).take_while(|pair| pair[1].committed_at < retention.before).count();
    let (gone, kept) = versions.split_at(expired);
    result.versions_removed = gone.iter().map(|v| v.version).collect();
    result.versions_kept = kept.iter().map(|v| v.version).collect();
    let live: HashSet<&str> = kept.iter().flat_map(|v| &v.files).map(|f| f.path.as_str()).collect();
    let mut doomed: Vec<_> = gone.iter().flat_map(|v| &v.files).filter(|f| !live.contains(f.path.as_str())).collect();
    doomed.sort_by(|a, b| a.path.cmp(&b.path));
    doomed.dedup_by(|a, b| a.path == b.path);
    result.files_removed = doomed.len();
    result.bytes_removed = doomed.iter().map(|f| f.bytes).sum();
    if dry_run {
        return Ok(result);
    }
    // Oldest first, so that a vacuum stopped half-way leaves the newer versions whole.
    for version in gone {
        table.remove_version(version.version).await?;
    }
    for file in doomed {
        table.remove_file(file).await?;
    }
    let grace = retention.before.min(Utc::now() - UNCOMMITTED_GRACE);
    result.uncommitted_removed = table.remove_orphans(grace).await?;
    Ok(result)
}

/// A retention such as `7d`, `36h`, `30m` or `0s`, counted back from now.
pub fn parse_age(text: &str) -> Result<chrono::Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 =
        number.parse().map_err(|_| Error::user(format!("`{text}` is not an age like 7d, 36h, 30m or 0s")))?;
    Ok(match unit {
        "s" => chrono::Duration::seconds(number),
        "m" => chrono::Duration::minutes(number),
        "h" => chrono::Duration::hours(number),
        "d" => chrono::Duration::days(number),
        _ => return Err(Error::user(format!("`{text}`: give the age in s, m, h or d, as in 7d"))),
    })
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;

    use super::*;
    use crate::lake::schema;
    use crate::lake::{Commit, CommitMode, DataFile};

    #[tokio::test]
    async fn expired_versions_and_their_files_go_and_kept_versions_stay_whole() {
        let lake = Lake::open("memory://vacuum-test/lake").unwrap();
        let table = lake.table("documents").unwrap();
        let schema = schema::builtin("documents").unwrap();
        let mut base = None;
        // v1: a; v2 replaces it with b; v3 appends c; v4 replaces everything with d.
        for (mode, name) in [
            (CommitMode::Append, "a"),
            (CommitMode::Replace, "b"),
            (CommitMode::Append, "c"),
            (CommitMode::Replace, "d"),
        ] {
            let (path, relative) = table.data_file_path(name, 0);
            table.store().put(&path, object_store::PutPayload::from_static(b"x")).await.unwrap();
            let files = vec![DataFile { path: relative, rows: 1, bytes: 1 }];
            base = Some(table.commit(base.as_ref(), Commit::new(mode, "test", schema.clone(), files)).await.unwrap());
        }
        let exists = |name: &str| {
            let path = table.data_file_path(name, 0).0;
            let store = table.store().clone();
            async move { store.head(&path).await.is_ok() }
        };
        let now = Retention { before: Utc::now() + chrono::Duration::seconds(1), keep: 2 };
        let planned = vacuum(&lake, None, now, true).await.unwrap();
        assert_eq!((planned[0].versions_removed.clone(), planned[0].files_removed), (vec![1, 2], 1));
        assert!(exists("a").await, "a dry run removes nothing");

        let done = vacuum(&lake, Some("documents"), now, false).await.unwrap();
        assert_eq!(done[0].versions_kept, [3, 4]);
        assert!(!exists("a").await, "a was listed only by the expired version 1");
        assert!(exists("b").await && exists("c").await, "version 3 still lists b and c");
        assert_eq!(table.version(3).await.unwrap().files.len(), 2);
        let err = table.version(2).await.unwrap_err();
        assert!(err.to_string().contains("has no version 2: it has versions 3 to 4"), "{err}");

        // A retention in the past expires nothing.
        let past = Retention { before: Utc::now() - chrono::Duration::days(1), keep: 1 };
        assert!(vacuum(&lake, None, past, false).await.unwrap()[0].versions_removed.is_empty());
        assert!(vacuum(&lake, Some("nope"), past, false).await.is_err());
    }

    #[test]
    fn ages() {
        assert_eq!(parse_age("7d").unwrap(), chrono::Duration::days(7));
        assert_eq!(parse_age("0s").unwrap(), chrono::Duration::zero());
        assert!(parse_age("7 days").is_err() && parse_age("d").is_err());
    }
}
