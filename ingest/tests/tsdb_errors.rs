//! The TSDB writer against a local server that answers as the InfluxDB v2 write API documents:
//! 503, 429 and 401 are retried until the batch lands once; a 400 for one bad point splits the
//! batch so the rest lands, and the bad point is kept and dead-lettered. A real Mosquitto
//! carries the readings in; VictoriaMetrics cannot be used here because it never refuses.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ingest::config::{
    BatchConfig, FilesConfig, HttpConfig, IngestConfig, MqttConfig, RegistryConfig, RulesConfig, StateConfig,
    TsdbConfig, WalConfig,
};
use system_tests::{publish_readings, wait_for, Mosquitto, Recorder};

#[derive(Default)]
struct Fake {
    /// Statuses to answer the next requests with, before accepting.
    fail_next: VecDeque<u16>,
    /// A request whose body contains this is refused with 400, as a partial write.
    poison: Option<String>,
    accepted: Vec<String>,
    requests: usize,
}

async fn write(
    State(fake): State<Arc<Mutex<Fake>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let mut text = String::new();
    if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text).expect("gzip body");
    } else {
        text = String::from_utf8_lossy(&body).into_owned();
    }
    let mut f = fake.lock().unwrap();
    f.requests += 1;
    if let Some(code) = f.fail_next.pop_front() {
        let body = match code {
            401 => r#"{"code":"unauthorized","message":"unauthorized access"}"#,
            429 => r#"{"code":"too many requests","message":"rate limit exceeded"}"#,
            _ => r#"{"code":"unavailable","message":"service unavailable"}"#,
        };
        return (StatusCode::from_u16(code).unwrap(), body.to_string());
    }
    if let Some(poison) = &f.poison {
        if let Some(line) = text.lines().find(|l| l.contains(poison.as_str())) {
            let message = format!(
                r#"{{"code":"invalid","message":"partial write: unable to parse '{line}': invalid field format"}}"#
            );
            return (StatusCode::BAD_REQUEST, message);
        }
    }
    f.accepted.extend(text.lines().map(str::to_string));
    (StatusCode::NO_CONTENT, String::new())
}

async fn fake_tsdb(fake: Arc<Mutex<Fake>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/api/v2/write", post(write)).with_state(fake);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn config(broker: &Mosquitto, tsdb: String, dir: &std::path::Path) -> IngestConfig {
    IngestConfig {
        mqtt: MqttConfig { client_id: Some("ingest-tsdb-errors".into()), ..MqttConfig::new(&broker.url()) },
        rules: RulesConfig::default(),
        tsdb: Some(TsdbConfig {
            url: tsdb,
            org: "city".into(),
            bucket: "telemetry".into(),
            token: "t".into(),
            timeout: Duration::from_secs(2),
            gzip: true,
        }),
        files: FilesConfig { dir: dir.join("files"), ..FilesConfig::default() },
        batch: BatchConfig { max_readings: 100, flush_every: Duration::from_millis(50) },
        wal: WalConfig { dir: dir.join("wal"), ..WalConfig::default() },
        http: HttpConfig::default(),
        registry: RegistryConfig::default(),
        state: StateConfig::default(),
        console: Default::default(),
        notify: Default::default(),
        limits: Default::default(),
        health: Default::default(),
    }
}

fn readings_lines(accepted: &[String]) -> Vec<&String> {
    accepted.iter().filter(|l| l.starts_with("water_meter,")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_busy_and_unauthorized_answers_are_retried_until_the_batch_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let fake =
        Arc::new(Mutex::new(Fake { fail_next: VecDeque::from([503, 503, 429, 401]), ..Fake::default() }));
    let url = fake_tsdb(fake.clone()).await;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let hooks = ingest::server::Hooks::default();
    let metrics = hooks.metrics.clone();
    let ingest = tokio::spawn(ingest::server::run(config(&broker, url, dir.path()), hooks, stop_rx));
    let port = broker.port;
    tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(20), "ingest to subscribe", || {
            metrics.subscribed.load(std::sync::atomic::Ordering::Relaxed).then_some(())
        });
        publish_readings(port, "gw-retry", 10, 30, Duration::ZERO)
    })
    .await
    .unwrap();
    let f2 = fake.clone();
    tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(30), "300 readings accepted", || {
            (readings_lines(&f2.lock().unwrap().accepted).len() >= 300).then_some(())
        })
    })
    .await
    .unwrap();
    stop.send(true).unwrap();
    ingest.await.unwrap().unwrap();
    let f = fake.lock().unwrap();
    let lines = readings_lines(&f.accepted);
    let unique: std::collections::BTreeSet<_> = lines.iter().collect();
    assert_eq!((lines.len(), unique.len()), (300, 300), "each reading lands once");
    assert!(f.requests >= 5, "the four refusals were retried ({} requests)", f.requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_refused_with_400_is_split_out_kept_and_dead_lettered_while_the_rest_lands() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    // Exactly one reading: device 7, round 1 (forward_total_m3 = 1000 + 7 + 1 × 0.125).
    let poison = "device=wm-load-0007,gateway=gw-poison battery_v=3.6,forward_total_m3=1007.125 ";
    let fake = Arc::new(Mutex::new(Fake { poison: Some(poison.into()), ..Fake::default() }));
    let url = fake_tsdb(fake.clone()).await;
    let recorder = Recorder::start(broker.port, "dl-recorder", &["ingest/deadletter/#"]);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let hooks = ingest::server::Hooks::default();
    let metrics = hooks.metrics.clone();
    let ingest = tokio::spawn(ingest::server::run(config(&broker, url, dir.path()), hooks, stop_rx));
    let port = broker.port;
    let f2 = fake.clone();
    tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(20), "ingest to subscribe", || {
            metrics.subscribed.load(std::sync::atomic::Ordering::Relaxed).then_some(())
        });
        publish_readings(port, "gw-poison", 10, 20, Duration::ZERO);
        wait_for(Duration::from_secs(30), "199 readings accepted", || {
            (readings_lines(&f2.lock().unwrap().accepted).len() >= 199).then_some(())
        });
        wait_for(Duration::from_secs(10), "the dead letter", || {
            recorder.snapshot().into_iter().find(|m| m.topic == "ingest/deadletter/gw-poison")
        })
    })
    .await
    .unwrap();
    stop.send(true).unwrap();
    ingest.await.unwrap().unwrap();
    let f = fake.lock().unwrap();
    let lines = readings_lines(&f.accepted);
    assert_eq!(lines.len(), 199, "all but the refused reading landed, once");
    assert!(lines.iter().all(|l| !l.contains(poison)));
    let kept = std::fs::read_to_string(dir.path().join("files/rejected.lp")).expect("rejected.lp");
    assert!(kept.contains(poison), "{kept}");
    assert_eq!(
        kept.lines().filter(|l| l.starts_with("water_meter,")).count(),
        1,
        "only the bad point is kept"
    );
    assert!(kept.contains("400"), "the reason is kept with it: {kept}");
}
