use super::*;
use crate::notify::config::RouteConfig;
use crate::notify::format;
use crate::notify::group::{due, Timing};
use crate::notify::test_alert;
use telemetry::AlertStatus;

fn router() -> Router {
    Router::new(&[RouteConfig { receivers: vec!["duty".into()], ..RouteConfig::default() }])
}

fn receivers() -> HashSet<String> {
    HashSet::from(["duty".to_string()])
}

fn no_town(_: &str) -> Option<String> {
    None
}

fn offline(count: usize, gateway: &str) -> Vec<AlertMessage> {
    (0..count)
        .map(|i| test_alert("elevator.no_data", &format!("elev-{i:04}"), gateway, AlertStatus::Firing))
        .collect()
}

const TIMING: Timing = Timing { group_wait_ms: 10_000, group_interval_ms: 60_000 };

fn take_due(outbox: &mut Outbox, now: i64) -> Vec<Notification> {
    let groups = outbox.groups(&receivers()).unwrap();
    let due: Vec<GroupSummary> = due(&groups, TIMING, now).into_iter().cloned().collect();
    due.iter().filter_map(|g| outbox.take(g, now).unwrap()).collect()
}

#[test]
fn five_hundred_devices_offline_behind_one_gateway_give_one_notification() {
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open(&dir.path().join("outbox.sqlite")).unwrap();
    let alerts = offline(500, "gw-7");
    for (i, chunk) in alerts.chunks(50).enumerate() {
        outbox.enqueue(chunk, &no_town, &router(), 1_000 + i as i64 * 300).unwrap();
    }
    assert!(take_due(&mut outbox, 10_999).is_empty(), "group_wait not over");
    let sent = take_due(&mut outbox, 11_000);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].alerts.len(), 500);
    assert_eq!(format::webhook_body(&sent[0])["count"], 500);
    assert!(format::headline(&sent[0].alerts).starts_with("500 alerts: elevator.no_data firing behind gw-7"));
}

#[test]
fn the_same_transition_is_queued_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open(&dir.path().join("outbox.sqlite")).unwrap();
    let alerts = offline(3, "gw-1");
    assert_eq!(outbox.enqueue(&alerts, &no_town, &router(), 0).unwrap(), 3);
    assert_eq!(outbox.enqueue(&alerts, &no_town, &router(), 5).unwrap(), 0);
    let n = take_due(&mut outbox, 10_000).remove(0);
    outbox.mark_delivered(&n, 10_500).unwrap();
    assert_eq!(outbox.enqueue(&alerts, &no_town, &router(), 20_000).unwrap(), 0, "replay after delivery");
    assert_eq!(outbox.depth().unwrap(), 0);
    assert!(outbox.groups(&receivers()).unwrap().is_empty());
}

#[test]
fn a_failed_notification_is_retried_whole_and_later_alerts_wait_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.sqlite");
    let mut outbox = Outbox::open(&path).unwrap();
    outbox.enqueue(&offline(2, "gw-1"), &no_town, &router(), 0).unwrap();
    let first = take_due(&mut outbox, 10_000).remove(0);
    assert_eq!(outbox.mark_failed(&first.id, "HTTP 500", |_| 12_000).unwrap(), 1);

    let mut late = test_alert("elevator.no_data", "elev-late", "gw-1", AlertStatus::Firing);
    late.ts = 11_000;
    outbox.enqueue(&[late], &no_town, &router(), 11_000).unwrap();
    assert!(take_due(&mut outbox, 11_999).is_empty(), "not before retry_at");
    drop(outbox);

    // After a restart the retry carries the same id and the same alerts.
    let mut outbox = Outbox::open(&path).unwrap();
    let retry = take_due(&mut outbox, 12_000).remove(0);
    assert_eq!(retry, first);
    assert_eq!(outbox.mark_failed(&retry.id, "timeout", |a| 12_000 + 1_000 * a as i64).unwrap(), 2);
    let retry = take_due(&mut outbox, 14_000).remove(0);
    outbox.mark_delivered(&retry, 14_000).unwrap();

    assert!(take_due(&mut outbox, 14_000 + 59_999).is_empty(), "group_interval");
    let next = take_due(&mut outbox, 74_000).remove(0);
    assert_eq!(next.alerts.len(), 1);
    assert_eq!(next.alerts[0].alert.device, "elev-late");
    assert_ne!(next.id, first.id);
}

#[test]
fn delivered_rows_are_forgotten_after_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open(&dir.path().join("outbox.sqlite")).unwrap();
    let alerts = offline(2, "gw-1");
    outbox.enqueue(&alerts, &no_town, &router(), 0).unwrap();
    let n = take_due(&mut outbox, 10_000).remove(0);
    outbox.mark_delivered(&n, 10_000).unwrap();
    assert_eq!(outbox.purge(10_000, &receivers()).unwrap(), 0, "not yet");
    assert_eq!(outbox.purge(10_001, &receivers()).unwrap(), 2);
    assert_eq!(outbox.enqueue(&alerts, &no_town, &router(), 20_000).unwrap(), 2, "forgotten, so new again");
}

#[test]
fn alerts_for_receivers_no_longer_configured_are_skipped_then_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open(&dir.path().join("outbox.sqlite")).unwrap();
    outbox.enqueue(&offline(1, "gw-1"), &no_town, &router(), 0).unwrap();
    let others = HashSet::from(["other".to_string()]);
    assert!(outbox.groups(&others).unwrap().is_empty());
    assert_eq!(outbox.purge(1, &receivers()).unwrap(), 0, "its receiver is still configured");
    assert_eq!(outbox.purge(1, &others).unwrap(), 1);
    assert_eq!(outbox.depth().unwrap(), 0);
}

#[test]
fn towns_and_groups_come_from_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open(&dir.path().join("outbox.sqlite")).unwrap();
    let mut alerts = offline(2, "gw-1");
    alerts.push(test_alert("elevator.no_data", "elev-other", "gw-2", AlertStatus::Firing));
    let town_of = |device: &str| (device == "elev-0000").then(|| "东城街道".to_string());
    outbox.enqueue(&alerts, &town_of, &router(), 0).unwrap();
    let mut sent = take_due(&mut outbox, 10_000);
    sent.sort_by(|a, b| a.group_key.cmp(&b.group_key));
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].group_key, "gateway=gw-1,rule=elevator.no_data,status=firing");
    assert_eq!(sent[0].alerts[0].town.as_deref(), Some("东城街道"));
    assert_eq!(sent[0].alerts[1].town, None);
    assert_eq!(sent[1].alerts.len(), 1);
}
