//! Numbers in summaries: a float is shown to the decimals its point's profile gives
//! (`decimals = 2`), else to a default by its unit (m³ 3, MPa 2, °C 1, kΩ 0, …), else to 3, with
//! trailing zeros dropped: `0.851007` MPa is `0.85`, `1.3` stays `1.3`, `40.0` kΩ is `40`.

/// Decimals shown when neither the profile nor the unit says.
pub const DEFAULT_DECIMALS: u8 = 3;

/// Most decimals a profile may ask for.
pub const MAX_DECIMALS: u8 = 9;

/// The decimals a reading in `unit` is usually given to; `None` for a unit not listed.
pub fn decimals_for_unit(unit: &str) -> Option<u8> {
    Some(match unit {
        // A water meter's totalizer counts litres.
        "m³" | "m3" | "L" => 3,
        "MPa" | "m³/h" | "m3/h" | "m/s" | "t/h" | "bar" => 2,
        "kPa" | "°C" | "℃" | "V" | "A" | "kW" | "kWh" | "Hz" | "%" | "kVA" | "kvar" => 1,
        "kΩ" | "MΩ" | "Ω" | "mm" | "kg" | "h" | "Pa" | "s" | "min" | "d" | "rpm" => 0,
        _ => return None,
    })
}

/// The unit a template names right after a placeholder: the first word of `text`
/// (`" MPa > …"` → `MPa`), without trailing punctuation.
pub fn unit_after(text: &str) -> Option<&str> {
    if !text.starts_with(' ') {
        return None;
    }
    let word = text.split_whitespace().next()?;
    let word = word.trim_end_matches([',', ';', ')', '.', '，', '；', '）', '、']);
    decimals_for_unit(word).map(|_| word)
}

/// `value` to at most `decimals` decimals, trailing zeros (and a bare point) dropped; `-0`
/// shows as `0`. Infinities and NaN keep Rust's spelling.
pub fn format_float(value: f64, decimals: u8) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let text = format!("{value:.*}", usize::from(decimals.min(MAX_DECIMALS)));
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
    match text {
        "-0" => "0".to_string(),
        t => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_round_to_the_decimals_and_drop_trailing_zeros() {
        assert_eq!(format_float(0.851007, 2), "0.85");
        assert_eq!(format_float(1.3826844, 2), "1.38");
        assert_eq!(format_float(1.3, 2), "1.3");
        assert_eq!(format_float(40.0, 0), "40");
        assert_eq!(format_float(39.6, 0), "40");
        assert_eq!(format_float(-20.0, 0), "-20");
        assert_eq!(format_float(-0.001, 2), "0");
        assert_eq!(format_float(1234.5678, 3), "1234.568");
        assert_eq!(format_float(f64::NAN, 2), "NaN");
        assert_eq!(format_float(1.0 / 3.0, 200), "0.333333333");
    }

    #[test]
    fn units_name_their_usual_decimals() {
        assert_eq!(decimals_for_unit("MPa"), Some(2));
        assert_eq!(decimals_for_unit("m³/h"), Some(2));
        assert_eq!(decimals_for_unit("°C"), Some(1));
        assert_eq!(decimals_for_unit("kΩ"), Some(0));
        assert_eq!(decimals_for_unit("furlongs"), None);
        assert_eq!(unit_after(" MPa > limit"), Some("MPa"));
        assert_eq!(unit_after(" m³/h, since"), Some("m³/h"));
        assert_eq!(unit_after(" kΩ)"), Some("kΩ"));
        assert_eq!(unit_after("MPa"), None);
        assert_eq!(unit_after(" at floor"), None);
    }
}
