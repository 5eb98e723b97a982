//! `ingest.toml`. Read with the `config` crate; scalar keys can be overridden from the
//! environment as `INGEST_{SECTION}__{KEY}`, e.g. `INGEST_TSDB__TOKEN=...`. Relative paths
//! resolve against the config file's folder (`config_paths.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use telemetry::spool::ByteSize;

#[path = "config_paths.rs"]
mod paths;
pub use telemetry::mqtt::MqttConfig;
use telemetry::service::config_file;
pub use telemetry::service::ConfigError;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub rules: RulesConfig,
    /// An InfluxDB v2 write endpoint. Without one, readings go to line-protocol files.
    #[serde(default)]
    pub tsdb: Option<TsdbConfig>,
    #[serde(default)]
    pub files: FilesConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub wal: WalConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub registry: RegistryConfig,
    #[serde(default)]
    pub state: StateConfig,
    /// Users and tokens of the web console; without any, the console is off.
    #[serde(default)]
    pub console: crate::console::ConsoleConfig,
    /// Alert notifications (webhooks, robots, e-mail); without receivers, none are sent.
    #[serde(default)]
    pub notify: crate::notify::NotifyConfig,
    /// What one message may hold; over a limit it is dead-lettered (see [`crate::limits`]).
    #[serde(default)]
    pub limits: crate::limits::LimitsConfig,
    /// When `/readyz` says not ready, besides not being subscribed.
    #[serde(default)]
    pub health: crate::health::HealthConfig,
}

fn default_snapshot_every() -> Duration {
    Duration::from_secs(10)
}

/// Alert state kept across restarts (SQLite).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Keep alert state across restarts (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The SQLite file; by default `state.sqlite` in the WAL folder, since the two go together.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// How often the rules engine's state is saved; the WAL is acknowledged up to that point.
    #[serde(default = "default_snapshot_every", with = "humantime_serde")]
    pub snapshot_every: Duration,
    /// Devices with no message for this long are forgotten (dedup and rules state), unless
    /// their rules state holds an alert; `0s`: never.
    #[serde(default = "default_evict_idle_after", with = "humantime_serde")]
    pub evict_idle_after: Duration,
}

fn default_evict_idle_after() -> Duration {
    crate::pipeline::EVICT_IDLE_AFTER
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            enabled: true,
            path: None,
            snapshot_every: default_snapshot_every(),
            evict_idle_after: default_evict_idle_after(),
        }
    }
}

fn default_registry_check() -> Duration {
    Duration::from_secs(10)
}
fn default_kpi_every() -> Duration {
    Duration::from_secs(3600)
}
fn yes() -> bool {
    true
}

/// The equipment registry (CSV): device attributes for rules, towns for tags, inspection due
/// dates, and the list of devices ingest accepts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Readings of devices not in the registry go to dead-letter (only with a registry file).
    #[serde(default = "yes")]
    pub reject_unknown_devices: bool,
    /// How often the file is checked for changes and reloaded.
    #[serde(default = "default_registry_check", with = "humantime_serde")]
    pub check_every: Duration,
    /// How often the overdue-inspection rate is written to the TSDB (measurement `inspection`).
    #[serde(default = "default_kpi_every", with = "humantime_serde")]
    pub overdue_rate_every: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            file: None,
            reject_unknown_devices: true,
            check_every: default_registry_check(),
            overdue_rate_every: default_kpi_every(),
        }
    }
}

fn default_wal_dir() -> PathBuf {
    PathBuf::from("data/wal")
}
fn default_wal_max() -> ByteSize {
    ByteSize(2 << 30)
}
fn default_wal_segment() -> ByteSize {
    ByteSize(64 << 20)
}

/// The write-ahead log: every message is in it (synced) before it is acknowledged to the broker.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalConfig {
    #[serde(default = "default_wal_dir")]
    pub dir: PathBuf,
    /// When full, ingest stops acknowledging (the broker keeps the messages) until it drains.
    #[serde(default = "default_wal_max")]
    pub max_bytes: ByteSize,
    #[serde(default = "default_wal_segment")]
    pub segment_bytes: ByteSize,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            dir: default_wal_dir(),
            max_bytes: default_wal_max(),
            segment_bytes: default_wal_segment(),
        }
    }
}

/// `/metrics`, `/healthz`, `/readyz` (and later the console) on this address.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default)]
    pub listen: Option<std::net::SocketAddr>,
}

/// The MQTT client id when `[mqtt] client_id` is not given.
pub const DEFAULT_CLIENT_ID: &str = "ingest-1";

fn default_reload_check() -> Duration {
    Duration::from_secs(5)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Rule files or folders of `*.toml`; the built-in default pack when empty.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// How often the rule files are checked for changes (hot reload).
    #[serde(default = "default_reload_check", with = "humantime_serde")]
    pub reload_check_every: Duration,
    /// A folder of gateway profiles (`*.toml`): the decimals alert summaries show each point's
    /// values to (a point's `decimals`, else its unit's). Default: the built-in profiles.
    #[serde(default)]
    pub profiles: Option<PathBuf>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig { files: Vec::new(), reload_check_every: default_reload_check(), profiles: None }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsdbConfig {
    /// Base URL of a server speaking the InfluxDB v2 write API (no path prefix).
    pub url: String,
    #[serde(default)]
    pub org: String,
    pub bucket: String,
    #[serde(default)]
    pub token: String,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Compress write bodies (`Content-Encoding: gzip`); line protocol shrinks about tenfold.
    #[serde(default = "default_gzip")]
    pub gzip: bool,
}

fn default_gzip() -> bool {
    true
}

fn default_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_rotate_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_rotate_every() -> Duration {
    Duration::from_secs(3600)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// Folder of the rotated line-protocol files (and of rejected batches).
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    #[serde(default = "default_rotate_bytes")]
    pub rotate_bytes: u64,
    #[serde(default = "default_rotate_every", with = "humantime_serde")]
    pub rotate_every: Duration,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            dir: default_dir(),
            rotate_bytes: default_rotate_bytes(),
            rotate_every: default_rotate_every(),
        }
    }
}

fn default_batch_size() -> usize {
    5_000
}
fn default_flush_every() -> Duration {
    Duration::from_millis(200)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Readings per write at most.
    #[serde(default = "default_batch_size")]
    pub max_readings: usize,
    /// A partial batch is written after this long.
    #[serde(default = "default_flush_every", with = "humantime_serde")]
    pub flush_every: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig { max_readings: default_batch_size(), flush_every: default_flush_every() }
    }
}

impl IngestConfig {
    pub fn load(path: &Path) -> Result<IngestConfig, ConfigError> {
        let cfg = IngestConfig::read(path)?;
        let problems = cfg.problems();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid { file: path.display().to_string(), problems })
        }
    }

    /// Reads `path` with the `INGEST_*` overrides and resolves its paths, without [`Self::problems`].
    pub fn read(path: &Path) -> Result<IngestConfig, ConfigError> {
        let mut cfg: IngestConfig = config_file::read(path, "INGEST")?;
        cfg.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(cfg)
    }

    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        problems.extend(self.mqtt.problems().iter().map(|p| crate::redact::redact(p).into_owned()));
        if let Some(t) = &self.tsdb {
            if !(t.url.starts_with("http://") || t.url.starts_with("https://")) {
                let url = crate::redact::redact(&t.url);
                problems.push(format!("tsdb.url `{url}` must start with http:// or https://"));
            }
            if t.bucket.is_empty() {
                problems.push("tsdb.bucket must not be empty".into());
            }
        }
        if self.batch.max_readings == 0 {
            problems.push("batch.max_readings must be at least 1".into());
        }
        problems.extend(self.limits.problems());
        problems.extend(self.health.problems());
        problems
    }

    /// Where alert state is kept, if it is.
    pub fn state_path(&self) -> Option<PathBuf> {
        self.state
            .enabled
            .then(|| self.state.path.clone().unwrap_or_else(|| self.wal.dir.join("state.sqlite")))
    }

    /// The notification outbox: beside the alert state, since the two go together.
    pub fn outbox_path(&self) -> PathBuf {
        match self.state_path() {
            Some(state) => state.with_file_name("outbox.sqlite"),
            None => self.wal.dir.join("outbox.sqlite"),
        }
    }

    /// The subscription filters for the owned partitions.
    pub fn filters(&self) -> Vec<String> {
        let topics = telemetry::Topics::new(&self.mqtt.topic_prefix);
        match &self.mqtt.own_partitions {
            None => vec![topics.telemetry_filter(None)],
            Some(ps) => ps.iter().map(|p| topics.telemetry_filter(Some(*p))).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_in_deploy_loads() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/ingest.toml"));
        let cfg = IngestConfig::load(path).unwrap();
        assert!(cfg.tsdb.is_some());
        assert_eq!(cfg.filters(), vec!["telemetry/+/+/+".to_string()]);
        assert_eq!(cfg.limits, crate::limits::LimitsConfig::default(), "it shows the defaults");
        assert_eq!(cfg.state.evict_idle_after, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn evict_idle_after_is_a_duration_and_zero_turns_it_off() {
        let text = "[mqtt]\nurl = \"mqtt://127.0.0.1\"\n[state]\nevict_idle_after = \"6h\"\n";
        let cfg: IngestConfig = toml::from_str(text).unwrap();
        assert_eq!(cfg.state.evict_idle_after, Duration::from_secs(6 * 3600));
        let text = "[mqtt]\nurl = \"mqtt://127.0.0.1\"\n";
        let cfg: IngestConfig = toml::from_str(text).unwrap();
        assert_eq!(cfg.state.evict_idle_after, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn owned_partitions_give_one_filter_each_and_are_checked() {
        let text = "[mqtt]\nurl = \"mqtt://127.0.0.1\"\npartitions = 4\nown_partitions = [0, 2, 7]\n";
        let cfg: IngestConfig = toml::from_str(text).unwrap();
        assert_eq!(
            cfg.problems(),
            vec!["mqtt.own_partitions: 7 is not below mqtt.partitions = 4".to_string()]
        );
        assert_eq!(cfg.filters()[1], "telemetry/2/+/+");
    }
}
