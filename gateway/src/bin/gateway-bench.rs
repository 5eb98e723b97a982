//! Load tool for the gateway (not a timed test): the simulator serves DEVICES synthetic devices
//! of POINTS points over Modbus TCP on LINES loopback listeners, a Mosquitto runs on a free
//! port, and the gateway (this binary again, as a child process running `gateway::run`, so its
//! CPU and memory are its own) polls them all at INTERVAL for DURATION. Prints JSON: the
//! gateway's CPU time (user + sys from /proc/PID/stat) and peak RSS (VmHWM), readings
//! published, and requests per cycle counted by the simulator against the planner's minimum.
//!
//! cargo run --release -p gateway --bin gateway-bench -- [--devices 1000] [--points 100]
//!     [--lines 5] [--interval 1s] [--duration 60s] [--warm-up 10s] [--max-transactions 1]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use gateway::sim::model::{synthetic_profile, FaultSchedule, Model};
use gateway::sim::{SimDevice, Simulator};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use tokio::sync::watch;

/// Load tool for the gateway: simulated devices over Modbus TCP, a Mosquitto on a free port, and
/// the gateway polling them all; prints its CPU time, peak memory and requests per cycle as JSON.
#[derive(Parser)]
#[command(name = "gateway-bench", version = telemetry::version!())]
struct Args {
    /// Simulated devices.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Points per device (a synthetic profile).
    #[arg(long, default_value_t = 100)]
    points: usize,
    /// Listeners (lines) the devices are spread over; at most 247 devices each.
    #[arg(long, default_value_t = 5)]
    lines: usize,
    /// Each device's poll interval.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// How long the gateway polls.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The start of the run left out of the rates (connections, first polls).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    warm_up: Duration,
    /// Reads in flight at once on each line (the lines' `max_transactions`).
    #[arg(long, default_value_t = 1)]
    max_transactions: u16,
    /// Internal: run the gateway on this config (the child process).
    #[arg(long, hide = true)]
    run_gateway: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    telemetry::service::exit_code(match &args.run_gateway {
        // The gateway on the runtime `gateway run` uses.
        Some(config) => {
            gateway::runtime().map_err(Into::into).and_then(|rt| rt.block_on(run_gateway(config)))
        }
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(Into::into)
            .and_then(|rt| rt.block_on(bench(&args))),
    })
}

/// The child: exactly what `gateway run` does.
async fn run_gateway(config: &Path) -> anyhow::Result<()> {
    telemetry::service::init_logging("warn", telemetry::service::LogFormat::Text);
    let cfg = gateway::GatewayConfig::load(config)?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            term.recv().await;
        }
        let _ = tx.send(true);
    });
    gateway::run(cfg, rx).await?;
    Ok(())
}

/// A child process killed on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn mosquitto(dir: &Path) -> anyhow::Result<(Guard, u16)> {
    let port = free_port()?;
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 1000\nmax_queued_messages 100000\n"),
    )?;
    let bin = ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .context("mosquitto is not installed: apt-get install -y mosquitto")?;
    let log = std::fs::File::create(dir.join("mosquitto.log"))?;
    let child = Command::new(bin).arg("-c").arg(&conf).stdout(Stdio::null()).stderr(log).spawn()?;
    let guard = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("mosquitto did not listen on {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((guard, port))
}

/// Context switches (voluntary + involuntary) of the live threads of process `pid`: each is a
/// wake-up, and on these virtual machines they cost more than the work they wake for.
fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// (user + sys CPU seconds, peak RSS in KiB) of process `pid`.
fn usage(pid: u32, ticks_per_second: f64) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (tick(11) + tick(12)) / ticks_per_second;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (cpu, hwm)
}

fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

async fn bench(args: &Args) -> anyhow::Result<()> {
    let per_line = args.devices.div_ceil(args.lines.max(1));
    if per_line > 247 {
        bail!("{} devices on {} lines is more than 247 a line", args.devices, args.lines);
    }
    let dir = std::env::temp_dir().join(format!("gateway-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("profiles"))?;
    let name = format!("synthetic-{}", args.points);
    let profile = Arc::new(synthetic_profile(&name, args.points));
    let text = gateway::profile_toml::to_toml(&profile, "synthetic load-test profile");
    std::fs::write(dir.join("profiles").join(format!("{name}.toml")), text)?;
    let (_broker, port) = mosquitto(&dir)?;

    // The simulator: `lines` listeners of up to 200 units each.
    let (_stop, stop_rx) = watch::channel(false);
    let mut sims = Vec::new();
    let interval = humantime::format_duration(args.interval).to_string();
    let mut config = format!(
        "profiles_dir = {:?}\n\n[gateway]\nid = \"gw-bench\"\nstatus_every = \"10s\"\n\n\
         [mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n\n[spool]\ndir = {:?}\n",
        dir.join("profiles").display().to_string(),
        dir.join("spool").display().to_string()
    );
    let mut devices = 0;
    for line in 0..args.lines {
        let count = per_line.min(args.devices - devices);
        let sim_devices = (0..count).map(|k| SimDevice {
            id: format!("syn-{line}-{:03}", k + 1),
            unit: (k + 1) as u8,
            profile: profile.clone(),
            model: Model::Synthetic,
            index: devices + k,
            faults: FaultSchedule::none(),
        });
        let sim = Arc::new(Simulator::of_devices(sim_devices)?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        tokio::spawn(gateway::sim::serve(listener, sim.clone(), stop_rx.clone()));
        config += &format!(
            "\n[[line]]\nname = \"line-{line}\"\ntransport = \"tcp\"\naddress = \"{address}\"\nmax_transactions = {}\n",
            args.max_transactions
        );
        for d in sim.devices() {
            config += &format!(
                "\n[[device]]\nid = \"{}\"\nline = \"line-{line}\"\nunit = {}\nprofile = \"{name}\"\ninterval = \"{interval}\"\n",
                d.id, d.unit
            );
        }
        devices += count;
        sims.push(sim);
    }
    let config_path = dir.join("gateway.toml");
    std::fs::write(&config_path, &config)?;
    let minimum_per_cycle = gateway::planner::plan(&profile).len() * devices;

    // Count what reaches the broker.
    let readings = Arc::new(AtomicU64::new(0));
    let mut options = MqttOptions::new("bench-counter", "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    client.subscribe("telemetry/#", QoS::AtMostOnce).await?;
    let counted = readings.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::Publish(_))) => {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });

    let log = std::fs::File::create(dir.join("gateway.log"))?;
    let child = Command::new(std::env::current_exe()?)
        .arg("--run-gateway")
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let pid = child.id();
    let mut gateway = Guard(child);
    let ticks = ticks_per_second();
    let started = Instant::now();
    let requests = || sims.iter().map(|s| s.counters().requests()).sum::<u64>();
    let exceptions = || sims.iter().map(|s| s.counters().exceptions()).sum::<u64>();

    tokio::time::sleep(args.warm_up).await;
    let (cpu0, _) = usage(pid, ticks);
    let switches0 = context_switches(pid);
    let (req0, read0, t0) = (requests(), readings.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(args.duration.saturating_sub(args.warm_up)).await;
    let (cpu1, peak_rss_kib) = usage(pid, ticks);
    let switches1 = context_switches(pid);
    let (req1, read1, t1) = (requests(), readings.load(Ordering::Relaxed), Instant::now());
    let total = started.elapsed().as_secs_f64();
    if let Ok(Some(status)) = gateway.0.try_wait() {
        bail!("the gateway exited early ({status}); see {}", dir.join("gateway.log").display());
    }
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = gateway.0.wait();

    let window = (t1 - t0).as_secs_f64();
    let cycles = window / args.interval.as_secs_f64();
    let measured_per_cycle = (req1 - req0) as f64 / cycles;
    let report = serde_json::json!({
        "date": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "devices": devices,
        "points_per_device": args.points,
        "lines": args.lines,
        "max_transactions": args.max_transactions,
        "interval_s": args.interval.as_secs_f64(),
        "run_s": (total * 10.0).round() / 10.0,
        "window_s": (window * 10.0).round() / 10.0,
        "gateway": {
            "cpu_s_total": cpu1,
            "cpu_s_window": cpu1 - cpu0,
            "cpu_percent_of_one_core": ((cpu1 - cpu0) / window * 1000.0).round() / 10.0,
            "peak_rss_mib": (peak_rss_kib as f64 / 1024.0 * 10.0).round() / 10.0,
            "context_switches_per_s": (switches1.saturating_sub(switches0) as f64 / window).round(),
        },
        "readings_published_total": read1,
        "readings_per_s": ((read1 - read0) as f64 / window).round(),
        "values_per_s": ((read1 - read0) as f64 / window * args.points as f64).round(),
        "requests_per_cycle": (measured_per_cycle * 10.0).round() / 10.0,
        "planner_minimum_per_cycle": minimum_per_cycle,
        "requests_per_device_per_cycle_minimum": minimum_per_cycle / devices.max(1),
        "simulator_requests_total": req1,
        "simulator_exceptions": exceptions(),
        "targets": {
            "rss_below_64_mib": peak_rss_kib < 64 * 1024,
            "cpu_below_10_percent": (cpu1 - cpu0) / window < 0.10,
            "requests_at_minimum": (measured_per_cycle - minimum_per_cycle as f64).abs() / (minimum_per_cycle as f64) < 0.01,
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
