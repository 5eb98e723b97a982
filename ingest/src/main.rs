use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ingest::IngestConfig;

/// Ingest: consumes readings from MQTT, checks them, evaluates the alert rules, writes readings
/// and alerts to an InfluxDB v2 write endpoint (or rotated line-protocol files), and publishes
/// alert transitions.
#[derive(Parser)]
#[command(version = telemetry::version!(), propagate_version = true, about, long_about = None)]
struct Cli {
    /// Log filter, e.g. `info` or `ingest=debug`.
    #[arg(long, global = true, env = "INGEST_LOG", default_value = "info")]
    log: String,
    /// Log lines as text (coloured only on a terminal) or as JSON, one object per line.
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value = "text")]
    log_format: telemetry::service::LogFormat,
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
    telemetry::service::exit_code(runtime.map_err(Into::into).and_then(|rt| rt.block_on(run(cli))))
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
    telemetry::service::init_logging(&cli.log, cli.log_format);
    match cli.command {
        Command::Run { config } => {
            telemetry::service::readable(&config)?;
            let cfg = IngestConfig::load(&config)?;
            ingest::server::run(cfg, ingest::server::Hooks::default(), telemetry::service::shutdown_signal())
                .await?;
        }
        Command::Check { config } => {
            telemetry::service::readable(&config)?;
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
