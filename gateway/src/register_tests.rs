use super::*;
use crate::profile::{BitRange, Table, BYTE_ORDERS};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn point(data_type: DataType, order: ByteOrder, scale: f64) -> Point {
    let mut p = Point::new("p", Table::Holding, 0, data_type);
    p.order = order;
    p.scale = scale;
    p
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
            let v = if matches!(t, DataType::I16 | DataType::I32 | DataType::I64) { -1234.0 } else { 1234.0 };
            let words = encode_registers(&p, v);
            assert_eq!(words.len(), t.width() as usize);
            assert_eq!(value(&p, &words).as_f64(), Some(v), "{t:?} {order:?}");
        }
    }
}

#[test]
fn bcd_in_every_order() {
    let p = point(DataType::Bcd16, ByteOrder::ABCD, 1.0);
    assert_eq!(value(&p, &[0x1234]), Value::Int(1234));
    assert_eq!(value(&point(DataType::Bcd16, ByteOrder::BADC, 1.0), &[0x3412]), Value::Int(1234));
    assert_eq!(value(&point(DataType::Bcd16, ByteOrder::CDAB, 1.0), &[0x1234]), Value::Int(1234));
    let cases = [
        (ByteOrder::ABCD, [0x1234, 0x5678]),
        (ByteOrder::CDAB, [0x5678, 0x1234]),
        (ByteOrder::BADC, [0x3412, 0x7856]),
        (ByteOrder::DCBA, [0x7856, 0x3412]),
    ];
    for (order, words) in cases {
        let p = point(DataType::Bcd32, order, 1.0);
        assert_eq!(value(&p, &words), Value::Int(12_345_678), "{order:?}");
        assert_eq!(encode_registers(&p, 12_345_678.0), words.to_vec(), "{order:?}");
    }
    let mut energy = point(DataType::Bcd32, ByteOrder::ABCD, 0.01);
    energy.name = "energy_kwh".into();
    assert_eq!(value(&energy, &[0x0012, 0x3456]), Value::Float(1234.56));
    assert_eq!(
        decode(&p, &[0x12A4]),
        Err(DecodeError::NotBcd { raw: 0x12A4 }),
        "a nibble above 9 is no digit"
    );
    assert_eq!(DecodeError::NotBcd { raw: 0x12A4 }.to_string(), "0x12a4 is not packed BCD (a digit above 9)");
}

#[test]
fn strings_trim_and_swap_bytes() {
    let mut p = point(DataType::String, ByteOrder::ABCD, 1.0);
    p.length = Some(4);
    // "AB-7" then a NUL pad: 0x4142 0x2D37 0x0000 0x0000
    assert_eq!(value(&p, &[0x4142, 0x2D37, 0, 0]), Value::Text("AB-7".into()));
    assert_eq!(value(&p, &[0x4142, 0x2020, 0x2020, 0x2020]), Value::Text("AB".into()), "trailing spaces");
    assert_eq!(value(&p, &[0x4100, 0x4242, 0, 0]), Value::Text("A".into()), "cut at the first NUL");
    assert_eq!(encode_text(&p, "AB-7"), vec![0x4142, 0x2D37, 0, 0]);
    assert_eq!(encode_text(&p, "0123456789"), vec![0x3031, 0x3233, 0x3435, 0x3637], "cut to fit");
    p.order = ByteOrder::BADC;
    assert_eq!(value(&p, &[0x4241, 0x372D, 0, 0]), Value::Text("AB-7".into()));
    assert_eq!(encode_text(&p, "AB-7"), vec![0x4241, 0x372D, 0, 0]);
    assert_eq!(encode_text(&p, "水表"), encode_value(&p, &Value::Text("水表".into())));
    assert_eq!(value(&p, &encode_text(&p, "水表")), Value::Text("水表".into()), "UTF-8");
    assert_eq!(encode_text(&p, "水表x").len(), 4, "a character that does not fit is left out whole");
    assert_eq!(decode(&p, &[0xFFFF, 0, 0, 0]), Err(DecodeError::NotText { at: 0 }));
    assert_eq!(decode(&p, &[0, 0]), Err(DecodeError::Length { want: 4, got: 2 }));
}

#[test]
fn bit_fields_of_u16_and_u32() {
    let mut p = point(DataType::Bitfield, ByteOrder::ABCD, 1.0);
    p.field = Some(BitRange::parse("4..7").unwrap());
    assert_eq!(value(&p, &[0x0AB0]), Value::Int(0xB));
    assert_eq!(encode_registers(&p, 11.0), vec![0x00B0]);
    assert_eq!(encode_registers(&p, 99.0), vec![0x00F0], "clamped to the field");
    p.order = ByteOrder::BADC;
    assert_eq!(value(&p, &[0xB00A]), Value::Int(0xB));
    let mut wide = point(DataType::Bitfield, ByteOrder::CDAB, 1.0);
    wide.length = Some(2);
    wide.field = Some(BitRange::parse("12..19").unwrap());
    // ABCD value 0x000AB000: bits 12..19 = 0xAB; CDAB puts the low word first.
    assert_eq!(value(&wide, &[0xB000, 0x000A]), Value::Int(0xAB));
    assert_eq!(encode_registers(&wide, 0xAB as f64), vec![0xB000, 0x000A]);
    assert_eq!(BitRange::parse("3").unwrap(), BitRange { low: 3, high: 3 });
    assert_eq!(BitRange::parse("0..=15").unwrap(), BitRange { low: 0, high: 15 });
    assert!(BitRange::parse("7..4").unwrap_err().contains("low bit comes first"));
    assert!(BitRange::parse("a..4").is_err());
}

#[test]
fn a_bad_point_goes_to_errors_and_the_block_still_decodes() {
    let text = r#"
kind = "test"
[[point]]
name = "code"
table = "holding"
address = 10
type = "bcd16"
[[point]]
name = "level"
table = "holding"
address = 11
type = "u16"
"#;
    let profile = Profile::parse("t", "t.toml", text).unwrap();
    let req = crate::planner::plan(&profile).remove(0);
    let mut r = Reading::new("g", "d", "test", 1, 0, 0);
    decode_into(&profile, &req, &[0x00FA, 7], &mut r);
    assert_eq!(r.values.get("level"), Some(&Value::Int(7)));
    assert_eq!(r.errors["code"], "holding 10: 0xfa is not packed BCD (a digit above 9)");
}

/// A register point of `t` in `order` (string and bitfield with their length and bits).
fn typed(t: DataType, order: ByteOrder, length: u16, low: u8, high: u8) -> Point {
    let mut p = point(t, order, 1.0);
    match t {
        DataType::String => p.length = Some(length),
        DataType::Bitfield => {
            p.length = Some(length.clamp(1, 2));
            let top = 16 * p.width() as u8 - 1;
            let (low, high) = (low.min(top), high.min(top));
            p.field = Some(BitRange { low: low.min(high), high: low.max(high) });
        }
        _ => {}
    }
    p
}

fn register_types() -> impl Strategy<Value = DataType> {
    proptest::sample::select(
        crate::profile::DATA_TYPES.iter().copied().filter(|t| *t != DataType::Bool).collect::<Vec<_>>(),
    )
}

fn orders() -> impl Strategy<Value = ByteOrder> {
    proptest::sample::select(BYTE_ORDERS.to_vec())
}

/// The raw value of a point from any 64 random bits, within what the point can hold.
fn raw_within(p: &Point, bits: u64) -> f64 {
    match p.data_type {
        DataType::U16 => (bits as u16) as f64,
        DataType::I16 => (bits as i16) as f64,
        DataType::U32 => (bits as u32) as f64,
        DataType::I32 => (bits as i32) as f64,
        // Integers beyond 2^53 do not survive the f64 the simulator encodes from.
        DataType::U64 => (bits >> 11) as f64,
        DataType::I64 => ((bits as i64) >> 11) as f64,
        DataType::F32 => f32::from_bits(bits as u32) as f64,
        DataType::F64 => f64::from_bits(bits),
        DataType::Bcd16 => (bits % 10_000) as f64,
        DataType::Bcd32 => (bits % 100_000_000) as f64,
        DataType::Bitfield => p.field.map_or(0.0, |f| f.extract(bits) as f64),
        DataType::Bool | DataType::String => 0.0,
    }
}

proptest! {
    /// Value → registers → value is the identity for every numeric type in every byte order
    /// (text: [`text_round_trips`]).
    #[test]
    fn every_value_round_trips(
        t in register_types(),
        order in orders(),
        length in 1u16..=8,
        low in 0u8..32,
        high in 0u8..32,
        bits in any::<u64>(),
    ) {
        prop_assume!(t != DataType::String);
        let p = typed(t, order, length, low, high);
        let want = raw_within(&p, bits);
        prop_assume!(want.is_finite());
        let words = encode_registers(&p, want);
        prop_assert_eq!(words.len(), p.width() as usize);
        match decode(&p, &words).unwrap().remove(0).1 {
            Value::Int(i) => prop_assert_eq!(i as f64, want, "{:?} {:?}", t, order),
            // f32 values are published in their shortest decimal form: the same f32.
            Value::Float(f) if t == DataType::F32 => prop_assert_eq!(f as f32, want as f32),
            Value::Float(f) => prop_assert_eq!(f, want, "{:?} {:?}", t, order),
            other => prop_assert!(false, "{:?}: {:?}", t, other),
        }
    }

    /// Registers → value → registers is the identity wherever the registers hold a value of
    /// the type (BCD digits, a finite float, the field's own bits).
    #[test]
    fn every_register_image_round_trips(
        t in register_types(),
        order in orders(),
        length in 1u16..=8,
        low in 0u8..32,
        high in 0u8..32,
        words in proptest::collection::vec(any::<u16>(), 8),
    ) {
        prop_assume!(t != DataType::String);
        let p = typed(t, order, length, low, high);
        let mut words = words[..p.width() as usize].to_vec();
        if let Some(f) = p.field {
            // Only the field's bits survive: clear the rest in big-endian form.
            let n = p.width() as usize;
            let v = f.extract(to_u64(&normalize(&words, order))) << f.low;
            words = denormalize(to_words(v, n), order);
        }
        match decode(&p, &words) {
            Ok(values) => {
                let v = &values[0].1;
                if let Value::Float(f) = v { prop_assume!(f.is_finite()); }
                if matches!(t, DataType::U64 | DataType::I64) {
                    prop_assume!(v.as_f64().is_some_and(|x| x.abs() < 9.0e15));
                }
                prop_assert_eq!(encode_value(&p, v), words, "{:?} {:?} {:?}", t, order, v);
            }
            Err(DecodeError::NotBcd { .. }) => prop_assert!(matches!(t, DataType::Bcd16 | DataType::Bcd32)),
            Err(e) => prop_assert!(false, "{}", e),
        }
    }

    /// Any text that fits and ends in no space comes back as it was, in both byte orders.
    #[test]
    fn text_round_trips(
        text in "[!-~\u{4e00}-\u{4e2f}]([ -~\u{4e00}-\u{4e2f}]{0,10}[!-~\u{4e00}-\u{4e2f}])?",
        extra in 0u16..=3,
        swap in any::<bool>(),
    ) {
        let order = if swap { ByteOrder::BADC } else { ByteOrder::ABCD };
        let length = (text.len() as u16).div_ceil(2) + extra;
        let p = typed(DataType::String, order, length, 0, 0);
        prop_assert_eq!(decode(&p, &encode_text(&p, &text)).unwrap()[0].1.clone(), Value::Text(text));
    }
}

proptest! {
    /// The decoders read the words in place; the same number as normalizing a copy first.
    #[test]
    fn words_are_read_in_order_without_a_copy(words in proptest::collection::vec(any::<u16>(), 1..=4)) {
        for order in BYTE_ORDERS {
            prop_assert_eq!(ordered_u64(&words, order), to_u64(&normalize(&words, order)));
        }
    }

    /// f32 values go through their shortest decimal form, written on the stack.
    #[test]
    fn f32_values_are_their_shortest_decimal(bits in any::<u32>()) {
        let f = f32::from_bits(bits);
        let want = if f.is_finite() { f.to_string().parse().unwrap_or(f as f64) } else { f as f64 };
        let got = f32_to_f64(f);
        prop_assert!(got == want || (got.is_nan() && want.is_nan()), "{} {} {}", f, got, want);
    }
}

#[test]
fn extreme_f32_values_keep_their_shortest_decimal() {
    for f in [
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        f32::MAX,
        f32::MIN,
        f32::from_bits(1),
        -f32::from_bits(1),
        0.32,
    ] {
        assert_eq!(f32_to_f64(f), f.to_string().parse::<f64>().unwrap(), "{f}");
    }
}
