//! What an operator watches, against the real ingest binary, Mosquitto and VictoriaMetrics:
//! the alert gauges across a crash, `/metrics` through `promtool check metrics`, `/readyz`
//! while the TSDB is away and after it is back, and the reconnect after a broker restart.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use system_tests::{
    free_port, kill_9, metric, now_ms, publish, publish_raw, start_ingest, stored_points, wait_for,
    Mosquitto, Victoria,
};
use telemetry::Reading;

fn config(dir: &std::path::Path, broker: &Mosquitto, vm: &Victoria, http: u16, extra: &str) -> String {
    format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"ingest-ops\"\n\n[tsdb]\nurl = \"{}\"\nbucket = \"telemetry\"\ntimeout = \"2s\"\n\n\
         [files]\ndir = \"{}\"\n\n[wal]\ndir = \"{}\"\n\n[state]\nsnapshot_every = \"100ms\"\n\n\
         [batch]\nflush_every = \"50ms\"\n\n[http]\nlisten = \"127.0.0.1:{http}\"\n\n{extra}",
        broker.url(),
        vm.url(),
        dir.join("files").display(),
        dir.join("wal").display()
    )
}

fn boiler(seq: u64, ts: i64, pressure: f64) -> Reading {
    Reading::new("gw-ops", "boiler-ops", "boiler", 1, seq, ts)
        .with_value("pressure_mpa", pressure)
        .with_value("over_pressure", pressure > 1.25)
}

/// `/readyz`: the status and the body.
fn readyz(port: u16) -> (u16, String) {
    match ureq::get(&format!("http://127.0.0.1:{port}/readyz")).call() {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// Scrapes `/metrics` and runs it through `promtool check metrics`; fails on any problem.
fn promtool_check(port: u16) -> String {
    let text = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .expect("/metrics")
        .into_string()
        .expect("text");
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("`promtool` is not installed ({e}); this test needs it. Install it with: apt-get install -y prometheus")
        });
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}\n{text}");
    text
}

#[test]
fn alert_gauges_count_the_engines_state_across_a_crash_and_every_metric_passes_promtool() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let broker = Mosquitto::start(dir);
    let vm = Victoria::start(dir);
    let http = free_port();
    let config = config(dir, &broker, &vm, http, "");
    let mut ingest = start_ingest(dir, "ingest-1", &config);
    let critical = "ingest_alerts_active{severity=\"critical\"}";

    // Over pressure for 4 s fires `boiler.over_pressure` (critical); garbage is dead-lettered.
    let t0 = now_ms() - 10_000;
    let over: Vec<Reading> = (0..5).map(|i| boiler(i, t0 + i as i64 * 1000, 1.35)).collect();
    publish(broker.port, "gw-ops-a", &over);
    publish_raw(
        broker.port,
        "gw-ops-b",
        vec![("telemetry/3/gw-ops/boiler-ops".into(), b"not json".to_vec())],
    );
    wait_for(Duration::from_secs(20), "one critical alert firing and one dead letter", || {
        let invalid = metric(http, "ingest_messages_invalid_total")?;
        (metric(http, critical)? == 1.0 && invalid == 1.0).then_some(())
    });
    let text = promtool_check(http);
    assert_eq!(metric(http, "ingest_alerts_active{severity=\"major\"}"), Some(0.0), "{text}");
    let build = text.lines().find(|l| l.starts_with("ingest_build_info{")).expect("ingest_build_info");
    assert!(build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))), "{build}");
    assert!(build.ends_with("} 1") && !build.contains("commit=\"\""), "{build}");
    let sample =
        |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok());
    assert!(sample("ingest_write_duration_seconds_count").is_some_and(|n| n >= 1.0), "{text}");
    assert_eq!(
        sample("ingest_write_duration_seconds_bucket{le=\"+Inf\"}"),
        sample("ingest_write_duration_seconds_count")
    );
    assert_eq!(sample("ingest_rule_errors_total{rule=\"boiler.over_pressure\"}"), Some(0.0), "{text}");

    // After a crash the gauge comes from the restored state: still 1, not 0 (nothing fired
    // since the start) and never negative when the alert resolves.
    std::thread::sleep(Duration::from_millis(500)); // past snapshot_every: the firing state is saved
    kill_9(&mut ingest);
    let _ingest = start_ingest(dir, "ingest-2", &config);
    wait_for(Duration::from_secs(10), "the restored alert counted", || {
        (metric(http, critical)? == 1.0).then_some(())
    });
    let normal: Vec<Reading> = (5..7).map(|i| boiler(i, t0 + i as i64 * 1000, 0.9)).collect();
    publish(broker.port, "gw-ops-a", &normal);
    wait_for(Duration::from_secs(20), "the resolved alert no longer counted", || {
        let resolved = metric(http, "ingest_alert_transitions_total{state=\"resolved\"}")?;
        (resolved == 1.0 && metric(http, critical)? == 0.0).then_some(())
    });
    promtool_check(http);
}

#[test]
fn readyz_fails_with_the_reason_while_every_write_fails_and_recovers_with_the_tsdb() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let broker = Mosquitto::start(dir);
    let mut vm = Victoria::start(dir);
    let http = free_port();
    let config = config(dir, &broker, &vm, http, "[health]\ntsdb_failing_for = \"3s\"\n");
    let _ingest = start_ingest(dir, "ingest", &config);
    wait_for(Duration::from_secs(10), "ready", || (readyz(http).0 == 200).then_some(()));

    vm.proc.terminate();
    let stopped = Instant::now();
    let ts = now_ms();
    publish(broker.port, "gw-ops-a", &[boiler(1, ts, 0.9)]);
    let (status, body) = readyz(http);
    assert_eq!((status, body.as_str()), (200, "ready\n"), "failing for less than 3 s is still ready");
    let body = wait_for(Duration::from_secs(20), "/readyz to fail", || {
        let (status, body) = readyz(http);
        (status == 503).then_some(body)
    });
    assert!(stopped.elapsed() >= Duration::from_secs(3), "not before tsdb_failing_for: {body}");
    assert!(body.contains("every write has failed for") && body.contains("tsdb_failing_for = 3s"), "{body}");
    assert!(body.contains("TSDB unavailable"), "the last error: {body}");

    vm.restart();
    // The writer retries at most 10 s apart.
    wait_for(Duration::from_secs(30), "/readyz to recover", || {
        (readyz(http) == (200, "ready\n".into())).then_some(())
    });
    wait_for(Duration::from_secs(30), "the reading held in the WAL written", || {
        stored_points(&vm, "boiler_pressure_mpa")
            .0
            .contains_key(&("boiler-ops".to_string(), ts))
            .then_some(())
    });
}

#[test]
fn ingest_is_back_within_5_s_of_a_broker_restart_after_a_long_outage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let mut broker = Mosquitto::start(dir);
    let vm = Victoria::start(dir);
    let http = free_port();
    let config = config(dir, &broker, &vm, http, "");
    let ingest = start_ingest(dir, "ingest", &config);

    broker.kill();
    wait_for(Duration::from_secs(10), "ingest to see the broker gone", || {
        (metric(http, "ingest_mqtt_connected")? == 0.0).then_some(())
    });
    // Long enough for the backoff to reach its cap (200 ms doubling: 5 s after ~6 s).
    std::thread::sleep(Duration::from_secs(12));
    broker.start_again();
    let back = Instant::now();
    // The broker lost its sessions with the SIGKILL: ingest subscribes again.
    wait_for(Duration::from_secs(30), "ingest to subscribe again", || {
        (metric(http, "ingest_mqtt_subscribed")? == 1.0).then_some(())
    });
    let reconnected = back.elapsed();
    assert!(
        reconnected < Duration::from_secs(6),
        "subscribed again {reconnected:?} after the broker was back"
    );
    let written = metric(http, "ingest_readings_written_total").expect("written");
    let ts = now_ms();
    publish(broker.port, "gw-ops-a", &[boiler(1, ts, 0.9)]);
    wait_for(Duration::from_secs(30), "the reading written", || {
        (metric(http, "ingest_readings_written_total")? > written).then_some(())
    });
    let took = back.elapsed();
    assert!(took < Duration::from_secs(7), "a reading written {took:?} after the broker came back");
    wait_for(Duration::from_secs(30), "the reading in the TSDB", || {
        stored_points(&vm, "boiler_pressure_mpa")
            .0
            .contains_key(&("boiler-ops".to_string(), ts))
            .then_some(())
    });
    let retries = ingest.output().matches("retrying in").count();
    assert!(retries >= 4, "ingest retried while the broker was away: {retries}");
}
