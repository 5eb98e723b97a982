use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rules::rule_file::expand;
use rules::{unit_test, RuleSet};

mod registry_cli;

/// Tools for engineers who write rule files: check them and unit-test them offline, before they
/// reach ingest.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check rule files: TOML schema, rule types and their keys, CEL expressions and window
    /// functions, durations, severities, templates, and rule ids (with the `{id}.{code name}`
    /// ids of per_code rules) unique across all files. Prints `file:line:column: message` for
    /// every problem. Exit code 0: all good; 1: problems found.
    Check {
        /// Rule files (TOML), or folders whose `*.toml` files are all checked.
        #[arg(required = true)]
        files: Vec<PathBuf>,
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

fn check(files: &[PathBuf]) -> ExitCode {
    let files = expand(files);
    match RuleSet::load(&files) {
        Ok(set) => {
            println!("ok: {} rules in {} files", set.rules.len(), files.len());
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            eprintln!("{} problems", diagnostics.len());
            ExitCode::from(1)
        }
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
        Command::Check { files } => check(&files),
        Command::Test { files } => test(&files),
        Command::Registry(command) => registry_cli::run(command),
    }
}
