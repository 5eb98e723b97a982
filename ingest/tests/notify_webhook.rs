//! Notification delivery against real HTTP receivers on loopback: a generic webhook that fails
//! for a while and then recovers, across a restart of the notifier, and the DingTalk, Feishu
//! and WeCom robots, whose signatures the receiver checks as the real services document them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use ingest::notify::config::{ReceiverConfig, RouteConfig};
use ingest::notify::{Notifier, NotifyConfig, NotifyMetrics};
use serde_json::Value;
use sha2::Sha256;
mod common;
use common::offline;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Robot {
    Webhook,
    Dingtalk,
    Feishu,
    Wecom,
}

/// One request as the receiver saw it, with the status it answered.
#[derive(Clone, Debug)]
struct Seen {
    id: Option<String>,
    body: Value,
    accepted: bool,
}

struct Receiver {
    robot: Robot,
    secret: String,
    /// Requests still to be refused (HTTP 500 for the webhook, an error code for the robots).
    refuse_next: usize,
    seen: Vec<Seen>,
    bad_signatures: usize,
}

type Shared = Arc<Mutex<Receiver>>;

fn hmac_base64(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    BASE64.encode(mac.finalize().into_bytes())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// DingTalk: `timestamp` (ms) and `sign` in the query, sign = base64(HMAC-SHA256(secret,
/// timestamp + "\n" + secret)), and the timestamp within an hour of now.
fn dingtalk_signed(query: &HashMap<String, String>, secret: &str) -> bool {
    let (Some(ts), Some(sign)) = (query.get("timestamp"), query.get("sign")) else { return false };
    let fresh = ts.parse::<i64>().is_ok_and(|t| (now_ms() - t).abs() < 3_600_000);
    fresh && *sign == hmac_base64(secret.as_bytes(), format!("{ts}\n{secret}").as_bytes())
}

/// Feishu: `timestamp` (s) and `sign` in the body, sign = base64(HMAC-SHA256(key =
/// `{timestamp}\n{secret}`, message = empty)).
fn feishu_signed(body: &Value, secret: &str) -> bool {
    let (Some(ts), Some(sign)) = (body["timestamp"].as_str(), body["sign"].as_str()) else { return false };
    let fresh = ts.parse::<i64>().is_ok_and(|t| (now_ms() / 1000 - t).abs() < 3_600);
    fresh && sign == hmac_base64(format!("{ts}\n{secret}").as_bytes(), b"")
}

async fn receive(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = headers.get("x-notification-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut r = shared.lock().unwrap();
    let signed = match r.robot {
        Robot::Dingtalk => dingtalk_signed(&query, &r.secret),
        Robot::Feishu => feishu_signed(&body, &r.secret),
        Robot::Webhook | Robot::Wecom => true,
    };
    if !signed {
        r.bad_signatures += 1;
    }
    let refuse = r.refuse_next > 0;
    r.refuse_next = r.refuse_next.saturating_sub(1);
    let accepted = signed && !refuse;
    r.seen.push(Seen { id, body, accepted });
    match (r.robot, accepted, signed) {
        (Robot::Webhook, true, _) => (StatusCode::OK, String::new()),
        (Robot::Webhook, false, _) => (StatusCode::INTERNAL_SERVER_ERROR, "down".into()),
        (Robot::Dingtalk | Robot::Wecom, true, _) => (StatusCode::OK, r#"{"errcode":0,"errmsg":"ok"}"#.into()),
        (Robot::Dingtalk, false, false) => {
            (StatusCode::OK, r#"{"errcode":310000,"errmsg":"sign not match"}"#.into())
        }
        (Robot::Dingtalk | Robot::Wecom, false, _) => {
            (StatusCode::OK, r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#.into())
        }
        (Robot::Feishu, true, _) => (StatusCode::OK, r#"{"code":0,"data":{},"msg":"success"}"#.into()),
        (Robot::Feishu, false, false) => (
            StatusCode::OK,
            r#"{"code":19021,"data":{},"msg":"sign match fail or timestamp is not within one hour from current time"}"#.into(),
        ),
        (Robot::Feishu, false, true) => {
            (StatusCode::OK, r#"{"code":11232,"data":{},"msg":"frequency limited"}"#.into())
        }
    }
}

/// A receiver on a free loopback port; returns its URL (with a query, as robots' URLs have).
async fn start_receiver(robot: Robot, secret: &str, refuse_first: usize) -> (Shared, String) {
    let shared = Arc::new(Mutex::new(Receiver {
        robot,
        secret: secret.into(),
        refuse_next: refuse_first,
        seen: Vec::new(),
        bad_signatures: 0,
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook/send?key=test-key", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hook/send", post(receive)).with_state(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (shared, url)
}

fn config(receiver: ReceiverConfig) -> NotifyConfig {
    let route = RouteConfig { receivers: vec![receiver.name.clone()], ..RouteConfig::default() };
    NotifyConfig {
        group_wait: Duration::from_millis(200),
        group_interval: Duration::from_millis(500),
        max_retry_backoff: Duration::from_millis(300),
        receivers: vec![receiver],
        routes: vec![route],
        ..NotifyConfig::default()
    }
}

fn receiver(robot: Robot, url: &str, secret: Option<&str>) -> ReceiverConfig {
    let receiver_type = match robot {
        Robot::Webhook => "webhook",
        Robot::Dingtalk => "dingtalk",
        Robot::Feishu => "feishu",
        Robot::Wecom => "wecom",
    };
    ReceiverConfig {
        name: format!("duty-{receiver_type}"),
        receiver_type: receiver_type.into(),
        url: Some(url.into()),
        secret: secret.map(str::to_string),
        ..ReceiverConfig::default()
    }
}

fn town_of(_device: &str) -> Option<String> {
    Some("东城街道".into())
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    handle: ingest::notify::NotifyHandle,
    metrics: Arc<NotifyMetrics>,
}

fn start(cfg: &NotifyConfig, outbox: &Path) -> Running {
    let metrics = Arc::new(NotifyMetrics::default());
    let notifier = Notifier::open(cfg, outbox, metrics.clone()).unwrap();
    let handle = notifier.handle();
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(notifier.run(shutdown));
    Running { stop, task, handle, metrics }
}

async fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn accepted(shared: &Shared) -> Vec<Seen> {
    shared.lock().unwrap().seen.iter().filter(|s| s.accepted).cloned().collect()
}

/// No new request arrives for a while (several group intervals and retry delays).
async fn assert_quiet(shared: &Shared, what: &str) {
    let before = shared.lock().unwrap().seen.len();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(shared.lock().unwrap().seen.len(), before, "{what}");
}

#[tokio::test]
async fn webhook_failing_then_recovering_gets_the_notification_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, url) = start_receiver(Robot::Webhook, "", 3).await;
    let cfg = config(receiver(Robot::Webhook, &url, None));
    let run = start(&cfg, &dir.path().join("outbox.sqlite"));
    let alerts = offline(5);
    run.handle.enqueue(&alerts, &town_of).unwrap();

    wait_until(Duration::from_secs(20), "an accepted notification", || !accepted(&shared).is_empty()).await;
    assert_quiet(&shared, "nothing after the accepted notification").await;
    let seen = shared.lock().unwrap().seen.clone();
    assert_eq!(seen.len(), 4, "3 refused, then 1 accepted: {seen:?}");
    let delivered = accepted(&shared);
    assert_eq!(delivered.len(), 1);
    let id = delivered[0].id.clone().expect("X-Notification-Id");
    assert!(seen.iter().all(|s| s.id.as_deref() == Some(id.as_str())), "retries carry the same id");
    let body = &delivered[0].body;
    assert_eq!(body["count"], 5);
    assert_eq!(body["status"], "firing");
    assert_eq!(body["notification_id"], id.as_str());
    assert_eq!(body["alerts"][4]["device"], "elev-0004");
    assert_eq!(body["alerts"][4]["town"], "东城街道");
    assert_eq!(run.metrics.failed_attempts.load(Ordering::Relaxed), 3);
    assert_eq!(run.metrics.delivered_notifications.load(Ordering::Relaxed), 1);
    assert_eq!(run.metrics.delivered_alerts.load(Ordering::Relaxed), 5);
    assert_eq!(run.metrics.queue_depth.load(Ordering::Relaxed), 0);

    // Ingest replays its WAL after a crash: the same transitions again send nothing.
    run.handle.enqueue(&alerts, &town_of).unwrap();
    assert_quiet(&shared, "a replayed transition is not sent again").await;
    assert_eq!(run.metrics.enqueued.load(Ordering::Relaxed), 5);

    run.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), run.task).await.expect("stops").unwrap();
}

#[tokio::test]
async fn a_notification_owed_before_a_restart_is_delivered_once_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.sqlite");
    let (shared, url) = start_receiver(Robot::Webhook, "", usize::MAX).await;
    let cfg = config(receiver(Robot::Webhook, &url, None));
    let alerts = offline(3);

    let first = start(&cfg, &outbox);
    first.handle.enqueue(&alerts, &town_of).unwrap();
    wait_until(Duration::from_secs(20), "two refused attempts", || shared.lock().unwrap().seen.len() >= 2)
        .await;
    // A crash: the task is gone mid-retry, nothing is shut down cleanly.
    first.task.abort();
    let _ = first.task.await;
    drop(first.handle);
    let refused_id = shared.lock().unwrap().seen[0].id.clone().expect("X-Notification-Id");

    shared.lock().unwrap().refuse_next = 0;
    let second = start(&cfg, &outbox);
    assert_eq!(second.metrics.queue_depth.load(Ordering::Relaxed), 3, "still owed after reopening");
    second.handle.enqueue(&alerts, &town_of).unwrap();
    wait_until(Duration::from_secs(20), "the owed notification", || !accepted(&shared).is_empty()).await;
    assert_quiet(&shared, "nothing after the owed notification").await;
    let delivered = accepted(&shared);
    assert_eq!(delivered.len(), 1, "{:?}", shared.lock().unwrap().seen);
    assert_eq!(delivered[0].id.as_deref(), Some(refused_id.as_str()), "the same notification as before");
    assert_eq!(delivered[0].body["count"], 3);
    assert_eq!(second.metrics.delivered_alerts.load(Ordering::Relaxed), 3);
    second.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), second.task).await.expect("stops").unwrap();
}

async fn robot_delivers_once(robot: Robot, secret: Option<&str>) -> Vec<Seen> {
    let dir = tempfile::tempdir().unwrap();
    let (shared, url) = start_receiver(robot, secret.unwrap_or(""), 1).await;
    let run = start(&config(receiver(robot, &url, secret)), &dir.path().join("outbox.sqlite"));
    run.handle.enqueue(&offline(25), &town_of).unwrap();
    wait_until(Duration::from_secs(20), "an accepted message", || !accepted(&shared).is_empty()).await;
    assert_quiet(&shared, "nothing after the accepted message").await;
    {
        let r = shared.lock().unwrap();
        assert_eq!(r.bad_signatures, 0, "{:?}", r.seen);
        assert_eq!(r.seen.len(), 2, "one refused by the robot's error code, then one accepted: {:?}", r.seen);
    }
    assert_eq!(run.metrics.failed_attempts.load(Ordering::Relaxed), 1);
    run.stop.send(true).unwrap();
    accepted(&shared)
}

#[tokio::test]
async fn dingtalk_robot_gets_a_signed_markdown_message_once() {
    let seen = robot_delivers_once(Robot::Dingtalk, Some("SECtest-dingtalk-secret")).await;
    let body = &seen[0].body;
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(body["markdown"]["title"], "25 alerts: elevator.no_data firing behind gw-7 in 东城街道");
    let text = body["markdown"]["text"].as_str().unwrap();
    assert_eq!(text.lines().filter(|l| l.starts_with("- [critical] firing")).count(), 20, "{text}");
    assert!(text.ends_with("and 5 more"), "{text}");
}

#[tokio::test]
async fn feishu_bot_gets_a_signed_text_message_once() {
    let seen = robot_delivers_once(Robot::Feishu, Some("test-feishu-secret")).await;
    let body = &seen[0].body;
    assert_eq!(body["msg_type"], "text");
    let text = body["content"]["text"].as_str().unwrap();
    assert!(text.starts_with("25 alerts: elevator.no_data firing behind gw-7"), "{text}");
    assert!(text.ends_with("and 5 more"), "{text}");
}

#[tokio::test]
async fn wecom_robot_gets_a_markdown_message_once() {
    let seen = robot_delivers_once(Robot::Wecom, None).await;
    let content = seen[0].body["markdown"]["content"].as_str().unwrap().to_string();
    assert_eq!(seen[0].body["msgtype"], "markdown");
    assert!(content.starts_with("**25 alerts: elevator.no_data firing behind gw-7"), "{content}");
}

#[tokio::test]
async fn a_robot_with_the_wrong_secret_is_never_taken_as_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, url) = start_receiver(Robot::Dingtalk, "SECthe-robots-secret", 0).await;
    let run =
        start(&config(receiver(Robot::Dingtalk, &url, Some("SECanother"))), &dir.path().join("o.sqlite"));
    run.handle.enqueue(&offline(1), &town_of).unwrap();
    wait_until(Duration::from_secs(20), "three attempts", || shared.lock().unwrap().seen.len() >= 3).await;
    assert!(accepted(&shared).is_empty());
    assert_eq!(run.metrics.delivered_notifications.load(Ordering::Relaxed), 0);
    assert_eq!(run.metrics.queue_depth.load(Ordering::Relaxed), 1);
    run.stop.send(true).unwrap();
}
