//! Locations: every place a user names (a lake, a table, an input file, a glob) is a
//! path or a URL, and this module turns it into an object store plus a path in it.
//!
//! Accepted forms: a plain path (`./lake`, `/data/x.jsonl`), `file:///abs/path`,
//! `s3://bucket/prefix` and `memory://name/prefix` (a store that lives for the process,
//! for tests).
//!
//! It sits below everything that reads or writes bytes: the lake builds its tables on it,
//! and a SQL function that needs a file (a model, a tokenizer, benchmark items) reads it
//! by URL from here, on the driver and on every executor alike.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use datafusion::execution::object_store::ObjectStoreUrl;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig};
use url::Url;

use crate::error::{Context, Error, Result};

/// A parsed location: the store it lives in and the path inside that store.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// `file:///`, `s3://bucket/` or `memory://name/`: the key DataFusion knows the store by.
    store_url: Url,
    path: Path,
}

impl Location {
    /// Parses a path or URL. Relative paths resolve against the current directory.
    pub fn parse(text: &str) -> Result<Location> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::user("an empty path is not a location")
                .hint("give a folder such as ./lake, or a URL such as s3://bucket/lake"));
        }
        match text.split_once("://") {
            None => Self::local(std::path::Path::new(text)),
            Some(("file", rest)) => Self::local(std::path::Path::new(&format!("/{}", rest.trim_start_matches('/')))),
            Some((scheme @ ("s3" | "s3a" | "memory"), rest)) => {
                let (authority, key) = rest.split_once('/').unwrap_or((rest, ""));
                if authority.is_empty() {
                    return Err(Error::user(format!("`{text}` names no bucket"))
                        .hint(format!("write it as {scheme}://BUCKET/prefix")));
                }
                let scheme = if scheme == "s3a" { "s3" } else { scheme };
                let store_url = Url::parse(&format!("{scheme}://{authority}/"))
                    .map_err(|e| Error::user(format!("`{text}` is not a valid URL: {e}")))?;
                let path = Path::parse(key.trim_end_matches('/'))
                    .map_err(|e| Error::user(format!("`{text}` has an invalid key: {e}")))?;
                Ok(Location { store_url, path })
            }
            Some((scheme, _)) => Err(Error::user(format!("`{text}`: unsupported scheme `{scheme}://`"))
                .hint("use a local path, file://, s3:// or memory://")),
        }
    }

    fn local(path: &std::path::Path) -> Result<Location> {
        let absolute = std::path::absolute(path)
            .map_err(|e| Error::user(format!("cannot resolve path `{}`: {e}", path.display())))?;
        let absolute = lexical_clean(&absolute);
        let path = Path::from_absolute_path(&absolute)
            .map_err(|e| Error::user(format!("`{}` cannot be used as a lake path: {e}", absolute.display())))?;
        Ok(Location { store_url: Url::parse("file:///").expect("static URL"), path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn scheme(&self) -> &str {
        self.store_url.scheme()
    }

    pub fn is_local(&self) -> bool {
        self.scheme() == "file"
    }

    /// The key DataFusion's object-store registry uses for this location's store.
    pub fn object_store_url(&self) -> ObjectStoreUrl {
        ObjectStoreUrl::parse(self.store_url.as_str()).expect("store URLs are valid")
    }

    /// A location below this one.
    pub fn join(&self, child: &str) -> Location {
        let mut path = self.path.clone();
        for part in child.split('/').filter(|p| !p.is_empty()) {
            path = path.clone().join(part);
        }
        Location { store_url: self.store_url.clone(), path }
    }

    /// The same store, another path.
    pub fn with_path(&self, path: Path) -> Location {
        Location { store_url: self.store_url.clone(), path }
    }

    /// The URL DataFusion reads: `file:///abs/x`, `s3://bucket/x`.
    pub fn url(&self) -> String {
        format!("{}{}", self.store_url, self.path)
    }

    /// The object store that holds this location, built once per process and store.
    pub fn store(&self) -> Result<Arc<dyn ObjectStore>> {
        static STORES: LazyLock<Mutex<HashMap<Url, Arc<dyn ObjectStore>>>> = LazyLock::new(Default::default);
        let mut stores = STORES.lock().map_err(|_| Error::Internal("store registry poisoned".into()))?;
        if let Some(store) = stores.get(&self.store_url) {
            return Ok(store.clone());
        }
        let store: Arc<dyn ObjectStore> = match self.scheme() {
            "file" => Arc::new(LocalFileSystem::new()),
            "memory" => Arc::new(InMemory::new()),
            "s3" => Arc::new(s3_store(&self.store_url)?),
            other => return Err(Error::Internal(format!("unhandled scheme {other}"))),
        };
        stores.insert(self.store_url.clone(), store.clone());
        Ok(store)
    }
}

/// S3 settings come from the standard AWS variables (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...).
/// Transient errors (5xx, timeouts, throttling) are retried with backoff.
fn s3_store(store_url: &Url) -> Result<object_store::aws::AmazonS3> {
    let mut builder = AmazonS3Builder::from_env().with_url(store_url.as_str()).with_retry(RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 10,
        retry_timeout: Duration::from_secs(180),
    });
    // `from_env` reads AWS_DEFAULT_REGION; the standard AWS_REGION takes precedence here.
    if let Ok(region) = std::env::var("AWS_REGION") {
        builder = builder.with_region(region);
    }
    // Never format the builder or its error's debug form: both can hold credentials.
    builder.build().map_err(|e| {
        Error::user(format!("cannot configure S3 for {store_url}: {e}"))
            .hint("set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (and AWS_ENDPOINT_URL, AWS_ALLOW_HTTP=true for a local server)")
    })
}

/// Removes `.` and `..` without touching the file system (the path may not exist yet).
fn lexical_clean(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_local() { write!(f, "/{}", self.path) } else { write!(f, "{}", self.url()) }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({})", self.url())
    }
}

/// Writes `bytes` as one object (a whole file on a local disk).
pub async fn put(location: &Location, bytes: Vec<u8>) -> Result<()> {
    location.store()?.put(location.path(), PutPayload::from(bytes)).await.context(location.url())?;
    Ok(())
}

/// Writes `bytes` as a new object only if none is there (a conditional put on S3): returns
/// false, writing nothing, when one is. What makes commits, leases and run records safe
/// between writers.
pub async fn put_if_absent(location: &Location, bytes: Vec<u8>) -> Result<bool> {
    let options = PutOptions { mode: PutMode::Create, ..Default::default() };
    match location.store()?.put_opts(location.path(), PutPayload::from(bytes), options).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => Ok(false),
        Err(e) => Err(e).context(location.url()),
    }
}

/// The object's bytes, or `None` where there is none.
pub async fn get_optional(location: &Location) -> Result<Option<bytes::Bytes>> {
    match location.store()?.get(location.path()).await {
        Ok(got) => Ok(Some(got.bytes().await.context(location.url())?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e).context(location.url()),
    }
}

/// Runs `work` to completion from code called without an async context, such as a SQL
/// function loading what it needs on an executor: on a thread of its own, with a runtime
/// of its own, so it works whatever runtime (if any) the caller is on.
pub fn block_on_own_thread<T: Send>(work: impl std::future::Future<Output = Result<T>> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(work))
            .join()
            .map_err(|_| Error::Internal("a blocking read panicked".into()))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let s3 = Location::parse("s3://bucket/lake/").unwrap();
        assert_eq!(s3.url(), "s3://bucket/lake");
        assert_eq!(s3.object_store_url().as_str(), "s3://bucket/");
        assert_eq!(Location::parse("s3a://b/x").unwrap().url(), "s3://b/x");
        assert_eq!(Location::parse("memory://t/a/b").unwrap().join("c/d").url(), "memory://t/a/b/c/d");
        assert_eq!(Location::parse("file:///tmp/x/../y").unwrap().url(), "file:///tmp/y");
        let rel = Location::parse("lake").unwrap();
        assert!(rel.is_local());
        assert!(rel.url().ends_with("/lake"));
    }

    #[test]
    fn rejects_what_it_cannot_serve() {
        assert!(Location::parse("").is_err());
        assert!(Location::parse("s3:///nobucket").is_err());
        let err = Location::parse("gs://b/x").unwrap_err();
        assert!(err.to_string().contains("unsupported scheme"), "{err}");
    }

    #[test]
    fn memory_stores_are_shared_within_a_process() {
        let a = Location::parse("memory://shared-test/x").unwrap().store().unwrap();
        let b = Location::parse("memory://shared-test/y").unwrap().store().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
