//! The poller against the simulator over real Modbus TCP on loopback: every point of every
//! simulated kind decodes to the value the simulator's model serves.

mod common;

use std::sync::Arc;

use common::{check, check_fault_values, frozen_sim, poll_line, sim_line};
use gateway::config::Link;

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
