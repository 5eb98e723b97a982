use super::*;

const EXAMPLE: &str = r#"
[gateway]
id = "gw-1"
[mqtt]
url = "mqtt://127.0.0.1:1884"
[[line]]
name = "tcp-1"
transport = "tcp"
address = "127.0.0.1:5020"
timeout = "500ms"
[[device]]
id = "elev-1"
line = "tcp-1"
unit = 3
profile = "elevator-box-v1"
interval = "2s"
"#;

#[test]
fn parses_and_builds_an_example() {
    let cfg = GatewayConfig::from_toml(EXAMPLE).unwrap();
    assert_eq!(cfg.mqtt.partitions, 16);
    assert_eq!(cfg.lines[0].timeout, Duration::from_millis(500));
    let lines = cfg.build().unwrap();
    assert_eq!(lines[0].devices[0].config.interval, Duration::from_secs(2));
    assert!(!lines[0].devices[0].plan.is_empty());
}

#[test]
fn the_spool_section_is_optional_and_checked() {
    let cfg = GatewayConfig::from_toml(EXAMPLE).unwrap();
    assert_eq!(cfg.spool.when_full, WhenFullSetting::DropOldest);
    assert_eq!(cfg.spool_dir(), std::env::temp_dir().join("gateway-spool").join("gw-1"));
    assert_eq!(cfg.gateway.status_every, Duration::from_secs(30));
    let with = format!(
        "{EXAMPLE}\n[spool]\ndir = \"/var/lib/gateway/spool\"\nmax_bytes = \"512MiB\"\nmax_age = \"7d\"\n\
         when_full = \"block\"\n"
    );
    let cfg = GatewayConfig::from_toml(&with).unwrap();
    assert_eq!(cfg.spool_dir(), PathBuf::from("/var/lib/gateway/spool"));
    assert_eq!(cfg.spool.max_bytes.0, 512 << 20);
    assert_eq!(cfg.spool.max_age, Duration::from_secs(7 * 86_400));
    assert_eq!(cfg.spool.when_full, WhenFullSetting::Block);
    let err = GatewayConfig::from_toml(&with.replace("512MiB", "1kB")).unwrap_err().to_string();
    assert!(err.contains("spool.max_bytes 1000 is below the smallest spool"), "{err}");
    let err = GatewayConfig::from_toml(&with.replace("max_age", "max_agee")).unwrap_err().to_string();
    assert!(err.contains("max_agee"), "{err}");
}

#[test]
fn a_relative_spool_dir_is_relative_to_the_config_file() {
    let dir = std::env::temp_dir().join(format!("gw-cfg-spool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(&path, format!("{EXAMPLE}\n[spool]\ndir = \"spool\"\n")).unwrap();
    let cfg = GatewayConfig::load(&path).unwrap();
    assert_eq!(cfg.spool_dir(), dir.join("spool"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn relative_password_file_and_profiles_dir_resolve_against_the_config_file() {
    let dir = std::env::temp_dir().join(format!("gw-cfg-paths-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    let text = format!("profiles_dir = \"profiles\"\n{EXAMPLE}").replacen(
        "[mqtt]\n",
        "[mqtt]\npassword_file = \"mqtt.pass\"\n",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let cfg = GatewayConfig::load(&path).unwrap();
    assert_eq!(cfg.mqtt.password_file, Some(dir.join("mqtt.pass")));
    assert_eq!(cfg.profiles_dir, Some(dir.join("profiles")));
    let text = EXAMPLE.replacen("[mqtt]\n", "[mqtt]\npassword_file = \"/etc/gateway/mqtt.pass\"\n", 1);
    std::fs::write(&path, text).unwrap();
    let cfg = GatewayConfig::load(&path).unwrap();
    assert_eq!(cfg.mqtt.password_file, Some(std::path::PathBuf::from("/etc/gateway/mqtt.pass")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn problems_name_their_path() {
    let bad = EXAMPLE.replace("unit = 3", "unit = 0").replace("line = \"tcp-1\"", "line = \"nope\"");
    let err = GatewayConfig::from_toml(&bad).unwrap_err().to_string();
    assert!(err.contains("device[0].unit 0 must be 1 to 247"), "{err}");
    assert!(err.contains("device[0].line `nope` is not a [[line]] name"), "{err}");
    let err = GatewayConfig::from_toml(&EXAMPLE.replace("elevator-box-v1", "nope")).unwrap_err().to_string();
    assert!(err.contains("device[0].profile: profile `nope`"), "{err}");
    let err = GatewayConfig::from_toml(&EXAMPLE.replace("interval", "intervall")).unwrap_err().to_string();
    assert!(err.contains("intervall"), "{err}");
}

const THREE_LINES: &str = r#"
[gateway]
id = "gw-1"
[mqtt]
url = "mqtt://127.0.0.1:1884"
[[line]]
name = "tcp-1"
transport = "tcp"
address = "127.0.0.1:5020"
[[line]]
name = "rs485-1"
transport = "rtu"
port = "/dev/ttyUSB0"
baud = 19200
parity = "even"
[[line]]
name = "dtu-1"
transport = "rtu-over-tcp"
address = "127.0.0.1:4001"
silent_interval = "20ms"
[[device]]
id = "elev-1"
line = "rs485-1"
unit = 3
profile = "elevator-box-v1"
[[device]]
id = "wm-1"
line = "dtu-1"
unit = 7
profile = "water-meter-v1"
"#;

#[test]
fn parses_a_line_of_each_transport() {
    let cfg = GatewayConfig::from_toml(THREE_LINES).unwrap();
    let lines = cfg.build().unwrap();
    assert_eq!(lines[0].link, Link::Tcp { address: "127.0.0.1:5020".into() });
    assert_eq!(
        lines[1].link,
        Link::Rtu {
            port: "/dev/ttyUSB0".into(),
            frame: SerialFrame { baud: 19200, parity: Parity::Even, data_bits: 8, stop_bits: 1 }
        }
    );
    assert_eq!(lines[1].config.effective_silent_interval(), Duration::from_micros(2006));
    assert_eq!(lines[1].devices[0].config.id, "elev-1");
    assert_eq!(lines[2].link, Link::RtuOverTcp { address: "127.0.0.1:4001".into() });
    assert_eq!(lines[2].config.effective_silent_interval(), Duration::from_millis(20));
    assert_eq!(lines[2].devices[0].config.id, "wm-1");
}

#[test]
fn line_problems_name_their_path() {
    let bad = THREE_LINES
        .replace("port = \"/dev/ttyUSB0\"", "address = \"127.0.0.1:502\"")
        .replace("silent_interval = \"20ms\"", "baud = 9600");
    let err = GatewayConfig::from_toml(&bad).unwrap_err().to_string();
    for want in [
        "line[1].address does not apply to transport rtu (it takes port)",
        "line[1].port is required for transport rtu",
        "line[2].baud does not apply to transport rtu-over-tcp (only to rtu)",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    assert!(!err.contains("line[0]"), "{err}");
    let err = GatewayConfig::from_toml(&THREE_LINES.replace("transport = \"tcp\"", "transport = \"udp\""))
        .unwrap_err()
        .to_string();
    assert!(err.contains("udp"), "{err}");
    let err = GatewayConfig::from_toml(&THREE_LINES.replace("baud = 19200", "baudrate = 19200"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("baudrate"), "{err}");
}

#[test]
fn environment_overrides_scalar_keys() {
    let dir = std::env::temp_dir().join(format!("gw-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(&path, EXAMPLE).unwrap();
    // The only test in this crate that touches GATEWAY_* variables.
    std::env::set_var("GATEWAY_MQTT__URL", "mqtt://127.0.0.1:9999");
    let cfg = GatewayConfig::load(&path);
    std::env::remove_var("GATEWAY_MQTT__URL");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(cfg.unwrap().mqtt.url, "mqtt://127.0.0.1:9999");
}

#[test]
fn point_groups_from_the_profile_and_the_device() {
    let text = format!(
        "{EXAMPLE}\n[[device.group]]\npoints = [\"run_count\", \"load_kg\"]\ninterval = \"15m\"\n\n\
         [[device.group]]\npoints = [\"fault_code\"]\ninterval = \"500ms\"\n"
    );
    let cfg = GatewayConfig::from_toml(&text).unwrap();
    assert_eq!(cfg.devices[0].group.len(), 2);
    let device = cfg.build().unwrap().remove(0).devices.remove(0);
    let intervals: Vec<Duration> = device.groups.iter().map(|g| g.interval).collect();
    assert_eq!(intervals, [Duration::from_millis(500), Duration::from_secs(2), Duration::from_secs(900)]);
    let names = |g: &PointGroup| -> Vec<String> {
        g.points.iter().map(|&i| device.profile.points[i].name.clone()).collect()
    };
    assert_eq!(names(&device.groups[0]), ["fault_code"]);
    assert_eq!(names(&device.groups[2]), ["run_count", "load_kg"]);
    assert_eq!(device.groups[2].plan.len(), 1, "{:?}", device.groups[2].plan);
    let every: usize = device.groups.iter().map(|g| g.points.len()).sum();
    assert_eq!(every, device.profile.points.len(), "every point in one group");
    assert!((device.requests_per_second() - (1.0 / 0.5 + 2.0 / 2.0 + 1.0 / 900.0)).abs() < 1e-9);
}

#[test]
fn a_profile_point_may_carry_its_own_interval() {
    let mut profile = Profile::built_in("water-meter-v1").unwrap();
    profile.points[0].interval = Some(Duration::from_secs(900));
    let groups = point_groups(&profile, Duration::from_secs(1), &[]).unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[1].points, vec![0]);
    // The device's group wins over the profile's interval.
    let over = [GroupConfig { points: vec!["forward_total_m3".into()], interval: Duration::from_secs(60) }];
    let groups = point_groups(&profile, Duration::from_secs(1), &over).unwrap();
    assert_eq!(groups[1].interval, Duration::from_secs(60));
}

#[test]
fn group_problems_name_the_device_group_and_point() {
    let text = format!(
        "{EXAMPLE}\n[[device.group]]\npoints = [\"nope\", \"floor\"]\ninterval = \"0s\"\n\n\
         [[device.group]]\npoints = [\"floor\"]\ninterval = \"1m\"\n"
    );
    let err = GatewayConfig::from_toml(&text).unwrap_err().to_string();
    for want in [
        "device[0].group[0].interval must be above zero",
        "device[0].group[0].points: profile `elevator-box-v1` has no point `nope`",
        "device[0].group[1].points: `floor` is in group[0] too",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    let bit = Profile::built_in("water-meter-v1").unwrap();
    let over = [GroupConfig { points: vec!["leak".into()], interval: Duration::from_secs(60) }];
    let err = point_groups(&bit, Duration::from_secs(1), &over).unwrap_err();
    assert_eq!(err, ["group[0].points: `leak` is a bit of point `status_bits`: name the point"]);
}
