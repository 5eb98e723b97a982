//! Register decoding and encoding: raw Modbus words and bits to point values and back.
//! Pure functions; the simulator uses the encoders so it speaks exactly what the poller decodes.
//!
//! Every multi-register type honours the point's byte order the same way: the words are put
//! in big-endian (`ABCD`) order first (`CDAB`, `DCBA`: words reversed; `BADC`, `DCBA`: bytes
//! swapped in each word), then read as one number. BCD digits and bit fields are read from
//! that number, so a `bcd32` in `CDAB` is the eight digits of the word-swapped value. Text has
//! no words to swap: a `string` is read register by register in address order, high byte
//! first (`ABCD`) or low byte first (`BADC`).

use telemetry::{Reading, Value};

use crate::planner::ReadRequest;
use crate::profile::{ByteOrder, DataType, Point, Profile};

/// A point's registers that do not hold a value of its type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{raw:#x} is not packed BCD (a digit above 9)")]
    NotBcd { raw: u64 },
    #[error("text is not UTF-8 (byte {at})")]
    NotText { at: usize },
    #[error("{got} registers where the point has {want}")]
    Length { want: u16, got: usize },
}

/// Puts the words of a multi-register value in big-endian (`ABCD`) order (the decoders use
/// [`ordered_u64`], which reads them in that order without the copy).
#[cfg(test)]
fn normalize(words: &[u16], order: ByteOrder) -> Vec<u16> {
    let mut w: Vec<u16> = words.to_vec();
    if order.swaps_words() {
        w.reverse();
    }
    if order.swaps_bytes() {
        for x in &mut w {
            *x = x.swap_bytes();
        }
    }
    w
}

/// The inverse of [`normalize`]: both steps are involutions and commute.
fn denormalize(mut words: Vec<u16>, order: ByteOrder) -> Vec<u16> {
    if order.swaps_bytes() {
        for w in &mut words {
            *w = w.swap_bytes();
        }
    }
    if order.swaps_words() {
        words.reverse();
    }
    words
}

#[cfg(test)]
fn to_u64(words: &[u16]) -> u64 {
    words.iter().fold(0u64, |acc, w| (acc << 16) | *w as u64)
}

/// `to_u64(&normalize(words, order))`, without the copy.
fn ordered_u64(words: &[u16], order: ByteOrder) -> u64 {
    let swap = order.swaps_bytes();
    let push = |acc: u64, w: &u16| (acc << 16) | if swap { w.swap_bytes() } else { *w } as u64;
    if order.swaps_words() {
        words.iter().rev().fold(0, push)
    } else {
        words.iter().fold(0, push)
    }
}

/// `bits` as `n` big-endian words.
fn to_words(bits: u64, n: usize) -> Vec<u16> {
    (0..n).map(|i| (bits >> (16 * (n - 1 - i))) as u16).collect()
}

/// The raw value a point's registers hold, before scale and offset.
enum Raw {
    Int(i64),
    Unsigned(u64),
    Float(f64),
    Text(String),
}

/// Packed BCD to its number: each nibble one decimal digit, the most significant first.
pub fn from_bcd(raw: u64, digits: u32) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for i in (0..digits).rev() {
        let digit = (raw >> (4 * i)) & 0xF;
        if digit > 9 {
            return Err(DecodeError::NotBcd { raw });
        }
        value = value * 10 + digit;
    }
    Ok(value)
}

/// A number to packed BCD of `digits` digits (the number must fit).
pub fn to_bcd(mut value: u64, digits: u32) -> u64 {
    let mut raw = 0u64;
    for i in 0..digits {
        raw |= (value % 10) << (4 * i);
        value /= 10;
    }
    raw
}

/// The text of a string point's registers: cut at the first NUL, trailing spaces trimmed.
fn text(words: &[u16], order: ByteOrder) -> Result<String, DecodeError> {
    let mut bytes: Vec<u8> = Vec::with_capacity(words.len() * 2);
    for w in words {
        let [hi, lo] = w.to_be_bytes();
        if order.swaps_bytes() {
            bytes.extend([lo, hi]);
        } else {
            bytes.extend([hi, lo]);
        }
    }
    if let Some(nul) = bytes.iter().position(|&b| b == 0) {
        bytes.truncate(nul);
    }
    while bytes.last() == Some(&b' ') {
        bytes.pop();
    }
    String::from_utf8(bytes).map_err(|e| DecodeError::NotText { at: e.utf8_error().valid_up_to() })
}

fn raw(point: &Point, words: &[u16]) -> Result<Raw, DecodeError> {
    if words.len() != point.width() as usize {
        return Err(DecodeError::Length { want: point.width(), got: words.len() });
    }
    if point.data_type == DataType::String {
        return text(words, point.order).map(Raw::Text);
    }
    let bits = ordered_u64(words, point.order);
    Ok(match point.data_type {
        DataType::Bool => Raw::Unsigned(bits & 1),
        DataType::U16 | DataType::U32 | DataType::U64 => Raw::Unsigned(bits),
        DataType::I16 => Raw::Int(bits as u16 as i16 as i64),
        DataType::I32 => Raw::Int(bits as u32 as i32 as i64),
        DataType::I64 => Raw::Int(bits as i64),
        // Through the shortest decimal form, so 0.32f32 is published as 0.32, not 0.3199999928474426.
        DataType::F32 => Raw::Float(f32_to_f64(f32::from_bits(bits as u32))),
        DataType::F64 => Raw::Float(f64::from_bits(bits)),
        DataType::Bcd16 => Raw::Unsigned(from_bcd(bits, 4)?),
        DataType::Bcd32 => Raw::Unsigned(from_bcd(bits, 8)?),
        DataType::Bitfield => Raw::Unsigned(point.field.map_or(bits, |f| f.extract(bits))),
        DataType::String => unreachable!("handled above"),
    })
}

fn f32_to_f64(f: f32) -> f64 {
    if !f.is_finite() {
        return f as f64;
    }
    // The shortest decimal form, written on the stack (an f32 needs at most 48 characters).
    let mut buf = StackText { bytes: [0; 64], len: 0 };
    match std::fmt::Write::write_fmt(&mut buf, format_args!("{f}")) {
        Ok(()) => buf.as_str().parse().unwrap_or(f as f64),
        Err(_) => f.to_string().parse().unwrap_or(f as f64),
    }
}

/// A short text written without allocating.
struct StackText {
    bytes: [u8; 64],
    len: usize,
}

impl StackText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Decodes one register point (`words` are exactly its registers) into its value and, for
/// integer points with named bits, one boolean per named bit.
pub fn decode(point: &Point, words: &[u16]) -> Result<Vec<(String, Value)>, DecodeError> {
    let mut out = Vec::with_capacity(1 + point.bits.len());
    decode_each(point, words, |_, name, value| out.push((name.clone(), value)))?;
    Ok(out)
}

/// [`decode`], handing each value (`k` 0: the point's, then its named bits' in order) to `put`.
fn decode_each(
    point: &Point,
    words: &[u16],
    mut put: impl FnMut(usize, &String, Value),
) -> Result<(), DecodeError> {
    let raw = raw(point, words)?;
    let exact = point.scale == 1.0 && point.offset == 0.0;
    let value = match raw {
        Raw::Text(s) => Value::Text(s),
        Raw::Unsigned(u) if exact && u <= i64::MAX as u64 => Value::Int(u as i64),
        Raw::Int(i) if exact => Value::Int(i),
        Raw::Unsigned(u) => Value::Float(round(u as f64 * point.scale + point.offset)),
        Raw::Int(i) => Value::Float(round(i as f64 * point.scale + point.offset)),
        Raw::Float(f) if exact => Value::Float(f),
        Raw::Float(f) => Value::Float(round(f * point.scale + point.offset)),
    };
    put(0, &point.name, value);
    if !point.bits.is_empty() {
        let u = match raw_bits(point, words) {
            Some(u) => u,
            None => return Ok(()),
        };
        for (k, (bit, name)) in point.bits.iter().enumerate() {
            put(k + 1, name, Value::Bool(u >> bit & 1 == 1));
        }
    }
    Ok(())
}

/// The register value named bits are read from (integer types only).
fn raw_bits(point: &Point, words: &[u16]) -> Option<u64> {
    point.data_type.is_integer().then(|| ordered_u64(words, point.order))
}

/// [`decode`], with registers that hold no value of the point's type giving nothing.
pub fn decode_registers(point: &Point, words: &[u16]) -> Vec<(String, Value)> {
    decode(point, words).unwrap_or_default()
}

/// Scaling by 0.1 gives 23.400000000000002; twelve significant digits is more than any field
/// instrument resolves and keeps the published JSON readable.
fn round(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let digits = 12 - x.abs().log10().ceil() as i32;
    if !(0..=300).contains(&digits) {
        return x;
    }
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Encodes an engineering value (after scale and offset) into the point's registers. A
/// string point gets the number's decimal text.
pub fn encode_registers(point: &Point, value: f64) -> Vec<u16> {
    if point.data_type == DataType::String {
        return encode_text(point, &value.to_string());
    }
    let raw = (value - point.offset) / point.scale;
    let clamp_u = |max: f64| raw.round().clamp(0.0, max) as u64;
    let bits: u64 = match point.data_type {
        DataType::Bool => (raw != 0.0) as u64,
        DataType::U16 => clamp_u(u16::MAX as f64),
        DataType::I16 => raw.round().clamp(i16::MIN as f64, i16::MAX as f64) as i16 as u16 as u64,
        DataType::U32 => clamp_u(u32::MAX as f64),
        DataType::I32 => raw.round().clamp(i32::MIN as f64, i32::MAX as f64) as i32 as u32 as u64,
        DataType::U64 => raw.round().max(0.0) as u64,
        DataType::I64 => raw.round() as i64 as u64,
        DataType::F32 => (raw as f32).to_bits() as u64,
        DataType::F64 => raw.to_bits(),
        DataType::Bcd16 => to_bcd(clamp_u(9_999.0), 4),
        DataType::Bcd32 => to_bcd(clamp_u(99_999_999.0), 8),
        DataType::Bitfield => match point.field {
            Some(f) => {
                let max = if f.bit_count() >= 64 { u64::MAX } else { (1u64 << f.bit_count()) - 1 };
                clamp_u(max as f64).min(max) << f.low
            }
            None => clamp_u(u32::MAX as f64),
        },
        DataType::String => unreachable!("handled above"),
    };
    denormalize(to_words(bits, point.width() as usize), point.order)
}

/// Encodes text into a string point's registers: UTF-8, cut to fit (on a character boundary),
/// padded with NULs.
pub fn encode_text(point: &Point, text: &str) -> Vec<u16> {
    let room = point.width() as usize * 2;
    let mut end = text.len().min(room);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut bytes = text.as_bytes()[..end].to_vec();
    bytes.resize(room, 0);
    bytes
        .chunks(2)
        .map(|b| {
            if point.order.swaps_bytes() {
                u16::from_le_bytes([b[0], b[1]])
            } else {
                u16::from_be_bytes([b[0], b[1]])
            }
        })
        .collect()
}

/// Encodes a published value back into the point's registers (the inverse of [`decode`]).
pub fn encode_value(point: &Point, value: &Value) -> Vec<u16> {
    match value {
        Value::Text(s) => encode_text(point, s),
        other => encode_registers(point, other.as_f64().unwrap_or(0.0)),
    }
}

/// Where decoded values go: a [`Reading`] (by name) or a poll's [`crate::values::Values`] (by
/// point, without a key allocated per value).
pub trait Sink {
    /// Value `k` of point `point` (an index into the profile's points; `k` 0 is the point's own
    /// value, then its named bits in order), named `name`.
    fn value(&mut self, point: usize, k: usize, name: &str, value: Value);
    /// Point `name` could not be read, for this reason.
    fn error(&mut self, name: &str, why: String);
    /// [`Sink::error`], unless the point already has a reason.
    fn error_unless_known(&mut self, name: &str, why: impl FnOnce() -> String);
}

impl Sink for Reading {
    fn value(&mut self, _point: usize, _k: usize, name: &str, value: Value) {
        self.values.insert(name.to_string(), value);
    }

    fn error(&mut self, name: &str, why: String) {
        self.errors.insert(name.to_string(), why);
    }

    fn error_unless_known(&mut self, name: &str, why: impl FnOnce() -> String) {
        self.errors.entry(name.to_string()).or_insert_with(why);
    }
}

/// Decodes the answer to one planned request into `out`: `words` holds one entry per
/// register, or per bit (0 or 1) for coils and discrete inputs, starting at `request.start`.
/// A point whose registers hold no value of its type goes into the errors
/// (`holding 130: 0x12a4 is not packed BCD (a digit above 9)`).
pub fn decode_into(profile: &Profile, request: &ReadRequest, words: &[u16], out: &mut impl Sink) {
    for &i in &request.points {
        let p = &profile.points[i];
        let from = (p.address - request.start) as usize;
        let Some(slice) = words.get(from..from + p.width() as usize) else { continue };
        if p.table.is_bits() {
            out.value(i, 0, &p.name, Value::Bool(slice[0] != 0));
            continue;
        }
        if let Err(e) = decode_each(p, slice, |k, name, value| out.value(i, k, name, value)) {
            out.error(&p.name, format!("{} {}: {e}", p.table.name(), p.address));
        }
    }
}

/// The values of one answered request (see [`decode_into`]); points that do not decode are
/// left out.
pub fn decode_block(profile: &Profile, request: &ReadRequest, words: &[u16]) -> Vec<(String, Value)> {
    let mut reading = Reading::new("-", "-", "-", 0, 0, 0);
    decode_into(profile, request, words, &mut reading);
    reading.values.into_iter().collect()
}

#[cfg(test)]
#[path = "register_tests.rs"]
mod tests;
