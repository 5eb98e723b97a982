//! Device profiles: one equipment model's register map and firmware limits, written once in TOML
//! and shared by every device of that model.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

mod point;

pub use crate::builtin_profiles::BUILT_IN;
pub use point::{BitRange, ByteOrder, DataType, Point, Table, BYTE_ORDERS, DATA_TYPES};

fn default_max_registers() -> u16 {
    125
}
fn default_max_bits() -> u16 {
    2000
}

/// One equipment model.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Set from the file name when loaded from a file.
    #[serde(default)]
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Most registers the firmware answers in one request.
    #[serde(default = "default_max_registers")]
    pub max_registers: u16,
    /// Most bits the firmware answers in one request.
    #[serde(default = "default_max_bits")]
    pub max_bits: u16,
    /// Largest hole of unused addresses a request may read across to save a request.
    #[serde(default)]
    pub max_gap: u16,
    /// Pause before each request to a device of this model, on top of the line's silent
    /// interval (slow firmware that needs time between requests).
    #[serde(default, with = "humantime_serde")]
    pub pause_between_requests: Duration,
    /// Pause after the line's connection is opened before the first request to a device of
    /// this model (firmware or converters that drop what comes too soon).
    #[serde(default, with = "humantime_serde")]
    pub pause_after_connect: Duration,
    #[serde(rename = "point")]
    pub points: Vec<Point>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{file}: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}: {}", with_position(*at, message))]
    Parse {
        file: String,
        /// 1-based line and column, when the TOML parser gives a position.
        at: Option<(usize, usize)>,
        message: String,
    },
    #[error("{file}: {}", problems.join("; "))]
    Invalid { file: String, problems: Vec<String> },
    #[error("profile `{0}` is neither in the profiles folder nor built in")]
    Unknown(String),
}

/// The longest pause a profile may ask for (a longer one would hold the line for too long).
pub const MAX_PAUSE: Duration = Duration::from_secs(10);

impl Profile {
    /// A profile of `points` with the default limits (125 registers, 2000 bits, no gap, no
    /// pauses); not validated.
    pub fn new(name: &str, kind: &str, points: Vec<Point>) -> Profile {
        Profile {
            name: name.into(),
            kind: kind.into(),
            description: None,
            max_registers: default_max_registers(),
            max_bits: default_max_bits(),
            max_gap: 0,
            pause_between_requests: Duration::ZERO,
            pause_after_connect: Duration::ZERO,
            points,
        }
    }

    /// Parses and validates a profile; `file` names it in errors.
    pub fn parse(name: &str, file: &str, text: &str) -> Result<Profile, ProfileError> {
        let mut profile: Profile = toml::from_str(text).map_err(|e| ProfileError::Parse {
            file: file.into(),
            at: e.span().map(|span| line_col(text, span.start)),
            message: e.message().trim_end().to_string(),
        })?;
        profile.name = name.to_string();
        let problems = profile.problems();
        if problems.is_empty() {
            Ok(profile)
        } else {
            Err(ProfileError::Invalid { file: file.into(), problems })
        }
    }

    pub fn built_in(name: &str) -> Result<Profile, ProfileError> {
        let (_, text) =
            BUILT_IN.iter().find(|(n, _)| *n == name).ok_or_else(|| ProfileError::Unknown(name.into()))?;
        Profile::parse(name, &format!("built-in profile {name}"), text)
    }

    /// Loads `{dir}/{name}.toml`, falling back to the built-in profile of that name.
    pub fn load(dir: Option<&Path>, name: &str) -> Result<Profile, ProfileError> {
        if let Some(dir) = dir {
            let path = dir.join(format!("{name}.toml"));
            if path.exists() {
                let file = path.display().to_string();
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| ProfileError::Read { file: file.clone(), source })?;
                return Profile::parse(name, &file, &text);
            }
        }
        Profile::built_in(name)
    }

    /// Everything wrong with the profile, each naming the point.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !crate::codec::is_kind(&self.kind) {
            problems.push(format!("kind `{}` must be lower-case letters, digits and `_`", self.kind));
        }
        if self.max_registers == 0 || self.max_registers > 125 {
            problems.push(format!("max_registers = {} must be 1 to 125", self.max_registers));
        }
        if self.max_bits == 0 || self.max_bits > 2000 {
            problems.push(format!("max_bits = {} must be 1 to 2000", self.max_bits));
        }
        for (key, pause) in [
            ("pause_between_requests", self.pause_between_requests),
            ("pause_after_connect", self.pause_after_connect),
        ] {
            if pause > MAX_PAUSE {
                problems.push(format!(
                    "{key} = {} is longer than {}",
                    fmt_duration(pause),
                    fmt_duration(MAX_PAUSE)
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, p) in self.points.iter().enumerate() {
            let at = format!("point[{i}] `{}`", p.name);
            if !crate::codec::is_point_name(&p.name) {
                problems
                    .push(format!("{at}: name must be letters, digits and `_`, not starting with a digit"));
            }
            if !names.insert(p.name.as_str()) {
                problems.push(format!("{at}: name used twice"));
            }
            problems.extend(p.problems(&at));
            if p.end() > u16::MAX as u32 {
                problems.push(format!("{at}: runs past address 65535"));
            }
            let (limit, key) = if p.table.is_bits() {
                (self.max_bits, "max_bits")
            } else {
                (self.max_registers, "max_registers")
            };
            if p.width() > limit {
                problems.push(format!("{at}: needs {} registers but {key} is {limit}", p.width()));
            }
            for name in p.bits.values() {
                if !crate::codec::is_point_name(name) || !names.insert(name.as_str()) {
                    problems.push(format!("{at}: bit name `{name}` is not a fresh point name"));
                }
            }
        }
        problems
    }
}

/// `1s`, `250ms`: a duration as the config files write it.
pub fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn with_position(at: Option<(usize, usize)>, message: &str) -> String {
    match at {
        Some((line, col)) => format!("line {line}, column {col}: {message}"),
        None => message.to_string(),
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_profile_parses() {
        for (name, _) in BUILT_IN {
            let p = Profile::built_in(name).unwrap();
            assert!(!p.points.is_empty(), "{name}");
        }
    }

    /// Every profile in `deploy/profiles/` is compiled in, as it is on disk.
    #[test]
    fn every_shipped_profile_is_built_in() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/profiles");
        let mut shipped = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                let built_in = BUILT_IN.iter().find(|(n, _)| *n == name);
                let text = std::fs::read_to_string(&path).unwrap();
                assert_eq!(built_in.map(|(_, t)| *t), Some(text.as_str()), "{name} is not in BUILT_IN");
                Profile::load(Some(&dir), &name).unwrap();
                shipped.push(name);
            }
        }
        assert_eq!(shipped.len(), BUILT_IN.len(), "{shipped:?}");
    }

    #[test]
    fn new_types_and_pauses_are_checked() {
        let text = r#"
kind = "charging_pile"
pause_between_requests = "20ms"
pause_after_connect = "1m"
[[point]]
name = "serial"
table = "input"
address = 0
type = "string"
order = "DCBA"
[[point]]
name = "field"
table = "input"
address = 10
type = "bitfield"
bits = "12..19"
[[point]]
name = "plain"
table = "input"
address = 11
type = "u16"
bits = "1..2"
length = 2
[[point]]
name = "no_bits"
table = "input"
address = 12
type = "bitfield"
"#;
        let err = Profile::parse("t", "t.toml", text).unwrap_err().to_string();
        for want in [
            "pause_after_connect = 1m is longer than 10s",
            "point[0] `serial`: a string needs length",
            "point[0] `serial`: order DCBA swaps words",
            "point[1] `field`: bits 12..19 run past a 16-bit register (length = 2 for a u32)",
            "point[2] `plain`: length is for string and bitfield, not u16",
            "point[2] `plain`: bits = \"1..2\" is for type bitfield",
            "point[3] `no_bits`: a bitfield needs its bits",
        ] {
            assert!(err.contains(want), "{want}: {err}");
        }
        let fixed = text
            .replace("pause_after_connect = \"1m\"", "pause_after_connect = \"2s\"")
            .replace("order = \"DCBA\"", "order = \"BADC\"\nlength = 5")
            .replace("bits = \"12..19\"", "bits = \"12..19\"\nlength = 2")
            .replace("bits = \"1..2\"\nlength = 2", "")
            + "bits = \"3\"\n";
        let p = Profile::parse("t", "t.toml", &fixed).unwrap_or_else(|e| panic!("{e}\n{fixed}"));
        assert_eq!(p.pause_after_connect, Duration::from_secs(2));
        assert_eq!(p.points[1].width(), 2);
        assert_eq!(p.points[3].field, Some(BitRange { low: 3, high: 3 }));
        let err = Profile::parse("t", "t.toml", &text.replace("12..19", "19..12")).unwrap_err().to_string();
        assert!(
            err.starts_with("t.toml: line 16, column 8: bit range `19..12`: the low bit comes first"),
            "{err}"
        );
    }

    #[test]
    fn problems_name_the_point() {
        let text = r#"
kind = "boiler"
[[point]]
name = "p"
table = "coil"
address = 1
type = "u16"
[[point]]
name = "p"
table = "holding"
address = 65535
type = "f32"
bits = { 40 = "x" }
"#;
        let err = Profile::parse("t", "t.toml", text).unwrap_err().to_string();
        assert!(err.contains("point[0] `p`: a coil holds bits"), "{err}");
        assert!(err.contains("point[1] `p`: name used twice"), "{err}");
        assert!(err.contains("point[1] `p`: runs past address 65535"), "{err}");
        assert!(err.contains("bit 40 is outside"), "{err}");
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err =
            Profile::parse("t", "t.toml", "kind = \"boiler\"\n[[point]]\nname = \n").unwrap_err().to_string();
        assert!(err.starts_with("t.toml: line 3, column"), "{err}");
        let err = Profile::parse("t", "t.toml", "kind = \"boiler\"\npoints = 3\n").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
