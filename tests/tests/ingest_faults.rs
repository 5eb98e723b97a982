//! Ingest under faults, on real parts: killed with SIGKILL under load, and the TSDB stopped
//! and restarted mid-stream. Nothing the broker handed over may be lost or stored twice.

use std::time::Duration;

use system_tests::{kill_9, publish_readings, start_ingest, stored_points, wait_for, Mosquitto, Victoria};

fn ingest_config(dir: &std::path::Path, broker: &Mosquitto, vm: &Victoria) -> String {
    format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"ingest-faults\"\n\n[tsdb]\nurl = \"{}\"\nbucket = \"telemetry\"\ntimeout = \"2s\"\n\n\
         [files]\ndir = \"{}\"\n\n[wal]\ndir = \"{}\"\n\n[batch]\nflush_every = \"50ms\"\nmax_readings = 500\n",
        broker.url(),
        vm.url(),
        dir.join("files").display(),
        dir.join("wal").display()
    )
}

/// Waits until VictoriaMetrics holds every reading, then checks each is there once with its value.
fn assert_all_stored(vm: &Victoria, readings: &[telemetry::Reading]) {
    let expected: std::collections::BTreeMap<(String, i64), f64> = readings
        .iter()
        .map(|r| ((r.device.clone(), r.ts_ms), r.values["forward_total_m3"].as_f64().unwrap()))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (points, samples) = stored_points(vm, "water_meter_forward_total_m3");
        if points.len() >= expected.len() || std::time::Instant::now() > deadline {
            let missing: Vec<_> = expected.keys().filter(|k| !points.contains_key(*k)).take(5).collect();
            assert!(
                missing.is_empty(),
                "{} of {} readings missing, e.g. {missing:?}",
                expected.len() - points.len().min(expected.len()),
                expected.len()
            );
            assert_eq!(points, expected, "stored values equal published values");
            assert_eq!(samples, expected.len(), "one sample per device and timestamp");
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn ingest_killed_under_load_loses_nothing_and_stores_each_reading_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let broker = Mosquitto::start(dir);
    let vm = Victoria::start(dir);
    let config = ingest_config(dir, &broker, &vm);
    let mut ingest = start_ingest(dir, "ingest-1", &config);

    let port = broker.port;
    let load =
        std::thread::spawn(move || publish_readings(port, "gw-load", 20, 150, Duration::from_micros(1500)));
    // Kill ingest while readings are streaming in, twice.
    for round in 0..2 {
        std::thread::sleep(Duration::from_millis(1500));
        kill_9(&mut ingest);
        std::thread::sleep(Duration::from_millis(500));
        ingest = start_ingest(dir, &format!("ingest-{}", round + 2), &config);
    }
    let readings = load.join().expect("load publisher");
    assert_eq!(readings.len(), 3000);
    assert_all_stored(&vm, &readings);
}

#[test]
fn the_tsdb_stopped_and_restarted_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let broker = Mosquitto::start(dir);
    let mut vm = Victoria::start(dir);
    let http = system_tests::free_port();
    let config = format!("{}\n[http]\nlisten = \"127.0.0.1:{http}\"\n", ingest_config(dir, &broker, &vm));
    let ingest = start_ingest(dir, "ingest", &config);

    let port = broker.port;
    let load =
        std::thread::spawn(move || publish_readings(port, "gw-tsdb", 10, 200, Duration::from_millis(2)));
    std::thread::sleep(Duration::from_millis(1000));
    // A stop, not SIGKILL: VictoriaMetrics acknowledges writes before they reach its disk, so
    // a SIGKILL loses its last seconds of data whatever the client does.
    vm.proc.terminate();
    // The broker keeps acknowledging into ingest's WAL while the TSDB is away.
    let readings = load.join().expect("load publisher");
    assert!(ingest.output().contains("TSDB unavailable"), "ingest noticed the TSDB was gone");
    // Backpressure goes to disk: the WAL holds what the TSDB has not taken, memory does not.
    let pending = wait_for(Duration::from_secs(10), "the WAL to hold the readings", || {
        let text = ureq::get(&format!("http://127.0.0.1:{http}/metrics")).call().ok()?.into_string().ok()?;
        let n: f64 =
            text.lines().find_map(|l| l.strip_prefix("ingest_wal_pending_records ")?.trim().parse().ok())?;
        (n >= 500.0).then_some(n)
    });
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", ingest.child.id()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:")?.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    assert!(rss_kib > 0 && rss_kib < 128 * 1024, "ingest RSS {rss_kib} KiB with {pending} readings waiting");
    vm.restart();
    assert_all_stored(&vm, &readings);
}

#[test]
fn sigterm_writes_what_the_wal_holds_before_exit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let broker = Mosquitto::start(dir);
    let vm = Victoria::start(dir);
    let config = ingest_config(dir, &broker, &vm);
    let mut ingest = start_ingest(dir, "ingest-1", &config);

    let readings = publish_readings(broker.port, "gw-term", 10, 300, Duration::ZERO);
    ingest.terminate();
    let status = ingest.child.wait().expect("exit status");
    assert!(status.success(), "ingest exits cleanly on SIGTERM: {status:?}");
    assert!(ingest.output().contains("connected"), "it ran");
    let wal = telemetry::spool::Spool::open(&dir.join("wal"), telemetry::spool::SpoolConfig::default())
        .expect("WAL");
    assert_eq!(wal.pending(), 0, "everything acknowledged was written before exit");
    drop(wal);

    // What the broker still held (not yet acknowledged) arrives after a restart.
    let _ingest = start_ingest(dir, "ingest-2", &config);
    assert_all_stored(&vm, &readings);
}
