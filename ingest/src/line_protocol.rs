//! InfluxDB line protocol, millisecond precision. Measurement = equipment kind; tags = device,
//! gateway (and town when known); fields = the reading's values. Alert transitions go to the
//! `alert` measurement.

use std::fmt::Write;

use telemetry::{AlertMessage, AlertStatus, Reading, Value};

/// Escapes a measurement name: commas and spaces.
fn measurement(out: &mut String, s: &str) {
    for c in s.chars() {
        if matches!(c, ',' | ' ') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Escapes a tag key, tag value or field key: commas, equals signs and spaces.
fn key(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            ',' | '=' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
}

fn string_field(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn field_value(out: &mut String, v: &Value) {
    match v {
        Value::Bool(b) => out.push_str(if *b { "t" } else { "f" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}i");
        }
        // `{:?}` keeps a decimal point (1.0, not 1), so the field stays a float in InfluxDB.
        Value::Float(f) => {
            let _ = write!(out, "{f:?}");
        }
        Value::Text(s) => string_field(out, s),
    }
}

/// Appends one line for `reading` (none when it carries no values).
pub fn push_reading(out: &mut String, reading: &Reading, town: Option<&str>) {
    let mut values = reading.values.iter().filter(|(_, v)| !matches!(v, Value::Float(f) if !f.is_finite()));
    let Some(first) = values.next() else { return };
    measurement(out, &reading.kind);
    out.push_str(",device=");
    key(out, &reading.device);
    out.push_str(",gateway=");
    key(out, &reading.gateway);
    if let Some(town) = town {
        out.push_str(",town=");
        key(out, town);
    }
    out.push(' ');
    for (i, (name, value)) in std::iter::once(first).chain(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        key(out, name);
        out.push('=');
        field_value(out, value);
    }
    let _ = writeln!(out, " {}", reading.ts_ms);
}

/// Appends one `alert` line for a transition: `firing` is 1 while firing, 0 once resolved.
pub fn push_alert(out: &mut String, alert: &AlertMessage) {
    out.push_str("alert,rule=");
    key(out, &alert.rule);
    out.push_str(",device=");
    key(out, &alert.device);
    out.push_str(",gateway=");
    key(out, &alert.gateway);
    out.push_str(",kind=");
    key(out, &alert.kind);
    out.push_str(",severity=");
    key(out, &alert.severity);
    let firing = matches!(alert.status, AlertStatus::Firing) as i64;
    let _ = write!(out, " firing={firing}i,active_at={}i,summary=", alert.active_at);
    string_field(out, &alert.summary);
    let _ = writeln!(out, " {}", alert.ts);
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
