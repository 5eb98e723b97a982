//! Whether a line that failed to open may be tried again: a pure state with time passed in.
//! The first wait is [`LINE_RETRY_FIRST`], doubled after each failure up to [`LINE_RETRY_MAX`],
//! jittered so gateways whose lines share a serial server do not retry in step.

use std::time::Duration;

use telemetry::backoff::Backoff;
use tokio::time::Instant;

pub(super) const LINE_RETRY_FIRST: Duration = Duration::from_millis(500);
pub(super) const LINE_RETRY_MAX: Duration = Duration::from_secs(30);

/// A line that could not be opened.
#[derive(Debug)]
struct LineDown {
    why: String,
    since: Instant,
    backoff: Backoff,
    retry_at: Instant,
}

#[derive(Debug, Default)]
pub(super) struct LineGate {
    down: Option<LineDown>,
}

impl LineGate {
    /// Why the line is not to be opened at `now`: it failed and waits out its backoff.
    pub fn waiting(&self, now: Instant) -> Option<&str> {
        self.down.as_ref().filter(|down| now < down.retry_at).map(|down| down.why.as_str())
    }

    /// When a line that is down may be tried again.
    pub fn retry_at(&self) -> Option<Instant> {
        self.down.as_ref().map(|down| down.retry_at)
    }

    /// The line opened at `now`; returns how long it was down, if it was.
    pub fn opened(&mut self, now: Instant) -> Option<Duration> {
        self.down.take().map(|down| now.saturating_duration_since(down.since))
    }

    /// The line failed to open at `now`, for `why`; `random` draws the jitter (in `[0, 1)`).
    /// Returns true when the failure is new (the line was up, or failed otherwise before): worth
    /// a warning, once, rather than one per poll while the line is down.
    pub fn failed(&mut self, why: String, now: Instant, random: impl FnMut() -> f64) -> bool {
        let new = self.down.as_ref().is_none_or(|down| down.why != why);
        let (since, mut backoff) = match self.down.take() {
            Some(down) => (down.since, down.backoff),
            None => (now, Backoff::new(LINE_RETRY_FIRST, LINE_RETRY_MAX)),
        };
        let retry_at = now + backoff.next_delay(random);
        self.down = Some(LineDown { why, since, backoff, retry_at });
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_failed_line_waits_out_a_growing_backoff_then_opens_and_tells_how_long_it_was_down() {
        let t0 = Instant::now();
        let mut gate = LineGate::default();
        assert_eq!(gate.waiting(t0), None, "an untried line may open");
        let no_jitter = || 0.0;
        assert!(gate.failed("refused".into(), t0, no_jitter), "the first failure is news");
        let first = gate.retry_at().unwrap() - t0;
        assert_eq!(first, LINE_RETRY_FIRST);
        assert_eq!(gate.waiting(t0 + first - MS(1)), Some("refused"));
        assert_eq!(gate.waiting(t0 + first), None, "due again");
        let t1 = t0 + first;
        assert!(!gate.failed("refused".into(), t1, no_jitter), "the same failure is not news");
        let second = gate.retry_at().unwrap() - t1;
        assert_eq!(second, LINE_RETRY_FIRST * 2);
        assert!(gate.failed("no route".into(), t1 + second, no_jitter), "another failure is news");
        assert_eq!(gate.opened(t0 + MS(9_000)), Some(MS(9_000)), "down since the first failure");
        assert_eq!((gate.waiting(t0 + MS(9_000)), gate.retry_at()), (None, None));
        assert_eq!(gate.opened(t0 + MS(10_000)), None, "it was not down");
    }

    #[test]
    fn the_wait_never_grows_past_the_maximum() {
        let mut now = Instant::now();
        let mut gate = LineGate::default();
        let mut waits = Vec::new();
        for _ in 0..10 {
            gate.failed("refused".into(), now, || 0.0);
            waits.push(gate.retry_at().unwrap() - now);
            now = gate.retry_at().unwrap();
        }
        assert_eq!(waits[..3], [MS(500), MS(1_000), MS(2_000)]);
        assert!(waits.iter().all(|&w| w <= LINE_RETRY_MAX), "{waits:?}");
        assert_eq!(waits[9], LINE_RETRY_MAX);
        gate.failed("refused".into(), now, || 0.999);
        let jittered = gate.retry_at().unwrap() - now;
        assert!(
            jittered >= LINE_RETRY_MAX / 2 && jittered < LINE_RETRY_MAX,
            "jitter takes up to half off: {jittered:?}"
        );
    }
}
