//! One error type for the library.
//!
//! Errors caused by what a user gave us (a missing file, a bad flag, a table that
//! does not exist) are [`Error::User`] and carry a hint on what to do next; errors from
//! the engines below keep their own type so that nothing is lost when they are shown.

use std::fmt;

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::parquet::errors::ParquetError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input, the flags or the lake's state are not what the command needs.
    #[error("{message}")]
    User { message: String, hint: Option<String> },
    #[error("{context}: {source}")]
    Context { context: String, source: Box<Error> },
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    #[error(transparent)]
    Parquet(#[from] ParquetError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Another run of the job holds its lease (src/job/lease.rs): try again later.
    #[error("{0}")]
    Busy(String),
    /// A stop was asked for (a signal to `mathlake schedule`) and the run ended between stages.
    #[error("{0}")]
    Stopped(String),
    /// A broken invariant: a bug in mathlake, not in the input.
    #[error("internal error: {0} (this is a bug in mathlake)")]
    Internal(String),
}

impl Error {
    pub fn user(message: impl Into<String>) -> Self {
        Error::User { message: message.into(), hint: None }
    }

    /// Adds the next step a user can take; shown on its own line.
    pub fn hint(self, text: impl Into<String>) -> Self {
        match self {
            Error::User { message, .. } => Error::User { message, hint: Some(text.into()) },
            Error::Context { context, source } => Error::Context { context, source: Box::new(source.hint(text)) },
            other => other,
        }
    }

    /// Whether this error, or the one it wraps, is [`Error::Stopped`].
    pub fn is_stopped(&self) -> bool {
        match self {
            Error::Stopped(_) => true,
            Error::Context { source, .. } => source.is_stopped(),
            _ => false,
        }
    }

    /// Whether this error, or the one it wraps, is [`Error::Busy`].
    pub fn is_busy(&self) -> bool {
        match self {
            Error::Busy(_) => true,
            Error::Context { source, .. } => source.is_busy(),
            _ => false,
        }
    }

    /// The hint of this error or of the error it wraps.
    pub fn hint_text(&self) -> Option<&str> {
        match self {
            Error::User { hint, .. } => hint.as_deref(),
            Error::Busy(_) => Some(
                "nothing was changed; run it again when that run has finished (or, if it was killed, once its lease has expired)",
            ),
            Error::Context { source, .. } => source.hint_text(),
            _ => None,
        }
    }
}

/// Adds what was being done to an error, as `reading s3://b/x.jsonl: <cause>`.
pub trait Context<T> {
    fn context<C: fmt::Display>(self, context: C) -> Result<T>;
    fn with_context<C: fmt::Display, F: FnOnce() -> C>(self, f: F) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context<C: fmt::Display>(self, context: C) -> Result<T> {
        self.map_err(|e| Error::Context { context: context.to_string(), source: Box::new(e.into()) })
    }

    fn with_context<C: fmt::Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.map_err(|e| Error::Context { context: f().to_string(), source: Box::new(e.into()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_survives_context() {
        let err: Result<()> = Err(Error::user("no table `docs`").hint("did you mean `documents`?"));
        let err = err.context("querying ./lake").unwrap_err();
        assert_eq!(err.to_string(), "querying ./lake: no table `docs`");
        assert_eq!(err.hint_text(), Some("did you mean `documents`?"));
    }
}
