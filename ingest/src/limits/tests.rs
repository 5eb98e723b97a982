use super::*;

const NOW: i64 = 1_800_000_000_000;

fn reading(gw: &str, dev: &str, ts: i64) -> Reading {
    Reading::new(gw, dev, "boiler", 1, 1, ts).with_value("pressure_mpa", 0.9)
}

fn reason(r: Result<(), Refusal>) -> Reason {
    r.expect_err("refused").reason
}

#[test]
fn a_message_over_the_size_limit_is_refused_with_both_sizes() {
    let l = Limits::default();
    assert!(l.check_size(256 * 1024).is_ok());
    let e = l.check_size(1_200_000).unwrap_err();
    assert_eq!(e.reason, Reason::TooLarge);
    assert!(e.message.contains("1200000 bytes") && e.message.contains("262144 bytes"), "{}", e.message);
}

#[test]
fn timestamps_beyond_the_future_tolerance_or_the_horizon_are_refused() {
    let mut l = Limits::default();
    assert!(l.check(&reading("gw", "d", NOW + 5 * 60_000), NOW, true).is_ok(), "5 min ahead is fine");
    let e = l.check(&reading("gw", "d", NOW + 5 * 60_000 + 1), NOW, true).unwrap_err();
    assert_eq!(e.reason, Reason::TsFuture);
    assert!(e.message.contains("5m"), "{}", e.message);
    // A gateway clock in 2036.
    assert_eq!(reason(l.check(&reading("gw", "d", 2_100_000_000_000), NOW, true)), Reason::TsFuture);
    let day = 24 * 3_600_000;
    assert!(l.check(&reading("gw", "d", NOW - 30 * day), NOW, true).is_ok(), "30 days old is fine");
    let e = l.check(&reading("gw", "d", NOW - 30 * day - 1), NOW, true).unwrap_err();
    assert_eq!(e.reason, Reason::TsTooOld);
    assert!(e.message.contains("30days"), "{}", e.message);
    // The same reading judged at its receive time, as a WAL replay does, passes.
    assert!(l.check(&reading("gw", "d", NOW - 31 * day), NOW - 31 * day + 1_000, true).is_ok());
}

#[test]
fn too_many_values_or_point_errors_are_refused() {
    let mut l = Limits::new(LimitsConfig { max_values: 3, ..LimitsConfig::default() });
    let mut r = reading("gw", "d", NOW).with_value("a", 1.0).with_value("b", 2.0);
    assert!(l.check(&r, NOW, true).is_ok());
    r = r.with_value("c", 3.0);
    let e = l.check(&r, NOW, true).unwrap_err();
    assert_eq!(e.reason, Reason::TooManyValues);
    assert!(e.message.contains("4 values") && e.message.contains("limit of 3"), "{}", e.message);
    let mut errors = reading("gw", "d", NOW);
    for p in ["e1", "e2", "e3", "e4"] {
        errors = errors.with_error(p, "timeout");
    }
    assert_eq!(reason(l.check(&errors, NOW, true)), Reason::TooManyValues);
}

#[test]
fn long_names_texts_and_ids_are_refused() {
    let mut l = Limits::new(LimitsConfig {
        max_key_bytes: 8,
        max_string_bytes: 10,
        max_id_bytes: 6,
        ..LimitsConfig::default()
    });
    let bare = |gw: &str, dev: &str, ts: i64| Reading::new(gw, dev, "boiler", 1, 1, ts);
    let e = l.check(&bare("gw", "d", NOW).with_value("nine_byte", 1.0), NOW, true).unwrap_err();
    assert_eq!(e.reason, Reason::KeyTooLong);
    assert!(e.message.contains("9-byte name") && e.message.contains("limit of 8"), "{}", e.message);
    assert_eq!(
        reason(l.check(&bare("gw", "d", NOW).with_error("nine_byte", "x"), NOW, true)),
        Reason::KeyTooLong
    );
    assert!(l.check(&bare("gw", "d", NOW).with_value("s", "0123456789"), NOW, true).is_ok());
    let e = l.check(&bare("gw", "d", NOW).with_value("s", "0123456789a"), NOW, true).unwrap_err();
    assert_eq!(e.reason, Reason::StringTooLong);
    assert!(e.message.contains("values.s") && e.message.contains("11-byte"), "{}", e.message);
    assert_eq!(
        reason(l.check(&bare("gw", "d", NOW).with_error("p", "a long reason"), NOW, true)),
        Reason::StringTooLong
    );
    assert!(l.check(&bare("gw-123", "d", NOW), NOW, true).is_ok());
    let e = l.check(&bare("gw-1234", "d", NOW), NOW, true).unwrap_err();
    assert_eq!(e.reason, Reason::IdTooLong);
    assert!(e.message.contains("`gw`"), "{}", e.message);
    assert_eq!(reason(l.check(&bare("gw", "dev-1234", NOW), NOW, true)), Reason::IdTooLong);
}

#[test]
fn a_gateway_introduces_at_most_its_rate_of_new_devices() {
    let mut l = Limits::new(LimitsConfig { new_devices_per_minute: 3, ..LimitsConfig::default() });
    for d in ["d1", "d2", "d3"] {
        assert!(l.check(&reading("gw-a", d, NOW), NOW, false).is_ok());
    }
    let e = l.check(&reading("gw-a", "d4", NOW + 1), NOW + 1, false).unwrap_err();
    assert_eq!(e.reason, Reason::NewDeviceRate);
    assert!(
        e.message.contains("gw-a") && e.message.contains("d4") && e.message.contains("3"),
        "{}",
        e.message
    );
    assert!(l.check(&reading("gw-a", "d1", NOW + 1), NOW + 1, true).is_ok(), "known devices are free");
    assert!(l.check(&reading("gw-b", "e1", NOW + 1), NOW + 1, false).is_ok(), "gateways are apart");
    // One token back every 20 s.
    assert_eq!(
        reason(l.check(&reading("gw-a", "d4", NOW + 19_999), NOW + 19_999, false)),
        Reason::NewDeviceRate
    );
    assert!(l.check(&reading("gw-a", "d4", NOW + 20_000), NOW + 20_000, false).is_ok());
    assert_eq!(
        reason(l.check(&reading("gw-a", "d5", NOW + 20_001), NOW + 20_001, false)),
        Reason::NewDeviceRate
    );
    // A reading refused for another reason costs no token.
    let mut l =
        Limits::new(LimitsConfig { new_devices_per_minute: 1, max_values: 1, ..LimitsConfig::default() });
    let big = reading("gw", "x", NOW).with_value("extra", 1.0);
    assert_eq!(reason(l.check(&big, NOW, false)), Reason::TooManyValues);
    assert!(l.check(&reading("gw", "x", NOW), NOW, false).is_ok());
}

#[test]
fn buckets_are_kept_only_for_gateways_that_introduced_devices_in_the_last_minute() {
    let mut l = Limits::new(LimitsConfig { new_devices_per_minute: 10, ..LimitsConfig::default() });
    for round in 0..5 {
        let t = NOW + round * 60_000;
        for g in 0..2_000 {
            assert!(l.check(&reading(&format!("gw-{round}-{g}"), "d", t), t, false).is_ok());
        }
        assert!(l.buckets() <= 4_096, "round {round}: {} buckets", l.buckets());
    }
}

#[test]
fn kinds_and_fields_per_kind_are_bounded() {
    let mut l = Limits::new(LimitsConfig { max_kinds: 2, max_fields_per_kind: 3, ..LimitsConfig::default() });
    let of_kind = |kind: &str, names: &[&str]| {
        let mut r = Reading::new("gw", "d", kind, 1, 1, NOW);
        for n in names {
            r = r.with_value(n, 1.0);
        }
        r
    };
    assert!(l.check(&of_kind("boiler", &["a", "b"]), NOW, true).is_ok());
    assert!(l.check(&of_kind("elevator", &["a"]), NOW, true).is_ok());
    let e = l.check(&of_kind("pump", &["a"]), NOW, true).unwrap_err();
    assert_eq!(e.reason, Reason::TooManyKinds);
    assert!(e.message.contains("`pump`") && e.message.contains("limit of 2 kinds"), "{}", e.message);
    assert!(l.check(&of_kind("boiler", &["a", "b", "c"]), NOW, true).is_ok(), "a third field");
    let e = l.check(&of_kind("boiler", &["a", "d"]), NOW, true).unwrap_err();
    assert_eq!(e.reason, Reason::TooManyFields);
    assert!(e.message.contains("`boiler` 4 fields") && e.message.contains("limit of 3"), "{}", e.message);
    assert!(l.check(&of_kind("boiler", &["c", "b"]), NOW, true).is_ok(), "known fields stay taken");
    assert!(l.check(&of_kind("elevator", &["x", "y"]), NOW, true).is_ok(), "per kind");
}

#[test]
fn codec_length_errors_count_under_their_limit() {
    let too_long = |field: &str| PayloadError::TooLong { field: field.into(), len: 200, max: 128 };
    assert_eq!(Reason::of_payload_error(&too_long("dev")), Reason::IdTooLong);
    assert_eq!(Reason::of_payload_error(&too_long("values.x")), Reason::KeyTooLong);
    assert_eq!(Reason::of_payload_error(&PayloadError::NotObject), Reason::Invalid);
    let labels: HashSet<&str> = Reason::ALL.iter().map(|r| r.label()).collect();
    assert_eq!(labels.len(), Reason::ALL.len(), "labels are distinct");
    assert!(Reason::ALL.iter().enumerate().all(|(i, r)| r.index() == i));
}

#[test]
fn the_defaults_are_the_documented_ones_and_bad_values_are_named() {
    let c: LimitsConfig = toml::from_str("").unwrap();
    assert_eq!(c, LimitsConfig::default());
    assert_eq!(c.max_message_bytes.0, 256 * 1024);
    assert_eq!((c.max_future, c.max_age), (Duration::from_secs(300), Duration::from_secs(30 * 86_400)));
    assert_eq!((c.max_values, c.max_key_bytes, c.max_string_bytes, c.max_id_bytes), (512, 128, 1024, 128));
    assert_eq!((c.new_devices_per_minute, c.max_kinds, c.max_fields_per_kind), (1_000, 64, 1_024));
    let c: LimitsConfig =
        toml::from_str("max_message_bytes = \"1MiB\"\nmax_future = \"1m\"\nmax_age = \"8d\"").unwrap();
    assert_eq!((c.max_message_bytes.0, c.max_age), (1 << 20, Duration::from_secs(8 * 86_400)));
    assert!(c.problems().is_empty());
    let bad = LimitsConfig { max_key_bytes: 200, max_values: 0, ..LimitsConfig::default() };
    assert_eq!(bad.problems().len(), 2, "{:?}", bad.problems());
}
