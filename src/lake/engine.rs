//! Where a session's SQL runs: in this process on DataFusion (the default), or on Apache
//! Ballista (cargo feature `distributed`), which plans the same SQL into stages and runs
//! them on executors. A Ballista session is made from the local one, so it has the same
//! lake tables, functions and object stores; `standalone` starts a scheduler and an
//! executor inside this process (one machine, the distributed planner and shuffles, what
//! the tests use), `ballista://HOST:PORT` names a running scheduler.

use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Engine {
    #[default]
    Local,
    Standalone,
    /// The scheduler's address, `ballista://HOST:PORT`.
    Ballista(String),
}

impl Engine {
    /// `local`, `standalone` or `ballista://HOST:PORT`.
    pub fn parse(text: &str) -> Result<Engine> {
        let engine = match text {
            "local" => Engine::Local,
            "standalone" => Engine::Standalone,
            url if url.starts_with("ballista://") => Engine::Ballista(url.to_string()),
            other => {
                return Err(Error::user(format!("`{other}` is not an engine"))
                    .hint("use local, standalone (Ballista in this process) or ballista://HOST:PORT"));
            }
        };
        if engine != Engine::Local && !cfg!(feature = "distributed") {
            return Err(Error::user(format!("engine `{text}` needs Ballista, and this mathlake was built without it"))
                .hint("build with `cargo build --release --features distributed`"));
        }
        Ok(engine)
    }
}

#[cfg(feature = "distributed")]
const PARTITIONS_PER_TASK: &str = "ballista.scheduler.max_partitions_per_task";

/// Keeps the local session alive inside a Ballista one (see [`connect`]).
#[cfg(feature = "distributed")]
struct UrlTableSession {
    _session: SessionContext,
}

/// The session `ctx` (tables, functions and stores registered) on `engine`.
pub async fn connect(ctx: SessionContext, engine: &Engine) -> Result<SessionContext> {
    match engine {
        Engine::Local => Ok(ctx),
        #[cfg(feature = "distributed")]
        Engine::Standalone | Engine::Ballista(_) => {
            use ballista::prelude::SessionContextExt;
            let state = ctx.state();
            let distributed = match engine {
                Engine::Ballista(url) => SessionContext::remote_with_state(url, state).await?,
                _ => SessionContext::standalone_with_state(state).await?,
            };
            // Ballista's session keeps DataFusion's own functions only: it gets every one
            // this session has (the library, and a stage's own), which the executors have
            // too (`mathlake executor`, or the in-process one, made from this state).
            for function in ctx.state().scalar_functions().values() {
                distributed.register_udf(function.as_ref().clone());
            }
            // One task per partition: by default an executor takes as many of a stage's
            // partitions as it has free slots, so the first one would take a whole scan
            // and the others idle; mathlake's per-document functions are the work to share.
            let state = distributed.state_ref();
            let mut state = state.write();
            state.config_mut().options_mut().set(PARTITIONS_PER_TASK, "1")?;
            // Paths as tables (`SELECT * FROM 'shards/train-00000.arrow'`) are looked up
            // through the session they were enabled on, which it holds weakly: it has to
            // live as long as this one.
            state.config_mut().set_extension(std::sync::Arc::new(UrlTableSession { _session: ctx }));
            drop(state);
            Ok(distributed)
        }
        #[cfg(not(feature = "distributed"))]
        other => Err(Error::Internal(format!("engine {other:?} without the distributed feature"))),
    }
}
