//! Counters of the notifier, appended to ingest's `/metrics`. Names are stable.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct NotifyMetrics {
    /// Alert rows queued (one per alert and receiver); replays already queued are not counted.
    pub enqueued: AtomicU64,
    pub delivered_notifications: AtomicU64,
    pub delivered_alerts: AtomicU64,
    pub failed_attempts: AtomicU64,
    /// Alert rows not yet delivered.
    pub queue_depth: AtomicU64,
    /// Errors of the outbox itself (SQLite), which leave notifications queued.
    pub outbox_errors: AtomicU64,
}

impl NotifyMetrics {
    /// Appends the Prometheus text lines.
    pub fn render(&self, out: &mut String) {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let lines: [(&str, &str, &str, u64); 6] = [
            (
                "ingest_notify_alerts_enqueued_total",
                "counter",
                "Alerts queued for a receiver.",
                g(&self.enqueued),
            ),
            (
                "ingest_notify_notifications_delivered_total",
                "counter",
                "Notifications a receiver accepted.",
                g(&self.delivered_notifications),
            ),
            (
                "ingest_notify_alerts_delivered_total",
                "counter",
                "Alerts in delivered notifications.",
                g(&self.delivered_alerts),
            ),
            (
                "ingest_notify_failed_attempts_total",
                "counter",
                "Delivery attempts that failed (retried with backoff).",
                g(&self.failed_attempts),
            ),
            (
                "ingest_notify_queue_depth",
                "gauge",
                "Alerts queued and not yet delivered.",
                g(&self.queue_depth),
            ),
            (
                "ingest_notify_outbox_errors_total",
                "counter",
                "Errors reading or writing the notification outbox.",
                g(&self.outbox_errors),
            ),
        ];
        for (name, kind, help, value) in lines {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_format() {
        let m = NotifyMetrics::default();
        m.delivered_alerts.store(500, Ordering::Relaxed);
        let mut out = String::from("ingest_up 1\n");
        m.render(&mut out);
        assert!(out.starts_with("ingest_up 1\n"));
        assert!(out.contains("\ningest_notify_alerts_delivered_total 500\n"), "{out}");
        assert!(out.contains("# TYPE ingest_notify_queue_depth gauge\n"), "{out}");
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("ingest_") && value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
