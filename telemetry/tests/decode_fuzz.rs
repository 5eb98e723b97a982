//! No input makes the payload decoder panic. A regression corpus of nasty inputs
//! (`tests/corpus/`, each file one payload) and property tests over random and mutated payloads.

use proptest::prelude::*;
use telemetry::{decode, encode, PayloadError, Reading};

#[test]
fn corpus_inputs_are_decoded_or_rejected_without_panicking() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus folder") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("corpus file");
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match decode(&bytes) {
            Ok(r) => assert!(
                name.starts_with("valid")
                    || name.starts_with("extreme")
                    || name.starts_with("max")
                    || name.starts_with("many")
                    || name.starts_with("u64"),
                "{name} decoded: {r:?}"
            ),
            Err(e) => assert!(!e.to_string().is_empty(), "{name}"),
        }
        n += 1;
    }
    assert!(n >= 10, "the corpus is there");
}

#[test]
fn corpus_expectations() {
    let read = |name: &str| {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(name))
            .unwrap()
    };
    assert!(matches!(
        decode(&read("ts-overflow.json")),
        Err(PayloadError::WrongType { .. } | PayloadError::Invalid { .. })
    ));
    assert!(
        matches!(decode(&read("nul-in-id.json")), Err(PayloadError::Invalid { ref field, .. }) if field == "gw")
    );
    assert!(
        matches!(decode(&read("nested-value.json")), Err(PayloadError::WrongType { ref field, .. }) if field == "values.a")
    );
    assert!(matches!(decode(&read("deep-nesting.json")), Err(PayloadError::NotJson(_))));
    let r = decode(&read("u64-value.json")).unwrap();
    assert_eq!(
        r.values["a"].as_f64(),
        Some(18446744073709551615.0),
        "beyond i64 becomes a float, not an error"
    );
}

fn reading() -> impl Strategy<Value = Reading> {
    (
        "[a-z][a-z0-9-]{0,20}",
        "[a-z][a-z0-9_]{0,10}",
        any::<u64>(),
        any::<u64>(),
        1..i64::MAX,
        proptest::collection::btree_map("[a-z_][a-z0-9_]{0,8}", any::<f64>(), 0..8),
        any::<bool>(),
    )
        .prop_map(|(dev, kind, sid, seq, ts, values, replay)| {
            let mut r = Reading::new("gw-1", &dev, &kind, sid, seq, ts);
            for (k, v) in values {
                r.values.insert(k, v.into());
            }
            r.replay = replay;
            r
        })
}

proptest! {
    // Failures are kept in tests/decode_fuzz.proptest-regressions and replayed first.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
            "tests/decode_fuzz.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn random_json_never_panics(s in r#"\{("[a-z]{1,4}":(-?[0-9]{1,25}(\.[0-9]+)?|"[^"]{0,8}"|true|null|\[\]|\{\}),?){0,12}\}"#) {
        let _ = decode(s.as_bytes());
    }

    /// Any reading round-trips (finite values exactly; non-finite ones become point errors).
    #[test]
    fn readings_round_trip(r in reading()) {
        let back = decode(&encode(&r)).unwrap();
        prop_assert_eq!(back.device, r.device.clone());
        prop_assert_eq!(back.seq, r.seq);
        for (k, v) in &r.values {
            let f = v.as_f64().unwrap();
            if f.is_finite() {
                prop_assert_eq!(back.values[k].as_f64(), Some(f));
            } else {
                prop_assert!(back.errors.contains_key(k));
            }
        }
    }

    /// Flipping, cutting or inserting bytes of a valid payload never panics, and a rejection
    /// always says why.
    #[test]
    fn mutated_payloads_never_panic(r in reading(), at in any::<prop::sample::Index>(), byte in any::<u8>(), op in 0..3u8) {
        let mut bytes = encode(&r);
        let i = at.index(bytes.len());
        match op {
            0 => bytes[i] = byte,
            1 => bytes.truncate(i),
            _ => bytes.insert(i, byte),
        }
        if let Err(e) = decode(&bytes) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}

/// Found by `readings_round_trip`: without serde_json's `float_roundtrip`, this value came back
/// one unit in the last place off.
#[test]
fn floats_round_trip_exactly() {
    for f in [1.2700265465051237e206, 0.1, 2.2250738585072014e-308, 1.7976931348623157e308, 5e-324] {
        let r = Reading::new("g", "d", "boiler", 1, 1, 1).with_value("x", f);
        assert_eq!(decode(&encode(&r)).unwrap().values["x"].as_f64(), Some(f));
    }
}
