//! Readings per second through the rules engine alone: the default pack over 10,000 devices
//! (2,500 each of elevators, boilers, water meters and DC charging piles), values as the
//! shipped profiles publish them, a few devices in fault.
//!
//! cargo bench -p rules --bench engine

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rules::Engine;
use telemetry::{Reading, Value};

const PER_KIND: usize = 2_500;
const START: i64 = 1_795_000_000_000;

/// One reading of device `i` of `kind` in poll `round`; every 50th device is in fault.
fn reading(kind: &str, i: usize, round: u64) -> Reading {
    let ts = START + round as i64 * 1_000 + (i % 1_000) as i64;
    let fault = i.is_multiple_of(50) && round % 20 >= 10;
    let x = (i as f64 * 0.37 + round as f64 * 0.11).sin();
    let mut r = Reading::new(&format!("gw-{:03}", i / 100), &format!("{kind}-{i:05}"), kind, 1, round, ts);
    let mut set = |name: &str, v: Value| {
        r.values.insert(name.to_string(), v);
    };
    match kind {
        "elevator" => {
            set("service_mode", Value::Int(0));
            set("floor", Value::Int((i % 20) as i64 + 1));
            set("direction", Value::Int(i as i64 % 3));
            set("speed_mps", Value::Float(1.5 + 0.1 * x));
            set("fault_code", Value::Int(if fault { 5 } else { 0 }));
            set("run_count", Value::Int(100_000 + round as i64));
            set("load_kg", Value::Int(300 + (x * 200.0) as i64));
            set("door_closed", Value::Bool(true));
            set("in_door_zone", Value::Bool(true));
            set("person_present", Value::Bool(fault));
            set("safety_circuit_ok", Value::Bool(true));
        }
        "boiler" => {
            let bits = i64::from(fault);
            set("pressure_mpa", Value::Float(if fault { 1.35 } else { 0.9 + 0.1 * x }));
            set("water_temp_c", Value::Float(85.0 + 5.0 * x));
            set("flue_temp_c", Value::Float(160.0 + 10.0 * x));
            set("water_level_mm", Value::Float(300.0 + 20.0 * x));
            set("run_hours", Value::Int(20_000));
            set("alarm_bits", Value::Int(bits));
            for (bit, name) in [
                (0, "over_pressure"),
                (1, "low_water"),
                (2, "extreme_low_water"),
                (5, "burner_fault"),
                (6, "gas_leak"),
            ] {
                set(name, Value::Bool((bits >> bit) & 1 == 1));
            }
        }
        "water_meter" => {
            let total = 1_000.0 + i as f64 + round as f64 * 0.001;
            set("forward_total_m3", Value::Float(total));
            set("reverse_total_m3", Value::Float(0.0));
            set("flow_m3h", Value::Float(0.5 + 0.5 * x));
            set("pipe_state", Value::Int(170));
            set("pressure_mpa", Value::Float(0.3));
            let bits = i64::from(fault);
            set("status_bits", Value::Int(bits));
            for (bit, name) in [(0, "leak"), (1, "low_battery"), (2, "magnetic_tamper"), (3, "valve_closed")]
            {
                set(name, Value::Bool((bits >> bit) & 1 == 1));
            }
            set("battery_v", Value::Float(3.6));
        }
        _ => {
            set("state", Value::Int(3));
            set("output_voltage_v", Value::Float(500.0 + 10.0 * x));
            set("output_current_a", Value::Float(120.0 + 5.0 * x));
            set("energy_kwh", Value::Float(20.0 + round as f64 * 0.01));
            set("insulation_kohm", Value::Float(if fault { 50.0 } else { 800.0 }));
            set("gun_temp_c", Value::Float(45.0 + 5.0 * x));
            set("fault_code", Value::Int(if fault { 5 } else { 0 }));
            set("emergency_stop", Value::Bool(false));
        }
    }
    r
}

fn round(round: u64) -> Vec<Reading> {
    let kinds = ["elevator", "boiler", "water_meter", "charging_pile"];
    kinds.iter().flat_map(|k| (0..PER_KIND).map(move |i| reading(k, i, round))).collect()
}

fn bench(c: &mut Criterion) {
    // One engine throughout: warm-up rounds fill the windows, then each iteration is the next
    // poll of every device (made outside the timing).
    let mut engine = Engine::new(rules::default_pack().expect("default pack"));
    let mut next = 0u64;
    while next < 30 {
        for r in &round(next) {
            engine.process(r);
        }
        next += 1;
    }
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(4 * PER_KIND as u64));
    group.sample_size(20);
    group.bench_function("default_pack_10k_devices", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let readings = round(next);
                next += 1;
                let start = Instant::now();
                for r in &readings {
                    black_box(engine.process(r));
                }
                spent += start.elapsed();
            }
            spent
        })
    });
    group.finish();
    let stats = engine.stats();
    eprintln!(
        "{} readings, {} evaluations, {} without an answer",
        stats.readings, stats.evaluations, stats.eval_errors
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
