//! End-to-end load test: one stream of readings through a real Mosquitto to `ingest` (writing
//! to a real VictoriaMetrics), with `mosquitto_sub` counting the same stream in the same run, so
//! ingest's rate can be read against the broker's own delivery rate. Prints JSON.
//!
//! cargo run --release -p system-tests --bin loadtest -- [READINGS] [DEVICES] [SOAK_SECONDS] [RULES]
//! (`--help` for more)
//!
//! With SOAK_SECONDS, it then keeps publishing at a steady rate for that long and samples
//! ingest's resident memory every 10 s. Before anything else it then gives the soak's devices
//! an hour of history (a reading every 10 s, older than all the rest), so the rules' hour-long
//! windows are full and the soak sees ingest in its steady state, as after an hour of running.
//! RULES (a rule file or folder) replaces the default pack.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use system_tests::{
    free_port, load_reading, now_ms, publish, publish_readings, start_ingest, wait_for, Mosquitto, Victoria,
};

/// The soak's devices (`wm-load-0000` …).
const SOAK_DEVICES: usize = 200;
/// History given to each before the soak: an hour, one reading every 10 s.
const HISTORY_READINGS: usize = 360;

/// An hour of readings of each soak device, ending an hour ago (the soak's own readings are
/// stamped from an hour ago on).
fn history() -> Vec<telemetry::Reading> {
    let start = now_ms() - 7_200_000;
    (0..HISTORY_READINGS)
        .flat_map(|i| {
            (0..SOAK_DEVICES).map(move |d| {
                load_reading("gw-history", d, (start as u64, i as u64), start + i as i64 * 10_000, -1.0)
            })
        })
        .collect()
}

fn metric(port: u16, name: &str) -> f64 {
    let text =
        ureq::get(&format!("http://127.0.0.1:{port}/metrics")).call().ok().and_then(|r| r.into_string().ok());
    text.unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// One field of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// End-to-end load test: readings through a real Mosquitto to ingest (writing to a real
/// VictoriaMetrics), counted by mosquitto_sub in the same run; prints JSON. With SOAK_SECONDS it
/// then publishes at a steady rate for that long and samples ingest's memory every 10 s.
#[derive(Parser)]
#[command(name = "loadtest", version = VERSION)]
struct Args {
    /// Readings in the burst (rounded to a multiple of DEVICES).
    #[arg(default_value_t = 100_000)]
    readings: usize,
    /// Devices the burst is spread over.
    #[arg(default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    devices: u64,
    /// Seconds of steady load after the burst (0: none).
    #[arg(default_value_t = 0)]
    soak_seconds: u64,
    /// A rule file or folder instead of the default pack.
    #[arg(value_parser = existing_path)]
    rules: Option<PathBuf>,
}

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("GIT_COMMIT"), ")");

fn existing_path(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    match path.exists() {
        true => Ok(path),
        false => Err(format!("no such file or folder: {s}")),
    }
}

fn main() {
    let args = Args::parse();
    let rules = args.rules.map(|r| r.display().to_string());
    let devices = args.devices as usize;
    let readings = (args.readings / devices).max(1) * devices;
    let soak = Duration::from_secs(args.soak_seconds);

    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let broker = Mosquitto::start(dir);
    let vm = Victoria::start(dir);
    let http = free_port();
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"ingest-load\"\n\n[tsdb]\nurl = \"{}\"\nbucket = \"telemetry\"\n\n\
         [files]\ndir = \"{}\"\n\n[wal]\ndir = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:{http}\"\n\n[rules]\nfiles = [{}]\n\n\
         [limits]\nnew_devices_per_minute = 100000000\n",
        broker.url(),
        vm.url(),
        dir.join("files").display(),
        dir.join("wal").display(),
        rules.map(|r| format!("{r:?}")).unwrap_or_default()
    );
    // `new_devices_per_minute` above: one gateway brings in every device of the load at once.
    let ingest = start_ingest(dir, "ingest", &config);
    let port = broker.port;
    let history = if soak.is_zero() { Vec::new() } else { history() };
    if !history.is_empty() {
        publish(port, "gw-history", &history);
        wait_for(Duration::from_secs(300), "ingest to write the history", || {
            (metric(http, "ingest_readings_written_total ") >= history.len() as f64).then_some(())
        });
    }

    // mosquitto_sub counts the same stream at QoS 1.
    let mut sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-t", "telemetry/#", "-q", "1", "-C"])
        .arg(readings.to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("mosquitto_sub (apt-get install -y mosquitto-clients)");
    std::thread::sleep(Duration::from_millis(500));

    let started = Instant::now();
    let per_device = readings / devices;
    let publisher =
        std::thread::spawn(move || publish_readings(port, "gw-load", devices, per_device, Duration::ZERO));
    let sub_done = wait_for(Duration::from_secs(600), "mosquitto_sub to count every reading", || {
        sub.try_wait().ok().flatten().map(|_| started.elapsed())
    });
    let published = publisher.join().expect("publisher").len();
    let publish_done = started.elapsed();
    let ingest_done = wait_for(Duration::from_secs(600), "ingest to write every reading", || {
        (metric(http, "ingest_readings_written_total ") >= (history.len() + readings) as f64)
            .then(|| started.elapsed())
    });
    let rss_after_burst = rss_kib(ingest.child.id());

    let mut samples = Vec::new();
    if !soak.is_zero() {
        // A steady stream of about 2,000 readings/s, in one-second rounds.
        let end = Instant::now() + soak;
        let mut round = 0u64;
        let mut next_sample = Instant::now();
        while Instant::now() < end {
            let t = Instant::now();
            publish_readings(port, &format!("gw-soak-{}", round % 8), SOAK_DEVICES, 10, Duration::ZERO);
            round += 1;
            if Instant::now() >= next_sample {
                let pid = ingest.child.id();
                // Anonymous memory is the heap; file-backed pages are mapped files.
                samples.push((
                    t.duration_since(end - soak).as_secs(),
                    rss_kib(pid),
                    status_kib(pid, "RssAnon:"),
                    status_kib(pid, "RssFile:"),
                ));
                next_sample += Duration::from_secs(10);
            }
            if let Some(rest) = Duration::from_secs(1).checked_sub(t.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    }

    let rate = |d: Duration| readings as f64 / d.as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "readings": published,
            "devices": devices,
            "publish_seconds": publish_done.as_secs_f64(),
            "mosquitto_sub_seconds": sub_done.as_secs_f64(),
            "mosquitto_sub_readings_per_second": rate(sub_done),
            "ingest_seconds": ingest_done.as_secs_f64(),
            "ingest_readings_per_second": rate(ingest_done),
            "ingest_vs_mosquitto_sub": rate(ingest_done) / rate(sub_done),
            "ingest_rss_kib_after_burst": rss_after_burst,
            "soak_rss_kib": samples.iter().map(|(t, kib, _, _)| serde_json::json!([t, kib])).collect::<Vec<_>>(),
            "soak_rss_anon_file_kib": samples.iter().map(|(t, _, anon, file)| serde_json::json!([t, anon, file])).collect::<Vec<_>>(),
        })
    );
}
