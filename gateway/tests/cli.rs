//! The `gateway plan` and `gateway import-csv` commands, as an engineer runs them.

mod common;

use std::process::Command;

use common::TempDir;
use gateway::profile::Profile;

fn gateway() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.env("GATEWAY_LOG", "warn");
    cmd
}

#[test]
fn plan_prints_each_devices_groups_requests_and_the_total() {
    let dir = TempDir::new("cli-plan");
    let config = dir.0.join("gateway.toml");
    std::fs::write(
        &config,
        "[gateway]\nid = \"gw-1\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n\
         [[line]]\nname = \"tcp-1\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:502\"\n\
         [[device]]\nid = \"wm-0001\"\nline = \"tcp-1\"\nunit = 4\nprofile = \"water-meter-v1\"\n\
         [[device.group]]\npoints = [\"forward_total_m3\", \"reverse_total_m3\"]\ninterval = \"15m\"\n\
         [[device]]\nid = \"boiler-1\"\nline = \"tcp-1\"\nunit = 5\nprofile = \"boiler-ctl-v1\"\ninterval = \"2s\"\n",
    )
    .unwrap();
    let out = gateway().arg("plan").arg("--config").arg(&config).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for want in [
        "line tcp-1 (tcp 127.0.0.1:502)",
        "  device wm-0001 unit 4 profile water-meter-v1: 3 requests per cycle",
        "    every 1s: 5 points, 2 requests",
        "      holding      5 +7    flow_m3h, pipe_state, pressure_mpa",
        "    every 15m: 2 points, 1 request",
        "      holding      1 +4    forward_total_m3, reverse_total_m3",
        "  device boiler-1 unit 5 profile boiler-ctl-v1: 1 request per cycle",
        "total: 2 devices, 4 requests per cycle (every group once), 2.5 requests/s",
    ] {
        assert!(text.lines().any(|l| l == want), "no line `{want}` in\n{text}");
    }
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap().replace("forward_total_m3\"", "forward\""),
    )
    .unwrap();
    let out = gateway().arg("plan").arg("--config").arg(&config).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("device[0].group[0].points: profile `water-meter-v1` has no point `forward`"),
        "{err}"
    );
}

#[test]
fn import_csv_writes_the_profile_and_reports_bad_rows() {
    let dir = TempDir::new("cli-import");
    let sheet = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/profiles/sheets/boiler-ctl-v2.csv");
    let out = gateway()
        .args(["import-csv", sheet, "--kind", "boiler", "--name", "boiler-ctl-v2", "--max-registers", "64"])
        .args(["--max-gap", "8"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut shipped = Profile::built_in("boiler-ctl-v2").unwrap();
    shipped.description = None;
    assert_eq!(Profile::parse("boiler-ctl-v2", "stdout", &text).unwrap(), shipped);

    let bad = dir.0.join("bad.csv");
    std::fs::write(&bad, "name,address,type\nlevel,40001,u16\ntemp,40002,flaot\n,x,u16\nflow,30001,f32\n")
        .unwrap();
    let target = dir.0.join("bad.toml");
    let out = gateway()
        .arg("import-csv")
        .arg(&bad)
        .args(["--kind", "water_meter", "--out"])
        .arg(&target)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let file = bad.display().to_string();
    assert!(err.contains(&format!("{file}: line 3, column `type`: unknown type `flaot`")), "{err}");
    assert!(err.contains(&format!("{file}: line 4, column `name`")), "{err}");
    assert!(err.contains("2 bad rows left out"), "{err}");
    let written = Profile::parse("bad", "bad.toml", &std::fs::read_to_string(&target).unwrap()).unwrap();
    let names: Vec<&str> = written.points.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["level", "flow"]);
}
