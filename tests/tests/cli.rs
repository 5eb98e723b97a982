//! Every binary answers like a finished tool: `--help` and `--version` (with the git commit)
//! without side effects, a wrong argument gets its usage and exit code 2, an error prints once
//! on one line, and logs are plain text off a terminal or JSON lines on request.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use system_tests::{binary, free_port, wait_for, Mosquitto, Proc};

/// Each binary with the subcommands it has (an empty name: the binary itself).
fn commands() -> Vec<(PathBuf, &'static str, Vec<&'static str>)> {
    vec![
        (binary("gateway"), "gateway", vec!["", "run", "plan", "import-csv", "sim"]),
        (binary("ingest"), "ingest", vec!["", "run", "hash-password", "check"]),
        (binary("demo"), "demo", vec![""]),
        (binary("rules"), "rules", vec!["", "check", "backtest", "test", "registry"]),
        (binary("gateway-bench"), "gateway-bench", vec![""]),
        (PathBuf::from(env!("CARGO_BIN_EXE_loadtest")), "loadtest", vec![""]),
    ]
}

/// Runs `bin` with `args` in the empty folder `cwd`, with no standard input.
fn run_in(cwd: &Path, bin: &Path, args: &[&str]) -> Output {
    let args: Vec<&str> = args.iter().copied().filter(|a| !a.is_empty()).collect();
    Command::new(bin)
        .args(&args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn is_version_line(line: &str, name: &str) -> bool {
    let Some(rest) = line.strip_prefix(&format!("{name} {} (commit ", env!("CARGO_PKG_VERSION"))) else {
        return false;
    };
    let commit = rest.trim_end().trim_end_matches(')');
    commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn every_binary_and_subcommand_answers_help_version_and_a_wrong_argument() {
    let dir = tempfile::tempdir().unwrap();
    for (bin, name, subcommands) in commands() {
        for sub in subcommands {
            let shown = format!("{name} {sub}");
            let out = run_in(dir.path(), &bin, &[sub, "--help"]);
            assert_eq!(out.status.code(), Some(0), "{shown} --help: {}", text(&out.stderr));
            assert!(text(&out.stdout).contains("Usage:"), "{shown} --help printed {}", text(&out.stdout));

            let out = run_in(dir.path(), &bin, &[sub, "--no-such-option"]);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{shown} --no-such-option: {err}");
            assert!(err.contains("unexpected argument '--no-such-option'"), "{shown}: {err}");
            assert!(err.contains("Usage:") && !err.contains("panicked"), "{shown}: {err}");

            let out = run_in(dir.path(), &bin, &[sub, "--version"]);
            assert_eq!(out.status.code(), Some(0), "{shown} --version: {}", text(&out.stderr));
            let stdout = text(&out.stdout);
            // A subcommand names itself: `ingest-run 0.1.0 (commit …)`.
            let full = if sub.is_empty() { name.to_string() } else { format!("{name}-{sub}") };
            assert!(is_version_line(&stdout, &full), "{shown} --version printed {stdout:?}");
        }
    }
    // No side effects: nothing was written where they ran (the demo writes demo-data/,
    // `loadtest` used to take `--help` for a rule folder and start a broker).
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn a_wrong_value_of_the_load_tools_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let loadtest = PathBuf::from(env!("CARGO_BIN_EXE_loadtest"));
    for args in [&["many"][..], &["10", "0"], &["10", "10", "0", "/no/such/rules"]] {
        let out = run_in(dir.path(), &loadtest, args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "loadtest {args:?}: {err}");
        assert!(
            err.starts_with("error: invalid value") && err.contains("--help"),
            "loadtest {args:?}: {err}"
        );
    }
    let out = run_in(dir.path(), &binary("gateway-bench"), &["--devices", "lots"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn a_missing_file_is_one_plain_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = "/nonexistent.toml";
    let expected = format!("cannot read {missing}: No such file or directory");
    for (bin, args) in [
        ("ingest", vec!["run", "--config", missing]),
        ("gateway", vec!["run", "--config", missing]),
        ("gateway", vec!["plan", "--config", missing]),
    ] {
        let out = run_in(dir.path(), &binary(bin), &args);
        assert_eq!(out.status.code(), Some(1), "{bin} {args:?}");
        assert_eq!(text(&out.stderr), format!("error: {expected}\n"), "{bin} {args:?}");
    }
    for sub in ["check", "test"] {
        let out = run_in(dir.path(), &binary("rules"), &[sub, missing]);
        assert_eq!(out.status.code(), Some(1), "rules {sub}");
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(all.lines().any(|l| l.trim() == expected), "rules {sub}: {all}");
        assert!(!all.contains(":0:0"), "rules {sub}: {all}");
    }
}

#[test]
fn an_error_and_its_cause_print_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[mqtt]\nurl = \n").unwrap();
    let out = run_in(dir.path(), &binary("ingest"), &["run", "--config", config.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("Caused by"), "{err}");
    assert_eq!(err.matches("TOML parse error").count(), 1, "{err}");
}

#[test]
fn backtest_summaries_take_the_profiles_decimals() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.lp");
    let lines: Vec<String> = (0..6)
        .map(|i| {
            format!("boiler,device=b1,gateway=gw pressure_mpa=1.3826844 {}", 1_700_000_000_000i64 + i * 1000)
        })
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let boiler = std::fs::read_to_string(root.join("deploy/profiles/boiler-ctl-v1.toml")).unwrap();
    std::fs::write(
        profiles.join("boiler.toml"),
        boiler.replace("unit = \"MPa\"", "unit = \"MPa\"\ndecimals = 3"),
    )
    .unwrap();
    let rules = root.join("deploy/rules/boiler.toml");
    let backtest = |extra: &[&str]| {
        let mut args =
            vec!["backtest", "--rules", rules.to_str().unwrap(), "--input", input.to_str().unwrap()];
        args.extend(extra);
        let out = run_in(dir.path(), &binary("rules"), &args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    // By the unit written after it (MPa: 2), then by the profile's `decimals`.
    assert!(backtest(&[]).contains("over pressure: 1.38 MPa\""), "{}", backtest(&[]));
    let out = backtest(&["--profiles", profiles.to_str().unwrap()]);
    assert!(out.contains("over pressure: 1.383 MPa\""), "{out}");
}

#[test]
fn rules_check_warns_of_unknown_kinds_and_reports_every_file_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let rule = |id: &str, kinds: &str, when: &str| {
        format!("[[rule]]\nid = \"{id}\"\nkinds = [\"{kinds}\"]\nwhen = \"{when}\"\nseverity = \"info\"\nsummary = \"x\"\n")
    };
    std::fs::write(dir.path().join("a.toml"), rule("a", "boilr", "pressure_mpa > 1")).unwrap();
    let out = run_in(dir.path(), &binary("rules"), &["check", "a.toml"]);
    assert_eq!(out.status.code(), Some(0), "a warning alone passes: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "a.toml:3:11: warning: rule `a`: no profile has kind `boilr`, so the rule never fires (did you mean `boiler`?)\n"
    );
    assert_eq!(text(&out.stdout), "ok: 1 rules in 1 files, 1 warning\n");

    let bad = format!("{}sauce = 1\n", rule("b", "boiler", "presure_mpa > 1"));
    std::fs::write(dir.path().join("b.toml"), bad).unwrap();
    std::fs::write(dir.path().join("c.toml"), rule("c", "boiler", "presure_mpa > 1")).unwrap();
    let out = run_in(dir.path(), &binary("rules"), &["check", "a.toml", "b.toml", "c.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let lines: Vec<String> =
        text(&out.stderr).lines().map(|l| l.split(": rule").next().unwrap().to_string()).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0], "a.toml:3:11: warning");
    assert!(lines[1].starts_with("b.toml:7:1: unknown field `sauce`"), "{lines:?}");
    assert_eq!(lines[2], "c.toml:4:9", "the built-in profiles know no `presure_mpa`");
    assert_eq!(lines[3], "2 problems, 1 warning");
}

/// Starts `ingest run` against a fresh Mosquitto with `env`, waits for it to subscribe, stops it
/// and returns everything it wrote.
fn ingest_output(dir: &Path, env: &[(&str, &str)]) -> String {
    let broker = Mosquitto::start(dir);
    let config = dir.join("ingest.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nurl = \"{}\"\nclient_id = \"ingest-cli\"\n\n[files]\ndir = \"{}\"\n\n[wal]\ndir = \"{}\"\n\n\
             [http]\nlisten = \"127.0.0.1:{}\"\n",
            broker.url(),
            dir.join("files").display(),
            dir.join("wal").display(),
            free_port()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(binary("ingest"));
    cmd.arg("run").arg("--config").arg(&config).env_remove("LOG_FORMAT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut ingest = Proc::spawn("ingest", cmd, dir);
    wait_for(Duration::from_secs(20), "ingest to subscribe", || {
        ingest.output().contains("subscribed").then_some(())
    });
    ingest.terminate();
    ingest.output()
}

#[test]
fn json_logs_are_one_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = ingest_output(dir.path(), &[("LOG_FORMAT", "json")]);
    let mut messages = Vec::new();
    for line in out.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{out}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
        messages.push(v["fields"]["message"].as_str().unwrap_or_default().to_string());
    }
    assert!(messages.iter().any(|m| m.starts_with("subscribed")), "{out}");
    assert!(messages.iter().any(|m| m.starts_with("loaded ")), "{out}");
    // An error at start is a JSON line too, on both servers.
    for bin in ["ingest", "gateway"] {
        let args = ["--log-format", "json", "run", "--config", "/nonexistent.toml"];
        let out = run_in(dir.path(), &binary(bin), &args);
        assert_eq!(out.status.code(), Some(1), "{bin}");
        let v: serde_json::Value = serde_json::from_slice(&out.stderr).expect("a JSON error line");
        assert_eq!(v["level"], "ERROR", "{bin}");
        assert_eq!(
            v["fields"]["message"], "cannot read /nonexistent.toml: No such file or directory",
            "{bin}"
        );
    }
}

#[test]
fn text_logs_off_a_terminal_have_no_colours() {
    let dir = tempfile::tempdir().unwrap();
    let out = ingest_output(dir.path(), &[]);
    assert!(out.contains("subscribed"), "{out}");
    assert!(!out.contains("\x1b["), "ANSI escapes in {out:?}");
    assert!(out.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_err()), "{out}");
}
