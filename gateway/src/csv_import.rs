//! `gateway import-csv`: the register sheet engineers keep (one row per point) to a profile.
//! Pure: the sheet's text in, the profile and every bad row (by line and column) out.
//!
//! The first row names the columns, in any order (case and surrounding spaces ignored):
//! `name`, `address` and `type` are required; `table`, `order`, `length`, `scale`, `offset`,
//! `unit`, `bits`, `codes`, `interval` and `description` may be left out or empty. Lines
//! starting with `#` are comments. Addresses are decimal (`100`), hex (`0x0064`), or, with the
//! `table` cell empty, a Modicon reference that implies the table (`40101` or `400101`: holding
//! register 100; `30001`: input register 0; `10001`: discrete input 0; `00001`: coil 0).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::profile::{BitRange, ByteOrder, DataType, Point, Profile, Table};

const COLUMNS: &[&str] = &[
    "name",
    "table",
    "address",
    "type",
    "order",
    "length",
    "scale",
    "offset",
    "unit",
    "bits",
    "codes",
    "interval",
    "description",
];

/// What the sheet does not say: the model's kind, name and limits.
#[derive(Clone, Debug)]
pub struct SheetOptions {
    pub kind: String,
    pub name: String,
    pub description: Option<String>,
    pub max_registers: Option<u16>,
    pub max_bits: Option<u16>,
    pub max_gap: Option<u16>,
}

/// A row left out, with why: `line 7, column `type`: unknown type `flaot``.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub column: String,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column `{}`: {}", self.line, self.column, self.message)
    }
}

/// A sheet that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    #[error("line {line}: {message}")]
    Header { line: u64, message: String },
    #[error("{0}")]
    Csv(String),
    #[error("the profile: {}", .0.join("; "))]
    Profile(Vec<String>),
}

/// The profile of the good rows, and the bad rows left out.
#[derive(Debug)]
pub struct Imported {
    pub profile: Profile,
    pub errors: Vec<RowError>,
}

/// Reads a sheet. Every bad row is reported (its first bad cell) and left out; the profile of
/// the rest is valid.
pub fn import(text: &str, options: &SheetOptions) -> Result<Imported, SheetError> {
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| SheetError::Csv(e.to_string()))?.clone();
    let header_line = header.position().map_or(1, |p| p.line());
    let mut columns: BTreeMap<&str, usize> = BTreeMap::new();
    let names: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    for (i, h) in names.iter().enumerate() {
        let Some(&known) = COLUMNS.iter().find(|c| **c == h.as_str()) else {
            return Err(SheetError::Header {
                line: header_line,
                message: format!("unknown column `{h}` (columns: {})", COLUMNS.join(", ")),
            });
        };
        if columns.insert(known, i).is_some() {
            return Err(SheetError::Header { line: header_line, message: format!("column `{h}` twice") });
        }
    }
    for required in ["name", "address", "type"] {
        if !columns.contains_key(required) {
            return Err(SheetError::Header {
                line: header_line,
                message: format!("no column `{required}` (required: name, address, type)"),
            });
        }
    }
    let mut profile = Profile::new(&options.name, &options.kind, Vec::new());
    profile.description = options.description.clone();
    profile.max_registers = options.max_registers.unwrap_or(profile.max_registers);
    profile.max_bits = options.max_bits.unwrap_or(profile.max_bits);
    profile.max_gap = options.max_gap.unwrap_or(profile.max_gap);
    let mut errors = Vec::new();
    let mut taken: BTreeMap<String, u64> = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| SheetError::Csv(e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let fail = |column: &str, message: String| RowError { line, column: column.into(), message };
        if record.len() > names.len() {
            errors.push(fail("-", format!("{} cells where the header has {}", record.len(), names.len())));
            continue;
        }
        let cell = |c: &str| columns.get(c).and_then(|&i| record.get(i)).unwrap_or("");
        let point = match row(&cell, &profile) {
            Ok(p) => p,
            Err((column, message)) => {
                errors.push(fail(column, message));
                continue;
            }
        };
        let names_of_row: Vec<&String> = std::iter::once(&point.name).chain(point.bits.values()).collect();
        if let Some((name, first)) = names_of_row.iter().find_map(|n| taken.get(*n).map(|l| (n, l))) {
            let column = if *name == &point.name { "name" } else { "bits" };
            errors.push(fail(column, format!("`{name}` is already the name of line {first}")));
            continue;
        }
        for n in names_of_row {
            taken.insert(n.clone(), line);
        }
        profile.points.push(point);
    }
    let problems = profile.problems();
    if !problems.is_empty() {
        return Err(SheetError::Profile(problems));
    }
    Ok(Imported { profile, errors })
}

type Cell<'a> = dyn Fn(&str) -> &'a str + 'a;

/// One row to a point, or the first bad cell: (column, why).
fn row<'a>(cell: &Cell<'a>, profile: &Profile) -> Result<Point, (&'static str, String)> {
    let name = cell("name");
    if !telemetry::codec::is_point_name(name) {
        return Err((
            "name",
            format!("`{name}` is not a point name (letters, digits and `_`, not starting with a digit)"),
        ));
    }
    let (table, address) = address(cell("table"), cell("address")).map_err(|m| ("address", m))?;
    let data_type = data_type(cell("type")).map_err(|m| ("type", m))?;
    let mut p = Point::new(name, table, address, data_type);
    let order = cell("order");
    if !order.is_empty() {
        p.order = ByteOrder::from_name(order)
            .ok_or_else(|| ("order", format!("`{order}` is not ABCD, CDAB, BADC or DCBA")))?;
    }
    p.length = optional(cell("length"), "length")?;
    p.scale = optional(cell("scale"), "scale")?.unwrap_or(1.0);
    p.offset = optional(cell("offset"), "offset")?.unwrap_or(0.0);
    p.unit = Some(cell("unit").to_string()).filter(|u| !u.is_empty());
    let bits = cell("bits");
    if data_type == DataType::Bitfield {
        p.field = Some(BitRange::parse(bits).map_err(|m| ("bits", m))?);
    } else if !bits.is_empty() {
        p.bits = pairs(bits).map_err(|m| ("bits", m))?;
    }
    p.codes = pairs(cell("codes")).map_err(|m| ("codes", m))?;
    let interval = cell("interval");
    if !interval.is_empty() {
        let every: Duration =
            humantime::parse_duration(interval).map_err(|e| ("interval", format!("`{interval}`: {e}")))?;
        p.interval = Some(every);
    }
    p.description = Some(cell("description").to_string()).filter(|d| !d.is_empty());
    if let Some(problem) = p.problems_by_key().into_iter().next() {
        return Err(problem);
    }
    let (limit, key) = if p.table.is_bits() {
        (profile.max_bits, "max_bits")
    } else {
        (profile.max_registers, "max_registers")
    };
    if p.width() > limit {
        return Err(("type", format!("needs {} registers but {key} is {limit}", p.width())));
    }
    if p.end() > u16::MAX as u32 {
        return Err(("address", "the point runs past address 65535".into()));
    }
    Ok(p)
}

fn optional<T: std::str::FromStr>(
    s: &str,
    column: &'static str,
) -> Result<Option<T>, (&'static str, String)> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| (column, format!("`{s}` is not a number")))
}

/// The table and address of a row: see the module doc.
pub fn address(table: &str, address: &str) -> Result<(Table, u16), String> {
    let given = if table.is_empty() {
        None
    } else {
        Some(
            Table::from_name(&table.to_lowercase())
                .ok_or_else(|| format!("table `{table}` is not coil, discrete, input or holding"))?,
        )
    };
    if let Some(hex) = address.strip_prefix("0x").or_else(|| address.strip_prefix("0X")) {
        let a = u16::from_str_radix(hex, 16)
            .map_err(|_| format!("`{address}` is not a hex address 0x0000 to 0xFFFF"))?;
        return given
            .map(|t| (t, a))
            .ok_or_else(|| format!("`{address}` needs a table (or a Modicon reference such as 40101)"));
    }
    if !address.bytes().all(|b| b.is_ascii_digit()) || address.is_empty() {
        return Err(format!("`{address}` is not an address (100, 0x0064 or 40101)"));
    }
    if let Some(t) = given {
        return address.parse().map(|a| (t, a)).map_err(|_| format!("`{address}` is above 65535"));
    }
    let table = match (address.len(), address.as_bytes()[0]) {
        (5 | 6, b'0') => Table::Coil,
        (5 | 6, b'1') => Table::Discrete,
        (5 | 6, b'3') => Table::Input,
        (5 | 6, b'4') => Table::Holding,
        _ => {
            return Err(format!(
                "`{address}` is not a Modicon reference (0xxxx coil, 1xxxx discrete, 3xxxx input, 4xxxx holding) \
                 and the table is empty"
            ))
        }
    };
    let n: u32 = address[1..].parse().map_err(|_| format!("`{address}` is not a number"))?;
    if n == 0 || n > 65536 {
        return Err(format!("`{address}`: a Modicon reference counts from 1 (to 65536)"));
    }
    Ok((table, (n - 1) as u16))
}

/// A profile type, or a name register sheets often use for it (`float`, `uint16`, `word`, …).
pub fn data_type(s: &str) -> Result<DataType, String> {
    let lower = s.to_lowercase();
    let alias = match lower.as_str() {
        "bit" | "boolean" => "bool",
        "uint16" | "word" | "ushort" | "uint" => "u16",
        "int16" | "short" | "int" => "i16",
        "uint32" | "dword" | "udint" => "u32",
        "int32" | "dint" | "long" => "i32",
        "uint64" => "u64",
        "int64" => "i64",
        "float" | "float32" | "real" => "f32",
        "float64" | "double" | "lreal" => "f64",
        "bcd" => "bcd16",
        "ascii" | "text" => "string",
        "bits" => "bitfield",
        other => other,
    };
    DataType::from_name(alias).ok_or_else(|| {
        let known: Vec<&str> = crate::profile::DATA_TYPES.iter().map(|t| t.name()).collect();
        format!("unknown type `{s}` (types: {})", known.join(", "))
    })
}

/// `0=over_pressure; 5=burner_fault` (also `|` or newlines between pairs).
fn pairs<K: std::str::FromStr + Ord>(s: &str) -> Result<BTreeMap<K, String>, String> {
    let mut out = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for part in s.split([';', '|', '\n']).map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| format!("`{part}` is not NUMBER=name"))?;
        let key = k.trim().parse::<K>().map_err(|_| format!("`{}` in `{part}` is not a number", k.trim()))?;
        let name = v.trim().to_string();
        if !telemetry::codec::is_point_name(&name) {
            return Err(format!("`{name}` in `{part}` is not a name (letters, digits and `_`)"));
        }
        if !seen.insert(k.trim().to_string()) {
            return Err(format!("`{}` given twice", k.trim()));
        }
        out.insert(key, name);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "csv_import_tests.rs"]
mod tests;
