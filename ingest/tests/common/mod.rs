//! Fixtures shared by the notification tests.

use telemetry::{AlertMessage, AlertStatus};

/// `count` elevators behind gateway `gw-7` gone silent: the no-data alerts of an outage.
pub fn offline(count: usize) -> Vec<AlertMessage> {
    (0..count)
        .map(|i| AlertMessage {
            rule: "elevator.no_data".into(),
            device: format!("elev-{i:04}"),
            gateway: "gw-7".into(),
            kind: "elevator".into(),
            status: AlertStatus::Firing,
            severity: "critical".into(),
            summary: format!("elev-{i:04}: no data for 5 min"),
            active_at: 1_795_751_000_000,
            fired_at: Some(1_795_751_300_000),
            resolved_at: None,
            ts: 1_795_751_300_000,
            source: None,
            evidence: Default::default(),
            acknowledged_by: None,
            comment: None,
        })
        .collect()
}
