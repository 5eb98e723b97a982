//! Snapshot and restore, rule reloads: state carries on exactly.

use telemetry::{AlertStatus, Reading};

use super::*;
use crate::engine::{Matchers, Silence};
use crate::test_support::{self, engine};
use crate::AlertState;

const RULES: &str = r#"
[[rule]]
id = "boiler.over_pressure"
kinds = ["boiler"]
when = "pressure_mpa > 1.25"
for = "10s"
severity = "major"
summary = "{device.id} over pressure {pressure_mpa}"

[[rule]]
id = "boiler.rising"
kinds = ["boiler"]
when = "delta(pressure_mpa, '5s') > 0.5"
severity = "warning"
summary = "{device.id} rising"

[[rule]]
id = "boiler.bits"
kinds = ["boiler"]
type = "bits"
point = "alarm_bits"
bits = { 0 = "low_water", 1 = "burner" }
per_code = true
severity = "critical"
summary = "{device.id} {code_name}"

[[rule]]
id = "gateway.no_data"
kinds = ["*"]
type = "gateway_no_data"
after = "1m"
severity = "major"
summary = "{device.gateway} silent"
"#;

/// A boiler's reading with its pressure and alarm bits.
fn boiler(dev: &str, ts: i64, p: f64, bits: i64) -> Reading {
    test_support::boiler(dev, ts, p).with_value("alarm_bits", bits)
}

/// Runs the same inputs through one engine, and through one restarted from a JSON snapshot
/// after `split` steps; the transitions after the split must be the same.
#[test]
fn a_restored_engine_continues_exactly() {
    let steps: Vec<(i64, f64, i64)> = vec![
        (0, 1.0, 0),
        (1_000, 1.3, 1),
        (4_000, 1.3, 1),
        (5_000, 1.3, 3),
        (8_000, 1.3, 3),
        (12_000, 1.3, 2),
        (13_000, 1.0, 0),
        (14_000, 1.0, 0),
    ];
    for split in 0..steps.len() {
        let mut one = engine(RULES);
        let mut two = engine(RULES);
        let mut want = Vec::new();
        let mut got = Vec::new();
        for (n, &(ts, p, bits)) in steps.iter().enumerate() {
            if n == split {
                let text = serde_json::to_string(&two.snapshot()).unwrap();
                two = engine(RULES);
                two.restore(serde_json::from_str(&text).unwrap()).unwrap();
                assert_eq!(serde_json::to_string(&two.snapshot()).unwrap(), text, "round trip");
            }
            let a = one.process(&boiler("b1", ts, p, bits));
            let b = two.process(&boiler("b1", ts, p, bits));
            if n >= split {
                want.extend(a);
                got.extend(b);
            }
        }
        assert_eq!(got, want, "split at {split}");
    }
}

#[test]
fn firing_stays_firing_and_old_readings_change_nothing_after_restore() {
    let mut e = engine(RULES);
    e.process(&boiler("b1", 0, 1.3, 0));
    assert_eq!(e.process(&boiler("b1", 10_000, 1.3, 1)).len(), 2, "over pressure and low_water fire");
    e.process(&boiler("b2", 5_000, 1.3, 0));
    let snapshot = e.snapshot();
    let mut r = engine(RULES);
    r.restore(snapshot).unwrap();
    assert!(matches!(
        r.state("boiler.over_pressure", "b1"),
        AlertState::Firing { active_at: 0, fired_at: 10_000 }
    ));
    assert!(matches!(r.state("boiler.bits.low_water", "b1"), AlertState::Firing { .. }));
    assert!(r.process(&boiler("b1", 11_000, 1.3, 1)).is_empty(), "no new firing");
    assert!(r.process(&boiler("b1", 9_000, 1.0, 0)).is_empty(), "older than last_ts");
    // b2's `for` timer continues from its active_at: fires at 15 s.
    assert!(r.process(&boiler("b2", 14_000, 1.3, 0)).is_empty());
    let fired = r.process(&boiler("b2", 15_000, 1.3, 0));
    assert_eq!((fired[0].status, fired[0].active_at), (AlertStatus::Firing, 5_000));
    assert_eq!(r.restore(EngineSnapshot { version: 9, ..r.snapshot() }), Err(SnapshotError::Version(9)));
}

#[test]
fn acks_silences_and_owed_notifications_survive_a_restart() {
    let mut e = engine(RULES);
    let m = Matchers { device: Some("b2".into()), ..Matchers::default() };
    e.add_silence(Silence {
        id: String::new(),
        matchers: m,
        starts_ms: 0,
        ends_ms: 60_000,
        who: "w".into(),
        comment: "c".into(),
    })
    .unwrap();
    e.process(&boiler("b1", 0, 1.0, 1));
    assert_eq!(e.process(&boiler("b2", 0, 1.0, 1))[0].status, AlertStatus::Silenced);
    e.acknowledge("boiler.bits.low_water", "b1", "li", "", 1_000).unwrap();
    let mut r = engine(RULES);
    r.restore(serde_json::from_str(&serde_json::to_string(&e.snapshot()).unwrap()).unwrap()).unwrap();
    assert_eq!(r.silences().len(), 1);
    assert_eq!(r.acknowledgement("boiler.bits.low_water", "b1").unwrap().who, "li");
    assert!(r.tick(59_999).is_empty());
    let owed: Vec<_> = r.tick(60_000).into_iter().filter(|m| m.rule != "gateway.no_data").collect();
    assert_eq!(owed.len(), 1);
    assert_eq!((owed[0].device.as_str(), owed[0].status), ("b2", AlertStatus::Firing));
    // Critical, unacknowledged: a reminder 30 min after it was sent; b1 is acknowledged.
    let reminders = r.tick(60_000 + 1_800_000);
    let reminded = reminders.iter().filter(|m| m.summary.starts_with(crate::engine::REMINDER_MARK));
    assert_eq!(reminded.map(|m| m.device.as_str()).collect::<Vec<_>>(), ["b2"]);
}

#[test]
fn replace_rules_keeps_state_by_id_and_resolves_removed_rules() {
    let mut e = engine(RULES);
    e.process(&boiler("b1", 0, 1.3, 1));
    e.process(&boiler("b1", 2_000, 1.3, 1));
    e.tick(3_000);
    // Keep over_pressure (pending since 0, `for` now 3 s), drop the bits rule.
    let kept = RULES
        .split("[[rule]]\nid = \"boiler.bits\"")
        .next()
        .unwrap()
        .replace("for = \"10s\"", "for = \"3s\"");
    let out = e.replace_rules(RuleSet::parse("r.toml", &kept).unwrap());
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].rule.as_str(), out[0].status, out[0].ts),
        ("boiler.bits.low_water", AlertStatus::Resolved, 3_000)
    );
    assert_eq!(e.state("boiler.over_pressure", "b1"), AlertState::Pending { active_at: 0 });
    let fired = e.process(&boiler("b1", 4_000, 1.3, 1));
    assert_eq!((fired.len(), fired[0].rule.as_str(), fired[0].active_at), (1, "boiler.over_pressure", 0));
    assert!(e.snapshot().devices[0].alerts.iter().all(|a| a.rule != "boiler.bits.low_water"));
}

#[test]
fn windows_are_kept_in_the_snapshot_and_rebuilt_for_new_rules() {
    let mut e = engine(RULES);
    for (ts, p) in [(0, 1.0), (2_000, 1.1), (4_000, 1.2)] {
        e.process(&boiler("b1", ts, p, 0));
    }
    let snapshot = e.snapshot();
    assert_eq!(snapshot.devices[0].windows[0].samples, [(0, 1.0), (2_000, 1.1), (4_000, 1.2)]);
    let mut r = engine(RULES);
    r.restore(snapshot).unwrap();
    let out = r.process(&boiler("b1", 5_000, 1.7, 0));
    assert_eq!(
        out.iter().map(|m| m.rule.as_str()).collect::<Vec<_>>(),
        ["boiler.rising"],
        "delta over the restored window"
    );
    // Rules without windows: none kept.
    let out = r.replace_rules(
        RuleSet::parse("r.toml", RULES.split("[[rule]]\nid = \"boiler.rising\"").next().unwrap()).unwrap(),
    );
    assert_eq!(out.len(), 1, "rising resolves with its rule");
    assert!(r.snapshot().devices[0].windows.is_empty());
}

#[test]
fn gateway_alerts_restore_without_a_new_firing() {
    let mut e = engine(RULES);
    e.process(&boiler("b1", 0, 1.0, 0));
    assert_eq!(e.tick(60_000).len(), 1);
    let mut r = engine(RULES);
    r.restore(e.snapshot()).unwrap();
    assert!(r.tick(61_000).is_empty());
    assert_eq!(r.state("gateway.no_data", "gw"), e.state("gateway.no_data", "gw"));
    let back = r.process(&boiler("b1", 62_000, 1.0, 0));
    assert_eq!(back[0].status, AlertStatus::Resolved);
}
