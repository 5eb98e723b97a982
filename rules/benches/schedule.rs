//! Inspection schedules over a city: the synthetic registry of Dongguan (222,200 units,
//! DOMAIN.md §8), every unit's due dates and status, the overdue rate, and the engine's daily
//! pass of the default pack's inspection rules. Target: under one second for the whole city.
//!
//! cargo bench -p rules --bench schedule

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rules::date::CHINA_UTC_OFFSET_MS;
use rules::inspection::{self, Check, Schedule};
use rules::registry::synthetic::{generate, Options};
use rules::Engine;

fn bench(c: &mut Criterion) {
    let options = Options::default();
    let today = options.today;
    let registry = Arc::new(generate(&options));
    let units = registry.len() as u64;
    let mut group = c.benchmark_group("schedule");
    group.throughput(Throughput::Elements(units));
    group.sample_size(10);

    // Every unit's statutory checks and (elevators) self-test: due date and status with the
    // default leads and escalation, then the overdue rate by town and kind.
    group.bench_function("statuses_and_overdue_rate", |b| {
        b.iter(|| {
            let mut overdue = 0u64;
            for unit in registry.units() {
                let checks = inspection::statutory(&unit.kind);
                let self_test = (unit.kind == "elevator").then_some(Check::SelfTest);
                for check in checks.iter().copied().chain(self_test) {
                    if let Schedule::Due(d) = inspection::due_of(check, unit) {
                        let status = inspection::status(d.due, today, &[60, 30, 7], Some(30));
                        overdue += u64::from(status.is_overdue());
                    }
                }
            }
            let report = registry.overdue_rate(today);
            assert_eq!(report.total.overdue, 89);
            (overdue, report)
        })
    });

    group.bench_function("overdue_rate", |b| b.iter(|| registry.overdue_rate(today)));

    let now = today.start_ms(CHINA_UTC_OFFSET_MS) + 9 * 3_600_000;
    let engine = || {
        let mut e = Engine::new(rules::default_pack().expect("default pack"));
        e.set_registry(Arc::clone(&registry));
        e
    };
    // The first tick after a registry load: every unit, and an alert for each one due soon.
    group.bench_function("engine_first_tick", |b| {
        b.iter_batched(engine, |mut e| e.tick(now).len(), BatchSize::LargeInput)
    });
    // The daily pass after that: every unit again, only the changes come out. One engine,
    // a day later at each iteration.
    let mut e = engine();
    let mut day = 0;
    e.tick(now);
    group.bench_function("engine_next_day", |b| {
        b.iter(|| {
            day += 1;
            e.tick(now + day * 86_400_000).len()
        })
    });
    group.finish();

    let mut e = engine();
    let first = e.tick(now);
    let next = e.tick(now + 86_400_000).len();
    let mut by_rule: std::collections::BTreeMap<(&str, &str), usize> = Default::default();
    for m in &first {
        *by_rule.entry((m.rule.as_str(), m.severity.as_str())).or_default() += 1;
    }
    eprintln!(
        "default pack on the synthetic city: {} alerts at the first tick, {next} messages the next day",
        first.len()
    );
    for ((rule, severity), n) in by_rule {
        eprintln!("  {n:>6}  {rule} [{severity}]");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
