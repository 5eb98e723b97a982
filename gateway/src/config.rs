//! `gateway.toml`: the site, its lines and its devices. Read with the `config` crate so scalar
//! keys can be overridden from the environment: `GATEWAY_{SECTION}__{KEY}`, for example
//! `GATEWAY_MQTT__URL=mqtt://127.0.0.1:1884` or `GATEWAY_GATEWAY__ID=gw-7`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use crate::line::{LineConfig, Link, Parity, SerialFrame, Transport};
use crate::planner::{plan, plan_points, ReadRequest};
use crate::profile::Profile;
pub use crate::spool::{SpoolSettings, WhenFullSetting};
pub use telemetry::mqtt::{parse_mqtt_url, MqttConfig};
use telemetry::service::config_file;

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
    /// Points polled at their own interval (`[[device.group]]`), over the profile's.
    #[serde(default)]
    pub group: Vec<GroupConfig>,
}

/// `[[device.group]]`: some of a device's points polled at their own interval.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Point names of the device's profile.
    pub points: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

/// The points of a device polled together at one interval, and the requests that read them.
#[derive(Clone, Debug, PartialEq)]
pub struct PointGroup {
    pub interval: Duration,
    /// Indexes into the profile's points.
    pub points: Vec<usize>,
    pub plan: Vec<ReadRequest>,
}

/// A device's point groups: each point at the interval of the `[[device.group]]` naming it,
/// else its profile's `interval`, else the device's; points of one interval form one group,
/// planned on its own. Sorted by interval. Problems name the group and the point.
pub fn point_groups(
    profile: &Profile,
    interval: Duration,
    groups: &[GroupConfig],
) -> Result<Vec<PointGroup>, Vec<String>> {
    let mut problems = Vec::new();
    let mut chosen: std::collections::BTreeMap<usize, (usize, Duration)> = Default::default();
    for (j, g) in groups.iter().enumerate() {
        if g.interval.is_zero() {
            problems.push(format!("group[{j}].interval must be above zero"));
        }
        if g.points.is_empty() {
            problems.push(format!("group[{j}].points is empty"));
        }
        for name in &g.points {
            match profile.points.iter().position(|p| &p.name == name) {
                Some(i) => {
                    if let Some((k, _)) = chosen.insert(i, (j, g.interval)) {
                        problems.push(format!("group[{j}].points: `{name}` is in group[{k}] too"));
                    }
                }
                None => match profile.points.iter().find(|p| p.bits.values().any(|b| b == name)) {
                    Some(p) => problems.push(format!(
                        "group[{j}].points: `{name}` is a bit of point `{}`: name the point",
                        p.name
                    )),
                    None => problems
                        .push(format!("group[{j}].points: profile `{}` has no point `{name}`", profile.name)),
                },
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut by_interval: std::collections::BTreeMap<Duration, Vec<usize>> = Default::default();
    for (i, p) in profile.points.iter().enumerate() {
        let every = chosen.get(&i).map(|&(_, d)| d).or(p.interval).unwrap_or(interval);
        by_interval.entry(every).or_default().push(i);
    }
    Ok(by_interval
        .into_iter()
        .map(|(interval, points)| PointGroup { interval, plan: plan_points(profile, &points), points })
        .collect())
}

pub use telemetry::service::ConfigError;

/// A device ready to poll: its config, profile and request plans.
#[derive(Clone, Debug)]
pub struct Device {
    pub config: DeviceConfig,
    pub profile: Arc<Profile>,
    /// The requests that read every point at once.
    pub plan: Vec<ReadRequest>,
    /// The points by interval, each group with its own requests; what the bus polls.
    pub groups: Vec<PointGroup>,
}

impl Device {
    /// Requests per second at the groups' intervals.
    pub fn requests_per_second(&self) -> f64 {
        self.groups.iter().map(|g| g.plan.len() as f64 / g.interval.as_secs_f64()).sum()
    }
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
        let mut cfg: GatewayConfig = config_file::read(path, "GATEWAY")?;
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
        cfg.mqtt.resolve_paths(base);
        let problems = cfg.problems();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid { file, problems })
        }
    }

    /// Parses a config from TOML text without the environment (tests, the demo).
    pub fn from_toml(text: &str) -> Result<GatewayConfig, ConfigError> {
        let cfg: GatewayConfig = config_file::parse(text)?;
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
        problems.extend(self.mqtt.problems());
        if self.mqtt.own_partitions.is_some() {
            problems.push(
                "mqtt.own_partitions is an ingest setting: a gateway publishes to every partition".into(),
            );
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
            match Profile::load(self.profiles_dir.as_deref(), &d.profile) {
                Err(e) => problems.push(format!("device[{i}].profile: {e}")),
                Ok(profile) => {
                    if let Err(group_problems) = point_groups(&profile, d.interval, &d.group) {
                        problems.extend(group_problems.into_iter().map(|p| format!("device[{i}].{p}")));
                    }
                }
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
            let groups =
                point_groups(&profile, d.interval, &d.group).map_err(|problems| ConfigError::Invalid {
                    file: "<config>".into(),
                    problems: problems.into_iter().map(|p| format!("device `{}`: {p}", d.id)).collect(),
                })?;
            line.devices.push(Device { config: d.clone(), plan: plan(&profile), groups, profile });
        }
        Ok(lines)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
