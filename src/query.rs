//! Looking at the lake: `mathlake tables`, `mathlake inspect` and `mathlake query`.
//! Each returns data; the CLI decides how it looks.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::error::Result;
use crate::lake::session;
use crate::lake::{Lake, SessionOptions, register_source};

#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    pub name: String,
    pub version: u64,
    pub rows: u64,
    pub files: usize,
    pub bytes: u64,
    pub committed_at: String,
    pub operation: String,
}

/// Every committed table of the lake with its size.
pub async fn tables(lake: &Lake) -> Result<Vec<TableInfo>> {
    let mut infos = Vec::new();
    for name in lake.table_names().await? {
        if let Some(version) = lake.table(&name)?.latest().await? {
            infos.push(TableInfo {
                name,
                version: version.version,
                rows: version.rows(),
                files: version.files.len(),
                bytes: version.bytes(),
                committed_at: version.committed_at.to_rfc3339(),
                operation: version.operation.clone(),
            });
        }
    }
    Ok(infos)
}

/// Runs one SQL statement over the lake's tables.
pub async fn query(lake: &Lake, sql: &str, options: &SessionOptions) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let ctx = session(lake, options).await?;
    run_sql(&ctx, lake, sql).await
}

async fn run_sql(ctx: &SessionContext, lake: &Lake, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let frame = match ctx.sql(sql).await {
        Ok(frame) => frame,
        Err(e) => return Err(lake.explain_missing_table(e.into()).await),
    };
    let schema = SchemaRef::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    Ok((schema, batches))
}

#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The table name or URL inspected.
    pub target: String,
    /// The lake version, for lake tables.
    pub version: Option<u64>,
    pub files: Option<usize>,
    pub bytes: Option<u64>,
    pub rows: u64,
    #[serde(skip)]
    pub schema: SchemaRef,
    #[serde(skip)]
    pub sample: Vec<RecordBatch>,
}

/// Schema, counts and the first rows of a lake table (by name or URL) or of Parquet files.
pub async fn inspect(lake: &Lake, target: &str, sample_rows: usize) -> Result<Inspection> {
    let ctx = session(lake, &SessionOptions::default()).await?;
    let version = register_source(&ctx, lake, "inspected", target).await?;
    let name = "inspected";
    let (_, counted) = run_sql(&ctx, lake, &format!("SELECT count(*) FROM \"{name}\"")).await?;
    let rows = counted
        .first()
        .and_then(|b| b.column(0).as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().map(|a| a.value(0)))
        .unwrap_or(0) as u64;
    let (schema, sample) = run_sql(&ctx, lake, &format!("SELECT * FROM \"{name}\" LIMIT {sample_rows}")).await?;
    Ok(Inspection {
        target: target.to_string(),
        version: version.as_ref().map(|v| v.version),
        files: version.as_ref().map(|v| v.files.len()),
        bytes: version.as_ref().map(|v| v.bytes()),
        rows,
        schema,
        sample,
    })
}
