//! Relative paths in `ingest.toml` resolve against the config file's folder, not the working
//! directory: a unit started from `/` with `--config /etc/ingest/ingest.toml` finds
//! `files = ["rules"]` at `/etc/ingest/rules`.

use std::path::{Path, PathBuf};

use crate::IngestConfig;

fn resolve(base: &Path, path: &mut PathBuf) {
    if path.is_relative() {
        *path = base.join(&*path);
    }
}

impl IngestConfig {
    /// Every path key made absolute against `base` (the config file's folder): rule files and
    /// profiles, the registry, the WAL, line-protocol files, alert state and secret files.
    /// Defaults such as `data/wal` resolve the same way.
    pub fn resolve_paths(&mut self, base: &Path) {
        self.rules.files.iter_mut().for_each(|p| resolve(base, p));
        self.rules.profiles.iter_mut().for_each(|p| resolve(base, p));
        self.registry.file.iter_mut().for_each(|p| resolve(base, p));
        resolve(base, &mut self.wal.dir);
        resolve(base, &mut self.files.dir);
        self.state.path.iter_mut().for_each(|p| resolve(base, p));
        self.mqtt.resolve_paths(base);
        for r in &mut self.notify.receivers {
            r.secret_file.iter_mut().for_each(|p| resolve(base, p));
            r.password_file.iter_mut().for_each(|p| resolve(base, p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
[mqtt]
url = "mqtt://127.0.0.1"
[rules]
files = ["rules", "/usr/share/ingest/rules/extra.toml"]
profiles = "profiles"
[registry]
file = "registry.csv"
[wal]
dir = "/var/lib/ingest/wal"
[state]
path = "state/alerts.sqlite"
[[notify.receiver]]
name = "duty"
type = "dingtalk"
url = "https://oapi.dingtalk.com/robot/send"
secret_file = "dingtalk.secret"
[[notify.receiver]]
name = "mail"
type = "email"
password_file = "/run/credentials/ingest.service/smtp"
"#;

    #[test]
    fn relative_paths_resolve_against_the_config_folder_and_absolute_ones_stay() {
        let mut cfg: IngestConfig = toml::from_str(TEXT).unwrap();
        cfg.resolve_paths(Path::new("/etc/ingest"));
        assert_eq!(
            cfg.rules.files,
            vec![PathBuf::from("/etc/ingest/rules"), PathBuf::from("/usr/share/ingest/rules/extra.toml")]
        );
        assert_eq!(cfg.rules.profiles, Some(PathBuf::from("/etc/ingest/profiles")));
        assert_eq!(cfg.registry.file, Some(PathBuf::from("/etc/ingest/registry.csv")));
        assert_eq!(cfg.wal.dir, PathBuf::from("/var/lib/ingest/wal"));
        assert_eq!(cfg.files.dir, PathBuf::from("/etc/ingest/data"), "a default resolves too");
        assert_eq!(cfg.state_path(), Some(PathBuf::from("/etc/ingest/state/alerts.sqlite")));
        assert_eq!(cfg.notify.receivers[0].secret_file, Some(PathBuf::from("/etc/ingest/dingtalk.secret")));
        assert_eq!(
            cfg.notify.receivers[1].password_file,
            Some(PathBuf::from("/run/credentials/ingest.service/smtp"))
        );
    }

    #[test]
    fn load_resolves_against_the_file_folder_not_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingest.toml");
        std::fs::write(&path, "[mqtt]\nurl = \"mqtt://127.0.0.1\"\n[wal]\ndir = \"wal\"\n").unwrap();
        let cfg = IngestConfig::load(&path).unwrap();
        assert_eq!(cfg.wal.dir, dir.path().join("wal"));
        assert_eq!(cfg.state_path(), Some(dir.path().join("wal/state.sqlite")));
    }
}
