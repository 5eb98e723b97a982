//! Reading a service's TOML config file the same way in every binary: the file, then
//! `{PREFIX}_{SECTION}__{KEY}` environment variables over it (`INGEST_MQTT__URL`). Variables
//! without the `__`, such as `INGEST_LOG` (the binary's log filter), are not config keys.

use std::path::Path;

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Load { file: String, source: Box<config::ConfigError> },
    #[error("{file}:\n  {}", problems.join("\n  "))]
    Invalid { file: String, problems: Vec<String> },
}

/// Reads `path` as TOML with the `{env_prefix}_{SECTION}__{KEY}` overrides of the process
/// environment. Nothing is validated beyond the types.
pub fn read<T: DeserializeOwned>(path: &Path, env_prefix: &str) -> Result<T, ConfigError> {
    read_with_vars(path, env_prefix, std::env::vars())
}

/// [`read`] with the environment given (tests).
pub fn read_with_vars<T: DeserializeOwned>(
    path: &Path,
    env_prefix: &str,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix(env_prefix)
                .prefix_separator("_")
                .separator("__")
                .source(Some(overrides(env_prefix, vars))),
        )
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|source| ConfigError::Load { file: path.display().to_string(), source: Box::new(source) })
}

/// Parses TOML text alone, without the environment (tests, the demo); `<inline>` in errors.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|source| ConfigError::Load { file: "<inline>".into(), source: Box::new(source) })
}

/// The `{prefix}_{SECTION}__{KEY}` variables among `vars`.
pub fn overrides(prefix: &str, vars: impl Iterator<Item = (String, String)>) -> config::Map<String, String> {
    vars.filter(|(k, _)| {
        k.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')).is_some_and(|rest| rest.contains("__"))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Section {
        url: String,
        #[serde(default)]
        partitions: u32,
    }
    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Config {
        mqtt: Section,
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn section_key_variables_override_the_file_and_others_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc.toml");
        std::fs::write(&path, "[mqtt]\nurl = \"mqtt://a\"\n").unwrap();
        let env = vars(&[
            ("SVC_MQTT__URL", "mqtt://b"),
            ("SVC_LOG", "debug"),
            ("SVCX_MQTT__PARTITIONS", "9"),
            ("OTHER_MQTT__PARTITIONS", "7"),
        ]);
        let cfg: Config = read_with_vars(&path, "SVC", env).unwrap();
        assert_eq!(cfg, Config { mqtt: Section { url: "mqtt://b".into(), partitions: 0 } });
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc.toml");
        std::fs::write(&path, "[mqtt]\nport = 1\n").unwrap();
        let err = read_with_vars::<Config>(&path, "SVC", vars(&[])).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}: ", path.display())), "{err}");
        assert!(err.contains("url"), "{err}");
        let err = parse::<Config>("[mqtt]\n").unwrap_err().to_string();
        assert!(err.starts_with("<inline>: "), "{err}");
    }
}
