use super::*;

const PROFILE: &str = r#"
kind = "boiler"
[[point]]
name = "pressure_mpa"
table = "input"
address = 0
type = "f32"
[[point]]
name = "alarm_bits"
table = "input"
address = 2
type = "u16"
bits = { 0 = "over_pressure", 1 = "low_water" }
[[point]]
name = "fuel"
table = "input"
address = 3
type = "bitfield"
bits = "0..3"
"#;

const RULES: &str = r#"[[rule]]
id = "boiler.over_pressure"
kinds = ["boiler"]
when = "over_pressure || presure_mpa > 1.25 || avg(pressure_mpa, '1m') > device.rated"
severity = "critical"
summary = "{device.id} {pressure_mpa} {temp_c}"

[[rule]]
id = "boiler.bits"
kinds = ["boiler"]
type = "bits"
point = "alarm_bit"
bits = { 1 = "low_water" }
severity = "major"
summary = "{code_name}"

[[rule]]
id = "meter.x"
kinds = ["water_meter"]
when = "anything > 1"
severity = "info"
summary = "x"
"#;

#[test]
fn reports_unknown_points_with_positions_and_suggestions() {
    let mut profiles = Profiles::default();
    profiles.add("boiler.toml", PROFILE).unwrap();
    assert_eq!(profiles.by_kind["boiler"].len(), 5);
    let rules = RuleSet::parse("r.toml", RULES).unwrap();
    let texts = BTreeMap::from([("r.toml".to_string(), RULES.to_string())]);
    let found: Vec<String> = check(&rules, &texts, &profiles).iter().map(|d| d.to_string()).collect();
    assert_eq!(
        found,
        [
            "r.toml:4:26: rule `boiler.over_pressure`: `presure_mpa` is not a point of the boiler profiles (did you mean `pressure_mpa`?)",
            "r.toml:6:40: rule `boiler.over_pressure`: `temp_c` is not a point of the boiler profiles",
            "r.toml:12:10: rule `boiler.bits`: `alarm_bit` is not a point of the boiler profiles (did you mean `alarm_bits`?)",
        ]
    );
}

#[test]
fn a_profile_is_checked_as_the_gateway_checks_it() {
    let e = Profiles::default().add("p.toml", "point = []\n").unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].file.as_str(), e[0].line, e[0].message.as_str()), ("p.toml", 1, "missing field `kind`"));
    let two_problems = PROFILE
        .replace("name = \"fuel\"", "name = \"pressure_mpa\"")
        .replace("type = \"f32\"", "type = \"f33\"");
    let e = Profiles::default().add("p.toml", &two_problems).unwrap_err();
    assert!(e[0].message.contains("f33"), "{e:?}");
    assert!((e[0].line, e[0].column) > (1, 1), "a syntax error has its position: {e:?}");
    let e = Profiles::default()
        .add("p.toml", &PROFILE.replace("name = \"fuel\"", "name = \"pressure_mpa\""))
        .unwrap_err();
    assert_eq!(e[0].message, "point[2] `pressure_mpa`: name used twice", "{e:?}");
}

#[test]
fn the_pack_matches_the_shipped_profiles() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
    let profiles = Profiles::load_dir(&Path::new(root).join("profiles")).unwrap();
    let pack = crate::default_pack().unwrap();
    let texts = crate::DEFAULT_PACK.iter().map(|(f, t)| (f.to_string(), t.to_string())).collect();
    let problems = check(&pack, &texts, &profiles);
    assert!(problems.is_empty(), "{problems:#?}");
    let warnings = unknown_kinds(&pack, &texts, &profiles);
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(profiles, Profiles::built_in(), "the built-in profiles are the shipped ones");
}

#[test]
fn profiles_give_summaries_their_decimals() {
    let mut profiles = Profiles::default();
    let point = |name: &str, address: u16| {
        format!("[[point]]\nname = \"{name}\"\ntable = \"input\"\naddress = {address}\ntype = \"u16\"\n")
    };
    let boiler = format!(
        "kind = \"boiler\"\n{}unit = \"MPa\"\ndecimals = 3\n{}unit = \"°C\"\n{}",
        point("pressure_mpa", 0),
        point("water_temp_c", 1),
        point("ratio", 2)
    );
    profiles.add("boiler.toml", &boiler).unwrap();
    let rules = "[[rule]]\nid = \"b\"\nkinds = [\"boiler\"]\nwhen = \"pressure_mpa > 1.0\"\nseverity = \"critical\"\n\
                 summary = \"{pressure_mpa} MPa {water_temp_c} {ratio}\"\n";
    let mut set = RuleSet::parse("r.toml", rules).unwrap();
    profiles.apply_decimals(&mut set);
    let r = telemetry::Reading::new("gw", "b1", "boiler", 1, 1, 1)
        .with_value("pressure_mpa", 0.851007)
        .with_value("water_temp_c", 85.26)
        .with_value("ratio", 0.123456);
    // MPa alone would give 2; the profile says 3. °C gives 1 though the template names no unit.
    assert_eq!(set.rules[0].summary.render(&r, None), "0.851 MPa 85.3 0.123");
}

#[test]
fn a_kind_no_profile_has_is_a_warning_with_the_closest_kind() {
    let rules = "[[rule]]\nid = \"typo\"\nkinds = [\"boilr\"]\nwhen = \"pressure_mpa > 1\"\nseverity = \"info\"\nsummary = \"x\"\n\
                 [[rule]]\nid = \"vessel.due\"\nkinds = [\"pressure_vessel\"]\ntype = \"inspection\"\ncheck = \"periodic_inspection\"\n\
                 severity = \"major\"\nsummary = \"due\"\n\
                 [[rule]]\nid = \"any\"\nkinds = [\"*\", \"crane\"]\nwhen = \"x > 1\"\nseverity = \"info\"\nsummary = \"x\"\n";
    let set = RuleSet::parse("r.toml", rules).unwrap_or_else(|d| panic!("{d:?}"));
    let texts = BTreeMap::from([("r.toml".to_string(), rules.to_string())]);
    let profiles = Profiles::built_in();
    let found: Vec<String> = unknown_kinds(&set, &texts, &profiles).iter().map(|d| d.to_string()).collect();
    assert_eq!(
        found,
        [
            "r.toml:3:11: rule `typo`: no profile has kind `boilr`, so the rule never fires (did you mean `boiler`?)",
            "r.toml:16:16: rule `any`: no profile has kind `crane`, so the rule never fires",
        ],
        "inspection rules' kinds come from the registry"
    );
}

#[test]
fn the_built_in_profiles_catch_an_unknown_point() {
    let mut expected = Profiles::default();
    for (name, text) in telemetry::builtin_profiles::BUILT_IN {
        expected.add(name, text).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    }
    let profiles = Profiles::built_in();
    assert_eq!(profiles, expected);
    let rules = "[[rule]]\nid = \"b\"\nkinds = [\"boiler\"]\nwhen = \"presure_mpa > 1.25\"\nseverity = \"info\"\nsummary = \"x\"\n";
    let set = RuleSet::parse("r.toml", rules).unwrap();
    let texts = BTreeMap::from([("r.toml".to_string(), rules.to_string())]);
    let found: Vec<String> = check(&set, &texts, &profiles).iter().map(|d| d.to_string()).collect();
    assert_eq!(
        found,
        ["r.toml:4:9: rule `b`: `presure_mpa` is not a point of the boiler profiles (did you mean `pressure_mpa`?)"]
    );
}
