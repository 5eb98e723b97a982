//! The bus shell on a paused tokio clock: a line whose connection is an in-memory pipe to the
//! simulator (no sockets, so the clock only moves when every task waits on a timer), and the
//! virtual times at which requests reach it.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_modbus::{Request, Response, Slave};

use super::*;
use crate::health::HealthPolicy;
use crate::sim::{SimPlan, Simulator};
use crate::spool::SpoolHandle;
use crate::GatewayConfig;

const FROZEN_AT: i64 = 1_795_000_000_000;
const SECOND: Duration = Duration::from_secs(1);
const MS: fn(u64) -> Duration = Duration::from_millis;

fn one_boiler() -> Arc<Simulator> {
    let plan = SimPlan::without_faults(&[("boiler", 1)]);
    Arc::new(Simulator::new(&plan, FROZEN_AT).unwrap().frozen_at(FROZEN_AT))
}

/// The simulator's line (polled every second, 1 s timeout), and a publisher spooling to a
/// fresh folder named after the test.
fn line_and_publisher(sim: &Simulator, dir: &std::path::Path) -> (Line, Publisher, SpoolHandle) {
    let link = crate::line::Link::Tcp { address: "127.0.0.1:1".into() };
    let text = sim.gateway_config_on("gw-t", &link, "mqtt://127.0.0.1:1", SECOND);
    let cfg = GatewayConfig::from_toml(&text).unwrap();
    let lines = cfg.build().unwrap();
    let _ = std::fs::remove_dir_all(dir);
    let spool = SpoolHandle::open(dir, cfg.spool.spool_config()).unwrap();
    let (publisher, _eventloop) = Publisher::new(&cfg, &lines, 1, spool.clone()).unwrap();
    (lines.into_iter().next().unwrap(), publisher, spool)
}

/// Virtual times at which requests arrived, since the test began.
type Arrivals = Arc<Mutex<Vec<Duration>>>;

/// Serves Modbus TCP on `stream` as the simulator answers (or not at all when `answer` is
/// false), noting when each request arrives.
async fn serve(
    mut stream: DuplexStream,
    sim: Arc<Simulator>,
    answer: bool,
    start: Instant,
    arrivals: Arrivals,
) {
    let mut header = [0u8; 7];
    while stream.read_exact(&mut header).await.is_ok() {
        let mut pdu = vec![0u8; usize::from(u16::from_be_bytes([header[4], header[5]])) - 1];
        if stream.read_exact(&mut pdu).await.is_err() {
            return;
        }
        arrivals.lock().unwrap().push(start.elapsed());
        if !answer {
            continue;
        }
        let (fc, address, count) =
            (pdu[0], u16::from_be_bytes([pdu[1], pdu[2]]), u16::from_be_bytes([pdu[3], pdu[4]]));
        let request = match fc {
            1 => Request::ReadCoils(address, count),
            2 => Request::ReadDiscreteInputs(address, count),
            3 => Request::ReadHoldingRegisters(address, count),
            _ => Request::ReadInputRegisters(address, count),
        };
        let reply = match sim.answer(header[6], &request, FROZEN_AT) {
            Ok(Response::ReadCoils(bits) | Response::ReadDiscreteInputs(bits)) => {
                let mut bytes = vec![0u8; bits.len().div_ceil(8)];
                for (i, _) in bits.iter().enumerate().filter(|(_, &b)| b) {
                    bytes[i / 8] |= 1 << (i % 8);
                }
                [vec![fc, bytes.len() as u8], bytes].concat()
            }
            Ok(Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words)) => {
                let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
                [vec![fc, bytes.len() as u8], bytes].concat()
            }
            Ok(other) => panic!("not a read: {other:?}"),
            Err(code) => vec![fc | 0x80, u8::from(code)],
        };
        let length = (reply.len() as u16 + 1).to_be_bytes();
        let frame = [&header[..4], &length, &header[6..7], &reply].concat();
        if stream.write_all(&frame).await.is_err() {
            return;
        }
    }
}

/// Runs the line for `run_for` of virtual time, each connection a fresh pipe to the
/// simulator; returns when requests arrived and how many readings were spooled.
async fn run_for(name: &str, answer: bool, policy: HealthPolicy, run_for: Duration) -> (Vec<Duration>, u64) {
    let sim = one_boiler();
    let dir = std::env::temp_dir().join(format!("gw-bus-{name}-{}", std::process::id()));
    let (line, publisher, spool) = line_and_publisher(&sim, &dir);
    let start = Instant::now();
    let arrivals = Arrivals::default();
    let (arrived, served) = (arrivals.clone(), sim.clone());
    let open_line = move || {
        let (client, server) = tokio::io::duplex(4096);
        tokio::spawn(serve(server, served.clone(), answer, start, arrived.clone()));
        std::future::ready(Ok(Connection::Modbus(tokio_modbus::client::tcp::attach_slave(client, Slave(1)))))
    };
    let (stop, shutdown) = watch::channel(false);
    let options = BusOptions { status_every: Duration::from_secs(60), policy };
    let poller = tokio::spawn(run_line_on(line, open_line, publisher, options, shutdown));
    tokio::time::sleep(run_for).await;
    stop.send(true).unwrap();
    poller.await.unwrap();
    let arrivals = arrivals.lock().unwrap().clone();
    let spooled = spool.pending();
    drop(spool);
    let _ = std::fs::remove_dir_all(&dir);
    (arrivals, spooled)
}

/// Requests that arrive together (within a millisecond) as one poll, by the time it started.
fn polls(arrivals: &[Duration]) -> Vec<Duration> {
    let mut out: Vec<Duration> = Vec::new();
    for &t in arrivals {
        if out.last().is_none_or(|&last| t - last > MS(1)) {
            out.push(t);
        }
    }
    out
}

fn gaps(times: &[Duration]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn an_answering_device_is_polled_once_per_interval_on_virtual_time() {
    let wall = std::time::Instant::now();
    let (arrivals, spooled) = run_for("answering", true, HealthPolicy::default(), MS(10_500)).await;
    let polls = polls(&arrivals);
    assert!(polls[0] < SECOND, "the first poll comes within the first interval: {polls:?}");
    assert_eq!(gaps(&polls), vec![SECOND; polls.len() - 1], "{polls:?}");
    assert!((10..=11).contains(&polls.len()), "{polls:?}");
    assert_eq!(spooled as usize, polls.len(), "one reading spooled per poll");
    assert!(wall.elapsed() < Duration::from_secs(5), "no real sleeping: {:?}", wall.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_silent_device_is_retried_with_backoff_then_quarantined_and_probed_less_often() {
    let policy = HealthPolicy {
        quarantine_after: 3,
        retry_first: MS(100),
        probe_first: SECOND,
        probe_max: Duration::from_secs(4),
    };
    let (arrivals, spooled) = run_for("silent", false, policy, Duration::from_secs(30)).await;
    // Each poll is one request that times out after the line's 1 s; the next comes after the
    // retry or probe wait, counted from the timeout: retries of 100 and 200 ms, then (after
    // the third failure, quarantined) probes 1 s, 2 s, then at most 4 s apart.
    let timeout = SECOND;
    let want = [MS(100), MS(200), SECOND, MS(2_000), MS(4_000), MS(4_000), MS(4_000)].map(|w| timeout + w);
    let gaps = gaps(&arrivals);
    assert_eq!(gaps[..want.len()], want, "{arrivals:?}");
    assert_eq!(spooled, 0, "a poll that read nothing is no reading");
}
