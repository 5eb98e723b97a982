//! Readings per second through ingest's pure core: decode → validate → dedup → rules (the
//! default pack) → line protocol, on realistic readings of all four simulated kinds.
//!
//! cargo bench -p ingest --bench pipeline

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gateway::sim::{SimPlan, Simulator, KIND_PROFILES};
use ingest::pipeline::{Outcome, Pipeline};
use telemetry::{Reading, Topics};

const DEVICES_PER_KIND: usize = 2_500;
const START: i64 = 1_795_000_000_000;

/// One poll of every simulated device at `ts`, as (topic, payload), faults included.
fn messages(sim: &Simulator, round: u64) -> Vec<(String, Vec<u8>)> {
    let topics = Topics::default();
    let ts = START + round as i64 * 1000;
    sim.devices()
        .map(|d| {
            let mut r =
                Reading::new("gw-bench", &format!("{}-{}", d.id, d.index), &d.profile.kind, 1, round, ts);
            r.values.extend(d.reading_values(d.index, ts, d.faults.active(ts)));
            (topics.telemetry(16, &r.gateway, &r.device), telemetry::encode(&r))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    // One simulator per kind keeps unit ids within 1..=247; devices are told apart by index.
    let mut all = Vec::new();
    for (kind, _) in KIND_PROFILES {
        let plan = SimPlan {
            counts: vec![(kind.to_string(), 200)],
            fault_period: Duration::from_secs(60),
            fault_duration: Duration::from_secs(10),
            fault_delay: Duration::ZERO,
            fault_stagger: Duration::from_millis(300),
        };
        all.push(Simulator::new(&plan, START).expect("simulator"));
    }
    let rounds = DEVICES_PER_KIND / 200;
    let mut input = Vec::new();
    for round in 0..rounds as u64 {
        for sim in &all {
            input.extend(messages(sim, round));
        }
    }
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.sample_size(20);
    group.bench_function("decode_rules_line_protocol", |b| {
        b.iter_batched(
            || {
                let mut p = Pipeline::new(
                    Topics::default(),
                    rules::Engine::new(rules::default_pack().expect("default pack")),
                );
                // All 10,000 devices are new to it and come through one gateway.
                p.set_limits(ingest::limits::LimitsConfig {
                    new_devices_per_minute: u32::MAX,
                    ..Default::default()
                });
                p
            },
            |mut pipeline| {
                let mut bytes = 0;
                for (topic, payload) in &input {
                    if let Outcome::Reading { lines, .. } = pipeline.handle(topic, payload, START) {
                        bytes += lines.len();
                    }
                }
                bytes
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("decode_only", |b| {
        b.iter(|| input.iter().filter(|(_, p)| telemetry::decode(p).is_ok()).count())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
