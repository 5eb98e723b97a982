//! `rules registry …`: check a registry CSV, write a synthetic one, show the overdue rate.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use rules::date::{Date, CHINA_UTC_OFFSET_MS};
use rules::inspection::{self, Schedule};
use rules::registry::synthetic::{self, Options};
use rules::Registry;

#[derive(Subcommand)]
pub enum RegistryCommand {
    /// Check a registry CSV: every bad row as `file:line:column: message` (the row would be
    /// left out, the rest loads), then units whose schedule lacks a date as notes. Exit code 0:
    /// every row good; 1: bad rows, or the file cannot be read.
    Check { file: PathBuf },
    /// Write a synthetic registry of Dongguan's towns: `--units` units, exactly `--overdue` of
    /// them overdue on `--at` (defaults: 222,200 units, 89 overdue, 0.04 %).
    Synth {
        #[arg(long, default_value_t = 222_200)]
        units: usize,
        #[arg(long, default_value_t = 89)]
        overdue: usize,
        /// The day the overdue count holds (YYYY-MM-DD).
        #[arg(long, default_value = "2026-11-27", value_parser = date)]
        at: Date,
        #[arg(long, default_value_t = 2023)]
        seed: u64,
        /// Where to write the CSV (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The overdue rate (overdue ÷ registered) on a day, in total, by kind and by town.
    Overdue {
        file: PathBuf,
        /// The day (YYYY-MM-DD), where the equipment is.
        #[arg(long, value_parser = date)]
        at: Date,
        /// Print InfluxDB line protocol (measurement `inspection`) instead of tables.
        #[arg(long)]
        line_protocol: bool,
        /// Also list the overdue units.
        #[arg(long)]
        list: bool,
    },
}

fn date(s: &str) -> Result<Date, String> {
    Date::parse(s).ok_or_else(|| format!("`{s}` is not a date (YYYY-MM-DD)"))
}

/// Reads and parses a registry; prints why it cannot.
fn load(path: &Path) -> Result<(Registry, Vec<rules::Diagnostic>), ExitCode> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| {
        eprintln!("{}", rules::Diagnostic::cannot_read(shown.to_string(), &e));
        ExitCode::from(1)
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        eprintln!("{shown}: not UTF-8 text: save the sheet as CSV UTF-8");
        ExitCode::from(1)
    })?;
    Ok(Registry::parse(&shown.to_string(), &text))
}

fn check(path: &Path) -> ExitCode {
    let (registry, diagnostics) = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    for d in &diagnostics {
        eprintln!("{d}");
    }
    for unit in registry.units() {
        for &check in inspection::statutory(&unit.kind) {
            if let Schedule::Unknown(why) = inspection::due_of(check, unit) {
                println!("note: {}:{}: {} {}: {why}", path.display(), unit.line, unit.device, check.as_str());
            }
        }
    }
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for unit in registry.units() {
        match kinds.iter_mut().find(|(k, _)| *k == unit.kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((&unit.kind, 1)),
        }
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("{} units ({}); {} problems", registry.len(), kinds.join(", "), diagnostics.len());
    if diagnostics.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn synth(options: &Options, out: Option<&Path>) -> ExitCode {
    let registry = synthetic::generate(options);
    let csv = registry.to_csv();
    match out {
        None => print!("{csv}"),
        Some(path) => {
            if let Err(e) = std::fs::write(path, csv) {
                eprintln!("cannot write {}: {}", path.display(), rules::rule_file::io_reason(&e));
                return ExitCode::from(1);
            }
            let report = registry.overdue_rate(options.today);
            eprintln!(
                "wrote {}: {} units, {} overdue on {} ({:.2} %)",
                path.display(),
                registry.len(),
                report.total.overdue,
                options.today,
                report.total.rate() * 100.0
            );
        }
    }
    ExitCode::SUCCESS
}

fn overdue(path: &Path, at: Date, line_protocol: bool, list: bool) -> ExitCode {
    let (registry, diagnostics) = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if !diagnostics.is_empty() {
        eprintln!(
            "{}: {} bad rows left out (`rules registry check` lists them)",
            path.display(),
            diagnostics.len()
        );
    }
    let report = registry.overdue_rate(at);
    if line_protocol {
        print!("{}", report.to_line_protocol(at.start_ms(CHINA_UTC_OFFSET_MS)));
    } else {
        print!("{}", report.render());
    }
    if list {
        println!("\n{:>10} {:>6}  {:<20} {:<18} town, name", "due", "days", "device", "kind");
        let mut units = registry.overdue_units(at);
        units.sort_by_key(|(u, due)| (*due, u.line));
        for (unit, due) in units {
            let days = at.days_since(due);
            println!(
                "{due:>10} {days:>6}  {:<20} {:<18} {}, {}",
                unit.device, unit.kind, unit.town, unit.name
            );
        }
    }
    ExitCode::SUCCESS
}

pub fn run(command: RegistryCommand) -> ExitCode {
    match command {
        RegistryCommand::Check { file } => check(&file),
        RegistryCommand::Synth { units, overdue, at, seed, out } => {
            synth(&Options { units, overdue, today: at, seed }, out.as_deref())
        }
        RegistryCommand::Overdue { file, at, line_protocol, list } => overdue(&file, at, line_protocol, list),
    }
}
