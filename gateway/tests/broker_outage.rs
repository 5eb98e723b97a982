//! Nothing is lost while the broker is away: the `gateway` binary polls the simulator over
//! Modbus TCP and publishes to a real Mosquitto, which is stopped for a while and started again
//! on the same port; and the gateway itself is killed with SIGKILL during an outage and
//! started again. Every reading arrives, in order per device, and those sent from the spool
//! after the outage are flagged `replay`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::broker::{
    check_complete_and_ordered, gateway_toml, now_ms, of_device, start_gateway, wait_until, Collector,
    Mosquitto,
};
use common::TempDir;
use gateway::config::Link;
use gateway::sim::{SimPlan, Simulator};
use telemetry::Reading;
use tokio::sync::watch;

const DEVICES: [&str; 3] = ["elev-0001", "boiler-0001", "wm-0001"];
const INTERVAL: Duration = Duration::from_millis(100);

/// An elevator, a boiler and a water meter served as Modbus TCP on a free loopback port.
async fn serve_sim() -> (Arc<Simulator>, SocketAddr, watch::Sender<bool>) {
    let plan = SimPlan {
        counts: vec![("elevator".into(), 1), ("boiler".into(), 1), ("water_meter".into(), 1)],
        fault_period: Duration::from_secs(7200),
        fault_duration: Duration::ZERO,
        fault_delay: Duration::from_secs(3600),
        fault_stagger: Duration::ZERO,
    };
    let sim = Arc::new(Simulator::new(&plan, now_ms()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(gateway::sim::serve(listener, sim.clone(), stop_rx));
    (sim, addr, stop)
}

fn write_config(
    dir: &Path,
    sim: &Simulator,
    gateway_id: &str,
    modbus: SocketAddr,
    broker: &Mosquitto,
) -> std::path::PathBuf {
    let config = dir.join("gateway.toml");
    let link = Link::Tcp { address: modbus.to_string() };
    let text = gateway_toml(
        sim,
        gateway_id,
        &link,
        &broker.url(),
        INTERVAL,
        Duration::from_secs(1),
        &dir.join("spool"),
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// The session of the readings received so far (there must be exactly one).
fn only_session(readings: &[Reading]) -> u64 {
    let sessions: std::collections::BTreeSet<u64> = readings.iter().map(|r| r.session).collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    *sessions.iter().next().unwrap()
}

async fn wait_for_readings(collector: &Collector, per_device: usize) {
    wait_until("readings from every device", Duration::from_secs(20), || {
        let readings = collector.readings();
        DEVICES.iter().all(|d| readings.iter().filter(|r| r.device == *d).count() >= per_device)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_polled_while_the_broker_is_down_arrive_in_order_flagged_replay() {
    let dir = TempDir::new("broker-outage");
    let mut broker = Mosquitto::start(&dir.0);
    let collector = Collector::start(broker.port, "collector-broker-outage").await;
    let (sim, modbus, _stop_sim) = serve_sim().await;
    let config = write_config(&dir.0, &sim, "gw-outage", modbus, &broker);
    let mut gw = start_gateway(&config, dir.0.join("gateway.log"));
    wait_for_readings(&collector, 5).await;

    broker.stop();
    let stopped_at = now_ms();
    // The outage itself: the gateway keeps polling and spools what it reads.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restarted_at = now_ms();
    broker.start_again();
    wait_until("readings polled after the reconnect, sent live", Duration::from_secs(30), || {
        let readings = collector.readings();
        DEVICES.iter().all(|d| readings.iter().any(|r| r.device == *d && r.ts_ms > restarted_at && !r.replay))
    })
    .await;
    gw.signal_and_wait("TERM");

    let readings = collector.readings();
    let session = only_session(&readings);
    for device in DEVICES {
        let mine = of_device(&readings, device, session);
        check_complete_and_ordered(device, &mine);
        assert_eq!(mine.iter().map(|r| r.seq).min(), Some(0), "{device}: from the first reading on");
        let during: Vec<&&Reading> =
            mine.iter().filter(|r| r.ts_ms > stopped_at + 50 && r.ts_ms < restarted_at).collect();
        assert!(during.len() >= 10, "{device}: {} readings polled during the 2 s outage", during.len());
        for r in &during {
            assert!(r.replay, "{device} seq {}: polled during the outage, sent without replay", r.seq);
        }
        // After the outage: replays first (polled before the reconnect), then live readings.
        let mut after: Vec<&&Reading> = mine.iter().filter(|r| r.ts_ms > stopped_at + 50).collect();
        after.sort_by_key(|r| r.seq);
        let first_live = after.iter().position(|r| !r.replay).expect("live readings after the outage");
        assert!(after[first_live..].iter().all(|r| !r.replay), "{device}: a replay after live readings");
        assert!(
            mine.iter().filter(|r| r.ts_ms < stopped_at - 500).all(|r| !r.replay),
            "{device}: replay before"
        );
        eprintln!(
            "{device}: {} received, {} polled during the outage, {} sent as replays",
            mine.len(),
            during.len(),
            mine.iter().filter(|r| r.replay).count()
        );
    }
    let status = collector.last_json("status/gw-outage").expect("gateway status");
    let spool = &status["spool"];
    assert!(spool["replayed"].as_u64().unwrap() >= 30, "{status}");
    assert_eq!(spool["dropped_full"], 0, "{status}");
    assert!(spool["spooled"].as_u64() >= spool["acked"].as_u64(), "{status}");
    assert_eq!(status["online"], false, "the goodbye after SIGTERM: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_during_an_outage_sends_its_spool_after_a_restart() {
    let dir = TempDir::new("kill-9");
    let mut broker = Mosquitto::start(&dir.0);
    let collector = Collector::start(broker.port, "collector-kill-9").await;
    let (sim, modbus, _stop_sim) = serve_sim().await;
    let config = write_config(&dir.0, &sim, "gw-kill", modbus, &broker);
    let mut gw = start_gateway(&config, dir.0.join("gateway-1.log"));
    wait_for_readings(&collector, 5).await;
    let first_session = only_session(&collector.readings());

    broker.stop();
    let stopped_at = now_ms();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gw.signal_and_wait("KILL");

    // What the first session left in its spool: each one must arrive after the restart.
    let spool_dir = dir.0.join("spool");
    let mut spool = telemetry::spool::Spool::open(&spool_dir, Default::default()).unwrap();
    let left: Vec<Reading> =
        spool.read(usize::MAX).unwrap().iter().map(|r| telemetry::decode(&r.payload).unwrap()).collect();
    drop(spool);
    for device in DEVICES {
        let n = left.iter().filter(|r| r.device == device).count();
        assert!(n >= 8, "{device}: {n} readings left in the spool after 1.5 s of outage");
    }
    assert!(left.iter().all(|r| r.session == first_session && !r.replay));

    broker.start_again();
    let _gw = start_gateway(&config, dir.0.join("gateway-2.log"));
    wait_until("every reading left in the spool, and the new session's", Duration::from_secs(30), || {
        let readings = collector.readings();
        let arrived = |l: &Reading| {
            readings
                .iter()
                .any(|r| r.device == l.device && r.session == l.session && r.seq == l.seq && r.replay)
        };
        left.iter().all(arrived)
            && DEVICES.iter().all(|d| readings.iter().any(|r| &r.device == d && r.session != first_session))
    })
    .await;

    let readings = collector.readings();
    for device in DEVICES {
        let mine = of_device(&readings, device, first_session);
        let last = check_complete_and_ordered(device, &mine);
        let last_left = left.iter().filter(|r| r.device == device).map(|r| r.seq).max().unwrap();
        assert_eq!(
            last, last_left,
            "{device}: the last reading of the first session is the last one spooled"
        );
        for r in mine.iter().filter(|r| r.ts_ms > stopped_at + 50) {
            assert!(r.replay, "{device} seq {}: sent after the restart without replay", r.seq);
        }
        let later: Vec<&Reading> =
            readings.iter().filter(|r| r.device == device && r.session != first_session).collect();
        assert!(later.iter().all(|r| r.session > first_session));
        assert!(later.iter().any(|r| !r.replay), "{device}: the new session's readings are live");
        check_complete_and_ordered(device, &later);
        eprintln!(
            "{device}: first session 0..={last} ({} left in the spool), {} of the second session",
            left.iter().filter(|r| r.device == device).count(),
            later.len()
        );
    }
}
