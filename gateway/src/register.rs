//! Register decoding and encoding: raw Modbus words and bits to point values and back.
//! Pure functions; the simulator uses `encode` so it speaks exactly what the poller decodes.

use telemetry::Value;

use crate::planner::ReadRequest;
use crate::profile::{ByteOrder, DataType, Point, Profile};

/// Puts the words of a multi-register value in big-endian (`ABCD`) order.
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

fn to_u64(words: &[u16]) -> u64 {
    words.iter().fold(0u64, |acc, w| (acc << 16) | *w as u64)
}

/// The raw integer or float a point's registers hold, before scale and offset.
enum Raw {
    Int(i64),
    Unsigned(u64),
    Float(f64),
}

fn raw(point: &Point, words: &[u16]) -> Raw {
    let w = normalize(words, point.order);
    let bits = to_u64(&w);
    match point.data_type {
        DataType::Bool => Raw::Unsigned(bits & 1),
        DataType::U16 | DataType::U32 => Raw::Unsigned(bits),
        DataType::U64 => Raw::Unsigned(bits),
        DataType::I16 => Raw::Int(bits as u16 as i16 as i64),
        DataType::I32 => Raw::Int(bits as u32 as i32 as i64),
        DataType::I64 => Raw::Int(bits as i64),
        // Through the shortest decimal form, so 0.32f32 is published as 0.32, not 0.3199999928474426.
        DataType::F32 => Raw::Float(f32_to_f64(f32::from_bits(bits as u32))),
        DataType::F64 => Raw::Float(f64::from_bits(bits)),
    }
}

fn f32_to_f64(f: f32) -> f64 {
    if f.is_finite() {
        f.to_string().parse().unwrap_or(f as f64)
    } else {
        f as f64
    }
}

/// Decodes one register point (`words` are exactly its registers) into its value and, for
/// integer points with named bits, one boolean per named bit.
pub fn decode_registers(point: &Point, words: &[u16]) -> Vec<(String, Value)> {
    let raw = raw(point, words);
    let mut out = Vec::with_capacity(1 + point.bits.len());
    let as_bits = match raw {
        Raw::Unsigned(u) => Some(u),
        Raw::Int(i) => Some(i as u64),
        Raw::Float(_) => None,
    };
    if let Some(u) = as_bits {
        for (bit, name) in &point.bits {
            out.push((name.clone(), Value::Bool(u >> bit & 1 == 1)));
        }
    }
    let exact = point.scale == 1.0 && point.offset == 0.0;
    let value = match raw {
        Raw::Unsigned(u) if exact && u <= i64::MAX as u64 => Value::Int(u as i64),
        Raw::Int(i) if exact => Value::Int(i),
        Raw::Unsigned(u) => Value::Float(round(u as f64 * point.scale + point.offset)),
        Raw::Int(i) => Value::Float(round(i as f64 * point.scale + point.offset)),
        Raw::Float(f) if exact => Value::Float(f),
        Raw::Float(f) => Value::Float(round(f * point.scale + point.offset)),
    };
    out.insert(0, (point.name.clone(), value));
    out
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

/// Encodes an engineering value (after scale and offset) into the point's registers.
pub fn encode_registers(point: &Point, value: f64) -> Vec<u16> {
    let raw = (value - point.offset) / point.scale;
    let bits: u64 = match point.data_type {
        DataType::Bool => (raw != 0.0) as u64,
        DataType::U16 => raw.round().clamp(0.0, u16::MAX as f64) as u64,
        DataType::I16 => raw.round().clamp(i16::MIN as f64, i16::MAX as f64) as i16 as u16 as u64,
        DataType::U32 => raw.round().clamp(0.0, u32::MAX as f64) as u64,
        DataType::I32 => raw.round().clamp(i32::MIN as f64, i32::MAX as f64) as i32 as u32 as u64,
        DataType::U64 => raw.round().max(0.0) as u64,
        DataType::I64 => raw.round() as i64 as u64,
        DataType::F32 => (raw as f32).to_bits() as u64,
        DataType::F64 => raw.to_bits(),
    };
    let n = point.data_type.width() as usize;
    let mut words: Vec<u16> = (0..n).map(|i| (bits >> (16 * (n - 1 - i))) as u16).collect();
    // The inverse of `normalize`: both steps are involutions and commute.
    if point.order.swaps_bytes() {
        for w in &mut words {
            *w = w.swap_bytes();
        }
    }
    if point.order.swaps_words() {
        words.reverse();
    }
    words
}

/// Decodes the answer to one planned request: `words` holds one entry per register, or per
/// bit (0 or 1) for coils and discrete inputs, starting at `request.start`.
pub fn decode_block(profile: &Profile, request: &ReadRequest, words: &[u16]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for &i in &request.points {
        let p = &profile.points[i];
        let from = (p.address - request.start) as usize;
        let Some(slice) = words.get(from..from + p.width() as usize) else { continue };
        if p.table.is_bits() {
            out.push((p.name.clone(), Value::Bool(slice[0] != 0)));
        } else {
            out.extend(decode_registers(p, slice));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Table;
    use std::collections::BTreeMap;

    fn point(data_type: DataType, order: ByteOrder, scale: f64) -> Point {
        Point {
            name: "p".into(),
            table: Table::Holding,
            address: 0,
            data_type,
            order,
            scale,
            offset: 0.0,
            unit: None,
            bits: BTreeMap::new(),
            codes: BTreeMap::new(),
        }
    }

    fn value(p: &Point, words: &[u16]) -> Value {
        decode_registers(p, words)[0].1.clone()
    }

    #[test]
    fn f32_in_all_four_orders() {
        // 1.5f32 = 0x3FC0_0000: A=3F B=C0 C=00 D=00
        let cases = [
            (ByteOrder::ABCD, [0x3FC0, 0x0000]),
            (ByteOrder::CDAB, [0x0000, 0x3FC0]),
            (ByteOrder::BADC, [0xC03F, 0x0000]),
            (ByteOrder::DCBA, [0x0000, 0xC03F]),
        ];
        for (order, words) in cases {
            let p = point(DataType::F32, order, 1.0);
            assert_eq!(value(&p, &words), Value::Float(1.5), "{order:?}");
            assert_eq!(encode_registers(&p, 1.5), words.to_vec(), "{order:?}");
        }
    }

    #[test]
    fn f32_values_keep_their_decimal_form() {
        let p = point(DataType::F32, ByteOrder::DCBA, 1.0);
        assert_eq!(value(&p, &encode_registers(&p, 0.32)), Value::Float(0.32));
    }

    #[test]
    fn integers_signed_and_unsigned() {
        assert_eq!(value(&point(DataType::U16, ByteOrder::ABCD, 1.0), &[0xFFFF]), Value::Int(65535));
        assert_eq!(value(&point(DataType::I16, ByteOrder::ABCD, 1.0), &[0xFFFF]), Value::Int(-1));
        assert_eq!(value(&point(DataType::I16, ByteOrder::BADC, 1.0), &[0x0180]), Value::Int(-32767));
        assert_eq!(value(&point(DataType::U32, ByteOrder::ABCD, 1.0), &[0x0001, 0x0002]), Value::Int(65538));
        assert_eq!(value(&point(DataType::U32, ByteOrder::CDAB, 1.0), &[0x0002, 0x0001]), Value::Int(65538));
        assert_eq!(value(&point(DataType::I32, ByteOrder::ABCD, 1.0), &[0xFFFF, 0xFFFE]), Value::Int(-2));
        assert_eq!(value(&point(DataType::I64, ByteOrder::ABCD, 1.0), &[0xFFFF; 4]), Value::Int(-1));
        assert_eq!(
            value(&point(DataType::U64, ByteOrder::DCBA, 1.0), &[0x0100, 0, 0, 0]),
            Value::Int(1),
            "DCBA over four registers is fully little-endian"
        );
        assert_eq!(
            value(&point(DataType::F64, ByteOrder::ABCD, 1.0), &[0x4009, 0x21FB, 0x5444, 0x2D18]),
            Value::Float(std::f64::consts::PI)
        );
    }

    #[test]
    fn scale_and_offset_give_floats() {
        let mut p = point(DataType::I16, ByteOrder::ABCD, 0.1);
        assert_eq!(value(&p, &[234]), Value::Float(23.4));
        p.offset = -40.0;
        assert_eq!(value(&p, &[634]), Value::Float(23.4));
        assert_eq!(encode_registers(&p, 23.4), vec![634]);
    }

    #[test]
    fn named_bits_become_booleans() {
        let mut p = point(DataType::U16, ByteOrder::ABCD, 1.0);
        p.bits = BTreeMap::from([(0, "over_pressure".to_string()), (5, "burner_fault".to_string())]);
        let out = decode_registers(&p, &[0b10_0001]);
        assert_eq!(out[0], ("p".to_string(), Value::Int(33)));
        assert!(out.contains(&("over_pressure".to_string(), Value::Bool(true))));
        assert!(out.contains(&("burner_fault".to_string(), Value::Bool(true))));
        let out = decode_registers(&p, &[0b10_0000]);
        assert!(out.contains(&("over_pressure".to_string(), Value::Bool(false))));
    }

    #[test]
    fn encode_then_decode_is_identity_for_every_type_and_order() {
        let types = [
            DataType::U16,
            DataType::I16,
            DataType::U32,
            DataType::I32,
            DataType::U64,
            DataType::I64,
            DataType::F32,
            DataType::F64,
        ];
        for t in types {
            for order in [ByteOrder::ABCD, ByteOrder::CDAB, ByteOrder::BADC, ByteOrder::DCBA] {
                let p = point(t, order, 1.0);
                let v =
                    if matches!(t, DataType::I16 | DataType::I32 | DataType::I64) { -1234.0 } else { 1234.0 };
                let words = encode_registers(&p, v);
                assert_eq!(words.len(), t.width() as usize);
                assert_eq!(value(&p, &words).as_f64(), Some(v), "{t:?} {order:?}");
            }
        }
    }
}
