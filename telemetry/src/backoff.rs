//! How long to wait before trying again: from `initial`, times `factor` after each failure, at
//! most `max`, with jitter so that many clients cut off by the same outage (a broker restart, a
//! TSDB down) do not all come back in the same instant. Pure: no clock, and the caller draws
//! the random numbers ([`os_random`] in the binaries, fixed values in tests).

use std::time::Duration;

/// A retry schedule and where it stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: f64,
    jitter: f64,
    next: Duration,
}

impl Backoff {
    /// Doubling from `initial` to at most `max`, jitter taking up to half of each wait off.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.min(max);
        Backoff { initial, max, factor: 2.0, jitter: 0.5, next: initial }
    }

    /// Each wait is the previous one times `factor` (at least 1).
    pub fn with_factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() { factor.max(1.0) } else { 1.0 };
        self
    }

    /// Jitter takes up to this fraction (0 to 1) of each wait off: the wait for step `d` lies in
    /// `[d * (1 - jitter), d]`, so it never exceeds `max`. 0 gives exact waits.
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.0 };
        self
    }

    /// The wait before the next attempt, after a failure; `random` gives numbers in `[0, 1)`.
    pub fn next_delay(&mut self, mut random: impl FnMut() -> f64) -> Duration {
        let step = self.next;
        self.next = step.mul_f64(self.factor).min(self.max);
        let draw = random();
        let draw = if draw.is_finite() { draw.clamp(0.0, 1.0) } else { 0.0 };
        step.mul_f64(1.0 - self.jitter * draw)
    }

    /// The attempt succeeded: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// The step the next failure starts from, before jitter.
    pub fn current_step(&self) -> Duration {
        self.next
    }
}

/// A number in `[0, 1)` from the operating system's random source (0 if it fails).
pub fn os_random() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::getrandom(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_from_initial_to_at_most_max_and_starts_over_after_reset() {
        let mut b = Backoff::new(ms(200), ms(5000));
        let waits: Vec<u128> = (0..8).map(|_| b.next_delay(|| 0.0).as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(|| 0.0), ms(200));
    }

    #[test]
    fn the_factor_sets_the_growth() {
        let mut b = Backoff::new(ms(100), ms(10_000)).with_factor(3.0);
        let waits: Vec<u128> = (0..6).map(|_| b.next_delay(|| 0.0).as_millis()).collect();
        assert_eq!(waits, [100, 300, 900, 2700, 8100, 10_000]);
        let mut flat = Backoff::new(ms(100), ms(10_000)).with_factor(0.5);
        assert_eq!((flat.next_delay(|| 0.0), flat.next_delay(|| 0.0)), (ms(100), ms(100)));
    }

    #[test]
    fn jitter_takes_at_most_its_fraction_off_and_never_goes_above_max() {
        let mut b = Backoff::new(ms(200), ms(5000));
        for _ in 0..10 {
            b.next_delay(|| 0.0);
        }
        assert_eq!(b.clone().next_delay(|| 0.999_999).as_millis(), 2500);
        for _ in 0..1000 {
            let w = b.clone().next_delay(os_random);
            assert!(w >= ms(2500) && w <= ms(5000), "{w:?}");
        }
        let mut quarter = Backoff::new(ms(1000), ms(1000)).with_jitter(0.25);
        assert_eq!(quarter.next_delay(|| 0.5), ms(875));
        let mut exact = Backoff::new(ms(1000), ms(1000)).with_jitter(0.0);
        assert_eq!(exact.next_delay(|| 0.9), ms(1000));
    }

    #[test]
    fn out_of_range_draws_and_settings_are_clamped() {
        let mut b = Backoff::new(ms(1000), ms(1000)).with_jitter(7.0);
        assert_eq!(b.next_delay(|| 2.0), Duration::ZERO);
        assert_eq!(b.next_delay(|| f64::NAN), ms(1000));
        assert_eq!(b.next_delay(|| -1.0), ms(1000));
        let mut capped = Backoff::new(ms(9000), ms(1000));
        assert_eq!(capped.next_delay(|| 0.0), ms(1000));
    }

    #[test]
    fn os_random_lies_in_the_unit_interval_and_varies() {
        let draws: Vec<f64> = (0..50).map(|_| os_random()).collect();
        assert!(draws.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]), "the draws vary");
    }

    /// On a simulated clock: a peer away for a minute is retried at least every `max`.
    #[test]
    fn a_long_outage_is_retried_at_least_every_max() {
        let mut b = Backoff::new(ms(200), ms(5000));
        let (mut now, mut attempts) = (Duration::ZERO, 1);
        while now < Duration::from_secs(60) {
            let wait = b.next_delay(os_random);
            assert!(wait <= ms(5000), "{wait:?} at {now:?}");
            now += wait;
            attempts += 1;
        }
        assert!((12..40).contains(&attempts), "{attempts} attempts");
    }
}
