use super::*;
use crate::RuleSet;

const RECORDED: &str = include_str!("../../testdata/recorded.lp");

#[test]
fn parses_line_protocol_with_escapes_and_types() {
    let r = line_protocol(r#"elevator,device=dev\,1,gateway=gw\ 1 door_closed=t,floor=-3i,model="KONE \"3000\"",speed=1.5 1700000000123"#)
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.device.as_str(), r.gateway.as_str(), r.kind.as_str(), r.ts_ms),
        ("dev,1", "gw 1", "elevator", 1_700_000_000_123)
    );
    assert_eq!(r.values["door_closed"], Value::Bool(true));
    assert_eq!(r.values["floor"], Value::Int(-3));
    assert_eq!(r.values["model"], Value::Text("KONE \"3000\"".into()));
    assert_eq!(r.values["speed"], Value::Float(1.5));
    assert_eq!(line_protocol("alert,rule=x,device=d a=1i 5"), Ok(None));
    assert!(line_protocol("boiler,gateway=g p=1 5").unwrap_err().contains("device"));
    assert!(line_protocol("boiler,device=d p=x 5").unwrap_err().contains("not a value"));
    let (readings, bad) = parse("boiler,device=d p=1 5\nnonsense\n", Format::LineProtocol);
    assert_eq!((readings.len(), bad.len(), bad[0].line), (1, 1, 2));
}

#[test]
fn replays_a_recorded_file_and_reports_what_would_have_fired() {
    let (readings, bad) = parse(RECORDED, Format::LineProtocol);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(readings.len(), 7);
    let mut engine = Engine::new(crate::default_pack().unwrap());
    let report = run(&mut engine, readings, 1_000);
    let seen: Vec<(i64, &str, &str, AlertStatus)> = report
        .transitions
        .iter()
        .map(|m| (m.ts - 1_795_751_000_000, m.rule.as_str(), m.device.as_str(), m.status))
        .collect();
    assert_eq!(
        seen,
        [
            // `for = "5s"` in the pack; the elevator's reading at 1 s came late in the file.
            (6_000, "elevator.passenger_trapped", "elev-0001", AlertStatus::Firing),
            (7_000, "boiler.over_pressure", "boiler-0001", AlertStatus::Firing),
            (12_000, "boiler.over_pressure", "boiler-0001", AlertStatus::Resolved),
        ]
    );
    let rules: Vec<(&str, usize, i64, usize)> =
        report.rules.iter().map(|r| (r.rule.as_str(), r.fired, r.firing_ms, r.firing_at_end)).collect();
    assert_eq!(rules, [("boiler.over_pressure", 1, 5_000, 0), ("elevator.passenger_trapped", 1, 6_000, 1)]);
    assert_eq!(report.rules[1].devices.iter().collect::<Vec<_>>(), ["elev-0001"]);
}

#[test]
fn replays_json_lines_and_ticks_for_no_data() {
    let rules = RuleSet::parse(
        "r.toml",
        "[[rule]]\nid = \"nd\"\nkinds = [\"boiler\"]\ntype = \"no_data\"\nafter = \"5s\"\nseverity = \"major\"\nsummary = \"x\"\n",
    )
    .unwrap();
    let line = |ts: i64| {
        format!(
            r#"{{"v":1,"gw":"g","dev":"b1","kind":"boiler","sid":1,"seq":{ts},"ts":{ts},"values":{{"p":1.0}}}}"#
        )
    };
    let text = [line(1_000), line(2_000), line(21_000)].join("\n");
    let (readings, bad) = parse(&text, Format::JsonLines);
    assert!(bad.is_empty(), "{bad:?}");
    let report = run(&mut Engine::new(rules), readings, 1_000);
    let seen: Vec<(i64, AlertStatus)> = report.transitions.iter().map(|m| (m.ts, m.status)).collect();
    assert_eq!(seen, [(7_000, AlertStatus::Firing), (21_000, AlertStatus::Resolved)]);
    assert_eq!(report.rules[0].firing_ms, 14_000);
}
