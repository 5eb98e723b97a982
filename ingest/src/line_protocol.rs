//! InfluxDB line protocol, millisecond precision. Measurement = equipment kind; tags = device,
//! gateway (and town when known); fields = the reading's values. Alert transitions go to the
//! `alert` measurement. Escaping is [`telemetry::line_protocol`]'s.

use telemetry::line_protocol::{line, FieldValue};
use telemetry::{AlertMessage, AlertStatus, Reading};

/// Appends one line for `reading` (none when it carries no values that can be written).
pub fn push_reading(out: &mut String, reading: &Reading, town: Option<&str>) {
    let mut tags = line(out, &reading.kind).tag("device", &reading.device).tag("gateway", &reading.gateway);
    if let Some(town) = town {
        tags = tags.tag("town", town);
    }
    let mut values = reading.values.iter();
    let Some((name, value)) = values.next() else { return };
    let mut fields = tags.field(name, value);
    for (name, value) in values {
        fields = fields.field(name, value);
    }
    fields.end(reading.ts_ms);
}

/// Appends one `alert` line for a transition: `firing` is 1 while firing, 0 once resolved.
pub fn push_alert(out: &mut String, alert: &AlertMessage) {
    let firing = matches!(alert.status, AlertStatus::Firing) as i64;
    line(out, "alert")
        .tag("rule", &alert.rule)
        .tag("device", &alert.device)
        .tag("gateway", &alert.gateway)
        .tag("kind", &alert.kind)
        .tag("severity", &alert.severity)
        .field("firing", FieldValue::Int(firing))
        .field("active_at", FieldValue::Int(alert.active_at))
        .field("summary", alert.summary.as_str())
        .end(alert.ts);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_value_type_with_escapes() {
        let r = Reading::new("gw 1", "dev,1", "elevator", 1, 1, 1_700_000_000_123)
            .with_value("speed", 1.5)
            .with_value("whole", 2.0)
            .with_value("floor", -3)
            .with_value("door_closed", true)
            .with_value("model", "KONE \"3000\"");
        let mut out = String::new();
        push_reading(&mut out, &r, Some("东城 街道"));
        assert_eq!(
            out,
            "elevator,device=dev\\,1,gateway=gw\\ 1,town=东城\\ 街道 door_closed=t,floor=-3i,model=\"KONE \\\"3000\\\"\",speed=1.5,whole=2.0 1700000000123\n"
        );
    }

    #[test]
    fn a_reading_without_values_gives_no_line() {
        let r = Reading::new("g", "d", "boiler", 1, 1, 1).with_error("p", "timeout");
        let mut out = String::new();
        push_reading(&mut out, &r, None);
        assert!(out.is_empty());
    }

    #[test]
    fn encodes_alert_transitions() {
        let a = AlertMessage {
            rule: "boiler.over_pressure".into(),
            device: "b1".into(),
            gateway: "gw".into(),
            kind: "boiler".into(),
            status: AlertStatus::Resolved,
            severity: "critical".into(),
            summary: "b1 超压 1.3 MPa".into(),
            active_at: 10,
            fired_at: Some(20),
            resolved_at: Some(30),
            ts: 30,
            source: None,
            evidence: Default::default(),
            acknowledged_by: None,
            comment: None,
        };
        let mut out = String::new();
        push_alert(&mut out, &a);
        assert_eq!(
            out,
            "alert,rule=boiler.over_pressure,device=b1,gateway=gw,kind=boiler,severity=critical firing=0i,active_at=10i,summary=\"b1 超压 1.3 MPa\" 30\n"
        );
    }
}
