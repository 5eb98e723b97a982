//! The README's first command: `ingest demo` runs the whole system on embedded defaults, shows
//! readings of four kinds and an alert that fires and resolves within a minute, and stops cleanly.

use std::process::Command;

use system_tests::{binary, free_port};

#[test]
fn the_demo_shows_four_kinds_flowing_and_an_alert_firing_and_resolving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("demo-data");
    let output = Command::new(binary("ingest"))
        .args(["demo", "--for", "35s", "--broker"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("run ingest demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");

    let fired: Vec<&str> = stdout.lines().filter(|l| l.contains("FIRING")).collect();
    let resolved: Vec<&str> = stdout.lines().filter(|l| l.contains("RESOLVED")).collect();
    // `<time>  RESOLVED [severity] rule device: summary`: the rule and device of a resolved alert
    // must have fired before it.
    let key = |l: &str| {
        l.split(']').nth(1).and_then(|rest| rest.split(':').next()).map(str::trim).map(str::to_string)
    };
    let first_resolved = resolved.first().unwrap_or_else(|| panic!("no alert resolved:\n{stdout}"));
    assert!(fired.iter().any(|f| key(f) == key(first_resolved)), "resolved without firing:\n{stdout}");

    let lines: String = std::fs::read_dir(&data)
        .expect("data dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".lp"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    for kind in ["elevator", "boiler", "water_meter", "charging_pile"] {
        assert!(stdout.contains(&format!("{kind} ")), "{kind} counted in the demo's output:\n{stdout}");
        assert!(
            lines.lines().filter(|l| l.starts_with(&format!("{kind},"))).count() >= 10,
            "{kind} readings in the files"
        );
    }
    assert!(lines.lines().any(|l| l.starts_with("alert,")), "alert transitions in the files");
    assert!(stdout.contains("done:"), "a clean stop:\n{stdout}");
}
