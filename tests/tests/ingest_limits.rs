//! Hostile and broken input against the real `ingest` and Mosquitto: each bad message is
//! dead-lettered with its reason on `ingest/deadletter/{gateway}`, counted under
//! `ingest_dead_letters_total{reason}`, and acknowledged; the device's next valid reading is
//! written to the TSDB and its alert fires. The oversized one is 1.2 MB at QoS 1, which used to
//! fail ingest's MQTT connection and come back on every reconnect.

use std::time::Duration;

use system_tests::{
    metric, publish_raw, start_ingest, stored_points, wait_for, Mosquitto, Recorder, Victoria,
};
use telemetry::{Reading, Topics};

const GW: &str = "gw-lim";
const DAY: i64 = 86_400_000;

fn message(r: &Reading) -> (String, Vec<u8>) {
    (Topics::default().telemetry(16, &r.gateway, &r.device), telemetry::encode(r))
}

fn boiler(gateway: &str, device: &str, seq: u64, ts: i64) -> Reading {
    Reading::new(gateway, device, "boiler", 1, seq, ts)
        .with_value("pressure_mpa", 1.35)
        .with_value("over_pressure", true)
}

/// One case: the bad messages, the reason label and a piece of the dead letter's reason.
struct Case {
    name: &'static str,
    bad: Vec<(String, Vec<u8>)>,
    label: &'static str,
    says: &'static str,
}

#[test]
fn bad_input_is_dead_lettered_counted_and_acknowledged_and_the_next_reading_alerts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    // Ingest's own limits must hold whatever the broker lets through: this broker is the
    // shipped one without its `message_size_limit`, so the 1.2 MB message reaches ingest.
    let broker = Mosquitto::start_with(dir, |shipped| {
        shipped.lines().filter(|l| !l.starts_with("message_size_limit")).collect::<Vec<_>>().join("\n") + "\n"
    });
    let vm = Victoria::start(dir);
    let http = system_tests::free_port();
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"ingest-limits\"\n\n[tsdb]\nurl = \"{}\"\nbucket = \"telemetry\"\n\n\
         [files]\ndir = \"{}\"\n\n[wal]\ndir = \"{}\"\n\n[batch]\nflush_every = \"50ms\"\n\n\
         [http]\nlisten = \"127.0.0.1:{http}\"\n\n\
         [limits]\nmax_values = 8\nmax_key_bytes = 32\nmax_string_bytes = 64\nnew_devices_per_minute = 30\n\
         max_kinds = 3\nmax_fields_per_kind = 6\n",
        broker.url(),
        vm.url(),
        dir.join("files").display(),
        dir.join("wal").display()
    );
    let ingest = start_ingest(dir, "ingest", &config);
    let recorder = Recorder::start(broker.port, "limits-recorder", &["ingest/deadletter/#", "events/alerts"]);
    let now = system_tests::now_ms();
    let topic = |dev: &str| Topics::default().telemetry(16, GW, dev);
    let with_values = |dev: &str, names: &[String]| {
        let mut r = Reading::new(GW, dev, "boiler", 1, 1, now);
        for n in names {
            r = r.with_value(n, 1.0);
        }
        message(&r)
    };
    let names = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>();
    let flood: Vec<_> =
        (0..31).map(|i| message(&boiler("gw-flood", &format!("flood-{i:02}"), 1, now))).collect();
    let cases = vec![
        Case {
            name: "oversized",
            bad: vec![(topic("boiler-big"), vec![b'x'; 1_200_000])],
            label: "too_large",
            says: "message of 1200000 bytes is larger than the limit of 262144 bytes",
        },
        Case {
            name: "future",
            bad: vec![message(&boiler(GW, "boiler-future", 9, 2_082_758_400_000))],
            label: "ts_future",
            says: "ahead of ingest's clock",
        },
        Case {
            name: "old",
            bad: vec![message(&boiler(GW, "boiler-old", 9, now - 40 * DAY))],
            label: "ts_too_old",
            says: "older than 30days",
        },
        Case {
            name: "values",
            bad: vec![with_values("boiler-values", &names("v", 9))],
            label: "too_many_values",
            says: "9 values and 0 point errors, more than the limit of 8",
        },
        Case {
            name: "key",
            bad: vec![with_values("boiler-key", &["k".repeat(100)])],
            label: "key_too_long",
            says: "100-byte name, longer than the limit of 32",
        },
        Case {
            name: "string",
            bad: vec![message(
                &Reading::new(GW, "boiler-string", "boiler", 1, 1, now)
                    .with_value("note", "s".repeat(100).as_str()),
            )],
            label: "string_too_long",
            says: "100-byte text, longer than the limit of 64",
        },
        Case {
            name: "id",
            bad: vec![message(&boiler(GW, &"d".repeat(200), 1, now))],
            label: "id_too_long",
            says: "must be at most 128 bytes",
        },
        Case {
            name: "fields",
            bad: vec![with_values("boiler-fields", &names("f", 5))],
            label: "too_many_fields",
            says: "more than the limit of 6",
        },
        Case {
            name: "kinds",
            bad: ["k_one", "k_two", "k_three"]
                .iter()
                .map(|k| message(&Reading::new(GW, &format!("dev-{k}"), k, 1, 1, now).with_value("x", 1.0)))
                .collect(),
            label: "too_many_kinds",
            says: "`k_three` would be kind number 4, more than the limit of 3 kinds",
        },
        Case {
            name: "garbage",
            bad: vec![(topic("boiler-garbage"), b"\x00\xffgarbage{".to_vec())],
            label: "invalid",
            says: "not JSON",
        },
        Case {
            name: "flood",
            bad: flood,
            label: "new_device_rate",
            says: "has introduced more than 30 new device ids",
        },
    ];
    // Each bad message, then two over-pressure readings 4 s apart (the rule's `for` is 3 s).
    let mut all = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        all.extend(case.bad.iter().cloned());
        let (gateway, device) = next_reading(case);
        let ts = now + i as i64;
        all.push(message(&boiler(gateway, &device, 2, ts)));
        all.push(message(&boiler(gateway, &device, 3, ts + 4_000)));
    }
    publish_raw(broker.port, "limits-publisher", all);

    for case in &cases {
        let (gateway, device) = next_reading(case);
        wait_for(
            Duration::from_secs(30),
            &format!("{}: the over-pressure alert of {device}", case.name),
            || telemetry_alert(&recorder, &device).then_some(()),
        );
        let letter = wait_for(Duration::from_secs(10), &format!("{}: its dead letter", case.name), || {
            recorder.snapshot().into_iter().find_map(|m| {
                let json: serde_json::Value = serde_json::from_slice(&m.payload).ok()?;
                let reason = json["reason"].as_str()?.to_string();
                (m.topic.starts_with("ingest/deadletter/") && reason.contains(case.says))
                    .then_some((m.topic, json))
            })
        });
        assert_eq!(letter.0, format!("ingest/deadletter/{gateway}"), "{}", case.name);
        let sample = format!("ingest_dead_letters_total{{reason=\"{}\"}}", case.label);
        let n = wait_for(Duration::from_secs(10), &format!("{}: {sample}", case.name), || {
            metric(http, &sample).filter(|n| *n >= 1.0)
        });
        assert_eq!(n, 1.0, "{}: one dead letter of its reason", case.name);
    }
    let oversized = recorder
        .snapshot()
        .into_iter()
        .find(|m| m.payload.windows(7).any(|w| w == b"1200000"))
        .expect("oversized letter");
    let json: serde_json::Value = serde_json::from_slice(&oversized.payload).expect("JSON");
    assert_eq!(json["payload"].as_str().map(str::len), Some(64 * 1024), "the letter carries the head only");

    // Every valid reading after a bad one is in the TSDB (VictoriaMetrics shows writes after
    // a moment, hence the wait).
    let expected: Vec<(String, i64)> = (cases.iter().enumerate())
        .flat_map(|(i, case)| {
            let (_, device) = next_reading(case);
            let ts = now + i as i64;
            [(device.clone(), ts), (device, ts + 4_000)]
        })
        .collect();
    let missing = |points: &std::collections::BTreeMap<(String, i64), f64>| {
        expected.iter().filter(|k| !points.contains_key(*k)).cloned().collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let gone = missing(&stored_points(&vm, "boiler_pressure_mpa").0);
        if gone.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "readings after bad ones not stored: {gone:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(metric(http, "ingest_dead_letters_total{reason=\"new_device_rate\"}"), Some(1.0));
    assert_eq!(metric(http, "ingest_mqtt_connected"), Some(1.0));
    let log = ingest.output();
    assert!(!log.contains("MQTT connection:"), "ingest never lost its connection:\n{log}");
}

/// The gateway and device of the valid readings after a case's bad messages.
fn next_reading(case: &Case) -> (&'static str, String) {
    match case.name {
        // The flood's gateway has no allowance left: a device it introduced before goes on.
        "flood" => ("gw-flood", "flood-00".to_string()),
        _ => (GW, format!("boiler-after-{}", case.name)),
    }
}

fn telemetry_alert(recorder: &Recorder, device: &str) -> bool {
    system_tests::checks::alerts(&recorder.snapshot()).iter().any(|a| {
        a.device == device && a.rule == "boiler.over_pressure" && a.status == telemetry::AlertStatus::Firing
    })
}
