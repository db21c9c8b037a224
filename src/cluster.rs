//! The processes of a Ballista cluster that knows mathlake (feature `distributed`):
//! `mathlake scheduler` turns the plans drivers send into stages and hands their tasks
//! out, `mathlake executor` runs them. Both carry mathlake's SQL functions and reach
//! object stores as every other command does (a bucket's store made on first use, S3
//! settings from the same `AWS_*` variables), so a plan naming `s3://lake/...` files and
//! calling `math_score` means the same on every process. DEPLOY.md says how to run them.
//!
//! It sits above the lake and the stages: it gathers their functions into one registry.

use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::RuntimeProducer;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_session_builder;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{SchedulerConfig, TaskDistributionPolicy};
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::registry::FunctionRegistry;
use datafusion::execution::{SessionState, runtime_env::RuntimeEnv};
use datafusion::prelude::SessionConfig;

use crate::error::{Error, Result};
use crate::lake::SessionOptions;

/// `mathlake scheduler`: where drivers (`--engine ballista://HOST:PORT`) send their SQL.
#[derive(Debug, Clone, clap::Args)]
pub struct SchedulerSpec {
    /// The address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// The gRPC port drivers and executors connect to.
    #[arg(long, default_value_t = 50050)]
    pub port: u16,
    /// Seconds without a heartbeat after which an executor counts as lost: its running
    /// tasks, and the finished ones whose shuffle files it held, run again elsewhere.
    #[arg(long, default_value_t = 180)]
    pub executor_timeout: u64,
    /// Times one task may fail before its query fails.
    #[arg(long, default_value_t = 4)]
    pub task_max_failures: usize,
    /// How a stage's tasks go to executors: `round-robin` (one to each in turn, so every
    /// executor shares a query's per-document work) or `bias` (fill one executor's slots
    /// first, fewer shuffle fetches across machines).
    #[arg(long, value_enum, default_value_t = Distribution::RoundRobin)]
    pub task_distribution: Distribution,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Distribution {
    RoundRobin,
    Bias,
}

/// `mathlake executor`: runs the tasks of the scheduler it registers with.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecutorSpec {
    /// The scheduler, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub scheduler: String,
    /// The address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// The host other executors and drivers reach this one by [default: the address the
    /// scheduler sees it connect from].
    #[arg(long)]
    pub external_host: Option<String>,
    /// The Arrow Flight port, which serves shuffle files and query results.
    #[arg(long, default_value_t = 50051)]
    pub port: u16,
    /// The gRPC port the scheduler talks to.
    #[arg(long, default_value_t = 50052)]
    pub grpc_port: u16,
    /// Tasks run at once [default: the number of cores].
    #[arg(long)]
    pub slots: Option<usize>,
    /// Memory the running tasks share before they spill (e.g. 8G), split evenly across
    /// the slots [default: most of the machine's memory].
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,
    /// Where shuffle and spill files go [default: a new temporary folder].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Seconds between heartbeats to the scheduler (keep it well under the scheduler's
    /// --executor-timeout).
    #[arg(long, default_value_t = 60)]
    pub heartbeat_interval: u64,
}

/// Runs a scheduler until the process is stopped.
pub async fn scheduler(spec: &SchedulerSpec) -> Result<()> {
    let address = format!("{}:{}", spec.bind, spec.port);
    let socket =
        address.parse().map_err(|e| Error::user(format!("`{address}` is not an address to listen on: {e}")))?;
    let config = SchedulerConfig {
        bind_host: spec.bind.clone(),
        bind_port: spec.port,
        external_host: spec.bind.clone(),
        executor_timeout_seconds: spec.executor_timeout,
        // Look for lost executors often enough to honour a short timeout.
        expire_dead_executor_interval_seconds: (spec.executor_timeout / 3).clamp(1, 15),
        no_executors_grace_period_seconds: spec.executor_timeout,
        task_max_failures: spec.task_max_failures,
        task_distribution: match spec.task_distribution {
            Distribution::RoundRobin => TaskDistributionPolicy::RoundRobin,
            Distribution::Bias => TaskDistributionPolicy::Bias,
        },
        ..SchedulerConfig::default()
    }
    .with_override_session_builder(Arc::new(session_state));
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(ballista_error)?;
    start_server(cluster, socket, Arc::new(config))
        .await
        .map_err(|e| Error::user(format!("the scheduler on {address} stopped: {e}")))
}

/// Runs an executor until the process is stopped.
pub async fn executor(spec: &ExecutorSpec) -> Result<()> {
    let (host, port) = spec
        .scheduler
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.to_string(), port.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            Error::user(format!("`{}` is not a scheduler address", spec.scheduler)).hint("give HOST:PORT")
        })?;
    let memory_limit =
        SessionOptions::from_settings(spec.memory_limit.as_deref(), None)?.memory_limit.map(|m| m as u64);
    let work_dir = match &spec.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::user(format!("cannot create {}: {e}", dir.display())))?;
            Some(dir.clone())
        }
        None => None,
    };
    let spill_dir = work_dir.clone();
    let runtime: RuntimeProducer = Arc::new(move |_: &SessionConfig| runtime(spill_dir.as_deref()));
    let functions = session_state(SessionConfig::new()).map_err(Error::from)?;
    let defaults = ExecutorProcessConfig::default();
    let config = ExecutorProcessConfig {
        bind_host: spec.bind.clone(),
        external_host: spec.external_host.clone(),
        port: spec.port,
        grpc_port: spec.grpc_port,
        scheduler_host: host,
        scheduler_port: port,
        vcores: spec.slots.unwrap_or(defaults.vcores).max(1),
        work_dir: work_dir.map(|d| d.display().to_string()),
        memory_pool_size: memory_limit,
        executor_heartbeat_interval_seconds: spec.heartbeat_interval.max(1),
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(&functions))),
        override_runtime_producer: Some(runtime),
        ..defaults
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| Error::user(format!("the executor of scheduler {} stopped: {e}", spec.scheduler)))
}

/// The session a scheduler plans in and an executor takes its functions from: Ballista's
/// own, with mathlake's functions (the library, and the stages' own) and stores.
fn session_state(config: SessionConfig) -> datafusion::error::Result<SessionState> {
    let base = default_session_builder(config)?;
    let mut state = SessionStateBuilder::new_from_existing(base).with_runtime_env(runtime(None)?).build();
    for function in
        crate::functions::udfs().chain([crate::decontaminate::overlaps::udf(), crate::tokenize::function::udf()])
    {
        state.register_udf(Arc::new(function))?;
    }
    Ok(state)
}

/// Tasks' runtime: the lake's stores, spill files under `spill_dir`. The executor adds
/// each task's share of its memory pool.
fn runtime(spill_dir: Option<&std::path::Path>) -> datafusion::error::Result<Arc<RuntimeEnv>> {
    crate::lake::runtime(None, spill_dir).build_arc()
}

fn ballista_error(error: ballista_core::error::BallistaError) -> Error {
    Error::user(format!("Ballista: {error}"))
}
