//! The whole path on real parts: `gateway sim` → `gateway` → Mosquitto → `ingest` →
//! VictoriaMetrics (InfluxDB v2 write API), with alerts back on the broker.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use system_tests::{binary, wait_for, Message, Mosquitto, Proc, Recorder, Victoria};
use telemetry::{AlertMessage, AlertStatus, Reading, Value};

const KINDS: [&str; 4] = ["elevator", "boiler", "water_meter", "charging_pile"];

fn readings(messages: &[Message]) -> Vec<Reading> {
    messages
        .iter()
        .filter(|m| m.topic.starts_with("telemetry/"))
        .map(|m| telemetry::decode(&m.payload).expect("the gateway publishes valid payloads"))
        .collect()
}

fn alerts(messages: &[Message]) -> Vec<AlertMessage> {
    messages
        .iter()
        .filter(|m| m.topic == "events/alerts")
        .map(|m| serde_json::from_slice(&m.payload).expect("alert JSON"))
        .collect()
}

/// (rule, device) pairs that fired and later resolved.
fn fired_and_resolved(alerts: &[AlertMessage]) -> BTreeSet<(String, String)> {
    let mut fired = BTreeSet::new();
    let mut both = BTreeSet::new();
    for a in alerts {
        let key = (a.rule.clone(), a.device.clone());
        match a.status {
            AlertStatus::Firing => {
                fired.insert(key);
            }
            AlertStatus::Resolved if fired.contains(&key) => {
                both.insert(key);
            }
            _ => {}
        }
    }
    both
}

/// `{series name → {(device, ts) → value}}` from a VictoriaMetrics export.
fn stored(vm: &Victoria) -> BTreeMap<String, BTreeMap<(String, i64), f64>> {
    let mut out: BTreeMap<String, BTreeMap<(String, i64), f64>> = BTreeMap::new();
    for kind in KINDS {
        for series in vm.export(&format!("{kind}_.*")) {
            let name = series["metric"]["__name__"].as_str().unwrap_or_default().to_string();
            let device = series["metric"]["device"].as_str().unwrap_or_default().to_string();
            let points = out.entry(name).or_default();
            let values = series["values"].as_array().cloned().unwrap_or_default();
            let stamps = series["timestamps"].as_array().cloned().unwrap_or_default();
            for (v, t) in values.iter().zip(stamps.iter()) {
                points
                    .insert((device.clone(), t.as_i64().unwrap_or_default()), v.as_f64().unwrap_or(f64::NAN));
            }
        }
    }
    out
}

fn as_number(v: &Value) -> f64 {
    v.as_f64().expect("numeric point")
}

#[test]
fn readings_of_all_four_kinds_reach_the_tsdb_and_a_fault_fires_and_resolves() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let broker = Mosquitto::start(dir);
    let vm = Victoria::start(dir);
    let recorder =
        Recorder::start(broker.port, "e2e-recorder", &["telemetry/#", "events/alerts", "alerts/#"]);

    let gateway_toml = dir.join("gateway.toml");
    let mut sim = Command::new(binary("gateway"));
    sim.args(["sim", "--listen", "127.0.0.1:0", "--gateway-id", "gw-e2e", "--interval", "500ms"])
        .args([
            "--fault-period",
            "20s",
            "--fault-duration",
            "6s",
            "--fault-delay",
            "2s",
            "--fault-stagger",
            "1s",
        ])
        .arg("--mqtt-url")
        .arg(broker.url())
        .arg("--write-config")
        .arg(&gateway_toml);
    let _sim = Proc::spawn("gateway-sim", sim, dir);
    wait_for(Duration::from_secs(20), "the simulator's gateway config", || {
        gateway_toml.exists().then_some(())
    });

    let ingest_toml = dir.join("ingest.toml");
    std::fs::write(
        &ingest_toml,
        format!(
            "[mqtt]\nurl = \"{}\"\nclient_id = \"ingest-e2e\"\n\n[tsdb]\nurl = \"{}\"\norg = \"city\"\nbucket = \"telemetry\"\n\n\
             [files]\ndir = \"{}\"\n\n[wal]\ndir = \"{}\"\n\n[batch]\nflush_every = \"100ms\"\n",
            broker.url(),
            vm.url(),
            dir.join("ingest-data").display(),
            dir.join("wal").display()
        ),
    )
    .expect("ingest.toml");
    let mut ingest = Command::new(binary("ingest"));
    ingest.arg("run").arg("--config").arg(&ingest_toml);
    let ingest = Proc::spawn("ingest", ingest, dir);
    // Until ingest has subscribed, the broker keeps nothing for it.
    wait_for(Duration::from_secs(20), "ingest to subscribe", || {
        ingest.output().contains("subscribed").then_some(())
    });
    let mut gateway = Command::new(binary("gateway"));
    gateway.arg("run").arg("--config").arg(&gateway_toml);
    let _gateway = Proc::spawn("gateway", gateway, dir);

    // A simulated fault gives a firing and then a resolved alert on the broker.
    let pair = wait_for(Duration::from_secs(60), "an alert to fire and resolve", || {
        fired_and_resolved(&alerts(&recorder.snapshot())).into_iter().next()
    });
    let snapshot = recorder.snapshot();
    let all_alerts = alerts(&snapshot);
    let firing = all_alerts
        .iter()
        .find(|a| (a.rule.clone(), a.device.clone()) == pair && a.status == AlertStatus::Firing);
    let resolved = all_alerts
        .iter()
        .find(|a| (a.rule.clone(), a.device.clone()) == pair && a.status == AlertStatus::Resolved);
    let (firing, resolved) = (firing.expect("firing"), resolved.expect("resolved"));
    assert!(firing.ts < resolved.ts, "resolved after firing: {firing:?} {resolved:?}");
    assert_eq!(resolved.active_at, firing.active_at);
    let retained_state = format!("alerts/{}/{}", pair.1, pair.0);
    assert!(
        snapshot.iter().any(|m| m.topic == retained_state && !m.payload.is_empty()),
        "the firing state was published on {retained_state}"
    );
    assert!(
        snapshot.iter().any(|m| m.topic == retained_state && m.payload.is_empty()),
        "the resolved alert cleared {retained_state} with an empty message"
    );

    // Every reading published before now reaches VictoriaMetrics with the same values.
    let published = readings(&snapshot);
    for kind in KINDS {
        assert!(
            published.iter().filter(|r| r.kind == kind).count() >= 5,
            "readings of {kind} were published"
        );
    }
    let missing = |store: &BTreeMap<String, BTreeMap<(String, i64), f64>>| -> Vec<String> {
        let mut missing = Vec::new();
        for r in &published {
            for (field, value) in &r.values {
                let series = format!("{}_{field}", r.kind);
                match store.get(&series).and_then(|s| s.get(&(r.device.clone(), r.ts_ms))) {
                    None => missing.push(format!("{series}{{device={}}} @{}", r.device, r.ts_ms)),
                    Some(got) => {
                        let want = as_number(value);
                        assert!(
                            (got - want).abs() <= want.abs() * 1e-12,
                            "{series}{{device={}}} @{}: stored {got}, published {want}",
                            r.device,
                            r.ts_ms
                        );
                    }
                }
            }
        }
        missing
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = missing(&stored(&vm));
        if m.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} published points are not in VictoriaMetrics, e.g. {:?}",
            m.len(),
            &m[..m.len().min(5)]
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Alert transitions are written too.
    let alert_series = vm.export("alert_firing");
    assert!(
        alert_series.iter().any(|s| s["metric"]["rule"] == pair.0 && s["metric"]["device"] == pair.1),
        "alert_firing for {pair:?} in {alert_series:?}"
    );
}
