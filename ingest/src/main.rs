use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ingest::IngestConfig;

const DEFAULT_LOG: &str = "info,rumqttd=off";

/// Ingest: consumes readings from MQTT, checks them, evaluates the alert rules, writes readings
/// and alerts to an InfluxDB v2 write endpoint (or rotated line-protocol files), and publishes
/// alert transitions.
#[derive(Parser)]
#[command(version = gateway::cli::VERSION, propagate_version = true, about, long_about = None)]
struct Cli {
    /// Log filter, e.g. `info` or `ingest=debug`.
    #[arg(long, global = true, env = "INGEST_LOG", default_value = DEFAULT_LOG)]
    log: String,
    /// Log lines as text (coloured only on a terminal) or as JSON, one object per line.
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value = "text")]
    log_format: gateway::cli::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run ingest with a config file until Ctrl-C or SIGTERM, then write and acknowledge what it
    /// holds. Scalar keys can be overridden with INGEST_{SECTION}__{KEY} variables, e.g.
    /// INGEST_TSDB__TOKEN.
    Run {
        /// The ingest config (TOML); see deploy/ingest.toml.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Run the whole system in one process on embedded defaults: an embedded MQTT broker,
    /// simulated elevators, boilers, water meters and charging piles, a gateway, ingest with the
    /// default rule pack, readings to line-protocol files. Prints each alert as it fires and
    /// resolves.
    Demo {
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
    },
    /// Check a config file and the rule files, profiles and registry it names, as `run` would
    /// load them (nothing is connected to or written); list every problem and exit 1 if any.
    Check {
        /// The ingest config (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Read a password on standard input (one line) and print its argon2id hash for a
    /// `[[console.user]]` entry's `password_hash`.
    HashPassword,
}

fn main() -> std::process::ExitCode {
    // Before any other thread exists: a thread's first allocation picks its arena.
    one_malloc_arena();
    // Arguments first: `--help`, `--version` and a wrong argument end here, before any runtime.
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    gateway::cli::exit_code(runtime.map_err(Into::into).and_then(|rt| rt.block_on(run(cli))))
}

/// One malloc arena for the whole process. glibc gives threads arenas of their own, up to
/// eight per core; ingest's writer moves between tokio's threads (`block_in_place`), so each
/// arena came to hold its own high-water mark of the rules engine's snapshot, and resident
/// memory crept up during a soak (BENCHMARKS.md: 60 MiB and climbing, 17 MiB and flat with
/// one arena). Allocations are mostly served from each thread's cache, without the lock.
/// `GLIBC_TUNABLES=glibc.malloc.arena_max=N` no longer applies.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; no allocation is in flight.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // The demo prints its own story on stdout; keep its log to warnings unless asked.
    let filter = match cli.command {
        Command::Demo { .. } if cli.log == DEFAULT_LOG => "warn,rumqttd=off",
        _ => &cli.log,
    };
    gateway::cli::init_logging(filter, cli.log_format);
    match cli.command {
        Command::Run { config } => {
            gateway::cli::readable(&config)?;
            let cfg = IngestConfig::load(&config)?;
            ingest::server::run(cfg, ingest::server::Hooks::default(), gateway::shutdown_signal()).await?;
        }
        Command::Demo {
            run_for,
            data_dir,
            broker,
            elevators,
            boilers,
            water_meters,
            charging_piles,
            console,
        } => {
            let opts = ingest::demo::DemoOptions {
                data_dir,
                run_for,
                broker,
                elevators,
                boilers,
                water_meters,
                charging_piles,
                console,
            };
            ingest::demo::run(opts, gateway::shutdown_signal()).await?;
        }
        Command::Check { config } => {
            gateway::cli::readable(&config)?;
            match ingest::check::check(&config) {
                Ok(s) => {
                    let registry =
                        s.registered.map(|n| format!(", {n} registered units")).unwrap_or_default();
                    println!("{}: ok ({} rules{registry})", config.display(), s.rules);
                }
                Err(problems) => {
                    for p in &problems {
                        eprintln!("{p}");
                    }
                    anyhow::bail!("{}: {} problem(s)", config.display(), problems.len());
                }
            }
        }
        Command::HashPassword => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!password.is_empty(), "no password on standard input");
            println!("{}", ingest::console::auth::hash_password(password).map_err(anyhow::Error::msg)?);
        }
    }
    Ok(())
}
