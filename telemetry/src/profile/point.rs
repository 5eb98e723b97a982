//! One point of a register map: where it lives (table, address), how its registers are read
//! (type, byte order, length, bit range), and how the raw value becomes an engineering one
//! (scale, offset, named bits, named codes). Re-exported from [`crate::profile`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
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

    pub fn from_name(name: &str) -> Option<Table> {
        match name {
            "coil" => Some(Table::Coil),
            "discrete" | "discrete_input" => Some(Table::Discrete),
            "input" | "input_register" => Some(Table::Input),
            "holding" | "holding_register" => Some(Table::Holding),
            _ => None,
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
    /// Packed BCD in one register: four decimal digits, 0 to 9999.
    Bcd16,
    /// Packed BCD in two registers: eight decimal digits, 0 to 99999999.
    Bcd32,
    /// Text over `length` registers, two bytes each; trailing NULs and spaces trimmed.
    String,
    /// Bits `bits = "low..high"` of a u16 (`length = 1`, the default) or u32 (`length = 2`).
    Bitfield,
}

/// Every type, in the order the README lists them.
pub const DATA_TYPES: &[DataType] = &[
    DataType::Bool,
    DataType::U16,
    DataType::I16,
    DataType::U32,
    DataType::I32,
    DataType::U64,
    DataType::I64,
    DataType::F32,
    DataType::F64,
    DataType::Bcd16,
    DataType::Bcd32,
    DataType::String,
    DataType::Bitfield,
];

impl DataType {
    /// Registers (or bits, for `bool` in a bit table) the type occupies. `string` and
    /// `bitfield` take their length from the point ([`Point::width`]); here they give 1.
    pub fn width(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 | DataType::Bcd16 => 1,
            DataType::String | DataType::Bitfield => 1,
            DataType::U32 | DataType::I32 | DataType::F32 | DataType::Bcd32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }

    /// Whether the value is a whole number (published as an integer unless scaled).
    pub fn is_integer(self) -> bool {
        !matches!(self, DataType::F32 | DataType::F64 | DataType::Bool | DataType::String)
    }

    /// Whether the point's length is its own (`length`), not the type's.
    pub fn has_length(self) -> bool {
        matches!(self, DataType::String | DataType::Bitfield)
    }

    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
            DataType::Bcd16 => "bcd16",
            DataType::Bcd32 => "bcd32",
            DataType::String => "string",
            DataType::Bitfield => "bitfield",
        }
    }

    pub fn from_name(name: &str) -> Option<DataType> {
        DATA_TYPES.iter().copied().find(|t| t.name() == name)
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

pub const BYTE_ORDERS: [ByteOrder; 4] = [ByteOrder::ABCD, ByteOrder::CDAB, ByteOrder::BADC, ByteOrder::DCBA];

impl ByteOrder {
    pub fn swaps_words(self) -> bool {
        matches!(self, ByteOrder::CDAB | ByteOrder::DCBA)
    }
    pub fn swaps_bytes(self) -> bool {
        matches!(self, ByteOrder::BADC | ByteOrder::DCBA)
    }
    pub fn name(self) -> &'static str {
        match self {
            ByteOrder::ABCD => "ABCD",
            ByteOrder::CDAB => "CDAB",
            ByteOrder::BADC => "BADC",
            ByteOrder::DCBA => "DCBA",
        }
    }
    pub fn from_name(name: &str) -> Option<ByteOrder> {
        BYTE_ORDERS.iter().copied().find(|o| o.name().eq_ignore_ascii_case(name))
    }
}

/// Bits `low` to `high` (both included; bit 0 is the least significant) of a register value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitRange {
    pub low: u8,
    pub high: u8,
}

impl BitRange {
    /// `"4..7"` (bits 4, 5, 6 and 7) or `"3"` (bit 3 alone).
    pub fn parse(s: &str) -> Result<BitRange, String> {
        let bit = |b: &str| {
            b.trim().parse::<u8>().map_err(|_| format!("bit range `{s}`: `{b}` is not a bit number"))
        };
        let (low, high) = match s.split_once("..") {
            Some((l, h)) => (bit(l)?, bit(h.trim_start_matches('='))?),
            None => (bit(s)?, bit(s)?),
        };
        if low > high {
            return Err(format!("bit range `{s}`: the low bit comes first (`{high}..{low}`)"));
        }
        Ok(BitRange { low, high })
    }

    /// How many bits the field has.
    pub fn bit_count(self) -> u32 {
        (self.high - self.low) as u32 + 1
    }

    /// The field's value out of a register value.
    pub fn extract(self, raw: u64) -> u64 {
        let mask = if self.bit_count() >= 64 { u64::MAX } else { (1u64 << self.bit_count()) - 1 };
        (raw >> self.low) & mask
    }
}

impl fmt::Display for BitRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.low, self.high)
    }
}

/// What `bits = …` says: named bits of an integer (`{ 0 = "over_pressure" }`), or the bit
/// range of a `bitfield` (`"4..7"`).
#[derive(Clone, Debug, PartialEq)]
enum BitsKey {
    Named(BTreeMap<u8, String>),
    Range(BitRange),
}

impl<'de> Deserialize<'de> for BitsKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BitsKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of named bits ({ 0 = \"name\" }) or a bit range (\"4..7\")")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<BitsKey, E> {
                BitRange::parse(s).map(BitsKey::Range).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BitsKey, A::Error> {
                let mut named = BTreeMap::new();
                while let Some((bit, name)) = map.next_entry::<u8, String>()? {
                    named.insert(bit, name);
                }
                Ok(BitsKey::Named(named))
            }
        }
        d.deserialize_any(V)
    }
}

fn one() -> f64 {
    1.0
}

/// A point as written in TOML; [`Point`] is what it means.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PointToml {
    name: String,
    table: Table,
    address: u16,
    #[serde(rename = "type")]
    data_type: DataType,
    #[serde(default, alias = "word_order")]
    order: ByteOrder,
    #[serde(default)]
    length: Option<u16>,
    #[serde(default = "one")]
    scale: f64,
    #[serde(default)]
    offset: f64,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    decimals: Option<u8>,
    #[serde(default)]
    bits: Option<BitsKey>,
    #[serde(default)]
    codes: BTreeMap<u32, String>,
    #[serde(default, with = "humantime_serde")]
    interval: Option<Duration>,
    #[serde(default)]
    description: Option<String>,
}

impl From<PointToml> for Point {
    fn from(t: PointToml) -> Point {
        let (bits, field) = match t.bits {
            None => (BTreeMap::new(), None),
            Some(BitsKey::Named(named)) => (named, None),
            Some(BitsKey::Range(range)) => (BTreeMap::new(), Some(range)),
        };
        Point {
            name: t.name,
            table: t.table,
            address: t.address,
            data_type: t.data_type,
            order: t.order,
            length: t.length,
            scale: t.scale,
            offset: t.offset,
            unit: t.unit,
            decimals: t.decimals,
            bits,
            field,
            codes: t.codes,
            interval: t.interval,
            description: t.description,
        }
    }
}

/// One named value in a device's register map.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "PointToml")]
pub struct Point {
    pub name: String,
    pub table: Table,
    pub address: u16,
    pub data_type: DataType,
    pub order: ByteOrder,
    /// Registers of a `string` (required) or a `bitfield` (1 or 2; default 1).
    pub length: Option<u16>,
    pub scale: f64,
    pub offset: f64,
    pub unit: Option<String>,
    /// Decimals alert summaries show its values to (rules; the published value is not
    /// rounded). Default: by unit (MPa 2, °C 1, …).
    pub decimals: Option<u8>,
    /// Named bits of an integer point (`bits = { 0 = "leak" }`); each is published as a
    /// boolean value of its own.
    pub bits: BTreeMap<u8, String>,
    /// The bits a `bitfield` point publishes (`bits = "4..7"`).
    pub field: Option<BitRange>,
    /// Named values of a fault-code point, for rules and messages.
    pub codes: BTreeMap<u32, String>,
    /// Polled at this interval instead of the device's (a point group; see `[[device.group]]`).
    pub interval: Option<Duration>,
    pub description: Option<String>,
}

impl Point {
    /// A plain point: ABCD, no scale, nothing named.
    pub fn new(name: &str, table: Table, address: u16, data_type: DataType) -> Point {
        Point {
            name: name.into(),
            table,
            address,
            data_type,
            order: ByteOrder::ABCD,
            length: None,
            scale: 1.0,
            offset: 0.0,
            unit: None,
            decimals: None,
            bits: BTreeMap::new(),
            field: None,
            codes: BTreeMap::new(),
            interval: None,
            description: None,
        }
    }

    /// Registers or bits this point spans.
    pub fn width(&self) -> u16 {
        if self.table.is_bits() {
            1
        } else if self.data_type.has_length() {
            self.length.unwrap_or(1).max(1)
        } else {
            self.data_type.width()
        }
    }

    /// The last address this point occupies.
    pub fn end(&self) -> u32 {
        self.address as u32 + self.width() as u32 - 1
    }

    /// Everything wrong with the point's keys together, each prefixed with `at`.
    pub fn problems(&self, at: &str) -> Vec<String> {
        self.problems_by_key().into_iter().map(|(_, why)| format!("{at}: {why}")).collect()
    }

    /// Everything wrong with the point's keys together, each with the key it is about.
    pub fn problems_by_key(&self) -> Vec<(&'static str, String)> {
        let mut problems: Vec<(&'static str, String)> = Vec::new();
        let mut push = |key, why: String| problems.push((key, why));
        let t = self.data_type;
        if let Some(d) = self.decimals.filter(|d| *d > 9) {
            push("decimals", format!("decimals = {d} must be 0 to 9"));
        }
        if self.table.is_bits() && t != DataType::Bool {
            push("type", format!("a {} holds bits, so its type must be bool", self.table.name()));
        }
        if !self.table.is_bits() && t == DataType::Bool {
            push("type", "bool is for coils and discrete inputs; use bits on a u16".into());
        }
        match (t, self.length) {
            (DataType::String, None) => {
                push("length", "a string needs length (registers, 2 bytes each)".into())
            }
            (DataType::String, Some(n)) if !(1..=125).contains(&n) => {
                push("length", format!("length = {n} must be 1 to 125 registers"))
            }
            (DataType::Bitfield, Some(n)) if !(1..=2).contains(&n) => {
                push("length", format!("a bitfield's length = {n} must be 1 (u16) or 2 (u32)"))
            }
            (_, Some(_)) if !t.has_length() => {
                push("length", format!("length is for string and bitfield, not {}", t.name()))
            }
            _ => {}
        }
        match (t, self.field) {
            (DataType::Bitfield, None) => {
                push("bits", "a bitfield needs its bits, e.g. bits = \"4..7\"".into())
            }
            (DataType::Bitfield, Some(f)) if f.high as u16 >= 16 * self.width() => push(
                "bits",
                format!("bits {f} run past a {}-bit register (length = 2 for a u32)", 16 * self.width()),
            ),
            (_, Some(f)) if t != DataType::Bitfield => push(
                "bits",
                format!("bits = \"{f}\" is for type bitfield; name bits with bits = {{ 0 = \"name\" }}"),
            ),
            _ => {}
        }
        if t == DataType::String {
            if self.order.swaps_words() {
                push(
                    "order",
                    format!(
                        "order {} swaps words, which text does not have: use ABCD or BADC (bytes swapped in \
                         each register)",
                        self.order.name()
                    ),
                );
            }
            if self.scale != 1.0 || self.offset != 0.0 || !self.codes.is_empty() {
                push("scale", "a string takes no scale, offset or codes".into());
            }
        }
        if !self.scale.is_finite() || self.scale == 0.0 || !self.offset.is_finite() {
            push("scale", "scale must be finite and non-zero, offset finite".into());
        }
        if self.interval.is_some_and(|i| i.is_zero()) {
            push("interval", "interval must be above zero".into());
        }
        let bits = t.width() * 16;
        for bit in self.bits.keys() {
            if !t.is_integer() || t == DataType::Bitfield || *bit as u16 >= bits {
                push("bits", format!("bit {bit} is outside a {bits}-bit integer"));
            }
        }
        problems
    }
}
