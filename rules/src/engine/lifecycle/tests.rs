//! The lifecycle as tables of inputs at explicit timestamps.

use telemetry::{AlertStatus, Reading};

use super::*;
use crate::test_support::{elevator, engine, reading, row, rows, Row};
use crate::RuleSet;

const RULES: &str = r#"
inhibit_when = "service_mode == 1"

[[rule]]
id = "elevator.trapped"
kinds = ["elevator"]
type = "fault_code"
point = "fault_code"
codes = { 5 = "trapped" }
severity = "critical"
repeat_every = "10m"
flap_count = 0
summary = "{device.id} trapped"

[[rule]]
id = "elevator.door"
kinds = ["elevator"]
when = "door_open"
for = "2s"
severity = "major"
flap_count = 2
flap_window = "1m"
flap_hold = "30s"
summary = "{device.id} door"

[[rule]]
id = "elevator.no_data"
kinds = ["elevator"]
type = "no_data"
after = "1m"
severity = "critical"
summary = "{device.id} no data"
"#;

/// The rows of fault alerts only (not no-data).
fn faults(messages: Vec<AlertMessage>) -> Vec<Row> {
    rows(messages).into_iter().filter(|r| r.2 != "elevator.no_data").collect()
}

/// A reading of e1's door, open or closed.
fn door(ts: Ts, open: bool) -> Reading {
    reading("gw-1", "e1", "elevator", ts).with_value("door_open", open)
}

fn silence(matchers: Matchers, starts_ms: Ts, ends_ms: Ts) -> Silence {
    Silence { id: String::new(), matchers, starts_ms, ends_ms, who: "ops".into(), comment: "work".into() }
}

#[test]
fn acknowledge_records_who_and_stops_reminders() {
    let mut e = engine(RULES);
    e.process(&elevator("gw-1", "e1", 0, 5));
    let err = e.acknowledge("elevator.trapped", "e2", "li", "", 1_000).unwrap_err();
    assert_eq!(err, LifecycleError::NotFiring { rule: "elevator.trapped".into(), device: "e2".into() });
    let err = e.acknowledge("nope", "e1", "li", "", 1_000).unwrap_err();
    assert_eq!(err, LifecycleError::UnknownRule("nope".into()));
    // A reminder at 10 min, none after the ack.
    let mut all = faults(e.tick(600_000));
    let ack = e.acknowledge("elevator.trapped", "e1", "li", "on site", 601_000).unwrap();
    all.extend(rows(vec![ack]));
    all.extend(faults(e.tick(1_300_000)));
    assert_eq!(
        all,
        vec![
            row(600_000, AlertStatus::Firing, "elevator.trapped", "e1", "[reminder] e1 trapped"),
            row(
                601_000,
                AlertStatus::Acknowledged,
                "elevator.trapped",
                "e1",
                "e1 trapped (acknowledged by li: on site)"
            ),
        ]
    );
    let ack = e.acknowledgement("elevator.trapped", "e1").unwrap();
    assert_eq!((ack.who.as_str(), ack.at_ms, ack.comment.as_str()), ("li", 601_000, "on site"));
    // Resolving forgets the ack; the next firing is a new alert.
    assert_eq!(e.process(&elevator("gw-1", "e1", 1_301_000, 0))[0].status, AlertStatus::Resolved);
    assert!(e.acknowledgement("elevator.trapped", "e1").is_none());
}

#[test]
fn a_silenced_alert_is_marked_and_sent_once_the_silence_ends() {
    let mut e = engine(RULES);
    let by_device = Matchers { device: Some("e1".into()), ..Matchers::default() };
    let id = e.add_silence(silence(by_device, 0, 10_000)).unwrap();
    assert_eq!(id, "silence-1");
    let by_rule = Matchers { rule: Some("elevator.trapped".into()), ..Matchers::default() };
    e.add_silence(silence(by_rule, 100_000, 200_000)).unwrap();
    assert_eq!(e.silences().len(), 2);
    let mut all = Vec::new();
    for (ts, dev, fault) in [(1_000, "e1", 5), (1_000, "e2", 5), (2_000, "e1", 5)] {
        all.extend(rows(e.process(&elevator("gw-1", dev, ts, fault))));
        all.extend(faults(e.tick(ts)));
    }
    all.extend(faults(e.tick(9_999)));
    all.extend(faults(e.tick(10_000)));
    // The rule silence: a new alert of e3 during it, the alert of e2 sent before it stays.
    all.extend(rows(e.process(&elevator("gw-1", "e3", 150_000, 5))));
    all.extend(faults(e.tick(150_000)));
    assert!(e.remove_silence("silence-2").is_some());
    all.extend(faults(e.tick(151_000)));
    assert_eq!(
        all,
        vec![
            row(1_000, AlertStatus::Silenced, "elevator.trapped", "e1", "e1 trapped"),
            row(1_000, AlertStatus::Firing, "elevator.trapped", "e2", "e2 trapped"),
            row(10_000, AlertStatus::Firing, "elevator.trapped", "e1", "e1 trapped"),
            row(150_000, AlertStatus::Silenced, "elevator.trapped", "e3", "e3 trapped"),
            row(151_000, AlertStatus::Firing, "elevator.trapped", "e3", "e3 trapped"),
        ]
    );
    assert!(e.silences().is_empty(), "expired and removed");
    assert!(matches!(e.state("elevator.trapped", "e1"), crate::AlertState::Firing { .. }));
}

#[test]
fn silences_match_town_gateway_and_kind_and_are_validated() {
    let mut e = engine(RULES);
    let mut attributes = std::collections::BTreeMap::new();
    attributes.insert("town".to_string(), telemetry::Value::Text("东城街道".into()));
    e.set_attributes("e1", attributes);
    let town =
        Matchers { town: Some("东城街道".into()), kind: Some("elevator".into()), ..Matchers::default() };
    e.add_silence(silence(town, 0, 60_000)).unwrap();
    let out = e.process(&elevator("gw-1", "e1", 1_000, 5));
    assert_eq!(out[0].status, AlertStatus::Silenced);
    let out = e.process(&elevator("gw-1", "e2", 1_000, 5));
    assert_eq!(out[0].status, AlertStatus::Firing, "another town");
    let gateway = Matchers { gateway: Some("gw-1".into()), ..Matchers::default() };
    e.add_silence(Silence { id: "site".into(), ..silence(gateway.clone(), 0, 60_000) }).unwrap();
    assert_eq!(e.process(&elevator("gw-1", "e3", 1_000, 5))[0].status, AlertStatus::Silenced);
    let dup = e.add_silence(Silence { id: "site".into(), ..silence(gateway.clone(), 0, 60_000) });
    assert_eq!(dup, Err(LifecycleError::DuplicateSilence("site".into())));
    assert!(matches!(e.add_silence(silence(gateway, 5, 5)), Err(LifecycleError::EmptySilence(_))));
    assert!(matches!(e.add_silence(silence(Matchers::default(), 0, 5)), Err(LifecycleError::NoMatchers(_))));
}

#[test]
fn maintenance_inhibits_new_fault_alerts_but_not_their_resolve() {
    let mut e = engine(RULES);
    let r =
        |ts: i64, mode: i64, fault: i64| elevator("gw-1", "e1", ts, fault).with_value("service_mode", mode);
    let mut all = Vec::new();
    all.extend(rows(e.process(&r(0, 1, 5))));
    // A reading without the signal: the latest answer (maintenance) stands.
    all.extend(rows(e.process(&elevator("gw-1", "e1", 1_000, 5))));
    all.extend(rows(e.process(&r(2_000, 0, 5))));
    all.extend(rows(e.process(&r(3_000, 1, 5))));
    all.extend(rows(e.process(&r(4_000, 1, 0))));
    assert_eq!(
        all,
        vec![
            row(2_000, AlertStatus::Firing, "elevator.trapped", "e1", "e1 trapped"),
            row(4_000, AlertStatus::Resolved, "elevator.trapped", "e1", "e1 trapped"),
        ]
    );
}

#[test]
fn a_flapping_alert_holds_its_resolve_until_clear_for_the_hold_time() {
    let mut e = engine(RULES);
    let mut all = Vec::new();
    // Fires at 2 s, 12 s, 22 s (the third firing within 1 min: flapping), clears in between.
    for ts in (0..=60).map(|s| s * 1_000) {
        let open = matches!(ts % 10_000, 0..=2_000) && ts <= 22_000;
        all.extend(rows(e.process(&door(ts, open))));
        all.extend(rows(e.tick(ts)));
    }
    let door = "elevator.door";
    assert_eq!(
        all,
        vec![
            row(2_000, AlertStatus::Firing, door, "e1", "e1 door"),
            row(3_000, AlertStatus::Resolved, door, "e1", "e1 door"),
            row(12_000, AlertStatus::Firing, door, "e1", "e1 door"),
            row(13_000, AlertStatus::Resolved, door, "e1", "e1 door"),
            row(22_000, AlertStatus::Firing, door, "e1", "[flapping] e1 door"),
            row(53_000, AlertStatus::Resolved, door, "e1", "[flapping] e1 door"),
        ]
    );
}

#[test]
fn a_flapping_alert_that_fires_again_while_held_stays_one_alert() {
    let mut e = engine(RULES);
    let mut statuses = Vec::new();
    for (ts, open) in [(0, true), (2_000, true), (3_000, false), (4_000, true), (6_000, true), (7_000, false)]
        .into_iter()
        .chain([
            (8_000, true),
            (10_000, true),
            (11_000, false),
            (20_000, true),
            (22_000, true),
            (23_000, false),
        ])
    {
        statuses.extend(e.process(&door(ts, open)).into_iter().map(|m| (m.ts, m.status, m.fired_at)));
        statuses.extend(e.tick(ts).into_iter().map(|m| (m.ts, m.status, m.fired_at)));
    }
    statuses.extend(e.tick(60_000).into_iter().map(|m| (m.ts, m.status, m.fired_at)));
    assert_eq!(
        statuses,
        vec![
            (2_000, AlertStatus::Firing, Some(2_000)),
            (3_000, AlertStatus::Resolved, Some(2_000)),
            (6_000, AlertStatus::Firing, Some(6_000)),
            (7_000, AlertStatus::Resolved, Some(6_000)),
            (10_000, AlertStatus::Firing, Some(10_000)),
            // Fired again at 22 s while its resolve was held: no new firing; resolved once,
            // 30 s after it last cleared.
            (60_000, AlertStatus::Resolved, Some(10_000)),
        ]
    );
}

#[test]
fn reminders_default_to_critical_alerts_every_30_minutes() {
    let mut e = engine(RULES);
    e.process(&elevator("gw-1", "e1", 0, 0));
    let mut all = Vec::new();
    for ts in [60_000, 1_859_000, 1_860_000, 3_659_000, 3_660_000] {
        all.extend(rows(e.tick(ts)));
    }
    assert_eq!(
        all,
        vec![
            row(60_000, AlertStatus::Firing, "elevator.no_data", "e1", "e1 no data"),
            row(1_860_000, AlertStatus::Firing, "elevator.no_data", "e1", "[reminder] e1 no data"),
            row(3_660_000, AlertStatus::Firing, "elevator.no_data", "e1", "[reminder] e1 no data"),
        ]
    );
    let mut e = engine(RULES);
    e.set_lifecycle_defaults(LifecycleDefaults {
        critical_repeat_every: Duration::ZERO,
        ..Default::default()
    });
    e.process(&elevator("gw-1", "e1", 0, 0));
    assert_eq!(e.tick(60_000).len(), 1);
    assert!(e.tick(7_200_000).is_empty(), "no reminders");
}

#[test]
fn lifecycle_keys_are_checked() {
    let bad = r#"
[[rule]]
id = "a"
kinds = ["boiler"]
type = "no_data"
after = "1m"
inhibit_when = "x == 1"
flap_count = -1
repeat_every = "soon"
severity = "info"
summary = "a"
"#;
    let d = RuleSet::parse("r.toml", bad).unwrap_err();
    let messages: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages[0].contains("`inhibit_when` belongs to threshold"), "{messages:?}");
    assert!(messages[1].contains("flap_count: `-1`"), "{messages:?}");
    assert!(messages[2].starts_with("repeat_every: `soon`"), "{messages:?}");
}
