//! `mathlake schedule JOB`: the job run on a cron expression by one long-lived process.
//! Runs never overlap (the next slot is the first one after a run ends, and the lease
//! keeps out runs started elsewhere), a failed run is retried with a doubling wait, and
//! SIGTERM or Ctrl-C stops the process between stages (a second signal stops it at once).
//! For cron, systemd timers or Airflow, `mathlake run` with its lease and exit codes is
//! enough; this is for when nothing else schedules.

use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::Deserialize;
use tokio::sync::watch;

use crate::error::{Error, Result};

/// A job file's `[schedule]` table, and the flags of `mathlake schedule` that override it.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// When to run, in UTC: five fields (`0 * * * *`: hourly), or six with seconds first.
    #[arg(long, value_name = "EXPRESSION")]
    #[serde(default)]
    pub cron: Option<String>,
    /// How many times a failed run is tried again before waiting for the next slot [default: 2].
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub retries: Option<u32>,
    /// The wait before the first retry, doubled before each next one [default: 60].
    #[arg(long, value_name = "SECONDS")]
    #[serde(default)]
    pub backoff_seconds: Option<u64>,
}

impl ScheduleSpec {
    /// These settings where given, else `file`'s.
    pub fn over(&self, file: Option<&ScheduleSpec>) -> ScheduleSpec {
        let file = file.cloned().unwrap_or_default();
        ScheduleSpec {
            cron: self.cron.clone().or(file.cron),
            retries: self.retries.or(file.retries),
            backoff_seconds: self.backoff_seconds.or(file.backoff_seconds),
        }
    }
}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expression: String,
    cron: Cron,
    pub retries: u32,
    backoff: Duration,
}

impl Schedule {
    pub fn new(spec: &ScheduleSpec) -> Result<Schedule> {
        let expression = spec.cron.clone().ok_or_else(|| {
            Error::user(
                "no schedule: give --cron \"0 * * * *\" or a [schedule] table with cron = \"...\" in the job file",
            )
        })?;
        let cron = CronParser::builder().seconds(Seconds::Optional).build().parse(&expression).map_err(|e| {
            Error::user(format!("`{expression}` is not a cron expression: {e}"))
                .hint("five fields, minute hour day-of-month month day-of-week, as in \"30 2 * * *\" (02:30 UTC daily); six with seconds first")
        })?;
        Ok(Schedule {
            expression,
            cron,
            retries: spec.retries.unwrap_or(2),
            backoff: Duration::from_secs(spec.backoff_seconds.unwrap_or(60)),
        })
    }

    /// The first slot strictly after `time`.
    pub fn next_after(&self, time: DateTime<Utc>) -> Result<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&time, false)
            .map_err(|e| Error::user(format!("`{}` has no time after {time}: {e}", self.expression)))
    }

    /// The wait before retry `attempt` (1 for the first): the backoff, doubled each time.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.backoff.saturating_mul(1 << attempt.saturating_sub(1).min(16))
    }
}

/// Asked to stop: the job runner checks it between stages, the scheduler while it waits.
#[derive(Debug, Clone)]
pub struct Stop {
    requested: watch::Receiver<bool>,
}

impl Stop {
    /// Never requested (`mathlake run`: a signal ends it at once, which the atomic
    /// commits make safe).
    pub fn never() -> Stop {
        let (sender, requested) = watch::channel(false);
        // The receiver keeps the value after the sender is gone.
        drop(sender);
        Stop { requested }
    }

    /// Requested by the first SIGTERM or SIGINT; the second ends the process at once.
    pub fn on_signals() -> Result<Stop> {
        use tokio::signal::unix::{SignalKind, signal};
        let (sender, requested) = watch::channel(false);
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
                if *sender.borrow() {
                    eprintln!("stopping now");
                    std::process::exit(143);
                }
                eprintln!("stopping after the current stage (signal again to stop at once)");
                let _ = sender.send(true);
            }
        });
        Ok(Stop { requested })
    }

    pub fn requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Waits `duration`; `true` when a stop was asked for first.
    pub async fn sleep(&self, duration: Duration) -> bool {
        let mut requested = self.requested.clone();
        tokio::select! {
            _ = tokio::time::sleep(duration) => self.requested(),
            // An error (no sender: never requested) disables this branch.
            Ok(_) = requested.wait_for(|stop| *stop) => true,
        }
    }

    /// Waits until `time`; `true` when a stop was asked for first.
    pub async fn sleep_until(&self, time: DateTime<Utc>) -> bool {
        let wait = (time - Utc::now()).to_std().unwrap_or_default();
        self.sleep(wait).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(expression: &str) -> Result<Schedule> {
        Schedule::new(&ScheduleSpec { cron: Some(expression.into()), ..ScheduleSpec::default() })
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn slots_follow_the_expression_in_utc() {
        let hourly = cron("0 * * * *").unwrap();
        assert_eq!(hourly.next_after(at("2026-12-07T05:59:59Z")).unwrap(), at("2026-12-07T06:00:00Z"));
        assert_eq!(hourly.next_after(at("2026-12-07T06:00:00Z")).unwrap(), at("2026-12-07T07:00:00Z"));
        let nightly = cron("30 2 * * *").unwrap();
        assert_eq!(nightly.next_after(at("2026-12-07T05:00:00Z")).unwrap(), at("2026-12-08T02:30:00Z"));
        let every_two_seconds = cron("*/2 * * * * *").unwrap();
        assert_eq!(every_two_seconds.next_after(at("2026-12-07T05:00:01Z")).unwrap(), at("2026-12-07T05:00:02Z"));
        let err = cron("every hour").unwrap_err();
        assert!(err.to_string().contains("`every hour` is not a cron expression"), "{err}");
        assert!(Schedule::new(&ScheduleSpec::default()).unwrap_err().to_string().contains("--cron"));
    }

    #[test]
    fn retries_wait_twice_as_long_each_time_and_flags_win_over_the_file() {
        let file = ScheduleSpec { cron: Some("0 * * * *".into()), retries: Some(5), backoff_seconds: Some(10) };
        let flags = ScheduleSpec { backoff_seconds: Some(3), ..ScheduleSpec::default() };
        let schedule = Schedule::new(&flags.over(Some(&file))).unwrap();
        assert_eq!((schedule.expression.as_str(), schedule.retries), ("0 * * * *", 5));
        assert_eq!([1, 2, 3].map(|a| schedule.backoff(a).as_secs()), [3, 6, 12]);
        let toml_table: ScheduleSpec = toml::from_str("cron = '0 3 * * *'\nretries = 1").unwrap();
        assert_eq!(toml_table.retries, Some(1));
        assert!(toml::from_str::<ScheduleSpec>("cron = '0 3 * * *'\nretry = 1").is_err());
    }

    #[tokio::test]
    async fn a_stop_that_is_never_asked_for_lets_sleeps_run_out() {
        let stop = Stop::never();
        assert!(!stop.sleep(Duration::from_millis(5)).await);
        assert!(!stop.requested());
    }
}
