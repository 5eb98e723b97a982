//! `rules backtest`: reads the files, runs [`rules::backtest`], prints a table or JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use rules::backtest::{self, Format, Report};
use rules::date::{Date, CHINA_UTC_OFFSET_MS};
use rules::rule_file::expand;
use rules::{Engine, Registry, RuleSet};

/// A time as `YYYY-MM-DD HH:MM:SS.mmm` in UTC+8, where the equipment is.
fn time(ms: i64) -> String {
    let local = ms + CHINA_UTC_OFFSET_MS;
    let of_day = local.rem_euclid(86_400_000);
    let (h, m, s, milli) = (of_day / 3_600_000, of_day / 60_000 % 60, of_day / 1_000 % 60, of_day % 1_000);
    format!("{} {h:02}:{m:02}:{s:02}.{milli:03}", Date::from_ms(ms, CHINA_UTC_OFFSET_MS))
}

fn human(ms: i64) -> String {
    humantime::format_duration(Duration::from_secs((ms / 1_000).max(0) as u64)).to_string()
}

fn print_table(report: &Report) {
    match (report.from_ms, report.to_ms) {
        (Some(from), Some(to)) => {
            println!("{} readings from {} to {} (UTC+8)", report.readings, time(from), time(to))
        }
        _ => println!("no readings"),
    }
    println!();
    for m in &report.transitions {
        let status = m.status.as_str().to_uppercase();
        println!(
            "{}  {status:<12}  {} on {} [{}] \"{}\"",
            time(m.ts),
            m.rule,
            m.device,
            m.severity,
            m.summary
        );
    }
    println!();
    println!("{:<44} {:>6} {:>14} {:>8}  devices", "rule", "fired", "firing time", "at end");
    for r in &report.rules {
        let devices: Vec<&str> = r.devices.iter().map(String::as_str).collect();
        let shown = if devices.len() > 5 {
            format!("{} … ({} devices)", devices[..5].join(", "), devices.len())
        } else {
            devices.join(", ")
        };
        println!("{:<44} {:>6} {:>14} {:>8}  {shown}", r.rule, r.fired, human(r.firing_ms), r.firing_at_end);
    }
}

pub fn run(
    rule_paths: &[PathBuf],
    input: &Path,
    format: Format,
    registry: Option<&Path>,
    profiles: Option<&Path>,
    tick: Duration,
    json: bool,
) -> ExitCode {
    let loaded = RuleSet::load(&expand(rule_paths)).and_then(|mut rules| {
        if let Some(dir) = profiles {
            rules::profiles::Profiles::load_dir(dir)?.apply_decimals(&mut rules);
        }
        Ok(rules)
    });
    let rules = match loaded {
        Ok(rules) => rules,
        Err(diagnostics) => {
            diagnostics.iter().for_each(|d| eprintln!("{d}"));
            return ExitCode::from(1);
        }
    };
    let mut engine = Engine::new(rules);
    if let Some(path) = registry {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}", rules::Diagnostic::cannot_read(path.display().to_string(), &e));
                return ExitCode::from(1);
            }
        };
        let (registry, problems) = Registry::parse(&path.display().to_string(), &text);
        problems.iter().for_each(|p| eprintln!("{p}"));
        engine.set_registry(registry);
    }
    let text = match std::fs::read_to_string(input) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}", rules::Diagnostic::cannot_read(input.display().to_string(), &e));
            return ExitCode::from(1);
        }
    };
    let (readings, bad) = backtest::parse(&text, format);
    for b in &bad {
        eprintln!("{}:{}: {}", input.display(), b.line, b.message);
    }
    let report = backtest::run(&mut engine, readings, tick.as_millis().min(i64::MAX as u128) as i64);
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print_table(&report);
    }
    ExitCode::SUCCESS
}
