use super::*;
use crate::test_support::{
    boiler, elevator, engine, reading, row, rows, ELEVATOR_NO_DATA_RULE, FAULT_CODE_AND_BITS_RULES,
    GATEWAY_NO_DATA_RULE, OVER_PRESSURE_RULE,
};

#[test]
fn fires_and_resolves_per_device_with_hysteresis() {
    let mut e = engine(OVER_PRESSURE_RULE);
    let series = [(0, 1.0), (1_000, 1.3), (2_000, 1.3), (3_000, 1.3), (4_000, 1.22), (5_000, 1.1)];
    let mut all = Vec::new();
    for (ts, p) in series {
        all.extend(rows(e.process(&boiler("b1", ts, p))));
        assert!(e.process(&boiler("b2", ts, 1.0)).is_empty(), "another device is not affected");
    }
    assert_eq!(
        all,
        vec![
            row(3_000, AlertStatus::Firing, "boiler.over_pressure", "b1", "b1 over pressure 1.3 MPa"),
            row(5_000, AlertStatus::Resolved, "boiler.over_pressure", "b1", "b1 over pressure 1.1 MPa"),
        ]
    );
}

#[test]
fn readings_of_other_kinds_and_missing_points_change_nothing() {
    let mut e = engine(OVER_PRESSURE_RULE);
    e.process(&boiler("b1", 0, 2.0));
    e.process(&boiler("b1", 5_000, 2.0));
    assert!(matches!(e.state("boiler.over_pressure", "b1"), AlertState::Firing { .. }));
    let no_pressure = Reading::new("gw", "b1", "boiler", 1, 9, 6_000).with_error("pressure_mpa", "timeout");
    assert!(e.process(&no_pressure).is_empty(), "a missing point never resolves");
    assert!(matches!(e.state("boiler.over_pressure", "b1"), AlertState::Firing { .. }));
    assert_eq!(e.stats().eval_errors, 1);
    let elevator = Reading::new("gw", "b1", "elevator", 1, 9, 7_000).with_value("pressure_mpa", 0.0);
    assert!(e.process(&elevator).is_empty());
}

#[test]
fn late_and_repeated_readings_change_nothing() {
    let mut e = engine(OVER_PRESSURE_RULE);
    e.process(&boiler("b1", 0, 2.0));
    assert_eq!(e.process(&boiler("b1", 2_000, 2.0)).len(), 1);
    assert!(e.process(&boiler("b1", 1_000, 1.0)).is_empty(), "late");
    assert!(e.process(&boiler("b1", 2_000, 1.0)).is_empty(), "repeated");
    assert!(matches!(e.state("boiler.over_pressure", "b1"), AlertState::Firing { .. }));
    assert_eq!(e.stats().readings, 4);
}

#[test]
fn one_fault_code_alert_holds_while_any_listed_code_is_active() {
    let mut e = engine(FAULT_CODE_AND_BITS_RULES);
    let mut all = Vec::new();
    for (ts, code) in [(0, 0), (1_000, 5), (2_000, 8), (3_000, 8), (4_000, 7), (5_000, 0)] {
        all.extend(rows(e.process(&elevator("gw", "e1", ts, code).with_value("floor", 3))));
    }
    // 5 then 8 is one trapped passenger: pending from 1 s, firing at 2 s, resolved when code 7
    // (not listed) replaces it. The resolution names the code that was active.
    assert_eq!(
        all,
        vec![
            row(
                2_000,
                AlertStatus::Firing,
                "elevator.passenger_trapped",
                "e1",
                "e1 trapped_outside_door_zone (8) at floor 3"
            ),
            row(
                4_000,
                AlertStatus::Resolved,
                "elevator.passenger_trapped",
                "e1",
                "e1 trapped_outside_door_zone (8) at floor 3"
            ),
        ]
    );
}

#[test]
fn per_code_bits_are_alerts_of_their_own() {
    let mut e = engine(FAULT_CODE_AND_BITS_RULES);
    let b = |ts: i64, bits: i64| reading("gw", "b1", "boiler", ts).with_value("alarm_bits", bits);
    let mut all = Vec::new();
    for (ts, bits) in [(0, 0b1), (1_000, 0b100001), (2_000, 0b100000), (3_000, 0b10), (4_000, 0)] {
        all.extend(rows(e.process(&b(ts, bits))));
        if ts == 1_000 {
            assert!(matches!(e.state("boiler.alarm.burner_fault", "b1"), AlertState::Firing { .. }));
            assert!(matches!(e.state("boiler.alarm.over_pressure", "b1"), AlertState::Firing { .. }));
            assert_eq!(e.state("boiler.alarm", "b1"), AlertState::Inactive, "no alert under the bare id");
        }
    }
    assert_eq!(
        all,
        vec![
            row(0, AlertStatus::Firing, "boiler.alarm.over_pressure", "b1", "b1 over_pressure (bit 0)"),
            row(1_000, AlertStatus::Firing, "boiler.alarm.burner_fault", "b1", "b1 burner_fault (bit 5)"),
            row(2_000, AlertStatus::Resolved, "boiler.alarm.over_pressure", "b1", "b1 over_pressure (bit 0)"),
            row(3_000, AlertStatus::Resolved, "boiler.alarm.burner_fault", "b1", "b1 burner_fault (bit 5)"),
        ]
    );
    let missing = Reading::new("gw", "b1", "boiler", 1, 9, 5_000).with_value("alarm_bits", "garbled");
    assert!(e.process(&missing).is_empty());
    assert_eq!(e.stats().eval_errors, 1);
}

const WINDOWS: &str = r#"
[[rule]]
id = "boiler.pressure_high_5s"
kinds = ["boiler"]
when = "avg(pressure_mpa, '5s') > 1.2"
severity = "major"
summary = "{device.id} high on average"

[[rule]]
id = "water_meter.usage_surge"
kinds = ["water_meter"]
when = "delta(forward_total_m3, '10s') > 2.0 || rate(forward_total_m3, '2s') > 1.0"
severity = "warning"
summary = "{device.id} surge"
"#;

#[test]
fn window_aggregates_wait_for_the_whole_window_and_ignore_missing_points() {
    let mut e = engine(WINDOWS);
    let mut all = Vec::new();
    for (ts, p) in [(0, 1.5), (1_000, 1.5), (4_000, 1.5), (5_000, 1.5), (6_000, 1.0), (7_000, 1.0)] {
        all.extend(rows(e.process(&boiler("b1", ts, p))));
    }
    // Fires at 5 s, once the series reaches back 5 s; at 6 s the average of 1.5 ×3 and 1.0 is
    // 1.375, at 7 s 1.25. Then the point fails to read: no value, no change.
    let no_point = Reading::new("gw", "b1", "boiler", 1, 1, 20_000).with_error("pressure_mpa", "timeout");
    all.extend(rows(e.process(&no_point)));
    assert_eq!(
        all,
        vec![row(5_000, AlertStatus::Firing, "boiler.pressure_high_5s", "b1", "b1 high on average")]
    );
    assert!(matches!(e.state("boiler.pressure_high_5s", "b1"), AlertState::Firing { .. }));
    // Fresh data again: the 5 s before it hold only the new 1.0.
    all.extend(rows(e.process(&boiler("b1", 21_000, 1.0))));
    assert_eq!(all.last().map(|r| (r.0, r.1)), Some((21_000, AlertStatus::Resolved)));
}

#[test]
fn delta_and_rate_over_a_counter() {
    let mut e = engine(WINDOWS);
    let meter =
        |ts: i64, total: f64| reading("gw", "w1", "water_meter", ts).with_value("forward_total_m3", total);
    let mut all = Vec::new();
    for (ts, total) in [(0, 10.0), (2_000, 10.5), (4_000, 11.0), (6_000, 14.0), (8_000, 14.1), (10_000, 14.2)]
    {
        all.extend(rows(e.process(&meter(ts, total))));
    }
    // The rate over 2 s at 6 s is 1.5 m³/s; at 8 s it is 0.05 m³/s, but the delta over 10 s has
    // no value before 10 s (a condition with no answer changes nothing), and 4.2 m³ at 10 s.
    assert_eq!(all.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(), [(6_000, AlertStatus::Firing)]);
    // At 20 s the 2 s window holds one sample (no rate); at 21 s both are small.
    all.extend(rows(e.process(&meter(20_000, 14.3))));
    all.extend(rows(e.process(&meter(21_000, 14.35))));
    assert_eq!(
        all.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
        [(6_000, AlertStatus::Firing), (21_000, AlertStatus::Resolved)]
    );
}

/// A fault_code rule that fires at once.
const TRAPPED_AT_ONCE_RULE: &str = r#"
[[rule]]
id = "elevator.passenger_trapped"
kinds = ["elevator"]
type = "fault_code"
point = "fault_code"
codes = { 5 = "passenger_trapped" }
severity = "critical"
summary = "{device.id} trapped"
"#;

/// The no-data rules with the trapped rule between them, in the order the tests expect transitions.
fn no_data_rules() -> String {
    [ELEVATOR_NO_DATA_RULE, TRAPPED_AT_ONCE_RULE, GATEWAY_NO_DATA_RULE].concat()
}

#[test]
fn no_data_fires_on_the_hosts_clock_and_a_fresh_reading_resolves_it() {
    let mut e = engine(&no_data_rules());
    assert_eq!(rows(e.process(&elevator("gw", "e1", 0, 5))).len(), 1, "trapped");
    // e2 keeps the gateway alive; e1 stops.
    let mut all = Vec::new();
    for s in 1..=130 {
        let ts = s * 1_000;
        all.extend(rows(e.process(&elevator("gw", "e2", ts, 0))));
        all.extend(rows(e.tick(ts)));
    }
    assert_eq!(
        all,
        vec![row(120_000, AlertStatus::Firing, "elevator.no_data", "e1", "e1 on gw sent nothing for 2m")]
    );
    assert!(
        matches!(e.state("elevator.passenger_trapped", "e1"), AlertState::Firing { .. }),
        "data stopping resolves nothing"
    );
    assert!(e.process(&elevator("gw", "e1", 5_000, 5)).is_empty(), "a reading older than `after` is no news");
    let back = rows(e.process(&elevator("gw", "e1", 130_500, 0)));
    assert_eq!(
        back.iter().map(|r| (r.0, r.1, r.2.as_str())).collect::<Vec<_>>(),
        [
            (130_500, AlertStatus::Resolved, "elevator.no_data"),
            (130_500, AlertStatus::Resolved, "elevator.passenger_trapped")
        ]
    );
}

#[test]
fn a_silent_gateway_raises_one_alert_instead_of_one_per_device() {
    let mut e = engine(&no_data_rules());
    for dev in ["e1", "e2", "e3"] {
        e.process(&elevator("gw-a", dev, 0, 0));
    }
    e.process(&elevator("gw-b", "e9", 0, 0));
    let mut all = Vec::new();
    for s in 1..=200 {
        let ts = s * 1_000;
        if s <= 60 || s > 150 {
            all.extend(rows(e.process(&elevator("gw-b", "e9", ts, 0))));
        }
        all.extend(rows(e.tick(ts)));
    }
    // gw-a is silent from 0 s: one alert at 2 min, none for its three devices. gw-b's one device
    // pauses from 61 s to 150 s, less than 2 min: nothing.
    assert_eq!(
        all,
        vec![row(120_000, AlertStatus::Firing, "gateway.no_data", "gw-a", "gw-a sent nothing for 2m")]
    );
    assert!(matches!(e.state("gateway.no_data", "gw-a"), AlertState::Firing { .. }));
    assert_eq!(e.state("elevator.no_data", "e1"), AlertState::Inactive, "inhibited by its gateway");
    // gw-a comes back with e1 only: the gateway resolves, e2 and e3 are on their own now.
    let back = rows(e.process(&elevator("gw-a", "e1", 200_500, 0)));
    assert_eq!(
        back.iter().map(|r| (r.1, r.2.as_str(), r.3.as_str())).collect::<Vec<_>>(),
        [(AlertStatus::Resolved, "gateway.no_data", "gw-a")]
    );
    let next = rows(e.tick(201_000));
    assert_eq!(
        next.iter().map(|r| (r.1, r.2.as_str(), r.3.as_str())).collect::<Vec<_>>(),
        [(AlertStatus::Firing, "elevator.no_data", "e2"), (AlertStatus::Firing, "elevator.no_data", "e3")]
    );
    assert!(e.tick(200_000).is_empty(), "time does not go back");
}

#[test]
fn readings_without_values_are_no_data_but_keep_the_gateway_alive() {
    let mut e = engine(&no_data_rules());
    e.process(&elevator("gw", "e1", 0, 0));
    let mut all = Vec::new();
    for s in 1..=121 {
        let ts = s * 1_000;
        let failed =
            Reading::new("gw", "e1", "elevator", 1, s as u64, ts).with_error("fault_code", "timeout");
        all.extend(rows(e.process(&failed)));
        all.extend(rows(e.tick(ts)));
    }
    assert_eq!(
        all.iter().map(|r| (r.0, r.2.as_str(), r.3.as_str())).collect::<Vec<_>>(),
        [(120_000, "elevator.no_data", "e1")],
        "the device's own alert: its gateway is talking"
    );
}

#[test]
fn data_back_before_the_tick_that_fired_resolves_at_the_next_tick() {
    let mut e = engine(&no_data_rules());
    e.process(&elevator("gw", "e1", 0, 0));
    e.process(&elevator("gw", "e2", 119_000, 0));
    assert_eq!(rows(e.tick(120_000)).len(), 1);
    // Polled at 119.9 s, arrived after the host's tick at 120 s.
    let late = rows(e.process(&elevator("gw", "e1", 119_900, 0)));
    assert!(late.is_empty(), "{late:?}");
    let next = rows(e.tick(121_000));
    assert_eq!(next.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(), [(121_000, AlertStatus::Resolved)]);
}

#[test]
fn the_engine_can_move_to_another_thread() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Engine>();
}

#[test]
fn evaluation_errors_are_counted_per_rule_with_the_newest_text_and_kept_by_id_across_a_reload() {
    let mut e = engine(&format!("{OVER_PRESSURE_RULE}{FAULT_CODE_AND_BITS_RULES}"));
    let no_pressure = Reading::new("gw", "b1", "boiler", 1, 1, 1_000).with_error("pressure_mpa", "timeout");
    e.process(&no_pressure);
    e.process(&boiler("b1", 2_000, 1.0));
    let words = Reading::new("gw", "b2", "boiler", 1, 1, 3_000).with_value("pressure_mpa", "high");
    e.process(&words);
    let errors = |e: &Engine, id: &str| e.rule_errors().find(|(r, _)| *r == id).map(|(_, x)| x.clone());
    let over = errors(&e, "boiler.over_pressure").unwrap();
    assert_eq!(over.count, 2);
    let text = over.last_error.unwrap();
    assert!(text.starts_with("b1: "), "the first text stands within a minute: {text}");
    let later = Reading::new("gw", "b2", "boiler", 1, 2, 3_000 + ERROR_TEXT_EVERY_MS)
        .with_value("pressure_mpa", "high");
    e.process(&later);
    let over = errors(&e, "boiler.over_pressure").unwrap();
    assert_eq!(over.count, 3);
    assert!(over.last_error.as_deref().unwrap().starts_with("b2: "), "{over:?}");
    let total: u64 = e.rule_errors().map(|(_, x)| x.count).sum();
    assert_eq!(e.stats().eval_errors, total);
    let clean = errors(&e, "elevator.passenger_trapped").unwrap();
    assert_eq!(clean, RuleErrors::default(), "a loaded rule without errors is listed at 0");

    let reordered = format!("{FAULT_CODE_AND_BITS_RULES}{OVER_PRESSURE_RULE}");
    e.replace_rules(crate::RuleSet::parse("r.toml", &reordered).unwrap());
    assert_eq!(errors(&e, "boiler.over_pressure").unwrap().count, 3, "kept by id, not by index");
    e.replace_rules(crate::RuleSet::parse("r.toml", FAULT_CODE_AND_BITS_RULES).unwrap());
    assert!(errors(&e, "boiler.over_pressure").is_none(), "only loaded rules are listed");
    assert_eq!(e.rule_errors().count(), e.rules().len());
}
