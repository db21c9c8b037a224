//! The DataFusion session every stage and the CLI share: the lake's store registered,
//! every lake table there by name (read through its log, never by listing its folder),
//! bounded memory with spilling, and no file-listing cache (it can serve a stale listing
//! of a prefix this same process just wrote).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::default_table_source::provider_as_source;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::DataFusionError;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{Expr, LogicalPlan, TableScanBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use indicatif::ProgressBar;

use super::engine::Engine;
use super::{Lake, Location, Table, Version};
use crate::error::Result;

#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Bytes of memory DataFusion's operators may hold before they spill or fail.
    pub memory_limit: Option<usize>,
    /// Where spill files go (the system temp folder by default).
    pub spill_dir: Option<PathBuf>,
    /// Where the SQL runs: here, or on Ballista.
    pub engine: Engine,
}

impl SessionOptions {
    /// From a stage's `memory_limit` (`512M`, `4G`) and `spill_dir` settings, as the
    /// command line and job files give them.
    pub fn from_settings(memory_limit: Option<&str>, spill_dir: Option<&std::path::Path>) -> Result<SessionOptions> {
        let memory_limit = match memory_limit {
            Some(size) => Some(parse_size(size).map_err(|e| crate::Error::user(format!("memory limit: {e}")))?),
            None => None,
        };
        Ok(SessionOptions { memory_limit, spill_dir: spill_dir.map(|d| d.to_path_buf()), engine: Engine::Local })
    }

    /// The same settings on `engine` (`local`, `standalone`, `ballista://HOST:PORT`).
    pub fn on_engine(self, engine: Option<&str>) -> Result<SessionOptions> {
        Ok(SessionOptions { engine: engine.map(Engine::parse).transpose()?.unwrap_or_default(), ..self })
    }

    /// A new local scratch file under `spill_dir` (the system temp folder by default).
    pub fn temp_file(&self, stem: &str, extension: &str) -> TempFile {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = self.spill_dir.clone().unwrap_or_else(std::env::temp_dir);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name =
            format!("mathlake-{stem}-{}-{}-{n}.{extension}", std::process::id(), super::run_id(chrono::Utc::now()));
        TempFile(dir.join(name))
    }
}

/// A local scratch file, removed when dropped, whether or not the run succeeds.
pub struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A size in bytes: `1048576`, `512M`, `4G`, `1.5GB`, `64MiB` (powers of 1024).
pub fn parse_size(text: &str) -> std::result::Result<usize, String> {
    let upper = text.trim().to_ascii_uppercase();
    let digits_end = upper.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(upper.len());
    let (number, unit) = upper.split_at(digits_end);
    let number: f64 = number.parse().map_err(|_| format!("`{text}` is not a size like 512M or 4G"))?;
    let scale = match unit.trim().trim_end_matches("IB").trim_end_matches('B') {
        "" => 1u64,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("`{text}`: unknown unit (use K, M, G or T)")),
    };
    Ok((number * scale as f64) as usize)
}

/// A session over `lake` with every committed table registered under its name and
/// mathlake's SQL function library: what every stage that runs SQL uses.
pub async fn session(lake: &Lake, options: &SessionOptions) -> Result<SessionContext> {
    let runtime = runtime(options.memory_limit, options.spill_dir.as_deref());
    // Batches of 1,024 rows: lake rows carry whole documents (kilobytes each), and the
    // default 8,192 made 17 MB batches; measured on the benchmark corpus, a COPY's peak
    // memory fell from 461 to 330 MiB, at the same speed.
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_batch_size(1024)
        .with_extension(Arc::new(RegisteredVersions::default()));
    if let Some(limit) = options.memory_limit {
        // Each sorting partition sets aside this much for its merge before it spills (10
        // MiB by default): under a small limit two partitions' worth exhausted the pool.
        let partitions = config.target_partitions().max(1);
        let execution = &mut config.options_mut().execution;
        execution.sort_spill_reservation_bytes = execution.sort_spill_reservation_bytes.min(limit / (4 * partitions));
    }
    // Files are tables by their path or URL too: `SELECT * FROM 'shards/train-00000.arrow'`.
    let ctx = SessionContext::new_with_config_rt(config, runtime.build_arc()?).enable_url_table();
    register_location(&ctx, lake.root())?;
    for name in lake.table_names().await? {
        let table = lake.table(&name)?;
        if let Some(version) = table.latest().await? {
            register_table(&ctx, &name, &table, &version)?;
        }
    }
    ctx.register_udtf("table_at", Arc::new(TableAt { lake: lake.clone() }));
    crate::job::history::register(&ctx, lake)?;
    crate::functions::register(&ctx);
    crate::functions::register_for_lake(&ctx, lake);
    super::engine::connect(ctx, &options.engine).await
}

/// The runtime of every session, here or on a Ballista executor: stores found on first
/// use, no file-listing cache, at most `memory_limit` bytes held, spill files in
/// `spill_dir` (the system temp folder by default).
pub fn runtime(memory_limit: Option<usize>, spill_dir: Option<&std::path::Path>) -> RuntimeEnvBuilder {
    let mut runtime = RuntimeEnvBuilder::new()
        .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
        .with_object_store_registry(Arc::new(LakeStores::default()));
    if let Some(limit) = memory_limit {
        runtime = runtime.with_memory_limit(limit, 1.0);
    }
    if let Some(dir) = spill_dir {
        runtime = runtime.with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Directories(vec![dir.to_path_buf()])),
        );
    }
    runtime
}

/// Streams the rows of `frame` into `write`, counting them on `progress`; returns how many.
pub async fn drain(
    frame: DataFrame,
    progress: &ProgressBar,
    mut write: impl AsyncFnMut(&RecordBatch) -> Result<()>,
) -> Result<u64> {
    let mut stream = frame.execute_stream().await?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        progress.inc(batch.num_rows() as u64);
        write(&batch).await?;
    }
    Ok(rows)
}

/// Makes the store behind `location` readable by `ctx` (S3 buckets, memory stores).
pub fn register_location(ctx: &SessionContext, location: &Location) -> Result<()> {
    let url = location.object_store_url();
    ctx.register_object_store(url.as_ref(), location.store()?);
    Ok(())
}

/// Stores found on first use: a SQL file may name any bucket (`CREATE EXTERNAL TABLE ...
/// LOCATION 's3://other/...'`), and it gets a store configured as the lake's own are.
#[derive(Debug, Default)]
struct LakeStores {
    known: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for LakeStores {
    fn register_store(
        &self,
        url: &url::Url,
        store: Arc<dyn object_store::ObjectStore>,
    ) -> Option<Arc<dyn object_store::ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn get_store(&self, url: &url::Url) -> datafusion::error::Result<Arc<dyn object_store::ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        let location =
            Location::parse(url.as_str()).map_err(|e| datafusion::error::DataFusionError::External(e.into()))?;
        let store = location.store().map_err(|e| datafusion::error::DataFusionError::External(e.into()))?;
        self.known.register_store(url, store.clone());
        Ok(store)
    }
}

/// Registers one version of a table under `name`: exactly the files its log lists.
pub fn register_table(ctx: &SessionContext, name: &str, table: &Table, version: &Version) -> Result<()> {
    ctx.register_table(name, provider(table, version)?)?;
    if let Some(registered) = ctx.copied_config().get_extension::<RegisteredVersions>() {
        registered.lock()?.insert(name.to_string(), version.version);
    }
    Ok(())
}

/// The version of each lake table a session has registered: what a statement that writes
/// a table records as the versions it read.
#[derive(Debug, Default)]
struct RegisteredVersions(std::sync::Mutex<BTreeMap<String, u64>>);

impl RegisteredVersions {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, u64>>> {
        self.0.lock().map_err(|_| crate::Error::Internal("a session's version map was poisoned".into()))
    }
}

/// `plan` with every scan of table `name` (inside views and subqueries too) reading
/// `version` of `table` instead: an incremental statement over appended files only.
/// Views hold the provider they were created with, so swapping the registered table
/// would not reach them.
pub fn scanning_version(plan: LogicalPlan, name: &str, table: &Table, version: &Version) -> Result<LogicalPlan> {
    let source = provider_as_source(provider(table, version)?);
    let mut replaced = 0;
    let plan = plan
        .transform_up_with_subqueries(|node| match node {
            LogicalPlan::TableScan(scan) if scan.table_name.table() == name => {
                replaced += 1;
                let scan = TableScanBuilder::new(scan.table_name, source.clone())
                    .with_projection(scan.projection)
                    .with_filters(scan.filters)
                    .with_fetch(scan.fetch)
                    .build()?;
                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data;
    if replaced == 0 {
        return Err(crate::Error::Internal(format!("the statement's plan does not scan `{name}`")));
    }
    Ok(plan)
}

/// The lake tables `plan` scans (subqueries included), at the versions the session holds.
pub fn versions_read(ctx: &SessionContext, plan: &LogicalPlan) -> Result<BTreeMap<String, u64>> {
    let mut scanned = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            scanned.push(scan.table_name.table().to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let Some(registered) = ctx.copied_config().get_extension::<RegisteredVersions>() else {
        return Ok(BTreeMap::new());
    };
    let registered = registered.lock()?;
    Ok(scanned.into_iter().filter_map(|name| registered.get(&name).map(|v| (name, *v))).collect())
}

/// The rows of one version of a table: exactly the files its log lists.
fn provider(table: &Table, version: &Version) -> Result<Arc<dyn TableProvider>> {
    let schema = version.schema.arrow()?;
    if version.files.is_empty() {
        return Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?));
    }
    let urls = version
        .files
        .iter()
        .map(|file| ListingTableUrl::parse(table.location().with_path(table.file_path(file)).url()))
        .collect::<Result<Vec<_>, _>>()?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// `table_at('documents', 3)`: a table as of one of its versions (time travel), for as
/// long as `mathlake vacuum` keeps that version.
#[derive(Debug)]
struct TableAt {
    lake: Lake,
}

impl TableFunctionImpl for TableAt {
    fn call_with_args(&self, args: TableFunctionArgs) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let usage = || {
            DataFusionError::Plan(
                "table_at takes a table name and a version number, as in table_at('documents', 3)".into(),
            )
        };
        let (name, number) = match args.exprs() {
            [Expr::Literal(ScalarValue::Utf8(Some(name)), _), Expr::Literal(number, _)] => (
                name.clone(),
                number.cast_to(&DataType::UInt64).ok().and_then(|n| match n {
                    ScalarValue::UInt64(Some(n)) => Some(n),
                    _ => None,
                }),
            ),
            _ => return Err(usage()),
        };
        let number = number.ok_or_else(usage)?;
        // Planning is synchronous and reading a version is not: this waits on the
        // multi-threaded runtime every command runs on.
        let handle = tokio::runtime::Handle::try_current().map_err(|e| DataFusionError::External(e.into()))?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err(DataFusionError::Internal("table_at needs a multi-threaded tokio runtime".into()));
        }
        let found = tokio::task::block_in_place(|| {
            handle.block_on(async {
                let table = self.lake.table(&name)?;
                let version = table.version(number).await?;
                Ok::<_, crate::Error>((table, version))
            })
        });
        let (table, version) = found.map_err(|e| DataFusionError::External(e.into()))?;
        provider(&table, &version).map_err(|e| DataFusionError::External(e.into()))
    }
}
