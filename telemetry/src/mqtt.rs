//! The `[mqtt]` section gateway and ingest both read: where the broker is, who connects, and
//! how topics are laid out. One struct, so a key means the same on both sides and a new one
//! (TLS, say) is added once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

fn default_partitions() -> u32 {
    16
}
fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}

/// `[mqtt]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` (port 1883 when omitted).
    pub url: String,
    /// Must be stable: the broker keeps the persistent session under it. Each side has its own
    /// default (the gateway's id; `ingest`).
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// A file holding the password (its trailing newline dropped), instead of `password`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
    #[serde(default)]
    pub topic_prefix: String,
    /// Total partitions of `telemetry/{p}/…`: the same number on every gateway and ingest.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Ingest only: the partitions this instance owns; all of them when absent.
    #[serde(default)]
    pub own_partitions: Option<Vec<u32>>,
}

impl MqttConfig {
    /// A config for `url` with every other key at its default.
    pub fn new(url: &str) -> MqttConfig {
        MqttConfig {
            url: url.to_string(),
            client_id: None,
            username: None,
            password: None,
            password_file: None,
            keep_alive: default_keep_alive(),
            topic_prefix: String::new(),
            partitions: default_partitions(),
            own_partitions: None,
        }
    }

    /// Everything wrong with the section, each naming its key (`mqtt.url: …`).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(why) = parse_mqtt_url(&self.url) {
            problems.push(format!("mqtt.url: {why}"));
        }
        if self.partitions == 0 {
            problems.push("mqtt.partitions must be at least 1".into());
        }
        for p in self.own_partitions.iter().flatten() {
            if *p >= self.partitions {
                problems.push(format!(
                    "mqtt.own_partitions: {p} is not below mqtt.partitions = {}",
                    self.partitions
                ));
            }
        }
        if self.password.is_some() && self.password_file.is_some() {
            problems.push("mqtt: give password or password_file, not both".into());
        }
        if self.keep_alive < Duration::from_secs(1) {
            problems.push("mqtt.keep_alive must be at least 1s".into());
        }
        problems
    }

    /// `password_file` made absolute against `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(file) = self.password_file.as_mut().filter(|f| f.is_relative()) {
            *file = base.join(&*file);
        }
    }

    /// The password: `password`, else `password_file`'s first line, else empty.
    pub fn password(&self) -> Result<String, String> {
        match (&self.password, &self.password_file) {
            (Some(p), _) => Ok(p.clone()),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("mqtt.password_file {}: {e}", f.display())),
            (None, None) => Ok(String::new()),
        }
    }

    /// rumqttc's options for this broker: host, port, keep-alive, credentials and a
    /// persistent session (clean session off), under `client_id` unless the config names one.
    #[cfg(feature = "service")]
    pub fn options(&self, default_client_id: &str) -> Result<rumqttc::MqttOptions, String> {
        let (host, port) = parse_mqtt_url(&self.url)?;
        let client_id = self.client_id.as_deref().unwrap_or(default_client_id);
        let mut options = rumqttc::MqttOptions::new(client_id, host, port);
        options.set_keep_alive(self.keep_alive).set_clean_session(false);
        if let Some(user) = &self.username {
            options.set_credentials(user, self.password()?);
        }
        Ok(options)
    }
}

/// `mqtt://host:port` or `tcp://host:port` to host and port.
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| format!("`{url}` must start with mqtt:// (TLS is not supported yet)"))?;
    let rest = rest.trim_end_matches('/');
    let port_of = |p: &str| p.parse::<u16>().map_err(|_| format!("`{url}`: port `{p}` is not a number"));
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (host, after) =
            bracketed.split_once(']').ok_or_else(|| format!("`{url}`: `[` without its `]`"))?;
        match after.strip_prefix(':') {
            Some(p) => (host, port_of(p)?),
            None if after.is_empty() => (host, 1883),
            None => return Err(format!("`{url}`: `{after}` after the address")),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, port_of(p)?),
            None => (rest, 1883),
        }
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(parse_mqtt_url("mqtt://127.0.0.1:1884"), Ok(("127.0.0.1".into(), 1884)));
        assert_eq!(parse_mqtt_url("mqtt://broker"), Ok(("broker".into(), 1883)));
        assert_eq!(parse_mqtt_url("tcp://[::1]:1883"), Ok(("::1".into(), 1883)));
        assert_eq!(parse_mqtt_url("mqtt://[::1]"), Ok(("::1".into(), 1883)));
        assert!(parse_mqtt_url("http://x").is_err());
        assert!(parse_mqtt_url("mqtt://x:abc").is_err());
        assert!(parse_mqtt_url("mqtt://:1883").is_err());
        assert!(parse_mqtt_url("mqtt://[::1").is_err());
        assert!(parse_mqtt_url("mqtt://[::1]x").is_err());
    }

    #[test]
    fn every_problem_names_its_key() {
        let mut cfg = MqttConfig::new("http://broker");
        cfg.partitions = 4;
        cfg.own_partitions = Some(vec![1, 7]);
        cfg.password = Some("p".into());
        cfg.password_file = Some("p.txt".into());
        cfg.keep_alive = Duration::ZERO;
        let problems = cfg.problems();
        assert!(problems[0].starts_with("mqtt.url: `http://broker` must start with mqtt://"), "{problems:?}");
        assert_eq!(
            problems[1..],
            [
                "mqtt.own_partitions: 7 is not below mqtt.partitions = 4",
                "mqtt: give password or password_file, not both",
                "mqtt.keep_alive must be at least 1s",
            ]
        );
        assert!(MqttConfig::new("mqtt://127.0.0.1").problems().is_empty());
    }

    #[test]
    fn the_password_comes_from_its_file_without_the_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mqtt.pass"), "s3cret\n").unwrap();
        let mut cfg = MqttConfig::new("mqtt://127.0.0.1");
        cfg.password_file = Some("mqtt.pass".into());
        cfg.resolve_paths(dir.path());
        assert_eq!(cfg.password_file.as_deref(), Some(dir.path().join("mqtt.pass").as_path()));
        assert_eq!(cfg.password().unwrap(), "s3cret");
        cfg.password_file = Some(dir.path().join("missing"));
        assert!(cfg.password().unwrap_err().starts_with("mqtt.password_file "), "missing file named");
    }
}
