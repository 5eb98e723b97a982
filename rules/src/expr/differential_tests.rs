//! The compiled evaluator against the interpreter: every condition of the default pack and a set
//! of hand-written ones, over generated readings, give the same answer or the same error.

use std::collections::{BTreeMap, BTreeSet};

use telemetry::{Reading, Value};

use super::{Bindings, Condition, EvalError, Evaluator};

/// Hand-written conditions over the points `a`, `b` (numbers), `s` (text), `f` (bool), `u`, the
/// device attributes and window aggregates.
const HAND_WRITTEN: &[&str] = &[
    "a > 1",
    "a >= 1.5 && b < 3",
    "a == b || b != 2.0",
    "a + b > 2",
    "a - 1 < b * 2",
    "a / b > 1",
    "a % b == 0",
    "-a < 0 && -b <= 0.0",
    "!f",
    "f || a > 1",
    "a > 1 || f",
    "f && a > 1",
    "a > 1 && f",
    "missing > 1 || a > 1",
    "a > 1 || missing > 1",
    "missing > 1 && a > 1",
    "(missing > 1 || f) && (b > 0 || other)",
    "a",
    "a * 2.0",
    "f ? a > 1 : b > 1",
    "a > 1 ? 'x' : 'y'",
    "(a > 1 ? a : b) >= 2",
    "a in [1, 2, 3]",
    "s in ['on', 'off'] || a in [1.5, 2u]",
    "s == 'on' && s != 'off'",
    "s < 'p' || s >= 'a'",
    "s + 'x' == 'onx'",
    "a == null || null == null",
    "a > 1u && 2u == 2 && 3u < 3.5 && -1 < 0u",
    "u + 1u > 2u",
    "bit(a, 0) || bit(b, 63) || bit(a, 64) || bit(a, -1)",
    "bit(a, 2) && !bit(a, 0)",
    "device.id == 'd1' && device.kind == 'boiler' && device.gateway.size() > 0",
    "device.id == 'd1' && device.kind == 'boiler' && device.gateway == 'gw'",
    "a > device.rated",
    "has(device.rated) ? a > device.rated : a > 1",
    "has(device.id) && !has(device.nope)",
    "device.nope == 1 || f",
    "int == int || a > 1",
    "size(s) > 1",
    "avg > 1",
    "9223372036854775807 + a > 0",
    "a / 0 == 1 || f",
    "-(-9223372036854775807 - 1) > 0",
    "1.0 / 0.0 > a",
    "a < 0.0 / 0.0",
    "a == 0.0 / 0.0",
    "b % 2.0 == 1.0",
    "avg(a, '1m') > 1.2 && max(b, '5m') <= 4",
];

/// A tiny xorshift generator: the same readings every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

fn number(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0 => Value::Bool(rng.below(2) == 1),
        1 => Value::Text(rng.pick(&["on", "off", "x"]).to_string()),
        2 => Value::Int(rng.pick(&[i64::MAX, i64::MIN, -1, 0])),
        3 => Value::Float(rng.pick(&[f64::NAN, f64::INFINITY, -0.0, 1.25, 1.19])),
        4..=6 => Value::Int(rng.below(8) as i64 - 2),
        _ => Value::Float((rng.below(400) as f64) / 100.0 - 0.5),
    }
}

fn points(conditions: &[Condition]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut points: BTreeSet<String> = ["a", "b", "s", "f", "u", "device.id"].map(String::from).into();
    let mut aggregates = BTreeSet::from(["@avg(a,60000)".to_string(), "@max(b,300000)".to_string()]);
    for c in conditions {
        points.extend(c.variables().iter().filter(|v| *v != "device").cloned());
        aggregates.extend(c.aggregates().iter().map(|a| a.variable()));
    }
    (points, aggregates)
}

/// Every condition over `rounds` generated readings: returns how many answers came compiled.
fn agree(conditions: &[Condition], rounds: usize) -> usize {
    let evaluator = Evaluator::new();
    let (points, aggregates) = points(conditions);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut compiled = 0;
    for round in 0..rounds {
        let mut reading =
            Reading::new("gw", rng.pick(&["d1", "d2"]), rng.pick(&["boiler", "elevator"]), 1, 1, 0);
        for p in &points {
            // `device.id` as a point name is rare: it shadows the device's id.
            let absent = if p == "device.id" { 15 } else { 3 };
            if rng.below(16) >= absent {
                continue;
            }
            reading.values.insert(p.clone(), number(&mut rng));
        }
        for p in &points {
            if rng.below(4) != 0 && !p.starts_with("device") {
                let v = match p.as_str() {
                    "s" => Value::Text(rng.pick(&["on", "off", "p"]).to_string()),
                    "f" => Value::Bool(rng.below(2) == 1),
                    _ => number(&mut rng),
                };
                reading.values.insert(p.clone(), v);
            }
        }
        let mut attributes = BTreeMap::new();
        for (name, v) in
            [("rated", Value::Float(1.25)), ("rated_pressure_mpa", Value::Int(1)), ("id", Value::Int(7))]
        {
            match rng.below(4) {
                0 => {}
                1 => drop(attributes.insert(name.to_string(), number(&mut rng))),
                _ if name == "id" => {}
                _ => drop(attributes.insert(name.to_string(), v)),
            }
        }
        let mut bound: Vec<(&str, f64)> = Vec::new();
        for a in &aggregates {
            if rng.below(4) != 0 {
                bound.push((a.as_str(), number(&mut rng).as_f64().unwrap_or(1.0)));
            }
        }
        let with_device = rng.below(8) != 0;
        let attrs = (rng.below(8) != 0).then_some(&attributes);
        let bindings = Bindings::new(&reading, attrs, with_device, &bound);
        for c in conditions {
            let want = evaluator.interpret(c, &bindings);
            if let Some(got) = evaluator.eval_compiled(c, &bindings) {
                compiled += 1;
                assert_eq!(got, want, "`{}` round {round} over {reading:?} {attrs:?} {bound:?}", c.source);
            }
            assert_eq!(evaluator.eval(c, &bindings), want, "`{}` round {round}", c.source);
            assert_eq!(evaluator.check(c, &bindings), want.ok(), "`{}` round {round}", c.source);
        }
    }
    compiled
}

#[test]
fn the_default_pack_compiles_and_agrees_with_the_interpreter() {
    let pack = crate::default_pack().unwrap();
    let conditions: Vec<Condition> = (pack.rules.iter())
        .flat_map(|r| r.conditions())
        .flatten()
        .map(|c| Condition::parse(&c.source).unwrap())
        .collect();
    assert!(conditions.len() >= 8, "{}", conditions.len());
    for c in &conditions {
        assert!(c.is_compiled(), "`{}` is not compiled", c.source);
    }
    let compiled = agree(&conditions, 3_000);
    // Type mismatches in the generated values (text in a number point) are left to the interpreter.
    assert!(compiled > conditions.len() * 3_000 / 2, "only {compiled} answers were compiled");
}

#[test]
fn hand_written_conditions_agree_with_the_interpreter() {
    let conditions: Vec<Condition> = HAND_WRITTEN.iter().map(|s| Condition::parse(s).unwrap()).collect();
    let not_compiled: Vec<&str> =
        conditions.iter().filter(|c| !c.is_compiled()).map(|c| c.source.as_str()).collect();
    assert_eq!(
        not_compiled,
        [
            "device.id == 'd1' && device.kind == 'boiler' && device.gateway.size() > 0",
            "int == int || a > 1",
            "size(s) > 1"
        ]
    );
    assert!(agree(&conditions, 3_000) > 0);
}

#[test]
fn a_missing_point_gives_no_answer_unless_the_other_side_decides() {
    let e = Evaluator::new();
    let r = Reading::new("gw", "d1", "boiler", 1, 1, 0).with_value("a", 2).with_value("f", false);
    let b = Bindings::new(&r, None, false, &[]);
    let cases: [(&str, Option<bool>); 6] = [
        ("missing > 1 || a > 1", Some(true)),
        ("a > 1 || missing > 1", Some(true)),
        ("missing > 1 || a > 5", None),
        ("missing > 1 && a > 5", Some(false)),
        ("missing > 1 && a > 1", None),
        ("f || missing", None),
    ];
    for (src, want) in cases {
        let c = Condition::parse(src).unwrap();
        let got = e.eval_compiled(&c, &b).expect(src);
        assert_eq!(got.as_ref().ok().copied(), want, "{src}");
        if want.is_none() {
            let message = "Undeclared reference to 'missing'".to_string();
            assert_eq!(got, Err(EvalError::Execution(message)), "{src}");
        }
        assert_eq!(got, e.interpret(&c, &b), "{src}");
        assert_eq!(e.check(&c, &b), want, "{src}");
    }
}
