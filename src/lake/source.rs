//! What a stage reads, as a user names it: a lake table by name, a table by its URL, or
//! Parquet files (one object, or every `.parquet` under a folder or prefix).

use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use object_store::ObjectStoreExt;

use super::{Lake, Location, Table, Version, register_location, register_table};
use crate::error::{Error, Result};

/// Registers `target` in `ctx` as `alias`; returns the table version it read, if a table.
pub async fn register_source(ctx: &SessionContext, lake: &Lake, alias: &str, target: &str) -> Result<Option<Version>> {
    if lake.table_names().await?.iter().any(|n| n == target) {
        return register_version(ctx, alias, &lake.table(target)?).await;
    }
    let location = Location::parse(target)?;
    register_location(ctx, &location)?;
    let store = location.store()?;
    let log = location.path().clone().join("_log");
    if matches!(store.list(Some(&log)).next().await, Some(Ok(_))) {
        let parent = location.with_path(location.path().parts().take(location.path().parts().count() - 1).collect());
        let table = Table::new(&parent, location.path().filename().unwrap_or_default())?;
        return register_version(ctx, alias, &table).await;
    }
    let is_file = store.head(location.path()).await.is_ok();
    if !is_file && !matches!(store.list(Some(location.path())).next().await, Some(Ok(_))) {
        return Err(Error::user(format!("`{target}` is neither a table of {} nor a file or folder", lake.root()))
            .hint("`mathlake tables` lists the tables"));
    }
    // A folder's URL must end in `/` for DataFusion to list it.
    let url = if is_file { location.url() } else { format!("{}/", location.url()) };
    ctx.register_parquet(alias, url, ParquetReadOptions::default()).await?;
    Ok(None)
}

async fn register_version(ctx: &SessionContext, alias: &str, table: &Table) -> Result<Option<Version>> {
    let version = table.latest().await?.ok_or_else(|| {
        Error::user(format!("table `{}` has no committed version yet", table.name()))
            .hint("a table appears once a run that writes it completes")
    })?;
    register_table(ctx, alias, table, &version)?;
    Ok(Some(version))
}

/// Fails with the columns `source` has unless it has every one of `required` as text.
pub async fn require_text_columns(
    ctx: &SessionContext,
    alias: &str,
    source: &str,
    required: &[&str],
    option: &str,
) -> Result<()> {
    let frame = ctx.table(alias).await?;
    let schema = frame.schema().as_arrow();
    for name in required {
        match schema.field_with_name(name) {
            Ok(field) if matches!(field.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) => {}
            Ok(field) => {
                return Err(Error::user(format!("column `{name}` of `{source}` is {}, not text", field.data_type())));
            }
            Err(_) => {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(Error::user(format!("`{source}` has no column `{name}` (it has {})", names.join(", ")))
                    .hint(format!("{option} names the text column(s); rows need a string `id` too")));
            }
        }
    }
    Ok(())
}

/// `name` as a SQL identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
