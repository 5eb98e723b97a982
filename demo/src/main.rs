//! `demo`: the whole system in one process on embedded defaults. It composes the parts the
//! way a deployment does, so neither the gateway nor ingest links the other:
//! - [`broker`]: the embedded MQTT broker (rumqttd), in memory; free ports when taken.
//! - [`demo`]: the simulator, the gateway, ingest with the default rule pack and the console,
//!   a synthetic town's registry, and the alerts printed as they fire and resolve.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

mod broker;
mod demo;

/// Runs the whole system in one process on embedded defaults: an embedded MQTT broker,
/// simulated elevators, boilers, water meters and charging piles over Modbus TCP, a gateway,
/// ingest with the default rule pack writing readings to line-protocol files, and the web
/// console. Prints each alert as it fires and resolves.
#[derive(Parser)]
#[command(name = "demo", version = telemetry::version!(), about, long_about = None)]
struct Cli {
    /// Stop cleanly after this long (e.g. `90s`, `5m`); without it, run until Ctrl-C.
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    run_for: Option<Duration>,
    /// Where the line-protocol files and the generated gateway config go.
    #[arg(long, default_value = "demo-data")]
    data_dir: PathBuf,
    /// Where the embedded broker listens; a free port is used when this one is taken.
    #[arg(long, default_value = "127.0.0.1:1883")]
    broker: SocketAddr,
    /// Number of simulated elevators.
    #[arg(long, default_value_t = 2)]
    elevators: usize,
    /// Number of simulated boilers.
    #[arg(long, default_value_t = 1)]
    boilers: usize,
    /// Number of simulated water meters.
    #[arg(long, default_value_t = 2)]
    water_meters: usize,
    /// Number of simulated DC charging piles.
    #[arg(long, default_value_t = 1)]
    charging_piles: usize,
    /// Where the web console listens; a free port is used when this one is taken.
    #[arg(long, default_value = "127.0.0.1:8080")]
    console: SocketAddr,
    /// Log filter, e.g. `warn` or `ingest=debug`. The demo prints its own story on standard
    /// output; the log keeps to warnings unless asked.
    #[arg(long, env = "DEMO_LOG", default_value = "warn,rumqttd=off")]
    log: String,
    /// Log lines as text (coloured only on a terminal) or as JSON, one object per line.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    log_format: telemetry::service::LogFormat,
}

fn main() -> std::process::ExitCode {
    // Before any other thread exists, as ingest's binary does (see there).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; no allocation is in flight.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    telemetry::service::exit_code(runtime.map_err(Into::into).and_then(|rt| rt.block_on(run(cli))))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::service::init_logging(&cli.log, cli.log_format);
    let opts = demo::DemoOptions {
        data_dir: cli.data_dir,
        run_for: cli.run_for,
        broker: cli.broker,
        elevators: cli.elevators,
        boilers: cli.boilers,
        water_meters: cli.water_meters,
        charging_piles: cli.charging_piles,
        console: cli.console,
    };
    demo::run(opts, telemetry::service::shutdown_signal()).await
}
