//! One run of a job at a time: a lease in the lake, so that it holds on S3 as on a local
//! folder, for runs on one machine or many (cron, a scheduler, two people).
//!
//! A lease is an object `{lake}/_jobs/{job}.lease/{n}.json`, created with put-if-absent:
//! of two runs that try to create the same `n`, exactly one succeeds. The run holding the
//! highest `n` rewrites it every third of its time to live; a lease not renewed within its
//! time to live (a killed run) has expired, and the next run takes over by creating `n + 1`.
//! A run that finds a live lease stops before touching anything, with [`Error::Busy`]
//! (exit code [`BUSY_EXIT_CODE`]). Expiry compares the holder's clock with the reader's:
//! machines that share a lake need clocks within a small part of the time to live.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::lake::{Lake, Location, put_if_absent};

/// The exit code of a run that found its job running elsewhere: EX_TEMPFAIL of sysexits.h,
/// which schedulers read as "try again later", not as a failure.
pub const BUSY_EXIT_CODE: u8 = 75;

/// How long a lease lives without renewal unless the job says.
pub const DEFAULT_LEASE_SECONDS: u64 = 600;

/// What a lease object holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Who holds it: host and process id.
    pub holder: String,
    pub acquired_at: DateTime<Utc>,
    pub renewed_at: DateTime<Utc>,
    pub ttl_seconds: u64,
    /// Set when the run ended; the next run need not wait for expiry.
    pub released: bool,
}

impl LeaseRecord {
    fn expires_at(&self) -> DateTime<Utc> {
        self.renewed_at + chrono::Duration::seconds(self.ttl_seconds.min(i64::MAX as u64 / 1000) as i64)
    }

    fn live(&self, now: DateTime<Utc>) -> bool {
        !self.released && now < self.expires_at()
    }
}

/// A held lease, renewed in the background until [`Lease::release`].
pub struct Lease {
    folder: Location,
    object: Location,
    number: u64,
    record: LeaseRecord,
    renewer: tokio::task::JoinHandle<()>,
    /// Why the lease was lost, if it was: renewal came too late and another run took over.
    lost: Arc<Mutex<Option<String>>>,
}

impl Lease {
    /// Takes the job's lease, or fails with [`Error::Busy`] naming the run that holds it.
    pub async fn acquire(lake: &Lake, job: &str, ttl: Duration) -> Result<Lease> {
        let folder = lake.root().join("_jobs").join(&format!("{job}.lease"));
        let ttl_seconds = ttl.as_secs().max(1);
        for _ in 0..8 {
            let latest = latest(&folder).await?;
            let now = Utc::now();
            if let Some((number, record)) = &latest
                && record.live(now)
            {
                return Err(Error::Busy(format!(
                    "job `{job}` is running: its lease ({}) is held by {} since {}, renewed {}, expiring {} unless renewed",
                    lease_object(&folder, *number).url(),
                    record.holder,
                    record.acquired_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    record.renewed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    record.expires_at().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                )));
            }
            let number = latest.as_ref().map_or(1, |(n, _)| n + 1);
            let record =
                LeaseRecord { holder: holder(), acquired_at: now, renewed_at: now, ttl_seconds, released: false };
            let object = lease_object(&folder, number);
            // Lost the race to create it: another run just took the lease; look again.
            if !put_if_absent(&object, serde_json::to_vec_pretty(&record)?).await? {
                continue;
            }
            // Earlier leases are history: the run log keeps what they did.
            if let Some((previous, _)) = latest {
                for n in (1..=previous).rev().take(2) {
                    let old = lease_object(&folder, n);
                    let _ = old.store()?.delete(old.path()).await;
                }
            }
            let lost = Arc::new(Mutex::new(None));
            let renewer = tokio::spawn(renew(folder.clone(), number, record.clone(), lost.clone()));
            return Ok(Lease { folder, object, number, record, renewer, lost });
        }
        Err(Error::Busy(format!("job `{job}`: other runs kept taking its lease in {}", folder.url())))
    }

    /// Fails if the lease was lost: a stage must not start without it.
    pub fn check(&self) -> Result<()> {
        match self.lost.lock().map_err(|_| Error::Internal("lease state poisoned".into()))?.as_ref() {
            Some(why) => Err(Error::Busy(why.clone())),
            None => Ok(()),
        }
    }

    /// Ends the lease, so that the next run starts at once.
    pub async fn release(self) -> Result<()> {
        self.renewer.abort();
        // Never mark a lease another run has taken over.
        if latest(&self.folder).await?.is_some_and(|(n, _)| n != self.number) {
            return Ok(());
        }
        let record = LeaseRecord { renewed_at: Utc::now(), released: true, ..self.record };
        let body = PutPayload::from(serde_json::to_vec_pretty(&record)?);
        self.object.store()?.put(self.object.path(), body).await.context(self.object.url())?;
        Ok(())
    }
}

/// Rewrites the lease every third of its time to live while no later lease exists.
async fn renew(folder: Location, number: u64, mut record: LeaseRecord, lost: Arc<Mutex<Option<String>>>) {
    let every = Duration::from_millis(record.ttl_seconds * 1000 / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let newer = match latest(&folder).await {
            Ok(Some((n, holder))) if n > number => Some(holder.holder),
            Ok(_) => None,
            // A failed listing is retried at the next tick; the lease expires only if
            // renewals keep failing for its whole time to live.
            Err(_) => continue,
        };
        if let Some(holder) = newer {
            if let Ok(mut lost) = lost.lock() {
                *lost = Some(format!(
                    "the job's lease expired before it was renewed and {holder} took it over: this run stops"
                ));
            }
            return;
        }
        record.renewed_at = Utc::now();
        let object = lease_object(&folder, number);
        if let (Ok(store), Ok(body)) = (object.store(), serde_json::to_vec_pretty(&record)) {
            let _ = store.put(object.path(), PutPayload::from(body)).await;
        }
    }
}

/// The highest-numbered lease in `folder` and what it says.
async fn latest(folder: &Location) -> Result<Option<(u64, LeaseRecord)>> {
    let store = folder.store()?;
    let objects: Vec<_> = store.list(Some(folder.path())).try_collect().await.context(folder.url())?;
    let Some(number) =
        objects.iter().filter_map(|o| o.location.filename()?.strip_suffix(".json")?.parse::<u64>().ok()).max()
    else {
        return Ok(None);
    };
    let object = lease_object(folder, number);
    let bytes = match store.get(object.path()).await {
        Ok(got) => got.bytes().await.context(object.url())?,
        // Deleted since the listing by a run that took a newer lease: look again.
        Err(object_store::Error::NotFound { .. }) => return Box::pin(latest(folder)).await,
        Err(e) => return Err(e).context(object.url()),
    };
    let record = serde_json::from_slice(&bytes).map_err(|e| {
        Error::user(format!("{} is not a job lease: {e}", object.url()))
            .hint("if no run of the job is in progress, delete it")
    })?;
    Ok(Some((number, record)))
}

fn lease_object(folder: &Location, number: u64) -> Location {
    folder.join(&format!("{number:010}.json"))
}

/// The host and process id of this run.
pub fn holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "an unknown host".into());
    format!("{host} pid {}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lake() -> Lake {
        Lake::open(&format!("memory://lease-{}", rand_suffix())).unwrap()
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    #[tokio::test]
    async fn of_runs_that_start_together_exactly_one_holds_the_lease() {
        let lake = lake();
        let ttl = Duration::from_secs(60);
        let tries: Vec<_> = (0..8).map(|_| Lease::acquire(&lake, "job", ttl)).collect();
        let results = futures::future::join_all(tries).await;
        let (held, busy): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
        assert_eq!(held.len(), 1);
        for err in busy {
            let err = err.err().unwrap();
            assert!(matches!(err, Error::Busy(_)), "{err}");
            assert!(err.to_string().contains("job `job` is running") && err.to_string().contains(" pid "), "{err}");
        }
        // Released, the next run takes it at once.
        let lease = held.into_iter().next().unwrap().unwrap();
        lease.check().unwrap();
        lease.release().await.unwrap();
        let next = Lease::acquire(&lake, "job", ttl).await.unwrap();
        assert_eq!(next.number, 2);
        // Another job's lease is its own.
        Lease::acquire(&lake, "other", ttl).await.unwrap();
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_its_holder_learns_it_lost() {
        let lake = lake();
        // A lease of one second that is never renewed: its holder was killed.
        let killed = Lease::acquire(&lake, "job", Duration::from_secs(1)).await.unwrap();
        killed.renewer.abort();
        assert!(matches!(Lease::acquire(&lake, "job", Duration::from_secs(1)).await, Err(Error::Busy(_))));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let next = Lease::acquire(&lake, "job", Duration::from_secs(60)).await.unwrap();
        assert_eq!(next.number, 2);

        // A holder still alive notices at its next renewal, and stops.
        let slow = Lease {
            renewer: tokio::spawn(renew(next.folder.clone(), 1, killed.record.clone(), killed.lost.clone())),
            ..killed
        };
        tokio::time::sleep(Duration::from_millis(600)).await;
        let err = slow.check().unwrap_err().to_string();
        assert!(err.contains("took it over"), "{err}");
        // Releasing it leaves the new holder's lease alone.
        slow.release().await.unwrap();
        assert!(matches!(Lease::acquire(&lake, "job", Duration::from_secs(60)).await, Err(Error::Busy(_))));
        next.check().unwrap();
    }
}
