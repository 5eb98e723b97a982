//! Alert state across a crash of ingest, and rule files reloaded while it runs: real Mosquitto,
//! the real ingest binary, readings published as a gateway would.

use std::time::Duration;

use system_tests::checks::alerts;
use system_tests::{free_port, kill_9, now_ms, publish, start_ingest, wait_for, Mosquitto, Recorder};
use telemetry::{AlertMessage, AlertStatus, Reading};

fn boiler(device: &str, seq: u64, ts: i64, pressure: f64) -> Reading {
    Reading::new("gw-state", device, "boiler", 1, seq, ts)
        .with_value("pressure_mpa", pressure)
        .with_value("over_pressure", pressure > 1.25)
        .with_value("alarm_bits", if pressure > 1.25 { 1 } else { 0 })
}

fn of(events: &[AlertMessage], rule: &str, device: &str, status: AlertStatus) -> Vec<AlertMessage> {
    events.iter().filter(|a| a.rule == rule && a.device == device && a.status == status).cloned().collect()
}

#[test]
fn a_firing_alert_stays_firing_across_a_crash_and_resolves_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let broker = Mosquitto::start(dir);
    let recorder = Recorder::start(broker.port, "state-recorder", &["events/alerts"]);
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"ingest-state\"\n\n[files]\ndir = \"{}\"\n\n[wal]\ndir = \"{}\"\n\n\
         [state]\nsnapshot_every = \"100ms\"\n\n[batch]\nflush_every = \"50ms\"\n",
        broker.url(),
        dir.join("files").display(),
        dir.join("wal").display()
    );
    let mut ingest = start_ingest(dir, "ingest-1", &config);

    // Over pressure for 4 s: `boiler.over_pressure` (for = 3s) fires.
    let t0 = now_ms() - 60_000;
    let over: Vec<Reading> = (0..5).map(|i| boiler("boiler-s1", i, t0 + i as i64 * 1000, 1.35)).collect();
    publish(broker.port, "gw-state-a", &over);
    let fired = wait_for(Duration::from_secs(20), "the over-pressure alert to fire", || {
        of(&alerts(&recorder.snapshot()), "boiler.over_pressure", "boiler-s1", AlertStatus::Firing).pop()
    });
    std::thread::sleep(Duration::from_millis(500)); // past snapshot_every: the firing state is saved

    kill_9(&mut ingest);
    let _ingest = start_ingest(dir, "ingest-2", &config);

    // Still over pressure, then back to normal: no second firing, one resolve.
    let more: Vec<Reading> = (5..8).map(|i| boiler("boiler-s1", i, t0 + i as i64 * 1000, 1.35)).collect();
    let normal: Vec<Reading> = (8..10).map(|i| boiler("boiler-s1", i, t0 + i as i64 * 1000, 0.9)).collect();
    publish(broker.port, "gw-state-a", &more);
    publish(broker.port, "gw-state-a", &normal);
    let resolved = wait_for(Duration::from_secs(20), "the alert to resolve", || {
        of(&alerts(&recorder.snapshot()), "boiler.over_pressure", "boiler-s1", AlertStatus::Resolved).pop()
    });
    std::thread::sleep(Duration::from_millis(500));
    let events = alerts(&recorder.snapshot());
    let firings = of(&events, "boiler.over_pressure", "boiler-s1", AlertStatus::Firing);
    assert_eq!(firings.len(), 1, "firing stays firing across the crash, not raised again: {firings:?}");
    assert_eq!(of(&events, "boiler.over_pressure", "boiler-s1", AlertStatus::Resolved).len(), 1);
    assert_eq!(resolved.active_at, fired.active_at, "the same alert resolves");
    assert_eq!(resolved.resolved_at, Some(t0 + 8_000));
}

fn metric(port: u16, name: &str) -> f64 {
    let text =
        ureq::get(&format!("http://127.0.0.1:{port}/metrics")).call().ok().and_then(|r| r.into_string().ok());
    text.unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// With alert state on, the WAL is acknowledged when a snapshot is saved. A batch that came
/// before the snapshot was due, with nothing after it, is acknowledged once it is due.
#[test]
fn a_stream_that_goes_quiet_gets_its_wal_acknowledged_once_the_snapshot_is_due() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let broker = Mosquitto::start(dir);
    let http = free_port();
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"ingest-quiet\"\n\n[files]\ndir = \"{}\"\n\n[wal]\ndir = \"{}\"\n\n\
         [state]\nsnapshot_every = \"2s\"\n\n[batch]\nflush_every = \"50ms\"\n\n[http]\nlisten = \"127.0.0.1:{http}\"\n",
        broker.url(),
        dir.join("files").display(),
        dir.join("wal").display()
    );
    let _ingest = start_ingest(dir, "ingest", &config);
    let t0 = now_ms() - 60_000;
    let readings: Vec<Reading> = (0..3).map(|i| boiler("boiler-q1", i, t0 + i as i64 * 1000, 0.9)).collect();
    publish(broker.port, "gw-quiet-a", &readings);
    wait_for(Duration::from_secs(10), "the readings to be written", || {
        (metric(http, "ingest_readings_written_total ") >= 3.0).then_some(())
    });
    wait_for(Duration::from_secs(10), "the WAL to be acknowledged", || {
        (metric(http, "ingest_wal_pending_records ") == 0.0).then_some(())
    });
}

const HIGH: &str = "[[rule]]\nid = \"t.high\"\nkinds = [\"boiler\"]\nwhen = \"pressure_mpa > 2.0\"\nseverity = \"major\"\nsummary = \"{device.id} high\"\n";
const LOW: &str = "[[rule]]\nid = \"t.low\"\nkinds = [\"boiler\"]\nwhen = \"pressure_mpa > 1.0\"\nseverity = \"warning\"\nsummary = \"{device.id} low\"\n";

#[test]
fn rule_files_are_reloaded_and_a_bad_file_keeps_the_old_rules_running() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let broker = Mosquitto::start(dir);
    let recorder = Recorder::start(broker.port, "reload-recorder", &["events/alerts"]);
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("t.toml"), HIGH).unwrap();
    let http = free_port();
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"ingest-reload\"\n\n[rules]\nfiles = [\"{}\"]\nreload_check_every = \"100ms\"\n\n\
         [files]\ndir = \"{}\"\n\n[wal]\ndir = \"{}\"\n\n[batch]\nflush_every = \"50ms\"\n\n[http]\nlisten = \"127.0.0.1:{http}\"\n",
        broker.url(),
        rules.display(),
        dir.join("files").display(),
        dir.join("wal").display()
    );
    let _ingest = start_ingest(dir, "ingest", &config);
    assert_eq!(metric(http, "ingest_rules_loaded "), 1.0);

    // A broken file: refused, counted, and the old rule keeps working.
    std::fs::write(rules.join("t.toml"), "[[rule]]\nid = \"t.high\"\nwhen = \"pressure_mpa > > 2\"\n")
        .unwrap();
    wait_for(Duration::from_secs(10), "the bad file to be refused", || {
        (metric(http, "ingest_rules_reload_failures_total ") >= 1.0).then_some(())
    });
    assert_eq!(metric(http, "ingest_rules_last_reload_ok "), 0.0);
    let t0 = now_ms() - 60_000;
    publish(broker.port, "gw-reload-a", &[boiler("boiler-r1", 0, t0, 3.0)]);
    wait_for(Duration::from_secs(10), "the old rule to fire", || {
        of(&alerts(&recorder.snapshot()), "t.high", "boiler-r1", AlertStatus::Firing).pop()
    });

    // A good file replaces the rules in one step: the removed rule's alert resolves.
    std::fs::write(rules.join("t.toml"), LOW).unwrap();
    wait_for(Duration::from_secs(10), "the new rules to load", || {
        (metric(http, "ingest_rules_reloads_total ") >= 1.0).then_some(())
    });
    wait_for(Duration::from_secs(10), "the removed rule's alert to resolve", || {
        of(&alerts(&recorder.snapshot()), "t.high", "boiler-r1", AlertStatus::Resolved).pop()
    });
    publish(broker.port, "gw-reload-a", &[boiler("boiler-r1", 1, t0 + 1000, 1.5)]);
    wait_for(Duration::from_secs(10), "the new rule to fire", || {
        of(&alerts(&recorder.snapshot()), "t.low", "boiler-r1", AlertStatus::Firing).pop()
    });
    assert_eq!(metric(http, "ingest_rules_last_reload_ok "), 1.0);
}
