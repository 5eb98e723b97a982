//! The pipeline with `[limits]`: each refusal is a dead letter with its reason and counter, and
//! the device's next valid reading is taken as if the bad one had never come.

use super::*;
use telemetry::spool::ByteSize;
use telemetry::Reading;

const NOW: i64 = 1_800_000_000_000;

fn pipeline(cfg: LimitsConfig) -> Pipeline {
    let mut p = Pipeline::new(Topics::default(), Engine::new(rules::default_pack().unwrap()));
    p.set_limits(cfg);
    p
}

fn boiler(device: &str, seq: u64, ts: i64, over: bool) -> (String, Vec<u8>) {
    let r = Reading::new("gw-1", device, "boiler", 1, seq, ts)
        .with_value("pressure_mpa", if over { 1.35 } else { 0.9 })
        .with_value("over_pressure", over);
    (Topics::default().telemetry(16, "gw-1", device), telemetry::encode(&r))
}

fn dead_letter(o: Outcome) -> (String, serde_json::Value, String) {
    let Outcome::DeadLetter { topic, payload, reason } = o else { panic!("not a dead letter: {o:?}") };
    (topic, serde_json::from_slice(&payload).unwrap(), reason)
}

#[test]
fn a_future_timestamp_is_refused_and_does_not_freeze_the_devices_alerts() {
    let mut p = pipeline(LimitsConfig::default());
    let (topic, bad) = boiler("boiler-0001", 1, 2_100_000_000_000, false);
    let (dl, json, reason) = dead_letter(p.handle(&topic, &bad, NOW));
    assert_eq!(dl, "ingest/deadletter/gw-1");
    assert!(reason.contains("ahead of ingest's clock"), "{reason}");
    assert_eq!(json["reason"], reason.as_str());
    assert_eq!(json["received_at"], NOW);
    assert_eq!(p.stats.dead_letters[Reason::TsFuture.index()], 1);
    assert_eq!(p.stats.invalid, 1);
    p.handle(&topic, &boiler("boiler-0001", 2, NOW, true).1, NOW);
    let Outcome::Reading { alerts, .. } =
        p.handle(&topic, &boiler("boiler-0001", 3, NOW + 4_000, true).1, NOW + 4_000)
    else {
        panic!()
    };
    assert_eq!(alerts.len(), 1, "the over-pressure alert fires");
    assert_eq!(alerts[0].rule, "boiler.over_pressure");
}

#[test]
fn an_old_timestamp_is_judged_against_the_receive_time() {
    let mut p = pipeline(LimitsConfig::default());
    let old = NOW - 31 * 86_400_000;
    let (topic, payload) = boiler("boiler-0001", 1, old, false);
    let (_, _, reason) = dead_letter(p.handle(&topic, &payload, NOW));
    assert!(reason.contains("older than 30days"), "{reason}");
    assert_eq!(p.stats.dead_letters[Reason::TsTooOld.index()], 1);
    // Replayed from the WAL long after it came: its receive time counts, not the replay's.
    assert!(matches!(p.handle(&topic, &payload, old + 60_000), Outcome::Reading { .. }));
}

#[test]
fn a_message_over_the_size_limit_is_a_dead_letter_cut_to_its_head() {
    let mut p = pipeline(LimitsConfig { max_message_bytes: ByteSize(100), ..LimitsConfig::default() });
    let (topic, payload) = boiler("boiler-0001", 1, NOW, false);
    assert!(payload.len() > 100);
    let (dl, _, reason) = dead_letter(p.handle(&topic, &payload, NOW));
    assert_eq!(dl, "ingest/deadletter/gw-1");
    assert!(
        reason.contains(&format!("{} bytes", payload.len())) && reason.contains("limit of 100 bytes"),
        "{reason}"
    );
    let head = vec![b'x'; MAX_DEAD_LETTER_PAYLOAD];
    let (_, json, reason) = dead_letter(p.handle_too_large(&topic, &head, 1_200_000, NOW));
    assert!(reason.contains("1200000 bytes"), "{reason}");
    assert_eq!(json["payload"].as_str().unwrap().len(), MAX_DEAD_LETTER_PAYLOAD);
    assert_eq!(p.stats.dead_letters[Reason::TooLarge.index()], 2);
    assert_eq!(p.stats.received, 2);
}

#[test]
fn devices_the_engine_knows_cost_no_new_device_allowance() {
    let mut p = pipeline(LimitsConfig { new_devices_per_minute: 2, ..LimitsConfig::default() });
    for (i, d) in ["b-1", "b-2"].iter().enumerate() {
        let (topic, payload) = boiler(d, 1, NOW + i as i64, false);
        assert!(matches!(p.handle(&topic, &payload, NOW), Outcome::Reading { .. }));
    }
    let (topic, payload) = boiler("b-3", 1, NOW, false);
    let (_, _, reason) = dead_letter(p.handle(&topic, &payload, NOW));
    assert!(reason.contains("new device"), "{reason}");
    assert_eq!(p.stats.dead_letters[Reason::NewDeviceRate.index()], 1);
    let (topic, payload) = boiler("b-1", 2, NOW + 1_000, false);
    assert!(matches!(p.handle(&topic, &payload, NOW + 1_000), Outcome::Reading { .. }), "b-1 is known");
}

#[test]
fn lengths_over_the_payload_formats_bound_count_under_their_limit() {
    let mut p = pipeline(LimitsConfig::default());
    let long = "d".repeat(200);
    let topic = Topics::default().telemetry(16, "gw-1", &long);
    let payload = format!(
        r#"{{"v":1,"gw":"gw-1","dev":"{long}","kind":"boiler","sid":1,"seq":1,"ts":{NOW},"values":{{}}}}"#
    );
    let (dl, _, reason) = dead_letter(p.handle(&topic, payload.as_bytes(), NOW));
    assert!(reason.contains("at most 128 bytes"), "{reason}");
    assert_eq!(dl, "ingest/deadletter/gw-1", "the gateway still hears of it");
    assert_eq!(p.stats.dead_letters[Reason::IdTooLong.index()], 1);
    // A value name over the payload format's bound counts as a long key.
    let key = "k".repeat(129);
    let payload = format!(
        r#"{{"v":1,"gw":"gw-1","dev":"d","kind":"boiler","sid":1,"seq":1,"ts":{NOW},"values":{{"{key}":1}}}}"#
    );
    let topic = Topics::default().telemetry(16, "gw-1", "d");
    let (_, _, reason) = dead_letter(p.handle(&topic, payload.as_bytes(), NOW));
    assert!(reason.contains("129 bytes is too long"), "{reason}");
    assert_eq!(p.stats.dead_letters[Reason::KeyTooLong.index()], 1);
    dead_letter(p.handle(&Topics::default().telemetry(16, "gw-1", "d"), b"garbage", NOW));
    assert_eq!(p.stats.dead_letters[Reason::Invalid.index()], 1);
}
