//! Alert notifications to people: webhooks, the WeCom, DingTalk and Feishu group robots, and
//! e-mail, grouped so that an outage of 500 devices is one message, delivered exactly once
//! through a durable outbox. (MQTT and the TSDB get every transition from the writer.)
//!
//! Module map, in the order an alert goes through it:
//! - [`config`]: `[notify]`, its receivers and routes, and `validate()`.
//! - [`route`]: which receivers an alert goes to, and its group key at each.
//! - [`outbox`]: SQLite; one row per (receiver, transition), so a replay is not sent twice.
//! - [`group`]: pure timing: when a group is due (`group_wait`, `group_interval`), retry
//!   backoff, stable notification ids.
//! - [`format`] and [`sign`]: the message of each receiver type, and the robots' signatures.
//! - [`deliver`]: one notification to one receiver over HTTP or SMTP.
//! - [`notifier`]: the delivery task, and the handle the writer queues alerts through.
//! - [`metrics`]: `ingest_notify_*` counters.

pub mod config;
pub mod deliver;
pub mod format;
pub mod group;
pub mod metrics;
pub mod notifier;
pub mod outbox;
pub mod route;
pub mod sign;

pub use config::NotifyConfig;
pub use metrics::NotifyMetrics;
pub use notifier::{Notifier, NotifyHandle};

#[cfg(test)]
pub(crate) fn test_alert(
    rule: &str,
    device: &str,
    gateway: &str,
    status: telemetry::AlertStatus,
) -> telemetry::AlertMessage {
    telemetry::AlertMessage {
        rule: rule.into(),
        device: device.into(),
        gateway: gateway.into(),
        kind: "elevator".into(),
        status,
        severity: "critical".into(),
        summary: format!("{device}: no data for 5 min"),
        active_at: 1_795_751_002_152,
        fired_at: Some(1_795_751_007_152),
        resolved_at: None,
        ts: 1_795_751_007_152,
        source: None,
        evidence: Default::default(),
        acknowledged_by: None,
        comment: None,
    }
}
