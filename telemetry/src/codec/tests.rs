use super::*;

fn sample() -> Reading {
    Reading::new("gw-dg-0001", "elev-000123", "elevator", 1795751002152, 4711, 1795751002152)
        .with_value("speed", 1.52)
        .with_value("floor", 7)
        .with_value("door_closed", true)
        .with_value("fault_code", 0)
        .with_value("model", "KONE-3000")
        .with_error("load_kg", "exception 2: illegal data address")
}

#[test]
fn round_trips_every_value_type() {
    let r = sample();
    assert_eq!(decode(&encode(&r)), Ok(r.clone()));
    let mut replayed = r;
    replayed.replay = true;
    replayed.errors.clear();
    assert_eq!(decode(&encode(&replayed)), Ok(replayed));
}

#[test]
fn decodes_the_design_example() {
    let json = br#"{"v":1,"gw":"gw-dg-0001","dev":"elev-000123","kind":"elevator",
 "sid":1795751002152,"seq":4711,"ts":1795751002152,
 "values":{"speed":1.52,"floor":7,"door_closed":true,"fault_code":0},
 "errors":{"load_kg":"exception 2: illegal data address"},
 "replay":false, "unknown_field": [1,2]}"#;
    let r = decode(json).unwrap();
    assert_eq!(r.values["floor"], Value::Int(7));
    assert_eq!(r.values["speed"], Value::Float(1.52));
    assert_eq!(r.values["door_closed"], Value::Bool(true));
    assert_eq!(r.errors["load_kg"], "exception 2: illegal data address");
    assert_eq!((r.session, r.seq, r.ts_ms), (1795751002152, 4711, 1795751002152));
}

#[test]
fn floats_that_look_whole_stay_floats() {
    let r = Reading::new("g", "d", "boiler", 1, 1, 1).with_value("p", 2.0);
    assert_eq!(decode(&encode(&r)).unwrap().values["p"], Value::Float(2.0));
}

#[test]
fn non_finite_values_travel_as_point_errors() {
    let r = Reading::new("g", "d", "boiler", 1, 1, 1).with_value("p", f64::NAN).with_value("q", 1.0);
    let back = decode(&encode(&r)).unwrap();
    assert!(!back.values.contains_key("p"));
    assert_eq!(back.errors["p"], "not a finite number");
    assert_eq!(back.values["q"], Value::Float(1.0));
}

fn with(field: &str, value: &str) -> Vec<u8> {
    let mut obj: serde_json::Map<String, Json> = serde_json::from_slice(&encode(&sample())).unwrap();
    if value == "<absent>" {
        obj.remove(field);
    } else {
        obj.insert(field.into(), serde_json::from_str(value).unwrap());
    }
    serde_json::to_vec(&obj).unwrap()
}

#[test]
fn every_rejection_names_the_field_and_the_reason() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("v", "2", "v", "version 2 is not supported"),
        ("v", "\"1\"", "v", "version \"1\" is not supported"),
        ("v", "<absent>", "v", "missing"),
        ("gw", "<absent>", "gw", "missing"),
        ("gw", "5", "gw", "expected a string, found a number"),
        ("gw", "\"\"", "gw", "must not be empty"),
        ("gw", "\"gw/1\"", "gw", "must not contain"),
        ("dev", "\"a+b\"", "dev", "must not contain"),
        ("dev", "\"a b\"", "dev", "must not contain"),
        ("dev", &format!("\"{}\"", "x".repeat(129)), "dev", "at most 128 bytes"),
        ("kind", &format!("\"{}\"", "k".repeat(65)), "kind", "65 bytes is too long (at most 64 bytes)"),
        (
            "values",
            &format!("{{\"{}\":1}}", "p".repeat(129)),
            &format!("values.{}", "p".repeat(129)),
            "129 bytes is too long",
        ),
        ("kind", "\"Elevator\"", "kind", "lower-case"),
        ("kind", "null", "kind", "expected a string, found null"),
        ("sid", "-1", "sid", "found a negative number"),
        ("seq", "1.5", "seq", "found a fractional number"),
        ("seq", "\"4711\"", "seq", "found a string"),
        ("ts", "0", "ts", "above 0"),
        ("ts", "<absent>", "ts", "missing"),
        ("values", "[]", "values", "expected an object, found an array"),
        ("values", "{\"a\":null}", "values.a", "found null"),
        ("values", "{\"a\":[1]}", "values.a", "found an array"),
        ("values", "{\"1a\":1}", "values.1a", "point name"),
        ("values", "{\"a-b\":1}", "values.a-b", "point name"),
        ("errors", "[]", "errors", "expected an object"),
        ("errors", "{\"a\":1}", "errors.a", "expected a string"),
        ("replay", "\"yes\"", "replay", "expected a boolean"),
    ];
    for (field, value, named, reason) in cases {
        let err = decode(&with(field, value)).unwrap_err();
        let text = err.to_string();
        if !named.is_empty() {
            assert_eq!(err.field(), Some(*named), "{field}={value}: {text}");
            assert!(text.contains(&format!("`{named}`")), "{field}={value}: {text}");
        }
        assert!(text.contains(reason), "{field}={value}: `{text}` lacks `{reason}`");
    }
}

#[test]
fn rejects_what_is_not_a_json_object() {
    assert!(matches!(decode(b"not json"), Err(PayloadError::NotJson(_))));
    assert!(matches!(decode(b""), Err(PayloadError::NotJson(_))));
    assert!(matches!(decode(b"\xff\xfe"), Err(PayloadError::NotJson(_))));
    assert!(matches!(decode(br#"{"v":1,"values":{"a":1e400}}"#), Err(PayloadError::NotJson(_))));
    assert_eq!(decode(b"[1,2]"), Err(PayloadError::NotObject));
    assert_eq!(decode(b"42"), Err(PayloadError::NotObject));
}

#[test]
fn optional_fields_default() {
    let r = decode(&with("errors", "<absent>")).unwrap();
    assert!(r.errors.is_empty());
    let r = decode(&with("replay", "<absent>")).unwrap();
    assert!(!r.replay);
}

#[test]
fn parts_encode_to_the_bytes_of_the_reading() {
    let mut r = sample().with_value("nan", f64::NAN);
    r.replay = true;
    let values: Vec<(String, Value)> = r.values.clone().into_iter().collect();
    let parts = Parts {
        gateway: &r.gateway,
        device: &r.device,
        kind: &r.kind,
        session: r.session,
        seq: r.seq,
        ts_ms: r.ts_ms,
        values: values.iter().map(|(k, v)| (k.as_str(), v)),
        errors: &r.errors,
        replay: r.replay,
    };
    let mut out = b"kept".to_vec();
    encode_parts(&parts, &mut out);
    assert_eq!(&out[..4], b"kept", "appended, not overwritten");
    assert_eq!(out[4..], encode(&r)[..]);
}
