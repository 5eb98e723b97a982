//! What an operator copies works as shipped: every gateway config in README.md and deploy/
//! plans with the real `gateway plan`, every ingest config passes `ingest check`, and ingest
//! starts the way deploy/systemd/ingest.service starts it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use system_tests::{binary, free_port, wait_for, Mosquitto, Proc};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Each ```toml block of `text`: the line of its opening fence (1-based) and its body.
fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut open {
            None if line.trim_start() == "```toml" => open = Some((i + 1, String::new())),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(open.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    blocks
}

fn has_table(text: &str, table: &str) -> bool {
    text.lines().any(|l| l.trim_start().starts_with(table))
}

fn run(cwd: &Path, bin: &str, args: &[&str]) -> Output {
    Command::new(binary(bin))
        .args(args)
        .current_dir(cwd)
        .env_remove("GATEWAY_MQTT__URL")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

fn failure(out: &Output) -> Option<String> {
    (!out.status.success()).then(|| {
        format!(
            "exit {:?}: {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A folder beside which README's relative paths (`profiles`, `rules`, `registry.csv`) find
/// the repository's shipped ones.
fn readme_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let links = [
        ("profiles", "deploy/profiles"),
        ("rules", "deploy/rules"),
        ("registry.csv", "deploy/rules/tests/registry.csv"),
    ];
    for (name, target) in links {
        std::os::unix::fs::symlink(repo().join(target), dir.path().join(name)).unwrap();
    }
    dir
}

#[test]
fn every_readme_and_deploy_config_plans_or_checks() {
    let dir = readme_folder();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut failures = Vec::new();
    let (mut gateways, mut ingests) = (0, 0);
    for (line, body) in toml_blocks(&readme) {
        let (bin, sub) = if has_table(&body, "[gateway]") {
            gateways += 1;
            ("gateway", "plan")
        } else if has_table(&body, "[mqtt]") {
            ingests += 1;
            ("ingest", "check")
        } else {
            continue;
        };
        let file = dir.path().join(format!("readme-{line}.toml"));
        std::fs::write(&file, &body).unwrap();
        let out = run(dir.path(), bin, &[sub, "--config", file.to_str().unwrap()]);
        if let Some(why) = failure(&out) {
            failures.push(format!("README.md:{line}: `{bin} {sub}` failed: {why}"));
        }
    }
    assert!(gateways >= 1 && ingests >= 1, "README's gateway.toml and ingest.toml examples found");
    let mut shipped = 0;
    for entry in std::fs::read_dir(repo().join("deploy")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let body = std::fs::read_to_string(&path).unwrap();
        let (bin, sub) =
            if has_table(&body, "[gateway]") { ("gateway", "plan") } else { ("ingest", "check") };
        shipped += 1;
        let out = run(dir.path(), bin, &[sub, "--config", path.to_str().unwrap()]);
        if let Some(why) = failure(&out) {
            failures.push(format!("{}: `{bin} {sub}` failed: {why}", path.display()));
        }
    }
    assert!(shipped >= 2, "deploy/gateway.toml and deploy/ingest.toml");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ingest_check_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ingest.toml");
    std::fs::write(&file, "[mqtt]\nurl = \"http://broker\"\npartitions = 0\n[rules]\nfiles = [\"nope\"]\n")
        .unwrap();
    let out = run(dir.path(), "ingest", &["check", "--config", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for what in ["mqtt.url", "mqtt.partitions", "nope"] {
        assert!(err.contains(what), "{what} is listed: {err}");
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().count() == 1, "nothing written beside the config");
}

/// `[Service]` settings of a unit file: every `Key=Value` line, in order.
fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

fn env_pairs(text: &str) -> Vec<(String, String)> {
    text.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
}

#[test]
fn ingest_starts_as_its_systemd_unit_starts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let (etc, var) = (root.join("etc/ingest"), root.join("var/lib/ingest"));
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&var).unwrap(); // StateDirectory=ingest
    let prefixes = [
        ("/usr/local/bin/ingest", binary("ingest")),
        ("/etc/ingest", etc.clone()),
        ("/var/lib/ingest", var.clone()),
    ];
    let rewrite =
        |s: &str| prefixes.iter().fold(s.to_string(), |s, (from, to)| s.replace(from, to.to_str().unwrap()));
    // The shipped config and rule pack, installed where the unit looks.
    let config = std::fs::read_to_string(repo().join("deploy/ingest.toml")).unwrap();
    std::fs::write(etc.join("ingest.toml"), rewrite(&config)).unwrap();
    std::os::unix::fs::symlink(repo().join("deploy/rules"), etc.join("rules")).unwrap();

    let broker_dir = tmp.path().join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let broker = Mosquitto::start(&broker_dir);
    let (http, tsdb) = (free_port(), free_port());

    let unit = std::fs::read_to_string(repo().join("deploy/systemd/ingest.service")).unwrap();
    let mut exec = Vec::new();
    let mut env = Vec::new();
    let mut cwd = PathBuf::from("/");
    for (key, value) in unit_settings(&unit) {
        match key.as_str() {
            "ExecStart" => exec = rewrite(&value).split_whitespace().map(String::from).collect(),
            "Environment" => env.extend(env_pairs(&value)),
            "WorkingDirectory" => cwd = PathBuf::from(rewrite(&value)),
            "EnvironmentFile" => {
                // What an operator puts there: where this host's broker, TSDB and port are.
                let file = rewrite(value.trim_start_matches('-'));
                let local = format!(
                    "INGEST_MQTT__URL={}\nINGEST_HTTP__LISTEN=127.0.0.1:{http}\nINGEST_TSDB__URL=http://127.0.0.1:{tsdb}\n",
                    broker.url()
                );
                std::fs::write(&file, &local).unwrap();
                env.extend(env_pairs(&std::fs::read_to_string(&file).unwrap()));
            }
            _ => {}
        }
    }
    assert_eq!(exec.first().map(PathBuf::from), Some(binary("ingest")), "ExecStart runs the ingest binary");
    assert!(env.iter().any(|(k, _)| k == "INGEST_HTTP__LISTEN"), "the unit reads an EnvironmentFile");
    let mut cmd = Command::new(&exec[0]);
    cmd.args(&exec[1..]).env_clear().envs(env).current_dir(&cwd);

    let mut ingest = Proc::spawn("ingest", cmd, tmp.path());
    wait_for(Duration::from_secs(30), "/readyz to answer 200", || {
        if let Ok(Some(status)) = ingest.child.try_wait() {
            panic!("ingest exited ({status}) as its unit starts it:\n{}", ingest.output());
        }
        match ureq::get(&format!("http://127.0.0.1:{http}/readyz")).call() {
            Ok(r) if r.status() == 200 => Some(()),
            _ => None,
        }
    });
    // The working directory holds no `rules`: ingest found them beside its config.
    assert!(!cwd.join("rules").exists() && ingest.output().contains("rules"), "{}", ingest.output());
    assert!(var.join("wal").is_dir(), "the WAL is under the state directory");
}
