use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use gateway::config::{Link, SerialFrame};
use gateway::sim::{LineFaults, SerialDevice, SimPlan, Simulator};
use gateway::GatewayConfig;
use tokio::sync::watch;

/// Edge gateway: polls Modbus devices (elevators, boilers, water meters, charging piles) and
/// publishes their readings over MQTT at QoS 1.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Log filter, e.g. `info` or `gateway=debug` (overrides RUST_LOG).
    #[arg(long, global = true, env = "GATEWAY_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Poll the devices of a config file and publish their readings until Ctrl-C or SIGTERM.
    Run {
        /// The gateway config (TOML). Scalar keys can be overridden with GATEWAY_{SECTION}__{KEY}
        /// variables, e.g. GATEWAY_MQTT__URL=mqtt://127.0.0.1:1884.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate a config file and print each device's Modbus read requests.
    Plan {
        /// The gateway config (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Serve simulated devices over Modbus TCP (or RTU over TCP, or RTU on a serial device),
    /// one unit id per device, faults coming and going.
    Sim(Box<SimArgs>),
}

#[derive(clap::Args)]
struct SimArgs {
    /// Address to listen on (port 0 picks a free one; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:5020")]
    listen: SocketAddr,
    /// Speak RTU framing (unit, PDU, CRC) on the TCP listener instead of Modbus TCP, as a
    /// device behind a serial-to-TCP converter (DTU) does.
    #[arg(long, conflicts_with = "serial")]
    rtu_over_tcp: bool,
    /// Serve Modbus RTU on this serial device instead of listening on TCP, e.g. one end of a
    /// pty pair: `socat pty,raw,echo=0,link=/tmp/sim pty,raw,echo=0,link=/tmp/gw`.
    #[arg(long, value_name = "PATH", conflicts_with = "listen")]
    serial: Option<String>,
    /// Speed of the serial device (8N1).
    #[arg(long, default_value_t = 9600, requires = "serial")]
    baud: u32,
    /// The serial device the gateway opens, for --write-config with --serial (with a pty pair:
    /// the other end).
    #[arg(long, value_name = "PATH", requires = "serial")]
    client_port: Option<String>,
    /// Number of simulated elevators (profile elevator-box-v1).
    #[arg(long, default_value_t = 2)]
    elevators: usize,
    /// Number of simulated boilers (profile boiler-ctl-v1).
    #[arg(long, default_value_t = 1)]
    boilers: usize,
    /// Number of simulated water meters (profile water-meter-v1).
    #[arg(long, default_value_t = 2)]
    water_meters: usize,
    /// Number of simulated DC charging piles (profile charging-pile-dc-v1).
    #[arg(long, default_value_t = 1)]
    charging_piles: usize,
    /// Each device's fault repeats this often.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    fault_period: Duration,
    /// How long each fault lasts (0s: no faults).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    fault_duration: Duration,
    /// Delay from start to the first device's first fault.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    fault_delay: Duration,
    /// Delay between the faults of successive devices.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    fault_stagger: Duration,
    /// Also write a gateway config that polls these devices to this file.
    #[arg(long)]
    write_config: Option<PathBuf>,
    /// MQTT URL for the written config.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    mqtt_url: String,
    /// Gateway id for the written config.
    #[arg(long, default_value = "gw-sim")]
    gateway_id: String,
    /// Poll interval for the written config.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Units that never answer (a timeout on TCP and RTU alike), e.g. `3,5`.
    #[arg(long, value_delimiter = ',', value_parser = gateway::sim::faults::parse_unit, value_name = "UNITS")]
    dead_units: Vec<u8>,
    /// UNIT:ADDRESS: the unit answers exception 2 (illegal data address) to any read of holding
    /// or input registers covering the address, e.g. `3:104`. Repeatable or comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = gateway::sim::faults::parse_unit_address, value_name = "UNIT:ADDRESS")]
    illegal_address: Vec<(u8, u16)>,
    /// UNIT:DELAY: the unit answers only after the delay, e.g. `4:300ms`. Comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = gateway::sim::faults::parse_unit_delay, value_name = "UNIT:DELAY")]
    slow_units: Vec<(u8, Duration)>,
}

fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        let _ = tx.send(true);
    });
    rx
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Run { config } => {
            let cfg = GatewayConfig::load(&config)?;
            gateway::run(cfg, shutdown_signal()).await?;
        }
        Command::Plan { config } => {
            let cfg = GatewayConfig::load(&config)?;
            for line in cfg.build()? {
                println!("line {} ({})", line.config.name, line.link);
                for d in &line.devices {
                    println!(
                        "  device {} unit {} profile {}: {} requests",
                        d.config.id,
                        d.config.unit,
                        d.profile.name,
                        d.plan.len()
                    );
                    for r in &d.plan {
                        let names: Vec<&str> =
                            r.points.iter().map(|&i| d.profile.points[i].name.as_str()).collect();
                        println!(
                            "    {:<8} {:>5} +{:<4} {}",
                            r.table.name(),
                            r.start,
                            r.count,
                            names.join(", ")
                        );
                    }
                }
            }
        }
        Command::Sim(args) => run_sim(*args).await?,
    }
    Ok(())
}

async fn run_sim(args: SimArgs) -> anyhow::Result<()> {
    let plan = SimPlan {
        counts: vec![
            ("elevator".into(), args.elevators),
            ("boiler".into(), args.boilers),
            ("water_meter".into(), args.water_meters),
            ("charging_pile".into(), args.charging_piles),
        ],
        fault_period: args.fault_period,
        fault_duration: args.fault_duration,
        fault_delay: args.fault_delay,
        fault_stagger: args.fault_stagger,
    };
    let faults = LineFaults {
        dead_units: args.dead_units.iter().copied().collect(),
        illegal_addresses: args.illegal_address.iter().copied().collect(),
        slow_units: args.slow_units.iter().copied().collect(),
    };
    let sim = Arc::new(Simulator::new(&plan, gateway::bus::now_ms())?.with_line_faults(faults));
    if let Some(path) = &args.serial {
        let port = SerialDevice::open(path, args.baud)?;
        if let Some(config) = &args.write_config {
            let client_port = args.client_port.as_ref().context(
                "--write-config with --serial needs --client-port: the serial device the gateway opens \
                 (with a pty pair, the other end)",
            )?;
            let frame = SerialFrame { baud: args.baud, ..SerialFrame::default() };
            write_config(config, &sim, &args, &Link::Rtu { port: client_port.clone(), frame })?;
        }
        println!("simulator serving Modbus RTU on {path} at {} 8N1", args.baud);
        print_devices(&sim);
        gateway::sim::serve_serial(port, sim, shutdown_signal()).await?;
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let link = if args.rtu_over_tcp {
        Link::RtuOverTcp { address: addr.to_string() }
    } else {
        Link::Tcp { address: addr.to_string() }
    };
    if let Some(config) = &args.write_config {
        write_config(config, &sim, &args, &link)?;
    }
    if args.rtu_over_tcp {
        println!("simulator listening on {addr} (RTU over TCP)");
        print_devices(&sim);
        gateway::sim::serve_rtu_over_tcp(listener, sim, shutdown_signal()).await?;
    } else {
        println!("simulator listening on {addr}");
        print_devices(&sim);
        gateway::sim::serve(listener, sim, shutdown_signal()).await?;
    }
    Ok(())
}

fn print_devices(sim: &Simulator) {
    let faults = sim.line_faults();
    for d in sim.devices() {
        let mut notes = Vec::new();
        if faults.dead_units.contains(&d.unit) {
            notes.push("dead (never answers)".to_string());
        }
        for (_, address) in faults.illegal_addresses.iter().filter(|(u, _)| *u == d.unit) {
            notes.push(format!("refuses address {address}"));
        }
        if let Some(delay) = faults.slow_units.get(&d.unit) {
            notes.push(format!("answers after {}", humantime::format_duration(*delay)));
        }
        let notes = if notes.is_empty() { String::new() } else { format!("  [{}]", notes.join(", ")) };
        println!("  unit {:>3}  {:<12} {}{notes}", d.unit, d.id, d.profile.name);
    }
}

/// Writes the gateway config whole or not at all (a reader never sees half of it). Its spool is
/// the folder `spool` beside it, so each written config has its own.
fn write_config(path: &Path, sim: &Simulator, args: &SimArgs, link: &Link) -> anyhow::Result<()> {
    let text = sim.gateway_config_on(&args.gateway_id, link, &args.mqtt_url, args.interval)
        + "\n[spool]\ndir = \"spool\"   # beside this file\n";
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text).with_context(|| format!("write {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))?;
    Ok(())
}
