//! Readiness: whether ingest does its job now, decided from a snapshot of facts and the time
//! (pure, so every case is a unit test); `/readyz` in [`crate::http`] is the thin shell.
//!
//! Not ready while not subscribed to the broker (nothing flows), while every write has failed
//! for longer than `[health] tsdb_failing_for` (readings pile up in the WAL), or while the WAL
//! is past its threshold (soon ingest stops acknowledging and the broker holds the stream).

use std::time::Duration;

use serde::Deserialize;

fn default_tsdb_failing_for() -> Duration {
    Duration::from_secs(300)
}
fn default_wal_full_fraction() -> f64 {
    0.8
}

/// `[health]`: when `/readyz` says not ready.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Not ready once every write has failed (refused or unanswered) for this long.
    #[serde(default = "default_tsdb_failing_for", with = "humantime_serde")]
    pub tsdb_failing_for: Duration,
    /// Not ready while the WAL holds more records than this; no limit when absent.
    #[serde(default)]
    pub wal_pending_max: Option<u64>,
    /// Not ready while the WAL's segments take more than this fraction of `wal.max_bytes`.
    #[serde(default = "default_wal_full_fraction")]
    pub wal_full_fraction: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            tsdb_failing_for: default_tsdb_failing_for(),
            wal_pending_max: None,
            wal_full_fraction: default_wal_full_fraction(),
        }
    }
}

impl HealthConfig {
    pub fn problems(&self) -> Vec<String> {
        let f = self.wal_full_fraction;
        if f > 0.0 && f <= 1.0 {
            Vec::new()
        } else {
            vec![format!("health.wal_full_fraction: {f} is not above 0 and at most 1")]
        }
    }

    /// The limits for a WAL of `wal_max_bytes`.
    pub fn limits(&self, wal_max_bytes: u64) -> Limits {
        Limits {
            tsdb_failing_for: self.tsdb_failing_for,
            wal_pending_max: self.wal_pending_max,
            wal_bytes_max: Some((wal_max_bytes as f64 * self.wal_full_fraction) as u64),
        }
    }
}

/// The thresholds in force.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub tsdb_failing_for: Duration,
    pub wal_pending_max: Option<u64>,
    pub wal_bytes_max: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { tsdb_failing_for: default_tsdb_failing_for(), wal_pending_max: None, wal_bytes_max: None }
    }
}

/// What readiness is decided from.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub subscribed: bool,
    /// When the first of the writes failing since the last success failed; none while writes
    /// succeed.
    pub writes_failing_since_ms: Option<i64>,
    /// The newest write error (already redacted).
    pub last_write_error: Option<String>,
    pub wal_pending: u64,
    pub wal_bytes: u64,
}

/// Ready, or why not (one line per reason).
pub fn readiness(facts: &Facts, limits: &Limits, now_ms: i64) -> Result<(), Vec<String>> {
    let mut reasons = Vec::new();
    if !facts.subscribed {
        reasons.push("not subscribed to the broker yet".to_string());
    }
    if let Some(since) = facts.writes_failing_since_ms {
        let failing = Duration::from_millis(now_ms.saturating_sub(since).max(0) as u64);
        if failing >= limits.tsdb_failing_for {
            let secs = Duration::from_secs(failing.as_secs());
            let error = facts.last_write_error.as_deref().unwrap_or("unknown error");
            reasons.push(format!(
                "every write has failed for {} (tsdb_failing_for = {}): {error}",
                humantime::format_duration(secs),
                humantime::format_duration(limits.tsdb_failing_for)
            ));
        }
    }
    if let Some(max) = limits.wal_pending_max {
        if facts.wal_pending > max {
            reasons.push(format!("the WAL holds {} records (wal_pending_max = {max})", facts.wal_pending));
        }
    }
    if let Some(max) = limits.wal_bytes_max {
        if facts.wal_bytes > max {
            reasons.push(format!(
                "the WAL takes {} bytes, past {max} (wal_full_fraction of wal.max_bytes)",
                facts.wal_bytes
            ));
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Facts {
        Facts { subscribed: true, ..Facts::default() }
    }

    fn limits() -> Limits {
        Limits {
            tsdb_failing_for: Duration::from_secs(60),
            wal_pending_max: Some(100),
            wal_bytes_max: Some(1000),
        }
    }

    #[test]
    fn ready_when_subscribed_writing_and_the_wal_is_small() {
        assert_eq!(readiness(&ok(), &limits(), 1_000_000), Ok(()));
        let unlimited = Limits::default();
        let big = Facts { wal_pending: u64::MAX, wal_bytes: u64::MAX, ..ok() };
        assert_eq!(readiness(&big, &unlimited, 0), Ok(()), "no WAL limits by default");
    }

    #[test]
    fn not_ready_before_subscribing() {
        let e = readiness(&Facts::default(), &limits(), 0).unwrap_err();
        assert_eq!(e, ["not subscribed to the broker yet"]);
    }

    #[test]
    fn failing_writes_count_only_past_the_configured_time() {
        let failing = Facts {
            writes_failing_since_ms: Some(10_000),
            last_write_error: Some("TSDB unavailable: connection refused".into()),
            ..ok()
        };
        assert_eq!(readiness(&failing, &limits(), 69_999), Ok(()), "59.999 s");
        let e = readiness(&failing, &limits(), 70_500).unwrap_err();
        assert_eq!(
            e,
            ["every write has failed for 1m (tsdb_failing_for = 1m): TSDB unavailable: connection refused"]
        );
        assert_eq!(readiness(&failing, &limits(), 0), Ok(()), "a clock that went back");
    }

    #[test]
    fn a_full_wal_is_not_ready_with_every_reason_given() {
        let full = Facts { subscribed: false, wal_pending: 101, wal_bytes: 1001, ..Facts::default() };
        let e = readiness(&full, &limits(), 0).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[1].contains("101 records (wal_pending_max = 100)"), "{e:?}");
        assert!(e[2].contains("1001 bytes, past 1000"), "{e:?}");
        let at_limit = Facts { wal_pending: 100, wal_bytes: 1000, ..ok() };
        assert_eq!(readiness(&at_limit, &limits(), 0), Ok(()));
    }

    #[test]
    fn the_config_gives_limits_and_checks_the_fraction() {
        let cfg: HealthConfig = toml::from_str("tsdb_failing_for = \"30s\"\nwal_pending_max = 5").unwrap();
        assert_eq!(
            cfg.limits(1000),
            Limits {
                tsdb_failing_for: Duration::from_secs(30),
                wal_pending_max: Some(5),
                wal_bytes_max: Some(800)
            }
        );
        assert!(cfg.problems().is_empty());
        let bad = HealthConfig { wal_full_fraction: 1.5, ..HealthConfig::default() };
        assert_eq!(bad.problems().len(), 1);
    }
}
