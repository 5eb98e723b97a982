//! Modbus TCP lines with `max_transactions` above 1, over real loopback TCP: against the
//! simulator every kind decodes exactly as when read one request at a time, a refused address
//! is still narrowed down, a dead unit still times out; against a hand-written peer that holds
//! every answer until all requests are in and then answers them backwards, the answers are
//! matched by transaction id, and a peer that answers wrongly or stops answering is reported.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::{check, frozen_sim, poll_line, sim_line, FROZEN_AT};
use gateway::bus::{connect, open, poll_device, Connection, TransportError};
use gateway::config::{Line, Link};
use gateway::mbap::Reply;
use gateway::pipelined::PipelinedTcp;
use gateway::planner::ReadRequest;
use gateway::profile::Table;
use gateway::sim::model::{synthetic_profile, FaultSchedule, Model};
use gateway::sim::{LineFaults, SimDevice, Simulator};
use telemetry::Reading;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_modbus::prelude::{Reader, Slave, SlaveContext};

/// `sim` served on a free port, and its line with `max_transactions` reads in flight.
async fn pipelined_line(
    sim: &Arc<Simulator>,
    max_transactions: u16,
) -> (Line, tokio::sync::watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let link = Link::Tcp { address: listener.local_addr().unwrap().to_string() };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(gateway::sim::serve(listener, sim.clone(), stop_rx));
    let mut line = sim_line(sim, &link, "");
    line.config.max_transactions = max_transactions;
    (line, stop)
}

#[tokio::test]
async fn every_kind_decodes_to_the_simulated_values_with_reads_in_flight_together() {
    for fault in [false, true] {
        let sim = Arc::new(frozen_sim(fault));
        let (line, _stop) = pipelined_line(&sim, 2).await;
        assert!(line.devices.iter().any(|d| d.plan.len() == 2), "some device sends two requests together");
        let readings = poll_line(&line).await;
        check(&sim, &readings, fault);
        let planned: usize = line.devices.iter().map(|d| d.plan.len()).sum();
        assert_eq!(sim.counters().requests(), planned as u64, "fault {fault}: each planned request once");
        assert_eq!(sim.counters().exceptions(), 0);
    }
}

#[tokio::test]
async fn a_refused_address_is_narrowed_down_and_a_dead_unit_times_out_with_reads_in_flight_together() {
    // Unit 3 is the first boiler: holding 100..120 in one request, water_level_mm at 104.
    // Unit 1 (an elevator) is dead.
    let faults =
        LineFaults { illegal_addresses: [(3, 104)].into(), dead_units: [1].into(), ..LineFaults::default() };
    let sim = Arc::new(frozen_sim(false).with_line_faults(faults));
    let (mut line, _stop) = pipelined_line(&sim, 8).await;
    line.config.timeout = Duration::from_millis(300);
    let mut conn = open(&line.link, &line.config).await.unwrap();
    assert!(matches!(conn, Connection::Pipelined(_)));

    let boiler = line.devices.iter().find(|d| d.config.unit == 3).unwrap();
    assert_eq!(boiler.config.id, "boiler-0001");
    let mut reading = Reading::new("gw-t", &boiler.config.id, &boiler.profile.kind, 1, 0, FROZEN_AT);
    poll_device(&mut conn, &line.config, boiler, &mut reading).await.unwrap();
    let want =
        BTreeMap::from([("water_level_mm".to_string(), "exception 2: illegal data address".to_string())]);
    assert_eq!(reading.errors, want);
    for p in boiler.profile.points.iter().filter(|p| p.name != "water_level_mm") {
        assert!(reading.values.contains_key(&p.name), "no {}", p.name);
    }

    let dead = line.devices.iter().find(|d| d.config.unit == 1).unwrap();
    let mut reading = Reading::new("gw-t", &dead.config.id, &dead.profile.kind, 1, 0, FROZEN_AT);
    let err = poll_device(&mut conn, &line.config, dead, &mut reading).await.unwrap_err();
    assert!(matches!(err.cause, TransportError::Timeout(_)), "{err}");
    assert!(
        err.to_string().starts_with(&format!("device {} (unit 1) on line sim: ", dead.config.id)),
        "{err}"
    );
}

#[tokio::test]
async fn registers_read_the_words_tokio_modbus_reads_also_over_several_batches() {
    // (Coils and discrete inputs: the elevator's, AC and DC piles' and boiler's, in the test above.)
    let profile = Arc::new(synthetic_profile("synthetic-100", 100));
    let plan = gateway::planner::plan(&profile);
    let tables: BTreeSet<&str> = plan.iter().map(|r| r.table.name()).collect();
    assert_eq!(tables, BTreeSet::from(["holding", "input"]));
    assert!(plan.len() > 4, "three batches of two: {}", plan.len());
    let device = SimDevice {
        id: "syn-1".into(),
        unit: 9,
        profile,
        model: Model::Synthetic,
        index: 0,
        faults: FaultSchedule::none(),
    };
    let sim = Arc::new(Simulator::of_devices([device]).unwrap().frozen_at(FROZEN_AT));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(gateway::sim::serve(listener, sim.clone(), stop_rx));

    let Connection::Modbus(mut ctx) =
        connect(&Link::Tcp { address: address.to_string() }, Duration::from_secs(2)).await.unwrap()
    else {
        panic!("max_transactions 1 goes through tokio-modbus")
    };
    ctx.set_slave(Slave(9));
    let mut one_at_a_time = Vec::new();
    for r in &plan {
        let bits = |v: Vec<bool>| v.into_iter().map(u16::from).collect::<Vec<_>>();
        let words = match r.table {
            Table::Coil => ctx.read_coils(r.start, r.count).await.unwrap().map(bits),
            Table::Discrete => ctx.read_discrete_inputs(r.start, r.count).await.unwrap().map(bits),
            Table::Input => ctx.read_input_registers(r.start, r.count).await.unwrap(),
            Table::Holding => ctx.read_holding_registers(r.start, r.count).await.unwrap(),
        };
        one_at_a_time.push(Reply::Words(words.unwrap()));
    }

    let mut conn = PipelinedTcp::new(TcpStream::connect(address).await.unwrap(), 2);
    conn.set_unit(9);
    let mut together = Vec::new();
    for batch in plan.chunks(2) {
        let (answers, failure) = conn.read_all(batch, Duration::from_secs(2)).await;
        assert!(failure.is_none(), "{failure:?}");
        together.extend(answers);
    }
    assert_eq!(together, one_at_a_time);
    assert_eq!(sim.counters().requests(), 2 * plan.len() as u64);
}

fn holding(start: u16, count: u16) -> ReadRequest {
    ReadRequest { table: Table::Holding, start, count, points: Vec::new() }
}

/// A peer on a free port that reads `expect` requests (12 bytes each) before it answers any,
/// then answers each with `answer(tid, unit, start, count)`, the last request first.
async fn backwards_peer(
    expect: usize,
    answer: impl Fn(u16, u8, u16, u16) -> Vec<u8> + Send + 'static,
) -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut peer, _) = listener.accept().await.unwrap();
        let mut requests = vec![0u8; 12 * expect];
        peer.read_exact(&mut requests).await.unwrap();
        for r in requests.chunks(12).rev() {
            let tid = u16::from_be_bytes([r[0], r[1]]);
            let (start, count) = (u16::from_be_bytes([r[8], r[9]]), u16::from_be_bytes([r[10], r[11]]));
            peer.write_all(&answer(tid, r[6], start, count)).await.unwrap();
        }
        // Hold the connection open: a missing answer must be a timeout, not a closed socket.
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    TcpStream::connect(address).await.unwrap()
}

/// Holding registers that hold their own address.
fn registers(tid: u16, unit: u8, start: u16, count: u16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&tid.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(3 + 2 * count).to_be_bytes());
    out.extend_from_slice(&[unit, 0x03, (2 * count) as u8]);
    for a in start..start + count {
        out.extend_from_slice(&a.to_be_bytes());
    }
    out
}

#[tokio::test]
async fn answers_that_come_backwards_are_matched_to_their_requests() {
    let reqs = [holding(100, 2), holding(200, 3), holding(300, 1)];
    let mut conn = PipelinedTcp::new(backwards_peer(3, registers).await, 4);
    conn.set_unit(7);
    let (answers, failure) = conn.read_all(&reqs, Duration::from_secs(2)).await;
    assert!(failure.is_none(), "{failure:?}");
    let want: Vec<Reply> =
        reqs.iter().map(|r| Reply::Words((r.start..r.start + r.count).collect())).collect();
    assert_eq!(answers, want);
}

#[tokio::test]
async fn an_answer_that_does_not_fit_its_request_is_an_error_that_says_why() {
    // The peer answers two registers whatever was asked.
    let wrong = |tid, unit, start, _count| registers(tid, unit, start, 2);
    let mut conn = PipelinedTcp::new(backwards_peer(2, wrong).await, 4);
    let (answers, failure) = conn.read_all(&[holding(10, 2), holding(20, 5)], Duration::from_secs(2)).await;
    assert!(answers.is_empty(), "the second request's wrong answer came first: {answers:?}");
    assert_eq!(
        failure.unwrap().to_string(),
        "malformed Modbus TCP answer: 4 data bytes announced and 4 sent for 5 holding (expected 10)"
    );

    let other_unit = |tid, _unit, start, count| registers(tid, 9, start, count);
    let mut conn = PipelinedTcp::new(backwards_peer(1, other_unit).await, 4);
    let (_, failure) = conn.read_all(&[holding(10, 2)], Duration::from_secs(2)).await;
    assert_eq!(
        failure.unwrap().to_string(),
        "malformed Modbus TCP answer: unit 9 answered transaction 0 (asked of unit 1)"
    );
}

#[tokio::test]
async fn answers_before_a_silence_are_kept_and_the_silence_is_a_timeout() {
    // The peer answers only the request for 100 (sent first, answered last).
    let some =
        |tid, unit, start, count| if start == 100 { registers(tid, unit, start, count) } else { Vec::new() };
    let mut conn = PipelinedTcp::new(backwards_peer(2, some).await, 4);
    let (answers, failure) =
        conn.read_all(&[holding(100, 1), holding(200, 1)], Duration::from_millis(300)).await;
    assert_eq!(answers, [Reply::Words(vec![100])]);
    assert!(matches!(failure, Some(TransportError::Timeout(_))), "{failure:?}");
}
