//! Fault isolation on a real line (the simulator on a loopback Modbus TCP port, or Modbus RTU
//! on a socat pty pair), with the `gateway` binary publishing to a real Mosquitto: a dead unit
//! is quarantined without costing its neighbours a single poll, and an illegal address inside
//! a block is narrowed down so the device's other points keep flowing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::broker::{gateway_toml, now_ms, start_gateway, wait_until, Collector, Message, Mosquitto};
use common::{PtyPair, TempDir};
use gateway::config::{Link, SerialFrame};
use gateway::sim::{LineFaults, SerialDevice, SimPlan, Simulator};
use tokio::sync::watch;

/// Devices of the given kinds, numbered from unit 1, with no scripted fault for an hour.
fn sim(counts: &[(&str, usize)], faults: LineFaults) -> Arc<Simulator> {
    let plan = SimPlan {
        counts: counts.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
        fault_period: Duration::from_secs(7200),
        fault_duration: Duration::ZERO,
        fault_delay: Duration::from_secs(3600),
        fault_stagger: Duration::ZERO,
    };
    Arc::new(Simulator::new(&plan, now_ms()).unwrap().with_line_faults(faults))
}

/// Serves `sim` as Modbus TCP on a free loopback port until the sender is dropped.
async fn serve_tcp(sim: &Arc<Simulator>) -> (Link, watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(gateway::sim::serve(listener, sim.clone(), stop_rx));
    (Link::Tcp { address }, stop)
}

/// Serves `sim` as Modbus RTU on one end of a socat pty pair; the gateway opens the other.
fn serve_rtu(sim: &Arc<Simulator>, pty: &PtyPair) -> (Link, watch::Sender<bool>) {
    let port = SerialDevice::open(pty.sim.to_str().unwrap(), 9600).unwrap();
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(gateway::sim::serve_serial(port, sim.clone(), stop_rx));
    (Link::Rtu { port: pty.gw.to_str().unwrap().to_string(), frame: SerialFrame::default() }, stop)
}

/// Five devices on one line, unit 3 dead: the dead one is quarantined and reported, and each
/// of the four others keeps its full poll rate (counted over a window after the quarantine).
async fn dead_device_on_a_line(name: &str, serial: bool) {
    let dir = TempDir::new(name);
    let broker = Mosquitto::start(&dir.0);
    let collector = Collector::start(broker.port, &format!("collector-{name}")).await;
    let faults = LineFaults { dead_units: [3].into(), ..LineFaults::default() };
    let sim = sim(&[("elevator", 3), ("water_meter", 2)], faults);
    let pty;
    let (link, _stop) = if serial {
        pty = PtyPair::start(&format!("{name}-pty"));
        serve_rtu(&sim, &pty)
    } else {
        serve_tcp(&sim).await
    };
    let (interval, timeout) = (Duration::from_millis(250), Duration::from_millis(150));
    let config = dir.0.join("gateway.toml");
    let gateway_id = format!("gw-{name}");
    let text = gateway_toml(&sim, &gateway_id, &link, &broker.url(), interval, timeout, &dir.0.join("spool"));
    std::fs::write(&config, text).unwrap();
    let gw = start_gateway(&config, dir.0.join("gateway.log"));

    let dead = "elev-0003";
    let dead_status = format!("status/{gateway_id}/{dead}");
    wait_until("the dead device to be reported quarantined", Duration::from_secs(20), || {
        collector.last_json(&dead_status).is_some_and(|s| s["quarantined"] == true)
    })
    .await;
    // Long enough to hold three probes of the dead unit, and for a hiccup of the machine (a
    // second without a poll) to stay inside the tolerance.
    let window = Duration::from_secs(10);
    let from = now_ms();
    let to = from + window.as_millis() as i64;
    let neighbours: Vec<String> = sim.devices().filter(|d| d.unit != 3).map(|d| d.id.clone()).collect();
    wait_until("every neighbour's readings past the window", Duration::from_secs(30), || {
        let readings = collector.readings();
        neighbours.iter().all(|n| readings.iter().any(|r| &r.device == n && r.ts_ms >= to + 300))
    })
    .await;
    let readings = collector.readings();
    let expected = (window.as_millis() / interval.as_millis()) as f64;
    let mut counts = BTreeMap::new();
    for n in &neighbours {
        let seqs: BTreeSet<u64> = readings
            .iter()
            .filter(|r| &r.device == n && (from..to).contains(&r.ts_ms))
            .map(|r| r.seq)
            .collect();
        counts.insert(n.clone(), seqs.len());
    }
    eprintln!("{name}: readings per neighbour in {window:?}: {counts:?} (expected {expected})");
    for (n, &count) in &counts {
        assert!(
            (count as f64 - expected).abs() <= expected * 0.1,
            "{n}: {count} readings in {window:?}, expected {expected} ±10% (all: {counts:?})"
        );
    }
    assert!(readings.iter().all(|r| r.device != dead), "the dead device published readings");
    let status = collector.last_json(&dead_status).unwrap();
    assert_eq!(status["online"], false, "{status}");
    assert_eq!(status["quarantined"], true, "{status}");
    assert_eq!(status["unit"], 3, "{status}");
    assert!(status["timeouts"].as_u64().unwrap() >= 3, "{status}");
    let last_error = status["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains("timeout after 150ms") && last_error.contains("unit 3"), "{status}");
    assert!(status["next_probe_ms"].as_i64().is_some(), "{status}");
    for n in &neighbours {
        let s = collector.last_json(&format!("status/{gateway_id}/{n}")).unwrap();
        assert_eq!(
            (s["online"].as_bool(), s["quarantined"].as_bool()),
            (Some(true), Some(false)),
            "{n}: {s}"
        );
    }
    let log = gw.output();
    assert!(
        log.contains("device elev-0003 (unit 3) on line sim: quarantined after 3 failed polls in a row"),
        "{log}"
    );
    assert!(
        log.contains("device elev-0003 (unit 3) on line sim: discrete 0..3: timeout after 150ms"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_device_on_tcp_is_quarantined_and_its_neighbours_keep_their_poll_rate() {
    dead_device_on_a_line("dead-tcp", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_device_on_a_serial_bus_is_quarantined_and_its_neighbours_keep_their_poll_rate() {
    dead_device_on_a_line("dead-rtu", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_illegal_address_in_a_block_is_narrowed_down_and_the_other_points_keep_flowing() {
    let dir = TempDir::new("illegal-address");
    let broker = Mosquitto::start(&dir.0);
    let collector = Collector::start(broker.port, "collector-illegal-address").await;
    // Unit 3 is the boiler: holding 100..120 in one request, water_level_mm at 104.
    let faults = LineFaults { illegal_addresses: [(3, 104)].into(), ..LineFaults::default() };
    let sim = sim(&[("elevator", 2), ("boiler", 1)], faults);
    let (link, _stop) = serve_tcp(&sim).await;
    let config = dir.0.join("gateway.toml");
    let spool = dir.0.join("spool");
    let interval = Duration::from_millis(200);
    let text =
        gateway_toml(&sim, "gw-illegal", &link, &broker.url(), interval, Duration::from_secs(1), &spool);
    std::fs::write(&config, text).unwrap();
    let gw = start_gateway(&config, dir.0.join("gateway.log"));

    let boiler_readings = || collector.readings().into_iter().filter(|r| r.device == "boiler-0001").count();
    wait_until("the first boiler readings", Duration::from_secs(20), || boiler_readings() >= 3).await;
    let refused_after_narrowing = sim.counters().exceptions();
    assert!(refused_after_narrowing >= 2, "the block and its halves were refused: {refused_after_narrowing}");
    wait_until("ten more boiler readings", Duration::from_secs(20), || boiler_readings() >= 13).await;
    assert_eq!(
        sim.counters().exceptions(),
        refused_after_narrowing,
        "once narrowed, the plan no longer reads address 104"
    );

    let profile = gateway::profile::Profile::built_in("boiler-ctl-v1").unwrap();
    let readings = collector.readings();
    for r in readings.iter().filter(|r| r.device == "boiler-0001") {
        let want =
            BTreeMap::from([("water_level_mm".to_string(), "exception 2: illegal data address".to_string())]);
        assert_eq!(r.errors, want, "seq {}", r.seq);
        for p in profile.points.iter().filter(|p| p.name != "water_level_mm") {
            assert!(r.values.contains_key(&p.name), "seq {}: no {}", r.seq, p.name);
            for bit in p.bits.values() {
                assert!(r.values.contains_key(bit), "seq {}: no {bit}", r.seq);
            }
        }
        assert!(!r.values.contains_key("water_level_mm"));
    }
    for r in readings.iter().filter(|r| r.device != "boiler-0001") {
        assert!(r.errors.is_empty(), "{}: {:?}", r.device, r.errors);
    }
    let status = collector.last_json("status/gw-illegal/boiler-0001").unwrap();
    assert_eq!(status["bad_points"]["water_level_mm"], "exception 2: illegal data address", "{status}");
    assert_eq!((status["online"].as_bool(), status["quarantined"].as_bool()), (Some(true), Some(false)));
    let log = gw.output();
    assert!(
        log.contains(
            "device boiler-0001 (unit 3) on line sim: holding 104..104 (water_level_mm): exception 2"
        ),
        "{log}"
    );
    assert!(log.contains("device boiler-0001: requests now holding 100+4, holding 110+11"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_that_cannot_be_opened_quarantines_no_device_and_is_polled_once_it_is_back() {
    let dir = TempDir::new("line-down");
    let broker = Mosquitto::start(&dir.0);
    let collector = Collector::start(broker.port, "collector-line-down").await;
    let sim = sim(&[("elevator", 1), ("water_meter", 1)], LineFaults::default());
    // A port nobody listens on yet.
    let address = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let link = Link::Tcp { address: address.to_string() };
    let config = dir.0.join("gateway.toml");
    let interval = Duration::from_millis(200);
    let text = gateway_toml(
        &sim,
        "gw-line-down",
        &link,
        &broker.url(),
        interval,
        Duration::from_secs(1),
        &dir.0.join("spool"),
    );
    std::fs::write(&config, text).unwrap();
    let gw = start_gateway(&config, dir.0.join("gateway.log"));
    let statuses = || {
        collector
            .messages()
            .into_iter()
            .filter(|m| m.topic.starts_with("status/gw-line-down/"))
            .collect::<Vec<_>>()
    };
    wait_until("both devices reported offline", Duration::from_secs(20), || {
        let offline = |m: &&Message| {
            serde_json::from_slice::<serde_json::Value>(&m.payload).is_ok_and(|s| s["online"] == false)
        };
        statuses().iter().filter(offline).count() >= 2
    })
    .await;
    // Three polls of each device fail while the line is down (more than enough to quarantine).
    tokio::time::sleep(interval * 4).await;

    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let (_stop, stop_rx) = watch::channel(false);
    tokio::spawn(gateway::sim::serve(listener, sim.clone(), stop_rx));
    let back = now_ms();
    wait_until("readings from both devices once the line is back", Duration::from_secs(20), || {
        let readings = collector.readings();
        sim.devices().all(|d| readings.iter().any(|r| r.device == d.id))
    })
    .await;
    let took = now_ms() - back;
    assert!(took < 5_000, "the line was opened again {took} ms after it came back");
    for m in statuses() {
        let status: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(status["quarantined"], false, "{}: {status}", m.topic);
    }
    let log = gw.output();
    assert!(
        log.contains("device elev-0001 (unit 1) on line sim: discrete 0..3 not read: connect tcp"),
        "{log}"
    );
    assert!(log.contains("line sim: open again after"), "{log}");
}
