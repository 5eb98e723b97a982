//! The JSON of an alert on `alerts/{device}/{rule}` (retained) and `events/alerts`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Pending,
    Firing,
    Resolved,
    Acknowledged,
    Silenced,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Pending => "pending",
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Silenced => "silenced",
        }
    }
}

/// One alert transition, or the current state of an alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertMessage {
    pub rule: String,
    pub device: String,
    pub gateway: String,
    pub kind: String,
    pub status: AlertStatus,
    pub severity: String,
    pub summary: String,
    /// When the condition first held (ms since the epoch, reading time).
    pub active_at: i64,
    /// When the alert started firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<i64>,
    /// The time of the reading that caused this transition.
    pub ts: i64,
    /// The regulation or document the rule encodes, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The values that made the transition: the points the rule reads, from the reading that
    /// caused it; the due date and days of an inspection alert.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub evidence: BTreeMap<String, serde_json::Value>,
    /// Who acknowledged it, on an `acknowledged` transition (and on later reminders, none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}
