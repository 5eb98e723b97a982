//! Two ingest instances, each owning half of the partitions, on one Mosquitto: every reading is
//! stored, no alert is raised twice, and each device's rule state lives on one instance.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use system_tests::checks::{alerts, assert_readings_stored, fired_and_resolved, readings};
use system_tests::{binary, start_ingest, wait_for, Mosquitto, Proc, Recorder, Victoria};
use telemetry::AlertStatus;

fn config(name: &str, partitions: &str, broker: &Mosquitto, vm: &Victoria, dir: &std::path::Path) -> String {
    format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"{name}\"\npartitions = 16\nown_partitions = {partitions}\n\n\
         [tsdb]\nurl = \"{}\"\nbucket = \"telemetry\"\n\n[files]\ndir = \"{}\"\n\n[wal]\ndir = \"{}\"\n\n\
         [batch]\nflush_every = \"100ms\"\n",
        broker.url(),
        vm.url(),
        dir.join(format!("{name}-files")).display(),
        dir.join(format!("{name}-wal")).display()
    )
}

#[test]
fn two_instances_owning_half_the_partitions_each_store_everything_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let broker = Mosquitto::start(dir);
    let vm = Victoria::start(dir);
    let recorder = Recorder::start(broker.port, "partitions-recorder", &["telemetry/#", "events/alerts"]);

    let a = start_ingest(dir, "ingest-a", &config("ingest-a", "[0, 1, 2, 3, 4, 5, 6, 7]", &broker, &vm, dir));
    let b = start_ingest(
        dir,
        "ingest-b",
        &config("ingest-b", "[8, 9, 10, 11, 12, 13, 14, 15]", &broker, &vm, dir),
    );

    let gateway_toml = dir.join("gateway.toml");
    let mut sim = Command::new(binary("gateway"));
    sim.args(["sim", "--listen", "127.0.0.1:0", "--gateway-id", "gw-part", "--interval", "500ms"])
        .args(["--elevators", "4", "--boilers", "2", "--water-meters", "4", "--charging-piles", "2"])
        .args([
            "--fault-period",
            "16s",
            "--fault-duration",
            "5s",
            "--fault-delay",
            "1s",
            "--fault-stagger",
            "500ms",
        ])
        .arg("--mqtt-url")
        .arg(broker.url())
        .arg("--write-config")
        .arg(&gateway_toml);
    let _sim = Proc::spawn("gateway-sim", sim, dir);
    wait_for(Duration::from_secs(20), "the simulator's gateway config", || {
        gateway_toml.exists().then_some(())
    });
    let mut gateway = Command::new(binary("gateway"));
    gateway.arg("run").arg("--config").arg(&gateway_toml);
    let _gateway = Proc::spawn("gateway", gateway, dir);

    // Several alerts fire and resolve, on devices of both halves.
    wait_for(Duration::from_secs(60), "alerts on both instances", || {
        let both = fired_and_resolved(&alerts(&recorder.snapshot()));
        let logs = (a.output(), b.output());
        let on_a = both.iter().any(|(_, d)| logs.0.contains(&format!(" {d}: ")));
        let on_b = both.iter().any(|(_, d)| logs.1.contains(&format!(" {d}: ")));
        (both.len() >= 3 && on_a && on_b).then_some(())
    });
    let snapshot = recorder.snapshot();

    // No transition is published twice.
    let mut seen: BTreeMap<(String, String, i64, String), usize> = BTreeMap::new();
    for alert in alerts(&snapshot) {
        let status = if alert.status == AlertStatus::Firing { "firing" } else { "resolved" };
        *seen.entry((alert.rule, alert.device, alert.active_at, status.to_string())).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "transitions published more than once: {twice:?}");

    // Each device's alerts come from one instance only.
    let (log_a, log_b) = (a.output(), b.output());
    for (_, device, _, _) in seen.keys() {
        let marker = format!(" {device}: ");
        assert!(
            log_a.contains(&marker) != log_b.contains(&marker),
            "{device}'s alerts must come from exactly one instance"
        );
    }

    // Every reading published is stored.
    assert_readings_stored(&vm, &readings(&snapshot), Duration::from_secs(30));
}
