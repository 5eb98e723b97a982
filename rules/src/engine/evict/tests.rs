use std::time::Duration;

use telemetry::AlertStatus;

use super::*;
use crate::alert::AlertState;
use crate::test_support::{
    boiler, elevator, engine, reading, rows, ELEVATOR_NO_DATA_RULE, GATEWAY_NO_DATA_RULE, OVER_PRESSURE_RULE,
};
use crate::Engine;

const MIN: Ts = 60_000;
const HOUR: Ts = 60 * MIN;
const DAY: Ts = 24 * HOUR;

fn evicting(rules: &str, after: Ts) -> Engine {
    let mut e = engine(rules);
    e.set_evict_idle_after(Some(Duration::from_millis(after as u64)));
    e
}

fn firing(state: AlertState) -> bool {
    matches!(state, AlertState::Firing { .. })
}

#[test]
fn idle_devices_are_forgotten_after_the_time_and_come_back_as_new() {
    let mut e = evicting(OVER_PRESSURE_RULE, DAY);
    e.tick(0);
    e.process(&boiler("idle", 1_000, 1.0));
    for hour in 0..=24 {
        e.process(&boiler("busy", hour * HOUR + 1_000, 1.0));
        e.tick(hour * HOUR + 2_000);
    }
    // The idle boiler's last reading came at host time 0 (the newest tick's).
    assert_eq!(e.tracked_devices(), 1, "a day idle");
    assert_eq!(e.stats().devices_evicted, 1);
    assert!(e.snapshot().devices.iter().all(|d| d.id != "idle"));
    // Back: a device like any new one, its alerts work.
    let t = DAY + 10 * MIN;
    assert!(e.process(&boiler("idle", t, 2.0)).is_empty());
    let fired = rows(e.process(&boiler("idle", t + 3_000, 2.0)));
    assert_eq!(
        fired.iter().map(|r| (r.1, r.3.as_str())).collect::<Vec<_>>(),
        [(AlertStatus::Firing, "idle")]
    );
    assert_eq!(e.tracked_devices(), 2);
}

#[test]
fn nothing_is_forgotten_without_the_setting_or_before_the_time() {
    let mut e = engine(OVER_PRESSURE_RULE);
    e.process(&boiler("b1", 0, 1.0));
    e.tick(365 * DAY);
    assert_eq!(e.tracked_devices(), 1, "off by default");
    let mut e = evicting(OVER_PRESSURE_RULE, DAY);
    e.process(&boiler("b1", 0, 1.0));
    e.tick(DAY - 1);
    assert_eq!(e.tracked_devices(), 1);
    // The next sweep comes a minute later at the soonest.
    e.tick(DAY);
    assert_eq!(e.tracked_devices(), 1);
    e.tick(DAY - 1 + MIN);
    assert_eq!(e.tracked_devices(), 0);
}

#[test]
fn devices_with_a_pending_or_firing_alert_are_kept() {
    let mut e = evicting(OVER_PRESSURE_RULE, HOUR);
    e.process(&boiler("firing", 0, 2.0));
    e.process(&boiler("firing", 3_000, 2.0));
    e.process(&boiler("pending", 0, 2.0));
    e.process(&boiler("clear", 0, 1.0));
    e.tick(10 * DAY);
    assert_eq!(e.tracked_devices(), 2);
    assert!(firing(e.state("boiler.over_pressure", "firing")));
    assert!(matches!(e.state("boiler.over_pressure", "pending"), AlertState::Pending { .. }));
    // Acknowledged, still firing: kept.
    e.acknowledge("boiler.over_pressure", "firing", "wang", "on site", 10 * DAY).unwrap();
    e.tick(20 * DAY);
    assert_eq!(e.tracked_devices(), 2);
    // Once resolved, an idle device goes.
    let resolved = rows(e.process(&boiler("firing", 20 * DAY + 1, 1.0)));
    assert_eq!(resolved[0].1, AlertStatus::Resolved);
    e.tick(20 * DAY + HOUR + MIN);
    assert_eq!(e.tracked_devices(), 1);
    assert!(matches!(e.state("boiler.over_pressure", "pending"), AlertState::Pending { .. }));
}

/// A water meter's no-data alert comes 2 h after its last data, later than the eviction time.
const METER_NO_DATA: &str = r#"
[[rule]]
id = "water_meter.no_data"
kinds = ["water_meter"]
type = "no_data"
after = "2h"
severity = "warning"
summary = "{device.id} silent for {after}"

[[rule]]
id = "water_meter.usage_surge"
kinds = ["water_meter"]
when = "delta(forward_total_m3, '1h') > 2.0"
severity = "warning"
summary = "{device.id} surge"
"#;

#[test]
fn a_no_data_alert_due_after_the_eviction_time_still_fires_and_keeps_its_device() {
    let mut e = evicting(METER_NO_DATA, HOUR);
    for m in 0..=90 {
        let t = m * MIN;
        e.process(&reading("gw", "wm-1", "water_meter", t).with_value("forward_total_m3", m as f64 * 0.01));
        e.process(&reading("gw", "wm-2", "water_meter", t).with_value("forward_total_m3", 1.0));
        e.tick(t);
    }
    // wm-1 stops at 90 min; wm-2 goes on. Idle for over an hour at 2 h 45 min, not yet 2 h silent.
    let mut fired = Vec::new();
    for m in 91..=(4 * 60) {
        let t = m * MIN;
        e.process(&reading("gw", "wm-2", "water_meter", t).with_value("forward_total_m3", 1.0));
        fired.extend(rows(e.tick(t)));
        if m == 165 {
            assert_eq!(e.tracked_devices(), 2, "its no-data alert is still to come");
        }
    }
    assert_eq!(
        fired.iter().map(|r| (r.0, r.1, r.3.as_str())).collect::<Vec<_>>(),
        [(90 * MIN + 2 * HOUR, AlertStatus::Firing, "wm-1")]
    );
    // Idle for days: kept while its alert fires, but its hour of samples is dropped.
    e.tick(30 * DAY);
    assert_eq!(e.tracked_devices(), 2);
    assert!(firing(e.state("water_meter.no_data", "wm-1")));
    let snapshot = e.snapshot();
    let wm1 = snapshot.devices.iter().find(|d| d.id == "wm-1").unwrap();
    assert!(wm1.windows.is_empty(), "{:?}", wm1.windows);
    // Data back resolves it as ever.
    let back = rows(
        e.process(&reading("gw", "wm-1", "water_meter", 30 * DAY + 1).with_value("forward_total_m3", 1.0)),
    );
    assert_eq!(
        back.iter().map(|r| (r.1, r.3.as_str())).collect::<Vec<_>>(),
        [(AlertStatus::Resolved, "wm-1")]
    );
}

#[test]
fn devices_behind_a_silent_gateway_are_kept_for_the_alerts_it_holds_back() {
    let rules = format!("{ELEVATOR_NO_DATA_RULE}{GATEWAY_NO_DATA_RULE}");
    let mut e = evicting(&rules, HOUR);
    e.process(&elevator("gw-a", "e1", 0, 0));
    e.process(&elevator("gw-a", "e2", 0, 0));
    let mut all = Vec::new();
    for m in 1..=(3 * 24 * 60) {
        all.extend(rows(e.tick(m * MIN)));
    }
    assert_eq!(
        all.iter().map(|r| (r.2.as_str(), r.3.as_str())).collect::<Vec<_>>(),
        [("gateway.no_data", "gw-a")]
    );
    assert_eq!(e.tracked_devices(), 2, "e1 and e2 have no alert of their own, but would have");
    // The gateway comes back with e1 only: e2's own alert fires, as without eviction.
    let t = 3 * DAY + 1_000;
    e.process(&elevator("gw-a", "e1", t, 0));
    let next = rows(e.tick(t + 1_000));
    assert_eq!(
        next.iter().map(|r| (r.1, r.2.as_str(), r.3.as_str())).collect::<Vec<_>>(),
        [(AlertStatus::Firing, "elevator.no_data", "e2")]
    );
}

#[test]
fn forgotten_devices_stay_forgotten_across_a_snapshot_and_old_snapshots_restore() {
    let mut e = evicting(OVER_PRESSURE_RULE, HOUR);
    e.process(&boiler("b1", 0, 1.0));
    e.tick(MIN);
    let before = e.snapshot();
    assert_eq!(before.devices[0].active_at, Some(0));
    e.tick(2 * HOUR);
    assert_eq!(e.tracked_devices(), 0);
    let after = e.snapshot();
    assert!(after.devices.is_empty());
    let mut restored = evicting(OVER_PRESSURE_RULE, HOUR);
    restored.restore(after).unwrap();
    restored.tick(3 * HOUR);
    assert_eq!(restored.tracked_devices(), 0);
    // A snapshot saved before `active_at` was kept: its last reading's time stands in.
    let mut json = serde_json::to_value(&before).unwrap();
    json["devices"][0].as_object_mut().unwrap().remove("active_at");
    let old: crate::engine::EngineSnapshot = serde_json::from_value(json).unwrap();
    let mut restored = evicting(OVER_PRESSURE_RULE, HOUR);
    restored.restore(old).unwrap();
    assert_eq!(restored.snapshot().devices[0].active_at, Some(0));
    restored.tick(HOUR + MIN);
    assert_eq!(restored.tracked_devices(), 0);
}
