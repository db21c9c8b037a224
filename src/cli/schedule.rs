//! `mathlake schedule JOB`: the job on a cron schedule (src/job/schedule.rs), each run
//! printed as `mathlake run` prints it, and the scheduler's log (when, and how each run
//! ended) on stderr.

use std::path::Path;

use chrono::{SecondsFormat, Utc};

use super::Cli;
use super::run::run_with_needs;
use crate::error::Result;
use crate::job::Job;
use crate::job::schedule::{Schedule, ScheduleSpec, Stop};

pub async fn run(cli: &Cli, job: &Path, flags: &ScheduleSpec) -> Result<()> {
    let loaded = Job::load(job)?;
    let schedule = Schedule::new(&flags.over(loaded.schedule.as_ref()))?;
    let lake = cli.open_lake(loaded.lake.as_deref())?;
    let stop = Stop::on_signals()?;
    say(&format!(
        "scheduling job {} on `{}` (UTC) over {}; SIGTERM or Ctrl-C stops it between stages",
        loaded.label,
        schedule.expression,
        lake.root()
    ));
    'slots: loop {
        let slot = schedule.next_after(Utc::now())?;
        say(&format!("next run at {}", slot.to_rfc3339_opts(SecondsFormat::Secs, true)));
        if stop.sleep_until(slot).await {
            break;
        }
        for attempt in 1..=schedule.retries + 1 {
            let started = std::time::Instant::now();
            let result = run_with_needs(cli, &loaded, &lake, false, false, &stop).await;
            let seconds = started.elapsed().as_secs_f64();
            match result {
                Ok(stages) => {
                    if cli.json {
                        println!("{}", serde_json::to_string(&stages)?);
                    }
                    say(&format!("run succeeded in {seconds:.1} s"));
                    break;
                }
                Err(e) if e.is_stopped() => {
                    say(&format!("run stopped after {seconds:.1} s: {e}"));
                    break 'slots;
                }
                Err(e) if e.is_busy() => {
                    say(&format!("slot given up: {e}"));
                    break;
                }
                Err(e) if attempt <= schedule.retries => {
                    let wait = schedule.backoff(attempt);
                    say(&format!(
                        "run failed (attempt {attempt} of {}) after {seconds:.1} s: {e}; trying again in {} s",
                        schedule.retries + 1,
                        wait.as_secs()
                    ));
                    if stop.sleep(wait).await {
                        break 'slots;
                    }
                }
                Err(e) => {
                    say(&format!(
                        "run failed (attempt {attempt} of {attempt}) after {seconds:.1} s: {e}; waiting for the next slot"
                    ));
                }
            }
        }
        if stop.requested() {
            break;
        }
    }
    say("stopped");
    Ok(())
}

/// A line of the scheduler's own log, on stderr (the runs print on stdout).
fn say(line: &str) {
    eprintln!("[{}] schedule: {line}", Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true));
}
