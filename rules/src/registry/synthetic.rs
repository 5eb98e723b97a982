//! A synthetic registry the size of Dongguan's special equipment, for demos, tests and
//! benchmarks: [`generate`] is deterministic for its [`Options`] (seed included).
//!
//! The defaults reproduce the figures of Dongguan's market-supervision bureau for 2023
//! (DOMAIN.md §8): 222,200 units, 89 of them overdue on the given day, an overdue rate of
//! 0.04 %. Units are spread over the city's 33 town-level units with more in the large towns,
//! and the kind mix follows the national register at the end of 2023 (DOMAIN.md §1.7:
//! elevators 1,062.98万, pressure vessels 533.92万, lifting machinery 292.17万, boilers
//! 31.96万). Registration codes have 20 digits, as DESIGN.md's example
//! `10004419002019000123`: a 4-digit category code whose first digit is the category
//! (boilers 1, pressure vessels 2, elevators 3, lifting machinery 4; DOMAIN.md §8, medium confidence), the
//! division code 441900 (Dongguan), the year of registration and a 6-digit serial.
//! Every unit that is not chosen to be overdue is in date: its last inspection follows its
//! kind's schedule, and about half the rows carry the certificate's due date as well.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use telemetry::Value;

use super::overdue::{standing, Standing};
use super::{Registry, Unit};
use crate::date::Date;
use crate::inspection::{self, elevator_inspection_year};

/// Dongguan's 33 town-level units (DOMAIN.md §8) with a weight for how much equipment each
/// holds: 3 for the large manufacturing towns and the central districts, 2 for the middle, 1
/// for the small (an assumption for demo data).
pub const DONGGUAN_TOWNS: [(&str, u32); 33] = [
    ("莞城街道", 2),
    ("南城街道", 3),
    ("东城街道", 3),
    ("万江街道", 2),
    ("松山湖", 2),
    ("石碣镇", 2),
    ("石龙镇", 1),
    ("茶山镇", 1),
    ("石排镇", 1),
    ("企石镇", 1),
    ("横沥镇", 1),
    ("桥头镇", 1),
    ("谢岗镇", 1),
    ("东坑镇", 1),
    ("常平镇", 3),
    ("寮步镇", 2),
    ("樟木头镇", 2),
    ("大朗镇", 2),
    ("黄江镇", 2),
    ("清溪镇", 2),
    ("塘厦镇", 3),
    ("凤岗镇", 3),
    ("大岭山镇", 2),
    ("长安镇", 3),
    ("虎门镇", 3),
    ("厚街镇", 3),
    ("沙田镇", 1),
    ("道滘镇", 1),
    ("洪梅镇", 1),
    ("麻涌镇", 1),
    ("望牛墩镇", 1),
    ("中堂镇", 1),
    ("高埗镇", 1),
];

/// What to generate.
#[derive(Clone, Debug)]
pub struct Options {
    pub units: usize,
    /// Units overdue on `today`, exactly.
    pub overdue: usize,
    pub today: Date,
    pub seed: u64,
}

impl Default for Options {
    /// Dongguan 2023 (DOMAIN.md §8): 222,200 units, 89 overdue, on 2026-11-27.
    fn default() -> Self {
        Options {
            units: 222_200,
            overdue: 89,
            today: Date::from_ymd(2026, 11, 27).expect("a date"),
            seed: 2023,
        }
    }
}

/// SplitMix64: small, fast and good enough for demo data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as u64) as i64
    }

    /// An index picked by weight.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut pick = self.below(u64::from(total)) as u32;
        for (i, &w) in weights.iter().enumerate() {
            if pick < w {
                return i;
            }
            pick -= w;
        }
        weights.len() - 1
    }
}

/// A kind: its name, device prefix, category code, unit name, national count (万) and the
/// longest interval between two periodic inspections, in days.
struct KindSpec {
    kind: &'static str,
    prefix: &'static str,
    category: &'static str,
    noun: &'static str,
    national: f64,
    max_interval_days: i64,
}

const KINDS: [KindSpec; 4] = [
    KindSpec {
        kind: "elevator",
        prefix: "elev",
        category: "3110",
        noun: "号电梯",
        national: 1062.98,
        max_interval_days: 365,
    },
    KindSpec {
        kind: "pressure_vessel",
        prefix: "vessel",
        category: "2100",
        noun: "号压力容器",
        national: 533.92,
        max_interval_days: 3 * 365,
    },
    KindSpec {
        kind: "lifting_machinery",
        prefix: "crane",
        category: "4000",
        noun: "号起重机",
        national: 292.17,
        max_interval_days: 365,
    },
    KindSpec {
        kind: "boiler",
        prefix: "boiler",
        category: "1000",
        noun: "号锅炉",
        national: 31.96,
        max_interval_days: 365,
    },
];

const CRANE_TYPES: [(&str, u32); 9] = [
    ("bridge", 40),
    ("gantry", 15),
    ("tower", 10),
    ("hoist", 10),
    ("parking", 10),
    ("mobile", 5),
    ("jib", 5),
    ("portal", 3),
    ("molten_metal", 2),
];

const ROADS: [&str; 8] =
    ["东城大道", "莞太路", "松山湖大道", "环城路", "莞樟路", "建设路", "人民路", "新城路"];

/// How many of `units` are of each kind, by national shares; elevators take the rounding.
fn kind_counts(units: usize) -> [usize; 4] {
    let total: f64 = KINDS.iter().map(|k| k.national).sum();
    let mut counts = [0; 4];
    for (i, k) in KINDS.iter().enumerate().skip(1) {
        counts[i] = (units as f64 * k.national / total).round() as usize;
    }
    counts[0] = units - counts[1..].iter().sum::<usize>().min(units);
    counts
}

/// The last inspection of an elevator in date: its latest inspection-year anniversary, passed
/// a few weeks early or late (TSG T7001-2023 allows 2 months early).
fn elevator_last(rng: &mut Rng, base: Date, today: Date) -> Option<Date> {
    let years = today.year() - base.year() + 1;
    let anniversary = (1..=years)
        .rev()
        .filter(|&k| elevator_inspection_year(k))
        .map(|k| base.add_years(k))
        .find(|&a| a <= today)?;
    Some(anniversary.add_days(rng.range(-50, 20)).min(today).max(base))
}

/// Dates for a unit in date on `today`.
fn in_date(rng: &mut Rng, unit: &mut Unit, spec: &KindSpec, today: Date) {
    let commissioned = unit.commissioned.expect("set before");
    unit.last_inspection = if spec.kind == "elevator" {
        elevator_last(rng, commissioned, today)
    } else {
        let last = today.add_days(-rng.range(0, spec.max_interval_days - 30));
        (last > commissioned).then_some(last)
    };
    if spec.kind == "elevator" {
        // Self-tests done too (TSG T7008-2023): the latest self-test year since the last inspection.
        let years = today.year() - commissioned.year() + 1;
        let latest = (1..=years)
            .rev()
            .filter(|&k| k < 15 && !elevator_inspection_year(k))
            .map(|k| commissioned.add_years(k))
            .find(|&a| a <= today)
            .filter(|&a| unit.last_inspection.is_none_or(|l| a > l));
        if let Some(a) = latest {
            let tested = a.add_days(rng.range(-25, 10)).min(today);
            unit.set("last_self_test", Value::Text(tested.to_string()));
        }
    }
    if rng.below(2) == 0 {
        if let inspection::Schedule::Due(d) = inspection::due_of(inspection::statutory(spec.kind)[0], unit) {
            unit.next_inspection = Some(d.due);
        }
    }
    if !matches!(standing(unit, today), Standing::InOrder(_)) {
        // A schedule this sketch of dates does not meet: a certificate due well ahead.
        unit.next_inspection = Some(today.add_days(rng.range(90, 330)));
        unit.last_inspection = unit.last_inspection.map(|l| l.min(today));
    }
}

/// Dates for a unit overdue on `today`: the certificate's due date passed 1 to 365 days ago.
fn overdue(rng: &mut Rng, unit: &mut Unit, today: Date) {
    let due = today.add_days(-rng.range(1, 366));
    let last = due.add_years(-1);
    if unit.commissioned.is_some_and(|c| c >= last) {
        unit.commissioned = Some(last.add_days(-rng.range(30, 3650)));
    }
    unit.last_inspection = Some(last);
    unit.next_inspection = Some(due);
}

/// A registry of `options.units` units, exactly `options.overdue` of them overdue on
/// `options.today`.
pub fn generate(options: &Options) -> Registry {
    let mut rng = Rng(options.seed);
    let today = options.today;
    let counts = kind_counts(options.units);
    let mut kinds: Vec<u8> = (0..4u8).flat_map(|k| std::iter::repeat_n(k, counts[k as usize])).collect();
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut late: HashSet<usize> = HashSet::new();
    while late.len() < options.overdue.min(options.units) {
        late.insert(rng.below(options.units as u64) as usize);
    }
    let town_weights: Vec<u32> = DONGGUAN_TOWNS.iter().map(|(_, w)| *w).collect();
    let crane_weights: Vec<u32> = CRANE_TYPES.iter().map(|(_, w)| *w).collect();
    let (grade, crane_type, rated): (Arc<str>, Arc<str>, Arc<str>) =
        ("grade".into(), "crane_type".into(), "rated_pressure_mpa".into());
    let mut numbers = [0usize; 4];
    let mut serials: HashMap<(u8, i64), u32> = HashMap::new();
    let mut units = Vec::with_capacity(options.units);
    for (i, &k) in kinds.iter().enumerate() {
        let spec = &KINDS[k as usize];
        numbers[k as usize] += 1;
        let n = numbers[k as usize];
        let mut unit = Unit::new(&format!("{}-{n:06}", spec.prefix), spec.kind);
        let (town, _) = DONGGUAN_TOWNS[rng.weighted(&town_weights)];
        unit.town = town.to_string();
        unit.address =
            format!("{town}{}{}号", ROADS[rng.below(ROADS.len() as u64) as usize], rng.range(1, 400));
        unit.name = format!("{}{}", rng.range(1, 13), spec.noun);
        // Newer equipment is more common: ages from 2 months to 25 years, skewed young.
        let u = rng.below(1_000_000) as f64 / 1_000_000.0;
        let age_days = 60 + (u.powf(1.4) * 25.0 * 365.0) as i64;
        let commissioned = today.add_days(-age_days);
        unit.commissioned = Some(commissioned);
        match spec.kind {
            "pressure_vessel" => {
                unit.set(grade.clone(), Value::Int([1, 1, 2, 2, 2, 3, 3, 4][rng.below(8) as usize]));
                unit.set(rated.clone(), Value::Float([0.8, 1.0, 1.6, 2.5][rng.below(4) as usize]));
            }
            "lifting_machinery" => {
                let t = CRANE_TYPES[rng.weighted(&crane_weights)].0;
                unit.set(crane_type.clone(), Value::Text(t.to_string()));
            }
            "boiler" => unit.set(rated.clone(), Value::Float([0.7, 1.0, 1.25, 1.6][rng.below(4) as usize])),
            _ => {}
        }
        if late.contains(&i) {
            overdue(&mut rng, &mut unit, today);
        } else {
            in_date(&mut rng, &mut unit, spec, today);
        }
        let year = unit.commissioned.unwrap_or(commissioned).year();
        let serial = serials.entry((k, year)).or_default();
        *serial += 1;
        unit.registration_code = format!("{}441900{year:04}{serial:06}", spec.category);
        units.push(unit);
    }
    Registry::from_units(units)
}
