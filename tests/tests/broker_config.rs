//! The shipped broker config (`deploy/mosquitto/mosquitto.conf`) keeps what it acknowledged
//! while ingest is away: more readings than stock Mosquitto queues for an offline client
//! (1,000) wait in ingest's persistent session and all arrive once it is back. The same run on
//! the stock queue limit loses readings, which is what the shipped setting is for.

use std::path::Path;
use std::time::Duration;

use system_tests::{kill_9, publish_readings, start_ingest, wait_for, Mosquitto};

const DEVICES: usize = 50;
const PER_DEVICE: usize = 60;

fn ingest_config(dir: &Path, broker: &Mosquitto) -> String {
    format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"ingest-queue\"\n\n[files]\ndir = \"{}\"\n\n[wal]\ndir = \"{}\"\n\n\
         [batch]\nflush_every = \"50ms\"\n",
        broker.url(),
        dir.join("files").display(),
        dir.join("wal").display()
    )
}

/// Line-protocol lines of `gateway`'s water meters written so far.
fn written(dir: &Path, gateway: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir.join("files")) else { return 0 };
    let tag = format!("gateway={gateway}");
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .map(|text| text.lines().filter(|l| l.starts_with("water_meter,") && l.contains(&tag)).count())
        .sum()
}

/// Kills ingest, publishes DEVICES × PER_DEVICE readings at QoS 1 while it is down, starts it
/// again, and counts what it wrote once a reading published after the restart is through (a
/// session delivers in order, so everything queued came before it).
fn readings_kept_while_ingest_is_down(dir: &Path, broker: &Mosquitto) -> usize {
    let config = ingest_config(dir, broker);
    let mut ingest = start_ingest(dir, "ingest-1", &config);
    kill_9(&mut ingest);
    let queued = publish_readings(broker.port, "gw-queue", DEVICES, PER_DEVICE, Duration::ZERO);
    assert_eq!(queued.len(), DEVICES * PER_DEVICE);
    let _ingest = start_ingest(dir, "ingest-2", &config);
    publish_readings(broker.port, "gw-after", 1, 1, Duration::ZERO);
    wait_for(Duration::from_secs(60), "the reading published after the restart", || {
        (written(dir, "gw-after") == 1).then_some(())
    });
    written(dir, "gw-queue")
}

#[test]
fn readings_queued_while_ingest_is_down_all_arrive_with_the_shipped_broker_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = Mosquitto::start(dir.path());
    assert_eq!(readings_kept_while_ingest_is_down(dir.path(), &broker), DEVICES * PER_DEVICE);
}

#[test]
fn with_the_stock_queue_limit_the_same_outage_loses_readings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = Mosquitto::start_with(dir.path(), |shipped| {
        let stock: Vec<&str> = shipped.lines().filter(|l| !l.starts_with("max_queued_")).collect();
        stock.join("\n") + "\n"
    });
    let kept = readings_kept_while_ingest_is_down(dir.path(), &broker);
    assert!(kept < DEVICES * PER_DEVICE, "stock Mosquitto queues 1,000 per offline client; kept {kept}");
}
