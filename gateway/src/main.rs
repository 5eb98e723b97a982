use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use gateway::config::{Link, SerialFrame};
use gateway::sim::{LineFaults, SerialDevice, SimPlan, Simulator};
use gateway::GatewayConfig;

/// Edge gateway: polls Modbus devices (elevators, boilers, water meters, charging piles) and
/// publishes their readings over MQTT at QoS 1.
#[derive(Parser)]
#[command(version = telemetry::version!(), propagate_version = true, about, long_about = None)]
struct Cli {
    /// Log filter, e.g. `info` or `gateway=debug` (overrides RUST_LOG).
    #[arg(long, global = true, env = "GATEWAY_LOG", default_value = "info")]
    log: String,
    /// Log lines as text (coloured only on a terminal) or as JSON, one object per line.
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value = "text")]
    log_format: telemetry::service::LogFormat,
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
    /// Validate a config file and print each device's Modbus read requests, per point group,
    /// and the requests per cycle.
    Plan {
        /// The gateway config (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Turn a register sheet (CSV, one row per point) into a profile. Every bad row is
    /// reported with its line and column and left out; the exit status is then 1.
    ImportCsv(ImportArgs),
    /// Serve simulated devices over Modbus TCP (or RTU over TCP, or RTU on a serial device),
    /// one unit id per device, faults coming and going.
    Sim(Box<SimArgs>),
}

#[derive(clap::Args)]
struct ImportArgs {
    /// The sheet: a header row naming the columns (name, table, address, type, order, length,
    /// scale, offset, unit, bits, codes, interval, description), then one row per point.
    sheet: PathBuf,
    /// The equipment kind (`boiler`, `elevator`, …).
    #[arg(long)]
    kind: String,
    /// The profile's name (default: the sheet's file name without `.csv`).
    #[arg(long)]
    name: Option<String>,
    /// The profile's description.
    #[arg(long)]
    description: Option<String>,
    /// Most registers per request the firmware answers (default 125).
    #[arg(long)]
    max_registers: Option<u16>,
    /// Most coils or discrete inputs per request (default 2000).
    #[arg(long)]
    max_bits: Option<u16>,
    /// Largest hole of unused addresses a request may read across (default 0).
    #[arg(long)]
    max_gap: Option<u16>,
    /// Where to write the profile (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
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
    /// Number of simulated AC charging piles (profile charging-pile-ac-v1).
    #[arg(long, default_value_t = 0)]
    ac_piles: usize,
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::service::init_logging(&cli.log, cli.log_format);
    telemetry::service::exit_code(run(cli.command))
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run { config } => {
            telemetry::service::readable(&config)?;
            let cfg = GatewayConfig::load(&config)?;
            gateway::runtime()?
                .block_on(async { gateway::run(cfg, telemetry::service::shutdown_signal()).await })?;
        }
        Command::Plan { config } => {
            telemetry::service::readable(&config)?;
            let cfg = GatewayConfig::load(&config)?;
            print!("{}", plan_text(&cfg.build()?));
        }
        Command::ImportCsv(args) => return import_csv(args),
        Command::Sim(args) => {
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run_sim(*args))?
        }
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
            ("charging_pile_ac".into(), args.ac_piles),
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
    let sim = Arc::new(Simulator::new(&plan, telemetry::now_ms())?.with_line_faults(faults));
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
        gateway::sim::serve_serial(port, sim, telemetry::service::shutdown_signal()).await?;
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
        gateway::sim::serve_rtu_over_tcp(listener, sim, telemetry::service::shutdown_signal()).await?;
    } else {
        println!("simulator listening on {addr}");
        print_devices(&sim);
        gateway::sim::serve(listener, sim, telemetry::service::shutdown_signal()).await?;
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

/// What `gateway plan` prints: per line, each device's point groups with their requests, and
/// the requests per cycle (every group once) and per second.
fn plan_text(lines: &[gateway::config::Line]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let (mut cycle, mut per_second, mut devices) = (0usize, 0f64, 0usize);
    for line in lines {
        let _ = writeln!(out, "line {} ({})", line.config.name, line.link);
        for d in &line.devices {
            devices += 1;
            let requests: usize = d.groups.iter().map(|g| g.plan.len()).sum();
            cycle += requests;
            per_second += d.requests_per_second();
            let _ = writeln!(
                out,
                "  device {} unit {} profile {}: {} per cycle",
                d.config.id,
                d.config.unit,
                d.profile.name,
                count(requests, "request")
            );
            for g in &d.groups {
                let _ = writeln!(
                    out,
                    "    every {}: {}, {}",
                    humantime::format_duration(g.interval),
                    count(g.points.len(), "point"),
                    count(g.plan.len(), "request")
                );
                for r in &g.plan {
                    let names: Vec<&str> =
                        r.points.iter().map(|&i| d.profile.points[i].name.as_str()).collect();
                    let _ = writeln!(
                        out,
                        "      {:<8} {:>5} +{:<4} {}",
                        r.table.name(),
                        r.start,
                        r.count,
                        names.join(", ")
                    );
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "total: {}, {} per cycle (every group once), {per_second:.1} requests/s",
        count(devices, "device"),
        count(cycle, "request")
    );
    out
}

/// `1 request`, `3 requests`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn import_csv(args: ImportArgs) -> anyhow::Result<()> {
    let sheet = args.sheet.display().to_string();
    telemetry::service::readable(&args.sheet)?;
    let text = std::fs::read_to_string(&args.sheet).with_context(|| format!("cannot read {sheet}"))?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.sheet.file_stem().map_or_else(|| "profile".into(), |s| s.to_string_lossy().into_owned())
    });
    let options = gateway::csv_import::SheetOptions {
        kind: args.kind,
        name: name.clone(),
        description: args.description,
        max_registers: args.max_registers,
        max_bits: args.max_bits,
        max_gap: args.max_gap,
    };
    let imported = gateway::csv_import::import(&text, &options).with_context(|| sheet.clone())?;
    for e in &imported.errors {
        eprintln!("{sheet}: {e}; row left out");
    }
    let comment = format!(
        "Profile {name}, made by `gateway import-csv` from {} ({} points).",
        args.sheet.file_name().map_or(sheet.clone(), |f| f.to_string_lossy().into_owned()),
        imported.profile.points.len()
    );
    let toml = gateway::profile_toml::to_toml(&imported.profile, &comment);
    gateway::profile::Profile::parse(&name, "the imported profile", &toml)?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &toml).with_context(|| format!("write {}", path.display()))?;
            eprintln!("{}: {} points", path.display(), imported.profile.points.len());
        }
        None => print!("{toml}"),
    }
    if !imported.errors.is_empty() {
        eprintln!("{sheet}: {} bad rows left out", imported.errors.len());
        std::process::exit(1);
    }
    Ok(())
}
