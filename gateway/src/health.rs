//! A device's health on its line: failed polls are retried with backoff, and a device that
//! keeps failing is quarantined: left out of the schedule and only probed now and then
//! (exponentially less often, up to a cap), so a dead device costs its neighbours on the same
//! line at most one timeout per probe. Pure: time is a parameter; [`crate::bus`] acts on it.
//! The waits have no jitter: a line polls one device at a time, so its devices cannot retry in
//! step, and exact times keep the schedule predictable.

use std::time::Duration;

use telemetry::backoff::Backoff;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Failed polls in a row that put a device in quarantine.
    pub quarantine_after: u32,
    /// The first retry comes this long after a failure, then twice as long each time (never
    /// longer than the device's interval).
    pub retry_first: Duration,
    /// The first probe of a quarantined device comes this long after it was quarantined, then
    /// twice as long each time, up to `probe_max`.
    pub probe_first: Duration,
    pub probe_max: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            quarantine_after: 3,
            retry_first: Duration::from_millis(100),
            probe_first: Duration::from_secs(1),
            probe_max: Duration::from_secs(60),
        }
    }
}

/// What a poll's outcome changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Healthy before and after.
    Fine,
    /// Answered again after `failures` failed polls (it was quarantined if `was_quarantined`).
    Recovered { failures: u32, was_quarantined: bool },
    /// Failed; tried again at `at`.
    Retry { failures: u32, at: Instant },
    /// Failed once too often: quarantined, first probe at `probe_at`.
    Quarantined { failures: u32, probe_at: Instant },
    /// A probe failed: the next one at `probe_at`.
    StillQuarantined { failures: u32, probe_at: Instant },
}

#[derive(Clone, Debug)]
pub struct Health {
    policy: HealthPolicy,
    failures: u32,
    retry_at: Option<Instant>,
    /// The next probe of a quarantined device.
    probe_at: Option<Instant>,
    retry_backoff: Backoff,
    probe_backoff: Backoff,
}

/// Health's waits are exact: no jitter, so no random draw.
fn no_jitter() -> f64 {
    0.0
}

impl Health {
    pub fn new(policy: HealthPolicy, interval: Duration) -> Health {
        Health {
            policy,
            failures: 0,
            retry_at: None,
            probe_at: None,
            retry_backoff: Backoff::new(policy.retry_first, interval).with_jitter(0.0),
            probe_backoff: Backoff::new(policy.probe_first, policy.probe_max).with_jitter(0.0),
        }
    }

    /// When to poll next, given the device's next regular slot.
    pub fn due(&self, slot: Instant) -> Instant {
        match (self.probe_at, self.retry_at) {
            (Some(p), _) => p,
            (None, Some(t)) => t,
            (None, None) => slot,
        }
    }

    /// Whether the next poll is a regular one (not a retry or a probe).
    pub fn on_schedule(&self) -> bool {
        self.probe_at.is_none() && self.retry_at.is_none()
    }

    pub fn is_quarantined(&self) -> bool {
        self.probe_at.is_some()
    }

    /// Failed polls in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Moves a pending retry or probe to `at` at the earliest (the line is down until then).
    pub fn postpone(&mut self, at: Instant) {
        if let Some(p) = &mut self.probe_at {
            *p = (*p).max(at);
        } else if let Some(t) = &mut self.retry_at {
            *t = (*t).max(at);
        }
    }

    pub fn succeeded(&mut self) -> Verdict {
        let verdict = if self.failures == 0 {
            Verdict::Fine
        } else {
            Verdict::Recovered { failures: self.failures, was_quarantined: self.probe_at.is_some() }
        };
        self.failures = 0;
        self.retry_at = None;
        self.probe_at = None;
        self.retry_backoff.reset();
        self.probe_backoff.reset();
        verdict
    }

    pub fn failed(&mut self, now: Instant) -> Verdict {
        self.failures += 1;
        let failures = self.failures;
        if self.probe_at.is_some() {
            let probe_at = now + self.probe_backoff.next_delay(no_jitter);
            self.probe_at = Some(probe_at);
            return Verdict::StillQuarantined { failures, probe_at };
        }
        if failures >= self.policy.quarantine_after {
            let probe_at = now + self.probe_backoff.next_delay(no_jitter);
            self.retry_at = None;
            self.probe_at = Some(probe_at);
            return Verdict::Quarantined { failures, probe_at };
        }
        let at = now + self.retry_backoff.next_delay(no_jitter);
        self.retry_at = Some(at);
        Verdict::Retry { failures, at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn retries_with_backoff_then_quarantines_and_probes_less_and_less_often() {
        let t0 = Instant::now();
        let mut h = Health::new(HealthPolicy::default(), MS(1000));
        let slot = t0 + MS(1000);
        assert_eq!(h.due(slot), slot);
        assert!(h.on_schedule());
        // The table: failure at a time, and what follows.
        let steps = [
            (0, Verdict::Retry { failures: 1, at: t0 + MS(100) }),
            (300, Verdict::Retry { failures: 2, at: t0 + MS(500) }),
            (700, Verdict::Quarantined { failures: 3, probe_at: t0 + MS(1_700) }),
            (1_700, Verdict::StillQuarantined { failures: 4, probe_at: t0 + MS(3_700) }),
            (3_700, Verdict::StillQuarantined { failures: 5, probe_at: t0 + MS(7_700) }),
        ];
        for (at, want) in steps {
            assert_eq!(h.failed(t0 + MS(at)), want);
        }
        assert!(h.is_quarantined() && !h.on_schedule());
        assert_eq!(h.due(slot), t0 + MS(7_700), "a quarantined device skips its slots");
        let mut now = t0 + MS(7_700);
        let mut gaps = Vec::new();
        for _ in 0..10 {
            if let Verdict::StillQuarantined { probe_at, .. } = h.failed(now) {
                gaps.push((probe_at - now).as_secs());
                now = probe_at;
            }
        }
        assert_eq!(gaps, [8, 16, 32, 60, 60, 60, 60, 60, 60, 60], "probes are capped at a minute");
        assert_eq!(h.due(slot), now);
        assert_eq!(h.succeeded(), Verdict::Recovered { failures: 15, was_quarantined: true });
        assert_eq!(h.due(slot), slot);
        assert_eq!(h.succeeded(), Verdict::Fine);
    }

    #[test]
    fn a_success_between_failures_starts_the_count_again() {
        let t0 = Instant::now();
        let mut h = Health::new(HealthPolicy::default(), MS(150));
        assert!(matches!(h.failed(t0), Verdict::Retry { failures: 1, .. }));
        assert!(
            matches!(h.failed(t0), Verdict::Retry { failures: 2, at } if at == t0 + MS(150)),
            "capped at the interval"
        );
        h.postpone(t0 + MS(5_000));
        assert_eq!(h.due(t0), t0 + MS(5_000), "a retry waits for the line");
        assert_eq!(h.succeeded(), Verdict::Recovered { failures: 2, was_quarantined: false });
        h.postpone(t0 + MS(5_000));
        assert_eq!(h.due(t0), t0, "nothing pending: the slot stands");
        assert!(matches!(h.failed(t0), Verdict::Retry { failures: 1, .. }));
        assert_eq!(h.failures(), 1);
    }
}
