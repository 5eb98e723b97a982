//! Register decode and the request planner, in process.
//!
//! cargo bench -p gateway --bench decode_plan

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gateway::planner::plan;
use gateway::profile::{ByteOrder, DataType, Point, Profile, Table, BYTE_ORDERS};
use gateway::register::{decode_into, encode_registers};
use telemetry::Reading;

/// 100 points of every register type over about 160 holding registers, with holes.
fn profile() -> Profile {
    let types = [
        DataType::U16,
        DataType::I16,
        DataType::U32,
        DataType::F32,
        DataType::Bcd16,
        DataType::Bcd32,
        DataType::Bitfield,
        DataType::F64,
    ];
    let mut address = 0u16;
    let points = (0..100)
        .map(|i| {
            let t = types[i % types.len()];
            let mut p = Point::new(&format!("p{i:03}"), Table::Holding, address, t);
            p.order = BYTE_ORDERS[i % 4];
            if t == DataType::Bitfield {
                p.field = Some(gateway::profile::BitRange { low: 4, high: 11 });
            }
            if i % 5 == 0 {
                p.scale = 0.1;
            }
            address += p.width() + u16::from(i % 7 == 0);
            p
        })
        .collect();
    let mut p = Profile::new("bench", "bench", points);
    p.max_registers = 64;
    p.max_gap = 4;
    p
}

fn bench(c: &mut Criterion) {
    let profile = profile();
    let requests = plan(&profile);
    let answers: Vec<Vec<u16>> = requests
        .iter()
        .map(|r| {
            let mut words = vec![0u16; r.count as usize];
            for &i in &r.points {
                let p = &profile.points[i];
                let at = (p.address - r.start) as usize;
                for (k, w) in encode_registers(p, 12.0 + i as f64).into_iter().enumerate() {
                    words[at + k] |= w;
                }
            }
            words
        })
        .collect();
    let mut g = c.benchmark_group("gateway");
    g.throughput(Throughput::Elements(profile.points.len() as u64));
    g.bench_function("decode_100_points", |b| {
        b.iter_batched(
            || Reading::new("gw", "dev", "bench", 1, 0, 0),
            |mut reading| {
                for (r, words) in requests.iter().zip(&answers) {
                    decode_into(&profile, r, words, &mut reading);
                }
                black_box(reading)
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("plan_100_points", |b| b.iter(|| black_box(plan(black_box(&profile)))));
    let f32_point = {
        let mut p = Point::new("f", Table::Holding, 0, DataType::F32);
        p.order = ByteOrder::DCBA;
        p
    };
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_one_f32_dcba", |b| {
        b.iter(|| gateway::register::decode(&f32_point, black_box(&[0x0000, 0xC03F])))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
