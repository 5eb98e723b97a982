//! Device profiles: one equipment model's register map and firmware limits, written once in TOML
//! and shared by every device of that model.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The four Modbus data tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    Coil,
    #[serde(alias = "discrete_input")]
    Discrete,
    #[serde(alias = "input_register")]
    Input,
    #[serde(alias = "holding_register")]
    Holding,
}

impl Table {
    /// Coils and discrete inputs are read as bits, the others as 16-bit registers.
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::Discrete)
    }

    /// The most a single read may ask for (Modbus application protocol, 6.1 to 6.4).
    pub fn protocol_limit(self) -> u16 {
        if self.is_bits() {
            2000
        } else {
            125
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Table::Coil => "coil",
            Table::Discrete => "discrete",
            Table::Input => "input",
            Table::Holding => "holding",
        }
    }
}

/// How a point's registers are interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    Bool,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl DataType {
    /// Registers (or bits, for `bool` in a bit table) the type occupies.
    pub fn width(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }

    pub fn is_integer(self) -> bool {
        !matches!(self, DataType::F32 | DataType::F64 | DataType::Bool)
    }
}

/// Byte order of a multi-byte value, in the usual notation: `ABCD` is big-endian throughout,
/// `CDAB` swaps the words, `BADC` swaps the bytes in each word, `DCBA` is little-endian.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum ByteOrder {
    #[default]
    ABCD,
    CDAB,
    BADC,
    DCBA,
}

impl ByteOrder {
    pub fn swaps_words(self) -> bool {
        matches!(self, ByteOrder::CDAB | ByteOrder::DCBA)
    }
    pub fn swaps_bytes(self) -> bool {
        matches!(self, ByteOrder::BADC | ByteOrder::DCBA)
    }
}

fn one() -> f64 {
    1.0
}

/// One named value in a device's register map.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    pub name: String,
    pub table: Table,
    pub address: u16,
    #[serde(rename = "type")]
    pub data_type: DataType,
    #[serde(default, alias = "word_order")]
    pub order: ByteOrder,
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
    #[serde(default)]
    pub unit: Option<String>,
    /// Named bits of an integer point; each is published as a boolean value of its own.
    #[serde(default)]
    pub bits: BTreeMap<u8, String>,
    /// Named values of a fault-code point, for rules and messages.
    #[serde(default)]
    pub codes: BTreeMap<u32, String>,
}

impl Point {
    /// Registers or bits this point spans.
    pub fn width(&self) -> u16 {
        if self.table.is_bits() {
            1
        } else {
            self.data_type.width()
        }
    }

    /// The last address this point occupies.
    pub fn end(&self) -> u32 {
        self.address as u32 + self.width() as u32 - 1
    }
}

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
    #[serde(rename = "point")]
    pub points: Vec<Point>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{file}: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {}", problems.join("; "))]
    Invalid { file: String, problems: Vec<String> },
    #[error("profile `{0}` is neither in the profiles folder nor built in")]
    Unknown(String),
}

/// The profiles shipped in `deploy/profiles/`, compiled in so the demo and the simulator run
/// anywhere.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("elevator-box-v1", include_str!("../../deploy/profiles/elevator-box-v1.toml")),
    ("boiler-ctl-v1", include_str!("../../deploy/profiles/boiler-ctl-v1.toml")),
    ("water-meter-v1", include_str!("../../deploy/profiles/water-meter-v1.toml")),
    ("charging-pile-dc-v1", include_str!("../../deploy/profiles/charging-pile-dc-v1.toml")),
];

impl Profile {
    /// Parses and validates a profile; `file` names it in errors.
    pub fn parse(name: &str, file: &str, text: &str) -> Result<Profile, ProfileError> {
        let mut profile: Profile = toml::from_str(text).map_err(|e| ProfileError::Parse {
            file: file.into(),
            message: toml_error_with_line(text, &e),
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
        if !telemetry::codec::is_kind(&self.kind) {
            problems.push(format!("kind `{}` must be lower-case letters, digits and `_`", self.kind));
        }
        if self.max_registers == 0 || self.max_registers > 125 {
            problems.push(format!("max_registers = {} must be 1 to 125", self.max_registers));
        }
        if self.max_bits == 0 || self.max_bits > 2000 {
            problems.push(format!("max_bits = {} must be 1 to 2000", self.max_bits));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, p) in self.points.iter().enumerate() {
            let at = format!("point[{i}] `{}`", p.name);
            if !telemetry::codec::is_point_name(&p.name) {
                problems
                    .push(format!("{at}: name must be letters, digits and `_`, not starting with a digit"));
            }
            if !names.insert(p.name.as_str()) {
                problems.push(format!("{at}: name used twice"));
            }
            if p.table.is_bits() && p.data_type != DataType::Bool {
                problems.push(format!("{at}: a {} holds bits, so its type must be bool", p.table.name()));
            }
            if !p.table.is_bits() && p.data_type == DataType::Bool {
                problems.push(format!("{at}: bool is for coils and discrete inputs; use bits on a u16"));
            }
            if p.end() > u16::MAX as u32 {
                problems.push(format!("{at}: runs past address 65535"));
            }
            let limit = if p.table.is_bits() { self.max_bits } else { self.max_registers };
            if p.width() > limit {
                problems.push(format!("{at}: needs {} registers but max_registers is {limit}", p.width()));
            }
            if !p.scale.is_finite() || p.scale == 0.0 || !p.offset.is_finite() {
                problems.push(format!("{at}: scale must be finite and non-zero, offset finite"));
            }
            let bits = p.data_type.width() * 16;
            for (bit, name) in &p.bits {
                if !p.data_type.is_integer() || *bit as u16 >= bits {
                    problems.push(format!("{at}: bit {bit} is outside a {bits}-bit integer"));
                }
                if !telemetry::codec::is_point_name(name) || !names.insert(name.as_str()) {
                    problems.push(format!("{at}: bit name `{name}` is not a fresh point name"));
                }
            }
        }
        problems
    }
}

/// A TOML error as `line L, column C: message`.
pub fn toml_error_with_line(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            format!("line {line}, column {col}: {}", e.message())
        }
        None => e.message().to_string(),
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
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
