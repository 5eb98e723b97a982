//! How long ingest waits before reconnecting to the broker: from 200 ms, doubling, at most
//! [`MAX_WAIT`], with jitter so that several ingest instances cut off by the same broker
//! restart do not all come back in the same instant. Pure: the caller draws the jitter.

use std::time::Duration;

/// The first wait after a connection is lost.
pub const FIRST_WAIT: Duration = Duration::from_millis(200);

/// The longest wait, before the first connection as after one: a broker restart leaves
/// readings waiting at most this long, and a broker not up yet at start is found as soon.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST_WAIT }
    }
}

impl Backoff {
    /// The broker took the connection: the next loss starts over from [`FIRST_WAIT`].
    pub fn connected(&mut self) {
        self.next = FIRST_WAIT;
    }

    /// A connection attempt failed or a connection was lost: how long to wait before the next,
    /// with `jitter` in `[0, 1)` taking up to half of it off (so the wait lies in
    /// `[d/2, d]` for the current step `d`, never above [`MAX_WAIT`]).
    pub fn failed(&mut self, jitter: f64) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(MAX_WAIT);
        step.mul_f64(1.0 - jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// A jitter in `[0, 1)` from the operating system's random source (0 if it fails).
pub fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::getrandom(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_200_ms_to_at_most_5_s_and_starts_over_once_connected() {
        let mut b = Backoff::default();
        let waits: Vec<u128> = (0..8).map(|_| b.failed(0.0).as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        b.connected();
        assert_eq!(b.failed(0.0), FIRST_WAIT);
    }

    #[test]
    fn jitter_takes_at_most_half_off_and_never_goes_above_the_cap() {
        let mut b = Backoff::default();
        for _ in 0..10 {
            b.failed(0.0);
        }
        assert_eq!(b.clone().failed(0.999_999).as_millis(), 2500);
        for _ in 0..1000 {
            let w = b.clone().failed(jitter());
            assert!(w >= MAX_WAIT / 2 && w <= MAX_WAIT, "{w:?}");
        }
        let draws: Vec<f64> = (0..50).map(|_| jitter()).collect();
        assert!(draws.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]), "the jitter varies");
    }

    /// On a simulated clock: a broker that stays away for a minute is retried at least every
    /// 5 s, so a broker back at any instant is found within 5 s.
    #[test]
    fn a_long_outage_is_retried_at_least_every_5_s() {
        let mut b = Backoff::default();
        let (mut now, mut attempts) = (Duration::ZERO, 1);
        while now < Duration::from_secs(60) {
            let wait = b.failed(jitter());
            assert!(wait <= MAX_WAIT, "{wait:?} at {now:?}");
            now += wait;
            attempts += 1;
        }
        assert!((12..40).contains(&attempts), "{attempts} attempts");
    }
}
