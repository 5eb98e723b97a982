//! `ingest check --config FILE`: the config, and the rule files, profiles and registry it
//! names, loaded as `ingest run` would, with every problem listed. Reads files only: no
//! network, nothing written.

use std::path::Path;

use crate::config::{ConfigError, IngestConfig};

/// What a good config holds, for the one line `ingest check` prints.
#[derive(Debug, PartialEq)]
pub struct Summary {
    pub rules: usize,
    /// Units in the registry, when the config names one.
    pub registered: Option<usize>,
}

/// The config at `path` checked; `Err` lists every problem found.
pub fn check(path: &Path) -> Result<Summary, Vec<String>> {
    let cfg = match IngestConfig::read(path) {
        Ok(cfg) => cfg,
        Err(ConfigError::Load { file, source }) => return Err(vec![format!("{file}: {source}")]),
        Err(e) => return Err(vec![e.to_string()]),
    };
    let mut problems = cfg.problems();
    problems.extend(cfg.notify.problems());
    let console = &cfg.console;
    if let Err(e) = crate::console::auth::Auth::new(&console.users, &console.tokens, console.session_ttl) {
        problems.push(e);
    }
    let rules = match crate::server::load_rules(&cfg) {
        Ok(set) => set.rules.len(),
        Err(e) => {
            problems.push(e.to_string());
            0
        }
    };
    let registered = cfg.registry.file.as_deref().map(|file| {
        match crate::registry::RegistryFile::new(file).load_if_changed() {
            Some(Ok((registry, diagnostics))) => {
                problems.extend(diagnostics.iter().map(|d| format!("registry: {d}")));
                registry.len()
            }
            Some(Err(e)) => {
                problems.push(format!("registry: {e}"));
                0
            }
            None => 0,
        }
    });
    if problems.is_empty() {
        Ok(Summary { rules, registered })
    } else {
        let file = path.display();
        Err(problems
            .into_iter()
            .map(|p| if p.starts_with(&*file.to_string()) { p } else { format!("{file}: {p}") })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_checks_with_its_rule_pack() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/ingest.toml"));
        let summary = check(path).unwrap();
        assert!(summary.rules > 10, "deploy/rules loaded: {summary:?}");
        assert_eq!(summary.registered, None);
    }

    #[test]
    fn every_problem_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingest.toml");
        let text = "[mqtt]\nurl = \"http://x\"\npartitions = 0\n[rules]\nfiles = [\"missing.toml\"]\n\
                    [registry]\nfile = \"registry.csv\"\n";
        std::fs::write(&path, text).unwrap();
        let problems = check(&path).unwrap_err();
        let all = problems.join("\n");
        assert!(all.contains("mqtt.url"), "{all}");
        assert!(all.contains("mqtt.partitions"), "{all}");
        assert!(all.contains("missing.toml"), "{all}");
        assert!(all.contains("registry.csv"), "{all}");
        assert!(problems.iter().all(|p| p.starts_with(&path.display().to_string())), "{all}");
    }

    #[test]
    fn console_users_and_notify_receivers_are_checked_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingest.toml");
        let text = "[mqtt]\nurl = \"mqtt://127.0.0.1\"\n\
                    [[console.user]]\nname = \"li\"\nrole = \"admin\"\npassword_hash = \"plain\"\n\
                    [[notify.receiver]]\nname = \"x\"\ntype = \"pager\"\n";
        std::fs::write(&path, text).unwrap();
        let all = check(&path).unwrap_err().join("\n");
        assert!(all.contains("console.user[0] (li).password_hash"), "{all}");
        assert!(all.contains("notify.receiver[0]"), "{all}");
    }

    #[test]
    fn an_unknown_key_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingest.toml");
        std::fs::write(&path, "profiles_dir = \"p\"\n[mqtt]\nurl = \"mqtt://127.0.0.1\"\n").unwrap();
        let problems = check(&path).unwrap_err();
        assert!(problems[0].contains("profiles_dir"), "{problems:?}");
    }
}
