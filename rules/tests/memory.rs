//! Bytes of rules-engine state per device, counted by a global allocator: the heap the engine
//! holds after many devices' readings, divided by the devices. Prints the figures and fails if
//! a device without rule windows costs more than its bound.
//!
//! cargo test -p rules --test memory -- --nocapture

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use rules::Engine;
use telemetry::Reading;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const START: i64 = 1_795_000_000_000;

fn elevator(n: usize, round: i64, ts: i64) -> Reading {
    Reading::new(&format!("gw-{:04}", n / 100), &format!("elevator-{n:07}"), "elevator", 1, round as u64, ts)
        .with_value("fault_code", 0)
        .with_value("floor", (n % 12) as i64 + 1)
        .with_value("speed_mps", 1.0)
        .with_value("door_open", false)
        .with_value("safety_circuit_ok", true)
        .with_value("service_mode", 0)
}

fn water_meter(n: usize, round: i64, ts: i64) -> Reading {
    Reading::new(&format!("gw-{:04}", n / 100), &format!("wm-{n:07}"), "water_meter", 1, round as u64, ts)
        .with_value("forward_total_m3", round as f64 * 0.001)
        .with_value("reverse_total_m3", 0.0)
        .with_value("flow_m3h", 0.5)
        .with_value("status_bits", 0)
        .with_value("pipe_state", 170)
        .with_value("battery_v", 3.6)
}

/// Live heap bytes per device once `devices` devices sent `rounds` readings `every_ms` apart.
fn bytes_per_device(make: fn(usize, i64, i64) -> Reading, devices: usize, rounds: i64, every_ms: i64) -> f64 {
    let mut engine = Engine::new(rules::default_pack().expect("default pack"));
    // The kinds' plans and the evaluator's caches are made by the first readings.
    engine.process(&make(usize::MAX / 2, 0, START));
    let before = LIVE.load(Ordering::Relaxed);
    for round in 0..rounds {
        let ts = START + round * every_ms;
        for n in 0..devices {
            assert!(engine.process(&make(n, round, ts)).is_empty(), "no alerts in normal readings");
        }
        engine.tick(ts);
    }
    let bytes = (LIVE.load(Ordering::Relaxed) - before) as f64 / devices as f64;
    drop(engine);
    bytes
}

#[test]
fn bytes_per_device_of_the_default_pack() {
    let elevators = bytes_per_device(elevator, 5_000, 20, 1_000);
    // Water meters read every 10 s for 70 min: their hour-long `delta` windows are full.
    let meters = bytes_per_device(water_meter, 500, 420, 10_000);
    let meters_once = bytes_per_device(water_meter, 5_000, 1, 10_000);
    println!("rules engine state, live heap bytes per device: elevator {elevators:.0}, water meter after one reading {meters_once:.0}, water meter with full hour windows {meters:.0} (2 windows of up to 362 samples of 16 bytes)");
    assert!(elevators < 600.0, "{elevators}");
    assert!(meters_once < 800.0, "{meters_once}");
    assert!(meters < 2.0 * 363.0 * 16.0 + 600.0, "{meters}");
}
