//! Point groups and a model's pauses on a real line (the simulator on a loopback Modbus TCP
//! port), with the `gateway` binary publishing to a real Mosquitto: a group's points arrive at
//! the group's interval and the device status counts each group; a model's pause between
//! requests holds every request back, and its pause after connecting holds the first one.
//! Also the AC charging pile: every point (bit fields, BCD, text) decodes to what it serves.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::broker::{gateway_toml, now_ms, start_gateway, wait_until, Collector, Mosquitto};
use common::{check_device, sim_line, TempDir, FROZEN_AT};
use gateway::bus::{connect, poll_device};
use gateway::config::Link;
use gateway::profile::Profile;
use gateway::sim::{FaultSchedule, Model, SimDevice, SimPlan, Simulator};
use telemetry::{Reading, Value};
use tokio::sync::watch;

/// Water meters of `profile` (written to `dir/profiles`), served on a free loopback port.
async fn water_meters(
    dir: &TempDir,
    profile: Profile,
    count: u8,
) -> (Arc<Simulator>, Link, watch::Sender<bool>) {
    let profiles = dir.0.join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let text = gateway::profile_toml::to_toml(&profile, "test");
    std::fs::write(profiles.join(format!("{}.toml", profile.name)), text).unwrap();
    let profile = Arc::new(profile);
    let devices = (1..=count).map(|unit| SimDevice {
        id: format!("wm-{unit:04}"),
        unit,
        profile: profile.clone(),
        model: Model::WaterMeter,
        index: unit as usize - 1,
        faults: FaultSchedule::none(),
    });
    let sim = Arc::new(Simulator::of_devices(devices).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let link = Link::Tcp { address: listener.local_addr().unwrap().to_string() };
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(gateway::sim::serve(listener, sim.clone(), stop_rx));
    (sim, link, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_groups_arrive_at_their_own_interval() {
    let dir = TempDir::new("groups");
    let broker = Mosquitto::start(&dir.0);
    let collector = Collector::start(broker.port, "collector-groups").await;
    let mut profile = Profile::built_in("water-meter-v1").unwrap();
    profile.name = "water-meter-grouped".into();
    // The profile puts the battery in a slow group; the device config the totals.
    profile.points.iter_mut().find(|p| p.name == "battery_v").unwrap().interval =
        Some(Duration::from_secs(2));
    let (sim, link, _stop) = water_meters(&dir, profile, 2).await;
    let interval = Duration::from_millis(250);
    let mut text = gateway_toml(
        &sim,
        "gw-groups",
        &link,
        &broker.url(),
        interval,
        Duration::from_secs(1),
        &dir.0.join("spool"),
    );
    text = format!("profiles_dir = \"profiles\"\n{text}");
    text += "\n[[device.group]]\npoints = [\"forward_total_m3\", \"reverse_total_m3\"]\ninterval = \"1s\"\n";
    let config = dir.0.join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    let _gw = start_gateway(&config, dir.0.join("gateway.log"));

    let from = now_ms() + 1_000;
    let window = 4_000;
    wait_until("readings past the window", Duration::from_secs(20), || {
        collector.readings().iter().filter(|r| r.device == "wm-0002").any(|r| r.ts_ms > from + window + 300)
    })
    .await;
    let readings: Vec<Reading> = collector
        .readings()
        .into_iter()
        .filter(|r| r.device == "wm-0002" && (from..from + window).contains(&r.ts_ms))
        .collect();
    let with = |name: &str| readings.iter().filter(|r| r.values.contains_key(name)).count();
    eprintln!(
        "in {window} ms: {} readings, flow {}, totals {}, battery {}",
        readings.len(),
        with("flow_m3h"),
        with("forward_total_m3"),
        with("battery_v")
    );
    assert!((15..=17).contains(&with("flow_m3h")), "every 250 ms: {}", with("flow_m3h"));
    assert!((3..=5).contains(&with("forward_total_m3")), "every second: {}", with("forward_total_m3"));
    assert_eq!(with("forward_total_m3"), with("reverse_total_m3"), "one group, read together");
    assert!((1..=3).contains(&with("battery_v")), "every 2 s: {}", with("battery_v"));
    // A slow group's slot comes with a main one: never a reading of the slow group alone.
    assert_eq!(readings.len(), with("flow_m3h"), "{readings:?}");
    assert!(readings.iter().all(|r| r.errors.is_empty()), "{readings:?}");

    wait_until("the device status with its groups", Duration::from_secs(10), || {
        collector
            .last_json("status/gw-groups/wm-0002")
            .is_some_and(|s| s["groups"].as_array().is_some_and(|g| g.len() == 3))
    })
    .await;
    let status = collector.last_json("status/gw-groups/wm-0002").unwrap();
    let groups = status["groups"].as_array().unwrap();
    let intervals: Vec<&str> = groups.iter().map(|g| g["interval"].as_str().unwrap()).collect();
    assert_eq!(intervals, ["250ms", "1s", "2s"], "{status}");
    assert_eq!(groups[1]["points"], 2, "{status}");
    assert_eq!(groups[1]["requests"], 1, "{status}");
    assert_eq!(status["overruns"], 0, "{status}");
}

#[tokio::test]
async fn a_models_pause_holds_every_request_back() {
    let dir = TempDir::new("pause");
    let mut profile = Profile::built_in("water-meter-v1").unwrap();
    profile.name = "water-meter-paused".into();
    profile.pause_between_requests = Duration::from_millis(60);
    let (sim, link, _stop) = water_meters(&dir, profile, 1).await;
    let text = format!(
        "profiles_dir = {:?}\n{}",
        dir.0.join("profiles").display().to_string(),
        sim.gateway_config_on("gw-t", &link, "mqtt://127.0.0.1:1", Duration::from_secs(1))
    );
    let line = gateway::GatewayConfig::from_toml(&text).unwrap().build().unwrap().remove(0);
    let device = &line.devices[0];
    let requests = device.plan.len() as u32;
    assert!(requests >= 2, "{:?}", device.plan);
    let mut ctx = connect(&line.link, Duration::from_secs(2)).await.unwrap();
    let mut reading = Reading::new("gw-t", &device.config.id, "water_meter", 1, 0, 0);
    let started = Instant::now();
    poll_device(&mut ctx, &line.config, device, &mut reading).await.unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(60) * requests, "{requests} requests in {took:?}");
    assert!(reading.errors.is_empty() && reading.values.contains_key("battery_v"), "{reading:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_models_pause_after_connecting_holds_the_first_request() {
    let dir = TempDir::new("connect-pause");
    let broker = Mosquitto::start(&dir.0);
    let mut profile = Profile::built_in("water-meter-v1").unwrap();
    profile.name = "water-meter-slow-start".into();
    profile.pause_after_connect = Duration::from_millis(1500);
    let (sim, link, _stop) = water_meters(&dir, profile, 1).await;
    let text = gateway_toml(
        &sim,
        "gw-cp",
        &link,
        &broker.url(),
        Duration::from_millis(200),
        Duration::from_secs(1),
        &dir.0.join("spool"),
    );
    let config = dir.0.join("gateway.toml");
    std::fs::write(&config, format!("profiles_dir = \"profiles\"\n{text}")).unwrap();
    let started = Instant::now();
    let _gw = start_gateway(&config, dir.0.join("gateway.log"));
    wait_until("the first request", Duration::from_secs(10), || sim.counters().requests() > 0).await;
    let first = started.elapsed();
    assert!(first >= Duration::from_millis(1500), "first request after {first:?}");
    wait_until("more requests", Duration::from_secs(10), || sim.counters().requests() > 6).await;
    assert!(started.elapsed() < first + Duration::from_secs(3), "later polls are not held back");
}

#[tokio::test]
async fn ac_charging_piles_decode_to_the_simulated_values() {
    let plan =
        SimPlan { counts: vec![("charging_pile_ac".into(), 2)], ..common::plan(Duration::from_secs(3600)) };
    for fault in [false, true] {
        let plan =
            SimPlan { fault_delay: if fault { Duration::ZERO } else { plan.fault_delay }, ..plan.clone() };
        let sim = Arc::new(Simulator::new(&plan, FROZEN_AT).unwrap().frozen_at(FROZEN_AT));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let link = Link::Tcp { address: listener.local_addr().unwrap().to_string() };
        let (_stop, stop_rx) = watch::channel(false);
        tokio::spawn(gateway::sim::serve(listener, sim.clone(), stop_rx));
        let line = sim_line(&sim, &link, "");
        let readings = common::poll_line(&line).await;
        for (d, r) in sim.devices().zip(&readings) {
            check_device(d, r, fault);
            assert_eq!(r.kind, "charging_pile_ac");
        }
        let r = &readings[1];
        assert_eq!(r.device, "acpile-0002");
        assert_eq!(r.values["serial_no"], Value::Text("ACP-2024-000002".into()));
        assert_eq!(r.values["firmware"], Value::Int(102));
        assert_eq!(r.values["pilot_state"], Value::Int(if fault { 6 } else { 3 }));
        assert_eq!(
            (r.values["phases"].clone(), r.values["gun_locked"].clone()),
            (Value::Int(1), Value::Int(1))
        );
        assert_eq!(r.values["fault_code"], Value::Int(if fault { 14 } else { 0 }));
        assert_eq!(line.devices[0].plan.len(), 2, "one block of input registers and the discrete input");
    }
}
