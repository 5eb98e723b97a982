use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rules::RuleSet;

/// Tools for engineers who write rule files: check them offline, before they reach ingest.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check rule files: TOML schema, CEL expressions, durations, severities, templates, and
    /// rule ids unique across all files. Prints `file:line:column: message` for every problem.
    /// Exit code 0: all good; 1: problems found.
    Check {
        /// Rule files (TOML), or folders whose `*.toml` files are all checked.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Files named directly, and the `*.toml` files of folders named, in a stable order.
fn expand(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        match std::fs::read_dir(p) {
            Ok(entries) => {
                let mut files: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .collect();
                files.sort();
                out.extend(files);
            }
            Err(_) => out.push(p.clone()),
        }
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { files } => {
            let files = expand(&files);
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
    }
}
