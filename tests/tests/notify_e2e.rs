//! Notifications through the real ingest binary: alerts of five boilers behind one gateway
//! reach a webhook receiver that fails for a while, as one notification, exactly once, also
//! across a crash of ingest.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use system_tests::{free_port, kill_9, now_ms, publish, start_ingest, wait_for, Mosquitto};
use telemetry::Reading;

/// One request the receiver got: the notification id header, the body, and what it answered.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    body: Value,
    answered: u16,
}

/// A webhook receiver on a free port that answers 500 to the first `failures` requests, then 200.
fn receiver(failures: usize) -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let log = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let (mut length, mut id) = (0usize, String::new());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("x-notification-id:") {
                    id = line["x-notification-id:".len()..].trim().to_string();
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answered = if log.lock().expect("lock").len() < failures { 500 } else { 200 };
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            log.lock().expect("lock").push(Received { id, body, answered });
            let reason = if answered == 200 { "OK" } else { "Internal Server Error" };
            let _ = write!(
                stream,
                "HTTP/1.1 {answered} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (port, got)
}

fn boiler(device: &str, seq: u64, ts: i64) -> Reading {
    Reading::new("gw-notify", device, "boiler", 1, seq, ts)
        .with_value("pressure_mpa", 1.4)
        .with_value("over_pressure", true)
        .with_value("alarm_bits", 0)
}

#[test]
fn five_alerts_behind_one_gateway_reach_a_flaky_webhook_as_one_notification_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let broker = Mosquitto::start(d);
    let (hook_port, got) = receiver(3);
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"ingest-notify\"\n\n[files]\ndir = \"{}\"\n\n[wal]\ndir = \"{}\"\n\n\
         [state]\nsnapshot_every = \"100ms\"\n\n[batch]\nflush_every = \"50ms\"\n\n\
         [http]\nlisten = \"127.0.0.1:{}\"\n\n\
         [notify]\ngroup_wait = \"2s\"\nmax_retry_backoff = \"1s\"\n\n\
         [[notify.receiver]]\nname = \"duty\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\n\n\
         [[notify.route]]\nreceivers = [\"duty\"]\nseverities = [\"critical\"]\ngroup_by = [\"gateway\", \"rule\", \"status\"]\n",
        broker.url(),
        d.join("files").display(),
        d.join("wal").display(),
        free_port(),
    );
    let mut ingest = start_ingest(d, "ingest-1", &config);
    let t0 = now_ms() - 30_000;
    let readings: Vec<Reading> = (1..=5)
        .flat_map(|n| (0..5).map(move |i| boiler(&format!("boiler-n{n}"), i, t0 + i as i64 * 1000)))
        .collect();
    publish(broker.port, "gw-notify-a", &readings);

    let delivered = wait_for(Duration::from_secs(30), "a notification answered 200", || {
        got.lock().expect("lock").iter().find(|r| r.answered == 200).cloned()
    });
    let failed = got.lock().expect("lock").iter().filter(|r| r.answered == 500).count();
    assert_eq!(failed, 3, "the receiver failed three times, and the notification was retried");
    assert_eq!(delivered.body["count"], 5, "one notification for the five boilers: {}", delivered.body);
    assert_eq!(delivered.body["alerts"].as_array().map(Vec::len), Some(5));
    assert!(!delivered.id.is_empty(), "a notification id for the receiver to dedup by");
    assert!(got.lock().expect("lock").iter().all(|r| r.id == delivered.id), "retries carry the same id");

    // A crash and a restart: the WAL replays, the outbox knows it was delivered.
    std::thread::sleep(Duration::from_millis(500));
    kill_9(&mut ingest);
    let _ingest = start_ingest(d, "ingest-2", &config);
    std::thread::sleep(Duration::from_secs(5));
    let ok: Vec<Received> = got.lock().expect("lock").iter().filter(|r| r.answered == 200).cloned().collect();
    assert_eq!(ok.len(), 1, "delivered exactly once: {ok:?}");
}
