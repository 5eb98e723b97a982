//! The README's first command: `cargo run -p demo` runs the whole system on embedded defaults, shows
//! readings of four kinds and an alert that fires and resolves within a minute, and stops cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use system_tests::console::ConsoleClient;
use system_tests::{binary, free_port, wait_for};

#[test]
fn the_demo_shows_four_kinds_flowing_and_an_alert_firing_and_resolving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("demo-data");
    let mut child = Command::new(binary("demo"))
        .args(["--for", "35s", "--broker"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--console")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the demo");
    let mut err = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut text);
        text
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });

    // `console  http://127.0.0.1:PORT/  user admin, password …`: the console is up, with the
    // demo's registry and its gateway.
    let console = wait_for(Duration::from_secs(30), "the console line", || {
        let line = rx.try_recv().ok()?;
        let rest = line.trim().strip_prefix("console")?.trim();
        let (url, creds) = rest.split_once("  ")?;
        Some((url.trim_end_matches('/').to_string(), creds.rsplit(' ').next()?.to_string()))
    });
    let mut client = ConsoleClient::new(&console.0);
    assert_eq!(client.login("admin", &console.1).status, 200, "the printed password logs in");
    let rate = client.get("/api/v1/overdue-rate").body;
    assert_eq!(rate["total"]["overdue"], 3, "the synthetic town's overdue units: {rate}");
    wait_for(Duration::from_secs(20), "the demo gateway online in /api/v1/status", || {
        let status = client.get("/api/v1/status").body;
        (status["gateways"][0]["gateway"] == "gw-demo" && status["gateways"][0]["online"] == true)
            .then_some(())
    });

    let status = child.wait().expect("the demo exits");
    let stdout = reader.join().expect("stdout");
    let stderr = errors.join().expect("stderr");
    assert!(status.success(), "demo failed:\n{stdout}\n{stderr}");

    let fired: Vec<&str> = stdout.lines().filter(|l| l.contains("FIRING")).collect();
    let resolved: Vec<&str> = stdout.lines().filter(|l| l.contains("RESOLVED")).collect();
    // `<time>  RESOLVED [severity] rule device: summary`: the rule and device of a resolved alert
    // must have fired before it.
    let key = |l: &str| {
        l.split(']').nth(1).and_then(|rest| rest.split(':').next()).map(str::trim).map(str::to_string)
    };
    let first_resolved = resolved.first().unwrap_or_else(|| panic!("no alert resolved:\n{stdout}"));
    assert!(fired.iter().any(|f| key(f) == key(first_resolved)), "resolved without firing:\n{stdout}");
    // Summaries show numbers to their unit's decimals and leave out what the registry lacks.
    for line in fired.iter().chain(&resolved) {
        let summary = line.split_once("]").map_or("", |(_, rest)| rest);
        assert!(!summary.contains('?'), "a missing value shown: {line}");
        let long_decimals = summary
            .split(|c: char| !c.is_ascii_digit() && c != '.')
            .any(|n| n.split_once('.').is_some_and(|(whole, frac)| !whole.is_empty() && frac.len() > 3));
        assert!(!long_decimals, "a raw float: {line}");
    }

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
