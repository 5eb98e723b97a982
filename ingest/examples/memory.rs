//! Ingest's memory per device: pushes simulated readings through the real
//! [`ingest::pipeline::Pipeline::handle`] (decode, dedup, the default rule pack) in process and
//! prints one JSON line per checkpoint with the steady-state RSS (VmRSS after `malloc_trim`, one
//! malloc arena as ingest sets it) and the bytes per device above the empty pipeline's.
//!
//! ```sh
//! nice -n 10 cargo run --release -p ingest --example memory -- \
//!     --kind elevator --devices 100000 --readings 300 --every-ms 1000 --report 100,200,300
//! ```
//!
//! Every device sends `--readings` readings, `--every-ms` apart in simulated time (one round of
//! all devices per step, then a `Pipeline::tick` at the round's time). `--kind` is one of the
//! simulated kinds or `mix` (elevators, boilers, water meters and charging piles in turn).
//! `--seq-step N` numbers readings N apart (gaps): duplicate detection then holds the state of
//! N times as many consecutive readings, so a short run shows the steady state of a long one.

use std::time::{Duration, Instant};

use gateway::sim::{SimPlan, Simulator, KIND_PROFILES};
use ingest::pipeline::{Outcome, Pipeline};
use telemetry::{Reading, Topics};

const START: i64 = 1_795_000_000_000;
const PER_SIM: usize = 200;
const DEVICES_PER_GATEWAY: usize = 100;

struct Args {
    kind: String,
    devices: usize,
    readings: u64,
    every_ms: i64,
    report: Vec<u64>,
    seq_step: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        kind: "elevator".into(),
        devices: 10_000,
        readings: 100,
        every_ms: 1_000,
        report: vec![],
        seq_step: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.replace('_', "").parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--kind" => a.kind = value,
            "--devices" => a.devices = num(&value)? as usize,
            "--readings" => a.readings = num(&value)?,
            "--every-ms" => a.every_ms = num(&value)? as i64,
            "--seq-step" => a.seq_step = num(&value)?.max(1),
            "--report" => a.report = value.split(',').map(num).collect::<Result<_, _>>()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if !a.report.contains(&a.readings) {
        a.report.push(a.readings);
    }
    Ok(a)
}

/// Resident memory after giving freed pages back, in bytes.
fn rss() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// One simulator of `PER_SIM` devices per kind; device `n` of a kind samples its model as
/// index `n`.
fn simulators(kinds: &[&str]) -> Vec<Simulator> {
    kinds
        .iter()
        .map(|kind| {
            let plan = SimPlan {
                counts: vec![(kind.to_string(), PER_SIM)],
                fault_period: Duration::from_secs(3600),
                fault_duration: Duration::ZERO,
                fault_delay: Duration::ZERO,
                fault_stagger: Duration::ZERO,
            };
            Simulator::new(&plan, START).expect("simulator")
        })
        .collect()
}

fn reading(sim: &Simulator, n: usize, seq: u64, ts: i64) -> Reading {
    let d = sim.devices().nth(n % PER_SIM).expect("PER_SIM devices");
    let gateway = format!("gw-{:05}", n / DEVICES_PER_GATEWAY);
    let mut r = Reading::new(&gateway, &format!("{}-{n:07}", d.profile.kind), &d.profile.kind, 1, seq, ts);
    r.values.extend(d.reading_values(n, ts, false));
    r
}

fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; no allocation is in flight. As ingest.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("memory: {e}");
            std::process::exit(2);
        }
    };
    let kinds: Vec<&str> = match args.kind.as_str() {
        "mix" => KIND_PROFILES.iter().map(|(k, _)| *k).collect(),
        k => vec![k],
    };
    let sims = simulators(&kinds);
    let topics = Topics::default();
    let mut pipeline =
        Pipeline::new(topics.clone(), rules::Engine::new(rules::default_pack().expect("default pack")));
    let baseline = rss();
    let started = Instant::now();
    let mut handled = 0u64;
    for round in 0..args.readings {
        let ts = START + round as i64 * args.every_ms;
        for n in 0..args.devices {
            let sim = &sims[n % sims.len()];
            let r = reading(sim, n / sims.len(), round * args.seq_step, ts);
            let topic = topics.telemetry(16, &r.gateway, &r.device);
            match pipeline.handle(&topic, &telemetry::encode(&r), ts) {
                Outcome::Reading { .. } => handled += 1,
                other => panic!("{topic}: {other:?}"),
            }
        }
        pipeline.tick(ts);
        let done = round + 1;
        if args.report.contains(&done) {
            let rss = rss();
            let elapsed = started.elapsed().as_secs_f64();
            let line = serde_json::json!({
                "kind": args.kind,
                "devices": args.devices,
                "readings_per_device": done,
                "every_ms": args.every_ms,
                "rss_mib": (rss as f64 / 1048576.0 * 10.0).round() / 10.0,
                "baseline_mib": (baseline as f64 / 1048576.0 * 10.0).round() / 10.0,
                "bytes_per_device": (rss.saturating_sub(baseline) as f64 / args.devices as f64).round(),
                "readings": handled,
                "readings_per_s": (handled as f64 / elapsed).round(),
                "alerts_firing": pipeline.stats.alerts_firing,
            });
            println!("{line}");
        }
    }
}
