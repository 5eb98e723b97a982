use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rules::profiles::Profiles;
use rules::rule_file::expand;
use rules::{backtest, unit_test, Diagnostic, RuleSet};

mod backtest_cli;
mod registry_cli;

/// `0.1.0 (commit abc1234)`; the commit is `unknown` outside a git checkout (build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("GIT_COMMIT"), ")");

/// Tools for engineers who write rule files: check them and unit-test them offline, before they
/// reach ingest.
#[derive(Parser)]
#[command(version = VERSION, propagate_version = true, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check rule files: TOML schema, rule types and their keys, CEL expressions and window
    /// functions, durations, severities, templates, rule ids (with the `{id}.{code name}` ids
    /// of per_code rules) unique across all files, and point names against gateway profiles.
    /// Prints `file:line:column: message` for every problem of every file, and
    /// `file:line:column: warning: message` for a kind no profile has. Exit code 0: no
    /// problems (warnings allowed); 1: problems found.
    Check {
        /// A folder of gateway profiles (TOML) to check against instead of the built-in ones:
        /// every point name a rule reads must be a point or named bit of a profile of one of
        /// its kinds.
        #[arg(long)]
        profiles: Option<PathBuf>,
        /// Rule files (TOML), or folders whose `*.toml` files are all checked.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Replay recorded readings through the rules on a virtual clock and show what would have
    /// fired: every transition with its time, and per rule the firings, time firing and
    /// devices. Exit code 0, or 1 if the rules or the input could not be read.
    Backtest {
        /// Rule files or folders.
        #[arg(long, required = true, num_args = 1..)]
        rules: Vec<PathBuf>,
        /// Recorded readings: ingest's line-protocol files (ms timestamps) or JSON lines of v1
        /// payloads.
        #[arg(long)]
        input: PathBuf,
        #[arg(long, value_enum, default_value = "lp")]
        format: InputFormat,
        /// The equipment registry (CSV), for `device.` attributes and inspection rules.
        #[arg(long)]
        registry: Option<PathBuf>,
        /// A folder of gateway profiles: the decimals summaries show each point's values to.
        #[arg(long)]
        profiles: Option<PathBuf>,
        /// How often the virtual clock ticks (no-data rules, reminders).
        #[arg(long, default_value = "1s")]
        tick: humantime::Duration,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run rule unit tests: input series on a virtual clock and the alerts expected to fire and
    /// resolve (see the README's Rules section). A failed expectation prints what happened
    /// instead, with times. Exit code 0: all passed; 1: a test failed or could not run.
    Test {
        /// Test files (TOML), or folders whose `*.toml` files are all run.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The equipment registry (CSV): check it, write a synthetic one, show the overdue rate.
    #[command(subcommand)]
    Registry(registry_cli::RegistryCommand),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum InputFormat {
    Lp,
    Jsonl,
}

/// Every problem of every file, in one run: schema and rule errors, then point names against
/// the profiles for the rules that are valid. Errors print as `file:line:column: message`,
/// warnings as `file:line:column: warning: message`; only errors fail the check.
fn check(files: &[PathBuf], profiles: Option<&PathBuf>) -> ExitCode {
    let files = expand(files);
    let (set, mut errors) = RuleSet::load_partly(&files);
    let mut warnings = Vec::new();
    let profiles = match profiles {
        Some(dir) => Profiles::load_dir(dir),
        None => Ok(Profiles::built_in()),
    };
    match profiles {
        Ok(profiles) => {
            let texts = (files.iter())
                .filter_map(|f| Some((f.display().to_string(), std::fs::read_to_string(f).ok()?)))
                .collect();
            errors.extend(rules::profiles::check(&set, &texts, &profiles));
            warnings = rules::profiles::unknown_kinds(&set, &texts, &profiles);
        }
        Err(problems) => errors.extend(problems),
    }
    let order = |d: &Diagnostic| {
        let file = files.iter().position(|f| f.display().to_string() == d.file);
        (file, d.file.clone(), d.line, d.column)
    };
    let mut all: Vec<(&Diagnostic, bool)> =
        errors.iter().map(|d| (d, false)).chain(warnings.iter().map(|d| (d, true))).collect();
    all.sort_by_key(|(d, _)| order(d));
    for (d, warning) in all {
        match warning {
            true => eprintln!("{}:{}:{}: warning: {}", d.file, d.line, d.column, d.message),
            false => eprintln!("{d}"),
        }
    }
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let warned = match warnings.len() {
        0 => String::new(),
        n => format!(", {}", plural(n, "warning")),
    };
    if errors.is_empty() {
        println!("ok: {} rules in {} files{warned}", set.rules.len(), files.len());
        ExitCode::SUCCESS
    } else {
        eprintln!("{}{warned}", plural(errors.len(), "problem"));
        ExitCode::from(1)
    }
}

fn test(files: &[PathBuf]) -> ExitCode {
    let files = expand(files);
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        match unit_test::run_file(file) {
            Ok(outcome) => {
                print!("{}", outcome.render());
                if outcome.passed() {
                    passed += 1;
                } else {
                    failed += 1;
                }
            }
            Err(diagnostics) => {
                println!("ERROR {}", file.display());
                for d in &diagnostics {
                    println!("  {d}");
                }
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { files, profiles } => check(&files, profiles.as_ref()),
        Command::Backtest { rules, input, format, registry, profiles, tick, json } => {
            let format = match format {
                InputFormat::Lp => backtest::Format::LineProtocol,
                InputFormat::Jsonl => backtest::Format::JsonLines,
            };
            backtest_cli::run(
                &rules,
                &input,
                format,
                registry.as_deref(),
                profiles.as_deref(),
                tick.into(),
                json,
            )
        }
        Command::Test { files } => test(&files),
        Command::Registry(command) => registry_cli::run(command),
    }
}
