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
            // Ballista's session keeps DataFusion's own functions only; the executors
            // already have mathlake's, from the state they were started with.
            crate::functions::register(&distributed);
            Ok(distributed)
        }
        #[cfg(not(feature = "distributed"))]
        other => Err(Error::Internal(format!("engine {other:?} without the distributed feature"))),
    }
}
