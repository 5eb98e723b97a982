//! `gateway.toml`: the site, its lines and its devices. Read with the `config` crate so scalar
//! keys can be overridden from the environment: `GATEWAY_{SECTION}__{KEY}`, for example
//! `GATEWAY_MQTT__URL=mqtt://127.0.0.1:1884` or `GATEWAY_GATEWAY__ID=gw-7`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use crate::line::{LineConfig, Link, Parity, SerialFrame, Transport};
use crate::planner::{plan, ReadRequest};
use crate::profile::Profile;
pub use crate::spool::{SpoolSettings, WhenFullSetting};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub gateway: SiteConfig,
    pub mqtt: MqttConfig,
    /// Folder of profile files (`{name}.toml`); relative to the config file. Profiles not found
    /// there fall back to the built-in ones.
    #[serde(default)]
    pub profiles_dir: Option<PathBuf>,
    #[serde(default, rename = "line")]
    pub lines: Vec<LineConfig>,
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceConfig>,
    /// Where readings wait for the broker. Optional: see [`SpoolSettings::folder`].
    #[serde(default)]
    pub spool: SpoolSettings,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub id: String,
    #[serde(default)]
    pub town: Option<String>,
    /// How often the gateway status (with the spool's counters) and unchanged device health
    /// are published again.
    #[serde(default = "default_status_every", with = "humantime_serde")]
    pub status_every: Duration,
}

fn default_status_every() -> Duration {
    Duration::from_secs(30)
}

fn default_partitions() -> u32 {
    16
}
fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` (port 1883 when omitted).
    pub url: String,
    /// Defaults to the gateway id; must be stable so the broker keeps the session.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    #[serde(default)]
    pub topic_prefix: String,
    #[serde(default = "default_keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
}

fn default_unit() -> u8 {
    1
}
fn default_interval() -> Duration {
    Duration::from_secs(1)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    pub id: String,
    pub line: String,
    /// Modbus unit (slave) id, 1 to 247.
    #[serde(default = "default_unit")]
    pub unit: u8,
    pub profile: String,
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Load { file: String, source: config::ConfigError },
    #[error("{file}:\n  {}", problems.join("\n  "))]
    Invalid { file: String, problems: Vec<String> },
}

/// A device ready to poll: its config, profile and request plan.
#[derive(Clone, Debug)]
pub struct Device {
    pub config: DeviceConfig,
    pub profile: Arc<Profile>,
    pub plan: Vec<ReadRequest>,
}

/// A line with the devices on it.
#[derive(Clone, Debug)]
pub struct Line {
    pub config: LineConfig,
    /// How to reach it (checked against the transport).
    pub link: Link,
    pub devices: Vec<Device>,
}

impl GatewayConfig {
    /// Reads `path`, applies `GATEWAY_*` environment overrides, and validates.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let file = path.display().to_string();
        let mut cfg: GatewayConfig = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("GATEWAY")
                    .prefix_separator("_")
                    .separator("__")
                    .source(Some(overrides(std::env::vars()))),
            )
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|source| ConfigError::Load { file: file.clone(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(dir) = &cfg.profiles_dir {
            if dir.is_relative() {
                cfg.profiles_dir = Some(base.join(dir));
            }
        }
        if let Some(dir) = &cfg.spool.dir {
            if dir.is_relative() {
                cfg.spool.dir = Some(base.join(dir));
            }
        }
        let problems = cfg.problems();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid { file, problems })
        }
    }

    /// Parses a config from TOML text without the environment (tests, the demo).
    pub fn from_toml(text: &str) -> Result<GatewayConfig, ConfigError> {
        let cfg: GatewayConfig = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|source| ConfigError::Load { file: "<inline>".into(), source })?;
        let problems = cfg.problems();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid { file: "<inline>".into(), problems })
        }
    }

    /// Every problem, each with its path (`device[3].unit`).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(why) = telemetry::codec::check_id(&self.gateway.id) {
            problems.push(format!("gateway.id `{}` {why}", self.gateway.id));
        }
        if let Err(why) = parse_mqtt_url(&self.mqtt.url) {
            problems.push(format!("mqtt.url: {why}"));
        }
        if self.mqtt.partitions == 0 {
            problems.push("mqtt.partitions must be at least 1".into());
        }
        if self.gateway.status_every.is_zero() {
            problems.push("gateway.status_every must be above zero".into());
        }
        if self.spool.max_bytes.0 < crate::spool::MIN_SPOOL_BYTES {
            problems.push(format!(
                "spool.max_bytes {} is below the smallest spool ({} bytes)",
                self.spool.max_bytes.0,
                crate::spool::MIN_SPOOL_BYTES
            ));
        }
        if self.spool.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            problems.push("spool.dir must not be empty".into());
        }
        if self.mqtt.password.is_some() && self.mqtt.password_file.is_some() {
            problems.push("mqtt: give password or password_file, not both".into());
        }
        let mut line_names = std::collections::BTreeSet::new();
        for (i, l) in self.lines.iter().enumerate() {
            if !line_names.insert(l.name.as_str()) {
                problems.push(format!("line[{i}].name `{}` is used twice", l.name));
            }
            if l.timeout.is_zero() {
                problems.push(format!("line[{i}].timeout must be above zero"));
            }
            if let Err(line_problems) = l.link() {
                problems.extend(line_problems.into_iter().map(|p| format!("line[{i}].{p}")));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            if let Err(why) = telemetry::codec::check_id(&d.id) {
                problems.push(format!("device[{i}].id `{}` {why}", d.id));
            }
            if !ids.insert(d.id.as_str()) {
                problems.push(format!("device[{i}].id `{}` is used twice", d.id));
            }
            if !line_names.contains(d.line.as_str()) {
                problems.push(format!("device[{i}].line `{}` is not a [[line]] name", d.line));
            }
            if !(1..=247).contains(&d.unit) {
                problems.push(format!("device[{i}].unit {} must be 1 to 247", d.unit));
            }
            if d.interval.is_zero() {
                problems.push(format!("device[{i}].interval must be above zero"));
            }
            if let Err(e) = Profile::load(self.profiles_dir.as_deref(), &d.profile) {
                problems.push(format!("device[{i}].profile: {e}"));
            }
        }
        problems
    }

    /// The spool's folder: `[spool] dir`, or `{temp dir}/gateway-spool/{gateway id}`.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool.folder(&self.gateway.id)
    }

    /// The runtime lines, each with its devices' profiles loaded and planned.
    pub fn build(&self) -> Result<Vec<Line>, ConfigError> {
        let mut profiles: std::collections::HashMap<&str, Arc<Profile>> = Default::default();
        let mut lines = Vec::with_capacity(self.lines.len());
        for (i, l) in self.lines.iter().enumerate() {
            let link = l.link().map_err(|problems| ConfigError::Invalid {
                file: "<config>".into(),
                problems: problems.into_iter().map(|p| format!("line[{i}].{p}")).collect(),
            })?;
            lines.push(Line { config: l.clone(), link, devices: Vec::new() });
        }
        for d in &self.devices {
            let profile = match profiles.get(d.profile.as_str()) {
                Some(p) => p.clone(),
                None => {
                    let p =
                        Arc::new(Profile::load(self.profiles_dir.as_deref(), &d.profile).map_err(|e| {
                            ConfigError::Invalid { file: "<config>".into(), problems: vec![e.to_string()] }
                        })?);
                    profiles.insert(&d.profile, p.clone());
                    p
                }
            };
            let line =
                lines.iter_mut().find(|l| l.config.name == d.line).ok_or_else(|| ConfigError::Invalid {
                    file: "<config>".into(),
                    problems: vec![format!("device `{}`: no line `{}`", d.id, d.line)],
                })?;
            line.devices.push(Device { config: d.clone(), plan: plan(&profile), profile });
        }
        Ok(lines)
    }
}

/// The `GATEWAY_{SECTION}__{KEY}` variables among `vars`: the others, such as `GATEWAY_LOG`
/// (the binary's log filter), are not config keys.
fn overrides(vars: impl Iterator<Item = (String, String)>) -> config::Map<String, String> {
    vars.filter(|(k, _)| k.strip_prefix("GATEWAY_").is_some_and(|rest| rest.contains("__"))).collect()
}

/// `mqtt://host:port` or `tcp://host:port` to host and port.
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| format!("`{url}` must start with mqtt:// (TLS is not supported yet)"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            (h, p.parse::<u16>().map_err(|_| format!("`{url}`: port `{p}` is not a number"))?)
        }
        _ => (rest, 1883),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
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
    fn problems_name_their_path() {
        let bad = EXAMPLE.replace("unit = 3", "unit = 0").replace("line = \"tcp-1\"", "line = \"nope\"");
        let err = GatewayConfig::from_toml(&bad).unwrap_err().to_string();
        assert!(err.contains("device[0].unit 0 must be 1 to 247"), "{err}");
        assert!(err.contains("device[0].line `nope` is not a [[line]] name"), "{err}");
        let err =
            GatewayConfig::from_toml(&EXAMPLE.replace("elevator-box-v1", "nope")).unwrap_err().to_string();
        assert!(err.contains("device[0].profile: profile `nope`"), "{err}");
        let err =
            GatewayConfig::from_toml(&EXAMPLE.replace("interval", "intervall")).unwrap_err().to_string();
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
        let err =
            GatewayConfig::from_toml(&THREE_LINES.replace("transport = \"tcp\"", "transport = \"udp\""))
                .unwrap_err()
                .to_string();
        assert!(err.contains("udp"), "{err}");
        let err = GatewayConfig::from_toml(&THREE_LINES.replace("baud = 19200", "baudrate = 19200"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("baudrate"), "{err}");
    }

    #[test]
    fn mqtt_urls() {
        assert_eq!(parse_mqtt_url("mqtt://127.0.0.1:1884"), Ok(("127.0.0.1".into(), 1884)));
        assert_eq!(parse_mqtt_url("mqtt://broker"), Ok(("broker".into(), 1883)));
        assert_eq!(parse_mqtt_url("tcp://[::1]:1883"), Ok(("::1".into(), 1883)));
        assert!(parse_mqtt_url("http://x").is_err());
        assert!(parse_mqtt_url("mqtt://x:abc").is_err());
    }

    #[test]
    fn only_section_keys_are_overrides() {
        let vars =
            [("GATEWAY_LOG", "debug"), ("GATEWAY_MQTT__URL", "mqtt://x"), ("PATH", "/bin"), ("GATEWAY_", "")];
        let map = overrides(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(map.len(), 1);
        assert_eq!(map["GATEWAY_MQTT__URL"], "mqtt://x");
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
}
