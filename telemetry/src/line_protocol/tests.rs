use proptest::prelude::*;

use super::*;

fn encode(measurement: &str, tags: &[(&str, &str)], fields: &[(&str, FieldValue<'_>)], ts: i64) -> String {
    let mut out = String::new();
    let mut line = line(&mut out, measurement);
    for (k, v) in tags {
        line = line.tag(k, v);
    }
    let mut fields = fields.iter();
    let Some((k, v)) = fields.next() else {
        drop(line);
        return out;
    };
    let mut line = line.field(k, v.clone());
    for (k, v) in fields {
        line = line.field(k, v.clone());
    }
    line.end(ts);
    out
}

#[test]
fn escapes_each_part_as_the_reference_says() {
    let out = encode(
        "a b,c=d",
        &[("t k", "v,1=2")],
        &[
            ("f=1", FieldValue::Float(1.0)),
            ("i", FieldValue::Int(-3)),
            ("u", FieldValue::UInt(7)),
            ("b", FieldValue::Bool(true)),
            ("s", "say \"hi\" C:\\".into()),
        ],
        1_700_000_000_123,
    );
    assert_eq!(
        out,
        "a\\ b\\,c=d,t\\ k=v\\,1\\=2 f\\=1=1.0,i=-3i,u=7u,b=t,s=\"say \\\"hi\\\" C:\\\\\" 1700000000123\n"
    );
}

#[test]
fn newlines_become_spaces_in_names_and_strings() {
    let out = encode("m", &[("town", "a\nb\r")], &[("s", "x\ny".into())], 1);
    assert_eq!(out, "m,town=a\\ b\\  s=\"x y\" 1\n");
}

#[test]
fn a_backslash_that_would_read_as_an_escape_becomes_a_slash() {
    let out = encode("m\\", &[("k", "a\\"), ("k2", "a\\,b\\c")], &[("f", FieldValue::Int(1))], 1);
    assert_eq!(out, "m/,k=a/,k2=a/\\,b\\c f=1i 1\n");
    let parsed = parse_line(out.trim_end()).unwrap();
    assert_eq!(parsed.tags[1].1, "a/,b\\c");
}

#[test]
fn leaves_out_empty_tags_empty_keys_and_non_finite_floats() {
    let out = encode(
        "m",
        &[("empty", ""), ("", "v"), ("k", "v")],
        &[("nan", FieldValue::Float(f64::NAN)), ("", FieldValue::Int(1)), ("x", FieldValue::Float(1e300))],
        5,
    );
    assert_eq!(out, "m,k=v x=1e300 5\n");
}

#[test]
fn a_line_without_fields_is_taken_back() {
    let mut out = String::from("before\n");
    let written = line(&mut out, "m").tag("k", "v").field("nan", FieldValue::Float(f64::INFINITY)).end(1);
    assert!(!written);
    assert_eq!(out, "before\n");
    assert!(!line(&mut out, "").field("x", FieldValue::Int(1)).end(1));
    assert_eq!(out, "before\n");
    drop(line(&mut out, "m").tag("k", "v"));
    drop(line(&mut out, "m").field("x", FieldValue::Int(1)));
    assert_eq!(out, "before\n");
}

#[test]
fn parse_errors_name_the_part() {
    assert_eq!(parse_line("m,k v=1 1").unwrap_err().0, "tag `k` has no `=`");
    assert_eq!(parse_line("m v 1").unwrap_err().0, "field `v` has no `=`");
    assert_eq!(parse_line("m v=x 1").unwrap_err().0, "`x` is not a value");
    assert_eq!(parse_line("m v=1 x").unwrap_err().0, "timestamp `x` is not an integer");
    assert_eq!(parse_line("m v=\"open 1").unwrap_err().0, "field `v`: string has no closing `\"`");
    assert_eq!(parse_line(",k=v v=1").unwrap_err().0, "no measurement");
    assert_eq!(parse_line("m v=1").unwrap().timestamp, None);
}

/// What the encoder promises to write for a name: newlines as spaces, a backslash that would
/// read as an escape as `/`.
fn written_name(s: &str, escapes: impl Fn(char) -> bool) -> String {
    let chars: Vec<char> = s.chars().map(without_newline).collect();
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| if c == '\\' && chars.get(i + 1).is_none_or(|&n| escapes(n)) { '/' } else { c })
        .collect()
}

fn name() -> impl Strategy<Value = String> {
    "[a-z \\\\,=\"\n\r东]{0,6}"
}

fn field_value() -> impl Strategy<Value = FieldValue<'static>> {
    prop_oneof![
        any::<f64>().prop_map(FieldValue::Float),
        any::<i64>().prop_map(FieldValue::Int),
        any::<u64>().prop_map(FieldValue::UInt),
        any::<bool>().prop_map(FieldValue::Bool),
        "[a-z \\\\,=\"\n\r东]{0,8}".prop_map(|s| FieldValue::Str(Cow::Owned(s))),
    ]
}

proptest! {
    #[test]
    fn what_is_encoded_parses_back_to_the_same_values(
        measurement in name(),
        tags in prop::collection::vec((name(), name()), 0..4),
        fields in prop::collection::vec((name(), field_value()), 1..5),
        ts in any::<i64>(),
    ) {
        let tag_refs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let field_refs: Vec<(&str, FieldValue<'_>)> = fields.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let out = encode(&measurement, &tag_refs, &field_refs, ts);

        let key = |s: &str| written_name(s, |c| Name::Key.escapes(c));
        let expected_tags: Vec<(String, String)> =
            tags.iter().filter(|(k, v)| !k.is_empty() && !v.is_empty()).map(|(k, v)| (key(k), key(v))).collect();
        let expected_fields: Vec<(String, FieldValue<'static>)> = fields
            .iter()
            .filter(|(k, v)| !k.is_empty() && !matches!(v, FieldValue::Float(f) if !f.is_finite()))
            .map(|(k, v)| {
                let v = match v {
                    FieldValue::Str(s) => FieldValue::Str(Cow::Owned(s.chars().map(without_newline).collect())),
                    v => v.clone(),
                };
                (key(k), v)
            })
            .collect();
        if measurement.is_empty() || expected_fields.is_empty() {
            prop_assert_eq!(out, "");
            return Ok(());
        }
        prop_assert_eq!(out.matches('\n').count(), 1);
        prop_assert!(out.ends_with('\n'));
        let parsed = parse_line(&out[..out.len() - 1]).map_err(|e| TestCaseError::fail(format!("{out:?}: {e}")))?;
        prop_assert_eq!(parsed.measurement, written_name(&measurement, |c| Name::Measurement.escapes(c)));
        prop_assert_eq!(parsed.tags, expected_tags);
        prop_assert_eq!(parsed.fields, expected_fields);
        prop_assert_eq!(parsed.timestamp, Some(ts));
    }
}
