//! When the writer's periodic jobs are due: a pure schedule with the time passed in. The
//! writer ([`super::writer`]) asks it what is due at the top of each turn, tells it what ran,
//! and sleeps on the deadlines it gives; nothing here reads a clock.
//!
//! The jobs: the no-data tick ([`TICK_EVERY`]), the registry file check, the rule files check
//! (only with rule files), the overdue-inspection rate (the first one at once; the writer
//! skips it, leaving it due, while there is no registry), and the state snapshot that lets the WAL be acknowledged while the stream is quiet.
//! Flushing is paced too: after a wake-up the writer gathers readings until `flush_every`
//! after the last flush, unless a full batch already waits.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::IngestConfig;

/// How often the no-data rules are advanced.
pub const TICK_EVERY: Duration = Duration::from_secs(1);

/// A periodic job of the writer, in the order it runs them when several are due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    Tick,
    RegistryCheck,
    RulesCheck,
    OverdueRate,
}

/// The periods of the jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Periods {
    pub tick: Duration,
    pub registry_check: Duration,
    /// `None` without rule files: nothing to watch.
    pub rules_check: Option<Duration>,
    pub overdue_rate: Duration,
    pub snapshot: Duration,
    pub flush: Duration,
}

impl Periods {
    pub fn of(cfg: &IngestConfig) -> Periods {
        Periods {
            tick: TICK_EVERY,
            registry_check: cfg.registry.check_every,
            rules_check: (!cfg.rules.files.is_empty()).then_some(cfg.rules.reload_check_every),
            overdue_rate: cfg.registry.overdue_rate_every,
            snapshot: cfg.state.snapshot_every,
            flush: cfg.batch.flush_every,
        }
    }
}

/// When each job last ran.
#[derive(Clone, Debug)]
pub struct Timers {
    periods: Periods,
    tick: Instant,
    registry_check: Instant,
    rules_check: Instant,
    /// `None` until the first: it is due at once.
    overdue_rate: Option<Instant>,
    snapshot: Instant,
    flush: Instant,
}

impl Timers {
    /// Every job counts from `now`, except the overdue rate, due at once.
    pub fn new(periods: Periods, now: Instant) -> Timers {
        Timers {
            periods,
            tick: now,
            registry_check: now,
            rules_check: now,
            overdue_rate: None,
            snapshot: now,
            flush: now,
        }
    }

    /// The jobs due at `now`, in the order they run.
    pub fn due(&self, now: Instant) -> Vec<Job> {
        let p = &self.periods;
        let elapsed = |since: Instant, every: Duration| now.saturating_duration_since(since) >= every;
        let mut jobs = Vec::new();
        if elapsed(self.tick, p.tick) {
            jobs.push(Job::Tick);
        }
        if elapsed(self.registry_check, p.registry_check) {
            jobs.push(Job::RegistryCheck);
        }
        if p.rules_check.is_some_and(|every| elapsed(self.rules_check, every)) {
            jobs.push(Job::RulesCheck);
        }
        if self.overdue_rate.is_none_or(|t| elapsed(t, p.overdue_rate)) {
            jobs.push(Job::OverdueRate);
        }
        jobs
    }

    /// `job` started at `now`: its period counts from there.
    pub fn ran(&mut self, job: Job, now: Instant) {
        match job {
            Job::Tick => self.tick = now,
            Job::RegistryCheck => self.registry_check = now,
            Job::RulesCheck => self.rules_check = now,
            Job::OverdueRate => self.overdue_rate = Some(now),
        }
    }

    /// Whether the alert state is due to be saved at `now`: `snapshot_every` after the last.
    pub fn snapshot_due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.snapshot) >= self.periods.snapshot
    }

    /// The alert state was saved at `now`.
    pub fn snapshot_saved(&mut self, now: Instant) {
        self.snapshot = now;
    }

    /// A batch was written at `now`.
    pub fn flushed(&mut self, now: Instant) {
        self.flush = now;
    }

    /// The latest an idle writer sleeps until when nothing is written: `flush_every` on.
    pub fn next_wake(&self, now: Instant) -> Instant {
        now + self.periods.flush
    }

    /// Woken at `now` with less than a full batch waiting: gather readings until then, one
    /// `flush_every` after the last flush; `None` when that has passed.
    pub fn gather_until(&self, now: Instant) -> Option<Instant> {
        let until = self.flush + self.periods.flush;
        (now < until).then_some(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn periods() -> Periods {
        Periods {
            tick: S(1),
            registry_check: S(30),
            rules_check: Some(S(5)),
            overdue_rate: S(3600),
            snapshot: S(10),
            flush: MS(200),
        }
    }

    #[test]
    fn each_job_comes_due_one_period_after_it_last_ran() {
        let t0 = Instant::now();
        let mut timers = Timers::new(periods(), t0);
        timers.ran(Job::OverdueRate, t0);
        assert_eq!(timers.due(t0), []);
        assert_eq!(timers.due(t0 + MS(999)), []);
        assert_eq!(timers.due(t0 + S(1)), [Job::Tick]);
        timers.ran(Job::Tick, t0 + S(1));
        assert_eq!(timers.due(t0 + S(1)), []);
        assert_eq!(timers.due(t0 + S(5)), [Job::Tick, Job::RulesCheck]);
        timers.ran(Job::Tick, t0 + S(5));
        timers.ran(Job::RulesCheck, t0 + S(5));
        assert_eq!(timers.due(t0 + S(30)), [Job::Tick, Job::RegistryCheck, Job::RulesCheck]);
    }

    #[test]
    fn the_overdue_rate_is_due_at_once_then_stays_due_until_it_runs_then_hourly() {
        let t0 = Instant::now();
        let mut timers = Timers::new(periods(), t0);
        assert_eq!(timers.due(t0), [Job::OverdueRate]);
        assert!(timers.due(t0 + S(600)).contains(&Job::OverdueRate), "not run yet: no registry");
        timers.ran(Job::OverdueRate, t0 + S(600));
        assert!(!timers.due(t0 + S(600)).contains(&Job::OverdueRate));
        assert!(!timers.due(t0 + S(4199)).contains(&Job::OverdueRate));
        assert!(timers.due(t0 + S(4200)).contains(&Job::OverdueRate));
    }

    #[test]
    fn rule_files_are_not_watched_without_any() {
        let t0 = Instant::now();
        let mut timers = Timers::new(Periods { rules_check: None, ..periods() }, t0);
        timers.ran(Job::OverdueRate, t0);
        assert_eq!(timers.due(t0 + S(3599)), [Job::Tick, Job::RegistryCheck]);
    }

    #[test]
    fn a_snapshot_is_due_snapshot_every_after_the_last_one_saved() {
        let t0 = Instant::now();
        let mut timers = Timers::new(periods(), t0);
        assert!(!timers.snapshot_due(t0 + MS(9_999)));
        assert!(timers.snapshot_due(t0 + S(10)));
        timers.snapshot_saved(t0 + S(12));
        assert!(!timers.snapshot_due(t0 + S(21)));
        assert!(timers.snapshot_due(t0 + S(22)));
    }

    #[test]
    fn after_a_wake_up_readings_are_gathered_until_flush_every_after_the_last_flush() {
        let t0 = Instant::now();
        let mut timers = Timers::new(periods(), t0);
        assert_eq!(timers.next_wake(t0 + S(3)), t0 + S(3) + MS(200));
        timers.flushed(t0 + S(1));
        assert_eq!(timers.gather_until(t0 + S(1) + MS(50)), Some(t0 + S(1) + MS(200)));
        assert_eq!(timers.gather_until(t0 + S(1) + MS(200)), None, "due already");
        assert_eq!(timers.gather_until(t0 + S(5)), None);
    }
}
