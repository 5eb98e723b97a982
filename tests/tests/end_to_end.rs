//! The whole path on real parts: `gateway sim` → `gateway` → Mosquitto → `ingest` →
//! VictoriaMetrics (InfluxDB v2 write API), with alerts back on the broker.

use std::process::Command;
use std::time::Duration;

use system_tests::checks::{alerts, assert_readings_stored, fired_and_resolved, readings, KINDS};
use system_tests::{binary, free_port, start_ingest, wait_for, Mosquitto, Proc, Recorder, Victoria};
use telemetry::AlertStatus;

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

    // The registry names the simulated devices with their towns; one boiler is overdue.
    let registry = dir.join("registry.csv");
    std::fs::write(
        &registry,
        "device,kind,registration_code,name,town,address,commissioned,last_inspection,next_inspection\n\
         elev-0001,elevator,31104419002018000001,1号梯,东城街道,东城大道 1 号,2018-03-01,2025-03-01,2027-03-01\n\
         elev-0002,elevator,31104419002018000002,2号梯,横沥镇,横沥大道 2 号,2018-03-01,2025-03-01,2027-03-01\n\
         boiler-0001,boiler,11004419002019000123,1号锅炉,石排镇,石排路 3 号,2019-05-10,2023-06-01,2024-06-01\n\
         wm-0001,water_meter,,水表 1,樟木头镇,官仓社区,2024-01-01,,\n\
         wm-0002,water_meter,,水表 2,樟木头镇,官仓社区,2024-01-01,,\n\
         pile-0001,charging_pile,,充电桩 1,东城街道,东城停车场,2025-01-01,,\n",
    )
    .expect("registry.csv");
    let http_port = free_port();
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"ingest-e2e\"\n\n[tsdb]\nurl = \"{}\"\norg = \"city\"\nbucket = \"telemetry\"\n\n\
         [files]\ndir = \"{}\"\n\n[wal]\ndir = \"{}\"\n\n[batch]\nflush_every = \"100ms\"\n\n\
         [http]\nlisten = \"127.0.0.1:{http_port}\"\n\n[registry]\nfile = \"{}\"\n",
        broker.url(),
        vm.url(),
        dir.join("ingest-data").display(),
        dir.join("wal").display(),
        registry.display()
    );
    // Until ingest has subscribed, the broker keeps nothing for it: start_ingest waits.
    let _ingest = start_ingest(dir, "ingest", &config);
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
    assert_readings_stored(&vm, &published, Duration::from_secs(30));

    // Health and metrics.
    let get = |path: &str| ureq::get(&format!("http://127.0.0.1:{http_port}{path}")).call().map_err(Box::new);
    assert_eq!(get("/healthz").expect("healthz").status(), 200);
    assert_eq!(get("/readyz").expect("readyz").status(), 200, "subscribed, so ready");
    let metrics = get("/metrics").expect("metrics").into_string().expect("text");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} in /metrics:\n{metrics}"))
    };
    assert!(value("ingest_readings_written_total ") >= published.len() as f64);
    assert!(value("ingest_rule_evaluations_total ") > 0.0);
    assert!(value("ingest_alert_transitions_total{state=\"firing\"} ") >= 1.0);
    assert_eq!(value("ingest_mqtt_subscribed "), 1.0);

    // Readings carry their town from the registry; the overdue rate is written.
    let floors = vm.export("elevator_floor");
    assert!(
        floors.iter().any(|s| s["metric"]["device"] == "elev-0002" && s["metric"]["town"] == "横沥镇"),
        "town tag from the registry: {floors:?}"
    );
    let rate = vm.export("inspection_overdue");
    assert!(
        rate.iter().any(|s| s["metric"]["town"] == "石排镇" && s["values"][0].as_f64() == Some(1.0)),
        "the overdue boiler is counted in its town: {rate:?}"
    );

    // Alert transitions are written too.
    let alert_series = vm.export("alert_firing");
    assert!(
        alert_series.iter().any(|s| s["metric"]["rule"] == pair.0 && s["metric"]["device"] == pair.1),
        "alert_firing for {pair:?} in {alert_series:?}"
    );
}
