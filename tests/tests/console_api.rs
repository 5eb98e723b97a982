//! The console's JSON API against the real ingest binary and a real Mosquitto: logins and
//! roles, CSRF, acknowledgements seen on MQTT, silences, history, inspection records that
//! resolve an overdue alert and survive a crash, the audit log, live events.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde_json::{json, Value};
use system_tests::checks::alerts;
use system_tests::console::{users_config, ConsoleClient};
use system_tests::{
    free_port, kill_9, now_ms, publish, start_ingest, wait_for, Mosquitto, Recorder, Victoria,
};
use telemetry::{AlertMessage, AlertStatus, Reading};

const TOWN: &str = "东城街道";

fn boiler(seq: u64, ts: i64, pressure: f64) -> Reading {
    Reading::new("gw-console", "boiler-c1", "boiler", 1, seq, ts)
        .with_value("pressure_mpa", pressure)
        .with_value("over_pressure", pressure > 1.25)
        .with_value("alarm_bits", 0)
}

fn of<'a>(events: &'a [AlertMessage], rule: &str, status: AlertStatus) -> Vec<&'a AlertMessage> {
    events.iter().filter(|a| a.rule == rule && a.status == status).collect()
}

fn sha256_hex(text: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf %s '{text}' | sha256sum"))
        .output()
        .expect("sha256sum");
    String::from_utf8(out.stdout).expect("utf-8").split_whitespace().next().expect("a digest").to_string()
}

/// The date `days` from today in UTC+8, as the registry writes dates.
fn date(days: i64) -> String {
    let today = rules::Date::from_ms(now_ms(), rules::date::CHINA_UTC_OFFSET_MS);
    rules::Date::from_days(today.days() + days).to_string()
}

struct Setup {
    _dir: tempfile::TempDir,
    broker: Mosquitto,
    base: String,
    config: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let broker = Mosquitto::start(d);
    let registry = d.join("registry.csv");
    std::fs::write(
        &registry,
        format!(
            "device,kind,registration_code,name,town,address,commissioned,last_inspection,next_inspection\n\
             boiler-c1,boiler,11,1号锅炉,{TOWN},东城大道 88 号,2019-05-10,{},{}\n\
             elev-c1,elevator,31,2号梯,{TOWN},东城大道 90 号,2015-01-01,{},{}\n",
            date(-100),
            date(265),
            date(-465),
            date(-100),
        ),
    )
    .expect("registry");
    let port = free_port();
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"ingest-console\"\n\n[files]\ndir = \"{}\"\n\n[wal]\ndir = \"{}\"\n\n\
         [state]\nsnapshot_every = \"100ms\"\n\n[batch]\nflush_every = \"50ms\"\n\n\
         [http]\nlisten = \"127.0.0.1:{port}\"\n\n[registry]\nfile = \"{}\"\n\n\
         [[console.token]]\nname = \"prometheus\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\n{}",
        broker.url(),
        d.join("files").display(),
        d.join("wal").display(),
        registry.display(),
        sha256_hex("scrape-token"),
        users_config(&[("admin", "admin", "pw-admin"), ("li", "operator", "pw-li"), ("wang", "viewer", "pw-wang")]),
    );
    Setup { _dir: dir, broker, base: format!("http://127.0.0.1:{port}"), config }
}

fn logged_in(base: &str, user: &str, password: &str) -> ConsoleClient {
    let mut c = ConsoleClient::new(base);
    let a = c.login(user, password);
    assert_eq!(a.status, 200, "{user} logs in: {a:?}");
    c
}

fn active<'a>(alerts: &'a Value, rule: &str) -> Option<&'a Value> {
    alerts.as_array()?.iter().find(|a| a["rule"] == rule)
}

#[test]
fn the_console_api_serves_staff_by_role_and_keeps_what_they_did() {
    let s = setup();
    let dir = s._dir.path();
    let recorder = Recorder::start(s.broker.port, "console-recorder", &["events/alerts"]);
    let mut ingest = start_ingest(dir, "ingest-1", &s.config);
    let base = s.base.as_str();

    // Only /healthz is open.
    let anonymous = ConsoleClient::new(base);
    assert_eq!(anonymous.get("/healthz").status, 200);
    for path in ["/api/v1/alerts", "/metrics", "/readyz", "/api/v1/status"] {
        assert_eq!(anonymous.get(path).status, 401, "{path} needs a login");
    }
    let token = ConsoleClient::with_token(base, "scrape-token");
    assert_eq!(token.get("/metrics").status, 200, "a token reads the metrics");
    assert_eq!(ConsoleClient::with_token(base, "wrong").get("/metrics").status, 401);
    assert_eq!(ConsoleClient::new(base).login("li", "not-her-password").status, 401);
    // Guessing is throttled per name: the sixth try within 15 min is refused unchecked.
    for _ in 0..4 {
        assert_eq!(ConsoleClient::new(base).login("mallory", "guess").status, 401);
    }
    assert_eq!(ConsoleClient::new(base).login("mallory", "guess").status, 401);
    let locked = ConsoleClient::new(base).login("mallory", "guess");
    assert_eq!(locked.status, 429, "{locked:?}");

    let admin = logged_in(base, "admin", "pw-admin");
    let li = logged_in(base, "li", "pw-li");
    let wang = logged_in(base, "wang", "pw-wang");
    assert_eq!(li.get("/api/v1/me").body["role"], "operator");

    // An over-pressure boiler: the alert shows with its registry row and evidence.
    let t0 = now_ms() - 30_000;
    let over: Vec<Reading> = (0..5).map(|i| boiler(i, t0 + i as i64 * 1000, 1.40)).collect();
    publish(s.broker.port, "gw-console-a", &over);
    let alert = wait_for(Duration::from_secs(20), "the alert in /api/v1/alerts", || {
        active(&wang.get("/api/v1/alerts").body, "boiler.over_pressure").cloned()
    });
    assert_eq!(alert["device"], "boiler-c1");
    assert_eq!(alert["town"], TOWN);
    assert_eq!(alert["name"], "1号锅炉");
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["evidence"]["pressure_mpa"], 1.4, "{alert}");
    assert!(alert["ack"].is_null());

    // A viewer may not acknowledge; nor may a request without the CSRF token.
    let ack = json!({ "rule": "boiler.over_pressure", "device": "boiler-c1", "comment": "on my way" });
    let refused = wang.post("/api/v1/alerts/ack", ack.clone());
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body["error"].as_str().unwrap_or_default().contains("operator"), "{refused:?}");
    assert_eq!(li.without_csrf().post("/api/v1/alerts/ack", ack.clone()).status, 403);
    let missing = li.post("/api/v1/alerts/ack", json!({ "rule": "boiler.over_pressure", "device": "nope" }));
    assert_eq!(missing.status, 404, "{missing:?}");

    let done = li.post("/api/v1/alerts/ack", ack);
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.body["status"], "acknowledged");
    let on_mqtt = wait_for(Duration::from_secs(10), "the acknowledgement on events/alerts", || {
        let events = alerts(&recorder.snapshot());
        of(&events, "boiler.over_pressure", AlertStatus::Acknowledged).first().map(|a| (*a).clone())
    });
    assert_eq!(on_mqtt.acknowledged_by.as_deref(), Some("li"));
    assert_eq!(on_mqtt.comment.as_deref(), Some("on my way"));
    let listed =
        active(&wang.get("/api/v1/alerts").body, "boiler.over_pressure").cloned().expect("still active");
    assert_eq!(listed["ack"]["who"], "li");

    // Silences: added, listed, removed; a viewer may not.
    let silence =
        json!({ "matchers": { "device": "boiler-c1" }, "duration": "2h", "comment": "maintenance" });
    assert_eq!(wang.post("/api/v1/silences", silence.clone()).status, 403);
    assert_eq!(li.post("/api/v1/silences", json!({ "matchers": {}, "duration": "1h" })).status, 400);
    let added = li.post("/api/v1/silences", silence);
    assert_eq!(added.status, 201, "{added:?}");
    let id = added.body["id"].as_str().expect("an id").to_string();
    let listed = wang.get("/api/v1/silences").body;
    assert!(
        listed.as_array().unwrap().iter().any(|s| s["id"] == id.as_str() && s["who"] == "li"),
        "{listed}"
    );
    assert_eq!(li.delete(&format!("/api/v1/silences/{id}")).status, 204);
    assert_eq!(li.delete(&format!("/api/v1/silences/{id}")).status, 404);

    // History: search finds the firing and the acknowledgement, newest first.
    let found = wang.get("/api/v1/alerts/history?q=over_pressure").body;
    let statuses: Vec<&str> = found.as_array().unwrap().iter().filter_map(|h| h["status"].as_str()).collect();
    assert_eq!(statuses, ["acknowledged", "firing"], "{found}");
    assert_eq!(found[0]["town"], TOWN);
    assert_eq!(wang.get("/api/v1/alerts/history?q=no-such-thing").body, json!([]));

    // The overdue elevator: listed, counted, then an inspection record resolves it.
    let inspections = wang.get("/api/v1/inspections").body;
    assert_eq!(inspections["overdue"][0]["device"], "elev-c1", "{inspections}");
    assert_eq!(inspections["overdue"][0]["days"], -100);
    let rate = wang.get("/api/v1/overdue-rate").body;
    assert_eq!(rate["total"]["overdue"], 1, "{rate}");
    wait_for(Duration::from_secs(20), "the overdue alert", || {
        let events = alerts(&recorder.snapshot());
        of(&events, "elevator.periodic_inspection", AlertStatus::Firing).first().map(|_| ())
    });
    let record = json!({ "device": "elev-c1", "date": date(0), "next_due": date(365), "inspector": "市特检院", "report_no": "DT-2026-001" });
    assert_eq!(wang.post("/api/v1/inspections", record.clone()).status, 403);
    let bad = li.post("/api/v1/inspections", json!({ "device": "elev-c1", "date": "yesterday" }));
    assert_eq!(bad.status, 400);
    assert!(bad.body["error"].as_str().unwrap_or_default().starts_with("date:"), "{bad:?}");
    let posted = li.post("/api/v1/inspections", record);
    assert_eq!(posted.status, 201, "{posted:?}");
    wait_for(Duration::from_secs(20), "the overdue alert to resolve", || {
        let events = alerts(&recorder.snapshot());
        of(&events, "elevator.periodic_inspection", AlertStatus::Resolved).first().map(|_| ())
    });
    assert_eq!(wang.get("/api/v1/overdue-rate").body["total"]["overdue"], 0);
    let history = wang.get("/api/v1/overdue-rate/history").body;
    let overdue: Vec<i64> =
        history.as_array().unwrap().iter().filter_map(|p| p["overdue"].as_i64()).collect();
    assert_eq!(overdue.first(), Some(&1), "{history}");
    assert_eq!(overdue.last(), Some(&0), "{history}");

    // Online status and the rules.
    let status = wang.get("/api/v1/status").body;
    assert_eq!(status["gateways"][0]["gateway"], "gw-console");
    assert_eq!(status["gateways"][0]["online"], true, "readings 30 s old: online within 5 min; {status}");
    assert_eq!(status["devices"][0]["device"], "boiler-c1");
    assert_eq!(status["rules"]["ok"], true);

    // The audit log: admin only.
    assert_eq!(li.get("/api/v1/audit").status, 403);
    let audit = admin.get("/api/v1/audit").body;
    let actions: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["who"].as_str().unwrap_or("").into(), e["action"].as_str().unwrap_or("").into()))
        .collect();
    for action in ["acknowledge", "silence", "unsilence", "inspection_record"] {
        assert!(actions.contains(&("li".into(), action.into())), "{action} in {actions:?}");
    }
    assert!(audit[0]["remote"].as_str().unwrap_or("").starts_with("127.0.0.1:"), "{audit}");

    // A crash keeps the acknowledgement and the record.
    std::thread::sleep(Duration::from_millis(300));
    kill_9(&mut ingest);
    let _ingest = start_ingest(dir, "ingest-2", &s.config);
    let li = logged_in(base, "li", "pw-li");
    let listed =
        active(&li.get("/api/v1/alerts").body, "boiler.over_pressure").cloned().expect("still active");
    assert_eq!(listed["ack"]["who"], "li", "the acknowledgement survives: {listed}");
    assert_eq!(li.get("/api/v1/overdue-rate").body["total"]["overdue"], 0, "the record survives");
    let events = alerts(&recorder.snapshot());
    assert_eq!(of(&events, "elevator.periodic_inspection", AlertStatus::Firing).len(), 1, "not raised again");
}

#[test]
fn live_events_reach_a_logged_in_browser() {
    let s = setup();
    let dir = s._dir.path();
    let _ingest = start_ingest(dir, "ingest-1", &s.config);
    let li = logged_in(&s.base, "li", "pw-li");
    let anonymous = ureq::get(&format!("{}/api/v1/events", s.base)).call();
    assert!(matches!(anonymous, Err(ureq::Error::Status(401, _))), "events need a login");

    let response = ureq::get(&format!("{}/api/v1/events", s.base))
        .set("Cookie", li.cookie.as_deref().expect("cookie"))
        .call()
        .expect("the event stream");
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut event = String::new();
        for line in BufReader::new(response.into_reader()).lines() {
            let Ok(line) = line else { return };
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                let _ = tx.send((event.clone(), data.to_string()));
            }
        }
    });
    let t0 = now_ms() - 30_000;
    let over: Vec<Reading> = (0..5).map(|i| boiler(i, t0 + i as i64 * 1000, 1.40)).collect();
    publish(s.broker.port, "gw-console-b", &over);
    let alert = wait_for(Duration::from_secs(20), "the over-pressure alert as an event", || {
        let (event, data) = rx.recv_timeout(Duration::from_millis(100)).ok()?;
        assert_eq!(event, "alert");
        let alert: Value = serde_json::from_str(&data).expect("JSON");
        (alert["rule"] == "boiler.over_pressure").then_some(alert)
    });
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["town"], TOWN);
}

#[test]
fn the_console_answers_while_the_tsdb_is_away() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let broker = Mosquitto::start(d);
    let mut vm = Victoria::start(d);
    let port = free_port();
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"ingest-console-tsdb\"\n\n[tsdb]\nurl = \"{}\"\nbucket = \"t\"\ntimeout = \"2s\"\n\n\
         [wal]\ndir = \"{}\"\n\n[batch]\nflush_every = \"50ms\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n{}",
        broker.url(),
        vm.url(),
        d.join("wal").display(),
        users_config(&[("li", "operator", "pw-li")]),
    );
    let ingest = start_ingest(d, "ingest", &config);
    let li = logged_in(&format!("http://127.0.0.1:{port}"), "li", "pw-li");
    let t0 = now_ms() - 60_000;
    publish(
        broker.port,
        "gw-console-c",
        &(0..5).map(|i| boiler(i, t0 + i as i64 * 1000, 1.40)).collect::<Vec<_>>(),
    );
    wait_for(Duration::from_secs(20), "the alert", || {
        active(&li.get("/api/v1/alerts").body, "boiler.over_pressure").map(|_| ())
    });

    vm.proc.terminate();
    publish(
        broker.port,
        "gw-console-c",
        &(5..10).map(|i| boiler(i, t0 + i as i64 * 1000, 1.40)).collect::<Vec<_>>(),
    );
    wait_for(Duration::from_secs(20), "ingest to find the TSDB gone", || {
        ingest.output().contains("TSDB unavailable").then_some(())
    });
    // Reads are answered while the writer waits for the TSDB.
    let status = li.get("/api/v1/status");
    assert_eq!(status.status, 200, "{status:?}");
    assert!(status.body["wal"]["pending"].as_u64().unwrap_or(0) > 0, "readings wait in the WAL: {status:?}");
    assert!(active(&li.get("/api/v1/alerts").body, "boiler.over_pressure").is_some());
    // A change waits for the write and is refused when it cannot be made in time; it is not
    // made later behind the caller's back.
    let ack =
        json!({ "rule": "boiler.over_pressure", "device": "boiler-c1", "comment": "during the outage" });
    assert_eq!(li.post("/api/v1/alerts/ack", ack.clone()).status, 503);
    vm.restart();
    wait_for(Duration::from_secs(30), "the WAL to drain", || {
        (li.get("/api/v1/status").body["wal"]["pending"] == 0).then_some(())
    });
    let alert = active(&li.get("/api/v1/alerts").body, "boiler.over_pressure").cloned().expect("active");
    assert!(alert["ack"].is_null(), "the refused acknowledgement was not made later: {alert}");
    assert_eq!(li.post("/api/v1/alerts/ack", ack).status, 200);
}
