use super::overdue::{standing, Standing};
use super::synthetic::{generate, Options, DONGGUAN_TOWNS};
use super::*;
use crate::date::Date;
use std::collections::BTreeMap;

const GOOD: &str = "\
device,kind,registration_code,name,town,address,commissioned,last_inspection,next_inspection,rated_pressure_mpa,dn_mm,model,public
boiler-0001,boiler,10004419002019000123,1号锅炉,东城街道,\"东城大道 88 号, A 栋\",2019-05-10,2025-06-01,2026-06-01,1.25,,007,
wm-0001,water_meter,,\"3栋 \"\"东\"\" 表\",南城街道,,2021-01-05,,,,20,LXS-20,
pile-0001,charging_pile,,1号桩,虎门镇,,2023-03-01,,,,,,true
";

fn parse(text: &str) -> (Registry, Vec<String>) {
    let (r, d) = Registry::parse("registry.csv", text);
    (r, d.iter().map(ToString::to_string).collect())
}

fn d(s: &str) -> Date {
    Date::parse(s).unwrap()
}

#[test]
fn parses_rows_with_chinese_quotes_and_typed_attributes() {
    let (r, errors) = parse(GOOD);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(r.len(), 3);
    let b = r.get("boiler-0001").unwrap();
    assert_eq!((b.kind.as_str(), b.name.as_str(), b.town.as_str()), ("boiler", "1号锅炉", "东城街道"));
    assert_eq!(b.address, "东城大道 88 号, A 栋");
    assert_eq!((b.commissioned, b.next_inspection), (Some(d("2019-05-10")), Some(d("2026-06-01"))));
    assert_eq!(b.line, 2);
    assert_eq!(b.get("rated_pressure_mpa"), Some(&Value::Float(1.25)));
    assert_eq!(b.get("model"), Some(&Value::Text("007".into())), "a leading zero keeps text");
    assert_eq!(b.get("dn_mm"), None, "an empty cell is no value");
    let attrs = b.attributes();
    assert_eq!(attrs["registration_code"], Value::Text("10004419002019000123".into()));
    assert_eq!(attrs["last_inspection"], Value::Text("2025-06-01".into()));
    assert!(!attrs.contains_key("device") && !attrs.contains_key("kind"));
    let w = r.get("wm-0001").unwrap();
    assert_eq!(w.name, "3栋 \"东\" 表");
    assert_eq!((w.get("dn_mm"), w.number("dn_mm")), (Some(&Value::Int(20)), Some(20.0)));
    assert_eq!(r.get("pile-0001").unwrap().get("public"), Some(&Value::Bool(true)));
    assert_eq!(cell_value("-0.5"), Value::Float(-0.5));
    assert_eq!(cell_value("1.2.3"), Value::Text("1.2.3".into()));
}

#[test]
fn bad_rows_are_reported_with_line_and_column_and_the_rest_loads() {
    let text = format!(
        "{GOOD}\
boiler-0002,boiler,,2号锅炉,东城街道,,2019-13-01,,,1.25,,,
boiler-0003,boiler,,\"两行
名字\",东城街道,,2019-05-10,,,high,,,
boiler-0004,boiler,,4号锅炉
boiler 5,Boiler,,,,,,,,,,,
boiler-0001,boiler,,重复,,,,,,,,,
wm-0002,water_meter,,,,,2020-02-30,2021-01-01,,,,,
wm-0003,water_meter,,,,,,,,,4\"0,,
wm-0004,water_meter,,,,,2021-01-05,,,,25,,
"
    );
    let (r, errors) = parse(&text);
    assert_eq!(
        errors,
        [
            "registry.csv:5:32: commissioned: `2019-13-01` is not a date (YYYY-MM-DD)",
            "registry.csv:7:24: rated_pressure_mpa: `high` is not a number",
            "registry.csv:8:1: 4 fields, but the header has 13 columns",
            "registry.csv:9:1: device: `boiler 5` must not contain `/`, `+`, `#`, `,`, `=`, quotes, backslashes or white space",
            "registry.csv:9:10: kind: `Boiler` is not a kind name (lowercase letters, digits, `_`)",
            "registry.csv:10:1: device: `boiler-0001` is already on line 2",
            "registry.csv:11:25: commissioned: `2020-02-30` is not a date (YYYY-MM-DD)",
            "registry.csv:12:30: a quote inside an unquoted field (quote the whole field and write `\"\"` for the quote)",
        ]
    );
    let loaded: Vec<&str> = r.units().iter().map(|u| u.device.as_str()).collect();
    assert_eq!(loaded, ["boiler-0001", "wm-0001", "pile-0001", "wm-0004"]);
    assert_eq!(r.get("wm-0004").unwrap().line, 13);
}

#[test]
fn header_problems() {
    let (r, errors) = parse("device,name\nb1,x\n");
    assert_eq!(errors, ["registry.csv:1:1: the header has no `kind` column"]);
    assert!(r.is_empty());
    let (_, errors) = parse("");
    assert_eq!(errors, ["registry.csv:1:1: no header: the first line names the columns (device,kind,…)"]);
    let (r, errors) = parse("device,kind,额定压力,town,town\nb1,boiler,1.25,东城街道,南城街道\n");
    assert_eq!(
        errors,
        [
            "registry.csv:1:13: column name `额定压力` must be letters, digits and `_` (it is `device.额定压力` in rules)",
            "registry.csv:1:23: column `town` is already column 4",
        ]
    );
    let b = r.get("b1").unwrap();
    assert_eq!((b.town.as_str(), b.extra.len()), ("东城街道", 0), "the bad columns are not read");
    let (_, errors) = parse("device,kind,install_inspection\nb1,elevator,2010/03/15\n");
    assert_eq!(errors, ["registry.csv:2:13: install_inspection: `2010/03/15` is not a date (YYYY-MM-DD)"]);
}

#[test]
fn writes_csv_that_reads_back_the_same_and_applies_updates() {
    let (r, _) = parse(GOOD);
    let (again, errors) = parse(&r.to_csv());
    assert!(errors.is_empty(), "{errors:?}");
    let strip = |u: &Unit| {
        let mut u = Unit { line: 0, ..u.clone() };
        u.extra.sort_by(|a, b| a.0.cmp(&b.0));
        u
    };
    assert_eq!(
        again.units().iter().map(strip).collect::<Vec<_>>(),
        r.units().iter().map(strip).collect::<Vec<_>>()
    );
    assert!(r.to_csv().starts_with(
        "device,kind,registration_code,name,town,address,commissioned,last_inspection,next_inspection,rated_pressure_mpa,model,dn_mm,public\n"
    ));
    let (update, _) = parse("device,kind,last_inspection,next_inspection\nboiler-0001,boiler,2026-05-20,2027-05-20\nb9,boiler,,\n");
    let merged = r.updated(&update);
    assert_eq!(merged.len(), 4);
    let b = merged.get("boiler-0001").unwrap();
    assert_eq!((b.next_inspection, b.name.as_str()), (Some(d("2027-05-20")), ""), "a row replaces the row");
    assert_eq!(merged.units()[3].device, "b9");
}

const RATE: &str = "\
device,kind,town,commissioned,last_inspection,next_inspection,crane_type,dn_mm,public
e1,elevator,东城街道,2015-01-10,2025-01-05,2026-01-10,,,
e2,elevator,东城街道,2015-01-10,2025-01-05,2026-12-10,,,
e3,elevator,南城街道,,,,,,
c1,lifting_machinery,南城街道,2020-01-01,2024-06-01,,bridge,,
c2,lifting_machinery,南城街道,2020-01-01,2024-06-01,,tower,,
w1,water_meter,,2019-01-01,,,,20,
p1,charging_pile,东城街道,2023-01-01,,,,,false
g1,gateway,东城街道,,,,,,
";

#[test]
fn the_overdue_rate_by_town_and_kind() {
    let (r, errors) = parse(RATE);
    assert!(errors.is_empty(), "{errors:?}");
    let today = d("2026-02-01");
    let report = r.overdue_rate(today);
    let t = |registered, overdue, unscheduled| Tally { registered, overdue, unscheduled };
    assert_eq!(report.total, t(6, 3, 1), "private piles and gateways are not subject");
    assert_eq!(report.by_kind["elevator"], t(3, 1, 1));
    assert_eq!(report.by_kind["lifting_machinery"], t(2, 1, 0));
    assert_eq!(report.by_town["南城街道"], t(3, 1, 1));
    assert_eq!(report.by_town["unknown"], t(1, 1, 0));
    assert_eq!(report.by_town_kind[&("东城街道".to_string(), "elevator".to_string())], t(2, 1, 0));
    assert!((report.total.rate() - 0.5).abs() < 1e-12);
    let overdue: Vec<(&str, String)> =
        r.overdue_units(today).into_iter().map(|(u, due)| (u.device.as_str(), due.to_string())).collect();
    assert_eq!(
        overdue,
        [("e1", "2026-01-10".into()), ("c2", "2025-06-01".into()), ("w1", "2025-01-01".into())]
    );
    assert_eq!(standing(r.get("e2").unwrap(), today), Standing::InOrder(d("2026-12-10")));
    let lines = report.to_line_protocol(1_769_875_200_000);
    assert!(lines.contains("inspection,town=东城街道,kind=elevator registered=2i,overdue=1i,unscheduled=0i,rate=0.5 1769875200000\n"), "{lines}");
    assert!(
        lines.ends_with(
            "inspection,town=all,kind=all registered=6i,overdue=3i,unscheduled=1i,rate=0.5 1769875200000\n"
        ),
        "{lines}"
    );
    assert_eq!(lines.lines().count(), 4 + 3 + 3 + 1);
    let mut odd = report.clone();
    odd.by_town_kind.clear();
    odd.by_kind.clear();
    odd.by_town = BTreeMap::from([("a b,c=d".to_string(), t(1, 0, 0))]);
    assert!(odd.to_line_protocol(0).starts_with(
        "inspection,town=a\\ b\\,c\\=d,kind=all registered=1i,overdue=0i,unscheduled=0i,rate=0.0 0\n"
    ));
    let text = report.render();
    assert!(
        text.starts_with("overdue rate on 2026-02-01: 3 of 6 units overdue = 50.00 % (1 unscheduled)\n"),
        "{text}"
    );
    assert!(text.contains("         2        1  50.00 %           0  lifting_machinery\n"), "{text}");
}

/// Dongguan's figures (DOMAIN.md §8): 222,200 units, 89 overdue, 0.04 %; through CSV and back.
#[test]
fn the_synthetic_city_has_89_overdue_of_222200() {
    let options = Options::default();
    let r = generate(&options);
    assert_eq!(r.len(), 222_200);
    let report = r.overdue_rate(options.today);
    assert_eq!((report.total.registered, report.total.overdue, report.total.unscheduled), (222_200, 89, 0));
    assert_eq!(format!("{:.2}", report.total.rate() * 100.0), "0.04");
    assert_eq!(report.by_town.len(), 33);
    for (town, _) in DONGGUAN_TOWNS {
        assert!(report.by_town[town].registered > 2_000, "{town}");
    }
    let kinds: Vec<(&str, u64)> = report.by_kind.iter().map(|(k, t)| (k.as_str(), t.registered)).collect();
    assert_eq!(
        kinds,
        [
            ("boiler", 3_697),
            ("elevator", 122_952),
            ("lifting_machinery", 33_794),
            ("pressure_vessel", 61_757)
        ]
    );
    for unit in r.units() {
        let code = &unit.registration_code;
        assert!(code.len() == 20 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        let first = match unit.kind.as_str() {
            "boiler" => '1',
            "pressure_vessel" => '2',
            "elevator" => '3',
            _ => '4',
        };
        assert!(code.starts_with(first) && code[4..10] == *"441900", "{code} {}", unit.kind);
        assert_eq!(code[10..14].parse::<i64>().ok(), unit.commissioned.map(|c| c.year()), "{code}");
    }
    let (again, errors) = Registry::parse("synthetic.csv", &r.to_csv());
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(3)]);
    assert_eq!(again.overdue_rate(options.today), report);
}

#[test]
fn the_synthetic_registry_is_deterministic_and_exact_at_any_size() {
    let options = Options { units: 2_000, overdue: 37, seed: 7, ..Options::default() };
    let a = generate(&options).to_csv();
    assert_eq!(a, generate(&options).to_csv());
    assert_ne!(a, generate(&Options { seed: 8, ..options.clone() }).to_csv());
    let (r, errors) = Registry::parse("s.csv", &a);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(r.overdue_rate(options.today).total.overdue, 37);
    let none = generate(&Options { units: 500, overdue: 0, ..Options::default() });
    assert_eq!(none.overdue_rate(Options::default().today).total.overdue, 0);
}
