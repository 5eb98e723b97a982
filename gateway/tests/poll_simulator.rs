//! The poller against the simulator over real Modbus TCP on loopback: every point of every
//! simulated kind decodes to the value the simulator's model serves.

use std::sync::Arc;
use std::time::Duration;

use gateway::bus::{connect, poll_device};
use gateway::sim::{SimPlan, Simulator, KIND_PROFILES};
use gateway::GatewayConfig;
use telemetry::{Reading, Value};

const FROZEN_AT: i64 = 1_795_000_000_000;

fn plan(fault_delay: Duration) -> SimPlan {
    SimPlan {
        counts: KIND_PROFILES.iter().map(|(k, _)| (k.to_string(), 2)).collect(),
        fault_period: Duration::from_secs(60),
        fault_duration: Duration::from_secs(30),
        fault_delay,
        fault_stagger: Duration::ZERO,
    }
}

async fn poll_all(sim: Simulator) -> (Simulator, Vec<Reading>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sim = Arc::new(sim);
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(gateway::sim::serve(listener, sim.clone(), stop_rx));
    let cfg = GatewayConfig::from_toml(&sim.gateway_config(
        "gw-t",
        addr,
        "mqtt://127.0.0.1:1",
        Duration::from_secs(1),
    ))
    .unwrap();
    let line = cfg.build().unwrap().remove(0);
    let mut ctx = connect(&line.config.address, Duration::from_secs(2)).await.unwrap();
    let mut readings = Vec::new();
    for d in &line.devices {
        let mut r = Reading::new("gw-t", &d.config.id, &d.profile.kind, 1, 0, FROZEN_AT);
        poll_device(&mut ctx, &line.config, d, &mut r).await.unwrap();
        readings.push(r);
    }
    ((*sim).clone(), readings)
}

fn check(sim: &Simulator, readings: &[Reading], fault: bool) {
    for (d, r) in sim.devices().zip(readings) {
        assert!(r.errors.is_empty(), "{}: {:?}", d.id, r.errors);
        assert_eq!(d.faults.active(FROZEN_AT), fault);
        for (name, want) in d.model.sample(d.index, FROZEN_AT, fault) {
            let point = d.profile.points.iter().find(|p| p.name == name).unwrap();
            let got = r.values.get(name).unwrap_or_else(|| panic!("{}: no {name}", d.id));
            if point.table.is_bits() {
                assert_eq!(got, &Value::Bool(want != 0.0), "{} {name}", d.id);
                continue;
            }
            // The model's value after the register's resolution (scale, integer or f32).
            let served =
                gateway::register::decode_registers(point, &gateway::register::encode_registers(point, want));
            assert_eq!(got, &served[0].1, "{} {name}: model {want}", d.id);
            if point.data_type.is_integer() && point.scale == 1.0 {
                assert!(matches!(got, Value::Int(_)), "{} {name} is an integer", d.id);
            }
            let tolerance = point.scale.abs().max(want.abs() * 1e-6);
            assert!((got.as_f64().unwrap() - want).abs() <= tolerance, "{} {name}: {got} vs {want}", d.id);
        }
        for p in &d.profile.points {
            for bit_name in p.bits.values() {
                assert!(matches!(r.values.get(bit_name), Some(Value::Bool(_))), "{} {bit_name}", d.id);
            }
        }
    }
}

#[tokio::test]
async fn every_kind_decodes_to_the_simulated_values() {
    let sim = Simulator::new(&plan(Duration::from_secs(3600)), FROZEN_AT).unwrap().frozen_at(FROZEN_AT);
    let (sim, readings) = poll_all(sim).await;
    assert_eq!(readings.len(), 8);
    check(&sim, &readings, false);
}

#[tokio::test]
async fn faults_show_in_the_polled_values() {
    let sim = Simulator::new(&plan(Duration::ZERO), FROZEN_AT).unwrap().frozen_at(FROZEN_AT);
    let (sim, readings) = poll_all(sim).await;
    check(&sim, &readings, true);
    let value =
        |dev: &str, name: &str| readings.iter().find(|r| r.device == dev).unwrap().values[name].clone();
    assert_eq!(value("elev-0001", "fault_code"), Value::Int(5));
    assert_eq!(value("boiler-0001", "over_pressure"), Value::Bool(true));
    assert_eq!(value("wm-0002", "leak"), Value::Bool(true));
    assert_eq!(value("pile-0001", "fault_code"), Value::Int(5));
}
