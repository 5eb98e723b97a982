//! Counters of the notifier; [`crate::metrics`] puts them in ingest's `/metrics`. Names are stable.

use std::sync::atomic::AtomicU64;

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
