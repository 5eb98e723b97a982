//! The web console in a real browser: headless Chromium (driven over WebDriver by chromedriver)
//! logs in to the real ingest, sees an alert appear live without reloading the page,
//! acknowledges it through the dialog, and the `acknowledged` transition arrives on MQTT.
//!
//! `UPDATE_SCREENSHOT=1 cargo test -p system-tests --test console_browser` also writes the
//! screenshot of this run to `docs/console.png` (the one the README shows).

use std::path::Path;
use std::time::Duration;

use system_tests::checks::alerts;
use system_tests::console::users_config;
use system_tests::webdriver::{Browser, Element, Options, WdResult};
use system_tests::{free_port, now_ms, publish, start_ingest, wait_for, wait_for_port, Mosquitto, Recorder};
use telemetry::{AlertMessage, AlertStatus, Reading};

const OPERATOR: &str = "li";
const VIEWER: &str = "wang";
const PASSWORD: &str = "console-test-pw";
const GATEWAY: &str = "gw-dc-0007";
const ELEVATOR: &str = "elev-0101";
const TRAPPED: &str = "elevator.passenger_trapped";
const COMMENT: &str = "维保人员已到场 technician on site";

/// Generous: the CI machine is slow and shared.
const WAIT: Duration = Duration::from_secs(60);

const REGISTRY: &str = "\
device,kind,registration_code,name,town,address,commissioned,last_inspection,next_inspection
elev-0101,elevator,31104419002018000101,1号梯,东城街道,东城大道 88 号,2018-03-01,2026-06-01,2030-06-01
elev-0102,elevator,31104419002016000102,2号梯,南城街道,鸿福路 6 号,2016-03-01,2024-09-01,2025-09-01
pile-0201,charging_pile,,快充桩 1,松山湖,松山湖大道 6 号停车场,2025-01-01,2026-06-01,2030-06-01
wm-0301,water_meter,,水表 1,樟木头镇,官仓社区 5 栋,2025-01-01,,
";

fn elevator(seq: u64, sid: u64, ts: i64, fault_code: i64) -> Reading {
    Reading::new(GATEWAY, ELEVATOR, "elevator", sid, seq, ts)
        .with_value("service_mode", 0)
        .with_value("fault_code", fault_code)
        .with_value("floor", 7)
        .with_value("speed_mps", 0.0)
        .with_value("door_closed", true)
}

fn of(events: &[AlertMessage], rule: &str, device: &str, status: AlertStatus) -> Option<AlertMessage> {
    events.iter().find(|a| a.rule == rule && a.device == device && a.status == status).cloned()
}

fn log_in(browser: &Browser, user: &str, password: &str) {
    let name = browser.wait_for("[data-testid=login-user]", WAIT);
    name.clear().expect("clear the user field");
    name.send_keys(user).expect("type the user");
    let pw = browser.find("[data-testid=login-password]").expect("password field");
    pw.clear().expect("clear the password field");
    pw.send_keys(password).expect("type the password");
    browser.find("[data-testid=login-submit]").expect("submit button").click().expect("submit");
}

/// The active alert row of `rule` on `device`.
fn row<'a>(browser: &'a Browser, rule: &str, device: &str) -> WdResult<Element<'a>> {
    browser.find(&format!("[data-testid=alert-row][data-rule=\"{rule}\"][data-device=\"{device}\"]"))
}

#[test]
fn an_operator_sees_an_alert_live_and_acknowledges_it_in_the_browser() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let broker = Mosquitto::start(dir);
    let recorder = Recorder::start(broker.port, "console-recorder", &["events/alerts"]);

    let registry = dir.join("registry.csv");
    std::fs::write(&registry, REGISTRY).expect("registry.csv");
    let http_port = free_port();
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"ingest-console\"\n\n[files]\ndir = \"{}\"\n\n[wal]\ndir = \"{}\"\n\n\
         [batch]\nflush_every = \"100ms\"\n\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\n\
         [registry]\nfile = \"{}\"\n\n{}",
        broker.url(),
        dir.join("files").display(),
        dir.join("wal").display(),
        registry.display(),
        users_config(&[(OPERATOR, "operator", PASSWORD), (VIEWER, "viewer", PASSWORD)]),
    );
    let _ingest = start_ingest(dir, "ingest", &config);
    wait_for_port(http_port, "ingest's HTTP listener");

    // Alerts that are already active when the page opens: a charging pile's gun over
    // temperature (major), a water meter's leak (warning, after 10 s of readings) and, from the
    // registry, an elevator whose periodic inspection is overdue.
    let sid = now_ms() as u64;
    let t0 = now_ms() - 15_000;
    let mut before: Vec<Reading> = (0..3)
        .map(|i| {
            Reading::new(GATEWAY, "pile-0201", "charging_pile", sid, i, t0 + i as i64 * 1000)
                .with_value("fault_code", 9)
                .with_value("gun_temp_c", 96.5)
        })
        .collect();
    before.extend((0..13).map(|i| {
        Reading::new("gw-zmt-0003", "wm-0301", "water_meter", sid, i, t0 + i as i64 * 1000)
            .with_value("status_bits", 1)
            .with_value("flow_m3h", 0.42)
            .with_value("forward_total_m3", 1234.5 + i as f64 * 0.01)
    }));
    publish(broker.port, "console-before", &before);
    wait_for(WAIT, "the alerts that precede the page to fire", || {
        let events = alerts(&recorder.snapshot());
        (of(&events, "charging_pile.gun_over_temp", "pile-0201", AlertStatus::Firing).is_some()
            && of(&events, "water_meter.leak", "wm-0301", AlertStatus::Firing).is_some())
        .then_some(())
    });

    let browser = Browser::start_with(dir, Options { lang: "zh-CN".into(), ..Options::default() });
    let url = format!("http://127.0.0.1:{http_port}/");
    browser.goto(&url).expect("open the console");

    // A wrong password is refused with the server's message; the right one gets in.
    log_in(&browser, OPERATOR, "not-the-password");
    browser.wait_for("[data-testid=login-error]", WAIT);
    log_in(&browser, OPERATOR, PASSWORD);
    browser.wait_for("[data-testid=alerts-table]", WAIT);
    browser.wait_until(WAIT, "the live indicator to show the event stream is open", |b| {
        let state = b.find("[data-testid=live-indicator]")?.attribute("data-state")?;
        Ok((state.as_deref() == Some("live")).then_some(()))
    });
    browser.wait_until(WAIT, "the alerts that were active before the page opened", |b| {
        Ok(row(b, "charging_pile.gun_over_temp", "pile-0201").is_ok().then_some(()))
    });

    // Labels in both languages: the toggle switches the page to English and back.
    let toggle = browser.find("[data-testid=lang-toggle]").expect("language toggle");
    toggle.click().expect("switch language");
    browser.wait_until(WAIT, "the page in English", |b| {
        let lang = b.execute("return document.documentElement.lang", vec![])?;
        Ok((lang == "en").then_some(()))
    });
    browser.find("[data-testid=lang-toggle]").expect("language toggle").click().expect("switch back");
    browser.wait_until(WAIT, "the page in Chinese", |b| {
        let lang = b.execute("return document.documentElement.lang", vec![])?;
        Ok((lang == "zh-CN").then_some(()))
    });

    // A mark on this page: it is still there after the alert shows, so the page was not reloaded.
    browser.execute("window.consoleTestMark = 'same page'", vec![]).expect("mark the page");
    assert!(row(&browser, TRAPPED, ELEVATOR).is_err(), "no trapped-passenger alert before the readings");

    // A passenger is trapped (fault code 5) for longer than the rule's 2 s.
    let t1 = now_ms() - 4_000;
    let trapped: Vec<Reading> = (0..5).map(|i| elevator(i, sid, t1 + i as i64 * 1000, 5)).collect();
    publish(broker.port, "console-elevator", &trapped);

    browser.wait_until(WAIT, "the trapped-passenger alert to appear live", |b| {
        Ok(row(b, TRAPPED, ELEVATOR).is_ok().then_some(()))
    });
    let mark = browser.execute("return window.consoleTestMark", vec![]).expect("read the mark");
    assert_eq!(mark, "same page", "the alert appeared without reloading the page");
    let pushed = browser
        .find("[data-testid=live-indicator]")
        .and_then(|e| e.attribute("data-events"))
        .expect("events");
    assert!(
        pushed.is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 1)),
        "the page got the alert as a live event"
    );
    let fired = of(&alerts(&recorder.snapshot()), TRAPPED, ELEVATOR, AlertStatus::Firing);
    assert!(fired.is_some(), "the alert the page shows also fired on MQTT");

    // Acknowledge it with a comment through the dialog.
    let ack_state =
        row(&browser, TRAPPED, ELEVATOR).and_then(|r| r.find("[data-testid=ack-state]")).expect("ack cell");
    assert!(!ack_state.text().expect("ack cell text").contains(OPERATOR), "not acknowledged yet");
    browser.wait_until(WAIT, "the acknowledge button to be clicked", |b| {
        row(b, TRAPPED, ELEVATOR)?.find("[data-testid=ack-button]")?.click()?;
        Ok(Some(()))
    });
    let comment = browser.wait_for("[data-testid=ack-comment]", WAIT);
    comment.send_keys(COMMENT).expect("type the comment");
    browser.find("[data-testid=ack-submit]").expect("submit button").click().expect("acknowledge");

    let acked = wait_for(WAIT, "the acknowledged transition on events/alerts", || {
        of(&alerts(&recorder.snapshot()), TRAPPED, ELEVATOR, AlertStatus::Acknowledged)
    });
    assert_eq!(acked.acknowledged_by.as_deref(), Some(OPERATOR), "{acked:?}");
    assert_eq!(acked.comment.as_deref(), Some(COMMENT), "{acked:?}");
    assert_eq!(acked.severity, "critical");

    let shown = browser.wait_until(WAIT, "the row to show who acknowledged it", |b| {
        let text = row(b, TRAPPED, ELEVATOR)?.find("[data-testid=ack-state]")?.text()?;
        Ok((text.contains(OPERATOR) && text.contains(COMMENT)).then_some(text))
    });
    assert!(shown.lines().next().is_some_and(|l| l.trim() == OPERATOR), "the acknowledger first: {shown:?}");
    let enabled = row(&browser, TRAPPED, ELEVATOR)
        .and_then(|r| r.find("[data-testid=ack-button]"))
        .and_then(|b| b.is_enabled())
        .expect("ack button state");
    assert!(!enabled, "an acknowledged alert cannot be acknowledged again from the page");

    if std::env::var_os("UPDATE_SCREENSHOT").is_some_and(|v| !v.is_empty() && v != "0") {
        save_screenshot(&browser);
    }

    // A viewer sees the alert and who acknowledged it, but no controls to act on it.
    browser.find("[data-testid=logout]").expect("logout button").click().expect("log out");
    log_in(&browser, VIEWER, PASSWORD);
    browser.wait_for("[data-testid=alerts-table]", WAIT);
    let who = browser.find("[data-testid=user-name]").and_then(|e| e.text()).expect("who is logged in");
    assert!(who.starts_with(VIEWER), "logged in as the viewer: {who:?}");
    browser.wait_until(WAIT, "the viewer to see who acknowledged the alert", |b| {
        let text = row(b, TRAPPED, ELEVATOR)?.find("[data-testid=ack-state]")?.text()?;
        Ok(text.contains(OPERATOR).then_some(()))
    });
    let buttons = row(&browser, TRAPPED, ELEVATOR)
        .and_then(|r| r.find_all("[data-testid=ack-button], [data-testid=silence-button]"))
        .expect("row buttons");
    assert!(buttons.is_empty(), "a viewer gets no acknowledge or silence buttons");
}

/// Writes the console as it looks now to `docs/console.png`, once the row highlight has faded.
fn save_screenshot(browser: &Browser) {
    browser.wait_until(WAIT, "the highlight of changed rows to fade", |b| {
        Ok(b.find_all(".flash")?.is_empty().then_some(()))
    });
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    std::fs::create_dir_all(&docs).expect("docs folder");
    let path = docs.join("console.png");
    browser.save_screenshot(&path).expect("screenshot");
    eprintln!("wrote {}", path.display());
}
