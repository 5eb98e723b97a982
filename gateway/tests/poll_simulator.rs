//! The poller against the simulator over real Modbus TCP on loopback: every point of every
//! simulated kind decodes to the value the simulator's model serves; a slow unit answers late.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{check, check_device, check_fault_values, frozen_sim, poll_line, sim_line, FROZEN_AT};
use gateway::bus::{connect, poll_device, TransportError};
use gateway::config::Link;
use gateway::sim::LineFaults;
use telemetry::Reading;

async fn poll_all_over_tcp(fault: bool) -> (Arc<gateway::sim::Simulator>, Vec<telemetry::Reading>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sim = Arc::new(frozen_sim(fault));
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(gateway::sim::serve(listener, sim.clone(), stop_rx));
    let line = sim_line(&sim, &Link::Tcp { address: addr.to_string() }, "");
    let readings = poll_line(&line).await;
    (sim, readings)
}

#[tokio::test]
async fn every_kind_decodes_to_the_simulated_values() {
    let (sim, readings) = poll_all_over_tcp(false).await;
    assert_eq!(readings.len(), 8);
    check(&sim, &readings, false);
}

#[tokio::test]
async fn faults_show_in_the_polled_values() {
    let (sim, readings) = poll_all_over_tcp(true).await;
    check(&sim, &readings, true);
    check_fault_values(&readings);
}

#[tokio::test]
async fn a_slow_unit_answers_late_and_a_shorter_timeout_gives_up_on_it() {
    let delay = Duration::from_millis(150);
    let faults = LineFaults { slow_units: [(1, delay)].into(), ..LineFaults::default() };
    let sim = Arc::new(frozen_sim(false).with_line_faults(faults));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let link = Link::Tcp { address: listener.local_addr().unwrap().to_string() };
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(gateway::sim::serve(listener, sim.clone(), stop_rx));
    let mut line = sim_line(&sim, &link, "");
    let device = line.devices[0].clone();

    let mut ctx = connect(&line.link, Duration::from_secs(2)).await.unwrap();
    let mut reading = Reading::new("gw-t", &device.config.id, &device.profile.kind, 1, 0, FROZEN_AT);
    let started = Instant::now();
    poll_device(&mut ctx, &line.config, &device, &mut reading).await.unwrap();
    assert!(started.elapsed() >= delay * device.plan.len() as u32, "{:?}", started.elapsed());
    check_device(sim.devices().next().unwrap(), &reading, false);

    line.config.timeout = Duration::from_millis(50);
    let mut ctx = connect(&line.link, Duration::from_secs(2)).await.unwrap();
    let err = poll_device(&mut ctx, &line.config, &device, &mut reading).await.unwrap_err();
    assert!(matches!(err.cause, TransportError::Timeout(_)), "{err}");
}
