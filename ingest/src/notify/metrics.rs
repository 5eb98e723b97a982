//! Counters of the notifier, part of ingest's `/metrics`. Names are stable.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::Families;

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
    /// Adds the notifier's series to a scrape.
    pub(crate) fn describe(&self, f: &mut Families) {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        f.counter("ingest_notify_alerts_enqueued_total", "Alerts queued for a receiver.", g(&self.enqueued));
        f.counter(
            "ingest_notify_notifications_delivered_total",
            "Notifications a receiver accepted.",
            g(&self.delivered_notifications),
        );
        f.counter(
            "ingest_notify_alerts_delivered_total",
            "Alerts in delivered notifications.",
            g(&self.delivered_alerts),
        );
        f.counter(
            "ingest_notify_failed_attempts_total",
            "Delivery attempts that failed (retried with backoff).",
            g(&self.failed_attempts),
        );
        f.gauge("ingest_notify_queue_depth", "Alerts queued and not yet delivered.", g(&self.queue_depth));
        f.counter(
            "ingest_notify_outbox_errors_total",
            "Errors reading or writing the notification outbox.",
            g(&self.outbox_errors),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn the_notifier_series_are_in_ingests_text() {
        let notify = Arc::new(NotifyMetrics::default());
        notify.delivered_alerts.store(500, Ordering::Relaxed);
        let text = Metrics { notify, ..Default::default() }.render(0);
        assert!(text.contains("\ningest_notify_alerts_delivered_total 500\n"), "{text}");
        assert!(text.contains("# TYPE ingest_notify_queue_depth gauge\n"), "{text}");
        assert!(text.contains("# TYPE ingest_notify_outbox_errors_total counter\n"), "{text}");
    }
}
